#pragma once
// Images in memory, decoding (stb_image) within a pixel limit and in the EXIF orientation, PNG/JPEG
// output (stb_image_write), bilinear resizing, rotation, mask overlays and conversion to and from
// NCHW tensors.
//
// Layout: `Image` is interleaved HWC (row-major; the channels of one pixel are adjacent), float
// values in 0..1. That is the layout every decoder and encoder uses, so loading and saving cost no
// shuffle; tensors (planar CHW per image) are reached with `image_to_tensor` / `image_from_tensor`.
//
// Memory: `DecodedImage` keeps the file's own 8- or 16-bit samples (3 bytes per RGB pixel, 6 at
// 16 bits) and expresses the EXIF orientation and 90-degree rotations as views on them, so a large
// photo is resized for a model without ever existing as floats (4 bytes per sample); `ByteImage`
// is the 8-bit output the encoders take. The pixel limit (DecodeOptions::max_pixels, 50 megapixels
// by default) is checked from the file's header (stbi_info) before anything is allocated, so a
// small file claiming a huge size costs nothing.
//
// stb comes from the system (Debian's libstb): include its headers, link -lstb, and never define
// STB_*_IMPLEMENTATION here.
#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/io/atomic_file.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<float> data;  // HWC, values 0..1

  Image() = default;
  Image(int h, int w, int c, float value = 0.0f) : width(w), height(h), channels(c) {
    if (h < 0 || w < 0 || c < 0) fail_argument("Image: negative size ", h, "x", w, "x", c);
    data.assign(static_cast<std::size_t>(h) * w * c, value);
  }
  bool empty() const { return data.empty(); }
  std::size_t pixels() const { return static_cast<std::size_t>(width) * height; }
  float& at(int y, int x, int c) {
    return data[(static_cast<std::size_t>(y) * width + x) * channels + c];
  }
  float at(int y, int x, int c) const {
    return data[(static_cast<std::size_t>(y) * width + x) * channels + c];
  }
};

using Rgb = std::array<float, 3>;

namespace detail {

inline std::vector<unsigned char> read_file_bytes(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail_format("cannot read image '", path.string(), "': Is a directory");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_format("cannot open image '", path.string(), "': ", last_os_error(errno));
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  if (in.bad()) fail_format("cannot read image '", path.string(), "': ", last_os_error(errno));
  return bytes;
}

inline unsigned char to_byte(float v) {
  const float clamped = std::clamp(v, 0.0f, 1.0f);
  return static_cast<unsigned char>(std::lround(clamped * 255.0f));
}

inline void append_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<std::size_t>(size));
}

// Image or ByteImage.
template <class Pixels>
void check_encodable(const Pixels& image, const std::string& name) {
  if (image.data.empty() || image.width <= 0 || image.height <= 0)
    fail_argument("cannot save empty image to '", name, "'");
  if (image.channels < 1 || image.channels > 4)
    fail_argument("cannot save '", name, "': ", image.channels,
                  " channels (1 grey, 2 grey+alpha, 3 RGB or 4 RGBA are supported)");
  const std::size_t expected =
      static_cast<std::size_t>(image.width) * image.height * image.channels;
  if (image.data.size() != expected)
    fail_argument("cannot save '", name, "': image data holds ", image.data.size(),
                  " values, expected ", expected);
}

// out = v (1 - alpha m) + colour alpha m, m the mask value clamped to 0..1: the overlay tint.
inline float tint(float v, float mask, float colour, float alpha) {
  const float m = std::clamp(mask, 0.0f, 1.0f) * alpha;
  return v * (1 - m) + colour * m;
}

}  // namespace detail

// Larger images are refused before decoding: 50 megapixels covers the photos of current cameras
// and phones (an 8-bit RGB image of this size decodes into 150 MB).
inline constexpr std::uint64_t kDefaultMaxImagePixels = 50'000'000;

struct DecodeOptions {
  std::uint64_t max_pixels = kDefaultMaxImagePixels;  // width * height above this is refused
  bool exif_orientation = true;  // turn JPEGs as their EXIF orientation says (as viewers show them)
};

namespace detail {

// Calls segment(marker, payload, declared_size, bytes_left) for each marker segment of a JPEG held
// in memory, in order, finding markers as stb_image does (bytes between segments and the
// entropy-coded data after an SOS are skipped up to the next marker); stops when it returns false,
// at EOI or at the end of the data. declared_size is what the segment's length field says (it may
// exceed bytes_left, the bytes from the payload to the end of the data).
// Returns false when the data is not a JPEG. Every read is bounds-checked.
template <class Segment>
bool for_each_jpeg_segment(const unsigned char* data, std::size_t size, Segment&& segment) {
  // SOI, possibly after fill bytes (stb accepts FF FF D8).
  std::size_t pos = 0;
  if (size < 4 || data[0] != 0xFF) return false;
  while (pos + 1 < size && data[pos + 1] == 0xFF) ++pos;
  if (pos + 1 >= size || data[pos + 1] != 0xD8) return false;
  pos += 2;
  auto is_rst = [](unsigned char m) { return m >= 0xD0 && m <= 0xD7; };
  while (pos + 2 <= size) {
    if (data[pos] != 0xFF || data[pos + 1] == 0x00) {  // not a marker: look for the next one
      ++pos;
      continue;
    }
    const unsigned char marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte before a marker
      ++pos;
      continue;
    }
    if (marker == 0xD9) return true;  // EOI
    if (marker == 0xD8 || marker == 0x01 || is_rst(marker)) {
      pos += 2;  // markers without a length
      continue;
    }
    if (pos + 4 > size) return true;
    const std::size_t length = static_cast<std::size_t>(data[pos + 2]) << 8 | data[pos + 3];
    const std::size_t left = size - pos - 4;
    if (length < 2) return true;
    if (!segment(marker, data + pos + 4, length - 2, left)) return true;
    pos += 2 + length;
    if (marker == 0xDA)  // entropy-coded data: up to a marker (0xFF 0x00 and RSTn are data)
      while (pos + 1 < size && !(data[pos] == 0xFF && data[pos + 1] != 0x00 &&
                                 data[pos + 1] != 0xFF && !is_rst(data[pos + 1])))
        ++pos;
  }
  return true;
}

// Why stb 2.27 (Debian 12's libstb) must not decode this JPEG, or empty:
//  - its Huffman table builder writes out of bounds for a DHT table of more than 256 codes (fixed
//    in stb 2.28). The tables are read as stb reads them: on past the segment's end while its
//    length says so;
//  - a scan that decodes with a Huffman table no DHT before it defined makes stb read its
//    uninitialised table (an assertion fails, or without assertions it reads out of bounds). A
//    baseline scan uses each component's DC and AC tables; a progressive one its DC tables (first
//    DC scans) or its AC tables (AC scans), as stb decodes them.
inline std::string jpeg_unsafe_reason(const unsigned char* data, std::size_t size) {
  std::string reason;
  bool defined[2][4] = {};  // [DC, AC][table id]
  bool progressive = false;
  for_each_jpeg_segment(
      data, size,
      [&](unsigned char marker, const unsigned char* p, std::size_t length, std::size_t left) {
        auto byte = [&](std::size_t at) -> unsigned { return at < left ? p[at] : 0u; };
        if (marker == 0xC2) progressive = true;
        if (marker == 0xDA) {  // SOS: components (id, DC << 4 | AC), then Ss, Se, Ah << 4 | Al
          const unsigned count = byte(0);
          if (count < 1 || count > 4 || length < 4 + 2 * std::size_t{count}) return true;
          const unsigned start = byte(1 + 2 * count), high = byte(3 + 2 * count) >> 4;
          const bool dc = !progressive || (start == 0 && high == 0);
          const bool ac = !progressive || start != 0;
          for (unsigned i = 0; i < count; ++i) {
            const unsigned tables = byte(2 + 2 * i), td = tables >> 4, ta = tables & 15;
            if (td > 3 || ta > 3) return true;  // stb refuses the scan
            for (const auto& [used, cls, id] : {std::tuple{dc, 0, td}, std::tuple{ac, 1, ta}})
              if (used && !defined[cls][id]) {
                reason = str_cat("corrupt JPEG: a scan uses the ", cls ? "AC" : "DC",
                                 " Huffman table ", id, ", which no table before it defines");
                return false;
              }
          }
          return true;
        }
        if (marker != 0xC4) return true;  // DHT: tables of 1 + 16 counts + their values
        long remaining = static_cast<long>(length);
        for (std::size_t at = 0; remaining > 0;) {
          if ((byte(at) >> 4) > 1 || (byte(at) & 15) > 3) return true;  // stb refuses the header
          std::size_t codes = 0;
          for (std::size_t i = 1; i <= 16; ++i) codes += byte(at + i);
          if (codes > 256) {
            reason = str_cat("corrupt JPEG: a Huffman table with ", codes, " codes (at most 256)");
            return false;
          }
          defined[byte(at) >> 4][byte(at) & 15] = true;
          remaining -= 17 + static_cast<long>(codes);
          at += 17 + codes;
        }
        return true;
      });
  return reason;
}

// Where the samples of a binary PNM (P5 grey, P6 RGB) start and how many bytes they take, read
// as stb 2.27 reads the header (its stbi__pnm_info); nothing when the data is not such a PNM.
struct PnmLayout {
  std::size_t data_offset = 0;
  std::uint64_t data_bytes = 0;
  bool sixteen_bit = false;
  bool number_overflows = false;  // a header number stb would overflow an int with
};
inline std::optional<PnmLayout> pnm_layout(const unsigned char* data, std::size_t size) {
  if (size < 2 || data[0] != 'P' || (data[1] != '5' && data[1] != '6')) return std::nullopt;
  const std::uint64_t channels = data[1] == '6' ? 3 : 1;
  std::size_t pos = 2;
  auto at_eof = [&] { return pos >= size; };
  auto get8 = [&]() -> char { return at_eof() ? 0 : static_cast<char>(data[pos++]); };
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  char c = get8();
  auto skip_whitespace = [&] {
    for (;;) {
      while (!at_eof() && space(c)) c = get8();
      if (at_eof() || c != '#') break;
      while (!at_eof() && c != '\n' && c != '\r') c = get8();
    }
  };
  PnmLayout layout;
  auto integer = [&] {
    std::uint64_t v = 0;
    while (!at_eof() && c >= '0' && c <= '9') {
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
      if (v > static_cast<std::uint64_t>(INT_MAX)) {
        layout.number_overflows = true;
        v = static_cast<std::uint64_t>(INT_MAX);
      }
      c = get8();
    }
    return v;
  };
  skip_whitespace();
  const std::uint64_t width = integer();
  skip_whitespace();
  const std::uint64_t height = integer();
  skip_whitespace();
  const std::uint64_t max_value = integer();
  layout.sixteen_bit = max_value > 255;
  layout.data_offset = pos;
  // stb refuses sides above 2^24 itself; below, the product cannot overflow.
  if (width <= (1u << 24) && height <= (1u << 24))
    layout.data_bytes = width * height * channels * (layout.sixteen_bit ? 2 : 1);
  return layout;
}

// Why stb 2.27 (Debian 12's libstb) must not be given these bytes, or empty: the stb bugs that
// fuzzing found and that a file can trigger (all fixed in stb 2.28).
inline std::string stb_unsafe_reason(const unsigned char* data, std::size_t size) {
  if (std::string jpeg = jpeg_unsafe_reason(data, size); !jpeg.empty()) return jpeg;
  const auto pnm = pnm_layout(data, size);
  if (!pnm) return {};
  // A header number beyond an int overflows stb's parser (undefined behaviour).
  if (pnm->number_overflows) return "corrupt PNM header: a number larger than 2147483647";
  // A PNM shorter than its header says is returned with uninitialised samples.
  if (pnm->data_bytes > 0 && pnm->data_offset + pnm->data_bytes > size)
    return str_cat("truncated PNM: its pixels need ", pnm->data_bytes, " bytes, the file has ",
                   size > pnm->data_offset ? size - pnm->data_offset : 0);
  return {};
}

// stb's channel conversion of 16-bit samples (stbi__convert_format16), for the files whose
// conversion stb 2.27 gets wrong (see decode_pixels); grey is stb's (77 r + 150 g + 29 b) >> 8.
inline std::uint16_t* convert_channels16(const std::uint16_t* src, int from, int to,
                                         std::size_t pixels) {
  auto* out = static_cast<std::uint16_t*>(std::malloc(pixels * static_cast<std::size_t>(to) * 2));
  if (!out) throw std::bad_alloc();
  for (std::size_t p = 0; p < pixels; ++p) {
    const std::uint16_t* s = src + p * static_cast<std::size_t>(from);
    std::uint16_t* d = out + p * static_cast<std::size_t>(to);
    const bool colour = from >= 3;
    const auto grey =
        colour ? static_cast<std::uint16_t>((s[0] * 77 + s[1] * 150 + s[2] * 29) >> 8) : s[0];
    const std::uint16_t alpha = from == 2 || from == 4 ? s[from - 1] : 0xFFFF;
    for (int k = 0; k < to; ++k) {
      if (to <= 2)
        d[k] = k == 0 ? grey : alpha;
      else
        d[k] = k == 3 ? alpha : colour ? s[k] : s[0];
    }
  }
  return out;
}

}  // namespace detail

// The EXIF orientation (1..8, TIFF tag 0x0112) of a JPEG held in memory; 1 when the data is not a
// JPEG or carries no valid tag. Reads the first APP1 "Exif" segment before the image data, every
// offset bounds-checked.
inline int jpeg_exif_orientation(const unsigned char* data, std::size_t size) {
  int orientation = 1;
  detail::for_each_jpeg_segment(
      data, size,
      [&](unsigned char marker, const unsigned char* segment, std::size_t declared,
          std::size_t left) {
        const std::size_t segment_size = std::min(declared, left);
        if (marker == 0xDA) return false;  // image data: no EXIF before it
        if (marker != 0xE1 || segment_size < 14 || !std::equal(segment, segment + 6, "Exif\0\0"))
          return true;
        const unsigned char* tiff = segment + 6;
        const std::size_t tiff_size = segment_size - 6;
        const bool little = tiff[0] == 'I' && tiff[1] == 'I';
        if (!little && !(tiff[0] == 'M' && tiff[1] == 'M')) return false;
        auto u16 = [&](std::size_t at) -> std::uint32_t {
          return little ? tiff[at] | tiff[at + 1] << 8 : tiff[at] << 8 | tiff[at + 1];
        };
        auto u32 = [&](std::size_t at) -> std::uint64_t {
          return little ? u16(at) | std::uint64_t{u16(at + 2)} << 16
                        : std::uint64_t{u16(at)} << 16 | u16(at + 2);
        };
        if (u16(2) != 42) return false;
        const std::uint64_t ifd = u32(4);
        if (ifd + 2 > tiff_size) return false;
        const std::uint64_t entries = u16(static_cast<std::size_t>(ifd));
        for (std::uint64_t e = 0; e < entries; ++e) {
          const std::uint64_t entry = ifd + 2 + 12 * e;
          if (entry + 12 > tiff_size) return false;
          const auto at = static_cast<std::size_t>(entry);
          if (u16(at) != 0x0112) continue;
          const std::uint32_t type = u16(at + 2), value = u16(at + 8);
          if (type == 3 && u32(at + 4) >= 1 && value >= 1 && value <= 8)
            orientation = static_cast<int>(value);
          return false;
        }
        return false;
      });
  return orientation;
}

// A decoded image in the file's sample type (8 or 16 bits per sample, interleaved), seen through a
// view: pixel (y, x) of the view is pixel `origin + y * row_step + x * col_step` of the decoded
// buffer, which is how orientations and rotations cost no copy. Copies share the buffer.
class DecodedImage {
 public:
  DecodedImage() = default;
  int width() const { return width_; }
  int height() const { return height_; }
  int channels() const { return channels_; }
  bool sixteen_bit() const { return sixteen_bit_; }
  std::size_t pixels() const { return static_cast<std::size_t>(width_) * height_; }
  bool empty() const { return !samples_; }

  // Sample k of pixel (y, x) in 0..1 (8-bit values / 255, 16-bit values / 65535).
  float at(int y, int x, int k) const {
    const std::ptrdiff_t i = (origin_ + static_cast<std::ptrdiff_t>(y) * row_step_ +
                              static_cast<std::ptrdiff_t>(x) * col_step_) *
                                 channels_ +
                             k;
    return sixteen_bit_ ? static_cast<const std::uint16_t*>(samples_.get())[i] / 65535.0f
                        : static_cast<const unsigned char*>(samples_.get())[i] / 255.0f;
  }

  // The image as EXIF orientation `orientation` (1..8) says it is displayed: 2 mirrors, 3 turns
  // by 180 degrees, 4 flips, 5 transposes, 6 turns 90 degrees clockwise, 7 transposes across the
  // other diagonal, 8 turns 90 degrees counter-clockwise. 5 to 8 swap width and height.
  DecodedImage oriented(int orientation) const {
    if (orientation < 1 || orientation > 8)
      fail_argument("DecodedImage::oriented: orientation must be 1..8, got ", orientation);
    const std::ptrdiff_t h = height_, w = width_;
    // The pixel of this view shown at (y, x) of the result.
    auto source = [&](std::ptrdiff_t y, std::ptrdiff_t x) -> std::array<std::ptrdiff_t, 2> {
      switch (orientation) {
        case 2:
          return {y, w - 1 - x};
        case 3:
          return {h - 1 - y, w - 1 - x};
        case 4:
          return {h - 1 - y, x};
        case 5:
          return {x, y};
        case 6:
          return {h - 1 - x, y};
        case 7:
          return {h - 1 - x, w - 1 - y};
        case 8:
          return {x, w - 1 - y};
        default:
          return {y, x};
      }
    };
    auto offset = [&](std::array<std::ptrdiff_t, 2> p) {
      return origin_ + p[0] * row_step_ + p[1] * col_step_;
    };
    DecodedImage out = *this;
    if (orientation >= 5) std::swap(out.width_, out.height_);
    out.origin_ = offset(source(0, 0));
    out.row_step_ = offset(source(1, 0)) - out.origin_;
    out.col_step_ = offset(source(0, 1)) - out.origin_;
    return out;
  }
  // Turned 90 degrees counter-clockwise, as rotate90(image, 1).
  DecodedImage rotated90() const { return oriented(8); }

  // The whole image as floats (4 bytes per sample).
  Image to_image() const {
    Image image(height_, width_, channels_);
    float* out = image.data.data();
    for (int y = 0; y < height_; ++y)
      for (int x = 0; x < width_; ++x)
        for (int k = 0; k < channels_; ++k) *out++ = at(y, x, k);
    return image;
  }

 private:
  friend DecodedImage decode_pixels(const unsigned char*, std::size_t, const std::string&, int,
                                    const DecodeOptions&);
  std::shared_ptr<const void> samples_;
  int width_ = 0, height_ = 0, channels_ = 0;
  bool sixteen_bit_ = false;
  std::ptrdiff_t origin_ = 0, row_step_ = 0, col_step_ = 1;
};

// Decodes an encoded image held in memory. `name` is used in error messages only.
// desired_channels: 0 keeps the file's channels, 1 grey, 3 RGB (grey is replicated, alpha is
// dropped), 4 RGBA. 8-bit files are scaled by 1/255, 16-bit PNG/PNM by 1/65535. Images larger
// than options.max_pixels are refused from their header, before any pixel is decoded.
inline DecodedImage decode_pixels(const unsigned char* bytes, std::size_t size,
                                  const std::string& name, int desired_channels = 3,
                                  const DecodeOptions& options = {}) {
  if (desired_channels < 0 || desired_channels > 4)
    fail_argument("decode_image: desired_channels must be 0..4, got ", desired_channels);
  if (size == 0) fail_format("cannot decode image '", name, "': file is empty");
  if (size > static_cast<std::size_t>(INT32_MAX))
    fail_format("cannot decode image '", name, "': file larger than 2 GiB");
  const int len = static_cast<int>(size);
  if (const std::string unsafe = detail::stb_unsafe_reason(bytes, size); !unsafe.empty())
    fail_format("cannot decode image '", name, "': ", unsafe);
  int w = 0, h = 0, file_channels = 0;
  if (!stbi_info_from_memory(bytes, len, &w, &h, &file_channels))
    fail_format("cannot decode image '", name, "': ", stbi_failure_reason());
  const std::uint64_t pixels = static_cast<std::uint64_t>(w) * static_cast<std::uint64_t>(h);
  if (w <= 0 || h <= 0) fail_format("cannot decode image '", name, "': its size is ", w, "x", h);
  if (pixels > options.max_pixels)
    fail_format("image '", name, "' is ", w, "x", h, " pixels (", static_cast<double>(pixels) / 1e6,
                " megapixels), above the limit of ", static_cast<double>(options.max_pixels) / 1e6,
                " megapixels (DecodeOptions::max_pixels; the programs' --max-megapixels)");

  DecodedImage image;
  int got_w = 0, got_h = 0;
  image.sixteen_bit_ = stbi_is_16_bit_from_memory(bytes, len) != 0;
  // stb 2.27 returns 16-bit PNM samples in the file's (big-endian) byte order, and converts their
  // channels with its 8-bit converter, returning half the buffer it claims (both fixed in 2.28):
  // such files are decoded in their own channels, then put in order and converted here.
  const bool pnm16 = image.sixteen_bit_ && detail::pnm_layout(bytes, size).has_value();
  const int stb_channels = pnm16 ? 0 : desired_channels;
  void* samples = image.sixteen_bit_
                      ? static_cast<void*>(stbi_load_16_from_memory(bytes, len, &got_w, &got_h,
                                                                    &file_channels, stb_channels))
                      : static_cast<void*>(stbi_load_from_memory(bytes, len, &got_w, &got_h,
                                                                 &file_channels, stb_channels));
  if (!samples) fail_format("cannot decode image '", name, "': ", stbi_failure_reason());
  image.samples_ = std::shared_ptr<const void>(
      samples, [](const void* p) { stbi_image_free(const_cast<void*>(p)); });
  if (pnm16) {
    if (got_w != w || got_h != h || file_channels < 1 || file_channels > 4)
      fail_format("cannot decode image '", name, "': its header and data disagree");
    auto* values = static_cast<std::uint16_t*>(samples);
    for (std::size_t i = 0; i < pixels * static_cast<std::size_t>(file_channels); ++i) {
      const auto* b = reinterpret_cast<const unsigned char*>(values + i);
      values[i] = static_cast<std::uint16_t>(b[0] << 8 | b[1]);
    }
    if (desired_channels != 0 && desired_channels != file_channels)
      image.samples_ = std::shared_ptr<const void>(
          detail::convert_channels16(values, file_channels, desired_channels, pixels),
          [](const void* p) { std::free(const_cast<void*>(p)); });
  }
  if (got_w != w || got_h != h)
    fail_format("cannot decode image '", name, "': its header says ", w, "x", h,
                " but it decodes to ", got_w, "x", got_h);
  image.width_ = w;
  image.height_ = h;
  image.channels_ = desired_channels ? desired_channels : file_channels;
  image.row_step_ = w;
  if (options.exif_orientation) {
    const int orientation = jpeg_exif_orientation(bytes, size);
    if (orientation != 1) return image.oriented(orientation);
  }
  return image;
}

// Loads PNG, JPEG, BMP, TGA, GIF (first frame), PSD or PNM, within options.max_pixels, in the EXIF
// orientation. Throws FormatError naming the file and the reason.
inline DecodedImage load_pixels(const std::filesystem::path& path, int desired_channels = 3,
                                const DecodeOptions& options = {}) {
  const std::vector<unsigned char> bytes = detail::read_file_bytes(path);
  return decode_pixels(bytes.data(), bytes.size(), path.string(), desired_channels, options);
}

// The same as whole float images (see decode_pixels for the choices).
inline Image decode_image(const unsigned char* bytes, std::size_t size, const std::string& name,
                          int desired_channels = 3, const DecodeOptions& options = {}) {
  return decode_pixels(bytes, size, name, desired_channels, options).to_image();
}
inline Image load_image(const std::filesystem::path& path, int desired_channels = 3,
                        const DecodeOptions& options = {}) {
  return load_pixels(path, desired_channels, options).to_image();
}

// 8-bit interleaved pixels, what the encoders take: outputs too large to hold as floats.
struct ByteImage {
  int width = 0, height = 0, channels = 0;
  std::vector<unsigned char> data;  // HWC, 0..255

  ByteImage() = default;
  ByteImage(int h, int w, int c) : width(w), height(h), channels(c) {
    if (h < 0 || w < 0 || c < 0) fail_argument("ByteImage: negative size ", h, "x", w, "x", c);
    data.assign(static_cast<std::size_t>(h) * w * c, 0);
  }
};

namespace detail {

inline ByteImage to_bytes(const Image& image) {
  ByteImage out;
  out.width = image.width;
  out.height = image.height;
  out.channels = image.channels;
  out.data.resize(image.data.size());
  std::transform(image.data.begin(), image.data.end(), out.data.begin(), to_byte);
  return out;
}

// stb's encoders report failure without a reason; it is one of these two.
inline std::string encoder_failure(const char* format, const std::string& name,
                                   const ByteImage& image) {
  const bool too_large = (static_cast<std::uint64_t>(image.width) * image.channels + 1) *
                             static_cast<std::uint64_t>(image.height) >
                         INT_MAX;
  return str_cat("cannot write '", name, "': ", format, " encoding of a ", image.height, "x",
                 image.width, "x", image.channels, " image failed (",
                 too_large ? "more than 2 GiB of pixel data, the encoder's limit" : "out of memory",
                 ")");
}

inline std::string encode_png(const ByteImage& image, const std::string& name) {
  check_encodable(image, name);
  std::string out;
  if (!stbi_write_png_to_func(append_to_string, &out, image.width, image.height, image.channels,
                              image.data.data(), image.width * image.channels))
    throw std::runtime_error(encoder_failure("PNG", name, image));
  return out;
}

inline std::string encode_jpeg(const ByteImage& image, const std::string& name, int quality) {
  check_encodable(image, name);
  std::string out;
  if (!stbi_write_jpg_to_func(append_to_string, &out, image.width, image.height, image.channels,
                              image.data.data(), std::clamp(quality, 1, 100)))
    throw std::runtime_error(encoder_failure("JPEG", name, image));
  return out;
}

// Runs an encoder; running out of memory is reported for the file like any other failure.
template <class Encode>
std::string encode_for(const std::string& name, const char* format, Encode&& encode) {
  try {
    return encode();
  } catch (const std::bad_alloc&) {
    throw std::runtime_error(
        str_cat("cannot write '", name, "': ", format, " encoding failed (out of memory)"));
  }
}

}  // namespace detail

// Encodes as 8-bit PNG / JPEG (float values clamped to 0..1 and rounded). 1, 2, 3 or 4 channels.
inline std::string encode_png(const ByteImage& image) {
  return detail::encode_png(image, "<memory>");
}
inline std::string encode_png(const Image& image) {
  detail::check_encodable(image, "<memory>");
  return detail::encode_png(detail::to_bytes(image), "<memory>");
}
inline std::string encode_jpeg(const Image& image, int quality = 95) {
  detail::check_encodable(image, "<memory>");
  return detail::encode_jpeg(detail::to_bytes(image), "<memory>", quality);
}

// Writes atomically (temporary file + rename): readers never see a half-written file, and on
// failure (e.g. the folder does not exist) std::runtime_error names the path and the reason, and
// nothing is left.
inline void save_png(const std::filesystem::path& path, const ByteImage& image,
                     Durability durability = Durability::OnDisk) {
  write_file_atomic(path,
                    detail::encode_for(path.string(), "PNG",
                                       [&] { return detail::encode_png(image, path.string()); }),
                    durability);
}
inline void save_png(const std::filesystem::path& path, const Image& image,
                     Durability durability = Durability::OnDisk) {
  detail::check_encodable(image, path.string());
  write_file_atomic(path,
                    detail::encode_for(
                        path.string(), "PNG",
                        [&] { return detail::encode_png(detail::to_bytes(image), path.string()); }),
                    durability);
}
inline void save_jpeg(const std::filesystem::path& path, const Image& image, int quality = 95) {
  detail::check_encodable(image, path.string());
  write_file_atomic(path, detail::encode_for(path.string(), "JPEG", [&] {
                      return detail::encode_jpeg(detail::to_bytes(image), path.string(), quality);
                    }));
}

namespace detail {

// Bilinear taps along one axis, half-pixel centres (see resize_bilinear).
struct Tap {
  int i0, i1;
  float w1;  // weight of i1; i0 gets 1 - w1
};
inline std::vector<Tap> bilinear_taps(int in, int out) {
  std::vector<Tap> t(static_cast<std::size_t>(out));
  const double scale = static_cast<double>(in) / out;
  for (int o = 0; o < out; ++o) {
    const double s = std::max(0.0, (o + 0.5) * scale - 0.5);
    const int i0 = std::min(static_cast<int>(s), in - 1);
    const int i1 = std::min(i0 + 1, in - 1);
    t[static_cast<std::size_t>(o)] = {i0, i1, static_cast<float>(s - i0)};
  }
  return t;
}

}  // namespace detail

// The one bilinear resampler: a height x width x channels source read through get(y, x, k) is
// resampled to out_h x out_w; row(y, values) receives each output row (out_w * channels values)
// in order, so a caller can consume a large output row by row.
template <class Get, class Row>
void resize_bilinear_rows(int height, int width, int channels, const Get& get, int out_h, int out_w,
                          Row&& row) {
  if (out_h <= 0 || out_w <= 0)
    fail_argument("resize_bilinear: target size must be positive, got ", out_h, "x", out_w);
  if (height <= 0 || width <= 0 || channels <= 0)
    fail_argument("resize_bilinear: source image is empty");
  const std::vector<detail::Tap> ty = detail::bilinear_taps(height, out_h),
                                 tx = detail::bilinear_taps(width, out_w);
  const int c = channels;
  std::vector<float> line(static_cast<std::size_t>(out_w) * c);
  for (int y = 0; y < out_h; ++y) {
    const detail::Tap& a = ty[static_cast<std::size_t>(y)];
    for (int x = 0; x < out_w; ++x) {
      const detail::Tap& b = tx[static_cast<std::size_t>(x)];
      for (int k = 0; k < c; ++k) {
        const float top = get(a.i0, b.i0, k) * (1 - b.w1) + get(a.i0, b.i1, k) * b.w1;
        const float bottom = get(a.i1, b.i0, k) * (1 - b.w1) + get(a.i1, b.i1, k) * b.w1;
        line[static_cast<std::size_t>(x) * c + k] = top * (1 - a.w1) + bottom * a.w1;
      }
    }
    row(y, static_cast<const float*>(line.data()));
  }
}

namespace detail {

template <class Get>
Image resize_bilinear_image(int height, int width, int channels, const Get& get, int out_h,
                            int out_w) {
  Image dst(std::max(out_h, 0), std::max(out_w, 0), channels);
  const std::size_t row_size = static_cast<std::size_t>(out_w) * channels;
  resize_bilinear_rows(height, width, channels, get, out_h, out_w, [&](int y, const float* values) {
    std::copy(values, values + row_size,
              dst.data.begin() + static_cast<std::ptrdiff_t>(y * row_size));
  });
  return dst;
}

}  // namespace detail

// Bilinear resampling with half-pixel centres: source coordinate = (dst + 0.5) * in/out - 0.5,
// clamped at the borders. This is OpenCV's INTER_LINEAR and TensorFlow's resize(bilinear,
// half_pixel_centers=True) without antialiasing (align_corners=false in PyTorch terms).
inline Image resize_bilinear(const Image& src, int height, int width) {
  if (src.empty()) fail_argument("resize_bilinear: source image is empty");
  return detail::resize_bilinear_image(
      src.height, src.width, src.channels, [&](int y, int x, int k) { return src.at(y, x, k); },
      height, width);
}
// The same from decoded samples and their view: equal, value for value, to resizing to_image().
inline Image resize_bilinear(const DecodedImage& src, int height, int width) {
  if (src.empty()) fail_argument("resize_bilinear: source image is empty");
  return detail::resize_bilinear_image(
      src.height(), src.width(), src.channels(),
      [&](int y, int x, int k) { return src.at(y, x, k); }, height, width);
}

// Rotates by quarter_turns * 90 degrees counter-clockwise (numpy.rot90 convention; negative turns
// rotate clockwise). One or three turns swap width and height.
inline Image rotate90(const Image& src, int quarter_turns = 1) {
  const int turns = ((quarter_turns % 4) + 4) % 4;
  if (turns == 0) return src;
  const bool swap = turns % 2 == 1;
  Image dst(swap ? src.width : src.height, swap ? src.height : src.width, src.channels);
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x) {
      int dy = 0, dx = 0;
      if (turns == 1) {  // counter-clockwise: the top-right corner becomes the top-left
        dy = src.width - 1 - x;
        dx = y;
      } else if (turns == 2) {
        dy = src.height - 1 - y;
        dx = src.width - 1 - x;
      } else {
        dy = x;
        dx = src.height - 1 - y;
      }
      for (int k = 0; k < src.channels; ++k) dst.at(dy, dx, k) = src.at(y, x, k);
    }
  return dst;
}

// Converts to grey as the mean of the colour channels (alpha ignored); 1-channel input is copied.
inline Image to_grey(const Image& src) {
  if (src.channels == 1) return src;
  const int colours = src.channels == 2 || src.channels == 4 ? src.channels - 1 : src.channels;
  Image dst(src.height, src.width, 1);
  for (std::size_t p = 0; p < src.pixels(); ++p) {
    float sum = 0.0f;
    for (int k = 0; k < colours; ++k) sum += src.data[p * src.channels + k];
    dst.data[p] = sum / colours;
  }
  return dst;
}

// Tints `image` (RGB, or grey which is expanded) where `mask` (1 channel, same size, values 0..1,
// e.g. probabilities) is on: out = image * (1 - alpha * m) + colour * alpha * m.
inline Image overlay(const Image& image, const Image& mask, Rgb colour = {1.0f, 0.0f, 0.0f},
                     float alpha = 0.5f) {
  if (image.channels != 1 && image.channels != 3)
    fail_argument("overlay: image must be grey or RGB, got ", image.channels, " channels");
  if (mask.channels != 1) fail_argument("overlay: mask must have 1 channel, got ", mask.channels);
  if (mask.width != image.width || mask.height != image.height)
    fail_argument("overlay: mask is ", mask.height, "x", mask.width, " but image is ", image.height,
                  "x", image.width);
  Image out(image.height, image.width, 3);
  for (std::size_t p = 0; p < image.pixels(); ++p)
    for (int k = 0; k < 3; ++k) {
      const float v = image.data[p * image.channels + (image.channels == 3 ? k : 0)];
      out.data[p * 3 + k] =
          detail::tint(v, mask.data[p], colour[static_cast<std::size_t>(k)], alpha);
    }
  return out;
}

// The same tint at 8 bits for outputs too large for floats: `image` (grey or RGB, decoded) where
// `mask` (1 channel, same size, 0..255) is on.
inline ByteImage overlay(const DecodedImage& image, const ByteImage& mask,
                         Rgb colour = {1.0f, 0.0f, 0.0f}, float alpha = 0.5f) {
  if (image.channels() != 1 && image.channels() != 3)
    fail_argument("overlay: image must be grey or RGB, got ", image.channels(), " channels");
  if (mask.channels != 1) fail_argument("overlay: mask must have 1 channel, got ", mask.channels);
  if (mask.width != image.width() || mask.height != image.height())
    fail_argument("overlay: mask is ", mask.height, "x", mask.width, " but image is ",
                  image.height(), "x", image.width());
  ByteImage out(image.height(), image.width(), 3);
  unsigned char* o = out.data.data();
  const unsigned char* m = mask.data.data();
  for (int y = 0; y < image.height(); ++y)
    for (int x = 0; x < image.width(); ++x, ++m)
      for (int k = 0; k < 3; ++k)
        *o++ =
            detail::to_byte(detail::tint(image.at(y, x, image.channels() == 3 ? k : 0), *m / 255.0f,
                                         colour[static_cast<std::size_t>(k)], alpha));
  return out;
}

// Copies `image` (HWC) into item `index` of `batch` (NCHW). Channels, height and width must match.
inline void image_to_tensor(const Image& image, View<Cpu> batch, int index) {
  if (index < 0 || index >= batch.shape.n)
    fail_argument("image_to_tensor: item ", index, " outside a batch of ", batch.shape.n);
  if (batch.shape.c != image.channels || batch.shape.h != image.height ||
      batch.shape.w != image.width)
    fail_argument("image_to_tensor: image is ", image.channels, "x", image.height, "x", image.width,
                  " (CxHxW) but the tensor holds ", batch.shape.str());
  const std::size_t plane = batch.shape.plane();
  float* dst = batch.image(index);
  for (std::size_t p = 0; p < plane; ++p)
    for (int k = 0; k < image.channels; ++k)
      dst[static_cast<std::size_t>(k) * plane + p] = image.data[p * image.channels + k];
}

// A (1, C, H, W) tensor holding `image`.
inline Tensor<Cpu> image_to_tensor(const Image& image) {
  Tensor<Cpu> t(Shape{1, image.channels, image.height, image.width});
  image_to_tensor(image, t.view(), 0);
  return t;
}

// Item `index` of `batch` (NCHW) as an HWC image.
inline Image image_from_tensor(CView<Cpu> batch, int index = 0) {
  if (index < 0 || index >= batch.shape.n)
    fail_argument("image_from_tensor: item ", index, " outside a batch of ", batch.shape.n);
  Image image(batch.shape.h, batch.shape.w, batch.shape.c);
  const std::size_t plane = batch.shape.plane();
  const float* src = batch.image(index);
  for (std::size_t p = 0; p < plane; ++p)
    for (int k = 0; k < image.channels; ++k)
      image.data[p * image.channels + k] = src[static_cast<std::size_t>(k) * plane + p];
  return image;
}

}  // namespace unetsrnn

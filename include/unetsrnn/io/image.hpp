#pragma once
// Images in memory, decoding (stb_image), PNG/JPEG output (stb_image_write), bilinear resizing,
// rotation, mask overlays and conversion to and from NCHW tensors.
//
// Layout: `Image` is interleaved HWC (row-major; the channels of one pixel are adjacent), float
// values in 0..1. That is the layout every decoder and encoder uses, so loading and saving cost no
// shuffle; tensors (planar CHW per image) are reached with `image_to_tensor` / `image_from_tensor`.
//
// stb comes from the system (Debian's libstb): include its headers, link -lstb, and never define
// STB_*_IMPLEMENTATION here.
#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
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
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_format("cannot open image '", path.string(), "'");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  if (in.bad()) fail_format("cannot read image '", path.string(), "'");
  return bytes;
}

inline unsigned char to_byte(float v) {
  const float clamped = std::clamp(v, 0.0f, 1.0f);
  return static_cast<unsigned char>(std::lround(clamped * 255.0f));
}

inline std::vector<unsigned char> to_bytes(const Image& image) {
  std::vector<unsigned char> bytes(image.data.size());
  std::transform(image.data.begin(), image.data.end(), bytes.begin(), to_byte);
  return bytes;
}

inline void append_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<std::size_t>(size));
}

inline void check_encodable(const Image& image, const std::filesystem::path& path) {
  if (image.empty() || image.width <= 0 || image.height <= 0)
    fail_argument("cannot save empty image to '", path.string(), "'");
  if (image.channels < 1 || image.channels > 4)
    fail_argument("cannot save '", path.string(), "': ", image.channels,
                  " channels (1 grey, 2 grey+alpha, 3 RGB or 4 RGBA are supported)");
  if (image.data.size() != image.pixels() * image.channels)
    fail_argument("cannot save '", path.string(), "': image data holds ", image.data.size(),
                  " values, expected ", image.pixels() * image.channels);
}

}  // namespace detail

// Decodes an encoded image held in memory. `name` is used in error messages only.
// desired_channels: 0 keeps the file's channels, 1 grey, 3 RGB (grey is replicated, alpha is
// dropped), 4 RGBA. 8-bit files are scaled by 1/255, 16-bit PNG/PNM by 1/65535.
inline Image decode_image(const unsigned char* bytes, std::size_t size, const std::string& name,
                          int desired_channels = 3) {
  if (desired_channels < 0 || desired_channels > 4)
    fail_argument("decode_image: desired_channels must be 0..4, got ", desired_channels);
  if (size == 0) fail_format("cannot decode image '", name, "': file is empty");
  if (size > static_cast<std::size_t>(INT32_MAX))
    fail_format("cannot decode image '", name, "': file larger than 2 GiB");
  const int len = static_cast<int>(size);
  int w = 0, h = 0, file_channels = 0;
  Image image;
  if (stbi_is_16_bit_from_memory(bytes, len)) {
    stbi_us* pixels =
        stbi_load_16_from_memory(bytes, len, &w, &h, &file_channels, desired_channels);
    if (!pixels) fail_format("cannot decode image '", name, "': ", stbi_failure_reason());
    const int c = desired_channels ? desired_channels : file_channels;
    image = Image(h, w, c);
    for (std::size_t i = 0; i < image.data.size(); ++i) image.data[i] = pixels[i] / 65535.0f;
    stbi_image_free(pixels);
  } else {
    stbi_uc* pixels = stbi_load_from_memory(bytes, len, &w, &h, &file_channels, desired_channels);
    if (!pixels) fail_format("cannot decode image '", name, "': ", stbi_failure_reason());
    const int c = desired_channels ? desired_channels : file_channels;
    image = Image(h, w, c);
    for (std::size_t i = 0; i < image.data.size(); ++i) image.data[i] = pixels[i] / 255.0f;
    stbi_image_free(pixels);
  }
  return image;
}

// Loads PNG, JPEG, BMP, TGA, GIF (first frame), PSD or PNM. Throws FormatError naming the file
// and stb's reason. Images are returned as RGB by default (see decode_image for the choices).
inline Image load_image(const std::filesystem::path& path, int desired_channels = 3) {
  const std::vector<unsigned char> bytes = detail::read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path.string(), desired_channels);
}

// Encodes as 8-bit PNG / JPEG (values clamped to 0..1 and rounded). 1, 2, 3 or 4 channels.
inline std::string encode_png(const Image& image) {
  detail::check_encodable(image, "<memory>");
  const std::vector<unsigned char> bytes = detail::to_bytes(image);
  std::string out;
  if (!stbi_write_png_to_func(detail::append_to_string, &out, image.width, image.height,
                              image.channels, bytes.data(), image.width * image.channels))
    fail_argument("PNG encoding failed for a ", image.height, "x", image.width, "x", image.channels,
                  " image");
  return out;
}

inline std::string encode_jpeg(const Image& image, int quality = 95) {
  detail::check_encodable(image, "<memory>");
  const std::vector<unsigned char> bytes = detail::to_bytes(image);
  std::string out;
  if (!stbi_write_jpg_to_func(detail::append_to_string, &out, image.width, image.height,
                              image.channels, bytes.data(), std::clamp(quality, 1, 100)))
    fail_argument("JPEG encoding failed for a ", image.height, "x", image.width, "x",
                  image.channels, " image");
  return out;
}

// Writes atomically (temporary file + rename): readers never see a half-written file, and on
// failure (e.g. the folder does not exist) std::runtime_error names the path and nothing is left.
inline void save_png(const std::filesystem::path& path, const Image& image) {
  detail::check_encodable(image, path);
  write_file_atomic(path, encode_png(image));
}

inline void save_jpeg(const std::filesystem::path& path, const Image& image, int quality = 95) {
  detail::check_encodable(image, path);
  write_file_atomic(path, encode_jpeg(image, quality));
}

// Bilinear resampling with half-pixel centres: source coordinate = (dst + 0.5) * in/out - 0.5,
// clamped at the borders. This is OpenCV's INTER_LINEAR and TensorFlow's resize(bilinear,
// half_pixel_centers=True) without antialiasing (align_corners=false in PyTorch terms).
inline Image resize_bilinear(const Image& src, int height, int width) {
  if (height <= 0 || width <= 0)
    fail_argument("resize_bilinear: target size must be positive, got ", height, "x", width);
  if (src.empty()) fail_argument("resize_bilinear: source image is empty");
  struct Tap {
    int i0, i1;
    float w1;  // weight of i1; i0 gets 1 - w1
  };
  auto taps = [](int in, int out) {
    std::vector<Tap> t(static_cast<std::size_t>(out));
    const double scale = static_cast<double>(in) / out;
    for (int o = 0; o < out; ++o) {
      const double s = std::max(0.0, (o + 0.5) * scale - 0.5);
      const int i0 = std::min(static_cast<int>(s), in - 1);
      const int i1 = std::min(i0 + 1, in - 1);
      t[static_cast<std::size_t>(o)] = {i0, i1, static_cast<float>(s - i0)};
    }
    return t;
  };
  const std::vector<Tap> ty = taps(src.height, height), tx = taps(src.width, width);
  const int c = src.channels;
  Image dst(height, width, c);
  for (int y = 0; y < height; ++y) {
    const Tap& a = ty[static_cast<std::size_t>(y)];
    const float* row0 = &src.data[static_cast<std::size_t>(a.i0) * src.width * c];
    const float* row1 = &src.data[static_cast<std::size_t>(a.i1) * src.width * c];
    float* out = &dst.data[static_cast<std::size_t>(y) * width * c];
    for (int x = 0; x < width; ++x) {
      const Tap& b = tx[static_cast<std::size_t>(x)];
      for (int k = 0; k < c; ++k) {
        const float top = row0[b.i0 * c + k] * (1 - b.w1) + row0[b.i1 * c + k] * b.w1;
        const float bottom = row1[b.i0 * c + k] * (1 - b.w1) + row1[b.i1 * c + k] * b.w1;
        out[x * c + k] = top * (1 - a.w1) + bottom * a.w1;
      }
    }
  }
  return dst;
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
  for (std::size_t p = 0; p < image.pixels(); ++p) {
    const float m = std::clamp(mask.data[p], 0.0f, 1.0f) * alpha;
    for (int k = 0; k < 3; ++k) {
      const float v = image.data[p * image.channels + (image.channels == 3 ? k : 0)];
      out.data[p * 3 + k] = v * (1 - m) + colour[static_cast<std::size_t>(k)] * m;
    }
  }
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

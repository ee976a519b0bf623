#pragma once
// Model weights files (.weights): save_weights / load_weights / read_weights_header.
//
// Format, version 1 (also in docs/weights-format.md). Every integer is an unsigned 32-bit
// little-endian value, written byte by byte so files are identical on every host
// (binary_codec.hpp):
//
//   offset  size  field
//   0       8     magic "USRNNW\0\0"
//   8       4     format version = 1
//   12      4     model-name length L, then L bytes of the model name (UTF-8, no terminator)
//   ...     4     tensor count T
//   then T times, in the model's parameters() order:
//           4     tensor-name length K, then K bytes of the name (e.g. "enc1.conv_a.weight")
//           4     rank = 4
//           16    dims N, C, H, W
//           4*NCHW float32 values, IEEE 754 little-endian, NCHW order
//   last    4     CRC-32 (zlib's, see crc32.hpp) of every byte before it
//
// Loading reads and validates the whole file (magic, version, structure, checksum, model name,
// tensor count, every tensor's name and shape, every value finite) before it touches the model, so
// a failed load leaves the model exactly as it was. NaN and infinity are refused on saving and on
// loading alike: such weights only come from a diverged training and give meaningless outputs.
// Malformed files throw unetsrnn::FormatError; a file that cannot be opened or read throws
// std::runtime_error with the OS reason. Both name the file. Saving writes a temporary file and
// renames it (atomic_file.hpp).
#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "unetsrnn/core/device.hpp"
#include "unetsrnn/core/error.hpp"
#include "unetsrnn/io/atomic_file.hpp"
#include "unetsrnn/io/binary_codec.hpp"
#include "unetsrnn/io/crc32.hpp"
#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

inline constexpr char kWeightsMagic[8] = {'U', 'S', 'R', 'N', 'N', 'W', '\0', '\0'};
inline constexpr std::uint32_t kWeightsFormatVersion = 1;

struct WeightsTensorInfo {
  std::string name;
  Shape shape;
};

struct WeightsHeader {
  std::uint32_t version = 0;
  std::string model_name;
  std::vector<WeightsTensorInfo> tensors;
};

namespace detail {

// ---- parsing -----------------------------------------------------------------------------------

// A whole weights file in memory plus where each tensor's values start: the staging buffer that
// load_weights validates completely before copying into the model.
struct ParsedWeights {
  std::string bytes;
  WeightsHeader header;
  std::vector<std::size_t> data_offsets;  // per tensor, into `bytes`
};

inline std::string hex32(std::uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << std::setw(8) << std::setfill('0') << v;
  return os.str();
}

inline std::string more_bytes(std::uint64_t n) {
  return str_cat(n, n == 1 ? " more byte" : " more bytes");
}

inline std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

inline std::string read_whole_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error(str_cat("cannot read ", quoted(path), ": Is a directory"));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(str_cat("cannot open ", quoted(path), ": ", last_os_error(errno)));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad())
    throw std::runtime_error(str_cat("cannot read ", quoted(path), ": ", last_os_error(errno)));
  return bytes;
}

// Bounds-checked little-endian reader; every shortfall is reported as truncation of `what`.
class WeightsReader {
 public:
  WeightsReader(const std::filesystem::path& path, const std::string& bytes)
      : path_(path),
        data_(reinterpret_cast<const unsigned char*>(bytes.data())),
        size_(bytes.size()) {}

  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return size_ - pos_; }

  const unsigned char* take(std::size_t count, const std::string& what) {
    if (count > remaining())
      fail_format(quoted(path_), ": truncated (file ends at byte ", size_, ", ", what, " needs ",
                  more_bytes(count - remaining()), ")");
    const unsigned char* p = data_ + pos_;
    pos_ += count;
    return p;
  }
  std::uint32_t u32(const std::string& what) { return get_u32_le(take(4, what)); }
  std::string string(const std::string& length_what, const std::string& what) {
    const std::uint32_t length = u32(length_what);
    return std::string(reinterpret_cast<const char*>(take(length, what)), length);
  }

 private:
  const std::filesystem::path& path_;
  const unsigned char* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

inline std::string printable_bytes(const unsigned char* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// The first non-finite float (NaN or infinity) among `count` little-endian values, or count.
inline std::size_t first_non_finite(const unsigned char* values, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    if ((get_u32_le(values + 4 * i) & 0x7F800000u) == 0x7F800000u) return i;
  return count;
}
inline std::size_t first_non_finite(const float* values, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) return i;
  return count;
}
inline std::string non_finite_value(float v) {
  return std::isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity";
}

// Reads and validates everything that does not depend on a model: magic, version, structure,
// checksum, finite values, and that nothing follows the checksum. `path` names the file in errors.
inline ParsedWeights parse_weights(std::string file_bytes, const std::filesystem::path& path) {
  ParsedWeights parsed;
  parsed.bytes = std::move(file_bytes);
  const std::string& bytes = parsed.bytes;
  WeightsReader reader(path, bytes);
  WeightsHeader& header = parsed.header;

  const std::size_t magic_size = sizeof(kWeightsMagic);
  const std::size_t magic_seen = std::min(bytes.size(), magic_size);
  if (std::memcmp(bytes.data(), kWeightsMagic, magic_seen) != 0)
    fail_format(quoted(path), ": not a unetsrnn weights file (starts with \"",
                printable_bytes(reinterpret_cast<const unsigned char*>(bytes.data()), magic_seen),
                "\", expected \"USRNNW\\x00\\x00\")");
  reader.take(magic_size, "the magic \"USRNNW\"");

  header.version = reader.u32("the format version");
  if (header.version != kWeightsFormatVersion)
    fail_format(quoted(path), ": format version ", header.version,
                ", but this build reads version ", kWeightsFormatVersion);

  header.model_name = reader.string("the model-name length", "the model name");
  const std::uint32_t count = reader.u32("the tensor count");
  // Each tensor takes at least 28 bytes, which bounds the reservation for a corrupt count.
  header.tensors.reserve(std::min<std::size_t>(count, reader.remaining() / 28));
  parsed.data_offsets.reserve(header.tensors.capacity());

  for (std::uint32_t t = 0; t < count; ++t) {
    WeightsTensorInfo info;
    info.name =
        reader.string(str_cat("the name length of tensor ", t), str_cat("the name of tensor ", t));
    const std::string label = str_cat("tensor ", t, " '", info.name, "'");
    const std::uint32_t rank = reader.u32("the rank of " + label);
    if (rank != 4)
      fail_format(quoted(path), ": ", label, " has rank ", rank, ", expected 4 (NCHW)");
    std::uint32_t dims[4];
    for (std::uint32_t& d : dims) {
      d = reader.u32("the shape of " + label);
      if (d > static_cast<std::uint32_t>(INT_MAX))
        fail_format(quoted(path), ": ", label, " has dimension ", d, ", larger than ", INT_MAX);
    }
    info.shape = Shape{static_cast<int>(dims[0]), static_cast<int>(dims[1]),
                       static_cast<int>(dims[2]), static_cast<int>(dims[3])};
    if (std::find(std::begin(dims), std::end(dims), 0u) != std::end(dims))
      fail_format(quoted(path), ": ", label, " has shape ", info.shape.str(),
                  "; every dimension must be at least 1 (the file is corrupt)");
    // Saturating, so a corrupt shape cannot overflow into a small, plausible size.
    std::uint64_t byte_count = 4;
    for (std::uint32_t d : dims)
      byte_count = byte_count > UINT64_MAX / d ? UINT64_MAX : byte_count * d;
    if (byte_count > reader.remaining())
      fail_format(quoted(path), ": truncated (file ends at byte ", bytes.size(), ", ", label,
                  " with shape ", info.shape.str(), " needs ",
                  more_bytes(byte_count - reader.remaining()), ")");
    parsed.data_offsets.push_back(reader.position());
    reader.take(static_cast<std::size_t>(byte_count), label);
    header.tensors.push_back(std::move(info));
  }

  const std::size_t checked_size = reader.position();
  const std::uint32_t stored_crc = reader.u32("the CRC32 trailer");
  const std::uint32_t actual_crc = crc32(bytes.data(), checked_size);
  if (stored_crc != actual_crc)
    fail_format(quoted(path), ": checksum mismatch (stored CRC32 ", hex32(stored_crc),
                ", computed ", hex32(actual_crc), "); the file is corrupt");
  if (reader.remaining() != 0)
    fail_format(quoted(path), ": ", reader.remaining(),
                " unexpected bytes after the CRC32 trailer");

  // Checked after the checksum: a NaN here was written so, not a corruption.
  for (std::size_t t = 0; t < header.tensors.size(); ++t) {
    const unsigned char* values =
        reinterpret_cast<const unsigned char*>(bytes.data()) + parsed.data_offsets[t];
    const std::size_t n = header.tensors[t].shape.size();
    const std::size_t bad = first_non_finite(values, n);
    if (bad != n)
      fail_format(quoted(path), ": tensor ", t, " '", header.tensors[t].name, "' holds ",
                  non_finite_value(std::bit_cast<float>(get_u32_le(values + 4 * bad))),
                  " at index ", bad, " of ", n,
                  "; non-finite weights are refused (they come from a diverged training)");
  }
  return parsed;
}

inline ParsedWeights parse_weights_file(const std::filesystem::path& path) {
  return parse_weights(read_whole_file(path), path);
}

// ---- models ------------------------------------------------------------------------------------

template <class List>
struct param_list_device;
template <class Dev>
struct param_list_device<ParamList<Dev>> {
  using type = Dev;
};

// parameters() only gathers pointers to the model's own Params, so calling it on a model that is
// declared const is harmless; models may not provide a const overload.
template <class Model>
auto model_parameters(const Model& model) {
  if constexpr (requires { model.parameters(); })
    return model.parameters();
  else
    return const_cast<Model&>(model).parameters();
}

template <class Model>
using model_device_t =
    typename param_list_device<decltype(model_parameters(std::declval<const Model&>()))>::type;

}  // namespace detail

// Writes `model`'s name and parameters to `path` (atomically: a temporary file, then a rename).
// Models on another device (Cuda) are copied to the host one tensor at a time; the file is the
// same, so weights move freely between devices.
template <class Model>
void save_weights(const Model& model, const std::filesystem::path& path) {
  using Dev = detail::model_device_t<Model>;
  const auto params = detail::model_parameters(model);
  const std::string name = model.name();
  Tensor<Cpu> staging;  // host copy of one device tensor (unused for Cpu models)
  write_file_atomic(path, [&](std::ostream& out) {
    detail::ChecksummedWriter writer(out);
    writer.bytes(kWeightsMagic, sizeof(kWeightsMagic));
    writer.u32(kWeightsFormatVersion);
    writer.string(name);
    writer.u32(static_cast<std::uint32_t>(params.size()));
    for (const auto& [param_name, param] : params) {
      const Tensor<Cpu>* host = nullptr;
      if constexpr (std::is_same_v<Dev, Cpu>) {
        host = &param->value;
      } else {
        param->value.copy_to_host(staging);
        host = &staging;
      }
      const std::size_t bad = detail::first_non_finite(host->data(), host->size());
      if (bad != host->size())
        throw std::runtime_error(
            str_cat("cannot save weights to ", detail::quoted(path), ": tensor '", param_name,
                    "' holds ", detail::non_finite_value(host->data()[bad]), " at index ", bad,
                    " of ", host->size(), " (a diverged model); nothing was written"));
      const Shape s = host->shape();
      writer.string(param_name);
      writer.u32(4);
      for (int d : {s.n, s.c, s.h, s.w}) writer.u32(static_cast<std::uint32_t>(d));
      writer.floats(host->data(), host->size());
    }
    writer.crc_trailer();
  });
}

// The model name and the tensor list of a weights file, fully validated (checksum included).
inline WeightsHeader read_weights_header(const std::filesystem::path& path) {
  return detail::parse_weights_file(path).header;
}

namespace detail {

// Copies validated weights into `model` after checking they are the model's; on any error the
// model is left unchanged.
template <class Model>
void load_parsed_weights(Model& model, const ParsedWeights& parsed,
                         const std::filesystem::path& path) {
  using Dev = model_device_t<Model>;
  const WeightsHeader& header = parsed.header;
  const std::string model_name = model.name();
  if (header.model_name != model_name)
    fail_format(quoted(path), ": written for model '", header.model_name, "', not '", model_name,
                "'");

  const auto params = model.parameters();
  const std::size_t common = std::min(params.size(), header.tensors.size());
  for (std::size_t t = 0; t < common; ++t) {
    const WeightsTensorInfo& in_file = header.tensors[t];
    const Shape model_shape = params[t].param->value.shape();
    if (in_file.name != params[t].name || !(in_file.shape == model_shape))
      fail_format(quoted(path), ": tensor ", t, " is '", in_file.name, "' with shape ",
                  in_file.shape.str(), " but the model has '", params[t].name, "' with shape ",
                  model_shape.str());
  }
  if (header.tensors.size() != params.size()) {
    const bool file_short = header.tensors.size() < params.size();
    fail_format(quoted(path), ": has ", header.tensors.size(), " tensors but model '", model_name,
                "' has ", params.size(), " (first ", file_short ? "missing: '" : "extra: '",
                file_short ? params[common].name : header.tensors[common].name, "')");
  }

  // Nothing below can fail on the CPU: the file is fully validated and every destination has its
  // shape. Other devices decode into a host tensor and upload it (only a device error can stop
  // that half way).
  Tensor<Cpu> staging;
  for (std::size_t t = 0; t < params.size(); ++t) {
    const unsigned char* values =
        reinterpret_cast<const unsigned char*>(parsed.bytes.data()) + parsed.data_offsets[t];
    auto& value = params[t].param->value;
    if constexpr (std::is_same_v<Dev, Cpu>) {
      decode_floats(values, value.data(), value.size());
    } else {
      staging.resize(value.shape());
      decode_floats(values, staging.data(), staging.size());
      value.copy_from_host(staging);
    }
  }
}

}  // namespace detail

// Replaces `model`'s parameter values with those in `path`. Everything is checked first; on any
// error the model is left unchanged.
template <class Model>
void load_weights(Model& model, const std::filesystem::path& path) {
  detail::load_parsed_weights(model, detail::parse_weights_file(path), path);
}

}  // namespace unetsrnn

#pragma once
// The binary codec of the library's file formats (.weights: io/weights.hpp, .optim:
// train/optim.hpp): unsigned integers and IEEE 754 bit patterns stored little-endian, byte by
// byte, so a file is the same on every host; and a writer that keeps the CRC-32 (crc32.hpp) of all
// it wrote, for the trailer both formats end with. The readers stay with their formats: each
// names what is truncated in its own terms.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string_view>

#include "unetsrnn/io/crc32.hpp"

namespace unetsrnn::detail {

// The low `size` bytes of v, least significant first.
inline void put_le(unsigned char* out, std::uint64_t v, int size) {
  for (int i = 0; i < size; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline std::uint64_t get_le(const unsigned char* in, int size) {
  std::uint64_t v = 0;
  for (int i = 0; i < size; ++i) v |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  return v;
}
inline void put_u32_le(unsigned char* out, std::uint32_t v) { put_le(out, v, 4); }
inline std::uint32_t get_u32_le(const unsigned char* in) {
  return static_cast<std::uint32_t>(get_le(in, 4));
}

// `count` floats from/to their little-endian bytes (a copy on little-endian hosts).
inline void encode_floats(const float* in, unsigned char* out, std::size_t count) {
  if constexpr (std::endian::native == std::endian::little) {
    if (count) std::memcpy(out, in, count * sizeof(float));
  } else {
    for (std::size_t i = 0; i < count; ++i)
      put_u32_le(out + 4 * i, std::bit_cast<std::uint32_t>(in[i]));
  }
}
inline void decode_floats(const unsigned char* in, float* out, std::size_t count) {
  if constexpr (std::endian::native == std::endian::little) {
    if (count) std::memcpy(out, in, count * sizeof(float));
  } else {
    for (std::size_t i = 0; i < count; ++i) out[i] = std::bit_cast<float>(get_u32_le(in + 4 * i));
  }
}

// Writes to a stream while keeping the CRC-32 of everything written so far.
class ChecksummedWriter {
 public:
  explicit ChecksummedWriter(std::ostream& out) : out_(out) {}
  void bytes(const void* data, std::size_t size) {
    crc_ = crc32_update(crc_, data, size);
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  void u32(std::uint32_t v) { put(v, 4); }
  void u64(std::uint64_t v) { put(v, 8); }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  // A u32 length, then the bytes.
  void string(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  void floats(const float* data, std::size_t count) {
    if constexpr (std::endian::native == std::endian::little) {
      bytes(data, count * sizeof(float));
    } else {
      constexpr std::size_t kChunk = 4096;
      unsigned char buffer[kChunk * 4];
      for (std::size_t start = 0; start < count; start += kChunk) {
        const std::size_t n = std::min(kChunk, count - start);
        encode_floats(data + start, buffer, n);
        bytes(buffer, 4 * n);
      }
    }
  }
  std::uint32_t crc() const { return crc_; }
  // The trailer: the CRC-32 of every byte written before it.
  void crc_trailer() { u32(crc_); }

 private:
  void put(std::uint64_t v, int size) {
    unsigned char b[8];
    put_le(b, v, size);
    bytes(b, static_cast<std::size_t>(size));
  }
  std::ostream& out_;
  std::uint32_t crc_ = 0;
};

}  // namespace unetsrnn::detail

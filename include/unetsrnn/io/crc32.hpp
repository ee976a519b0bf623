#pragma once
// CRC-32 as in zlib / PNG / IEEE 802.3: reflected polynomial 0xEDB88320, initial value and final
// XOR 0xFFFFFFFF. crc32_update is incremental, so a file can be checksummed while it streams:
//   uint32_t c = 0; c = crc32_update(c, a, na); c = crc32_update(c, b, nb);  // == crc32(a ++ b)
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace unetsrnn {

namespace detail {
inline constexpr std::array<std::uint32_t, 256> make_crc32_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
inline constexpr std::array<std::uint32_t, 256> crc32_table = make_crc32_table();
}  // namespace detail

// Continues `crc` (the value returned for the bytes so far; 0 for none) over `size` more bytes.
inline std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint32_t c = crc ^ 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) c = detail::crc32_table[(c ^ bytes[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

inline std::uint32_t crc32(const void* data, std::size_t size) {
  return crc32_update(0, data, size);
}
inline std::uint32_t crc32(std::string_view bytes) { return crc32(bytes.data(), bytes.size()); }

}  // namespace unetsrnn

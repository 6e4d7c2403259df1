/// \file
/// \brief CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) with zlib's "running CRC"
/// convention, as MAILBOX-FORMAT.md §4 specifies: `crc32c_update(c, buf)` inverts before and
/// after, so `update(update(c, a), b) == update(c, a‖b)`, `update(c, {}) == c` and
/// `update(0, "123456789") == 0xE3069283`. Table-driven, slicing by 8; portable C++.
#pragma once

#include <vfolder/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

VFOLDER_BEGIN_NAMESPACE
namespace mmap_detail {

struct crc32c_tables {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    constexpr crc32c_tables() {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? (c >> 1) ^ 0x82F63B78U : c >> 1;
            t[0][i] = c;
        }
        for (std::size_t i = 0; i < 256; ++i)
            for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFU];
    }
};

inline constexpr crc32c_tables crc32c_table{};

/// \brief Continues the CRC-32C `crc` over `data` (zlib convention: start with 0).
[[nodiscard]] inline std::uint32_t crc32c_update(std::uint32_t crc,
                                                 std::span<std::byte const> data) noexcept {
    auto const& t = crc32c_table.t;
    std::uint32_t c = ~crc;
    std::byte const* p = data.data();
    std::size_t n = data.size();
    while (n >= 8) {
        std::uint32_t const lo = c ^ (static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                                      static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24);
        c = t[7][lo & 0xFFU] ^ t[6][(lo >> 8) & 0xFFU] ^ t[5][(lo >> 16) & 0xFFU] ^ t[4][lo >> 24] ^
            t[3][static_cast<std::uint8_t>(p[4])] ^ t[2][static_cast<std::uint8_t>(p[5])] ^
            t[1][static_cast<std::uint8_t>(p[6])] ^ t[0][static_cast<std::uint8_t>(p[7])];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) c = (c >> 8) ^ t[0][(c ^ static_cast<std::uint32_t>(*p++)) & 0xFFU];
    return ~c;
}

} // namespace mmap_detail
VFOLDER_END_NAMESPACE

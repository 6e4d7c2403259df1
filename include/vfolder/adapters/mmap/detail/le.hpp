/// \file
/// \brief Little-endian encode/decode through memcpy (never overlay structs on mapped
/// memory: MAILBOX-FORMAT.md §4). Callers bound-check offsets before calling.
#pragma once

#include <vfolder/config.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

VFOLDER_BEGIN_NAMESPACE
namespace mmap_detail {

template <class T>
[[nodiscard]] constexpr T byte_swap(T v) noexcept {
    using U = std::make_unsigned_t<T>;
    U u = static_cast<U>(v), r = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        auto const rw = static_cast<std::uintmax_t>(r), uw = static_cast<std::uintmax_t>(u);
        r = static_cast<U>((rw << 8) | (uw & 0xFFU)); // in uintmax_t: no promotion to int
        u = static_cast<U>(uw >> 8);
    }
    return static_cast<T>(r);
}

template <class T>
[[nodiscard]] inline T load_le(std::byte const* p) noexcept {
    static_assert(std::is_integral_v<T>);
    T v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) v = byte_swap(v);
    return v;
}

template <class T>
inline void store_le(std::byte* p, T v) noexcept {
    static_assert(std::is_integral_v<T>);
    if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) v = byte_swap(v);
    std::memcpy(p, &v, sizeof v);
}

} // namespace mmap_detail
VFOLDER_END_NAMESPACE

/// \file
/// \brief `seq_range<T>`: one closed interval [first, last] of unsigned integers.
#pragma once

#include <vfolder/version.hpp>

#include <concepts>

VFOLDER_BEGIN_NAMESPACE

/// \brief A closed interval `[first, last]`; valid when `first <= last`.
///
/// It is an aggregate so that `{3, 7}` spells a range. `length()` is `last - first + 1`,
/// which wraps to 0 for the full domain `[0, max]` (vfolder never stores that range).
template <std::unsigned_integral T>
struct seq_range {
    T first;
    T last;

    /// \brief Number of values in the range (`last - first + 1`, modulo 2^bits).
    [[nodiscard]] constexpr T length() const noexcept { return static_cast<T>(last - first + 1u); }
    /// \brief Whether `v` lies in `[first, last]`.
    [[nodiscard]] constexpr bool contains(T v) const noexcept { return first <= v && v <= last; }

    friend constexpr bool operator==(seq_range const&, seq_range const&) = default;
};

VFOLDER_END_NAMESPACE

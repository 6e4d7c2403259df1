/// \file
/// \brief `interpolation_lower_bound`: lower_bound over strictly increasing integer keys
/// that are mostly dense (virtual UIDs), in O(1) probes when they are dense.
#pragma once

#include <vfolder/config.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>

VFOLDER_BEGIN_NAMESPACE
namespace detail {

/// \brief The first element of `[first, last)` whose key is not below `k` (`last` if
/// none), where `key(x)` is an unsigned integer of at most 32 bits, strictly increasing.
///
/// A few interpolation guesses first (the element with key k is at index k - key(front)
/// when the keys are dense: one probe; O(log log n) expected probes over evenly spread
/// holes), then binary search of what is left: O(log n) in the worst case. Random access
/// iterators.
template <class It, class Key>
[[nodiscard]] It interpolation_lower_bound(It first, It last, std::uint64_t k, Key key) {
    // Invariant: keys before lo are below k; the key at hi (if any) is not: the answer is
    // in [lo, hi].
    auto lo = first, hi = last;
    for (int guesses = 0; guesses < 4 && hi - lo > 8; ++guesses) {
        std::uint64_t const a = key(*lo), z = key(*(hi - 1));
        if (k <= a) return lo;
        if (k > z) return hi;
        // a < k <= z: the answer is in (lo, hi - 1].
        auto const span = static_cast<std::uint64_t>(hi - 1 - lo);
        auto const step = static_cast<std::ptrdiff_t>((k - a) * span / (z - a)); // both factors < 2^32
        auto const i = lo + std::max<std::ptrdiff_t>(step, 1);
        std::uint64_t const ki = key(*i);
        if (ki == k) return i;
        if (ki < k) lo = i + 1;
        else hi = i; // key(*i) > k: the answer is at or before i
    }
    return std::partition_point(lo, hi, [&](auto const& x) { return std::uint64_t{key(x)} < k; });
}

} // namespace detail
VFOLDER_END_NAMESPACE

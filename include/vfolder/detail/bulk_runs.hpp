// Turning an unsorted batch of unsigned values into sorted, coalesced runs.
//
// Used by seq_range_set's bulk insert. Two strategies, chosen by density:
//  - dense batches (span of the values at most 128 bits per value): mark a bitmap and
//    read the runs back with count-trailing-zeros; O(n + span/64), duplicates free;
//  - sparse batches: LSD radix sort with 8-bit digits that skips digits all values share;
//    O(n * digits). Small batches use std::sort, whose constant wins below ~256 values.
#pragma once

#include <vfolder/version.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

VFOLDER_BEGIN_NAMESPACE
namespace detail {

template <std::unsigned_integral T>
constexpr std::size_t radix_digit(T x, std::size_t d) noexcept {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(x) >> (8 * d)) & 0xffu);
}

template <std::unsigned_integral T>
void radix_sort(std::span<T> v) {
    constexpr std::size_t digits = sizeof(T);
    std::size_t const n = v.size();
    std::vector<std::array<std::size_t, 256>> hist(digits, std::array<std::size_t, 256>{});
    for (T x : v)
        for (std::size_t d = 0; d < digits; ++d)
            ++hist[d][radix_digit(x, d)];
    std::unique_ptr<T[]> buf(new T[n]);
    T* src = v.data();
    T* dst = buf.get();
    for (std::size_t d = 0; d < digits; ++d) {
        auto& h = hist[d];
        // A digit that every value shares does not reorder anything: skip the pass.
        if (h[radix_digit(src[0], d)] == n) continue;
        std::size_t sum = 0;
        for (auto& c : h) {
            std::size_t const t = c;
            c = sum;
            sum += t;
        }
        for (std::size_t i = 0; i < n; ++i) {
            T const x = src[i];
            dst[h[radix_digit(x, d)]++] = x;
        }
        std::swap(src, dst);
    }
    if (src != v.data()) std::copy(src, src + n, v.data());
}

// Calls emit(first, last) for each maximal run of consecutive values of `v`, in
// ascending order, duplicates ignored. `v` is reordered (sorted) as a side effect
// unless the bitmap path is taken.
template <std::unsigned_integral T, class Emit>
void sorted_runs(std::span<T> v, Emit&& emit) {
    if (v.empty()) return;
    auto const [mn_it, mx_it] = std::minmax_element(v.begin(), v.end());
    T const mn = *mn_it;
    T const mx = *mx_it;
    std::uint64_t const span_bits = static_cast<std::uint64_t>(mx - mn) + 1u;
    // span_bits wraps to 0 for a 64-bit T holding both 0 and max: not dense.
    if (v.size() >= 64 && span_bits != 0 && span_bits / 128u <= v.size()) {
        std::size_t const words = static_cast<std::size_t>((span_bits + 63u) / 64u);
        std::vector<std::uint64_t> bits(words, 0);
        for (T x : v) {
            auto const off = static_cast<std::uint64_t>(x - mn);
            bits[static_cast<std::size_t>(off >> 6)] |= std::uint64_t{1} << (off & 63u);
        }
        // Walk the bitmap: find a set bit (run start), then the next clear bit (run end).
        std::size_t w = 0;
        std::uint64_t cur = bits[0];
        while (true) {
            while (cur == 0) {
                if (++w == words) return;
                cur = bits[w];
            }
            auto const tz = static_cast<unsigned>(std::countr_zero(cur));
            std::uint64_t const start = w * 64u + tz;
            // Ones from bit tz upward: count them through the inverted word.
            std::uint64_t inv = ~cur & (~std::uint64_t{0} << tz);
            while (inv == 0) {
                if (++w == words) {
                    emit(static_cast<T>(mn + start), mx);
                    return;
                }
                inv = ~bits[w];
            }
            auto const tz2 = static_cast<unsigned>(std::countr_zero(inv));
            std::uint64_t const end = w * 64u + tz2; // first clear bit
            emit(static_cast<T>(mn + start), static_cast<T>(mn + (end - 1u)));
            cur = bits[w] & (tz2 == 63 ? std::uint64_t{0} : (~std::uint64_t{0} << (tz2 + 1)));
            // Bits at and below tz2 are consumed; tz2 itself is clear.
        }
    }
    if (v.size() < 256)
        std::sort(v.begin(), v.end());
    else
        radix_sort(v);
    T first = v[0];
    T last = v[0];
    for (std::size_t i = 1; i < v.size(); ++i) {
        T const x = v[i];
        if (x == last || x == static_cast<T>(last + 1u)) {
            last = x;
        } else {
            emit(first, last);
            first = last = x;
        }
    }
    emit(first, last);
}

} // namespace detail
VFOLDER_END_NAMESPACE

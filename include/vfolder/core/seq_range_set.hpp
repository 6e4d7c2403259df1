/// \file
/// \brief `seq_range_set`: a set of unsigned integers stored as sorted closed ranges.
///
/// Synopsis
/// \code
///   seq_range_set<T = uint32_t, Storage = boost::container::vector<seq_range<T>>>
///     add(v) -> bool(was present)        remove(v) -> bool(was present)
///     add_range(a, b) -> count added     remove_range(a, b) -> count removed
///     merge(s) / merge_n(s, n) -> added  remove_set(s) / intersect(s) -> removed
///     insert(values) -> added            (bulk, unsorted input)
///     contains(v)  have_common(s)  count()  nth(n)  cursor()  invert(lo, hi)
///     ranges()  values()  begin()/end() (over ranges)  check_invariants()
/// \endcode
///
/// Invariant: the ranges are non-empty (`first <= last`), sorted by `first`, disjoint and
/// non-adjacent (`next.first >= prev.last + 2`), and the set is never the whole domain
/// `[0, max]` (its size, 2^bits, would not fit `size_type`). `count()` is cached.
///
/// The semantics (return values in particular) are those of Dovecot's seq_range_array,
/// without its overlapping-range bug and without storing inverted ranges; see docs/core.md.
#pragma once

#include <vfolder/config.hpp>
#include <vfolder/core/seq_range.hpp>
#include <vfolder/detail/bulk_runs.hpp>

#include <vfolder/detail/boost_vector.hpp>
#include <range/v3/range/concepts.hpp>
#include <range/v3/view/facade.hpp>
#include <range/v3/view/subrange.hpp>

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief What `seq_range_set` needs from its storage: a contiguous, growable sequence of
/// `seq_range<T>` (`boost::container::vector`, `small_vector`, `std::vector` all qualify).
template <class S, class T>
concept seq_range_storage =
    std::same_as<typename S::value_type, seq_range<T>> && std::default_initializable<S> &&
    std::copyable<S> &&
    requires(S& s, S const& cs, std::size_t n, seq_range<T> r, seq_range<T> const* p) {
        { cs.data() } -> std::convertible_to<seq_range<T> const*>;
        { s.data() } -> std::convertible_to<seq_range<T>*>;
        { cs.size() } -> std::convertible_to<std::size_t>;
        s.push_back(r);
        s.insert(s.begin(), r);
        s.insert(s.end(), p, p);
        s.erase(s.begin(), s.end());
        s.resize(n);
        s.reserve(n);
        s.clear();
        s.swap(s);
    };

/// \brief A set of unsigned integers kept as sorted, disjoint, non-adjacent closed ranges.
///
/// Ascending insertion (`add` of increasing values, `add_range` above the last range) is
/// O(1) amortised. Point operations in the middle are O(log R) plus a memmove of the tail
/// (R = number of ranges). Set algebra (merge, remove_set, intersect, have_common) is a
/// single linear merge pass, O(R + R'), touching only the part of this set that the other
/// set spans. `count()` is O(1).
///
/// Preconditions (checked with `VFOLDER_ASSERT`, see config.hpp) and the release behaviour
/// when the check is compiled out:
///  - a range argument `(a, b)` needs `a <= b`; otherwise the call changes nothing, returns 0;
///  - no operation may make the set the whole domain `[0, max]`; such a call changes
///    nothing and returns 0 / false;
///  - `invert(lo, hi)` needs every member inside `[lo, hi]`; members outside are dropped.
template <std::unsigned_integral T = std::uint32_t,
          class Storage = boost::container::vector<seq_range<T>>>
class seq_range_set {
    static_assert(seq_range_storage<Storage, T>,
                  "Storage must be a contiguous growable sequence of seq_range<T>");

public:
    using value_type = T;
    using range_type = seq_range<T>;
    /// Counts of values. The whole domain is never stored, so every count fits in T.
    using size_type = T;
    using storage_type = Storage;
    using const_iterator = range_type const*;
    using iterator = const_iterator;

    static constexpr T max_value = std::numeric_limits<T>::max();

    class nth_cursor;
    class values_view;

    seq_range_set() = default;

    /// \brief The union of the given ranges, e.g. `seq_range_set{{1, 3}, {7, 7}}`.
    /// Precondition: each `first <= last`.
    seq_range_set(std::initializer_list<range_type> rs) {
        for (auto const& r : rs) add_range(r.first, r.last);
    }

    /// \brief The set of the values of `values`, any order, duplicates allowed.
    template <ranges::input_range R>
        requires std::convertible_to<ranges::range_reference_t<R>, T>
    [[nodiscard]] static seq_range_set from_values(R&& values) {
        seq_range_set s;
        s.insert(std::forward<R>(values));
        return s;
    }

    // ---------------------------------------------------------------- observers

    [[nodiscard]] bool empty() const noexcept { return r_.size() == 0; }
    /// \brief Number of values in the set. O(1).
    [[nodiscard]] size_type count() const noexcept { return count_; }
    /// \brief Number of stored ranges.
    [[nodiscard]] std::size_t range_count() const noexcept { return r_.size(); }

    /// \brief Iteration over the ranges (the set is a contiguous range of `seq_range<T>`).
    [[nodiscard]] const_iterator begin() const noexcept { return r_.data(); }
    [[nodiscard]] const_iterator end() const noexcept { return r_.data() + r_.size(); }
    /// \brief The i-th range. Precondition: `i < range_count()`.
    [[nodiscard]] range_type const& operator[](std::size_t i) const noexcept {
        return r_.data()[i];
    }
    /// \brief First / last range. Precondition: `!empty()`.
    [[nodiscard]] range_type const& front() const noexcept { return r_.data()[0]; }
    [[nodiscard]] range_type const& back() const noexcept { return r_.data()[r_.size() - 1]; }

    /// \brief A range-v3 view of the ranges.
    [[nodiscard]] ranges::subrange<const_iterator> ranges() const noexcept {
        return {begin(), end()};
    }
    /// \brief A range-v3 view of the values, ascending.
    [[nodiscard]] values_view values() const noexcept { return values_view{begin(), end()}; }

    /// \brief Calls `f(v)` for every value, ascending: the fastest way to visit them.
    template <class F>
    void for_each_value(F&& f) const {
        // Short ranges (the common case of sparse sets) are expanded into a buffer with a
        // fixed-count loop, then visited in one predictable loop: the lengths of the
        // ranges are unpredictable, so a loop per range mispredicts about once a range.
        constexpr std::size_t chunk = 8;
        constexpr std::size_t cap = 256;
        T buf[cap + chunk];
        std::size_t k = 0;
        auto const flush = [&] {
            for (std::size_t i = 0; i < k; ++i) f(buf[i]);
            k = 0;
        };
        for (auto const& r : *this) {
            auto const len_m1 = static_cast<std::size_t>(r.last - r.first);
            if (len_m1 < chunk) {
                for (std::size_t i = 0; i < chunk; ++i) buf[k + i] = static_cast<T>(r.first + i);
                k += len_m1 + 1;
                if (k >= cap) flush();
            } else {
                flush();
                for (T v = r.first;; ++v) {
                    f(v);
                    if (v == r.last) break;
                }
            }
        }
        flush();
    }

    [[nodiscard]] storage_type const& storage() const noexcept { return r_; }

    /// \brief Whether `v` is in the set. O(log R).
    [[nodiscard]] bool contains(T v) const noexcept {
        std::size_t const i = lower_by_last(v);
        return i < r_.size() && r_.data()[i].first <= v;
    }

    /// \brief Whether the two sets share a value. One linear pass, O(R + R').
    template <class S2>
    [[nodiscard]] bool have_common(seq_range_set<T, S2> const& other) const noexcept {
        auto a = begin(), ae = end();
        auto b = other.begin(), be = other.end();
        while (a != ae && b != be) {
            if (a->last < b->first)
                ++a;
            else if (b->last < a->first)
                ++b;
            else
                return true;
        }
        return false;
    }

    /// \brief The n-th smallest value (0-based), or nullopt when `n >= count()`. O(R);
    /// use `cursor()` for O(1) amortised sequential access.
    [[nodiscard]] std::optional<T> nth(size_type n) const noexcept { return cursor()(n); }

    /// \brief A cursor answering nth queries, O(1) amortised for non-decreasing `n`.
    [[nodiscard]] nth_cursor cursor() const noexcept { return nth_cursor{*this}; }

    /// \brief Whether the invariant holds (for tests and debug checks). O(R).
    [[nodiscard]] bool check_invariants() const noexcept {
        std::uint64_t total = 0;
        auto const* p = r_.data();
        for (std::size_t i = 0; i < r_.size(); ++i) {
            if (p[i].first > p[i].last) return false;
            if (i > 0 && (p[i - 1].last == max_value || p[i].first <= p[i - 1].last + 1u))
                return false;
            total += static_cast<std::uint64_t>(p[i].last - p[i].first) + 1u;
        }
        if (r_.size() == 1 && p[0].first == 0 && p[0].last == max_value) return false;
        if constexpr (sizeof(T) < sizeof(std::uint64_t)) {
            if (total != count_) return false;
        } else {
            if (static_cast<T>(total) != count_) return false;
        }
        return true;
    }

    friend bool operator==(seq_range_set const& a, seq_range_set const& b) noexcept {
        return a.count_ == b.count_ && std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

    // ---------------------------------------------------------------- modifiers

    void clear() noexcept {
        r_.clear();
        count_ = 0;
    }
    void reserve(std::size_t ranges) { r_.reserve(ranges); }
    void swap(seq_range_set& o) noexcept {
        r_.swap(o.r_);
        std::swap(count_, o.count_);
    }
    friend void swap(seq_range_set& a, seq_range_set& b) noexcept { a.swap(b); }

    /// \brief Adds `v`. Returns true if `v` was **already present**.
    /// Complexity: O(1) when `v` is at or beyond either end, else O(log R) + memmove.
    bool add(T v) {
        std::size_t const n = r_.size();
        range_type* p = r_.data();
        if (n == 0) {
            r_.push_back({v, v});
            count_ = 1;
            return false;
        }
        if (v > p[n - 1].last) {
            if (!room_for(1)) return false;
            if (v == p[n - 1].last + 1u)
                p[n - 1].last = v;
            else
                append(r_, {v, v});
            ++count_;
            return false;
        }
        if (v < p[0].first) {
            if (!room_for(1)) return false;
            if (v + 1u == p[0].first)
                p[0].first = v;
            else
                r_.insert(r_.begin(), range_type{v, v});
            ++count_;
            return false;
        }
        std::size_t const i = lower_by_last(v); // exists: v <= back().last
        if (p[i].first <= v) return true;
        if (!room_for(1)) return false;
        // Here p[i].first > v and (i == 0 or p[i-1].last < v); i == 0 is excluded above.
        bool const join_left = p[i - 1].last + 1u == v;
        bool const join_right = v + 1u == p[i].first;
        if (join_left && join_right) {
            p[i - 1].last = p[i].last;
            r_.erase(r_.begin() + static_cast<std::ptrdiff_t>(i),
                     r_.begin() + static_cast<std::ptrdiff_t>(i + 1));
        } else if (join_left) {
            p[i - 1].last = v;
        } else if (join_right) {
            p[i].first = v;
        } else {
            r_.insert(r_.begin() + static_cast<std::ptrdiff_t>(i), range_type{v, v});
        }
        ++count_;
        return false;
    }

    /// \brief Adds every value of `[a, b]`. Returns how many were not present before.
    /// Precondition: `a <= b`. Complexity: O(1) amortised above the last range, else
    /// O(log R) plus the memmove for the insert or the erase of swallowed ranges.
    size_type add_range(T a, T b) {
        if (a > b) [[unlikely]] {
            VFOLDER_ASSERT(a <= b, "seq_range_set::add_range: first > last");
            return 0;
        }
        size_type const len = static_cast<T>(b - a + 1u);
        if (len == 0) [[unlikely]] { // [0, max]
            VFOLDER_ASSERT(len != 0, "seq_range_set: the whole domain [0, max] is not storable");
            return 0;
        }
        std::size_t const n = r_.size();
        range_type* p = r_.data();
        if (n == 0 || a > p[n - 1].last) {
            if (!room_for(len)) return 0;
            if (n != 0 && a == p[n - 1].last + 1u)
                p[n - 1].last = b;
            else
                append(r_, {a, b});
            count_ = static_cast<T>(count_ + len);
            return len;
        }
        // Ranges [lo, hi) overlap or touch [a, b] and merge with it.
        std::size_t const lo = a == 0 ? 0 : lower_by_last(static_cast<T>(a - 1u));
        std::size_t const hi = b == max_value ? n : upper_by_first(static_cast<T>(b + 1u));
        if (lo >= hi) {
            if (!room_for(len)) return 0;
            r_.insert(r_.begin() + static_cast<std::ptrdiff_t>(lo), range_type{a, b});
            count_ = static_cast<T>(count_ + len);
            return len;
        }
        size_type covered = 0;
        for (std::size_t i = lo; i < hi; ++i) covered = static_cast<T>(covered + overlap(p[i], a, b));
        size_type const added = static_cast<T>(len - covered);
        if (!room_for(added)) return 0;
        p[lo].first = std::min(a, p[lo].first);
        p[lo].last = std::max(b, p[hi - 1].last);
        if (hi - lo > 1)
            r_.erase(r_.begin() + static_cast<std::ptrdiff_t>(lo + 1),
                     r_.begin() + static_cast<std::ptrdiff_t>(hi));
        count_ = static_cast<T>(count_ + added);
        return added;
    }

    /// \brief Removes `v`. Returns true if it was present. O(log R) + memmove on a split.
    bool remove(T v) {
        std::size_t const n = r_.size();
        if (n == 0) return false;
        range_type* p = r_.data();
        if (v > p[n - 1].last || v < p[0].first) return false;
        std::size_t const i = v == p[n - 1].last ? n - 1 : lower_by_last(v);
        range_type& r = p[i];
        if (r.first > v) return false;
        if (r.first == r.last) {
            r_.erase(r_.begin() + static_cast<std::ptrdiff_t>(i),
                     r_.begin() + static_cast<std::ptrdiff_t>(i + 1));
        } else if (v == r.first) {
            r.first = static_cast<T>(v + 1u);
        } else if (v == r.last) {
            r.last = static_cast<T>(v - 1u);
        } else {
            range_type const upper{static_cast<T>(v + 1u), r.last};
            r.last = static_cast<T>(v - 1u);
            r_.insert(r_.begin() + static_cast<std::ptrdiff_t>(i + 1), upper);
        }
        --count_;
        return true;
    }

    /// \brief Removes every value of `[a, b]`. Returns how many were present.
    /// Precondition: `a <= b`. Complexity: O(log R) + memmove.
    size_type remove_range(T a, T b) {
        if (a > b) [[unlikely]] {
            VFOLDER_ASSERT(a <= b, "seq_range_set::remove_range: first > last");
            return 0;
        }
        std::size_t const lo = lower_by_last(a);
        std::size_t const hi = upper_by_first(b);
        if (lo >= hi) return 0;
        range_type* p = r_.data();
        size_type removed = 0;
        for (std::size_t i = lo; i < hi; ++i) removed = static_cast<T>(removed + overlap(p[i], a, b));
        range_type keep[2];
        std::size_t k = 0;
        if (p[lo].first < a) keep[k++] = {p[lo].first, static_cast<T>(a - 1u)};
        if (p[hi - 1].last > b) keep[k++] = {static_cast<T>(b + 1u), p[hi - 1].last};
        replace(lo, hi, keep, k);
        count_ = static_cast<T>(count_ - removed);
        return removed;
    }

    /// \brief Adds every value of `src` (union). Returns how many were added.
    /// Complexity: one merge pass over `src` and the part of this set it spans.
    template <class S2>
    size_type merge(seq_range_set<T, S2> const& src) {
        if (src.empty()) return 0;
        if (empty()) {
            r_.insert(r_.end(), src.begin(), src.end());
            count_ = src.count();
            return count_;
        }
        if (static_cast<void const*>(&src) == static_cast<void const*>(this)) return 0;
        T const sf = src.front().first;
        T const sl = src.back().last;
        std::size_t const lo = sf == 0 ? 0 : lower_by_last(static_cast<T>(sf - 1u));
        std::size_t const n = r_.size();
        if (lo == n) { // everything of src lies above: append (coalescing the seam)
            // lo == n: every range ends below sf - 1, so nothing touches.
            if (!room_for(src.count())) return 0;
            r_.insert(r_.end(), src.begin(), src.end());
            count_ = static_cast<T>(count_ + src.count());
            return src.count();
        }
        std::size_t const hi = sl == max_value ? n : upper_by_first(static_cast<T>(sl + 1u));
        range_type const* a = r_.data() + lo;
        range_type const* ae = r_.data() + hi;
        size_type before = 0;
        for (auto q = a; q != ae; ++q) before = static_cast<T>(before + q->length());
        Storage out;
        merge_runs(a, ae, src.begin(), src.end(), out);
        std::size_t const bound = static_cast<std::size_t>(ae - a) + src.range_count();
        size_type after = 0;
        for (auto const& r : out) after = static_cast<T>(after + r.length());
        size_type const added = static_cast<T>(after - before);
        if (is_whole_domain(out)) {
            VFOLDER_ASSERT(false, "seq_range_set: the whole domain [0, max] is not storable");
            return 0;
        }
        replace_or_swap(lo, hi, out, bound);
        count_ = static_cast<T>(count_ + added);
        return added;
    }

    /// \brief Adds the first `n` values (ascending) of `src`. Returns how many were added.
    template <class S2>
    size_type merge_n(seq_range_set<T, S2> const& src, size_type n) {
        if (n >= src.count()) return merge(src);
        seq_range_set part;
        for (auto const& r : src) {
            if (n == 0) break;
            size_type const len = r.length();
            if (len <= n) {
                part.r_.push_back(r);
                n = static_cast<T>(n - len);
                part.count_ = static_cast<T>(part.count_ + len);
            } else {
                part.r_.push_back({r.first, static_cast<T>(r.first + (n - 1u))});
                part.count_ = static_cast<T>(part.count_ + n);
                n = 0;
            }
        }
        return merge(part);
    }

    /// \brief Removes every value of `src` (difference). Returns how many were removed.
    /// Complexity: one merge pass over `src` and the part of this set it spans.
    template <class S2>
    size_type remove_set(seq_range_set<T, S2> const& src) {
        if (empty() || src.empty()) return 0;
        if (static_cast<void const*>(&src) == static_cast<void const*>(this)) {
            size_type const c = count_;
            clear();
            return c;
        }
        std::size_t const lo = lower_by_last(src.front().first);
        std::size_t const hi = upper_by_first(src.back().last);
        if (lo >= hi) return 0;
        range_type const* a = r_.data() + lo;
        range_type const* const ae = r_.data() + hi;
        auto b = src.begin();
        auto const be = src.end();
        // Each range of this set yields at most 1 + (ranges of src inside it) pieces.
        std::size_t const bound = static_cast<std::size_t>(ae - a) + src.range_count() + 1;
        Storage out;
        resize_for_overwrite(out, bound);
        range_type* w = out.data();
        size_type removed = 0;
        // Driven by src: `cur` is what is left of the current range of this set; ranges
        // that no range of src touches are copied through.
        range_type cur = *a++;
        for (;;) {
            if (b == be) { // nothing more to remove: copy the rest through
                *w++ = cur;
                w = std::copy(a, ae, w);
                break;
            }
            if (cur.last < b->first) { // cur is untouched
                *w++ = cur;
                if (a == ae) break;
                cur = *a++;
                continue;
            }
            if (b->last < cur.first) { // b falls in a gap
                ++b;
                continue;
            }
            T const cut_from = std::max(cur.first, b->first);
            if (cur.first < b->first) *w++ = range_type{cur.first, static_cast<T>(b->first - 1u)};
            if (b->last < cur.last) {
                removed = static_cast<T>(removed + (b->last - cut_from + 1u));
                cur.first = static_cast<T>(b->last + 1u);
                ++b;
            } else { // the rest of cur goes; b may still overlap the next range
                removed = static_cast<T>(removed + (cur.last - cut_from + 1u));
                if (a == ae) break;
                cur = *a++;
            }
        }
        out.resize(static_cast<std::size_t>(w - out.data()));
        replace_or_swap(lo, hi, out, bound);
        count_ = static_cast<T>(count_ - removed);
        return removed;
    }

    /// \brief Keeps only the values also in `src`. Returns how many were removed.
    /// Unlike Dovecot, 0 is removed like any other value. One merge pass, O(R + R').
    template <class S2>
    size_type intersect(seq_range_set<T, S2> const& src) {
        if (static_cast<void const*>(&src) == static_cast<void const*>(this)) return 0;
        if (empty()) return 0;
        if (src.empty()) {
            size_type const c = count_;
            clear();
            return c;
        }
        Storage out;
        range_type const* a = r_.data();
        range_type const* const ae = a + r_.size();
        auto b = src.begin();
        auto const be = src.end();
        size_type kept = 0;
        while (a != ae && b != be) {
            T const f = std::max(a->first, b->first);
            T const l = std::min(a->last, b->last);
            if (f <= l) {
                append(out, {f, l});
                kept = static_cast<T>(kept + (l - f + 1u));
            }
            if (a->last < b->last)
                ++a;
            else
                ++b;
        }
        size_type const removed = static_cast<T>(count_ - kept);
        r_.swap(out);
        count_ = kept;
        return removed;
    }

    /// \brief Removes `n_values` consecutive values starting at the `n`-th (0-based).
    /// `n >= count()` or `n_values == 0` does nothing; a count past the end removes
    /// everything from the n-th value on.
    void remove_nth(size_type n, size_type n_values) {
        if (n_values == 0 || n >= count_) return;
        auto c = cursor();
        T const a = *c(n);
        size_type const left = static_cast<T>(count_ - n); // values from the n-th on
        T const b = n_values >= left ? back().last : *c(static_cast<T>(n + n_values - 1u));
        remove_range(a, b);
    }

    /// \brief Replaces the set by its complement within `[lo, hi]`. O(R).
    /// Preconditions: `lo <= hi`; every member in `[lo, hi]` (release: others dropped);
    /// the result is not the whole domain (release: the call changes nothing).
    void invert(T lo, T hi) {
        if (lo > hi) [[unlikely]] {
            VFOLDER_ASSERT(lo <= hi, "seq_range_set::invert: min > max");
            return;
        }
        VFOLDER_ASSERT(empty() || (front().first >= lo && back().last <= hi),
                       "seq_range_set::invert: a member lies outside [min, max]");
        Storage out;
        out.reserve(r_.size() + 1);
        T cur = lo;
        bool done = false;
        size_type within = 0;
        for (auto const& r : *this) {
            if (r.last < lo) continue;
            if (r.first > hi) break;
            T const f = std::max(r.first, lo);
            T const l = std::min(r.last, hi);
            within = static_cast<T>(within + (l - f + 1u));
            if (f > cur) append(out, {cur, static_cast<T>(f - 1u)});
            if (l == hi) {
                done = true;
                break;
            }
            cur = static_cast<T>(l + 1u);
        }
        if (!done) append(out, {cur, hi});
        size_type const new_count = static_cast<T>(static_cast<T>(hi - lo + 1u) - within);
        if (is_whole_domain(out)) {
            VFOLDER_ASSERT(false, "seq_range_set::invert: the result would be [0, max]");
            return;
        }
        r_.swap(out);
        count_ = new_count;
    }

    /// \brief Bulk insert of values in any order (duplicates allowed). Returns how many
    /// were added. Complexity: O(n) to bucket the values (radix sort or bitmap, see
    /// detail/bulk_runs.hpp) plus one merge pass.
    template <ranges::input_range R>
        requires std::convertible_to<ranges::range_reference_t<R>, T>
    size_type insert(R&& values) {
        std::vector<T> buf;
        if constexpr (ranges::sized_range<R>) buf.reserve(static_cast<std::size_t>(ranges::size(values)));
        for (auto&& v : values) buf.push_back(static_cast<T>(v));
        return insert_unsorted(std::span<T>(buf));
    }

    /// \brief Like `insert`, but reorders the caller's buffer instead of copying it.
    size_type insert_unsorted(std::span<T> values) {
        if (values.empty()) return 0;
        seq_range_set add;
        resize_for_overwrite(add.r_, values.size()); // at most one run per value
        range_type* w = add.r_.data();
        size_type cnt = 0;
        detail::sorted_runs(values, [&](T f, T l) {
            *w++ = range_type{f, l};
            cnt = static_cast<T>(cnt + (l - f + 1u));
        });
        add.r_.resize(static_cast<std::size_t>(w - add.r_.data()));
        add.count_ = cnt;
        if (is_whole_domain(add.r_)) {
            VFOLDER_ASSERT(false, "seq_range_set: the whole domain [0, max] is not storable");
            return 0;
        }
        if (empty()) {
            if (2 * add.r_.size() >= values.size()) {
                swap(add);
            } else { // mostly unused buffer: keep a right-sized copy instead
                r_.insert(r_.end(), add.begin(), add.end());
                count_ = add.count_;
            }
            return count_;
        }
        return merge(add);
    }

private:
    template <std::unsigned_integral, class>
    friend class seq_range_set;

    // Whether `added` more values still leave the set short of the whole domain.
    bool room_for(size_type added) const noexcept {
        if (added > static_cast<T>(max_value - count_)) [[unlikely]] {
            VFOLDER_ASSERT(false, "seq_range_set: the whole domain [0, max] is not storable");
            return false;
        }
        return true;
    }

    static size_type overlap(range_type const& r, T a, T b) noexcept {
        T const f = std::max(r.first, a);
        T const l = std::min(r.last, b);
        return f <= l ? static_cast<T>(l - f + 1u) : T{0};
    }

    // resize(n) without zero-filling where the storage allows it (boost::container's
    // default_init); the caller overwrites the new elements before reading them.
    static void resize_for_overwrite(Storage& s, std::size_t n) {
        if constexpr (requires { s.resize(n, boost::container::default_init); })
            s.resize(n, boost::container::default_init);
        else
            s.resize(n);
    }

    // Whether a range starting at f joins (overlaps or touches) one ending at last, for
    // f >= that range's first.
    static bool touches(T last, T f) noexcept {
        if constexpr (sizeof(T) < sizeof(std::uint64_t))
            return static_cast<std::uint64_t>(f) <= static_cast<std::uint64_t>(last) + 1u;
        else
            return (f == 0) | (f - 1u <= last);
    }

    // out = the union of the sorted, disjoint range sequences [a, ae) and [b, be) (not
    // both empty), coalesced. Branch-free: which side comes next and whether a range
    // joins the current one are data-dependent (unpredictable for interleaved sets), so
    // both are selects (cmov). [cf, cl] is the range being grown; it is stored at *w on
    // every step and kept (w advances) only when the next range starts a new one. The
    // shape (scalars, one 64-bit select) is what keeps GCC 12 from emitting jumps.
    static void merge_runs(range_type const* a, range_type const* ae, range_type const* b,
                           range_type const* be, Storage& out) {
        resize_for_overwrite(out, static_cast<std::size_t>((ae - a) + (be - b)));
        range_type* w = out.data();
        range_type const c0 = (a != ae && (b == be || a->first <= b->first)) ? *a++ : *b++;
        T cf = c0.first;
        T cl = c0.last;
        auto const step = [&](T f, T l) {
            bool const join = touches(cl, f);
            *w = range_type{cf, cl};
            w += static_cast<std::ptrdiff_t>(!join); // arithmetic, not ?: (GCC jumps on ?:)
            cf = join ? cf : f;
            cl = std::max(cl, l); // a range that does not join ends above cl anyway
        };
        for (;;) {
            // Neither side can run out within n steps: no bounds test in the inner loop.
            std::size_t n = std::min(static_cast<std::size_t>(ae - a), static_cast<std::size_t>(be - b));
            if (n == 0) break;
            do {
                range_type const ra = *a;
                range_type const rb = *b;
                bool const take_a = ra.first <= rb.first;
                a += static_cast<std::ptrdiff_t>(take_a);
                b += static_cast<std::ptrdiff_t>(!take_a);
                if constexpr (sizeof(range_type) == sizeof(std::uint64_t)) {
                    std::uint64_t const p = take_a ? std::bit_cast<std::uint64_t>(ra)
                                                   : std::bit_cast<std::uint64_t>(rb);
                    range_type const r = std::bit_cast<range_type>(p);
                    step(r.first, r.last);
                } else {
                    step(take_a ? ra.first : rb.first, take_a ? ra.last : rb.last);
                }
            } while (--n != 0);
        }
        for (; a != ae; ++a) step(a->first, a->last);
        for (; b != be; ++b) step(b->first, b->last);
        *w++ = range_type{cf, cl};
        out.resize(static_cast<std::size_t>(w - out.data()));
    }

    // push_back, through emplace_back where the storage has it: boost::container::vector
    // force-inlines emplace_back's fast path but calls out of line for push_back.
    static void append(Storage& out, range_type const& r) {
        if constexpr (requires { out.emplace_back(r); })
            out.emplace_back(r);
        else
            out.push_back(r);
    }

    // Index of the first range with last >= v (== size() if none).
    std::size_t lower_by_last(T v) const noexcept {
        range_type const* const p = r_.data();
        std::size_t n = r_.size();
        if (n == 0) return 0;
        // Branch-free (for random keys the comparison is unpredictable), with both
        // possible next probes prefetched so that the cache misses of a large set overlap.
        range_type const* base = p;
        while (n > 1) {
            std::size_t const half = n / 2;
            std::size_t const next_half = (n - half) / 2;
            prefetch(base + next_half);
            prefetch(base + half + next_half);
            base += static_cast<std::size_t>(base[half].last < v) * half;
            n -= half;
        }
        return static_cast<std::size_t>(base - p) + static_cast<std::size_t>(base->last < v);
    }

    // Index of the first range with first > v (== size() if none).
    std::size_t upper_by_first(T v) const noexcept {
        range_type const* p = r_.data();
        std::size_t lo = 0, len = r_.size();
        while (len > 0) {
            std::size_t const half = len / 2;
            if (p[lo + half].first <= v) {
                lo += half + 1;
                len -= half + 1;
            } else {
                len = half;
            }
        }
        return lo;
    }

    static void prefetch(void const* q) noexcept {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(q);
#else
        static_cast<void>(q);
#endif
    }

    // Replaces the ranges [lo, hi) by src[0, k).
    void replace(std::size_t lo, std::size_t hi, range_type const* src, std::size_t k) {
        std::size_t const old = hi - lo;
        range_type* p = r_.data();
        std::size_t const common = std::min(old, k);
        std::copy(src, src + common, p + lo);
        if (k < old) {
            r_.erase(r_.begin() + static_cast<std::ptrdiff_t>(lo + k),
                     r_.begin() + static_cast<std::ptrdiff_t>(hi));
        } else if (k > old) {
            r_.insert(r_.begin() + static_cast<std::ptrdiff_t>(hi), src + common, src + k);
        }
    }

    // Replaces the ranges [lo, hi) by `out` (allocated for `reserved` ranges); when that
    // is all of them, takes out's buffer instead of copying it, unless mostly unused.
    void replace_or_swap(std::size_t lo, std::size_t hi, Storage& out, std::size_t reserved) {
        if (lo == 0 && hi == r_.size() && 2 * out.size() >= reserved)
            r_.swap(out);
        else
            replace(lo, hi, out.data(), out.size());
    }

    static bool is_whole_domain(Storage const& s) noexcept {
        return s.size() == 1 && s.data()[0].first == 0 && s.data()[0].last == max_value;
    }

    Storage r_;
    size_type count_ = 0;
};

/// \brief Answers `nth(n)` queries on a set that is not modified meanwhile.
/// Non-decreasing `n` costs O(1) amortised per call; a smaller `n` restarts from the
/// beginning (O(R)). After a nullopt result the cursor rests at the end.
template <std::unsigned_integral T, class Storage>
class seq_range_set<T, Storage>::nth_cursor {
public:
    explicit nth_cursor(seq_range_set const& s) noexcept : s_(&s) {}

    std::optional<T> operator()(size_type n) noexcept {
        if (n < base_) {
            idx_ = 0;
            base_ = 0;
        }
        std::size_t const rc = s_->range_count();
        while (idx_ < rc) {
            auto const& r = (*s_)[idx_];
            size_type const len = r.length();
            if (static_cast<T>(n - base_) < len) return static_cast<T>(r.first + (n - base_));
            base_ = static_cast<T>(base_ + len);
            ++idx_;
        }
        return std::nullopt;
    }

private:
    seq_range_set const* s_;
    std::size_t idx_ = 0;
    size_type base_ = 0; // number of values before range idx_
};

/// \brief A forward range-v3 view of the values of a set, ascending.
template <std::unsigned_integral T, class Storage>
class seq_range_set<T, Storage>::values_view
    : public ranges::view_facade<typename seq_range_set<T, Storage>::values_view, ranges::finite> {
    friend ranges::range_access;
    range_type const* b_ = nullptr;
    range_type const* e_ = nullptr;

    struct cursor {
        range_type const* r = nullptr;
        range_type const* e = nullptr;
        T v = 0;
        [[nodiscard]] T read() const noexcept { return v; }
        void next() noexcept {
            if (v == r->last) {
                ++r;
                v = r != e ? r->first : T{0};
            } else {
                ++v;
            }
        }
        [[nodiscard]] bool equal(cursor const& o) const noexcept { return r == o.r && v == o.v; }
    };
    [[nodiscard]] cursor begin_cursor() const noexcept {
        return {b_, e_, b_ != e_ ? b_->first : T{0}};
    }
    [[nodiscard]] cursor end_cursor() const noexcept { return {e_, e_, T{0}}; }

public:
    values_view() = default;
    values_view(range_type const* b, range_type const* e) noexcept : b_(b), e_(e) {}
};

VFOLDER_END_NAMESPACE

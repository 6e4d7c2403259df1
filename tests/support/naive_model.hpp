// A std::set reference model of seq_range_set, and seeded generators for the
// differential (property) tests. Every operation is written the obvious way, value by
// value, so that it is easy to trust; none of it needs to be fast.
//
// Return values follow seq_range_set (and Dovecot's seq_range_array): `add` returns
// whether the value was already present, the range operations return how many values
// they added or removed. Counts are std::uint64_t, so that the model can also describe
// the (forbidden) whole domain of a small value type, e.g. 256 values of uint8_t.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vfolder_test {

// ------------------------------------------------------------------ the model

template <std::unsigned_integral T>
class naive_set {
public:
    using value_type = T;
    static constexpr T max_value = std::numeric_limits<T>::max();

    naive_set() = default;
    naive_set(std::initializer_list<std::pair<T, T>> rs) {
        for (auto const& r : rs) add_range(r.first, r.second);
    }

    [[nodiscard]] std::set<T> const& values() const noexcept { return v_; }
    [[nodiscard]] std::uint64_t count() const noexcept { return v_.size(); }
    [[nodiscard]] bool empty() const noexcept { return v_.empty(); }
    [[nodiscard]] bool contains(T x) const { return v_.count(x) != 0; }
    [[nodiscard]] T min() const { return *v_.begin(); }
    [[nodiscard]] T max() const { return *v_.rbegin(); }
    /// Whether the set holds every value of T.
    [[nodiscard]] bool is_whole_domain() const noexcept {
        return v_.size() == std::uint64_t{max_value} + 1u &&
               max_value != std::numeric_limits<std::uint64_t>::max();
    }

    /// True if `x` was already present.
    bool add(T x) { return !v_.insert(x).second; }
    /// Number of values added. Precondition: a <= b.
    std::uint64_t add_range(T a, T b) {
        std::size_t const before = v_.size();
        auto hint = v_.lower_bound(a);
        for (T x = a;; ++x) {
            hint = std::next(v_.insert(hint, x)); // amortised O(1): x goes just before hint
            if (x == b) break;
        }
        return v_.size() - before;
    }
    bool remove(T x) { return v_.erase(x) != 0; }
    /// Number of values removed. Precondition: a <= b.
    std::uint64_t remove_range(T a, T b) {
        auto const f = v_.lower_bound(a);
        auto const l = v_.upper_bound(b);
        auto const n = static_cast<std::uint64_t>(std::distance(f, l));
        v_.erase(f, l);
        return n;
    }
    std::uint64_t merge(naive_set const& o) {
        std::uint64_t n = 0;
        for (T x : o.v_) n += v_.insert(x).second ? 1u : 0u;
        return n;
    }
    /// Adds the first `n` values (ascending) of `o`.
    std::uint64_t merge_n(naive_set const& o, std::uint64_t n) {
        std::uint64_t added = 0;
        for (T x : o.v_) {
            if (n-- == 0) break;
            added += v_.insert(x).second ? 1u : 0u;
        }
        return added;
    }
    std::uint64_t remove_set(naive_set const& o) {
        std::uint64_t n = 0;
        for (T x : o.v_) n += v_.erase(x);
        return n;
    }
    std::uint64_t intersect(naive_set const& o) {
        std::uint64_t n = 0;
        for (auto it = v_.begin(); it != v_.end();) {
            if (o.contains(*it)) {
                ++it;
            } else {
                it = v_.erase(it);
                ++n;
            }
        }
        return n;
    }
    [[nodiscard]] bool have_common(naive_set const& o) const {
        return std::any_of(v_.begin(), v_.end(), [&](T x) { return o.contains(x); });
    }
    [[nodiscard]] std::optional<T> nth(std::uint64_t n) const {
        if (n >= v_.size()) return std::nullopt;
        return *std::next(v_.begin(), static_cast<std::ptrdiff_t>(n));
    }
    /// Removes `k` values from the n-th on (everything from the n-th if fewer remain).
    void remove_nth(std::uint64_t n, std::uint64_t k) {
        if (n >= v_.size() || k == 0) return;
        auto const f = std::next(v_.begin(), static_cast<std::ptrdiff_t>(n));
        auto l = f;
        for (std::uint64_t i = 0; i < k && l != v_.end(); ++i) ++l;
        v_.erase(f, l);
    }
    /// The complement within [lo, hi]; members outside [lo, hi] are dropped. O(hi - lo):
    /// use only on small windows.
    void invert(T lo, T hi) {
        std::set<T> out;
        auto it = v_.lower_bound(lo);
        for (T x = lo;; ++x) {
            if (it != v_.end() && *it == x)
                ++it;
            else
                out.insert(out.end(), x);
            if (x == hi) break;
        }
        v_.swap(out);
    }
    template <class It>
    std::uint64_t insert(It first, It last) {
        std::uint64_t n = 0;
        for (; first != last; ++first) n += v_.insert(static_cast<T>(*first)).second ? 1u : 0u;
        return n;
    }
    void clear() noexcept { v_.clear(); }

    /// The maximal runs of consecutive values, ascending.
    [[nodiscard]] std::vector<std::pair<T, T>> runs() const {
        std::vector<std::pair<T, T>> out;
        for (T x : v_) {
            if (!out.empty() && out.back().second != max_value && out.back().second + 1u == x)
                out.back().second = x;
            else
                out.emplace_back(x, x);
        }
        return out;
    }
    /// The runs of the complement within [lo, hi], computed from runs() (cheap even when
    /// the window is huge). Members outside [lo, hi] are ignored.
    [[nodiscard]] std::vector<std::pair<T, T>> complement_runs(T lo, T hi) const {
        std::vector<std::pair<T, T>> out;
        T cur = lo; // the next candidate value
        for (auto const& [f, l] : runs()) {
            if (l < lo || f > hi) continue;
            if (f > cur) out.emplace_back(cur, static_cast<T>(f - 1u));
            if (l >= hi) return out; // covers the rest of the window
            cur = static_cast<T>(l + 1u);
        }
        out.emplace_back(cur, hi);
        return out;
    }

    friend bool operator==(naive_set const&, naive_set const&) = default;

private:
    std::set<T> v_;
};

// ------------------------------------------------------------------ comparisons

/// Whether the ranges of `s` (anything iterable over `.first` / `.last` pairs) hold
/// exactly the values of `m`. One walk over the model: O(count).
template <class Set, class T>
[[nodiscard]] bool same_values(Set const& s, naive_set<T> const& m) {
    auto it = m.values().begin();
    auto const end = m.values().end();
    for (auto const& r : s) {
        for (T x = r.first;; ++x) {
            if (it == end || *it != x) return false;
            ++it;
            if (x == r.last) break;
        }
    }
    return it == end;
}

/// Whether the ranges of `s` are exactly `runs`.
template <class Set, class T>
[[nodiscard]] bool same_runs(Set const& s, std::vector<std::pair<T, T>> const& runs) {
    std::size_t i = 0;
    for (auto const& r : s) {
        if (i == runs.size() || r.first != runs[i].first || r.last != runs[i].second)
            return false;
        ++i;
    }
    return i == runs.size();
}

/// Renders ranges in Dovecot's notation, e.g. "[1-3],[5],[7-MAX]"; "{}" when empty.
template <class Set>
[[nodiscard]] std::string format_ranges(Set const& s) {
    std::string out;
    auto num = [](auto v) {
        using V = decltype(v);
        return v == std::numeric_limits<V>::max() ? std::string("MAX")
                                                  : std::to_string(std::uint64_t{v});
    };
    for (auto const& r : s) {
        if (!out.empty()) out += ',';
        out += '[';
        out += num(r.first);
        if (r.last != r.first) {
            out += '-';
            out += num(r.last);
        }
        out += ']';
    }
    return out.empty() ? std::string("{}") : out;
}

// ------------------------------------------------------------------ generators

/// A small, fast, seedable generator (splitmix64) whose sequence is the same with every
/// compiler and standard library, so that a failing seed replays everywhere.
class rng {
public:
    explicit rng(std::uint64_t seed) noexcept : s_(seed) {}

    std::uint64_t next() noexcept {
        std::uint64_t z = (s_ += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        return z ^ (z >> 31);
    }
    /// Uniform in [lo, hi] (the tiny modulo bias does not matter here).
    std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept {
        std::uint64_t const span = hi - lo + 1u;
        return span == 0 ? next() : lo + next() % span;
    }
    template <std::unsigned_integral T>
    T value(T lo, T hi) noexcept {
        return static_cast<T>(between(lo, hi));
    }
    /// True with probability num / den.
    bool chance(std::uint64_t num, std::uint64_t den) noexcept { return next() % den < num; }
    std::size_t index(std::size_t n) noexcept { return static_cast<std::size_t>(next() % n); }

private:
    std::uint64_t s_;
};

/// A value domain for the random tests: the union of one or two windows, e.g. [0, 2000],
/// or [0, 500] and [max - 500, max] (both edges of the type).
template <std::unsigned_integral T>
struct domain {
    T lo1, hi1;
    T lo2, hi2; // == lo1, hi1 for a single window

    [[nodiscard]] bool two_windows() const noexcept { return lo2 != lo1 || hi2 != hi1; }
    [[nodiscard]] T min() const noexcept { return lo1; }
    [[nodiscard]] T max() const noexcept { return hi2; }
    T value(rng& g) const noexcept {
        return (two_windows() && g.chance(1, 2)) ? g.value(lo2, hi2) : g.value(lo1, hi1);
    }
    /// A range of at most `max_len` values inside one window.
    std::pair<T, T> range(rng& g, std::uint64_t max_len) const noexcept {
        bool const second = two_windows() && g.chance(1, 2);
        T const wlo = second ? lo2 : lo1;
        T const whi = second ? hi2 : hi1;
        T const a = g.value(wlo, whi);
        std::uint64_t const room = std::uint64_t{whi} - a;
        T const b = static_cast<T>(a + g.between(0, std::min<std::uint64_t>(room, max_len - 1u)));
        return {a, b};
    }
};

/// `n` random values of `d` (duplicates likely).
template <std::unsigned_integral T>
std::vector<T> random_values(rng& g, domain<T> const& d, std::size_t n) {
    std::vector<T> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(d.value(g));
    return out;
}

/// A random model set of up to `max_ranges` ranges of up to `max_len` values each.
template <std::unsigned_integral T>
naive_set<T> random_model(rng& g, domain<T> const& d, std::size_t max_ranges,
                          std::uint64_t max_len) {
    naive_set<T> m;
    std::size_t const k = g.index(max_ranges + 1);
    for (std::size_t i = 0; i < k; ++i) {
        auto const [a, b] = d.range(g, max_len);
        m.add_range(a, b);
    }
    return m;
}

/// Builds a `Set` (seq_range_set) equal to the model, through add_range of its runs.
template <class Set, class T>
Set to_set(naive_set<T> const& m) {
    Set s;
    for (auto const& [f, l] : m.runs()) s.add_range(f, l);
    return s;
}

} // namespace vfolder_test

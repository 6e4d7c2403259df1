/// \file
/// \brief `uid_map`: a sorted array mapping a backend's real UIDs to virtual UIDs.
///
/// Synopsis
/// \code
///   uid_map<Uid = uint32_t, Storage = boost::container::vector<uid_map_entry<Uid>>>
///     insert_pos(real) -> {index, found}   find(real) -> entry const* | nullptr
///     lookup(real) -> optional<Uid>         (0 = present but no virtual UID yet)
///     insert(real, vuid = 0) -> bool        insert(set) -> count inserted (one pass)
///     erase(set, dropped_vuids) -> count    erase(set, callback) -> count
///     assign(real, vuid) -> bool            assign_at(index, vuid)
///     translate(set) -> set of vuids        translate_each(set) -> vector, 0 = unmapped
///     check_invariants()
/// \endcode
///
/// Invariant: entries are sorted by `real_uid`, strictly increasing; `virtual_uid == 0`
/// means "not assigned yet"; assigned virtual UIDs are distinct.
///
/// This is the per-backend state of a virtual folder's sync (docs/core.md): the backend's
/// messages that are in the view, each with its virtual UID. Bulk operations take a
/// `seq_range_set` of real UIDs and run in one pass, galloping over untouched entries.
#pragma once

#include <vfolder/config.hpp>
#include <vfolder/core/seq_range_set.hpp>

#include <vfolder/detail/boost_vector.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief One entry of a `uid_map`: a backend (real) UID and its virtual UID (0 = none).
template <std::unsigned_integral Uid>
struct uid_map_entry {
    Uid real_uid;
    Uid virtual_uid;
    friend constexpr bool operator==(uid_map_entry const&, uid_map_entry const&) = default;
};

/// \brief What `uid_map` needs from its storage: a contiguous, resizable sequence of
/// `uid_map_entry<Uid>`.
template <class S, class Uid>
concept uid_map_storage =
    std::same_as<typename S::value_type, uid_map_entry<Uid>> && std::default_initializable<S> &&
    std::copyable<S> && requires(S& s, S const& cs, std::size_t n, uid_map_entry<Uid> e) {
        { cs.data() } -> std::convertible_to<uid_map_entry<Uid> const*>;
        { s.data() } -> std::convertible_to<uid_map_entry<Uid>*>;
        { cs.size() } -> std::convertible_to<std::size_t>;
        s.push_back(e);
        s.insert(s.begin(), e);
        s.resize(n);
        s.reserve(n);
        s.clear();
    };

/// \brief Sorted map real UID -> virtual UID of one backend mailbox of a virtual folder.
///
/// Complexity, for n entries and a set of k values in R ranges: lookups O(log n); bulk
/// insert O(k) when all new UIDs are above the last entry, else O(k + moved tail); bulk
/// erase O(R log n + k + moved tail); translate O(R log n + k).
template <std::unsigned_integral Uid = std::uint32_t,
          class Storage = boost::container::vector<uid_map_entry<Uid>>>
class uid_map {
    static_assert(uid_map_storage<Storage, Uid>,
                  "Storage must be a contiguous resizable sequence of uid_map_entry<Uid>");

public:
    using uid_type = Uid;
    using entry = uid_map_entry<Uid>;
    using value_type = entry;
    using uid_set = seq_range_set<Uid>;
    using storage_type = Storage;
    using size_type = std::size_t;
    using const_iterator = entry const*;
    using iterator = const_iterator;

    /// \brief Result of `insert_pos`: where `real` is or would be inserted.
    struct position {
        size_type index; ///< lower bound: number of entries with a smaller real UID
        bool found;      ///< whether `entries()[index].real_uid == real`
        friend constexpr bool operator==(position const&, position const&) = default;
    };

    uid_map() = default;

    // ---------------------------------------------------------------- observers

    [[nodiscard]] bool empty() const noexcept { return e_.size() == 0; }
    [[nodiscard]] size_type size() const noexcept { return e_.size(); }
    [[nodiscard]] const_iterator begin() const noexcept { return e_.data(); }
    [[nodiscard]] const_iterator end() const noexcept { return e_.data() + e_.size(); }
    /// \brief The i-th entry by ascending real UID. Precondition: `i < size()`.
    [[nodiscard]] entry const& operator[](size_type i) const noexcept { return e_.data()[i]; }
    [[nodiscard]] storage_type const& storage() const noexcept { return e_; }

    /// \brief Binary search for `real`: its index if present, else the insert position.
    [[nodiscard]] position insert_pos(Uid real) const noexcept {
        size_type const i = lower_bound(0, real);
        return {i, i < e_.size() && e_.data()[i].real_uid == real};
    }

    /// \brief The entry of `real`, or nullptr. O(log n).
    [[nodiscard]] entry const* find(Uid real) const noexcept {
        auto const pos = insert_pos(real);
        return pos.found ? e_.data() + pos.index : nullptr;
    }

    /// \brief The virtual UID of `real` (0 when it has none yet); nullopt when absent.
    [[nodiscard]] std::optional<Uid> lookup(Uid real) const noexcept {
        if (auto const* e = find(real)) return e->virtual_uid;
        return std::nullopt;
    }

    /// \brief Whether the map holds `real`.
    [[nodiscard]] bool contains(Uid real) const noexcept { return find(real) != nullptr; }

    /// \brief The real UIDs in the map, as a set. O(n).
    [[nodiscard]] uid_set real_uids() const {
        uid_set s;
        for (auto const& e : *this) s.add(e.real_uid);
        return s;
    }

    /// \brief The virtual UIDs (non-zero) of the real UIDs in `uids` that are mapped.
    /// O(R log n + k) plus building the result.
    [[nodiscard]] uid_set translate(uid_set const& uids) const {
        uid_set out;
        translate(uids, out);
        return out;
    }

    /// \brief Adds to `out` the virtual UIDs (non-zero) of the real UIDs in `uids`.
    void translate(uid_set const& uids, uid_set& out) const {
        std::vector<Uid> v;
        bool ascending = true;
        visit_matches(uids, [&](entry const& e) {
            if (e.virtual_uid == 0) return;
            if (!v.empty() && e.virtual_uid <= v.back()) ascending = false;
            v.push_back(e.virtual_uid);
        });
        if (ascending && (out.empty() || v.empty() || v.front() > out.back().last)) {
            for (Uid x : v) out.add(x); // O(1) each: ascending appends
        } else {
            out.insert_unsorted(std::span<Uid>(v));
        }
    }

    /// \brief One virtual UID per value of `uids`, in ascending real-UID order: the mapped
    /// entry's virtual UID, or 0 when the real UID is not in the map (or not assigned).
    [[nodiscard]] std::vector<Uid> translate_each(uid_set const& uids) const {
        std::vector<Uid> out;
        out.reserve(static_cast<std::size_t>(uids.count()));
        size_type pos = 0;
        entry const* p = e_.data();
        size_type const n = e_.size();
        for (auto const& r : uids) {
            for (Uid v = r.first;; ++v) {
                pos = gallop(pos, v);
                out.push_back(pos < n && p[pos].real_uid == v ? p[pos].virtual_uid : Uid{0});
                if (v == r.last) break;
            }
        }
        return out;
    }

    /// \brief Calls `f(entry const&)` for each entry whose real UID is in `uids`,
    /// ascending. O(R log n + matches).
    template <class F>
    void visit_matches(uid_set const& uids, F&& f) const {
        entry const* p = e_.data();
        size_type const n = e_.size();
        size_type pos = 0;
        for (auto const& r : uids) {
            pos = gallop(pos, r.first);
            for (; pos < n && p[pos].real_uid <= r.last; ++pos) f(p[pos]);
            if (pos == n) return;
        }
    }

    /// \brief Whether the invariant holds. O(n log n) (checks that virtual UIDs are distinct).
    [[nodiscard]] bool check_invariants() const {
        entry const* p = e_.data();
        std::vector<Uid> v;
        for (size_type i = 0; i < e_.size(); ++i) {
            if (i > 0 && p[i - 1].real_uid >= p[i].real_uid) return false;
            if (p[i].virtual_uid != 0) v.push_back(p[i].virtual_uid);
        }
        std::sort(v.begin(), v.end());
        return std::adjacent_find(v.begin(), v.end()) == v.end();
    }

    friend bool operator==(uid_map const& a, uid_map const& b) noexcept {
        return std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

    // ---------------------------------------------------------------- modifiers

    void clear() noexcept { e_.clear(); }
    void reserve(size_type n) { e_.reserve(n); }
    /// Non-throwing when the storage's swap is (small_vector's may allocate).
    void swap(uid_map& o) noexcept(noexcept(e_.swap(o.e_))) { e_.swap(o.e_); }
    friend void swap(uid_map& a, uid_map& b) noexcept(noexcept(a.swap(b))) { a.swap(b); }

    /// \brief Inserts one entry. Returns false (and changes nothing) if `real` is present.
    /// O(1) above the last entry, else O(log n) + memmove.
    bool insert(Uid real, Uid vuid = 0) {
        size_type const n = e_.size();
        if (n == 0 || e_.data()[n - 1].real_uid < real) {
            e_.push_back({real, vuid});
            return true;
        }
        auto const pos = insert_pos(real);
        if (pos.found) return false;
        e_.insert(e_.begin() + static_cast<std::ptrdiff_t>(pos.index), entry{real, vuid});
        return true;
    }

    /// \brief Inserts every UID of `uids` with virtual UID 0, in one pass. UIDs already in
    /// the map keep their entry. Returns how many entries were inserted.
    /// Complexity: O(k) when all are above the last entry (the common case: new mail),
    /// else one backward merge, O(k + entries above the first new UID).
    size_type insert(uid_set const& uids) {
        if (uids.empty()) return 0;
        size_type const n = e_.size();
        size_type const k = static_cast<size_type>(uids.count());
        if (n == 0 || uids.front().first > e_.data()[n - 1].real_uid) {
            e_.resize(n + k);
            entry* w = e_.data() + n;
            uids.for_each_value([&](Uid v) { *w++ = entry{v, 0}; });
            return k;
        }
        e_.resize(n + k);
        entry* p = e_.data();
        size_type i = n;     // old entries [0, i) not yet placed
        size_type w = n + k; // output fills [w, n + k) from the top
        size_type dup = 0;
        for (auto r = uids.end(); r != uids.begin();) {
            --r;
            for (Uid v = r->last;; --v) {
                while (i > 0 && p[i - 1].real_uid > v) p[--w] = p[--i];
                if (i > 0 && p[i - 1].real_uid == v)
                    ++dup; // present: the old entry stays and is moved like the others
                else
                    p[--w] = entry{v, 0};
                if (v == r->first) break;
            }
        }
        if (dup != 0) { // close the gap [i, w) that the skipped duplicates left
            std::copy(p + w, p + n + k, p + i);
            e_.resize(n + k - dup);
        }
        return k - dup;
    }

    /// \brief Erases the entries whose real UID is in `uids` (absent ones are ignored),
    /// calling `on_erased(entry const&)` for each, ascending. Returns how many were erased.
    /// If `on_erased` throws, the entries it returned for are erased and the others kept.
    /// Complexity: O(R log n + erased + entries above the first erased one), block moves.
    template <class F>
        requires std::invocable<F&, entry const&>
    size_type erase(uid_set const& uids, F&& on_erased) {
        size_type const n = e_.size();
        if (n == 0 || uids.empty()) return 0;
        entry* p = e_.data();
        size_type w = lower_bound(0, uids.front().first);
        size_type rd = w;
        // [0, w) is kept, [w, rd) erased, [rd, n) not yet read. The guard closes the gap
        // on return and also if on_erased throws, so the map stays valid (basic guarantee).
        struct close_gap {
            uid_map& m;
            size_type const& kept_end;
            size_type const& read_pos;
            ~close_gap() {
                if (kept_end == read_pos) return;
                entry* q = m.e_.data();
                size_type const sz = m.e_.size();
                std::copy(q + read_pos, q + sz, q + kept_end);
                m.e_.resize(sz - (read_pos - kept_end));
            }
        } const guard{*this, w, rd};
        for (auto const& r : uids) {
            size_type const i = gallop(rd, r.first);
            if (i == n) break;
            if (w != rd) std::copy(p + rd, p + i, p + w);
            w += i - rd;
            for (rd = i; rd < n && p[rd].real_uid <= r.last; ++rd)
                on_erased(static_cast<entry const&>(p[rd]));
        }
        return rd - w; // computed before the guard closes the gap
    }

    /// \brief Erases the entries whose real UID is in `uids` and adds their (non-zero)
    /// virtual UIDs to `dropped_vuids`. Returns how many entries were erased.
    size_type erase(uid_set const& uids, uid_set& dropped_vuids) {
        std::vector<Uid> v;
        size_type const erased = erase(uids, [&](entry const& e) {
            if (e.virtual_uid != 0) v.push_back(e.virtual_uid);
        });
        dropped_vuids.insert_unsorted(std::span<Uid>(v));
        return erased;
    }

    /// \brief Erases the entries whose real UID is in `uids`. Returns how many.
    size_type erase(uid_set const& uids) {
        return erase(uids, [](entry const&) {});
    }

    /// \brief Sets the virtual UID of `real`. Returns false if `real` is absent.
    /// Precondition: `vuid` is not assigned to another entry (check_invariants).
    bool assign(Uid real, Uid vuid) noexcept {
        auto const pos = insert_pos(real);
        if (!pos.found) return false;
        e_.data()[pos.index].virtual_uid = vuid;
        return true;
    }

    /// \brief Sets the virtual UID of the i-th entry. Precondition: `i < size()`.
    void assign_at(size_type i, Uid vuid) noexcept {
        VFOLDER_ASSERT(i < e_.size(), "uid_map::assign_at: index out of range");
        if (i < e_.size()) e_.data()[i].virtual_uid = vuid;
    }

private:
    // First index >= from whose real UID is >= key (binary search over [from, n)).
    size_type lower_bound(size_type from, Uid key) const noexcept {
        entry const* p = e_.data();
        size_type lo = from, len = e_.size() - from;
        while (len > 0) {
            size_type const half = len / 2;
            if (p[lo + half].real_uid < key) {
                lo += half + 1;
                len -= half + 1;
            } else {
                len = half;
            }
        }
        return lo;
    }

    // Like lower_bound(from, key), but exponential from `from`: O(log distance), so a
    // sweep over ascending keys costs O(R log(n / R)) in all.
    size_type gallop(size_type from, Uid key) const noexcept {
        entry const* p = e_.data();
        size_type const n = e_.size();
        if (from >= n || p[from].real_uid >= key) return from;
        size_type step = 1;
        size_type lo = from; // p[lo] < key
        while (lo + step < n && p[lo + step].real_uid < key) {
            lo += step;
            step *= 2;
        }
        size_type const hi = std::min(n, lo + step); // p[hi] >= key or hi == n
        entry const* q = p;
        size_type a = lo + 1, len = hi - a;
        while (len > 0) {
            size_type const half = len / 2;
            if (q[a + half].real_uid < key) {
                a += half + 1;
                len -= half + 1;
            } else {
                len = half;
            }
        }
        return a;
    }

    Storage e_;
};

VFOLDER_END_NAMESPACE

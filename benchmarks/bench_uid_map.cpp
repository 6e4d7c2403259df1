// uid_map against std::map, boost::container::flat_map (one entry at a time) and a
// Dovecot-style sorted array of {real_uid, virtual_uid} kept with libdovecot's ARRAY,
// bsearch_insert_pos() and array_insert() per message (workloads: BENCHMARKS.md).
//
// Names: BM_uid_map_<workload>/<impl>/<N>. Bulk inputs are "one set of real UIDs": a
// seq_range_set for vfolder, an ARRAY_TYPE(seq_range) for Dovecot, a sorted vector for
// the std / flat_map peers, which apply it one UID at a time. Results are compared once,
// outside the timed loop, with references computed on plain vectors.
#include "bench_common.hpp"

#include <vfolder/core/uid_map.hpp>

#include <boost/container/flat_map.hpp>

#include <map>
#include <memory>

namespace {

using bench::sig;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using vset = vfolder::seq_range_set<u32>;
using entry = vfolder::uid_map_entry<u32>;

u64 pair_key(u32 real, u32 vuid) { return (static_cast<u64>(real) << 32) | vuid; }

// ---------------------------------------------------------------- inputs and references

struct data {
    std::size_t n = 0;
    std::vector<u32> all;          // bulk_append: [1, N]
    std::vector<entry> evens;      // insert_middle base: 2, 4, ..., N with vuid = real / 2
    std::vector<u32> odd_new;      // insert_middle input (sorted unique odd UIDs)
    std::vector<entry> mailbox;    // erase / translate / lookup base: [1, N] minus 2%,
                                   // virtual UIDs 1, 2, ... in real-UID order
    std::vector<u32> erase_uids;   // erase_sparse input (sorted unique)
    std::vector<u32> tr_uids;      // translate input (sorted unique)
    std::vector<u32> queries;      // lookup (N random, about 2% misses)

    sig sig_appended, sig_inserted, sig_erased_map, sig_dropped, sig_translated;
    u64 lookup_sum = 0;

    explicit data(std::size_t n_) : n(n_) {
        auto const N = static_cast<u32>(n);
        all.resize(n);
        for (u32 i = 0; i < N; ++i) all[i] = i + 1;
        for (u32 r = 2; r <= N; r += 2) evens.push_back({r, r / 2});
        {
            bench::rng g(21);
            std::vector<u32> v(n / 1000);
            for (auto& x : v) x = 2 * g.between(0, N / 2 - 1) + 1;
            odd_new = bench::sorted_unique(std::move(v));
        }
        auto const expunged = bench::sorted_unique(bench::random_values(n / 50, 1, N, 22));
        u32 vuid = 0;
        for (u32 r = 1; r <= N; ++r)
            if (!std::binary_search(expunged.begin(), expunged.end(), r)) mailbox.push_back({r, ++vuid});
        erase_uids = bench::sorted_unique(bench::random_values(n / 100, 1, N, 23));
        tr_uids = bench::sorted_unique(bench::random_values(n / 100, 1, N, 24));
        queries = bench::random_values(n, 1, N, 25);

        for (u32 r : all) sig_appended.add(pair_key(r, 0));
        {
            std::vector<entry> m = evens;
            for (u32 r : odd_new) m.push_back({r, 0});
            for (auto const& e : m) sig_inserted.add(pair_key(e.real_uid, e.virtual_uid));
        }
        for (auto const& e : mailbox) {
            bool const hit = std::binary_search(erase_uids.begin(), erase_uids.end(), e.real_uid);
            if (hit)
                sig_dropped.add(e.virtual_uid);
            else
                sig_erased_map.add(pair_key(e.real_uid, e.virtual_uid));
            if (std::binary_search(tr_uids.begin(), tr_uids.end(), e.real_uid))
                sig_translated.add(e.virtual_uid);
        }
        for (u32 q : queries) {
            auto it = std::lower_bound(mailbox.begin(), mailbox.end(), q,
                                       [](entry const& e, u32 k) { return e.real_uid < k; });
            if (it != mailbox.end() && it->real_uid == q) lookup_sum += it->virtual_uid;
        }
    }
};

data const& data_for(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<data>> cache;
    auto& p = cache[n];
    if (!p) p = std::make_unique<data>(n);
    return *p;
}

vset set_of(std::vector<u32> const& sorted) {
    vset s;
    for (u32 v : sorted) s.add(v);
    return s;
}

// ---------------------------------------------------------------- implementations
// Each adapter: map type; from(entries) (untimed setup, ascending appends); the uid set
// type and uids(sorted vector); insert_set; erase_set (returns the dropped virtual UIDs
// in its own result type); translate; lookup_sum; for_each_entry / for_each_uid (checks).

// vfolder::uid_map: insert(set), erase(set, dropped_vuids), translate(set), lookup.
struct vf {
    static constexpr char const* name = "vfolder";
    using map = vfolder::uid_map<u32>;
    using uids_t = vset;
    using out_t = vset;
    static map from(std::vector<entry> const& es) {
        map m;
        m.reserve(es.size());
        for (auto const& e : es) m.insert(e.real_uid, e.virtual_uid);
        return m;
    }
    static uids_t uids(std::vector<u32> const& v) { return set_of(v); }
    static void insert_set(map& m, uids_t const& u) { benchmark::DoNotOptimize(m.insert(u)); }
    static void erase_set(map& m, uids_t const& u, out_t& dropped) {
        benchmark::DoNotOptimize(m.erase(u, dropped));
    }
    static void translate(map const& m, uids_t const& u, out_t& out) { out = m.translate(u); }
    static u64 lookup_sum(map const& m, std::span<u32 const> q) {
        u64 s = 0;
        for (u32 x : q) s += m.lookup(x).value_or(0);
        return s;
    }
    template <class F>
    static void for_each_entry(map const& m, F&& f) {
        for (auto const& e : m) f(e.real_uid, e.virtual_uid);
    }
    template <class F>
    static void for_each_uid(out_t const& s, F&& f) {
        s.for_each_value(f);
    }
};

// A std::map-like peer applying the set one UID at a time: std::map and
// boost::container::flat_map (emplace_hint at end() for ascending appends, emplace,
// find + erase, find).
template <class M>
struct std_like {
    using map = M;
    using uids_t = std::vector<u32>;
    using out_t = std::vector<u32>;
    static map from(std::vector<entry> const& es) {
        map m;
        for (auto const& e : es) m.emplace_hint(m.end(), e.real_uid, e.virtual_uid);
        return m;
    }
    static uids_t uids(std::vector<u32> const& v) { return v; }
    static void insert_set(map& m, uids_t const& u) {
        if (m.empty() || u.front() > std::prev(m.end())->first) {
            for (u32 r : u) m.emplace_hint(m.end(), r, 0u);
        } else {
            for (u32 r : u) m.emplace(r, 0u);
        }
    }
    static void erase_set(map& m, uids_t const& u, out_t& dropped) {
        for (u32 r : u) {
            auto it = m.find(r);
            if (it == m.end()) continue;
            if (it->second != 0) dropped.push_back(it->second);
            m.erase(it);
        }
    }
    static void translate(map const& m, uids_t const& u, out_t& out) {
        for (u32 r : u) {
            auto it = m.find(r);
            if (it != m.end() && it->second != 0) out.push_back(it->second);
        }
    }
    static u64 lookup_sum(map const& m, std::span<u32 const> q) {
        u64 s = 0;
        for (u32 x : q) {
            auto it = m.find(x);
            if (it != m.end()) s += it->second;
        }
        return s;
    }
    template <class F>
    static void for_each_entry(map const& m, F&& f) {
        for (auto const& [r, v] : m) f(r, v);
    }
    template <class F>
    static void for_each_uid(out_t const& s, F&& f) {
        for (u32 v : s) f(v);
    }
};

struct stdm : std_like<std::map<u32, u32>> {
    static constexpr char const* name = "std_map";
};
struct flat : std_like<boost::container::flat_map<u32, u32>> {
    static constexpr char const* name = "flat_map";
};

#if VFOLDER_BENCH_HAVE_DOVECOT
// Owns a Dovecot-style uid map (dovecot_peer.c).
class dovecot_map {
public:
    dovecot_map() : p_(dvc_uidmap_new()) {}
    dovecot_map(dovecot_map const& o) : p_(dvc_uidmap_copy(o.p_)) {}
    dovecot_map(dovecot_map&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    dovecot_map& operator=(dovecot_map o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~dovecot_map() { dvc_uidmap_free(p_); }
    dvc_uidmap* get() const noexcept { return p_; }

private:
    dvc_uidmap* p_;
};

// Dovecot: ARRAY of {real_uid, virtual_uid}; per message bsearch_insert_pos, then
// array_insert / array_delete; the UID sets and results are ARRAY_TYPE(seq_range)
// (seq_range_array_add), as in the virtual storage plugin.
struct dv {
    static constexpr char const* name = "dovecot";
    using map = dovecot_map;
    using uids_t = bench::dovecot_set;
    using out_t = bench::dovecot_set;
    static map from(std::vector<entry> const& es) {
        static_assert(sizeof(entry) == sizeof(dvc_uid_entry));
        map m;
        dvc_uidmap_append_sorted(m.get(), reinterpret_cast<dvc_uid_entry const*>(es.data()),
                                 es.size());
        return m;
    }
    static uids_t uids(std::vector<u32> const& v) { return uids_t(bench::runs_of(v)); }
    static void insert_set(map& m, uids_t const& u) {
        benchmark::DoNotOptimize(dvc_uidmap_insert_set(m.get(), u.get()));
    }
    static void erase_set(map& m, uids_t const& u, out_t& dropped) {
        benchmark::DoNotOptimize(dvc_uidmap_erase_set(m.get(), u.get(), dropped.get()));
    }
    static void translate(map const& m, uids_t const& u, out_t& out) {
        benchmark::DoNotOptimize(dvc_uidmap_translate(m.get(), u.get(), out.get()));
    }
    static u64 lookup_sum(map const& m, std::span<u32 const> q) {
        return dvc_uidmap_lookup_each(m.get(), q.data(), q.size());
    }
    template <class F>
    static void for_each_entry(map const& m, F&& f) {
        std::size_t n = 0;
        dvc_uid_entry const* e = dvc_uidmap_entries(m.get(), &n);
        for (std::size_t i = 0; i < n; ++i) f(e[i].real_uid, e[i].virtual_uid);
    }
    template <class F>
    static void for_each_uid(out_t const& s, F&& f) {
        s.for_each_value(f);
    }
};
#endif

template <class I>
sig map_sig(typename I::map const& m) {
    sig g;
    I::for_each_entry(m, [&](u32 r, u32 v) { g.add(pair_key(r, v)); });
    return g;
}

template <class I>
sig uid_sig(typename I::out_t const& s) {
    sig g;
    I::for_each_uid(s, [&](u32 v) { g.add(v); });
    return g;
}

// Restores a map after a timed insert_set / erase_set. std::map is put back by undoing
// the change (a copy of a million nodes would cost far more than the timed work);
// the array-based maps are copied back (one memcpy).
template <class I>
void restore(typename I::map& m, typename I::map const& base, std::vector<u32> const& changed,
             bool was_insert) {
    if constexpr (std::is_same_v<I, stdm>) {
        for (u32 r : changed) {
            if (was_insert) {
                if (base.find(r) == base.end()) m.erase(r);
            } else if (auto it = base.find(r); it != base.end()) {
                m.emplace(r, it->second);
            }
        }
    } else {
        m = base;
    }
}

// ---------------------------------------------------------------- workloads

template <class I>
void bm_bulk_append(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using map = typename I::map;
    auto const u = I::uids(d.all);
    auto const last = bench::time_on_copy(st, [] { return map{}; },
                                          [&](map& m) { I::insert_set(m, u); });
    bench::check_sig(st, map_sig<I>(last), d.sig_appended);
    bench::set_elems(st, d.all.size());
}

template <class I>
void bm_insert_middle(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using map = typename I::map;
    map const base = I::from(d.evens);
    auto const u = I::uids(d.odd_new);
    map work = base;
    bench::time_with_reset(
        st, work, [&](map& m) { I::insert_set(m, u); },
        [&](map& m) { restore<I>(m, base, d.odd_new, true); });
    bench::check_sig(st, map_sig<I>(work), d.sig_inserted);
    bench::set_elems(st, d.odd_new.size()); // per inserted UID
}

template <class I>
void bm_erase_sparse(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using map = typename I::map;
    using out_t = typename I::out_t;
    map const base = I::from(d.mailbox);
    auto const u = I::uids(d.erase_uids);
    struct work_t {
        map m;
        out_t dropped;
    } work{base, out_t{}};
    bench::time_with_reset(
        st, work, [&](work_t& w) { I::erase_set(w.m, u, w.dropped); },
        [&](work_t& w) {
            restore<I>(w.m, base, d.erase_uids, false);
            w.dropped = out_t{};
        });
    bench::check_sig(st, map_sig<I>(work.m), d.sig_erased_map) &&
        bench::check(st, uid_sig<I>(work.dropped) == d.sig_dropped, "dropped virtual UIDs");
    bench::set_elems(st, d.erase_uids.size()); // per UID of the erased set
}

template <class I>
void bm_translate(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using out_t = typename I::out_t;
    auto const m = I::from(d.mailbox);
    auto const u = I::uids(d.tr_uids);
    auto const last = bench::time_on_copy(st, [] { return out_t{}; },
                                          [&](out_t& out) { I::translate(m, u, out); });
    bench::check(st, uid_sig<I>(last) == d.sig_translated, "translated virtual UIDs");
    bench::set_elems(st, d.tr_uids.size()); // per UID of the translated set
}

template <class I>
void bm_lookup(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    auto const m = I::from(d.mailbox);
    u64 s = 0;
    for (auto _ : st) {
        s = I::lookup_sum(m, d.queries);
        benchmark::DoNotOptimize(s);
    }
    bench::check(st, s == d.lookup_sum, "sum of the looked-up virtual UIDs");
    bench::set_elems(st, d.queries.size());
}

// ---------------------------------------------------------------- registration

std::vector<std::size_t> g_ns;

void reg(std::string const& workload, char const* impl, void (*fn)(benchmark::State&)) {
    auto* b = benchmark::RegisterBenchmark(("BM_uid_map_" + workload + "/" + impl).c_str(), fn);
    b->Unit(benchmark::kMicrosecond);
    for (auto n : g_ns) b->Arg(static_cast<std::int64_t>(n));
    if (g_ns.size() > 1) b->Complexity(benchmark::oAuto);
}

template <class... Is>
void reg_all() {
    (reg("bulk_append", Is::name, bm_bulk_append<Is>), ...);
    (reg("insert_middle", Is::name, bm_insert_middle<Is>), ...);
    (reg("erase_sparse", Is::name, bm_erase_sparse<Is>), ...);
    (reg("translate", Is::name, bm_translate<Is>), ...);
    (reg("lookup", Is::name, bm_lookup<Is>), ...);
}

} // namespace

int main(int argc, char** argv) {
    g_ns = bench::parse_n(argc, argv, 1'000'000);
    bench::print_peers();
#if VFOLDER_BENCH_HAVE_DOVECOT
    dvc_init();
#endif
    reg_all<vf
#if VFOLDER_BENCH_HAVE_DOVECOT
            , dv
#endif
            , stdm, flat>();
    return bench::run(argc, argv);
}

// seq_range_set against Dovecot's seq_range_array, CRoaring, Boost.ICL interval_set and
// std::set, side by side (workloads: /work/shared/BENCHMARKS.md, results: README.md).
//
// Names: BM_srs_<workload>/<impl>/<N>. Each impl uses its natural best API for the
// workload; the comment of each adapter says which calls. Inputs are built once per N
// (fixed seeds) and every benchmark compares its result, once, outside the timed loop,
// with a reference computed by std::sort / std::set_* on plain vectors.
#include "bench_common.hpp"

#include <vfolder/core/seq_range_set.hpp>

#include <boost/icl/interval_set.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <type_traits>

namespace {

using bench::ranges32;
using bench::sig;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using cspan = std::span<u32 const>;

// ---------------------------------------------------------------- inputs and references

struct data {
    std::size_t n = 0;
    std::vector<u32> seq, sparse, rnd; // append, append_sparse, random_add inputs
    std::vector<u32> a;                // sorted unique rnd: "the random_add set"
    ranges32 a_r;
    std::vector<u32> brem, bmer;       // remove_set / merge inputs (sorted unique)
    ranges32 brem_r, bmer_r;
    std::vector<u32> queries;          // exists
    std::vector<u32> expunged;         // mail_build input (unsorted, duplicates)
    std::vector<u32> mail;             // [1, N] minus expunged
    ranges32 mail_r;
    std::vector<u32> mrem;             // mail_remove input (unsorted)
    std::vector<u32> mma, mmb;         // mail_merge inputs (sorted unique)
    ranges32 mma_r, mmb_r;
    std::size_t mm_values = 0;         // raw values of the two mail_merge inputs

    sig sig_seq, sig_sparse, sig_a, sig_removed, sig_merged, sig_mail, sig_mail_removed,
        sig_mail_merged;
    std::size_t hits = 0;
    u64 fold_a = 0;

    explicit data(std::size_t n_) : n(n_) {
        auto const N = static_cast<u32>(n);
        seq.resize(n);
        sparse.resize(n);
        for (u32 i = 0; i < N; ++i) {
            seq[i] = i + 1;
            sparse[i] = 2 * (i + 1);
        }
        rnd = bench::random_values(n, 1, 2 * N, 11);
        a = bench::sorted_unique(rnd);
        a_r = bench::runs_of(a);
        brem = bench::sorted_unique(bench::random_values(n / 10, 1, 2 * N, 12));
        bmer = bench::sorted_unique(bench::random_values(n / 2, 1, 2 * N, 13));
        brem_r = bench::runs_of(brem);
        bmer_r = bench::runs_of(bmer);
        queries = bench::random_values(n, 1, 2 * N, 14);
        expunged = bench::random_values(n / 50, 1, N, 15);
        auto const exp_u = bench::sorted_unique(expunged);
        std::set_difference(seq.begin(), seq.end(), exp_u.begin(), exp_u.end(),
                            std::back_inserter(mail));
        mail_r = bench::runs_of(mail);
        mrem = bench::random_values(n / 100, 1, N, 16);
        auto const mma_raw = bench::random_values(n / 100, 1, N, 17);
        auto const mmb_raw = bench::random_values(n / 100, 1, N, 18);
        mm_values = mma_raw.size() + mmb_raw.size();
        mma = bench::sorted_unique(mma_raw);
        mmb = bench::sorted_unique(mmb_raw);
        mma_r = bench::runs_of(mma);
        mmb_r = bench::runs_of(mmb);

        sig_seq = bench::sig_of(seq);
        sig_sparse = bench::sig_of(sparse);
        sig_a = bench::sig_of(a);
        std::vector<u32> t;
        std::set_difference(a.begin(), a.end(), brem.begin(), brem.end(), std::back_inserter(t));
        sig_removed = bench::sig_of(t);
        t.clear();
        std::set_union(a.begin(), a.end(), bmer.begin(), bmer.end(), std::back_inserter(t));
        sig_merged = bench::sig_of(t);
        for (u32 q : queries) hits += std::binary_search(a.begin(), a.end(), q) ? 1u : 0u;
        for (u32 v : a) fold_a = bench::fold(fold_a, v);
        sig_mail = bench::sig_of(mail);
        auto const mrem_u = bench::sorted_unique(mrem);
        t.clear();
        std::set_difference(mail.begin(), mail.end(), mrem_u.begin(), mrem_u.end(),
                            std::back_inserter(t));
        sig_mail_removed = bench::sig_of(t);
        t.clear();
        std::set_union(mma.begin(), mma.end(), mmb.begin(), mmb.end(), std::back_inserter(t));
        sig_mail_merged = bench::sig_of(t);
    }
};

data const& data_for(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<data>> cache;
    auto& p = cache[n];
    if (!p) p = std::make_unique<data>(n);
    return *p;
}

// ---------------------------------------------------------------- implementations
// Each adapter: set type; from(ranges, sorted values) for untimed setup; add_each (one
// call per value); remove_set; merge; hits (membership queries); fold_values (visit all
// values in order); mail_build; remove_values (mail_remove); for_each_value (checks).

// vfolder::seq_range_set. Bulk paths: insert_unsorted (random_add "vfolder_bulk",
// mail_build, mail_remove), then one merge pass (remove_set).
struct vf {
    static constexpr char const* name = "vfolder";
    using set = vfolder::seq_range_set<u32>;
    static set from(ranges32 const& r, std::vector<u32> const&) {
        set s;
        s.reserve(r.size());
        for (auto const& x : r) s.add_range(x.first, x.last);
        return s;
    }
    static void add_each(set& s, cspan v) {
        for (u32 x : v) s.add(x);
    }
    static void add_bulk(set& s, std::span<u32> scratch) { s.insert_unsorted(scratch); }
    static void remove_set(set& a, set const& b) { a.remove_set(b); }
    static void merge(set& a, set const& b) { a.merge(b); }
    static std::size_t hits(set const& s, cspan q) {
        std::size_t h = 0;
        for (u32 x : q) h += s.contains(x) ? 1u : 0u;
        return h;
    }
    static u64 fold_values(set const& s) {
        u64 h = 0;
        s.for_each_value([&](u32 v) { h = bench::fold(h, v); });
        return h;
    }
    // [1, N], then remove_set of the expunged values bulk-built with insert_unsorted.
    static void mail_build(set& s, u32 n, std::span<u32> expunged) {
        s.add_range(1, n);
        set e;
        e.insert_unsorted(expunged);
        s.remove_set(e);
    }
    // insert_unsorted of the values into a temporary set, then one remove_set pass.
    static void remove_values(set& s, std::span<u32> values) {
        set e;
        e.insert_unsorted(values);
        s.remove_set(e);
    }
    template <class F>
    static void for_each_value(set const& s, F&& f) {
        s.for_each_value(f);
    }
};

#if VFOLDER_BENCH_HAVE_DOVECOT
// Dovecot's ARRAY_TYPE(seq_range): seq_range_array_add / _add_range / _remove /
// _remove_seq_range / _merge / seq_range_exists, each loop in C (peers/dovecot_peer.c).
struct dv {
    static constexpr char const* name = "dovecot";
    using set = bench::dovecot_set;
    static set from(ranges32 const& r, std::vector<u32> const&) { return set(r); }
    static void add_each(set& s, cspan v) { dvc_srs_add_each(s.get(), v.data(), v.size()); }
    static void remove_set(set& a, set const& b) {
        benchmark::DoNotOptimize(dvc_srs_remove_set(a.get(), b.get()));
    }
    static void merge(set& a, set const& b) { dvc_srs_merge(a.get(), b.get()); }
    static std::size_t hits(set const& s, cspan q) {
        return dvc_srs_exists_each(s.get(), q.data(), q.size());
    }
    static u64 fold_values(set const& s) { return dvc_srs_fold_values(s.get()); }
    // _add_range(1, N), then seq_range_array_remove of each expunged value.
    static void mail_build(set& s, u32 n, std::span<u32> expunged) {
        dvc_srs_add_range(s.get(), 1, n);
        benchmark::DoNotOptimize(dvc_srs_remove_each(s.get(), expunged.data(), expunged.size()));
    }
    static void remove_values(set& s, std::span<u32> values) {
        benchmark::DoNotOptimize(dvc_srs_remove_each(s.get(), values.data(), values.size()));
    }
    template <class F>
    static void for_each_value(set const& s, F&& f) {
        s.for_each_value(f);
    }
};
#endif

#if VFOLDER_BENCH_HAVE_ROARING
// CRoaring: roaring_bitmap_add / add_many / add_range_closed / remove_many /
// andnot_inplace / or_inplace / contains, and the bulk-reading iterator. Sets are built
// with add_many (as a user would) and not run-optimised (that would slow the operations).
struct cr {
    static constexpr char const* name = "croaring";
    using set = bench::roaring;
    static set from(ranges32 const&, std::vector<u32> const& v) {
        set s;
        roaring_bitmap_add_many(s.get(), v.size(), v.data());
        return s;
    }
    static void add_each(set& s, cspan v) {
        roaring_bitmap_t* p = s.get();
        for (u32 x : v) roaring_bitmap_add(p, x);
    }
    static void add_bulk(set& s, std::span<u32> v) {
        roaring_bitmap_add_many(s.get(), v.size(), v.data());
    }
    static void remove_set(set& a, set const& b) { roaring_bitmap_andnot_inplace(a.get(), b.get()); }
    static void merge(set& a, set const& b) { roaring_bitmap_or_inplace(a.get(), b.get()); }
    static std::size_t hits(set const& s, cspan q) {
        roaring_bitmap_t const* p = s.get();
        std::size_t h = 0;
        for (u32 x : q) h += roaring_bitmap_contains(p, x) ? 1u : 0u;
        return h;
    }
    static u64 fold_values(set const& s) {
        u64 h = 0;
        s.for_each_value([&](u32 v) { h = bench::fold(h, v); });
        return h;
    }
    // add_range_closed(1, N), then remove_many of the expunged values.
    static void mail_build(set& s, u32 n, std::span<u32> expunged) {
        roaring_bitmap_add_range_closed(s.get(), 1, n);
        roaring_bitmap_remove_many(s.get(), expunged.size(), expunged.data());
    }
    static void remove_values(set& s, std::span<u32> values) {
        roaring_bitmap_remove_many(s.get(), values.size(), values.data());
    }
    template <class F>
    static void for_each_value(set const& s, F&& f) {
        s.for_each_value(f);
    }
};
#endif

// boost::icl::interval_set<uint32_t> (default discrete_interval): add / subtract of
// elements and intervals, operator+= / -= between sets, icl::contains.
struct icl {
    static constexpr char const* name = "icl";
    using set = boost::icl::interval_set<u32>;
    using iv = set::interval_type;
    static set from(ranges32 const& r, std::vector<u32> const&) {
        set s;
        auto hint = s.end();
        for (auto const& x : r) hint = s.add(hint, iv::closed(x.first, x.last));
        return s;
    }
    static void add_each(set& s, cspan v) {
        for (u32 x : v) s.add(x);
    }
    static void remove_set(set& a, set const& b) { a -= b; }
    static void merge(set& a, set const& b) { a += b; }
    static std::size_t hits(set const& s, cspan q) {
        std::size_t h = 0;
        for (u32 x : q) h += boost::icl::contains(s, x) ? 1u : 0u;
        return h;
    }
    template <class F>
    static void for_each_value(set const& s, F&& f) {
        for (auto const& i : s) {
            u32 const l = boost::icl::last(i);
            for (u32 v = boost::icl::first(i);; ++v) {
                f(v);
                if (v == l) break;
            }
        }
    }
    static u64 fold_values(set const& s) {
        u64 h = 0;
        for_each_value(s, [&](u32 v) { h = bench::fold(h, v); });
        return h;
    }
    // add(closed(1, N)), then subtract each expunged value.
    static void mail_build(set& s, u32 n, std::span<u32> expunged) {
        s.add(iv::closed(1, n));
        for (u32 x : expunged) s.subtract(x);
    }
    static void remove_values(set& s, std::span<u32> values) {
        for (u32 x : values) s.subtract(x);
    }
};

// std::set<uint32_t>: insert with the end() hint (O(1) for ascending values), erase,
// range insert for merge, contains.
struct stds {
    static constexpr char const* name = "std_set";
    using set = std::set<u32>;
    static set from(ranges32 const&, std::vector<u32> const& v) {
        set s;
        for (u32 x : v) s.insert(s.end(), x);
        return s;
    }
    static void add_each(set& s, cspan v) {
        for (u32 x : v) s.insert(s.end(), x);
    }
    static void remove_set(set& a, set const& b) {
        for (u32 x : b) a.erase(x);
    }
    static void merge(set& a, set const& b) { a.insert(b.begin(), b.end()); }
    static std::size_t hits(set const& s, cspan q) {
        std::size_t h = 0;
        for (u32 x : q) h += s.contains(x) ? 1u : 0u;
        return h;
    }
    static u64 fold_values(set const& s) {
        u64 h = 0;
        for (u32 v : s) h = bench::fold(h, v);
        return h;
    }
    // Insert 1..N ascending (hinted), then erase each expunged value.
    static void mail_build(set& s, u32 n, std::span<u32> expunged) {
        for (u32 v = 1; v <= n; ++v) s.insert(s.end(), v);
        for (u32 x : expunged) s.erase(x);
    }
    static void remove_values(set& s, std::span<u32> values) {
        for (u32 x : values) s.erase(x);
    }
    template <class F>
    static void for_each_value(set const& s, F&& f) {
        for (u32 v : s) f(v);
    }
};

template <class I>
sig sig_of(typename I::set const& s) {
    sig g;
    I::for_each_value(s, [&](u32 v) { g.add(v); });
    if constexpr (std::is_same_v<I, vf>) {
        // vfolder also caches count() and keeps ranges coalesced: check both.
        if (s.count() != g.count || !s.check_invariants()) g.hash = ~g.hash;
    }
    return g;
}

// ---------------------------------------------------------------- workloads

template <class I>
void add_one_by_one(benchmark::State& st, std::vector<u32> const& in, sig const& want) {
    using set = typename I::set;
    auto const last = bench::time_on_copy(st, [] { return set{}; },
                                          [&](set& s) { I::add_each(s, in); });
    bench::check_sig(st, sig_of<I>(last), want);
}

template <class I>
void bm_append(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    add_one_by_one<I>(st, d.seq, d.sig_seq);
    bench::set_elems(st, d.n);
}

template <class I>
void bm_append_sparse(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    add_one_by_one<I>(st, d.sparse, d.sig_sparse);
    bench::set_elems(st, d.n);
}

template <class I>
void bm_random_add(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    add_one_by_one<I>(st, d.rnd, d.sig_a);
    bench::set_elems(st, d.n);
}

// Bulk insert of the same values; the caller's buffer (a copy, made untimed) is
// given away, as insert_unsorted allows.
template <class I>
void bm_random_add_bulk(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using set = typename I::set;
    struct work {
        set s;
        std::vector<u32> buf;
    };
    auto const last = bench::time_on_copy(
        st, [&] { return work{set{}, d.rnd}; }, [&](work& w) { I::add_bulk(w.s, w.buf); });
    bench::check_sig(st, sig_of<I>(last.s), d.sig_a);
    bench::set_elems(st, d.n);
}

template <class I>
void bm_remove_set(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using set = typename I::set;
    set const a = I::from(d.a_r, d.a);
    set const b = I::from(d.brem_r, d.brem);
    auto const last = bench::time_on_copy(st, [&] { return set(a); },
                                          [&](set& s) { I::remove_set(s, b); });
    bench::check_sig(st, sig_of<I>(last), d.sig_removed);
    bench::set_elems(st, d.n);
}

template <class I>
void bm_merge(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using set = typename I::set;
    set const a = I::from(d.a_r, d.a);
    set const b = I::from(d.bmer_r, d.bmer);
    auto const last = bench::time_on_copy(st, [&] { return set(a); },
                                          [&](set& s) { I::merge(s, b); });
    bench::check_sig(st, sig_of<I>(last), d.sig_merged);
    bench::set_elems(st, d.n);
}

template <class I>
void bm_exists(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    auto const a = I::from(d.a_r, d.a);
    std::size_t h = 0;
    for (auto _ : st) {
        h = I::hits(a, d.queries);
        benchmark::DoNotOptimize(h);
    }
    bench::check(st, h == d.hits, "number of hits");
    bench::set_elems(st, d.n);
}

template <class I>
void bm_iterate(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    auto const a = I::from(d.a_r, d.a);
    u64 h = 0;
    for (auto _ : st) {
        h = I::fold_values(a);
        benchmark::DoNotOptimize(h);
    }
    bench::check(st, h == d.fold_a, "fold of the visited values");
    bench::set_elems(st, d.a.size()); // per visited value
}

template <class I>
void bm_mail_build(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using set = typename I::set;
    struct work {
        set s;
        std::vector<u32> buf;
    };
    auto const last = bench::time_on_copy(
        st, [&] { return work{set{}, d.expunged}; },
        [&](work& w) { I::mail_build(w.s, static_cast<u32>(d.n), w.buf); });
    bench::check_sig(st, sig_of<I>(last.s), d.sig_mail);
    bench::set_elems(st, d.n);
}

template <class I>
void bm_mail_remove(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using set = typename I::set;
    set const m = I::from(d.mail_r, d.mail);
    struct work {
        set s;
        std::vector<u32> buf;
    };
    auto const last = bench::time_on_copy(
        st, [&] { return work{set(m), d.mrem}; },
        [&](work& w) { I::remove_values(w.s, w.buf); });
    bench::check_sig(st, sig_of<I>(last.s), d.sig_mail_removed);
    bench::set_elems(st, d.n); // per element of N
}

template <class I>
void bm_mail_merge(benchmark::State& st) {
    auto const& d = data_for(static_cast<std::size_t>(st.range(0)));
    using set = typename I::set;
    set const a = I::from(d.mma_r, d.mma);
    set const b = I::from(d.mmb_r, d.mmb);
    auto const last = bench::time_on_copy(st, [&] { return set(a); },
                                          [&](set& s) { I::merge(s, b); });
    bench::check_sig(st, sig_of<I>(last), d.sig_mail_merged);
    bench::set_elems(st, d.mm_values); // per merged (input) value
}

// ---------------------------------------------------------------- registration

std::vector<std::size_t> g_ns;

void reg(std::string const& workload, char const* impl, void (*fn)(benchmark::State&)) {
    auto* b = benchmark::RegisterBenchmark(("BM_srs_" + workload + "/" + impl).c_str(), fn);
    b->Unit(benchmark::kMicrosecond);
    for (auto n : g_ns) b->Arg(static_cast<std::int64_t>(n));
    if (g_ns.size() > 1) b->Complexity(benchmark::oAuto);
}

template <class... Is>
void reg_all() {
    // Workload by workload, every impl side by side.
    (reg("append", Is::name, bm_append<Is>), ...);
    (reg("append_sparse", Is::name, bm_append_sparse<Is>), ...);
    auto random_add = []<class I>(I*) {
        reg("random_add", I::name, bm_random_add<I>);
        if constexpr (requires(typename I::set& s, std::span<u32> v) { I::add_bulk(s, v); })
            reg("random_add", (std::string(I::name) + "_bulk").c_str(), bm_random_add_bulk<I>);
    };
    (random_add(static_cast<Is*>(nullptr)), ...);
    (reg("remove_set", Is::name, bm_remove_set<Is>), ...);
    (reg("merge", Is::name, bm_merge<Is>), ...);
    (reg("exists", Is::name, bm_exists<Is>), ...);
    (reg("iterate", Is::name, bm_iterate<Is>), ...);
    (reg("mail_build", Is::name, bm_mail_build<Is>), ...);
    (reg("mail_remove", Is::name, bm_mail_remove<Is>), ...);
    (reg("mail_merge", Is::name, bm_mail_merge<Is>), ...);
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
#if VFOLDER_BENCH_HAVE_ROARING
            , cr
#endif
            , icl, stds>();
    return bench::run(argc, argv);
}

// Shared by the benchmark binaries: the `--n=` flag, deterministic inputs, result
// signatures, thin RAII handles over the C peers (CRoaring, Dovecot), and the loop that
// times one operation on a freshly restored copy of its input.
#pragma once

#include <benchmark/benchmark.h>

#if VFOLDER_BENCH_HAVE_ROARING
#include <roaring/roaring.h>
#endif
#if VFOLDER_BENCH_HAVE_DOVECOT
#include <dovecot_peer.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace bench {

#if VFOLDER_BENCH_HAVE_ROARING
inline constexpr bool have_roaring = true;
#else
inline constexpr bool have_roaring = false;
#endif
#if VFOLDER_BENCH_HAVE_DOVECOT
inline constexpr bool have_dovecot = true;
#else
inline constexpr bool have_dovecot = false;
#endif

// ---------------------------------------------------------------- inputs

// splitmix64: deterministic across compilers and standard libraries (unlike
// std::uniform_int_distribution), so every peer and every build sees the same values.
struct rng {
    std::uint64_t s;
    explicit rng(std::uint64_t seed) : s(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        return z ^ (z >> 31);
    }
    // Uniform in [lo, hi] (multiply-shift of the top 32 bits; bias below 2^-32 * span).
    std::uint32_t between(std::uint32_t lo, std::uint32_t hi) {
        std::uint64_t const span = static_cast<std::uint64_t>(hi - lo) + 1u;
        return static_cast<std::uint32_t>(lo + (((next() >> 32) * span) >> 32));
    }
};

inline std::vector<std::uint32_t> random_values(std::size_t n, std::uint32_t lo, std::uint32_t hi,
                                                std::uint64_t seed) {
    rng r(seed);
    std::vector<std::uint32_t> v(n);
    for (auto& x : v) x = r.between(lo, hi);
    return v;
}

inline std::vector<std::uint32_t> sorted_unique(std::vector<std::uint32_t> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

struct range32 {
    std::uint32_t first, last;
};
using ranges32 = std::vector<range32>;

// The maximal runs of a sorted, duplicate-free vector.
inline ranges32 runs_of(std::vector<std::uint32_t> const& sorted) {
    ranges32 r;
    for (std::uint32_t v : sorted) {
        if (!r.empty() && r.back().last + 1u == v)
            r.back().last = v;
        else
            r.push_back({v, v});
    }
    return r;
}

// ---------------------------------------------------------------- signatures

inline std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdu;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53u;
    return z ^ (z >> 33);
}

// An order-independent signature of a set of values (or of pairs): a wrong answer from a
// fast implementation fails the benchmark.
struct sig {
    std::uint64_t count = 0;
    std::uint64_t hash = 0;
    void add(std::uint64_t v) {
        ++count;
        hash += mix(v + 0x632be59bd9b4e019u);
    }
    friend bool operator==(sig const&, sig const&) = default;
};

inline sig sig_of(std::vector<std::uint32_t> const& v) {
    sig s;
    for (auto x : v) s.add(x);
    return s;
}

// The fold that `iterate` computes over the visited values: cheap, order-dependent, and
// impossible to turn into a closed form or to vectorise, so every value is really visited.
inline std::uint64_t fold(std::uint64_t h, std::uint32_t v) { return ((h << 5) | (h >> 59)) ^ v; }

inline std::atomic<int> mismatches{0};

// Reports a wrong result: the benchmark shows "ERROR OCCURRED", the smoke test fails.
inline bool check(benchmark::State& st, bool ok, char const* what) {
    if (ok) return true;
    ++mismatches;
    std::string msg = std::string("MISMATCH: ") + what + " differs from the reference";
    std::fprintf(stderr, "%s\n", msg.c_str());
    st.SkipWithError(msg.c_str());
    return false;
}

inline bool check_sig(benchmark::State& st, sig const& got, sig const& want) {
    return check(st, got == want, "result set (count + hash)");
}

// Records the elements per iteration: `elems`, items_per_second, and `per_elem`, the CPU
// time per element (seconds in the JSON, shown as e.g. "2.5ns"): the figure that
// benchmarks/README.md tabulates.
inline void set_elems(benchmark::State& st, std::size_t elems) {
    auto const e = static_cast<double>(elems);
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(elems));
    st.counters["elems"] = benchmark::Counter(e);
    st.counters["per_elem"] = benchmark::Counter(
        e, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Times `op(work)` once per iteration; before every iteration but the first,
// `reset(work)` (not timed) brings `work` back to its initial state.
template <class W, class Op, class Reset>
void time_with_reset(benchmark::State& st, W& work, Op&& op, Reset&& reset) {
    bool first = true;
    for (auto _ : st) {
        if (!first) {
            st.PauseTiming();
            reset(work);
            st.ResumeTiming();
        }
        first = false;
        op(work);
        benchmark::DoNotOptimize(work);
        benchmark::ClobberMemory();
    }
}

// Times `op(work)` on a fresh `work = make()` per iteration; making (and destroying the
// previous one) is not timed. Returns the last result for the correctness check.
template <class Make, class Op>
auto time_on_copy(benchmark::State& st, Make&& make, Op&& op) {
    auto work = make();
    time_with_reset(st, work, op, [&](auto& w) { w = make(); });
    return work;
}

// ---------------------------------------------------------------- C peers

#if VFOLDER_BENCH_HAVE_ROARING
// Owns a roaring_bitmap_t.
class roaring {
public:
    roaring() : p_(roaring_bitmap_create()) {}
    explicit roaring(roaring_bitmap_t* p) : p_(p) {}
    roaring(roaring const& o) : p_(roaring_bitmap_copy(o.p_)) {}
    roaring(roaring&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    roaring& operator=(roaring o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~roaring() {
        if (p_) roaring_bitmap_free(p_);
    }
    roaring_bitmap_t* get() const noexcept { return p_; }

    template <class F>
    void for_each_value(F&& f) const {
        roaring_uint32_iterator_t it;
        roaring_init_iterator(p_, &it);
        std::uint32_t buf[256];
        while (true) {
            std::uint32_t const k = roaring_read_uint32_iterator(&it, buf, 256);
            for (std::uint32_t i = 0; i < k; ++i) f(buf[i]);
            if (k < 256) break;
        }
    }

private:
    roaring_bitmap_t* p_;
};
#endif

#if VFOLDER_BENCH_HAVE_DOVECOT
// Owns a Dovecot ARRAY_TYPE(seq_range) (through dovecot_peer.c).
class dovecot_set {
public:
    dovecot_set() : p_(dvc_srs_new()) {}
    explicit dovecot_set(dvc_srs* p) : p_(p) {}
    explicit dovecot_set(ranges32 const& r) {
        static_assert(sizeof(range32) == sizeof(dvc_range));
        p_ = dvc_srs_from_ranges(reinterpret_cast<dvc_range const*>(r.data()), r.size());
    }
    dovecot_set(dovecot_set const& o) : p_(dvc_srs_copy(o.p_)) {}
    dovecot_set(dovecot_set&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    dovecot_set& operator=(dovecot_set o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~dovecot_set() { dvc_srs_free(p_); }
    dvc_srs* get() const noexcept { return p_; }

    std::span<dvc_range const> ranges() const {
        std::size_t n = 0;
        dvc_range const* r = dvc_srs_ranges(p_, &n);
        return {r, n};
    }
    template <class F>
    void for_each_value(F&& f) const {
        for (auto const& r : ranges())
            for (std::uint32_t v = r.first;; ++v) {
                f(v);
                if (v == r.last) break;
            }
    }

private:
    dvc_srs* p_;
};
#endif

// ---------------------------------------------------------------- main

// Parses and removes `--n=N[,N...]` (default: `default_n`); the environment variable
// VFOLDER_BENCH_N works the same way. Several sizes add a fitted Big-O per benchmark.
inline std::vector<std::size_t> parse_n(int& argc, char** argv, std::size_t default_n) {
    std::string spec;
    if (char const* e = std::getenv("VFOLDER_BENCH_N")) spec = e;
    int w = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], "--n=", 4) == 0)
            spec = argv[i] + 4;
        else
            argv[w++] = argv[i];
    }
    argc = w;
    std::vector<std::size_t> ns;
    std::size_t pos = 0;
    while (pos < spec.size()) {
        std::size_t const comma = std::min(spec.find(',', pos), spec.size());
        std::string const item = spec.substr(pos, comma - pos);
        char* end = nullptr;
        unsigned long long const v = std::strtoull(item.c_str(), &end, 10);
        if (end == item.c_str() || *end != '\0' || v < 100 || v > 100'000'000) {
            std::fprintf(stderr, "bad --n value '%s' (want integers in [100, 1e8])\n", item.c_str());
            std::exit(2);
        }
        ns.push_back(static_cast<std::size_t>(v));
        pos = comma + 1;
    }
    if (ns.empty()) ns.push_back(default_n);
    return ns;
}

inline void print_peers() {
    std::printf("vfolder benchmarks: peers: std, Boost (ICL / container), CRoaring %s, Dovecot %s\n",
                have_roaring ? "available" : "NOT available (libroaring-dev not found at configure)",
                have_dovecot ? "available (libdovecot seq_range_array)"
                             : "NOT available (run scripts/fetch-dovecot.sh and reconfigure)");
    std::fflush(stdout);
}

// Runs the registered benchmarks; exits non-zero if a result was wrong.
inline int run(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (mismatches.load() != 0) {
        std::fprintf(stderr, "%d benchmark(s) computed a wrong result\n", mismatches.load());
        return 1;
    }
    return 0;
}

} // namespace bench

// The sync engine (vfolder::folder over memory_world backends and a memory_store) against
// a naive "recompute everything" engine (naive_engine.hpp), side by side in one binary
// (workloads: BENCHMARKS.md, "Sync engine workloads").
//
// Names: BM_engine_<workload>/<impl>/<N>/<B or k>. One iteration is one sync (initial and
// reopen: open + sync); what is not the sync — making the backend changes, closing the
// previous folder, cleaning up appended messages — runs with the timers paused.
// Correctness is checked once per benchmark, outside the timed loop: the view's message
// count against a scan of the backends, and the view's flags of changed messages.
//
// Memory: a counting global operator new / delete (this binary only) tracks the bytes
// requested and not yet freed; BM_engine_memory reports what destroying the folder frees
// after its initial sync, per message (the engine's state), and what the store kept.
#include "bench_common.hpp"
#include "naive_engine.hpp"

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

// ---------------------------------------------------------------- counting allocator

namespace {
// Bytes requested through operator new and not yet deleted. Updated with a relaxed load
// and store (no locked RMW: the benchmarks are single-threaded, and the counter must not
// slow down the allocation-heavy naive engine more than vfolder).
std::atomic<std::int64_t> g_live{0};
constexpr std::size_t alloc_header = 16; // keeps malloc's 16-byte alignment

void* counted_alloc(std::size_t n) noexcept {
    void* p = std::malloc(n + alloc_header);
    if (!p) return nullptr;
    *static_cast<std::size_t*>(p) = n;
    g_live.store(g_live.load(std::memory_order_relaxed) + static_cast<std::int64_t>(n), std::memory_order_relaxed);
    return static_cast<char*>(p) + alloc_header;
}
void counted_free(void* p) noexcept {
    if (!p) return;
    void* base = static_cast<char*>(p) - alloc_header;
    std::size_t const n = *static_cast<std::size_t*>(base);
    g_live.store(g_live.load(std::memory_order_relaxed) - static_cast<std::int64_t>(n), std::memory_order_relaxed);
    std::free(base);
}
std::int64_t live_bytes() { return g_live.load(std::memory_order_relaxed); }
} // namespace

void* operator new(std::size_t n) {
    if (void* p = counted_alloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = counted_alloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::nothrow_t const&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, std::nothrow_t const&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, std::nothrow_t const&) noexcept { counted_free(p); }
void operator delete[](void* p, std::nothrow_t const&) noexcept { counted_free(p); }

namespace {

namespace vf = vfolder;
using u32 = std::uint32_t;

// ---------------------------------------------------------------- the backends

constexpr std::int64_t base_time = 1580515200; // 1-Feb-2020
constexpr u32 date_span = 3u * 365u * 86400u;  // received dates: uniform over three years

// N messages over B backends b000, b001, ...: each message in a random backend, with a
// random received date, \Seen with probability 1/3, no keywords.
struct world {
    std::size_t n, b;
    vf::memory_world mail{100};
    std::vector<std::string> names;
    std::vector<vf::memory_mailbox*> boxes;

    world(std::size_t n_, std::size_t b_) : n(n_), b(b_) {
        for (std::size_t i = 0; i < b; ++i) {
            std::string num = std::to_string(i);
            names.push_back("b" + std::string(num.size() < 3 ? 3 - num.size() : 0, '0') + num);
            boxes.push_back(*mail.create(names.back()));
        }
        bench::rng r(0x5eed0000u + n * 131u + b);
        for (std::size_t i = 0; i < n; ++i) {
            auto* box = boxes[r.between(0, static_cast<u32>(b - 1))];
            vf::mail_time const when{base_time + r.between(0, date_span)};
            vf::flag_set const fl = r.between(0, 2) == 0 ? vf::flag_set(vf::system_flag::seen) : vf::flag_set{};
            box->append(when, vf::message_flags{fl, {}}, {}, 1000 + i % 5000);
        }
    }

    // How many messages match `p` now (the expected view size after an applying sync).
    std::size_t count_matching(vf::search_program const& p) const {
        std::size_t c = 0;
        for (auto const* box : boxes)
            for (auto const& m : box->messages())
                if (p.matches(vf::memory_mailbox::meta(m))) ++c;
        return c;
    }
};

// One world at a time (1M messages take ~200 MB); benchmarks are registered so that the
// same (N, B) follow each other. Workloads leave it as they found it (modulo flags).
world& world_for(std::size_t n, std::size_t b) {
    static std::unique_ptr<world> w;
    if (!w || w->n != n || w->b != b) {
        w.reset();
        w = std::make_unique<world>(n, b);
    }
    return *w;
}

vf::search_program program_of(char const* text) {
    auto p = vf::search_program::parse(text);
    if (!p) std::abort();
    return *p;
}

// ---------------------------------------------------------------- the two engines
// open(), sync(apply_pending), close(), wipe() (forget the stored state), size(),
// flags_of(box, uid) (the view's flags, nullopt if not in the view).

struct vf_impl {
    static constexpr char const* name = "vfolder";
    using folder_t = vf::folder<vf::memory_provider, vf::memory_store>;

    world* w;
    vf::folder_definition def;
    vf::memory_store_world stores;
    std::optional<folder_t> f;

    vf_impl(world& w_, char const* program) : w(&w_), def(*vf::folder_definition::make(w_.names, program)) {}

    bool open() {
        vf::folder_options o;
        o.make_validity = [](vf::uid_validity p) { return vf::uid_validity{vf::value(p) + 1}; };
        auto r = folder_t::open(def, vf::memory_provider(w->mail), vf::memory_store(stores, "V"), std::move(o));
        if (!r) return false;
        f.emplace(std::move(r).value());
        return true;
    }
    bool sync(bool apply_pending) {
        auto r = f->sync(apply_pending ? vf::sync_flags::reopen : vf::sync_flags::none);
        benchmark::DoNotOptimize(r);
        return r.has_value();
    }
    void close() { f.reset(); }
    void wipe() { stores.wipe("V"); }
    std::size_t size() const { return f->size(); }
    std::optional<vf::flag_set> flags_of(std::size_t box, u32 uid) const {
        auto const v = f->to_virtual(w->names[box], vf::uid_set{{uid, uid}});
        if (v.empty()) return std::nullopt;
        auto m = f->find(vf::uid{v.begin()->first});
        if (!m) return std::nullopt;
        return m->flags;
    }
};

struct naive_impl {
    static constexpr char const* name = "naive";

    world* w;
    vf::search_program prog;
    bench::naive_engine::store stored;
    std::unique_ptr<bench::naive_engine> e; // (std::optional: a GCC 12 maybe-uninitialized false positive)

    naive_impl(world& w_, char const* program) : w(&w_), prog(program_of(program)) {}

    bool open() {
        e = std::make_unique<bench::naive_engine>(w->mail, w->names, prog, stored);
        return true;
    }
    bool sync(bool apply_pending) { return e->sync(apply_pending); }
    void close() { e.reset(); }
    void wipe() { stored = {}; }
    std::size_t size() const { return e->size(); }
    std::optional<vf::flag_set> flags_of(std::size_t box, u32 uid) const {
        return e->flags_of(static_cast<u32>(box), uid);
    }
};

bool check_size(benchmark::State& st, std::size_t got, std::size_t want) {
    if (got == want) return true;
    std::fprintf(stderr, "view has %zu messages, expected %zu\n", got, want);
    return bench::check(st, false, "view message count");
}

void set_msgs(benchmark::State& st, std::size_t n) { st.counters["msgs"] = benchmark::Counter(static_cast<double>(n)); }

// ---------------------------------------------------------------- workloads

// Open + first sync, nothing stored. Args: N, B.
template <class I>
void bm_initial_sync(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
    I e(w, "all");
    std::size_t const want = w.n;
    // One untimed run first: the figure is for a warm heap (a fresh process page-faults
    // in the engine's first few hundred MB, which on this VM cost up to ~1 s at 1M).
    bool ok = e.open() && e.sync(true);
    for (auto _ : st) {
        st.PauseTiming();
        e.close();
        e.wipe();
        st.ResumeTiming();
        ok = e.open() && e.sync(true) && ok;
    }
    if (bench::check(st, ok, "open/sync result")) check_size(st, e.size(), want);
    e.close(); // after the loop: not timed
    set_msgs(st, want);
}

// Stored state present, nothing changed: open + sync. Args: N, B.
template <class I>
void bm_reopen_unchanged(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
    I e(w, "all");
    bool ok = e.open() && e.sync(true);
    e.close();
    for (auto _ : st) {
        st.PauseTiming();
        e.close();
        st.ResumeTiming();
        ok = e.open() && e.sync(true) && ok;
    }
    if (bench::check(st, ok, "open/sync result")) check_size(st, e.size(), w.n);
    e.close();
    set_msgs(st, w.n);
}

// The backends that hold at least one message.
std::vector<std::size_t> nonempty_boxes(world const& w) {
    std::vector<std::size_t> v;
    for (std::size_t i = 0; i < w.boxes.size(); ++i)
        if (w.boxes[i]->size() != 0) v.push_back(i);
    return v;
}

// k \Flagged toggles spread over the backends (round robin, random messages), then one
// sync. Args: N, k (B = 100).
template <class I>
void bm_incremental_flags(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), 100);
    auto const k = static_cast<std::size_t>(st.range(1));
    I e(w, "all");
    bool ok = e.open() && e.sync(true);
    auto const boxes = nonempty_boxes(w);
    bench::rng r(77);
    std::vector<std::pair<std::size_t, u32>> changed(k);
    for (auto _ : st) {
        st.PauseTiming();
        for (std::size_t j = 0; j < k; ++j) {
            std::size_t const bi = boxes[j % boxes.size()];
            auto* box = w.boxes[bi];
            auto const& m = box->messages()[r.between(0, static_cast<u32>(box->size() - 1))];
            bool const flagged = m.flags.contains(vf::system_flag::flagged);
            changed[j] = {bi, vf::value(m.id)};
            box->modify_flags(m.id, flagged ? vf::modify_op::remove : vf::modify_op::add, vf::system_flag::flagged);
        }
        st.ResumeTiming();
        ok = e.sync(false) && ok;
    }
    if (bench::check(st, ok, "sync result") && check_size(st, e.size(), w.n)) {
        bool same = true;
        for (auto const& [bi, u] : changed) {
            auto const got = e.flags_of(bi, u);
            same = same && got && *got == w.boxes[bi]->find(vf::uid{u})->flags;
        }
        bench::check(st, same, "view flags of the changed messages");
    }
    e.close();
    set_msgs(st, w.n);
}

// k new messages over 10 of the backends (random recent dates), then one sync. Before
// each iteration (untimed) the previous iteration's messages are expunged and synced
// away, so the folder keeps N messages. Args: N, k (B = 100).
template <class I>
void bm_incremental_appends(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), 100);
    auto const k = static_cast<std::size_t>(st.range(1));
    I e(w, "all");
    bool ok = e.open() && e.sync(true);
    bench::rng r(78);
    std::vector<std::pair<std::size_t, vf::uid>> added;
    auto const drop_added = [&] {
        for (auto const& [bi, u] : added) w.boxes[bi]->expunge_one(u);
        added.clear();
    };
    std::int64_t t = base_time + date_span;
    for (auto _ : st) {
        st.PauseTiming();
        if (!added.empty()) {
            drop_added();
            ok = e.sync(false) && ok;
        }
        for (std::size_t j = 0; j < k; ++j) {
            std::size_t const bi = (j % 10) * 10 % w.b;
            t += 1 + r.between(0, 60);
            added.emplace_back(bi, w.boxes[bi]->append(vf::mail_time{t - r.between(0, 600)}, {}, {}, 2000));
        }
        st.ResumeTiming();
        ok = e.sync(false) && ok;
    }
    if (bench::check(st, ok, "sync result") && check_size(st, e.size(), w.n + added.size())) {
        bool all_in = true;
        for (auto const& [bi, u] : added) all_in = all_in && e.flags_of(bi, vf::value(u)).has_value();
        bench::check(st, all_in, "appended messages in the view");
    }
    drop_added();
    e.close();
    set_msgs(st, w.n);
}

// An "unseen" folder; k unseen messages (spread over the backends) become \Seen, a sync
// (they become pending removes, still visible), then unseen again, a sync (the pending
// removes are cancelled, same vuids). One iteration = one of these syncs. Args: N, k.
template <class I>
void bm_pending_churn(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), 100);
    auto k = static_cast<std::size_t>(st.range(1));
    I e(w, "unseen");
    std::vector<std::pair<std::size_t, vf::uid>> unseen;
    for (std::size_t bi = 0; bi < w.boxes.size(); ++bi)
        for (auto const& m : w.boxes[bi]->messages())
            if (!m.flags.contains(vf::system_flag::seen)) unseen.emplace_back(bi, m.id);
    std::size_t const want = unseen.size();
    k = std::min(k, unseen.size());
    // Evenly spaced over the (backend, UID) order: every backend gets its share.
    std::vector<std::pair<std::size_t, vf::uid>> chosen;
    for (std::size_t j = 0; j < k; ++j) chosen.push_back(unseen[j * unseen.size() / k]);
    bool ok = e.open() && e.sync(true);
    bool seen = false;
    auto const flip = [&] {
        seen = !seen;
        for (auto const& [bi, u] : chosen)
            w.boxes[bi]->modify_flags(u, seen ? vf::modify_op::add : vf::modify_op::remove, vf::system_flag::seen);
    };
    for (auto _ : st) {
        st.PauseTiming();
        flip();
        st.ResumeTiming();
        ok = e.sync(false) && ok;
    }
    if (bench::check(st, ok, "sync result") && check_size(st, e.size(), want)) {
        bool same = true;
        for (auto const& [bi, u] : chosen) {
            auto const got = e.flags_of(bi, vf::value(u));
            same = same && got && got->contains(vf::system_flag::seen) == seen;
        }
        bench::check(st, same, "view flags of the churned messages");
    }
    if (seen) flip(); // leave the world as found
    e.close();
    set_msgs(st, want);
}

// Bytes of engine state per message after open + initial sync (not timed): what
// destroying the engine frees. Also: what the store kept (vfolder: memory_store's maps;
// naive: its rewritten vector). Args: N, B.
template <class I>
void bm_memory(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
    std::int64_t engine = 0, store = 0;
    bool ok = true;
    std::size_t size = 0;
    for (auto _ : st) {
        I e(w, "all");
        std::int64_t const before = live_bytes();
        ok = e.open() && e.sync(true);
        size = e.size();
        std::int64_t const after_sync = live_bytes();
        e.close();
        std::int64_t const after_close = live_bytes();
        engine = after_sync - after_close;
        store = after_close - before;
    }
    if (bench::check(st, ok, "open/sync result")) check_size(st, size, w.n);
    auto const n = static_cast<double>(w.n);
    st.counters["engine_bytes_per_msg"] = benchmark::Counter(static_cast<double>(engine) / n);
    st.counters["store_bytes_per_msg"] = benchmark::Counter(static_cast<double>(store) / n);
    set_msgs(st, w.n);
}

// What the timers cost: an iteration that only pauses and resumes them (every workload
// but initial_sync's warm part pays this once per iteration on top of the sync).
void bm_timer_overhead(benchmark::State& st) {
    for (auto _ : st) {
        st.PauseTiming();
        st.ResumeTiming();
    }
}

// ---------------------------------------------------------------- registration

std::vector<std::int64_t> g_sizes; // N: 10K, 100K, 1M by default
std::int64_t g_naive_max = 0;      // the naive engine runs up to this N

template <class I>
void reg(char const* workload, void (*fn)(benchmark::State&), std::int64_t n, std::int64_t arg,
         benchmark::TimeUnit unit) {
    if (std::is_same_v<I, naive_impl> && n > g_naive_max) return;
    auto* b = benchmark::RegisterBenchmark(
        (std::string("BM_engine_") + workload + "/" + I::name).c_str(), fn);
    b->Args({n, arg})->Unit(unit);
    if (std::string_view(workload) == "memory") b->Iterations(1);
}

void register_all() {
    using benchmark::kMicrosecond;
    using benchmark::kMillisecond;
    benchmark::RegisterBenchmark("BM_engine_timer_overhead", bm_timer_overhead)->Unit(kMicrosecond);
    for (auto n : g_sizes) {
        for (std::int64_t b : {1, 10, 100}) {
            reg<vf_impl>("initial_sync", bm_initial_sync<vf_impl>, n, b, kMillisecond);
            reg<naive_impl>("initial_sync", bm_initial_sync<naive_impl>, n, b, kMillisecond);
        }
        reg<vf_impl>("reopen_unchanged", bm_reopen_unchanged<vf_impl>, n, 100, kMillisecond);
        reg<naive_impl>("reopen_unchanged", bm_reopen_unchanged<naive_impl>, n, 100, kMillisecond);
        for (std::int64_t k : {1, 10, 1000}) {
            reg<vf_impl>("incremental_flags", bm_incremental_flags<vf_impl>, n, k, kMicrosecond);
            reg<naive_impl>("incremental_flags", bm_incremental_flags<naive_impl>, n, k, kMicrosecond);
        }
        for (std::int64_t k : {1, 10, 1000}) {
            reg<vf_impl>("incremental_appends", bm_incremental_appends<vf_impl>, n, k, kMicrosecond);
            reg<naive_impl>("incremental_appends", bm_incremental_appends<naive_impl>, n, k, kMicrosecond);
        }
        for (std::int64_t k : {1, 10, 1000}) {
            reg<vf_impl>("pending_churn", bm_pending_churn<vf_impl>, n, k, kMicrosecond);
            reg<naive_impl>("pending_churn", bm_pending_churn<naive_impl>, n, k, kMicrosecond);
        }
        for (std::int64_t b : {1, 100}) {
            reg<vf_impl>("memory", bm_memory<vf_impl>, n, b, kMillisecond);
            reg<naive_impl>("memory", bm_memory<naive_impl>, n, b, kMillisecond);
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    // --n=N: the largest N (default 1M); the sizes are N/100, N/10, N. Several values:
    // exactly those sizes. --naive-max=N: the naive engine runs up to this N (default: all).
    std::int64_t naive_max = -1;
    {
        int w = 1;
        for (int i = 1; i < argc; ++i) {
            if (std::strncmp(argv[i], "--naive-max=", 12) == 0)
                naive_max = std::strtoll(argv[i] + 12, nullptr, 10);
            else
                argv[w++] = argv[i];
        }
        argc = w;
    }
    auto const ns = bench::parse_n(argc, argv, 1'000'000);
    if (ns.size() == 1) {
        for (std::size_t d : {100u, 10u, 1u})
            if (ns[0] / d >= 10) g_sizes.push_back(static_cast<std::int64_t>(ns[0] / d));
    } else {
        for (auto n : ns) g_sizes.push_back(static_cast<std::int64_t>(n));
    }
    g_naive_max = naive_max < 0 ? *std::max_element(g_sizes.begin(), g_sizes.end()) : naive_max;
    std::printf("vfolder engine benchmarks: vfolder::folder<memory_provider, memory_store> vs a naive "
                "recompute-everything engine (naive up to N = %lld)\n",
                static_cast<long long>(g_naive_max));
    std::fflush(stdout);
    register_all();
    return bench::run(argc, argv);
}

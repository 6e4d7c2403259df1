// The on-disk adapters: vfolder::mmap_mailbox (one mailbox), mmap_provider (a directory of
// them) and mmap_store (a folder's state on disk). Workloads (benchmarks/README.md, "On-disk
// adapters (mmap)"):
//
//   BM_mmap_fdatasync                      pwrite 96 bytes + fdatasync in the work dir: the unit
//                                          of durability every commit below pays (twice per
//                                          index commit, once per store commit)
//   BM_mmap_append/<dir|stage>             one durable append (one commit) per iteration
//   BM_mmap_append_batch/<dir|stage>/<batch>
//                                          one append_batch of `batch` messages (one index
//                                          commit, one msg/ fsync) per iteration
//   BM_mmap_flags_commit/<dir>/<batch>     update_flags of `batch` messages in one commit
//   BM_mmap_open/<N>                       open + validate a compacted mailbox of N messages
//   BM_mmap_changes_since/<N>/<k>          changes_since(highestmodseq - k) on an open handle
//   BM_mmap_engine_<workload>/<impl>/<N>/<B or k>
//                                          the engine workloads of BENCHMARKS.md over B
//                                          mmap_mailbox backends + an mmap_store
//
// Directories. Everything timed runs in the work dir (--dir=PATH, or VFOLDER_BENCH_DIR,
// default: mmap-data/ in the build tree); the binary prints its filesystem type. Fixtures of
// N messages are built with the public API (one append per message, compaction) in a
// staging dir (--stage=PATH, default /dev/shm when it is a tmpfs, where fsync costs nothing:
// an append does five syncs, 1-30 ms on the disk measured, so a 1M-message mailbox would take
// 15 min to 8 h on disk), then installed in
// <dir>/cache/ by copying the index and the lock files; the message files are not copied
// (no workload reads a message body; their bodies are empty anyway). A fixture in the cache
// (marked complete) is reused by later runs (--fresh-fixtures rebuilds it). The engine
// workloads run on a working copy of their cached world (<dir>/run/), since they modify it.
//
// Correctness is checked once per benchmark, outside the timed loop (a mismatch fails the
// benchmark with "MISMATCH" and the binary exits non-zero).
#include "bench_common.hpp"

#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/adapters/mmap/mmap_provider.hpp>
#include <vfolder/adapters/mmap/mmap_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <malloc.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef VFOLDER_BENCH_MMAP_DIR
#define VFOLDER_BENCH_MMAP_DIR "mmap-data"
#endif

namespace {

namespace vf = vfolder;
namespace fs = std::filesystem;
using u32 = std::uint32_t;
using u64 = std::uint64_t;

constexpr char const* fixture_version = "v1"; // bump when a fixture's recipe changes

std::string g_dir;   // where everything timed runs
std::string g_stage; // where fixtures are built
bool g_fresh = false;

[[noreturn]] void die(std::string const& what) {
    std::fprintf(stderr, "bench_mmap: %s\n", what.c_str());
    std::exit(1);
}

template <class R>
void must(R const& r, std::string const& what) {
    if (!r) die(what + ": " + r.error_value().message);
}

std::string fs_type(std::string const& path) {
    struct statfs s {};
    if (::statfs(path.c_str(), &s) != 0) return "unknown";
    switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53UL: return "ext4";
    case 0x58465342UL: return "xfs";
    case 0x9123683EUL: return "btrfs";
    case 0x01021994UL: return "tmpfs";
    case 0x794C7630UL: return "overlayfs";
    case 0x2FC12FC1UL: return "zfs";
    default: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(s.f_type));
        return buf;
    }
    }
}

std::string label_of(std::string const& path) { return fs_type(path) + ":" + path; }

constexpr std::int64_t base_time = 1580515200; // 1-Feb-2020
constexpr u32 date_span = 3u * 365u * 86400u;

vf::search_program program_of(char const* text) {
    auto p = vf::search_program::parse(text);
    if (!p) std::abort();
    return *p;
}

std::vector<u32> values_of(vf::uid_set const& s) {
    std::vector<u32> v;
    s.for_each_value([&](u32 x) { v.push_back(x); });
    return v;
}

// Copies an mmap_mailbox directory's index and lock files (not the message files) to `to`.
void copy_mailbox(fs::path const& from, fs::path const& to) {
    fs::create_directories(to / "msg");
    fs::create_directories(to / "tmp");
    for (char const* f : {"index", "writer.lock", "publish.lock"})
        fs::copy_file(from / f, to / f, fs::copy_options::overwrite_existing);
}

std::string stage_path(std::string const& key) {
    return g_stage + "/vfolder-bench-mmap-" + std::to_string(::getpid()) + "-" + key;
}

// ---------------------------------------------------------------- durability unit

void bm_fdatasync(benchmark::State& st) {
    std::string const p = g_dir + "/run/fdatasync.tmp";
    int const fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("cannot create " + p);
    char buf[96] = {};
    off_t off = 0;
    bool ok = true;
    for (auto _ : st) {
        ok = ::pwrite(fd, buf, sizeof buf, off) == static_cast<ssize_t>(sizeof buf) && ok;
        ok = ::fdatasync(fd) == 0 && ok;
        off += 96;
    }
    ::close(fd);
    ::unlink(p.c_str());
    bench::check(st, ok, "pwrite/fdatasync");
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.SetLabel(label_of(g_dir));
}

// ---------------------------------------------------------------- append, flag commits

std::string const& message_body() {
    static std::string const body = [] {
        std::string s = "From: bench@example.org\r\nTo: you@example.org\r\nSubject: benchmark\r\n"
                        "Message-ID: <bench@example.org>\r\n\r\n";
        while (s.size() < 2000) s += "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n";
        return s;
    }();
    return body;
}

// One durable append per iteration into a mailbox that grows over the run. Arg 0: the work
// dir, 1: the staging dir (tmpfs by default: what the append costs without the fsyncs).
void bm_append(benchmark::State& st) {
    std::string const root = st.range(0) == 0 ? g_dir + "/run" : g_stage;
    std::string const dir = root + "/append-" + std::to_string(::getpid());
    if (fs::exists(dir)) must(vf::mmap_mailbox::remove(dir), "remove " + dir);
    must(vf::mmap_mailbox::create(dir, vf::uid_validity{1}), "create " + dir);
    vf::mmap_mailbox mb(dir);
    must(mb.open(), "open " + dir);
    bench::rng r(11);
    std::int64_t t = base_time;
    bool ok = true;
    u32 last = 0;
    for (auto _ : st) {
        t += 1 + r.between(0, 60);
        auto u = mb.append(message_body(), vf::mail_time{t}, vf::flag_set{});
        ok = u.has_value() && vf::value(*u) == last + 1 && ok;
        if (u) last = vf::value(*u);
    }
    auto s = mb.status();
    if (bench::check(st, ok && s.has_value(), "append result"))
        bench::check(st, s->exists == last && last == st.iterations(), "message count after the appends");
    mb.close();
    must(vf::mmap_mailbox::remove(dir), "remove " + dir);
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
    st.SetLabel(label_of(root));
}

// One append_batch of `batch` messages per iteration (one index commit, one msg/ fsync,
// one fsync per message file) into a mailbox that grows over the run. Args: 0 = the work
// dir, 1 = the staging dir; the batch size. items/s counts messages.
void bm_append_batch(benchmark::State& st) {
    std::string const root = st.range(0) == 0 ? g_dir + "/run" : g_stage;
    auto const batch = static_cast<std::size_t>(st.range(1));
    std::string const dir = root + "/append-batch-" + std::to_string(::getpid());
    if (fs::exists(dir)) must(vf::mmap_mailbox::remove(dir), "remove " + dir);
    must(vf::mmap_mailbox::create(dir, vf::uid_validity{1}), "create " + dir);
    vf::mmap_mailbox mb(dir);
    must(mb.open(), "open " + dir);
    bench::rng r(12);
    std::int64_t t = base_time;
    bool ok = true;
    u32 last = 0;
    std::vector<vf::mmap_mailbox::new_message> msgs(batch);
    for (auto _ : st) {
        st.PauseTiming();
        for (auto& m : msgs) {
            t += 1 + r.between(0, 60);
            m = {message_body(), vf::mail_time{t}, {}, {}};
        }
        st.ResumeTiming();
        auto u = mb.append_batch(msgs);
        ok = u.has_value() && u->size() == batch && vf::value(u->front()) == last + 1 && ok;
        if (u && !u->empty()) last = vf::value(u->back());
    }
    auto s = mb.status();
    auto const want = static_cast<u64>(st.iterations()) * batch;
    if (bench::check(st, ok && s.has_value(), "append_batch result"))
        bench::check(st, s->exists == last && last == want, "message count after the batches");
    mb.close();
    must(vf::mmap_mailbox::remove(dir), "remove " + dir);
    st.SetItemsProcessed(static_cast<std::int64_t>(want));
    st.SetLabel(label_of(root));
}

// A mailbox of `n` messages (empty bodies, no flags), built on the stage, compacted, cached.
std::string plain_mailbox(std::size_t n) {
    std::string const cache = g_dir + "/cache/plain-" + std::string(fixture_version) + "-" + std::to_string(n);
    if (!g_fresh && fs::exists(cache + "/complete")) return cache + "/mbox";
    fs::remove_all(cache);
    std::string const stage = stage_path("plain");
    fs::remove_all(stage);
    must(vf::mmap_mailbox::create(stage, vf::uid_validity{7}), "create " + stage);
    {
        vf::mmap_mailbox mb(stage);
        for (std::size_t i = 0; i < n; ++i)
            must(mb.append({}, vf::mail_time{base_time + static_cast<std::int64_t>(i)}), "append");
        must(mb.compact(), "compact");
    }
    copy_mailbox(stage, cache + "/mbox");
    fs::remove_all(stage);
    std::ofstream(cache + "/complete") << fixture_version << "\n";
    return cache + "/mbox";
}

// update_flags of `batch` consecutive messages as one commit per iteration (toggling
// \Flagged, so every message changes). Args: batch. Mailbox: 10,000 messages (or fewer,
// with a small --n), a working copy in the work dir.
std::size_t g_plain_n = 10000;
void bm_flags_commit(benchmark::State& st) {
    auto const batch = static_cast<u32>(st.range(0));
    std::string const src = plain_mailbox(g_plain_n);
    std::string const dir = g_dir + "/run/flags-" + std::to_string(::getpid());
    fs::remove_all(dir);
    copy_mailbox(src, dir);
    vf::mmap_mailbox mb(dir);
    must(mb.open(), "open " + dir);
    auto const n = static_cast<u32>(g_plain_n);
    u32 first = 1;
    std::map<u32, bool> flagged_by_first; // toggled batches
    bool ok = true;
    for (auto _ : st) {
        bool& f = flagged_by_first[first];
        f = !f;
        ok = mb.update_flags(vf::uid_set{{first, first + batch - 1}}, f ? vf::modify_op::add : vf::modify_op::remove,
                             vf::flag_set(vf::system_flag::flagged))
                 .has_value() &&
             ok;
        first += batch;
        if (first + batch - 1 > n) first = 1;
    }
    if (bench::check(st, ok, "update_flags result")) {
        // Every batch's messages carry the flag iff the batch was toggled an odd number of times.
        auto flagged = mb.search(program_of("flagged"));
        std::vector<u32> want;
        for (auto const& [b, on] : flagged_by_first)
            if (on)
                for (u32 u = b; u < b + batch; ++u) want.push_back(u);
        bench::check(st, flagged.has_value() && bench::sig_of(values_of(*flagged)) == bench::sig_of(want),
                     "flagged messages after the commits");
    }
    mb.close();
    fs::remove_all(dir);
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * batch);
    st.counters["msgs_per_commit"] = benchmark::Counter(batch);
    st.SetLabel(label_of(g_dir));
}

// ---------------------------------------------------------------- open, changes_since

// A mailbox of N messages (random dates, 1/3 \Seen, empty bodies): A = N/100 random
// messages expunged (one commit), B = 1000 random others \Flagged (one commit), compacted
// (base: N - |A| live messages, |A| tombstones); then the tail: C = 10 others expunged, D =
// 10 others \Answered (one commit each). changes_since(H - k), H = HIGHESTMODSEQ:
//   k = |D|          -> changed D, vanished none
//   k = |C| + |D|    -> changed D, vanished C
//   k = |B|+|C|+|D|  -> changed B u D, vanished C
struct read_fixture {
    std::size_t n = 0;
    std::string dir;
    std::vector<u32> a, b, c, d; // sorted
    u64 highest = 0;
};

std::vector<u32> pick(bench::rng& r, std::size_t want, u32 n, std::set<u32> const& avoid) {
    std::set<u32> out;
    while (out.size() < want) {
        u32 const u = r.between(1, n);
        if (avoid.count(u) == 0) out.insert(u);
    }
    return {out.begin(), out.end()};
}

vf::uid_set set_of(std::vector<u32> v) {
    vf::uid_set s;
    s.insert_unsorted(std::span<u32>(v));
    return s;
}

read_fixture& read_fixture_for(std::size_t n) {
    static std::map<std::size_t, read_fixture> all;
    auto it = all.find(n);
    if (it != all.end()) return it->second;
    read_fixture& f = all[n];
    f.n = n;
    // The plan: deterministic, recomputed even when the mailbox comes from the cache.
    bench::rng r(0xA11CE000u + n);
    auto const nn = static_cast<u32>(n);
    std::set<u32> used;
    f.a = pick(r, n / 100, nn, used);
    used.insert(f.a.begin(), f.a.end());
    f.b = pick(r, std::min<std::size_t>(1000, n / 4), nn, used);
    used.insert(f.b.begin(), f.b.end());
    f.c = pick(r, std::min<std::size_t>(10, n / 20), nn, used);
    used.insert(f.c.begin(), f.c.end());
    f.d = pick(r, std::min<std::size_t>(10, n / 20), nn, used);
    std::string const cache = g_dir + "/cache/read-" + std::string(fixture_version) + "-" + std::to_string(n);
    f.dir = cache + "/mbox";
    if (g_fresh || !fs::exists(cache + "/complete")) {
        std::fprintf(stderr, "bench_mmap: building the %zu-message read fixture on %s ...\n", n,
                     label_of(g_stage).c_str());
        fs::remove_all(cache);
        std::string const stage = stage_path("read");
        fs::remove_all(stage);
        must(vf::mmap_mailbox::create(stage, vf::uid_validity{42}), "create " + stage);
        vf::mmap_mailbox mb(stage);
        bench::rng m(0xB0D1E5u + n);
        for (std::size_t i = 0; i < n; ++i) {
            vf::mail_time const when{base_time + m.between(0, date_span)};
            vf::flag_set const fl = m.between(0, 2) == 0 ? vf::flag_set(vf::system_flag::seen) : vf::flag_set{};
            must(mb.append({}, when, fl), "append");
        }
        if (!f.a.empty()) must(mb.expunge(set_of(f.a)), "expunge A");
        if (!f.b.empty()) must(mb.update_flags(set_of(f.b), vf::modify_op::add, vf::system_flag::flagged), "flag B");
        must(mb.compact(), "compact");
        if (!f.c.empty()) must(mb.expunge(set_of(f.c)), "expunge C");
        if (!f.d.empty()) must(mb.update_flags(set_of(f.d), vf::modify_op::add, vf::system_flag::answered), "flag D");
        mb.close();
        copy_mailbox(stage, f.dir);
        fs::remove_all(stage);
        std::ofstream(cache + "/complete") << fixture_version << "\n";
    }
    vf::mmap_mailbox mb(f.dir);
    auto s = mb.status();
    must(s, "status " + f.dir);
    if (s->exists != n - f.a.size() - f.c.size()) die("read fixture " + f.dir + ": wrong message count");
    f.highest = vf::value(s->highest_modseq);
    return f;
}

// Open + validate (§7/§9), then replay the tail into the overlay. Mode 0 (BM_mmap_open):
// full validation of the mapped base (both slots, the base CRC, every LIVE/KW entry,
// MPERM, TOMB, the tail). Mode 1 (BM_mmap_open_lazy): lazy validation (the O(1)
// structure and the tail; LIVE entries are checked when first touched). Mode 2
// (BM_mmap_open_nommap): full validation of a private pread copy instead of a mapping.
// Closing is not timed. `heap_per_msg`: heap bytes (mallinfo2) held by an open handle,
// per message, measured once after the timed loop.
void bm_open_mode(benchmark::State& st, int mode) {
    auto& f = read_fixture_for(static_cast<std::size_t>(st.range(0)));
    bool ok = true;
    vf::mmap_options o;
    if (mode == 1) o.validate = vf::mmap_options::validation::lazy;
    if (mode == 2) o.use_mmap = false;
    std::optional<vf::mmap_mailbox> mb;
    for (auto _ : st) {
        st.PauseTiming();
        mb.reset();
        st.ResumeTiming();
        mb.emplace(f.dir, o);
        ok = mb->open().has_value() && ok;
    }
    auto s = mb->status();
    if (bench::check(st, ok && s.has_value(), "open result"))
        bench::check(st, s->exists == f.n - f.a.size() - f.c.size(), "message count");
    mb.reset();
    auto const heap0 = ::mallinfo2().uordblks;
    mb.emplace(f.dir, o);
    ok = mb->open().has_value();
    auto const heap1 = ::mallinfo2().uordblks;
    bench::check(st, ok, "open result (heap)");
    mb.reset();
    st.counters["heap_per_msg"] = benchmark::Counter(
        static_cast<double>(heap1 > heap0 ? heap1 - heap0 : 0) / static_cast<double>(std::max<std::size_t>(f.n, 1)));
    st.counters["msgs"] = benchmark::Counter(static_cast<double>(f.n));
    st.counters["per_msg"] = benchmark::Counter(static_cast<double>(f.n),
                                                benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    st.counters["index_bytes"] = benchmark::Counter(static_cast<double>(fs::file_size(f.dir + "/index")));
}

void bm_open(benchmark::State& st) { bm_open_mode(st, 0); }
void bm_open_lazy(benchmark::State& st) { bm_open_mode(st, 1); }
void bm_open_nommap(benchmark::State& st) { bm_open_mode(st, 2); }

// changes_since(H - k) on an open handle (each call also refreshes: stat, fstat, the two
// header slots under the shared publish lock). Args: N, which (0: k = |D|, 1: |C|+|D|,
// 2: |B|+|C|+|D|).
void bm_changes_since(benchmark::State& st) {
    auto& f = read_fixture_for(static_cast<std::size_t>(st.range(0)));
    auto const which = st.range(1);
    std::size_t const k = f.d.size() + (which >= 1 ? f.c.size() : 0) + (which >= 2 ? f.b.size() : 0);
    std::vector<u32> want_changed = f.d;
    if (which >= 2) want_changed.insert(want_changed.end(), f.b.begin(), f.b.end());
    std::vector<u32> const want_vanished = which >= 1 ? f.c : std::vector<u32>{};
    vf::mmap_mailbox mb(f.dir);
    must(mb.open(), "open");
    vf::modseq const since{f.highest - k};
    std::optional<vf::change_set> last;
    bool ok = true;
    for (auto _ : st) {
        auto c = mb.changes_since(since);
        ok = c.has_value() && ok;
        benchmark::DoNotOptimize(c);
        if (c) last = std::move(*c);
    }
    if (bench::check(st, ok && last.has_value() && last->expunged.has_value(), "changes_since result")) {
        bench::check(st, bench::sig_of(values_of(last->changed)) == bench::sig_of(want_changed), "changed UIDs");
        bench::check(st, bench::sig_of(values_of(*last->expunged)) == bench::sig_of(want_vanished), "vanished UIDs");
    }
    st.counters["k"] = benchmark::Counter(static_cast<double>(k));
    st.counters["changed"] = benchmark::Counter(static_cast<double>(want_changed.size()));
    st.counters["vanished"] = benchmark::Counter(static_cast<double>(want_vanished.size()));
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(k));
}

// ---------------------------------------------------------------- the engine over mmap

// N messages over B mailboxes b000, b001, ... under a provider root: each message in a
// random mailbox, with a random received date, \Seen with probability 1/3, no keywords,
// empty body; every mailbox compacted. Built on the stage, cached, and copied to a working
// directory (<dir>/run/world) per process.
struct mworld {
    std::size_t n, b;
    std::string root;
    std::vector<std::string> names;
    std::vector<vf::mmap_mailbox> boxes;    // open handles, for the workloads' changes
    std::vector<std::vector<u32>> uids;     // per box: its messages at start (1..n_box)
    std::vector<std::vector<char>> flagged; // per box, by uid - 1: \Flagged now
    std::vector<std::vector<u32>> unseen;   // per box: unseen at start

    mworld(std::size_t n_, std::size_t b_) : n(n_), b(b_) {
        for (std::size_t i = 0; i < b; ++i) {
            std::string num = std::to_string(i);
            names.push_back("b" + std::string(num.size() < 3 ? 3 - num.size() : 0, '0') + num);
        }
        std::string const cache = g_dir + "/cache/world-" + std::string(fixture_version) + "-" + std::to_string(n) +
                                  "-" + std::to_string(b);
        if (g_fresh || !fs::exists(cache + "/complete")) build(cache);
        root = g_dir + "/run/world";
        fs::remove_all(root);
        for (auto const& nm : names) copy_mailbox(cache + "/root/" + nm + "/.mbox", root + "/" + nm + "/.mbox");
        fs::copy_file(cache + "/root/.uidvalidity", root + "/.uidvalidity");
        vf::mmap_provider p(root);
        auto const unseen_p = program_of("unseen");
        std::size_t total = 0;
        for (auto const& nm : names) {
            auto mb = p.make(nm);
            must(mb, "make " + nm);
            boxes.push_back(std::move(*mb));
            auto all = boxes.back().search(program_of("all"));
            auto uns = boxes.back().search(unseen_p);
            must(all, "search");
            must(uns, "search");
            uids.push_back(values_of(*all));
            unseen.push_back(values_of(*uns));
            flagged.emplace_back(uids.back().size() + 1, char{0});
            total += uids.back().size();
        }
        if (total != n) die("world " + root + ": wrong message count");
    }
    ~mworld() {
        boxes.clear();
        fs::remove_all(root);
    }
    mworld(mworld const&) = delete;
    mworld& operator=(mworld const&) = delete;

    void build(std::string const& cache) {
        std::fprintf(stderr, "bench_mmap: building the %zu-message world over %zu mailboxes on %s ...\n", n, b,
                     label_of(g_stage).c_str());
        fs::remove_all(cache);
        std::string const stage = stage_path("world");
        fs::remove_all(stage);
        fs::create_directories(stage);
        vf::mmap_provider p(stage);
        std::vector<vf::mmap_mailbox> bx;
        for (auto const& nm : names) {
            must(p.create(nm), "create " + nm);
            auto mb = p.make(nm);
            must(mb, "make " + nm);
            bx.push_back(std::move(*mb));
        }
        bench::rng r(0x5eed0000u + n * 131u + b);
        for (std::size_t i = 0; i < n; ++i) {
            auto& box = bx[r.between(0, static_cast<u32>(b - 1))];
            vf::mail_time const when{base_time + r.between(0, date_span)};
            vf::flag_set const fl = r.between(0, 2) == 0 ? vf::flag_set(vf::system_flag::seen) : vf::flag_set{};
            must(box.append({}, when, fl), "append");
        }
        for (auto& box : bx) must(box.compact(), "compact");
        bx.clear();
        for (auto const& nm : names) copy_mailbox(stage + "/" + nm + "/.mbox", cache + "/root/" + nm + "/.mbox");
        fs::copy_file(stage + "/.uidvalidity", cache + "/root/.uidvalidity");
        fs::remove_all(stage);
        std::ofstream(cache + "/complete") << fixture_version << "\n";
    }

    std::size_t count_matching(vf::search_program const& p) {
        std::size_t c = 0;
        for (auto& box : boxes) {
            auto s = box.search(p);
            must(s, "search");
            c += static_cast<std::size_t>(s->count());
        }
        return c;
    }
    vf::flag_set flags_of(std::size_t bi, u32 u) {
        auto r = boxes[bi].fetch(vf::uid_set{{u, u}}, vf::fetch_fields::flags);
        must(r, "fetch");
        if (r->empty()) die("fetch: no message");
        return r->front().flags;
    }
};

mworld& world_for(std::size_t n, std::size_t b) {
    static std::unique_ptr<mworld> w;
    if (!w || w->n != n || w->b != b) {
        w.reset();
        w = std::make_unique<mworld>(n, b);
    }
    return *w;
}

// The folder over the world's mailboxes (mmap_provider) with its state in an mmap_store.
struct mm_impl {
    using folder_t = vf::folder<vf::mmap_provider, vf::mmap_store>;
    mworld* w;
    vf::folder_definition def;
    std::size_t max_open;
    std::string store_dir = g_dir + "/run/store";
    std::optional<folder_t> f;

    mm_impl(mworld& w_, char const* program, std::size_t max_open_)
        : w(&w_), def(*vf::folder_definition::make(w_.names, program)), max_open(max_open_) {}

    bool open() {
        auto s = vf::mmap_store::open(store_dir);
        if (!s) return false;
        vf::folder_options o;
        o.make_validity = [](vf::uid_validity p) { return vf::uid_validity{vf::value(p) + 1}; };
        o.max_open_backends = max_open;
        auto r = folder_t::open(def, vf::mmap_provider(w->root), std::move(*s), std::move(o));
        if (!r) {
            std::fprintf(stderr, "folder open: %s\n", r.error_value().message.c_str());
            return false;
        }
        f.emplace(std::move(r).value());
        return true;
    }
    bool sync(bool apply_pending) {
        auto r = f->sync(apply_pending ? vf::sync_flags::reopen : vf::sync_flags::none);
        if (!r) std::fprintf(stderr, "sync: %s\n", r.error_value().message.c_str());
        benchmark::DoNotOptimize(r);
        return r.has_value();
    }
    void close() { f.reset(); }
    void wipe() {
        auto s = vf::mmap_store::open(store_dir);
        must(s, "store open");
        must(s->reset(), "store reset");
    }
    std::size_t size() const { return f->size(); }
    std::optional<vf::flag_set> flags_of(std::size_t box, u32 uid) const {
        auto const v = f->to_virtual(w->names[box], vf::uid_set{{uid, uid}});
        if (v.empty()) return std::nullopt;
        auto m = f->find(vf::uid{v.begin()->first});
        if (!m) return std::nullopt;
        return m->flags;
    }
    std::uint64_t store_bytes() const {
        std::uint64_t s = 0;
        for (char const* p : {"/checkpoint", "/log"})
            if (fs::exists(store_dir + p)) s += fs::file_size(store_dir + p);
        return s;
    }
};

std::size_t g_max_open = 128; // > B = 100: every backend stays open (64 is the default)

bool check_size(benchmark::State& st, std::size_t got, std::size_t want) {
    if (got == want) return true;
    std::fprintf(stderr, "view has %zu messages, expected %zu\n", got, want);
    return bench::check(st, false, "view message count");
}

void set_msgs(benchmark::State& st, std::size_t n) { st.counters["msgs"] = benchmark::Counter(static_cast<double>(n)); }

std::size_t max_open_of(benchmark::State& st) { return st.range(2) != 0 ? static_cast<std::size_t>(st.range(2)) : g_max_open; }

// Open + first sync, nothing stored (one untimed run first). Args: N, B, max_open (0: 128).
void bm_initial_sync(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
    mm_impl e(w, "all", max_open_of(st));
    e.wipe();
    bool ok = e.open() && e.sync(true);
    for (auto _ : st) {
        st.PauseTiming();
        e.close();
        e.wipe();
        st.ResumeTiming();
        ok = e.open() && e.sync(true) && ok;
    }
    if (bench::check(st, ok, "open/sync result")) check_size(st, e.size(), w.n);
    e.close();
    set_msgs(st, w.n);
    std::uint64_t index = 0;
    for (auto const& nm : w.names) index += fs::file_size(w.root + "/" + nm + "/.mbox/index");
    st.counters["store_bytes_per_msg"] = benchmark::Counter(static_cast<double>(e.store_bytes()) / static_cast<double>(w.n));
    st.counters["index_bytes_per_msg"] = benchmark::Counter(static_cast<double>(index) / static_cast<double>(w.n));
}

// Stored state present, nothing changed: open + sync. Args: N, B, max_open.
void bm_reopen_unchanged(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
    mm_impl e(w, "all", max_open_of(st));
    e.wipe();
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

std::vector<std::size_t> nonempty_boxes(mworld const& w) {
    std::vector<std::size_t> v;
    for (std::size_t i = 0; i < w.b; ++i)
        if (!w.uids[i].empty()) v.push_back(i);
    return v;
}

// Applies `add` / `remove` of `flag` per box: one update_flags commit per box and direction.
void apply_flags(mworld& w, std::map<std::size_t, std::vector<u32>>& add, std::map<std::size_t, std::vector<u32>>& remove,
                 vf::system_flag flag) {
    for (auto& [bi, v] : add) must(w.boxes[bi].update_flags(set_of(v), vf::modify_op::add, flag), "update_flags");
    for (auto& [bi, v] : remove) must(w.boxes[bi].update_flags(set_of(v), vf::modify_op::remove, flag), "update_flags");
}

// k \Flagged toggles on distinct random messages, round robin over the mailboxes (untimed;
// one commit per mailbox and direction), then one sync. Args: N, k, max_open (B = 100).
void bm_incremental_flags(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), 100);
    auto const k = std::min(static_cast<std::size_t>(st.range(1)), w.n / 2);
    mm_impl e(w, "all", max_open_of(st));
    e.wipe();
    bool ok = e.open() && e.sync(true);
    auto const boxes = nonempty_boxes(w);
    bench::rng r(77);
    std::vector<std::pair<std::size_t, u32>> changed;
    for (auto _ : st) {
        st.PauseTiming();
        std::map<std::size_t, std::vector<u32>> add, remove;
        std::set<std::pair<std::size_t, u32>> picked;
        changed.clear();
        for (std::size_t j = 0; j < k; ++j) {
            std::size_t const bi = boxes[j % boxes.size()];
            auto const& us = w.uids[bi];
            u32 u = 0;
            bool fresh = false;
            for (int attempt = 0; attempt < 64 && !fresh; ++attempt) { // small boxes may run out
                u = us[r.between(0, static_cast<u32>(us.size() - 1))];
                fresh = picked.emplace(bi, u).second;
            }
            if (!fresh) continue;
            char& fl = w.flagged[bi][u];
            (fl ? remove : add)[bi].push_back(u);
            fl = static_cast<char>(!fl);
            changed.emplace_back(bi, u);
        }
        apply_flags(w, add, remove, vf::system_flag::flagged);
        st.ResumeTiming();
        ok = e.sync(false) && ok;
    }
    if (bench::check(st, ok, "sync result") && check_size(st, e.size(), w.n)) {
        bool same = true;
        for (auto const& [bi, u] : changed) {
            auto const got = e.flags_of(bi, u);
            same = same && got && *got == w.flags_of(bi, u);
        }
        bench::check(st, same, "view flags of the changed messages");
    }
    e.close();
    set_msgs(st, w.n);
}

// k new messages over 10 of the mailboxes (durable appends, untimed), then one sync; before
// each iteration the previous k are expunged and synced away (untimed). Args: N, k, max_open.
void bm_incremental_appends(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), 100);
    auto const k = static_cast<std::size_t>(st.range(1));
    mm_impl e(w, "all", max_open_of(st));
    e.wipe();
    bool ok = e.open() && e.sync(true);
    bench::rng r(78);
    std::vector<std::pair<std::size_t, u32>> added;
    auto const drop_added = [&] {
        std::map<std::size_t, std::vector<u32>> by_box;
        for (auto const& [bi, u] : added) by_box[bi].push_back(u);
        for (auto& [bi, v] : by_box) must(w.boxes[bi].expunge(set_of(v)), "expunge");
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
            auto u = w.boxes[bi].append({}, vf::mail_time{t - r.between(0, 600)});
            must(u, "append");
            added.emplace_back(bi, vf::value(*u));
        }
        st.ResumeTiming();
        ok = e.sync(false) && ok;
    }
    if (bench::check(st, ok, "sync result") && check_size(st, e.size(), w.n + added.size())) {
        bool all_in = true;
        for (auto const& [bi, u] : added) all_in = all_in && e.flags_of(bi, u).has_value();
        bench::check(st, all_in, "appended messages in the view");
    }
    drop_added();
    e.close();
    set_msgs(st, w.n);
}

// An "unseen" folder; k unseen messages (evenly spread) become \Seen, a sync (pending
// removes), then unseen again, a sync (cancelled). One iteration = one of these syncs; the
// flag changes (one commit per mailbox) are untimed. Args: N, k, max_open.
void bm_pending_churn(benchmark::State& st) {
    auto& w = world_for(static_cast<std::size_t>(st.range(0)), 100);
    auto k = static_cast<std::size_t>(st.range(1));
    mm_impl e(w, "unseen", max_open_of(st));
    std::vector<std::pair<std::size_t, u32>> unseen;
    for (std::size_t bi = 0; bi < w.b; ++bi)
        for (u32 u : w.unseen[bi]) unseen.emplace_back(bi, u);
    std::size_t const want = w.count_matching(program_of("unseen"));
    k = std::min(k, unseen.size());
    std::map<std::size_t, std::vector<u32>> chosen;
    std::vector<std::pair<std::size_t, u32>> chosen_list;
    for (std::size_t j = 0; j < k; ++j) {
        auto const& p = unseen[j * unseen.size() / k];
        chosen[p.first].push_back(p.second);
        chosen_list.push_back(p);
    }
    std::map<std::size_t, std::vector<u32>> none;
    e.wipe();
    bool ok = e.open() && e.sync(true);
    bool seen = false;
    auto const flip = [&] {
        seen = !seen;
        if (seen)
            apply_flags(w, chosen, none, vf::system_flag::seen);
        else
            apply_flags(w, none, chosen, vf::system_flag::seen);
    };
    for (auto _ : st) {
        st.PauseTiming();
        flip();
        st.ResumeTiming();
        ok = e.sync(false) && ok;
    }
    if (bench::check(st, ok, "sync result") && check_size(st, e.size(), want)) {
        bool same = true;
        for (auto const& [bi, u] : chosen_list) {
            auto const got = e.flags_of(bi, u);
            same = same && got && got->contains(vf::system_flag::seen) == seen;
        }
        bench::check(st, same, "view flags of the churned messages");
    }
    if (seen) flip();
    e.close();
    set_msgs(st, want);
}

// ---------------------------------------------------------------- registration

std::vector<std::int64_t> g_sizes;        // read fixtures: N
std::vector<std::int64_t> g_engine_sizes; // engine worlds: N
std::int64_t g_engine_iters = 0;          // 0: Google Benchmark decides

void register_all() {
    using benchmark::kMicrosecond;
    using benchmark::kMillisecond;
    benchmark::RegisterBenchmark("BM_mmap_fdatasync", bm_fdatasync)->Unit(kMicrosecond)->UseRealTime();
    benchmark::RegisterBenchmark("BM_mmap_append/dir", bm_append)->Arg(0)->Unit(kMicrosecond)->UseRealTime();
    benchmark::RegisterBenchmark("BM_mmap_append/stage", bm_append)->Arg(1)->Unit(kMicrosecond)->UseRealTime();
    // Each iteration fsyncs 1000 message files: a few iterations suffice (and bound the
    // run): 5 by default, 1 in the smoke test (--engine-iters=2).
    benchmark::RegisterBenchmark("BM_mmap_append_batch/dir", bm_append_batch)->Args({0, 1000})->Unit(kMillisecond)->UseRealTime()
        ->Iterations(std::clamp<std::int64_t>(g_engine_iters / 10, 1, 5));
    benchmark::RegisterBenchmark("BM_mmap_append_batch/stage", bm_append_batch)->Args({1, 1000})->Unit(kMillisecond)->UseRealTime();
    for (std::int64_t batch : {1, 1000})
        if (static_cast<std::size_t>(batch) <= g_plain_n)
            benchmark::RegisterBenchmark("BM_mmap_flags_commit/dir", bm_flags_commit)->Arg(batch)->Unit(kMicrosecond)->UseRealTime();
    for (auto n : g_sizes) {
        benchmark::RegisterBenchmark("BM_mmap_open", bm_open)->Arg(n)->Unit(kMillisecond);
        benchmark::RegisterBenchmark("BM_mmap_open_lazy", bm_open_lazy)->Arg(n)->Unit(kMillisecond);
        benchmark::RegisterBenchmark("BM_mmap_open_nommap", bm_open_nommap)->Arg(n)->Unit(kMillisecond);
    }
    for (std::int64_t which : {0, 1, 2})
        for (auto n : g_sizes)
            benchmark::RegisterBenchmark("BM_mmap_changes_since", bm_changes_since)->Args({n, which})->Unit(kMicrosecond);
    auto const eng = [](char const* name, void (*fn)(benchmark::State&), std::int64_t n, std::int64_t arg,
                        std::int64_t max_open, benchmark::TimeUnit unit, bool fixed_iters) {
        auto* b = benchmark::RegisterBenchmark(
            (std::string("BM_mmap_engine_") + name + (max_open != 0 ? "/mmap_lru" + std::to_string(max_open) : "/mmap")).c_str(), fn);
        // Real time: the syncs commit to the store (fdatasync), and the figure must show it.
        b->Args({n, arg, max_open})->Unit(unit)->UseRealTime();
        if (fixed_iters && g_engine_iters > 0)
            b->Iterations(arg >= 1000 || max_open != 0 ? std::max<std::int64_t>(1, g_engine_iters / 5) : g_engine_iters);
    };
    for (auto n : g_engine_sizes) {
        for (std::int64_t b : {1, 10, 100}) eng("initial_sync", bm_initial_sync, n, b, 0, kMillisecond, false);
        eng("reopen_unchanged", bm_reopen_unchanged, n, 100, 0, kMillisecond, false);
        for (std::int64_t k : {1, 10, 1000}) eng("incremental_flags", bm_incremental_flags, n, k, 0, kMicrosecond, true);
        eng("incremental_flags", bm_incremental_flags, n, 10, 64, kMicrosecond, true); // the default LRU of 64 < B
        for (std::int64_t k : {1, 10}) eng("incremental_appends", bm_incremental_appends, n, k, 0, kMicrosecond, true);
        for (std::int64_t k : {1, 10, 1000}) eng("pending_churn", bm_pending_churn, n, k, 0, kMicrosecond, true);
    }
}

std::vector<std::int64_t> sizes_of(std::vector<std::size_t> const& ns) {
    std::vector<std::int64_t> out;
    if (ns.size() == 1) {
        for (std::size_t d : {100u, 10u, 1u})
            if (ns[0] / d >= 100) out.push_back(static_cast<std::int64_t>(ns[0] / d));
    } else {
        for (auto n : ns) out.push_back(static_cast<std::int64_t>(n));
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    // --n=N (default 1M: N/100, N/10, N) for the read fixtures; --engine-n=N (default: 100K)
    // for the engine worlds; --dir=PATH, --stage=PATH, --fresh-fixtures, --engine-iters=I
    // (fixed iteration count of the incremental engine workloads, k = 1000: I/5; 0: automatic).
    char const* env_dir = std::getenv("VFOLDER_BENCH_DIR");
    g_dir = env_dir != nullptr ? env_dir : VFOLDER_BENCH_MMAP_DIR;
    g_stage.clear();
    std::string engine_spec = "100000";
    g_engine_iters = 50;
    {
        int w = 1;
        for (int i = 1; i < argc; ++i) {
            std::string_view const a = argv[i];
            if (a.starts_with("--dir="))
                g_dir = std::string(a.substr(6));
            else if (a.starts_with("--stage="))
                g_stage = std::string(a.substr(8));
            else if (a == "--fresh-fixtures")
                g_fresh = true;
            else if (a.starts_with("--engine-n="))
                engine_spec = std::string(a.substr(11));
            else if (a.starts_with("--engine-iters="))
                g_engine_iters = std::strtoll(argv[i] + 15, nullptr, 10);
            else
                argv[w++] = argv[i];
        }
        argc = w;
    }
    auto const ns = bench::parse_n(argc, argv, 1'000'000);
    g_sizes = sizes_of(ns);
    {
        std::string spec = "--n=" + engine_spec;
        char prog[] = "x";
        std::vector<char*> av{prog, spec.data()};
        int ac = 2;
        auto const en = bench::parse_n(ac, av.data(), 100'000);
        g_engine_sizes = sizes_of(en);
    }
    g_plain_n = std::min<std::size_t>(10000, *std::max_element(ns.begin(), ns.end()));
    fs::create_directories(g_dir + "/run");
    fs::create_directories(g_dir + "/cache");
    g_dir = fs::canonical(g_dir).string();
    if (g_stage.empty()) g_stage = fs_type("/dev/shm") == "tmpfs" && ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_dir + "/stage";
    fs::create_directories(g_stage);
    std::printf("vfolder mmap benchmarks: work dir %s (%s), fixtures built on %s (%s)\n", g_dir.c_str(),
                fs_type(g_dir).c_str(), g_stage.c_str(), fs_type(g_stage).c_str());
    std::fflush(stdout);
    benchmark::AddCustomContext("mmap_work_dir", g_dir);
    benchmark::AddCustomContext("mmap_work_fs", fs_type(g_dir));
    benchmark::AddCustomContext("mmap_stage_dir", g_stage);
    benchmark::AddCustomContext("mmap_stage_fs", fs_type(g_stage));
    register_all();
    return bench::run(argc, argv);
}

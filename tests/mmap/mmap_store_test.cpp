// mmap_store: the on-disk view_store (adapters/mmap/mmap_store.hpp). Round trip, reopen,
// a torn last record at every byte offset, a flipped byte anywhere in the files, injected
// write/fsync failures, hostile payloads, a randomized differential against `apply` with
// reopens and checkpoints, and a crash test (a child SIGKILLed while committing).
// The conformance suite (tests/conformance/) runs on it too.
#include <vfolder/adapters/mmap/mmap_store.hpp>

#include <doctest/doctest.h>
#include "support/temp_dir.hpp"

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/concepts.hpp>
#include <vfolder/engine/folder.hpp>
#include <vfolder/mail/view_state.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/wait.h>

using namespace vfolder;
namespace md = vfolder::mmap_detail;
namespace sd = vfolder::mmap_store_detail;

namespace {

template <class T>
std::string what(result<T> const& r) {
    return r.has_value() ? std::string() : r.error_value().message;
}

using vfolder_test::temp_dir;

std::vector<std::byte> read_all(std::string const& p) {
    auto fd = md::unique_fd::open(p, O_RDONLY);
    REQUIRE_MESSAGE(fd, what(fd));
    auto st = fd->stat();
    REQUIRE(st);
    std::vector<std::byte> s(static_cast<std::size_t>(st->st_size));
    REQUIRE(fd->pread_all(s, 0));
    return s;
}

void write_all(std::string const& p, std::span<std::byte const> data) {
    auto fd = md::unique_fd::open(p, O_WRONLY | O_CREAT | O_TRUNC);
    REQUIRE_MESSAGE(fd, what(fd));
    REQUIRE(fd->pwrite_all(data, 0));
}

std::uint64_t file_size(std::string const& p) {
    std::error_code ec;
    auto const n = std::filesystem::file_size(p, ec);
    return ec ? 0 : n;
}

/// Clears the process-wide I/O hooks when a test ends, whatever happens.
struct hooks_guard {
    hooks_guard() = default;
    hooks_guard(hooks_guard const&) = delete;
    hooks_guard& operator=(hooks_guard const&) = delete;
    ~hooks_guard() {
        md::io_hooks().write = nullptr;
        md::io_hooks().fsync = nullptr;
    }
};

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// A store over a temp directory, reopened at will.
struct fixture {
    temp_dir tmp;
    std::string dir = tmp.path + "/folder";
    mmap_store::options opt;
    std::optional<mmap_store> s;

    explicit fixture(std::uint64_t checkpoint_min = 1U << 30) {
        opt.checkpoint_min_bytes = checkpoint_min;
        opt.lock_timeout = std::chrono::milliseconds(2000);
        reopen();
    }
    mmap_store& store() { return *s; }
    void close() { s.reset(); }
    void reopen() {
        s.reset();
        auto r = mmap_store::open(dir, opt);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        s.emplace(std::move(*r));
    }
    std::optional<view_state> load_ok() {
        auto r = s->load();
        REQUIRE_MESSAGE(r.has_value(), what(r));
        return *r;
    }
    void commit_ok(view_delta const& d) {
        auto r = s->commit(d);
        REQUIRE_MESSAGE(r.has_value(), what(r));
    }
    [[nodiscard]] std::string cp() const { return dir + "/checkpoint"; }
    [[nodiscard]] std::string log() const { return dir + "/log"; }
};

// ---------------------------------------------------------------- builders

view_message vmsg(std::uint32_t vuid, mailbox_id box, std::uint32_t real, flag_set flags = {},
                  keyword_set keywords = {}) {
    return {uid{vuid}, box, uid{real}, flags, std::move(keywords)};
}

backend_sync_record vbox(mailbox_id box, std::string name, std::uint32_t uid_next = 100,
                         std::uint64_t highest = 50, uid_set pending = {}) {
    backend_sync_record r;
    r.box = box;
    r.name = std::move(name);
    r.validity = uid_validity{1000 + box};
    if (box % 2 == 1) r.guid = mailbox_guid{static_cast<std::uint8_t>(box), 9, 8, 7};
    r.uid_next = uid{uid_next};
    r.highest_modseq = modseq{highest};
    r.pending_removes = std::move(pending);
    return r;
}

keyword_set kw(std::initializer_list<char const*> names) {
    keyword_set k;
    for (auto const* n : names) k.insert(n);
    return k;
}

view_delta rebuild() {
    view_delta d;
    d.replace_all = true;
    d.header = view_header{uid_validity{7}, uid{20}, 3, 42};
    d.backends = {vbox(1, "INBOX", 30, 11, uid_set{{25, 26}}), vbox(3, "Work", 10, 4)};
    d.appended = {vmsg(2, 1, 10, system_flag::seen), vmsg(5, 3, 1),
                  vmsg(6, 1, 12, system_flag::flagged, kw({"Work", "$Label1"})), vmsg(9, 3, 2),
                  vmsg(14, 1, 20, system_flag::seen | system_flag::answered)};
    return d;
}

/// Random deltas that keep the state valid (each checked by the test with validate).
class generator {
public:
    explicit generator(std::uint32_t seed) : rng_(seed) {}
    std::uint32_t pick(std::uint32_t n) { return static_cast<std::uint32_t>(rng_() % n); }
    bool chance(std::uint32_t one_in) { return pick(one_in) == 0; }

    view_delta make(std::optional<view_state> const& cur) {
        view_delta d;
        if (!cur || chance(25)) {
            d.replace_all = true;
            view_header h{uid_validity{7 + pick(3)}, uid{cur ? value(cur->header.next_uid) : 1}, 0, pick(5)};
            std::uint32_t const nb = 1 + pick(3);
            for (mailbox_id id = 1; id <= nb; ++id) d.backends.push_back(vbox(id, "Box" + std::to_string(id), 1, pick(9)));
            h.highest_box = nb;
            std::uint32_t const nm = pick(12);
            for (std::uint32_t i = 0; i < nm; ++i) {
                auto& b = d.backends[pick(nb)];
                d.appended.push_back(vmsg(value(h.next_uid), b.box, value(b.uid_next), flags()));
                b.uid_next = next(b.uid_next);
                h.next_uid = next(h.next_uid);
            }
            d.header = h;
            return d;
        }
        view_state const& s = *cur;
        view_header h = s.header;
        std::map<mailbox_id, backend_sync_record> boxes;
        for (auto const& b : s.backends) boxes[b.box] = b;
        std::map<mailbox_id, bool> touched;
        for (auto const& m : s.messages) {
            if (chance(7)) {
                d.expunged.add(value(m.vuid));
            } else if (chance(6)) {
                view_message u = m;
                u.flags = flags();
                u.keywords = chance(2) ? keyword_set{} : kw({chance(2) ? "Work" : "$Label1", "zz"});
                d.updated.push_back(u);
            }
        }
        if (chance(8)) { // a new backend
            mailbox_id const id = ++h.highest_box;
            boxes[id] = vbox(id, std::string(pick(40), 'n'), 1, 0);
            touched[id] = true;
        }
        std::uint32_t const na = pick(4);
        for (std::uint32_t i = 0; i < na && !boxes.empty(); ++i) {
            auto it = boxes.begin();
            std::advance(it, static_cast<std::ptrdiff_t>(pick(static_cast<std::uint32_t>(boxes.size()))));
            auto& b = it->second;
            h.next_uid = uid{value(h.next_uid) + pick(3)};
            d.appended.push_back(vmsg(value(h.next_uid), b.box, value(b.uid_next), flags()));
            h.next_uid = next(h.next_uid);
            b.uid_next = next(b.uid_next);
            touched[b.box] = true;
        }
        if (!boxes.empty() && chance(3)) {
            auto& b = boxes.begin()->second;
            b.highest_modseq = modseq{value(b.highest_modseq) + 1 + pick(9)};
            b.pending_removes.clear();
            if (value(b.uid_next) > 1 && chance(2)) b.pending_removes.add(1 + pick(value(b.uid_next) - 1));
            touched[b.box] = true;
        }
        for (auto const& [id, t] : touched) d.backends.push_back(boxes[id]);
        if (chance(2)) d.header = h;
        else if (h != s.header) d.header = h;
        return d;
    }

private:
    flag_set flags() { return flag_set::from_bits(static_cast<std::uint8_t>(pick(32))); }
    std::mt19937 rng_;
};

/// A seeded sequence of deltas and the states they make (states[i] after i deltas).
struct history {
    std::vector<view_delta> deltas;
    std::vector<std::optional<view_state>> states{std::nullopt};
    history(std::uint32_t seed, int n) {
        generator g(seed);
        for (int i = 0; i < n; ++i) {
            view_delta d = g.make(states.back());
            view_state next = states.back().value_or(view_state{});
            REQUIRE(apply(next, d).has_value());
            REQUIRE_MESSAGE(validate(next).has_value(), what(validate(next)));
            deltas.push_back(std::move(d));
            states.emplace_back(std::move(next));
        }
    }
};

void check_corrupted(fixture& f, std::string_view file) {
    auto r = f.store().load();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::corrupted));
    CHECK(r.error_value().message.find(file) != std::string::npos);
    CHECK(r.error_value().message.find("offset") != std::string::npos);
}

} // namespace

TEST_CASE("mmap_store: round trip, reopen, reset") {
    static_assert(view_store<mmap_store>);
    fixture f;
    CHECK_FALSE(f.load_ok().has_value());
    f.reopen();
    CHECK_FALSE(f.load_ok().has_value());

    view_state want;
    REQUIRE(apply(want, rebuild()).has_value());
    f.commit_ok(rebuild());
    CHECK(*f.load_ok() == want);
    f.reopen();
    CHECK(*f.load_ok() == want);

    view_delta d;
    d.header = view_header{uid_validity{7}, uid{23}, 3, 42};
    d.expunged = uid_set{{5, 5}};
    d.updated = {vmsg(2, 1, 10, system_flag::seen | system_flag::flagged), vmsg(14, 1, 20, {}, kw({"Later"}))};
    d.appended = {vmsg(20, 3, 12), vmsg(22, 1, 31, system_flag::draft)};
    d.backends = {vbox(1, "INBOX", 32, 15), vbox(3, std::string("W\0rk\xff", 5), 13, 9)};
    REQUIRE(apply(want, d).has_value());
    auto const before = f.store().log_bytes();
    f.commit_ok(d);
    CHECK(f.store().log_bytes() > before); // appended, not rewritten
    CHECK(*f.load_ok() == want);
    f.reopen();
    CHECK(*f.load_ok() == want);

    // A refused delta changes nothing.
    view_delta bad;
    bad.appended = {vmsg(1, 1, 1)};
    auto r = f.store().commit(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::invalid_argument));
    f.reopen();
    CHECK(*f.load_ok() == want);

    REQUIRE(f.store().reset().has_value());
    CHECK_FALSE(f.load_ok().has_value());
    CHECK_FALSE(std::filesystem::exists(f.cp()));
    f.reopen();
    CHECK_FALSE(f.load_ok().has_value());
    f.commit_ok(view_delta{});
    CHECK(*f.load_ok() == view_state{});
}

TEST_CASE("mmap_store: one object per directory (flock), non-existing parent") {
    fixture f;
    mmap_store::options o;
    o.lock_timeout = std::chrono::milliseconds(0);
    auto second = mmap_store::open(f.dir, o);
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error_value().is(errc::temporary));
    f.close();
    auto third = mmap_store::open(f.dir, o);
    CHECK(third.has_value());
    auto bad = mmap_store::open(f.tmp.path + "/no/such/parent");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error_value().is(errc::not_found));
}

TEST_CASE("mmap_store: a commit appends O(delta) bytes; checkpoints when the log outgrows the state") {
    fixture f(0);
    f.commit_ok(rebuild());
    view_delta d;
    d.updated = {vmsg(6, 1, 12, system_flag::seen)};
    std::uint64_t const cp_size = file_size(f.cp());
    auto const b0 = f.store().log_bytes();
    f.commit_ok(d);
    auto const grew = f.store().log_bytes() - b0;
    CHECK(grew < 64); // a 24-byte record header and a ~40-byte payload
    int checkpoints = 0;
    for (int i = 0; i < 40; ++i) {
        auto const lb = f.store().log_bytes();
        f.commit_ok(d);
        if (f.store().log_bytes() < lb) ++checkpoints;
        CHECK(f.store().log_bytes() <= cp_size + 64);
    }
    CHECK(checkpoints > 0);
    f.reopen();
    view_state want;
    REQUIRE(apply(want, rebuild()).has_value());
    REQUIRE(apply(want, d).has_value());
    CHECK(*f.load_ok() == want);
}

TEST_CASE("mmap_store: a torn last record at every byte offset loads the previous state") {
    history h(11, 6);
    fixture f;
    for (std::size_t i = 0; i + 1 < h.deltas.size(); ++i) f.commit_ok(h.deltas[i]);
    std::uint64_t const start = file_size(f.log());
    f.commit_ok(h.deltas.back());
    f.close();
    auto const full = read_all(f.log());
    REQUIRE(full.size() > start);
    auto const& prev = h.states[h.deltas.size() - 1];
    auto const& last = h.states[h.deltas.size()];
    for (std::size_t cut = start; cut <= full.size(); ++cut) {
        CAPTURE(cut);
        for (int zeros = 0; zeros < 2; ++zeros) {
            // Cut at `cut`, or (zeros) keep the size and zero the bytes from `cut` on, as a
            // crash can leave a file whose size landed before its data.
            if (zeros == 1 && cut == full.size()) continue;
            std::vector<std::byte> v(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
            if (zeros == 1) v.resize(full.size(), std::byte{0});
            write_all(f.log(), v);
            f.reopen();
            auto const got = f.load_ok();
            REQUIRE(got.has_value());
            bool const unchanged = zeros == 1 && std::all_of(full.begin() + static_cast<std::ptrdiff_t>(cut),
                                                             full.end(), [](std::byte b) { return b == std::byte{0}; });
            if (cut == full.size() || unchanged) { // (zeroing bytes that were 0 changes nothing)
                CHECK(*got == *last);
                f.close();
                continue;
            }
            CHECK(*got == *prev);
            CHECK(file_size(f.log()) == start); // the torn record is gone
            f.close();
        }
    }
    // The store goes on after a torn tail.
    write_all(f.log(), std::span<std::byte const>(full).first(static_cast<std::size_t>(start) + 7));
    f.reopen();
    CHECK(*f.load_ok() == *prev);
    f.commit_ok(h.deltas.back());
    f.reopen();
    CHECK(*f.load_ok() == *last);
}

TEST_CASE("mmap_store: a flipped byte in the checkpoint or a non-final record is corrupted") {
    history h(12, 5);
    fixture f;
    for (std::size_t i = 0; i + 1 < h.deltas.size(); ++i) f.commit_ok(h.deltas[i]);
    std::uint64_t const last_start = file_size(f.log());
    f.commit_ok(h.deltas.back());
    f.close();
    auto const cp = read_all(f.cp());
    auto const log = read_all(f.log());
    for (std::size_t i = 0; i < cp.size(); ++i) {
        CAPTURE(i);
        auto v = cp;
        v[i] ^= std::byte{0x01};
        write_all(f.cp(), v);
        f.reopen();
        check_corrupted(f, "checkpoint");
        // A corrupted store refuses commits (reset first) and changes no file.
        CHECK_FALSE(f.store().commit(view_delta{}).has_value());
        f.close();
    }
    write_all(f.cp(), cp);
    for (std::size_t i = 0; i < log.size(); ++i) {
        CAPTURE(i);
        for (std::byte mask : {std::byte{0x01}, std::byte{0x80}}) {
            auto v = log;
            v[i] ^= mask;
            write_all(f.log(), v);
            f.reopen();
            if (i < last_start) {
                check_corrupted(f, "log");
            } else { // the last record: indistinguishable from a torn write
                auto got = f.load_ok();
                CHECK(got == h.states[h.deltas.size() - 1]);
            }
            f.close();
        }
    }
    // reset() discards a corrupted store; the engine rebuilds.
    auto v = log;
    v[40] ^= std::byte{0x10};
    write_all(f.log(), v);
    f.reopen();
    CHECK_FALSE(f.store().load().has_value());
    REQUIRE(f.store().reset().has_value());
    CHECK_FALSE(f.load_ok().has_value());
    f.commit_ok(rebuild());
    f.reopen();
    CHECK(f.load_ok()->messages.size() == 5);
}

TEST_CASE("mmap_store: hostile payloads with valid CRCs never crash") {
    std::mt19937 rng(77);
    std::string const path = "fuzz";
    // Random bytes, and mutations of real payloads, decoded as a delta and as a state.
    std::vector<std::byte> const real_delta = sd::encode_delta(rebuild());
    view_state st;
    REQUIRE(apply(st, rebuild()).has_value());
    std::vector<std::byte> const real_state = sd::encode_state(true, st);
    temp_dir tmp;
    int corrupted = 0;
    for (int i = 0; i < 3000; ++i) {
        bool const state = (i % 2) == 0;
        std::vector<std::byte> p = state ? real_state : real_delta;
        if (i % 5 == 0) {
            p.resize(rng() % 64);
            for (auto& b : p) b = static_cast<std::byte>(rng());
        } else {
            for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
                std::size_t const at = rng() % p.size();
                p[at] = rng() % 3 == 0 ? std::byte{0xFF} : static_cast<std::byte>(rng());
            }
            if (rng() % 4 == 0) p.resize(rng() % (p.size() + 1));
        }
        if (state) {
            std::string const dir = tmp.path + "/s" + std::to_string(i);
            {
                auto s = mmap_store::open(dir);
                REQUIRE(s);
            }
            write_all(dir + "/checkpoint", sd::frame_checkpoint(0x1234567890ULL, p));
            auto s = mmap_store::open(dir);
            REQUIRE(s);
            auto r = s->load();
            if (!r) {
                CHECK(r.error_value().is(errc::corrupted));
                ++corrupted;
            }
            std::filesystem::remove_all(dir);
        } else {
            sd::reader r{p, 0, 0, &path, std::nullopt};
            view_delta const d = sd::decode_delta(r);
            if (!r.ok()) {
                ++corrupted;
                CHECK(r.err->is(errc::corrupted));
            }
        }
    }
    CHECK(corrupted > 1000);
}

TEST_CASE("mmap_store: injected write and fsync failures change nothing") {
    hooks_guard guard;
    history h(13, 8);
    fixture f;
    f.commit_ok(h.deltas[0]);
    f.commit_ok(h.deltas[1]);
    std::size_t next = 2;

    struct fault {
        char const* name;
        md::write_decision write;
        int fsync;
    };
    for (fault const& fl : {fault{"ENOSPC", {ENOSPC, SIZE_MAX}, 0}, fault{"short write", {0, 10}, 0},
                            fault{"EIO", {EIO, SIZE_MAX}, 0}, fault{"fsync", {}, EIO}}) {
        CAPTURE(fl.name);
        std::uint64_t const size = file_size(f.log());
        int fired = 0;
        md::io_hooks().write = [&](std::string_view p, std::uint64_t, std::size_t) {
            if (!ends_with(p, "/log") || fired > 0 || fl.fsync != 0) return md::write_decision{};
            ++fired;
            return fl.write;
        };
        md::io_hooks().fsync = [&](std::string_view p) {
            if (!ends_with(p, "/log") || fired > 0 || fl.fsync == 0) return 0;
            ++fired;
            return fl.fsync;
        };
        auto r = f.store().commit(h.deltas[next]);
        md::io_hooks().write = nullptr;
        md::io_hooks().fsync = nullptr;
        CHECK(fired == 1);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::io));
        CHECK(file_size(f.log()) == size);
        CHECK(f.load_ok() == h.states[next]);
        f.reopen();
        CHECK(f.load_ok() == h.states[next]);
        f.commit_ok(h.deltas[next]); // the next commit works
        ++next;
        CHECK(f.load_ok() == h.states[next]);
        f.reopen();
        CHECK(f.load_ok() == h.states[next]);
    }

    SUBCASE("a failing first commit (the checkpoint is written first) stores nothing") {
        fixture g;
        md::io_hooks().write = [](std::string_view, std::uint64_t, std::size_t) {
            return md::write_decision{ENOSPC, SIZE_MAX};
        };
        CHECK_FALSE(g.store().commit(h.deltas[0]).has_value());
        md::io_hooks().write = nullptr;
        CHECK_FALSE(g.load_ok().has_value());
        g.reopen();
        CHECK_FALSE(g.load_ok().has_value());
        g.commit_ok(h.deltas[0]);
        g.reopen();
        CHECK(g.load_ok() == h.states[1]);
    }
    SUBCASE("a failing checkpoint after a durable commit: the commit stands") {
        fixture g(0);
        for (std::size_t i = 0; i < 3; ++i) g.commit_ok(h.deltas[i]);
        int failures = 0;
        for (std::size_t i = 3; i < h.deltas.size(); ++i) {
            md::io_hooks().write = [&](std::string_view p, std::uint64_t, std::size_t) {
                if (!ends_with(p, ".tmp")) return md::write_decision{};
                ++failures;
                return md::write_decision{ENOSPC, SIZE_MAX};
            };
            g.commit_ok(h.deltas[i]);
            md::io_hooks().write = nullptr;
            CHECK(g.load_ok() == h.states[i + 1]);
            g.reopen();
            CHECK(g.load_ok() == h.states[i + 1]);
        }
        CHECK(failures > 0);
    }
}

TEST_CASE("mmap_store: a stale log (crash between checkpoint and log reset) is ignored") {
    history h(14, 6);
    fixture f(0);
    for (std::size_t i = 0; i < 3; ++i) f.commit_ok(h.deltas[i]);
    f.close();
    auto const old_log = read_all(f.log());
    f.reopen();
    // Commit until a checkpoint happens (the log shrinks).
    std::size_t i = 3;
    for (; i < h.deltas.size(); ++i) {
        auto const lb = f.store().log_bytes();
        f.commit_ok(h.deltas[i]);
        if (f.store().log_bytes() < lb || f.store().log_bytes() == 0) break;
    }
    REQUIRE(i < h.deltas.size());
    f.close();
    write_all(f.log(), old_log); // as if the crash came before the new log
    f.reopen();
    CHECK(f.load_ok() == h.states[i + 1]);
    f.commit_ok(view_delta{});
    f.reopen();
    CHECK(f.load_ok() == h.states[i + 1]);
}

TEST_CASE("mmap_store: randomized differential against apply, with reopens and checkpoints") {
    for (std::uint32_t seed : {1u, 2u, 3u, 77u}) {
        CAPTURE(seed);
        fixture f(seed % 2 == 0 ? 0 : 4096);
        generator g(seed);
        std::optional<view_state> ref;
        for (int step = 0; step < 200; ++step) {
            CAPTURE(step);
            switch (g.pick(16)) {
            case 0: f.reopen(); break;
            case 1:
                REQUIRE(f.store().reset().has_value());
                ref.reset();
                break;
            default: {
                view_delta const d = g.make(ref);
                view_state next = ref.value_or(view_state{});
                REQUIRE(apply(next, d).has_value());
                REQUIRE_MESSAGE(validate(next).has_value(), what(validate(next)));
                f.commit_ok(d);
                ref = std::move(next);
            }
            }
            CHECK(f.load_ok() == ref);
        }
        f.reopen();
        CHECK(f.load_ok() == ref);
    }
}

TEST_CASE("mmap_store: crash test (a child SIGKILLed while committing)") {
    history h(15, 300);
    std::mt19937 rng(99);
    for (int round = 0; round < 6; ++round) {
        CAPTURE(round);
        fixture f(round % 2 == 0 ? 0 : 2048);
        f.close();
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid_t const pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) { // child: commit in a loop, acknowledge each success
            ::close(fds[0]);
            auto s = mmap_store::open(f.dir, f.opt);
            if (!s) ::_exit(2);
            for (std::uint32_t i = 0; i < h.deltas.size(); ++i) {
                if (!s->commit(h.deltas[i])) ::_exit(3);
                std::uint32_t const n = i + 1;
                if (::write(fds[1], &n, sizeof n) != sizeof n) ::_exit(4);
            }
            ::_exit(0);
        }
        ::close(fds[1]);
        auto const kill_after = static_cast<std::uint32_t>(rng() % 60);
        std::uint32_t acked = 0, n = 0;
        while (acked < kill_after && ::read(fds[0], &n, sizeof n) == sizeof n) acked = n;
        ::kill(pid, SIGKILL);
        while (::read(fds[0], &n, sizeof n) == sizeof n) acked = n; // acks sent before the kill
        ::close(fds[0]);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK((WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0)));
        CAPTURE(acked);
        f.reopen();
        auto const got = f.load_ok();
        bool const ok = got == h.states[acked] || (acked + 1 < h.states.size() && got == h.states[acked + 1]);
        CHECK(ok);
        // And it goes on from there.
        std::size_t const at = got == h.states[acked] ? acked : acked + 1;
        if (at < h.deltas.size()) {
            f.commit_ok(h.deltas[at]);
            f.reopen();
            CHECK(f.load_ok() == h.states[at + 1]);
        }
    }
}

TEST_CASE("mmap_store: hostile counts, sizes, sequence numbers and foreign records") {
    fixture f;
    f.commit_ok(rebuild());
    f.close();
    auto const cp = read_all(f.cp());
    auto const log = read_all(f.log());
    std::uint64_t const log_id = md::load_le<std::uint64_t>(log.data() + 8);
    auto const expect = [&](std::string_view field) {
        f.reopen();
        auto r = f.store().load();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::corrupted));
        CHECK_MESSAGE(r.error_value().message.find(field) != std::string::npos, r.error_value().message);
        f.close();
    };

    SUBCASE("a count far beyond the file, with valid CRCs") {
        sd::writer w;
        w.u8(1);
        sd::put(w, view_header{uid_validity{7}, uid{20}, 3, 42});
        w.u32(0xFFFFFFFFU); // backends
        write_all(f.cp(), sd::frame_checkpoint(0xABCDEF12345ULL, w.out));
        expect("state.backend_count");
        w.out.resize(w.out.size() - 4);
        w.u32(0);
        w.u32(0x10000000U); // messages
        write_all(f.cp(), sd::frame_checkpoint(0xABCDEF12345ULL, w.out));
        expect("state.message_count");
    }
    SUBCASE("a string length past the end") {
        sd::writer w;
        w.u8(1);
        sd::put(w, view_header{uid_validity{7}, uid{20}, 3, 42});
        w.u32(1);
        w.u32(1);          // box
        w.u32(0x7FFFFFFF); // name length
        for (int i = 0; i < 40; ++i) w.u8(0);
        write_all(f.cp(), sd::frame_checkpoint(0xABCDEF12345ULL, w.out));
        expect("backend.name");
    }
    SUBCASE("a file over max_file_bytes") {
        f.opt.max_file_bytes = 64;
        expect("too large");
    }
    SUBCASE("a well-framed record with the wrong seq") {
        auto v = log;
        auto const rec = sd::frame_record(log_id, 7, sd::encode_delta(view_delta{}));
        v.insert(v.end(), rec.begin(), rec.end());
        write_all(f.log(), v);
        expect("record.seq");
    }
    SUBCASE("a well-framed record that does not apply") {
        auto v = log;
        view_delta d;
        d.updated = {vmsg(3, 1, 1)};
        auto const rec = sd::frame_record(log_id, 2, sd::encode_delta(d));
        v.insert(v.end(), rec.begin(), rec.end());
        write_all(f.log(), v);
        expect("does not apply");
    }
    SUBCASE("a record framed for another log fails its CRC: a torn tail, dropped") {
        auto v = log;
        view_delta d;
        d.expunged = uid_set{{2, 2}};
        auto const rec = sd::frame_record(log_id ^ 1, 2, sd::encode_delta(d));
        v.insert(v.end(), rec.begin(), rec.end());
        write_all(f.log(), v);
        f.reopen();
        CHECK(f.load_ok()->messages.size() == 5);
        CHECK(file_size(f.log()) == log.size());
    }
    SUBCASE("a garbage log header") {
        auto v = log;
        v.resize(20);
        write_all(f.log(), v);
        expect("log.");
    }
    CHECK(cp.size() > 32);
}

TEST_CASE("mmap_store: the engine over it, against memory_store, across folder reopens") {
    // The same mail and the same syncs through a folder over memory_store and one over
    // mmap_store; the mmap folder is closed and reopened (new process) between syncs.
    temp_dir tmp;
    std::string const dir = tmp.path + "/Unseen";
    memory_world mail;
    memory_store_world stores;
    auto* inbox = *mail.create("INBOX");
    auto* work = *mail.create("Work");
    inbox->append(mail_time{1700000300}, {system_flag::seen, {}});
    work->append(mail_time{1700000100});
    inbox->append(mail_time{1700000400});
    auto def = folder_definition::make({"INBOX", "Work"}, "unseen");
    REQUIRE(def);
    using mem_folder = folder<memory_provider, memory_store>;
    using disk_folder = folder<memory_provider, mmap_store>;
    auto m = mem_folder::open(*def, memory_provider(mail), memory_store(stores, "Unseen"));
    REQUIRE(m);
    auto const views = [](auto const& f) {
        std::vector<std::pair<std::uint32_t, std::uint32_t>> v;
        f.for_each([&](folder_message const& x) { v.emplace_back(value(x.vuid), x.flags.bits()); });
        return v;
    };
    uid_validity validity{};
    auto const open_disk = [&] {
        auto s = mmap_store::open(dir);
        REQUIRE_MESSAGE(s, what(s));
        auto f = disk_folder::open(*def, memory_provider(mail), std::move(*s));
        REQUIRE_MESSAGE(f, what(f));
        return std::move(*f);
    };
    {
        auto d = open_disk();
        REQUIRE(m->sync(sync_flags::reopen));
        REQUIRE(d.sync(sync_flags::reopen));
        CHECK(views(*m) == views(d));
        CHECK(m->status().uid_next == d.status().uid_next);
        validity = d.status().validity;
    }
    for (int round = 0; round < 4; ++round) {
        CAPTURE(round);
        work->append(mail_time{1700000500 + round});
        inbox->modify_flags(uid{2}, modify_op::add, system_flag::flagged);
        if (round == 2) work->modify_flags(uid{1}, modify_op::add, system_flag::seen);
        auto d = open_disk();
        REQUIRE(m->sync());
        REQUIRE(d.sync(sync_flags::reopen));
        REQUIRE(m->sync(sync_flags::reopen));
        CHECK(views(*m) == views(d));
        CHECK(m->status().uid_next == d.status().uid_next);
        CHECK(d.status().validity == validity); // the reopened folder continued, not rebuilt
    }
}

TEST_CASE("mmap_store: a folder whose commit failed but landed converges without a reopen") {
    // The engine reloads from the store after a failed commit; mmap_store re-reads its
    // files after one (the I/O error may come after the record was durable).
    temp_dir tmp;
    memory_world mail;
    auto* inbox = *mail.create("INBOX");
    inbox->append(mail_time{1700000100});
    auto def = folder_definition::make({"INBOX"}, "all");
    REQUIRE(def);
    auto s = mmap_store::open(tmp.path + "/All");
    REQUIRE_MESSAGE(s, what(s));
    using disk_folder = folder<memory_provider, mmap_store>;
    auto f = disk_folder::open(*def, memory_provider(mail), std::move(*s));
    REQUIRE_MESSAGE(f, what(f));
    REQUIRE(f->sync(sync_flags::reopen));
    std::uint32_t m = 1;
    for (bool lands : {true, false, true}) {
        CAPTURE(lands);
        auto const before = f->status();
        inbox->append(mail_time{1700000200 + m});
        f->store().crash_next_commit(lands);
        REQUIRE_FALSE(f->sync());
        CHECK(f->status() == before); // the view did not change
        inbox->append(mail_time{1700000300 + m});
        auto r = f->sync();
        REQUIRE_MESSAGE(r, what(r));
        m += 2;
        CHECK(f->size() == m);
        CHECK(r->added.count() == 2); // the landed one (reported now) and the new one
        CHECK(r->added.front().first == value(before.uid_next));
    }
    // Every message got one vuid: 1..7 (the lost commit's vuids were never seen).
    CHECK(value(f->status().uid_next) == m + 1);
    auto const held = f->store().load();
    REQUIRE_MESSAGE(held, what(held));
    REQUIRE(held->has_value());
    CHECK((*held)->messages.size() == m); // the store holds what the folder shows
}

TEST_CASE("mmap_store: a missing checkpoint is nothing committed; a missing log after one is corrupted") {
    history h(16, 4);
    fixture f;
    for (auto const& d : h.deltas) f.commit_ok(d);
    f.close();
    auto const cp = read_all(f.cp());
    SUBCASE("no checkpoint (reset interrupted between its two unlinks): nothing, log ignored") {
        std::filesystem::remove(f.cp());
        f.reopen();
        CHECK_FALSE(f.load_ok().has_value());
        f.commit_ok(h.deltas[0]); // starts from an empty state, the old log is not replayed
        f.reopen();
        CHECK(f.load_ok() == h.states[1]);
    }
    SUBCASE("no log after a checkpoint of a state") {
        // (After the first commit's checkpoint of nothing, a lost log reads as nothing
        // committed: the engine rebuilds. After a checkpoint of a state, it must not read
        // as that older state.)
        f.reopen();
        REQUIRE(f.store().plant(*h.states[2]).has_value());
        CHECK(f.load_ok() == h.states[2]);
        f.close();
        std::filesystem::remove(f.log());
        f.reopen();
        auto r = f.store().load();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::corrupted));
        CHECK(r.error_value().message.find("log is missing") != std::string::npos);
        REQUIRE(f.store().reset().has_value());
        CHECK_FALSE(f.load_ok().has_value());
    }
    SUBCASE("a first commit that stops between the checkpoint and the log: nothing") {
        fixture g;
        hooks_guard guard;
        md::io_hooks().write = [](std::string_view p, std::uint64_t, std::size_t) {
            return ends_with(p, "/log.tmp") ? md::write_decision{ENOSPC, SIZE_MAX} : md::write_decision{};
        };
        CHECK_FALSE(g.store().commit(h.deltas[0]).has_value());
        md::io_hooks().write = nullptr;
        CHECK(std::filesystem::exists(g.cp()));
        CHECK_FALSE(std::filesystem::exists(g.log()));
        g.reopen();
        CHECK_FALSE(g.load_ok().has_value());
        g.commit_ok(h.deltas[0]);
        g.reopen();
        CHECK(g.load_ok() == h.states[1]);
    }
    CHECK(cp.size() > 32);
}

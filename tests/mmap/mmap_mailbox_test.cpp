// mmap_mailbox (adapters/mmap/mmap_mailbox.hpp): layout, commit, validation, differential
// test against memory_mailbox, crash test.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/mmap/mmap_provider.hpp>
#include <vfolder/adapters/mmap/mmap_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <doctest/doctest.h>
#include "support/mmap_files.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace vfolder;
using namespace vfolder::mmap_detail;

namespace {

using vfolder_test::temp_dir;
using vfolder_test::newest_slot;
using vfolder_test::own_options;
using vfolder_test::read_file;
using vfolder_test::write_file;


keyword_set kws(std::initializer_list<char const*> names) {
    keyword_set k;
    for (auto const* n : names) k.insert(n);
    return k;
}

// The state a mailbox shows, for comparisons.
struct view {
    mailbox_status st;
    std::vector<message_record> recs;
    friend bool operator==(view const&, view const&) = default;
};
result<view> snapshot(mmap_mailbox& m) {
    auto st = m.status();
    if (!st) return st.error_value();
    uid_set all;
    all.add_range(1, 0xFFFFFFFEU);
    auto f = m.fetch(all, fetch_fields::all);
    if (!f) return f.error_value();
    // Consistency: search ALL equals the fetched UIDs, exists equals their count.
    auto s = m.search(search_program::all());
    if (!s) return s.error_value();
    uid_set fetched;
    for (auto const& r : *f) fetched.add(value(r.id));
    if (!(fetched == *s) || f->size() != st->exists) return error{errc::corrupted, "inconsistent answers"};
    return view{*st, *f};
}

} // namespace

TEST_CASE("mmap_mailbox: sha256 known answers") {
    auto hex = [](std::array<std::uint8_t, 32> const& d) {
        std::string s;
        char const* x = "0123456789abcdef";
        for (auto b : d) { s += x[b >> 4]; s += x[b & 15]; }
        return s;
    };
    std::string_view abc = "abc";
    CHECK(hex(sha256(std::as_bytes(std::span(abc.data(), abc.size())))) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    std::string_view e;
    CHECK(hex(sha256(std::as_bytes(std::span(e.data(), e.size())))) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    std::string l = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(hex(sha256(std::as_bytes(std::span(l.data(), l.size())))) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("mmap_mailbox: create, append, read, reopen") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{77}).has_value());
    CHECK(mmap_mailbox::create(dir, uid_validity{78}).error_value().is(errc::already_exists));
    mmap_mailbox m(dir, {"Box"});
    REQUIRE(m.open().has_value());
    auto u1 = m.append("Subject: one\r\n\r\nbody\r\n", mail_time{1000}, system_flag::seen, kws({"Work"}));
    REQUIRE(u1.has_value());
    auto u2 = m.append("two", mail_time{2000}, {}, kws({"$Label1", "Work"}));
    REQUIRE(u2.has_value());
    CHECK(value(*u1) == 1);
    CHECK(value(*u2) == 2);
    auto st = m.status();
    REQUIRE(st.has_value());
    CHECK(st->exists == 2);
    CHECK(value(st->validity) == 77);
    CHECK(value(st->uid_next) == 3);
    CHECK(*m.read_message(*u2) == "two");
    auto recs = m.fetch(uid_set{{1, 2}}, fetch_fields::all);
    REQUIRE(recs.has_value());
    REQUIRE(recs->size() == 2);
    CHECK((*recs)[0].flags == flag_set(system_flag::seen));
    CHECK((*recs)[1].keywords == kws({"$Label1", "Work"}));
    CHECK((*recs)[0].size == 22);

    mmap_mailbox other(dir, {"Box"});
    auto v1 = snapshot(m), v2 = snapshot(other);
    REQUIRE(v1.has_value());
    REQUIRE(v2.has_value());
    CHECK(*v1 == *v2);
    // A write through one handle is seen by the other.
    REQUIRE(other.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged).has_value());
    REQUIRE(m.expunge(uid_set{{2, 2}}).has_value());
    auto c = m.changes_since(st->highest_modseq);
    REQUIRE(c.has_value());
    CHECK(c->changed == uid_set{{1, 1}});
    REQUIRE(c->expunged.has_value());
    CHECK(*c->expunged == uid_set{{2, 2}});
    CHECK(*snapshot(m) == *snapshot(other));
    CHECK(m.read_message(uid{2}).error_value().is(errc::not_found));
    // A no-op write changes nothing.
    auto const hm = m.status()->highest_modseq;
    REQUIRE(m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged).has_value());
    CHECK(m.status()->highest_modseq == hm);

    // Compaction keeps the state; the other handle follows the new file; orphaned
    // message files (here: a UID never committed) are swept.
    auto before = snapshot(m);
    { std::ofstream(dir + "/msg/999") << "orphan"; }
    REQUIRE(std::filesystem::exists(dir + "/msg/999"));
    REQUIRE(m.compact().has_value());
    CHECK_FALSE(std::filesystem::exists(dir + "/msg/999"));
    CHECK(std::filesystem::exists(dir + "/msg/1"));
    CHECK(m.tail_count() == 0);
    CHECK(*snapshot(m) == *before);
    CHECK(*snapshot(other) == *before);
    REQUIRE(other.append("three", mail_time{3000}).has_value());
    CHECK(*snapshot(m) == *snapshot(other));
    auto c2 = m.changes_since(modseq{0});
    REQUIRE(c2.has_value());
    CHECK(*c2->expunged == uid_set{{2, 2}});

    REQUIRE(mmap_mailbox::remove(dir).has_value());
    auto gone = m.status();
    REQUIRE_FALSE(gone.has_value());
    CHECK(gone.error_value().is(errc::not_found));
    CHECK(gone.error_value().message.find("(for backend mailbox Box)") != std::string::npos);
    mmap_mailbox missing(t.path + "/nothing", {"Nope"});
    CHECK(missing.open().error_value().is(errc::not_found));
}

TEST_CASE("mmap_mailbox: golden layout of the index header (format 1.0)") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{4242}).has_value());
    {
        mmap_mailbox m(dir);
        REQUIRE(m.append("hello", mail_time{1600000000}, system_flag::seen | system_flag::draft, kws({"Work"})).has_value());
        REQUIRE(m.append("world!", mail_time{1600000001}).has_value());
    }
    auto const f = read_file(dir + "/index");
    // create = generation 1 (slot B); two appends = generations 2 (slot A) and 3 (slot B).
    REQUIRE(f.size() == 8192 + 3 * 96);
    std::byte const* b = f.data() + 4096; // generation 3 lives in slot B
    std::array<std::uint8_t, 8> const magic{0x89, 0x4D, 0x42, 0x58, 0x0D, 0x0A, 0x1A, 0x0A};
    for (std::size_t i = 0; i < 8; ++i) CHECK(static_cast<std::uint8_t>(b[i]) == magic[i]);
    CHECK(load_le<std::uint16_t>(b + 8) == 1);          // format_major
    CHECK(load_le<std::uint16_t>(b + 10) == 0);         // format_minor
    CHECK(load_le<std::uint32_t>(b + 12) == 256);       // slot_size
    CHECK(load_le<std::uint64_t>(b + 16) == 3);         // generation
    std::uint64_t const file_id = load_le<std::uint64_t>(b + 24);
    CHECK(file_id != 0);
    CHECK(load_le<std::uint32_t>(b + 32) == 4242);      // uidvalidity
    CHECK(load_le<std::uint32_t>(b + 36) == 3);         // uidnext
    CHECK(load_le<std::uint64_t>(b + 40) == 3);         // highestmodseq (created at 1)
    CHECK(load_le<std::uint64_t>(b + 48) == 1);         // base_modseq
    CHECK(load_le<std::uint64_t>(b + 56) == 0);         // vanished_floor
    CHECK(load_le<std::uint32_t>(b + 64) == 96);        // record_size
    CHECK(load_le<std::uint32_t>(b + 68) == 0);         // flags
    CHECK(load_le<std::uint32_t>(b + 84) == 1);         // kw_count
    CHECK(load_le<std::uint64_t>(b + 88) == 8192);      // base_off
    CHECK(load_le<std::uint32_t>(b + 96) == 0);         // live_count
    CHECK(load_le<std::uint32_t>(b + 100) == 0);        // tomb_count
    CHECK(load_le<std::uint32_t>(b + 104) == 0);        // base_kw_count
    std::uint32_t const seed = static_cast<std::uint32_t>(file_id) ^ static_cast<std::uint32_t>(file_id >> 32);
    CHECK(load_le<std::uint32_t>(b + 108) == seed);     // base_crc of an empty base
    for (std::size_t off : {112u, 120u, 128u, 136u, 144u}) CHECK(load_le<std::uint64_t>(b + off) == 8192);
    CHECK(load_le<std::uint32_t>(b + 152) == 3);        // tail_count: KWDEF, MSG, MSG
    CHECK(load_le<std::uint32_t>(b + 156) ==
          crc32c_update(seed, std::span<std::byte const>(f.data() + 8192, 3 * 96)));
    CHECK(load_le<std::uint32_t>(b + 160) == 2);        // exists
    CHECK(load_le<std::uint32_t>(b + 252) == crc32c_update(0, std::span<std::byte const>(b, 252)));
    CHECK(load_le<std::uint64_t>(f.data() + 16) == 2);  // slot A: generation 2
    // Tail entry 0: KWDEF "Work"; entry 1: MSG uid 1.
    std::byte const* k = f.data() + 8192;
    CHECK(load_le<std::uint8_t>(k + 4) == 2);
    CHECK(load_le<std::uint8_t>(k + 5) == 4);
    CHECK(load_le<std::uint16_t>(k + 6) == 0);
    CHECK(std::string(reinterpret_cast<char const*>(k + 16), 4) == "Work");
    CHECK(load_le<std::uint32_t>(k + 92) == crc32c_update(seed, std::span<std::byte const>(k, 92)));
    std::byte const* e = f.data() + 8192 + 96;
    CHECK(load_le<std::uint32_t>(e) == 1);              // uid
    CHECK(load_le<std::uint8_t>(e + 4) == 1);           // kind MSG
    CHECK(load_le<std::uint8_t>(e + 5) == 0x11);        // \Seen | \Draft
    CHECK(load_le<std::uint16_t>(e + 6) == 0);          // state
    CHECK(load_le<std::uint64_t>(e + 8) == 2);          // modseq
    CHECK(load_le<std::uint64_t>(e + 16) == 2);         // created_modseq
    CHECK(load_le<std::int64_t>(e + 24) == 1600000000); // internaldate
    CHECK(load_le<std::uint64_t>(e + 32) == 5);         // size
    CHECK(load_le<std::uint8_t>(e + 48) == 1);          // keyword bitmap: keyword 0
    std::string_view hello = "hello";
    auto const digest = sha256(std::as_bytes(std::span(hello.data(), hello.size())));
    for (std::size_t i = 0; i < 16; ++i) CHECK(static_cast<std::uint8_t>(e[64 + i]) == digest[i]);
    CHECK(load_le<std::uint32_t>(e + 92) == crc32c_update(seed, std::span<std::byte const>(e, 92)));
    // After compaction: a base with 2 LIVE entries, MPERM, no TOMB, one KW; empty tail.
    mmap_mailbox m(dir);
    REQUIRE(m.compact().has_value());
    auto const g = read_file(dir + "/index");
    std::byte const* a = g.data(); // generation 4: slot A
    CHECK(load_le<std::uint64_t>(a + 16) == 4);
    CHECK(load_le<std::uint64_t>(a + 24) != file_id);
    CHECK(load_le<std::uint32_t>(a + 96) == 2);
    CHECK(load_le<std::uint64_t>(a + 120) == 8192 + 2 * 96);      // mperm_off
    CHECK(load_le<std::uint64_t>(a + 128) == 8192 + 2 * 96 + 8);  // tomb_off
    CHECK(load_le<std::uint64_t>(a + 144) == 8192 + 2 * 96 + 8 + 96); // tail_off
    CHECK(load_le<std::uint32_t>(a + 152) == 0);
    CHECK(g.size() == 8192 + 2 * 96 + 8 + 96);
    CHECK(load_le<std::uint64_t>(g.data() + 4096) == 0);          // other slot zeroed
}

namespace {
// A small index with base (after compaction) and a tail: LIVE, MPERM, TOMB, KW, tail
// MSG/KWDEF entries.
std::string make_small_box(temp_dir const& t, std::vector<view>* states = nullptr) {
    std::string const dir = t.path + "/small";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    mmap_mailbox m(dir);
    REQUIRE(m.append("a", mail_time{10}, system_flag::seen, kws({"K1"})).has_value());
    REQUIRE(m.append("bb", mail_time{20}).has_value());
    REQUIRE(m.append("ccc", mail_time{30}).has_value());
    REQUIRE(m.expunge(uid_set{{2, 2}}).has_value());
    REQUIRE(m.compact().has_value());
    REQUIRE(m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged).has_value());
    REQUIRE(m.update_keywords(uid_set{{3, 3}}, modify_op::add, kws({"K2"})).has_value());
    REQUIRE(m.append("dddd", mail_time{40}).has_value());
    if (states) states->push_back(*snapshot(m)); // generation G-1
    REQUIRE(m.expunge(uid_set{{1, 1}}).has_value());
    if (states) states->push_back(*snapshot(m)); // generation G
    return dir;
}

// Opens `dir` fresh: success (then the answers must be self-consistent) or corrupted.
void check_opens_or_corrupt(std::string const& dir, std::vector<view> const& valid_states) {
    mmap_mailbox m(dir, {"X"});
    auto r = m.open();
    if (!r) {
        INFO(r.error_value().message);
        CHECK(r.error_value().is(errc::corrupted));
        return;
    }
    auto v = snapshot(m);
    REQUIRE(v.has_value());
    // Without a recomputed slot CRC, an accepted file must show one of the committed
    // states (the newest, or the previous one when the newest slot was damaged).
    if (!valid_states.empty())
        CHECK(std::find(valid_states.begin(), valid_states.end(), *v) != valid_states.end());
}
} // namespace

TEST_CASE("mmap_mailbox: every flipped byte gives corrupted or a valid state") {
    temp_dir t;
    std::vector<view> states;
    std::string const dir = make_small_box(t, &states);
    REQUIRE(states.size() == 2);
    auto const orig = read_file(dir + "/index");
    REQUIRE(orig.size() > 8192);
    // Recompute-the-CRC variants make the slot CRC pass so deeper checks are exercised.
    for (int recompute = 0; recompute < 2; ++recompute) {
        for (std::size_t i = 0; i < orig.size(); ++i) {
            bool const in_slot = i < 252 || (i >= 4096 && i < 4096 + 252);
            if (recompute == 1 && !in_slot) continue;
            if (i >= 256 && i < 4096) continue;               // zero padding: ignored by design
            if (i >= 4096 + 256 && i < 8192) continue;
            auto f = orig;
            f[i] ^= std::byte{0x5A};
            if (recompute == 1) {
                std::size_t const s = i < 4096 ? 0 : 4096;
                store_le<std::uint32_t>(f.data() + s + 252,
                                        crc32c_update(0, std::span<std::byte const>(f.data() + s, 252)));
            }
            write_file(dir + "/index", f);
            INFO("offset ", i, " recompute ", recompute);
            check_opens_or_corrupt(dir, recompute == 0 ? states : std::vector<view>{});
        }
    }
    write_file(dir + "/index", orig);
    mmap_mailbox m(dir);
    REQUIRE(m.open().has_value());
}

TEST_CASE("mmap_mailbox: truncation at every offset gives corrupted or an older state") {
    temp_dir t;
    std::vector<view> states;
    std::string const dir = make_small_box(t, &states);
    auto const orig = read_file(dir + "/index");
    for (std::size_t n = 0; n < orig.size(); ++n) {
        std::vector<std::byte> f(orig.begin(), orig.begin() + static_cast<std::ptrdiff_t>(n));
        write_file(dir + "/index", f);
        INFO("size ", n);
        check_opens_or_corrupt(dir, states);
    }
}

TEST_CASE("mmap_mailbox: random operations match memory_mailbox") {
    // The reader modes (§7) must give identical answers: mapped and full validation,
    // no-mmap (pread into a private buffer), lazy validation.
    mmap_options mode{"Diff"};
    SUBCASE("mmap, full validation") {}
    SUBCASE("no-mmap") { mode.use_mmap = false; }
    SUBCASE("lazy validation") { mode.validate = mmap_options::validation::lazy; }
    temp_dir t;
    std::string const dir = t.path + "/diff";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{31}).has_value());
    mmap_mailbox m(dir, mode);
    // A handle of its own (another process, in effect), opened fresh at every step: its
    // answers come from the base plus the overlay of the tail it replayed at open.
    mmap_options fresh_mode = mode;
    fresh_mode.name = "Fresh";
    fresh_mode.share_open = false;
    fresh_mode.auto_compact = false;
    memory_mailbox ref("Diff", uid_validity{31});
    std::mt19937 rng(12345);
    auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
    std::vector<char const*> const pool{"Work", "$Label1", "Later", "work", "$Junk", "Private"};
    auto random_kw = [&] {
        keyword_set k;
        std::uint32_t const n = pick(3);
        for (std::uint32_t i = 0; i < n; ++i) k.insert(pool[pick(static_cast<std::uint32_t>(pool.size()))]);
        return k;
    };
    auto random_set = [&] {
        uid_set s;
        std::uint32_t const hi = value(ref.next_uid()) + 2;
        std::uint32_t const n = 1 + pick(4);
        for (std::uint32_t i = 0; i < n; ++i) {
            std::uint32_t const a = 1 + pick(hi);
            s.add_range(a, a + pick(3));
        }
        return s;
    };
    std::vector<search_program> progs;
    for (char const* p : {"all", "seen", "unseen flagged", "keyword Work", "or deleted keyword $Label1",
                          "larger 5", "since 2-Jan-1970", "not keyword Later"}) {
        auto r = search_program::parse(p);
        REQUIRE(r.has_value());
        progs.push_back(*r);
    }
    std::vector<std::uint64_t> marks{0};
    for (int step = 0; step < 150; ++step) {
        INFO("step ", step);
        std::uint32_t const op = pick(100);
        if (op < 35) {
            mail_time const d{static_cast<std::int64_t>(pick(200000))};
            flag_set const f = flag_set::from_bits(static_cast<std::uint8_t>(pick(64)));
            keyword_set const k = random_kw();
            std::uint64_t const size = pick(12);
            auto u = m.append(std::string(size, 'm'), d, f, k);
            REQUIRE(u.has_value());
            CHECK(*u == ref.append(d, {f, k}, {}, size));
        } else if (op < 55) {
            auto const s = random_set();
            auto const o = static_cast<modify_op>(pick(3));
            flag_set const f = flag_set::from_bits(static_cast<std::uint8_t>(pick(64)));
            REQUIRE(m.update_flags(s, o, f).has_value());
            ref.update_flags_now(s, o, f);
        } else if (op < 75) {
            auto const s = random_set();
            auto const o = static_cast<modify_op>(pick(3));
            auto const k = random_kw();
            REQUIRE(m.update_keywords(s, o, k).has_value());
            ref.update_keywords_now(s, o, k);
        } else if (op < 88) {
            auto const s = random_set();
            REQUIRE(m.expunge(s).has_value());
            ref.expunge_now(s);
        } else if (op < 93) {
            REQUIRE(m.compact().has_value());
        } else {
            m.close();
            REQUIRE(m.open().has_value());
        }
        auto st = m.status();
        REQUIRE(st.has_value());
        auto const rs = ref.status_now();
        CHECK(st->exists == rs.exists);
        CHECK(st->uid_next == rs.uid_next);
        CHECK(value(st->highest_modseq) == value(rs.highest_modseq) + 1); // mmap starts at 1
        marks.push_back(value(rs.highest_modseq));
        for (auto const& p : progs) CHECK(*m.search(p) == ref.search_now(p));
        auto const within = random_set();
        CHECK(*m.search(progs[1], within) == ref.search_now(progs[1], within));
        uid_set all;
        all.add_range(1, 0xFFFFFFFEU);
        CHECK(*m.fetch(all, fetch_fields::all) == ref.fetch_now(all, fetch_fields::all));
        std::uint64_t const since = marks[pick(static_cast<std::uint32_t>(marks.size()))];
        auto c = m.changes_since(modseq{since + 1});
        REQUIRE(c.has_value());
        auto const rc = ref.changes_now(modseq{since});
        CHECK(c->changed == rc.changed);
        REQUIRE(c->expunged.has_value());
        CHECK(*c->expunged == *rc.expunged);
        mmap_mailbox fresh(dir, fresh_mode);
        auto fc = fresh.changes_since(modseq{since + 1});
        REQUIRE(fc.has_value());
        CHECK(fc->changed == rc.changed);
        CHECK(*fresh.fetch(all, fetch_fields::all) == ref.fetch_now(all, fetch_fields::all));
        CHECK(*fresh.search(progs[3]) == ref.search_now(progs[3]));
    }
}

TEST_CASE("mmap_mailbox: SIGKILL during appends loses no acknowledged message") {
    temp_dir t;
    std::string const dir = t.path + "/crash";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{5}).has_value());
    std::mt19937 rng(777);
    for (int round = 0; round < 3; ++round) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid_t const pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            mmap_mailbox c(dir);
            for (std::uint32_t i = 0;; ++i) {
                std::string body = "message " + std::to_string(i);
                auto u = c.append(body, mail_time{static_cast<std::int64_t>(i)}, system_flag::seen);
                if (!u) {
                    std::fprintf(stderr, "child: %s\n", u.error_value().message.c_str());
                    ::_exit(2);
                }
                if (i % 3 == 0 && !c.update_flags(uid_set{{value(*u), value(*u)}}, modify_op::add, system_flag::flagged)) ::_exit(3);
                std::uint32_t const v = value(*u);
                if (::write(fds[1], &v, sizeof v) != static_cast<ssize_t>(sizeof v)) ::_exit(4);
            }
        }
        ::close(fds[1]);
        std::vector<std::uint32_t> acked;
        std::uint32_t v = 0;
        // Wait for the first acknowledgement (the machine may be slow), then kill at a
        // random moment.
        if (::read(fds[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) acked.push_back(v);
        ::usleep(static_cast<useconds_t>(rng() % 60000));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        INFO("child status ", status);
        CHECK(WIFSIGNALED(status));
        while (::read(fds[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) acked.push_back(v);
        ::close(fds[0]);
        INFO("round ", round, ": ", acked.size(), " acknowledged");
        CHECK(acked.size() > 0);
        mmap_mailbox m(dir);
        REQUIRE(m.open().has_value());
        auto snap = snapshot(m);
        REQUIRE(snap.has_value());
        uid_set present;
        for (auto const& r : snap->recs) present.add(value(r.id));
        for (auto u : acked) {
            CHECK(present.contains(u));
            CHECK(m.read_message(uid{u}).has_value());
        }
        // The mailbox stays writable after the crash.
        REQUIRE(m.append("after", mail_time{1}).has_value());
    }
}

TEST_CASE("mmap_mailbox: failed writes and fsyncs (W1, W2, W6) leave G or G+1, never half") {
    temp_dir t;
    std::string const dir = t.path + "/faults";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{3}).has_value());
    mmap_mailbox m(dir, {"F"});
    REQUIRE(m.append("x", mail_time{1}).has_value());
    auto const before = snapshot(m);
    REQUIRE(before.has_value());
    auto is_index = [](std::string_view p) { return p.size() >= 6 && p.substr(p.size() - 6) == "/index"; };
    struct reset_hooks {
        ~reset_hooks() { io_hooks() = {}; }
    } reset;
    auto flagged = [&](mmap_mailbox& h) {
        auto r = h.fetch(uid_set{{1, 1}}, fetch_fields::flags);
        REQUIRE(r.has_value());
        REQUIRE(r->size() == 1);
        return (*r)[0].flags.contains(system_flag::flagged);
    };

    SUBCASE("W1: ENOSPC on the entries") {
        io_hooks().write = [&](std::string_view p, std::uint64_t off, std::size_t) {
            return is_index(p) && off >= 8192 ? write_decision{ENOSPC, SIZE_MAX} : write_decision{};
        };
        auto r = m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::io));
        CHECK(r.error_value().message.find("(for backend mailbox F)") != std::string::npos);
        io_hooks() = {};
        CHECK(*snapshot(m) == *before);
        mmap_mailbox fresh(dir);
        CHECK(*snapshot(fresh) == *before);
    }
    SUBCASE("W2: fdatasync of the entries fails: nothing published, handle poisoned then reloads") {
        int n = 0;
        io_hooks().fsync = [&](std::string_view p) { return is_index(p) && ++n == 2 ? EIO : 0; };
        auto r = m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged);
        REQUIRE_FALSE(r.has_value());
        io_hooks() = {};
        mmap_mailbox fresh(dir);
        CHECK(*snapshot(fresh) == *before);
        CHECK(*snapshot(m) == *before);
    }
    SUBCASE("W6: fdatasync of the slot fails: outcome unknown, the slot is withdrawn") {
        int n = 0;
        io_hooks().fsync = [&](std::string_view p) { return is_index(p) && ++n == 3 ? EIO : 0; };
        auto r = m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().message.find("unknown") != std::string::npos);
        io_hooks() = {};
        mmap_mailbox fresh(dir);
        auto v = snapshot(fresh);
        REQUIRE(v.has_value());
        CHECK(!flagged(fresh)); // the slot was zeroed: generation G
        CHECK(*snapshot(m) == *v);
    }
    // In every case the mailbox stays writable.
    REQUIRE(m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged).has_value());
    CHECK(flagged(m));
    mmap_mailbox again(dir);
    CHECK(flagged(again));
}

// ---------------------------------------------------------------- reader refresh (§7)
namespace {


// Rewrites the slot of generation `h.generation` (by parity) in place (same inode).
void put_slot(std::string const& index, slot_fields const& h) {
    auto f = read_file(index);
    auto const raw = encode_slot(h);
    std::memcpy(f.data() + (h.generation % 2 == 0 ? 0 : slot_b_off), raw.data(), slot_size);
    write_file(index, f);
}

// The slot in force, decoded from the file.

} // namespace

TEST_CASE("mmap_mailbox refresh: unchanged generation reads only the slots; a grown tail validates only the new entries") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{5}).has_value());
    mmap_mailbox w(dir, own_options("W"));
    for (int i = 0; i < 40; ++i) REQUIRE(w.append("m" + std::to_string(i), mail_time{1000 + i}).has_value());
    REQUIRE(w.compact().has_value()); // the 40 messages are now the base
    REQUIRE(w.tail_count() == 0);

    mmap_mailbox r(dir, own_options("R"));
    REQUIRE(r.open().has_value());
    auto s0 = r.reader_stats();
    CHECK(s0.full_loads == 1);
    CHECK(s0.base_entries_validated == 40);
    CHECK(s0.tail_entries_validated == 0);

    REQUIRE(r.status().has_value());
    REQUIRE(r.status().has_value());
    auto s1 = r.reader_stats();
    CHECK(s1.unchanged_refreshes == s0.unchanged_refreshes + 2);
    CHECK(s1.incremental_refreshes == 0);
    CHECK(s1.full_loads == 1);

    // Damage one byte of the base behind the readers' backs (slots untouched). A refresh
    // after a commit must not look at the base again, so r does not notice; a full open does.
    auto const index = dir + "/index";
    {
        auto f = read_file(index);
        f[base_off + 24] ^= std::byte{0x01}; // internaldate of LIVE entry 0
        write_file(index, f);
    }
    REQUIRE(w.append("new", mail_time{5000}, {}, kws({"Fresh"})).has_value()); // KWDEF + MSG
    auto st = r.status();
    REQUIRE(st.has_value());
    CHECK(st->exists == 41);
    auto s2 = r.reader_stats();
    CHECK(s2.full_loads == 1);
    CHECK(s2.incremental_refreshes == 1);
    CHECK(s2.tail_entries_validated == 2);
    CHECK(s2.base_entries_validated == 40);
    auto rec = r.fetch(uid_set{{41, 41}}, fetch_fields::all);
    REQUIRE(rec.has_value());
    REQUIRE(rec->size() == 1);
    CHECK((*rec)[0].keywords == kws({"Fresh"}));

    mmap_mailbox fresh(dir, own_options("F"));
    auto bad = fresh.open();
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error_value().is(errc::corrupted));
    CHECK_FALSE(mmap_mailbox::is_inconsistent(bad.error_value()));
}

TEST_CASE("mmap_mailbox refresh: incremental state equals a full load after mixed changes") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{6}).has_value());
    mmap_mailbox w(dir, own_options("W"));
    mmap_mailbox r(dir, own_options("R"));
    REQUIRE(r.open().has_value());
    for (int round = 0; round < 5; ++round) {
        for (int i = 0; i < 4; ++i) {
            keyword_set k;
            k.insert("K" + std::to_string(i));
            REQUIRE(w.append("x", mail_time{100 * round + i}, system_flag::seen, k).has_value());
        }
        auto const st = w.status();
        REQUIRE(st.has_value());
        std::uint32_t const hi = value(st->uid_next) - 1;
        REQUIRE(w.update_flags(uid_set{{1, hi}}, modify_op::add, system_flag::flagged).has_value());
        keyword_set rk;
        rk.insert("R" + std::to_string(round));
        REQUIRE(w.update_keywords(uid_set{{hi - 1, hi}}, modify_op::add, rk).has_value());
        REQUIRE(w.expunge(uid_set{{hi - 2, hi - 2}}).has_value());
        auto a = snapshot(r);
        REQUIRE(a.has_value());
        mmap_mailbox f(dir, own_options("F"));
        auto b = snapshot(f);
        REQUIRE(b.has_value());
        CHECK(*a == *b);
        auto ca = r.changes_since(modseq{3});
        auto cb = f.changes_since(modseq{3});
        REQUIRE(ca.has_value());
        REQUIRE(cb.has_value());
        CHECK(ca->changed == cb->changed);
        CHECK(ca->expunged == cb->expunged);
    }
    auto const s = r.reader_stats();
    CHECK(s.full_loads == 1);
    CHECK(s.incremental_refreshes >= 5);
}

TEST_CASE("mmap_mailbox refresh: a base field changed in the same file is 'inconsistent', then a full reload") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{7}).has_value());
    mmap_mailbox w(dir, own_options("W"));
    REQUIRE(w.append("a", mail_time{1}).has_value());
    mmap_mailbox r(dir, own_options("R"));
    REQUIRE(r.open().has_value());
    auto const index = dir + "/index";

    SUBCASE("uidvalidity changes under a snapshot") {
        slot_fields h = newest_slot(index);
        h.generation += 1;
        h.uidvalidity = 8;
        put_slot(index, h);
        auto e = r.status();
        REQUIRE_FALSE(e.has_value());
        CHECK(e.error_value().is(errc::inconsistent));
        CHECK(mmap_mailbox::is_inconsistent(e.error_value()));
        CHECK(e.error_value().message.find("uidvalidity") != std::string::npos);
        CHECK(e.error_value().message.find("(for backend mailbox R)") != std::string::npos);
        // The snapshot was dropped: the next call reloads and revalidates the whole file.
        auto st = r.status();
        REQUIRE(st.has_value());
        CHECK(value(st->validity) == 8);
        CHECK(r.reader_stats().full_loads == 1); // counters belong to the new state
    }
    SUBCASE("tail_count goes backwards") {
        REQUIRE(w.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::seen).has_value());
        REQUIRE(r.status().has_value());
        slot_fields h = newest_slot(index);
        h.generation += 1;
        h.tail_count -= 1;
        put_slot(index, h);
        auto e = r.status();
        REQUIRE_FALSE(e.has_value());
        CHECK(mmap_mailbox::is_inconsistent(e.error_value()));
        CHECK(e.error_value().message.find("tail_count") != std::string::npos);
    }
    SUBCASE("a new file_id in the same inode") {
        slot_fields h = newest_slot(index);
        h.generation += 1;
        h.file_id ^= 0x10000;
        put_slot(index, h);
        auto e = r.status();
        REQUIRE_FALSE(e.has_value());
        CHECK(mmap_mailbox::is_inconsistent(e.error_value()));
        // The reload finds entries sealed with another file's seed: corrupted, not a crash.
        auto again = r.status();
        REQUIRE_FALSE(again.has_value());
        CHECK(again.error_value().is(errc::corrupted));
        CHECK_FALSE(mmap_mailbox::is_inconsistent(again.error_value()));
    }
}

TEST_CASE("mmap_mailbox refresh: a damaged new tail entry is corrupted and the snapshot stays") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    mmap_mailbox w(dir, own_options("W"));
    REQUIRE(w.append("a", mail_time{1}).has_value());
    mmap_mailbox r(dir, own_options("R"));
    auto const before = snapshot(r);
    REQUIRE(before.has_value());
    REQUIRE(w.append("b", mail_time{2}).has_value());
    auto const h = newest_slot(dir + "/index");
    {
        auto f = read_file(dir + "/index");
        f[h.committed_end() - entry_size + 33] ^= std::byte{0x40}; // size of the new entry
        write_file(dir + "/index", f);
    }
    auto e = r.status();
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error_value().is(errc::corrupted));
    CHECK_FALSE(mmap_mailbox::is_inconsistent(e.error_value()));
    CHECK(e.error_value().message.find("checksum") != std::string::npos);
    CHECK(r.reader_stats().incremental_refreshes == 0);
    CHECK(r.reader_stats().full_loads == 1);
}

TEST_CASE("mmap_mailbox refresh: a replaced file (compaction, re-creation) reopens in full") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{10}).has_value());
    mmap_mailbox w(dir, own_options("W"));
    REQUIRE(w.append("a", mail_time{1}).has_value());
    REQUIRE(w.append("b", mail_time{2}).has_value());
    mmap_mailbox r(dir, own_options("R"));
    REQUIRE(r.open().has_value());
    REQUIRE(w.compact().has_value());
    auto v = snapshot(r);
    REQUIRE(v.has_value());
    CHECK(v->st.exists == 2);
    CHECK(r.reader_stats().full_loads == 2);
    CHECK(r.reader_stats().base_entries_validated == 2);

    // An older copy of the index put back: the reload works, but the counters went down.
    auto const older = read_file(dir + "/index");
    REQUIRE(w.append("c", mail_time{3}).has_value());
    REQUIRE(r.status()->exists == 3);
    write_file(dir + "/index.old", older);
    REQUIRE(std::rename((dir + "/index.old").c_str(), (dir + "/index").c_str()) == 0);
    auto back = r.status();
    REQUIRE_FALSE(back.has_value());
    CHECK(mmap_mailbox::is_inconsistent(back.error_value()));
    CHECK(back.error_value().message.find("highestmodseq") != std::string::npos);
    auto now = r.status(); // reported once; the state of the file in place is served
    REQUIRE(now.has_value());
    CHECK(now->exists == 2);

    // A replacement in which a live message is gone without a tombstone.
    {
        mailbox_state forged;
        slot_fields h = newest_slot(dir + "/index");
        msg_image one;
        one.uid = 1;
        one.modseq = one.created_modseq = h.highestmodseq + 5; // modseqs and uidnext move on
        one.date = 1;
        forged.live.emplace(1U, live_msg{one, {}});
        h.highestmodseq += 10;
        auto bytes = build_index_file(forged, h, h.generation + 1, 0x1234567890ULL);
        write_file(dir + "/index.forged", bytes);
        REQUIRE(std::rename((dir + "/index.forged").c_str(), (dir + "/index").c_str()) == 0);
        auto lost = r.status();
        REQUIRE_FALSE(lost.has_value());
        CHECK(mmap_mailbox::is_inconsistent(lost.error_value()));
        CHECK(lost.error_value().message.find("uid 2 vanished without a tombstone") != std::string::npos);
        auto served = r.status();
        REQUIRE(served.has_value());
        CHECK(served->exists == 1);
    }

    // A replacement whose base is damaged is caught by the full reload.
    auto f = read_file(dir + "/index");
    f[base_off + 33] ^= std::byte{0x01};
    write_file(dir + "/index.bad", f);
    REQUIRE(std::rename((dir + "/index.bad").c_str(), (dir + "/index").c_str()) == 0);
    auto e = r.status();
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error_value().is(errc::corrupted));
    CHECK(e.error_value().message.find("base_crc") != std::string::npos);
}

TEST_CASE("mmap_mailbox refresh: with refresh_nowait, a slot being published keeps the snapshot instead of waiting") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{11}).has_value());
    auto o = own_options("R");
    o.lock_timeout = std::chrono::milliseconds{50};
    o.refresh_nowait = true;
    mmap_mailbox r(dir, o);
    REQUIRE(r.open().has_value());
    auto waiting = own_options("Q");
    waiting.lock_timeout = std::chrono::milliseconds{50};
    mmap_mailbox q(dir, waiting);
    REQUIRE(q.open().has_value());
    auto pl = unique_fd::open(dir + "/publish.lock", O_RDWR);
    REQUIRE(pl.has_value());
    REQUIRE(::flock(pl->get(), LOCK_EX) == 0); // a writer between W4 and W7
    auto st = r.status();
    REQUIRE(st.has_value());
    CHECK(r.reader_stats().busy_refreshes == 1);
    // Without refresh_nowait a refresh waits for the slot, up to the deadline.
    auto qe = q.status();
    REQUIRE_FALSE(qe.has_value());
    CHECK(qe.error_value().is(errc::temporary));
    CHECK(q.reader_stats().busy_refreshes == 0);
    // A first open has no snapshot to keep: it waits, up to the deadline.
    mmap_mailbox n(dir, o);
    auto e = n.open();
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error_value().is(errc::temporary));
    ::flock(pl->get(), LOCK_UN);
    CHECK(r.status().has_value());
    CHECK(r.reader_stats().unchanged_refreshes >= 1);
}

// ---------------------------------------------------------------- one state per process
TEST_CASE("mmap_mailbox: handles on the same directory share one reference-counted state") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{12}).has_value());
    mmap_mailbox a(dir, {"A"});
    mmap_mailbox b(t.path + "/./box", {"B"}); // another spelling of the same directory
    CHECK(a.shared_handles() == 0);
    REQUIRE(a.open().has_value());
    REQUIRE(b.open().has_value());
    CHECK(a.shared_handles() == 2);
    CHECK(b.shared_handles() == 2);
    REQUIRE(a.append("x", mail_time{1}).has_value());
    auto const sa = a.reader_stats();
    auto sb = b.status();
    REQUIRE(sb.has_value());
    CHECK(sb->exists == 1);
    // b sees a's commit without reading the file: same state, same counters.
    CHECK(b.reader_stats().full_loads == 1);
    CHECK(b.reader_stats().incremental_refreshes == 0);
    CHECK(b.reader_stats().unchanged_refreshes == sa.unchanged_refreshes + 1);

    mmap_mailbox c(dir, own_options("C"));
    REQUIRE(c.open().has_value());
    CHECK(c.shared_handles() == 1);
    CHECK(a.shared_handles() == 2);

    a.close();
    CHECK_FALSE(a.is_open());
    CHECK(a.shared_handles() == 0);
    CHECK(b.shared_handles() == 1);
    REQUIRE(b.append("y", mail_time{2}).has_value());
    CHECK(c.status()->exists == 2);
    REQUIRE(a.open().has_value()); // rejoins b
    CHECK(a.shared_handles() == 2);
    CHECK(a.reader_stats().full_loads == 1);
    a.close();
    b.close();
    // The last one out released the state: a new open loads from disk again.
    mmap_mailbox d(dir, {"D"});
    REQUIRE(d.open().has_value());
    CHECK(d.shared_handles() == 1);
    CHECK(d.reader_stats().full_loads == 1);
    CHECK(d.reader_stats().tail_entries_validated == 2);

    // Removing and re-creating the directory never hands out the old state.
    d.close();
    mmap_mailbox e(dir, {"E"});
    REQUIRE(e.open().has_value());
    REQUIRE(mmap_mailbox::remove(dir).has_value());
    REQUIRE(mmap_mailbox::create(dir, uid_validity{13}).has_value());
    mmap_mailbox g(dir, {"G"});
    auto st = g.status();
    REQUIRE(st.has_value());
    CHECK(value(st->validity) == 13);
    CHECK(st->exists == 0);
    auto old = e.status(); // e's state was for the removed directory
    REQUIRE(old.has_value());
    CHECK(value(old->validity) == 13);
}

TEST_CASE("mmap_mailbox: threads with handles on one directory serialise on the shared state") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{14}).has_value());
    std::atomic<int> failures{0};
    auto work = [&](int id) {
        mmap_mailbox m(dir, {"T" + std::to_string(id)});
        for (int i = 0; i < 15; ++i) {
            if (!m.append("t" + std::to_string(id), mail_time{i}).has_value()) ++failures;
            if (!m.status().has_value()) ++failures;
        }
    };
    // A third thread keeps joining and leaving the shared state, reading and flagging.
    auto churn = [&] {
        for (int i = 0; i < 30; ++i) {
            mmap_mailbox m(dir, {"C"});
            if (!m.open().has_value()) ++failures;
            auto st = m.status();
            if (!st.has_value()) ++failures;
            else if (st->exists > 0 &&
                     !m.update_flags(uid_set{{1, st->exists}}, modify_op::add, system_flag::seen).has_value())
                ++failures;
            if (m.reader_stats().full_loads == 0) ++failures;
            m.close();
        }
    };
    std::thread t1(work, 1), t2(work, 2), t3(churn);
    t1.join();
    t2.join();
    t3.join();
    CHECK(failures.load() == 0);
    mmap_mailbox m(dir, own_options("M"));
    CHECK(m.status()->exists == 30);
}

TEST_CASE("mmap_mailbox: a forked child never shares its parent's state") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{15}).has_value());
    mmap_mailbox p(dir, {"P"});
    REQUIRE(p.open().has_value());
    REQUIRE(p.status().has_value());
    REQUIRE(p.status().has_value());
    REQUIRE(p.reader_stats().unchanged_refreshes >= 2);
    pid_t const pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The handle carried over from the parent leaves the parent's state: its counters
        // start again (a full load, then one unchanged refresh).
        bool ok = p.status().has_value() && p.reader_stats().full_loads == 1 &&
                  p.reader_stats().unchanged_refreshes == 1 && p.shared_handles() == 1;
        // A new handle in the child shares the child's state, never the parent's.
        mmap_mailbox c(dir, {"C"});
        ok = ok && c.open().has_value() && c.shared_handles() == 2 && c.append("c", mail_time{1}).has_value();
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(p.shared_handles() == 1);
    CHECK(p.status()->exists == 1);
}

// ---------------------------------------------------------------- housekeeping
TEST_CASE("mmap_mailbox: remove() makes the index disappear before the message files") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{16}).has_value());
    mmap_mailbox m(dir, {"M"});
    REQUIRE(m.append("a", mail_time{1}).has_value());
    struct reset_hooks {
        ~reset_hooks() { io_hooks() = {}; }
    } reset;
    int checked = 0;
    io_hooks().fsync = [&](std::string_view p) {
        if (p == dir) { // the directory fsync right after the index is unlinked
            CHECK_FALSE(std::filesystem::exists(dir + "/index"));
            CHECK(std::filesystem::exists(dir + "/msg/1"));
            ++checked;
        }
        return 0;
    };
    REQUIRE(mmap_mailbox::remove(dir).has_value());
    io_hooks() = {};
    CHECK(checked == 1);
    CHECK_FALSE(std::filesystem::exists(dir));
    CHECK(m.status().error_value().is(errc::not_found));

    // A remove interrupted after the index went: the mailbox does not exist, and a second
    // remove finishes the job.
    REQUIRE(mmap_mailbox::create(dir, uid_validity{17}).has_value());
    mmap_mailbox n(dir, {"N"});
    REQUIRE(n.append("b", mail_time{2}).has_value());
    n.close();
    REQUIRE(std::filesystem::remove(dir + "/index"));
    auto xo = mmap_mailbox(dir, {"X"}).open();
    REQUIRE_FALSE(xo.has_value());
    INFO(xo.error_value().message);
    CHECK(xo.error_value().is(errc::not_found));
    REQUIRE(mmap_mailbox::remove(dir).has_value());
    CHECK_FALSE(std::filesystem::exists(dir));
    CHECK(mmap_mailbox::remove(dir).error_value().is(errc::not_found));
}

TEST_CASE("mmap_mailbox: the first write sweeps stale tmp/ files, index.new and msg/ orphans above uidnext") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{18}).has_value());
    {
        mmap_mailbox m(dir, own_options("M"));
        REQUIRE(m.append("a", mail_time{1}).has_value());
    }
    auto touch = [](std::string const& p, bool old) {
        { std::ofstream(p) << "junk"; }
        if (old) {
            auto const when = std::filesystem::last_write_time(p) - std::chrono::hours(2);
            std::filesystem::last_write_time(p, when);
        }
    };
    touch(dir + "/tmp/123", true);     // a staging file of a writer that died long ago
    touch(dir + "/tmp/456", false);    // maybe another writer staging right now
    touch(dir + "/tmp/index.new", false);
    touch(dir + "/msg/7", false);      // renamed by a writer killed before its commit
    mmap_mailbox m(dir, own_options("M"));
    REQUIRE(m.status().has_value()); // reading sweeps nothing
    CHECK(std::filesystem::exists(dir + "/tmp/123"));
    CHECK(std::filesystem::exists(dir + "/msg/7"));
    REQUIRE(m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::seen).has_value());
    CHECK_FALSE(std::filesystem::exists(dir + "/tmp/123"));
    CHECK(std::filesystem::exists(dir + "/tmp/456"));
    CHECK_FALSE(std::filesystem::exists(dir + "/tmp/index.new"));
    CHECK_FALSE(std::filesystem::exists(dir + "/msg/7"));
    CHECK(std::filesystem::exists(dir + "/msg/1"));
    CHECK(*m.read_message(uid{1}) == "a");
}

TEST_CASE("mmap_mailbox: the last close compacts when the tail is worth it") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{19}).has_value());
    auto o = own_options("M");
    o.share_open = true;
    o.auto_compact = true;
    o.compact_min_tail = 8;
    mmap_mailbox m(dir, o);
    for (int i = 0; i < 3; ++i) REQUIRE(m.append("a", mail_time{i}).has_value());
    CHECK_FALSE(m.compaction_worthwhile());
    for (int i = 0; i < 3; ++i) {
        REQUIRE(m.update_flags(uid_set{{1, 3}}, modify_op::add, system_flag::seen).has_value());
        REQUIRE(m.update_flags(uid_set{{1, 3}}, modify_op::remove, system_flag::seen).has_value());
    }
    REQUIRE(m.tail_count() == 21);
    CHECK(m.compaction_worthwhile());
    auto const before = snapshot(m);
    REQUIRE(before.has_value());
    auto const gen = m.generation();

    mmap_mailbox other(dir, o); // a second user: the first close must not compact
    REQUIRE(other.open().has_value());
    m.close();
    CHECK(other.tail_count() == 21);
    other.close(); // the last one
    mmap_mailbox check(dir, own_options("C"));
    auto after = snapshot(check);
    REQUIRE(after.has_value());
    CHECK(*after == *before);
    CHECK(check.tail_count() == 0);
    CHECK(check.generation() == gen + 1);

    // Not worthwhile, or switched off: nothing happens.
    REQUIRE(check.update_flags(uid_set{{1, 3}}, modify_op::add, system_flag::seen).has_value());
    check.close();
    mmap_mailbox again(dir, own_options("A"));
    CHECK(again.status().has_value());
    CHECK(again.tail_count() == 3);

    // The destructor closes too.
    {
        mmap_mailbox d(dir, o);
        for (int i = 0; i < 3; ++i)
            REQUIRE(d.update_flags(uid_set{{1, 3}}, modify_op::add, i % 2 == 0 ? system_flag::flagged : system_flag::draft).has_value());
        REQUIRE(d.tail_count() == 9); // 3 before + 3 flagged + 3 draft; the third call is a no-op
        REQUIRE(d.compaction_worthwhile());
    }
    mmap_mailbox last(dir, own_options("L"));
    CHECK(last.status().has_value());
    CHECK(last.tail_count() == 0);
}

TEST_CASE("mmap_mailbox refresh: every flipped byte of a new commit gives the incremental and the full path the same answer") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{20}).has_value());
    auto const index = dir + "/index";
    {
        mmap_mailbox w(dir, own_options("W"));
        REQUIRE(w.append("a", mail_time{1}, {}, kws({"Old"})).has_value());
        REQUIRE(w.append("b", mail_time{2}).has_value());
        REQUIRE(w.compact().has_value());
        REQUIRE(w.append("c", mail_time{3}).has_value());
    }
    auto const before = read_file(index); // generation G
    slot_fields const hg = newest_slot(index);
    {
        // Commit G+1: a keyword definition, an update, an expunge, an append.
        mmap_mailbox w(dir, own_options("W"));
        REQUIRE(w.update_keywords(uid_set{{1, 1}}, modify_op::add, kws({"New"})).has_value());
        REQUIRE(w.expunge(uid_set{{2, 2}}).has_value());
        REQUIRE(w.append("d", mail_time{4}).has_value());
    }
    auto const after = read_file(index);
    slot_fields const hn = newest_slot(index);
    REQUIRE(hn.generation == hg.generation + 3);
    std::size_t const slot_at = hn.generation % 2 == 0 ? 0 : slot_b_off;
    std::vector<std::size_t> offsets;
    for (std::size_t i = hg.committed_end(); i < hn.committed_end(); ++i) offsets.push_back(i);
    for (std::size_t i = slot_at; i < slot_at + 252; ++i) offsets.push_back(i);
    REQUIRE(offsets.size() > 500);
    int incremental_ok = 0;
    for (int recompute = 0; recompute < 2; ++recompute) {
        for (std::size_t i : offsets) {
            bool const in_slot = i < slot_at + 252 && i >= slot_at;
            if (recompute == 1 && !in_slot) continue;
            auto f = after;
            f[i] ^= std::byte{0x21};
            if (recompute == 1)
                store_le<std::uint32_t>(f.data() + slot_at + 252,
                                        crc32c_update(0, std::span<std::byte const>(f.data() + slot_at, 252)));
            INFO("offset ", i, " recompute ", recompute);
            write_file(index, before);
            mmap_mailbox r(dir, own_options("R"));
            REQUIRE(r.open().has_value());
            write_file(index, f); // same inode: the incremental path
            auto ri = snapshot(r);
            mmap_mailbox full(dir, own_options("F"));
            auto rf = snapshot(full);
            if (ri.has_value()) {
                ++incremental_ok;
                REQUIRE(rf.has_value());
                CHECK(*ri == *rf);
            } else {
                // corrupted, or (only with a forged slot) inconsistent
                CHECK((ri.error_value().is(errc::corrupted) ||
                       (recompute == 1 && ri.error_value().is(errc::inconsistent))));
                if (recompute == 0) CHECK_FALSE(rf.has_value()); // no inconsistency without a forged slot
            }
            if (recompute == 0 && rf.has_value()) CHECK(ri.has_value());
        }
    }
    CHECK(incremental_ok > 0);
    // The intact commit goes through the incremental path and matches a full load.
    write_file(index, before);
    mmap_mailbox r(dir, own_options("R"));
    REQUIRE(r.open().has_value());
    write_file(index, after);
    auto ri = snapshot(r);
    REQUIRE(ri.has_value());
    CHECK(r.reader_stats().incremental_refreshes == 1);
    CHECK(r.reader_stats().tail_entries_validated == hn.tail_count);
    mmap_mailbox full(dir, own_options("F"));
    CHECK(*snapshot(full) == *ri);
}

// ---------------------------------------------------------------- tombstone retention (§8.4)
namespace {
mmap_options retention_options(std::string name, std::uint32_t keep_count, std::chrono::seconds keep_age) {
    mmap_options o = own_options(std::move(name));
    o.tomb_keep_count = keep_count;
    o.tomb_keep_age = keep_age;
    return o;
}
} // namespace

TEST_CASE("mmap_mailbox retention: compaction prunes old tombstones beyond the count, raises the floor") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{3}).has_value());
    mmap_mailbox w(dir, retention_options("W", 2, std::chrono::seconds{0}));
    for (int i = 1; i <= 10; ++i) REQUIRE(w.append("m" + std::to_string(i), mail_time{i}).has_value());
    // A reader that last saw UIDs 1..10 live (and will not refresh until the end).
    mmap_mailbox r(dir, own_options("R"));
    REQUIRE(r.open().has_value());
    std::uint64_t floor_expected = 0;
    for (std::uint32_t u = 1; u <= 5; ++u) {
        REQUIRE(w.expunge(uid_set{{u, u}}).has_value());
        if (u == 5) floor_expected = value(w.status()->highest_modseq);
    }
    // First compaction: no earlier compaction is known, so no tombstone is known to be old.
    REQUIRE(w.compact().has_value());
    CHECK(newest_slot(dir + "/index").tomb_count == 5);
    CHECK(newest_slot(dir + "/index").vanished_floor == 0);
    REQUIRE(w.expunge(uid_set{{6, 6}}).has_value());
    std::uint64_t const after6 = value(w.status()->highest_modseq);
    REQUIRE(w.expunge(uid_set{{7, 7}}).has_value());
    // Second compaction: the five tombstones the first one had are old (age 0), and only
    // the newest 2 must be kept.
    REQUIRE(w.compact().has_value());
    slot_fields const h = newest_slot(dir + "/index");
    CHECK(h.tomb_count == 2);
    CHECK(h.vanished_floor == floor_expected);
    for (auto* m : {&w, &r}) {
        auto below = m->changes_since(modseq{floor_expected - 1});
        REQUIRE(below.has_value());
        CHECK_FALSE(below->expunged.has_value()); // floor exceeded: unknown, fall back
        auto at = m->changes_since(modseq{floor_expected});
        REQUIRE(at.has_value());
        REQUIRE(at->expunged.has_value());
        CHECK(*at->expunged == uid_set{{6, 7}});
        auto later = m->changes_since(modseq{after6});
        REQUIRE(later.has_value());
        REQUIRE(later->expunged.has_value());
        CHECK(*later->expunged == uid_set{{7, 7}});
        auto st = m->status();
        REQUIRE(st.has_value());
        CHECK(st->exists == 3);
    }
    // The reader's replacement check accepted UIDs 1..5 gone without a tombstone: they are
    // at or below the new floor. A fresh open validates the pruned file.
    mmap_mailbox fresh(dir, own_options("F"));
    auto v = snapshot(fresh);
    REQUIRE(v.has_value());
    CHECK(v->st.exists == 3);
    // The sidecar names the compactions' high-water marks.
    CHECK(std::filesystem::exists(dir + "/compact.times"));
    // remove() takes the sidecar with it.
    w.close();
    r.close();
    fresh.close();
    REQUIRE(mmap_mailbox::remove(dir).has_value());
    CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("mmap_mailbox retention: the defaults and the count keep tombstones") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{3}).has_value());
    {
        mmap_mailbox w(dir, own_options("W")); // defaults: 100000 and 90 days
        for (int i = 1; i <= 4; ++i) REQUIRE(w.append("m", mail_time{i}).has_value());
        REQUIRE(w.expunge(uid_set{{1, 3}}).has_value());
        for (int i = 0; i < 3; ++i) REQUIRE(w.compact().has_value());
        CHECK(newest_slot(dir + "/index").tomb_count == 3);
        CHECK(newest_slot(dir + "/index").vanished_floor == 0);
        auto c = w.changes_since(modseq{0});
        REQUIRE(c.has_value());
        REQUIRE(c->expunged.has_value());
        CHECK(*c->expunged == uid_set{{1, 3}});
    }
    {
        // Old enough (age 0, after a compaction) but within the newest 2: one pruned.
        mmap_mailbox w(dir, retention_options("W", 2, std::chrono::seconds{0}));
        REQUIRE(w.compact().has_value());
        CHECK(newest_slot(dir + "/index").tomb_count == 2);
        CHECK(newest_slot(dir + "/index").vanished_floor > 0);
    }
    {
        // A garbled sidecar is advisory: nothing is known old, nothing more is pruned.
        // A line above our highestmodseq is not ours and is ignored too.
        std::ofstream(dir + "/compact.times", std::ios::trunc) << "garbage\n1 x\n99999999999999999999 1\n99999 1\n";
        mmap_mailbox w(dir, retention_options("W", 0, std::chrono::seconds{0}));
        REQUIRE(w.compact().has_value());
        CHECK(newest_slot(dir + "/index").tomb_count == 2);
        REQUIRE(w.compact().has_value()); // now the previous compaction is on record
        CHECK(newest_slot(dir + "/index").tomb_count == 0);
        auto c = w.changes_since(modseq{0});
        REQUIRE(c.has_value());
        CHECK_FALSE(c->expunged.has_value());
        auto top = w.changes_since(w.status()->highest_modseq);
        REQUIRE(top.has_value());
        REQUIRE(top->expunged.has_value());
        CHECK(top->expunged->empty());
    }
}

// ---------------------------------------------------------------- repair (§10)
namespace {
// A mailbox whose base holds 1, 3, 4 live and 2 expunged, and whose tail holds (in
// order): an update of 1, the appends of 5 and 6, a keyword update of 3. Returns the
// highestmodseq.
std::uint64_t make_repair_box(std::string const& dir) {
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    mmap_mailbox m(dir, own_options("M"));
    REQUIRE(m.append("one", mail_time{10}, system_flag::seen, kws({"K1"})).has_value());
    REQUIRE(m.append("two", mail_time{20}).has_value());
    REQUIRE(m.append("three", mail_time{30}).has_value());
    REQUIRE(m.append("four", mail_time{40}).has_value());
    REQUIRE(m.expunge(uid_set{{2, 2}}).has_value());
    REQUIRE(m.compact().has_value());
    REQUIRE(m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::flagged).has_value());
    REQUIRE(m.append("five", mail_time{50}).has_value());
    REQUIRE(m.append("six", mail_time{60}).has_value());
    REQUIRE(m.update_keywords(uid_set{{3, 3}}, modify_op::add, kws({"K2"})).has_value());
    CHECK(m.tail_count() == 5); // 1 update, 2 appends, 1 KWDEF, 1 update
    return value(m.status()->highest_modseq);
}

std::vector<std::uint32_t> live_uids(mmap_mailbox& m) {
    std::vector<std::uint32_t> out;
    auto s = m.search(search_program::all());
    REQUIRE(s.has_value());
    for (auto const& r : *s)
        for (std::uint64_t u = r.first; u <= r.last; ++u) out.push_back(static_cast<std::uint32_t>(u));
    return out;
}
} // namespace

TEST_CASE("mmap_mailbox repair: a valid mailbox is left alone; no index is not_found") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    std::uint64_t const hms = make_repair_box(dir);
    auto const before = read_file(dir + "/index");
    auto r = mmap_mailbox::repair(dir);
    REQUIRE(r.has_value());
    CHECK(r->done == mmap_repair_report::action::none);
    CHECK(r->problems.empty());
    CHECK(r->old_highestmodseq == hms);
    CHECK(read_file(dir + "/index") == before);
    CHECK(mmap_mailbox::repair(t.path + "/nothing").error_value().is(errc::not_found));
    std::filesystem::create_directory(t.path + "/empty");
    CHECK(mmap_mailbox::repair(t.path + "/empty").error_value().is(errc::not_found));
}

TEST_CASE("mmap_mailbox repair: a bad tail entry keeps the base and the prefix, reconciles msg/, bumps modseqs") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    std::uint64_t const hms = make_repair_box(dir);
    // A reader that saw every commit (5 and 6 live).
    mmap_mailbox reader(dir, own_options("R"));
    REQUIRE(reader.open().has_value());
    REQUIRE(reader.status()->exists == 5);

    slot_fields const h = newest_slot(dir + "/index");
    REQUIRE(h.tail_count == 5);
    auto f = read_file(dir + "/index");
    f[h.tail_off + entry_size * 1 + 5] ^= std::byte{0x02}; // the append of 5: bad CRC
    write_file(dir + "/index", f);
    std::filesystem::remove(dir + "/msg/4");                          // live, no file
    std::ofstream(dir + "/msg/2", std::ios::binary) << "stale two";   // a tombstone's file
    std::ofstream(dir + "/msg/20", std::ios::binary) << "twenty";     // at or above uidnext
    std::ofstream(dir + "/msg/x7", std::ios::binary) << "not ours";   // not a UID

    // Repair is never implicit: a normal open still reports the corruption.
    {
        mmap_mailbox m(dir, own_options("N"));
        auto o = m.open();
        REQUIRE_FALSE(o.has_value());
        CHECK(o.error_value().is(errc::corrupted));
        auto o2 = m.status();
        REQUIRE_FALSE(o2.has_value());
        CHECK(o2.error_value().is(errc::corrupted));
    }

    auto r = mmap_mailbox::repair(dir);
    REQUIRE(r.has_value());
    CHECK(r->done == mmap_repair_report::action::salvaged);
    CHECK_FALSE(r->problems.empty());
    CHECK(r->base_live_kept == 3);
    CHECK(r->tail_entries_kept == 1);
    CHECK(r->tail_entries_dropped == 4);
    CHECK(r->lost == std::vector<std::uint32_t>{4});
    CHECK(r->readded == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{5, 21}, {6, 22}});
    CHECK(r->recovered == std::vector<std::uint32_t>{20});
    CHECK(r->removed == std::vector<std::uint32_t>{2});
    CHECK(r->old_uidvalidity == 9);
    CHECK(r->new_uidvalidity == 9);
    CHECK(r->old_highestmodseq == hms);
    CHECK(r->new_highestmodseq > hms);
    CHECK_FALSE(std::filesystem::exists(dir + "/msg/2"));
    CHECK_FALSE(std::filesystem::exists(dir + "/msg/5"));
    CHECK(std::filesystem::exists(dir + "/msg/x7"));

    mmap_mailbox m(dir, own_options("A"));
    REQUIRE(m.open().has_value());
    auto st = m.status();
    REQUIRE(st.has_value());
    CHECK(value(st->validity) == 9);
    CHECK(value(st->uid_next) == 23);
    CHECK(value(st->highest_modseq) == r->new_highestmodseq);
    CHECK(live_uids(m) == std::vector<std::uint32_t>{1, 3, 20, 21, 22});
    CHECK(*m.read_message(uid{21}) == "five");
    CHECK(*m.read_message(uid{22}) == "six");
    CHECK(*m.read_message(uid{20}) == "twenty");
    auto recs = m.fetch(uid_set{{1, 3}}, fetch_fields::all);
    REQUIRE(recs.has_value());
    REQUIRE(recs->size() == 2);
    CHECK((*recs)[0].flags == (system_flag::seen | system_flag::flagged)); // the kept prefix
    CHECK((*recs)[0].keywords == kws({"K1"}));
    CHECK((*recs)[1].keywords.empty()); // the K2 update was after the bad entry
    // Every live modseq is above the old highestmodseq; below it the floor is exceeded.
    auto c = m.changes_since(modseq{hms});
    REQUIRE(c.has_value());
    CHECK(c->changed == uid_set{{1, 1}, {3, 3}, {20, 22}});
    REQUIRE(c->expunged.has_value());
    CHECK(*c->expunged == uid_set{{4, 6}});
    auto below = m.changes_since(modseq{hms - 1});
    REQUIRE(below.has_value());
    CHECK_FALSE(below->expunged.has_value());
    // The repaired mailbox takes commits.
    auto u = m.append("seven", mail_time{70});
    REQUIRE(u.has_value());
    CHECK(value(*u) == 23);
    // The old reader moves on to the new file without an "inconsistent" report.
    auto rs = reader.status();
    REQUIRE(rs.has_value());
    CHECK(rs->exists == 6);
    // Repairing again finds nothing to do.
    auto again = mmap_mailbox::repair(dir);
    REQUIRE(again.has_value());
    CHECK(again->done == mmap_repair_report::action::none);
}

TEST_CASE("mmap_mailbox repair: both slots gone or a bad base rebuild from msg/ under a new UIDVALIDITY (no modseq.hwm)") {
    for (int variant = 0; variant < 3; ++variant) {
        CAPTURE(variant);
        temp_dir t;
        std::string const dir = t.path + "/box";
        std::uint64_t const hms = make_repair_box(dir);
        REQUIRE(std::filesystem::remove(dir + "/modseq.hwm")); // (with it: mmap_extras_test.cpp)
        auto f = read_file(dir + "/index");
        if (variant == 0) {
            for (std::size_t i = 0; i < slot_size; ++i) f[i] = f[slot_b_off + i] = std::byte{0};
        } else if (variant == 1) {
            f[base_off + 20] ^= std::byte{0x10}; // a LIVE entry: base_crc fails
        } else {
            f.resize(100); // truncated
        }
        write_file(dir + "/index", f);
        {
            mmap_mailbox m(dir, own_options("N"));
            auto o = m.open();
            REQUIRE_FALSE(o.has_value());
            CHECK(o.error_value().is(errc::corrupted));
        }
        auto r = mmap_mailbox::repair(dir);
        REQUIRE(r.has_value());
        CHECK(r->done == mmap_repair_report::action::rebuilt);
        CHECK_FALSE(r->problems.empty());
        CHECK(r->recovered == std::vector<std::uint32_t>{1, 3, 4, 5, 6});
        CHECK(r->new_uidvalidity != 9);
        CHECK(r->new_uidvalidity > 9);
        if (variant == 1) {
            CHECK(r->old_uidvalidity == 9);
            CHECK(r->old_highestmodseq == hms);
            CHECK(r->new_highestmodseq > hms);
        } else {
            CHECK(r->old_uidvalidity == 0);
        }
        mmap_mailbox m(dir, own_options("A"));
        auto v = snapshot(m);
        REQUIRE(v.has_value());
        CHECK(value(v->st.validity) == r->new_uidvalidity);
        CHECK(v->st.exists == 5);
        CHECK(value(v->st.uid_next) >= 7);
        CHECK(live_uids(m) == std::vector<std::uint32_t>{1, 3, 4, 5, 6});
        CHECK(*m.read_message(uid{3}) == "three");
        if (variant == 1) {
            // The slot is valid: the readable entries give flags, keywords and dates. The
            // damaged LIVE entry was uid 1's base image; its tail update is readable.
            REQUIRE(v->recs.size() == 5);
            CHECK(v->recs[0].flags == (system_flag::seen | system_flag::flagged));
            CHECK(v->recs[0].keywords == kws({"K1"}));
            CHECK(value(v->recs[0].received) == 10);
            CHECK(v->recs[1].keywords == kws({"K2"}));
            CHECK(value(v->recs[1].received) == 30);
            CHECK(value(v->recs[4].received) == 60);
        } else {
            for (auto const& rec : v->recs) CHECK(rec.flags == flag_set{}); // nothing readable
        }
        REQUIRE(m.append("seven", mail_time{70}).has_value());
    }
}

TEST_CASE("mmap_mailbox repair: a damaged older slot is only a warning") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    (void)make_repair_box(dir);
    slot_fields const h = newest_slot(dir + "/index");
    auto f = read_file(dir + "/index");
    std::uint64_t const other = h.generation % 2 == 0 ? slot_b_off : 0;
    f[other + 40] ^= std::byte{0x01};
    write_file(dir + "/index", f);
    auto r = mmap_mailbox::repair(dir);
    REQUIRE(r.has_value());
    CHECK(r->done == mmap_repair_report::action::none);
    REQUIRE(r->problems.size() == 1);
    CHECK(r->problems[0].starts_with("warning"));
    CHECK(read_file(dir + "/index") == f);
}

TEST_CASE("mmap_mailbox repair: waits for the writer lock; a failed write leaves the old index and can be rerun") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    (void)make_repair_box(dir);
    slot_fields const h = newest_slot(dir + "/index");
    auto f = read_file(dir + "/index");
    f[h.tail_off + entry_size * 1 + 5] ^= std::byte{0x02};
    write_file(dir + "/index", f);
    {
        int const fd = ::open((dir + "/writer.lock").c_str(), O_RDWR | O_CLOEXEC);
        REQUIRE(fd >= 0);
        REQUIRE(::flock(fd, LOCK_EX) == 0);
        mmap_options o;
        o.lock_timeout = std::chrono::milliseconds{50};
        auto r = mmap_mailbox::repair(dir, o);
        ::close(fd);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::temporary));
    }
    struct reset_hooks {
        ~reset_hooks() { io_hooks() = {}; }
    } reset;
    io_hooks().fsync = [](std::string_view p) { return p.ends_with("/tmp/index.new") ? EIO : 0; };
    auto bad = mmap_mailbox::repair(dir);
    io_hooks() = {};
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error_value().is(errc::io));
    CHECK(read_file(dir + "/index") == f); // untouched, still corrupt
    {
        mmap_mailbox m(dir, own_options("N"));
        CHECK(m.open().error_value().is(errc::corrupted));
    }
    // The files renamed before the failure are at or above uidnext now: they keep the
    // UIDs they were given.
    auto r = mmap_mailbox::repair(dir);
    REQUIRE(r.has_value());
    CHECK(r->done == mmap_repair_report::action::salvaged);
    CHECK(r->readded.empty());
    CHECK(r->recovered == std::vector<std::uint32_t>{7, 8});
    mmap_mailbox m(dir, own_options("A"));
    REQUIRE(m.open().has_value());
    CHECK(live_uids(m) == std::vector<std::uint32_t>{1, 3, 4, 7, 8});
    CHECK(*m.read_message(uid{7}) == "five");
}

TEST_CASE("mmap_mailbox repair: flipped bytes anywhere: repair never fails on data, and the result opens") {
    temp_dir t;
    std::string const pristine = t.path + "/pristine";
    std::uint64_t const hms = make_repair_box(pristine);
    auto const f = read_file(pristine + "/index");
    std::vector<std::size_t> offsets;
    for (std::size_t i = 0; i < slot_size; i += 5) offsets.push_back(i);
    for (std::size_t i = slot_b_off; i < slot_b_off + slot_size; i += 5) offsets.push_back(i);
    for (std::size_t i = base_off; i < f.size(); i += 7) offsets.push_back(i);
    int salvaged = 0, rebuilt = 0, none = 0;
    for (std::size_t off : offsets) {
        CAPTURE(off);
        std::string const dir = t.path + "/work";
        std::filesystem::remove_all(dir);
        std::filesystem::copy(pristine, dir, std::filesystem::copy_options::recursive);
        auto g = f;
        g[off] ^= std::byte{0x40};
        write_file(dir + "/index", g);
        auto r = mmap_mailbox::repair(dir);
        REQUIRE(r.has_value());
        mmap_mailbox m(dir, own_options("A"));
        auto v = snapshot(m);
        REQUIRE(v.has_value());
        switch (r->done) {
        case mmap_repair_report::action::none: ++none; break;
        case mmap_repair_report::action::salvaged:
            ++salvaged;
            CHECK(value(v->st.validity) == 9);
            CHECK(r->old_highestmodseq == hms); // the tail may only be damaged under the newest slot
            CHECK(value(v->st.highest_modseq) > hms);
            break;
        case mmap_repair_report::action::rebuilt:
            ++rebuilt;
            // The modseq.hwm sidecar is intact: the UIDVALIDITY stays, modseqs go above.
            CHECK(r->uidvalidity_kept);
            CHECK(value(v->st.validity) == 9);
            CHECK(value(v->st.highest_modseq) > hms);
            break;
        }
        if (r->done != mmap_repair_report::action::none) {
            auto again = mmap_mailbox::repair(dir);
            REQUIRE(again.has_value());
            CHECK(again->done == mmap_repair_report::action::none);
        }
    }
    CHECK(salvaged > 0);
    CHECK(rebuilt > 0);
    CHECK(none > 0);
}

TEST_CASE("mmap_mailbox repair: a rebuild drops the file of a readable expunge, keeps a file that does not match") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    (void)make_repair_box(dir);
    {
        mmap_mailbox m(dir, own_options("M"));
        REQUIRE(m.expunge(uid_set{{5, 6}}).has_value());
    }
    // The unlinks after the commit did not happen (for 5), or another message took the
    // name (6: other octets).
    std::ofstream(dir + "/msg/5", std::ios::binary) << "five";
    std::ofstream(dir + "/msg/6", std::ios::binary) << "not six";
    auto f = read_file(dir + "/index");
    f[base_off + 20] ^= std::byte{0x10};
    write_file(dir + "/index", f);
    auto r = mmap_mailbox::repair(dir);
    REQUIRE(r.has_value());
    CHECK(r->done == mmap_repair_report::action::rebuilt);
    CHECK(r->removed == std::vector<std::uint32_t>{5});
    CHECK(r->recovered == std::vector<std::uint32_t>{1, 3, 4, 6});
    CHECK_FALSE(std::filesystem::exists(dir + "/msg/5"));
    mmap_mailbox m(dir, own_options("A"));
    REQUIRE(m.open().has_value());
    CHECK(live_uids(m) == std::vector<std::uint32_t>{1, 3, 4, 6});
    CHECK(*m.read_message(uid{6}) == "not six");
}

TEST_CASE("mmap_mailbox retention: prunable tombstones make compaction at close worthwhile") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{3}).has_value());
    mmap_options o = retention_options("W", 1, std::chrono::seconds{0});
    o.compact_min_tail = 100; // the tail alone is not worth it
    o.auto_compact = true;
    {
        mmap_mailbox w(dir, o);
        for (int i = 1; i <= 8; ++i) REQUIRE(w.append("m", mail_time{i}).has_value());
        for (std::uint32_t u = 1; u <= 6; ++u) REQUIRE(w.expunge(uid_set{{u, u}}).has_value());
        CHECK_FALSE(w.compaction_worthwhile()); // no compaction on record: none known old
        REQUIRE(w.compact().has_value());
        CHECK_FALSE(w.compaction_worthwhile()); // 5 prunable, not above max(100, 2/8)
    }
    CHECK(newest_slot(dir + "/index").tomb_count == 6); // the close did not compact
    o.compact_min_tail = 4;
    {
        mmap_mailbox w(dir, o);
        REQUIRE(w.open().has_value());
        CHECK(w.compaction_worthwhile()); // 5 prunable > max(4, 2/8)
        mmap_options defaults = own_options("D");
        defaults.compact_min_tail = 4;
        mmap_mailbox d(dir, defaults);
        REQUIRE(d.open().has_value());
        CHECK_FALSE(d.compaction_worthwhile()); // 90 days: nothing is that old
    }
    // The last close (of w; d had its own state) compacted and pruned.
    slot_fields const h = newest_slot(dir + "/index");
    CHECK(h.tomb_count == 1);
    CHECK(h.vanished_floor > 0);
}

// ---------------------------------------------------------------- closed_status (rule O4)
namespace {

mailbox_status status_after_open(std::string const& dir) {
    mmap_mailbox m(dir, own_options("O"));
    REQUIRE(m.open().has_value());
    auto s = m.status();
    REQUIRE(s.has_value());
    return *s;
}

void check_closed_status(mmap_mailbox& c, std::string const& dir) {
    REQUIRE_FALSE(c.is_open());
    auto cs = c.closed_status();
    REQUIRE_MESSAGE(cs.has_value(), cs.error_value().message);
    REQUIRE(cs->has_value());
    auto const want = status_after_open(dir);
    CHECK(**cs == want);
    // It loaded nothing: the handle is still closed and joined no state.
    CHECK_FALSE(c.is_open());
    CHECK(c.shared_handles() == 0);
    CHECK(c.reader_stats().full_loads == 0);
}

} // namespace

TEST_CASE("mmap_mailbox closed_status: equals status() after open across appends, expunges, flags, compaction") {
    static_assert(closed_status_backend<mmap_mailbox>);
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{77}).has_value());
    mmap_mailbox c(dir, own_options("C"));
    mmap_mailbox w(dir, own_options("W"));
    check_closed_status(c, dir);
    for (int i = 0; i < 5; ++i) REQUIRE(w.append("m" + std::to_string(i), mail_time{100 + i}).has_value());
    check_closed_status(c, dir);
    REQUIRE(w.update_flags(uid_set{{2, 3}}, modify_op::add, system_flag::seen).has_value());
    check_closed_status(c, dir);
    REQUIRE(w.update_keywords(uid_set{{1, 1}}, modify_op::add, kws({"Work"})).has_value());
    check_closed_status(c, dir);
    REQUIRE(w.expunge(uid_set{{2, 2}}).has_value());
    auto cs = c.closed_status();
    REQUIRE(cs.has_value());
    REQUIRE(cs->has_value());
    CHECK((*cs)->exists == 4);
    CHECK(value((*cs)->uid_next) == 6);
    CHECK(value((*cs)->validity) == 77);
    check_closed_status(c, dir);
    REQUIRE(w.compact().has_value());
    check_closed_status(c, dir);
    // A handle that was open and closed again answers the same.
    REQUIRE(c.open().has_value());
    auto open_st = c.status();
    REQUIRE(open_st.has_value());
    auto while_open = c.closed_status();
    REQUIRE(while_open.has_value());
    CHECK(**while_open == *open_st);
    c.close();
    REQUIRE(w.append("late", mail_time{300}).has_value());
    check_closed_status(c, dir);
}

TEST_CASE("mmap_mailbox closed_status: reads only the header slot (a damaged base is found by open, not by it)") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    {
        mmap_mailbox w(dir, own_options("W"));
        for (int i = 0; i < 3; ++i) REQUIRE(w.append("m", mail_time{i}).has_value());
        REQUIRE(w.compact().has_value()); // the messages are in the base now
    }
    auto const want = status_after_open(dir);
    auto f = read_file(dir + "/index");
    REQUIRE(f.size() > base_off + 40);
    f[base_off + 20] ^= std::byte{0x5A}; // inside the first LIVE entry: base_crc fails
    write_file(dir + "/index", f);
    mmap_mailbox c(dir, own_options("C"));
    auto cs = c.closed_status();
    REQUIRE_MESSAGE(cs.has_value(), cs.error_value().message);
    REQUIRE(cs->has_value());
    CHECK(**cs == want);
    CHECK_FALSE(c.is_open());
    auto o = c.open();
    REQUIRE_FALSE(o.has_value()); // open validates the whole file
    CHECK(o.error_value().is(errc::corrupted));
}

TEST_CASE("mmap_mailbox closed_status: a removed mailbox answers not_found naming itself") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    mmap_mailbox c(dir, own_options("Archive/2020"));
    REQUIRE(c.closed_status().has_value());
    SUBCASE("removed") { REQUIRE(mmap_mailbox::remove(dir).has_value()); }
    SUBCASE("index gone (an interrupted remove)") { REQUIRE(::unlink((dir + "/index").c_str()) == 0); }
    SUBCASE("never created") {
        c = mmap_mailbox(t.path + "/nothing", own_options("Archive/2020"));
    }
    auto cs = c.closed_status();
    REQUIRE_FALSE(cs.has_value());
    CHECK(cs.error_value().is(errc::not_found));
    CHECK(cs.error_value().message.find("(for backend mailbox Archive/2020)") != std::string::npos);
    CHECK_FALSE(c.is_open());
}

// ---------------------------------------------------------------- append_batch
namespace {

using batch_msg = mmap_mailbox::new_message;

std::size_t files_in(std::string const& d) {
    std::size_t n = 0;
    for ([[maybe_unused]] auto const& e : std::filesystem::directory_iterator(d)) ++n;
    return n;
}

std::vector<std::string> batch_bodies(std::size_t n, std::string const& tag) {
    std::vector<std::string> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(tag + " body " + std::to_string(i));
    return v;
}

std::vector<batch_msg> batch_of(std::vector<std::string> const& bodies) {
    std::vector<batch_msg> v;
    for (std::size_t i = 0; i < bodies.size(); ++i)
        v.push_back({bodies[i], mail_time{static_cast<std::int64_t>(1000 + i)}, system_flag::seen, {}});
    return v;
}

} // namespace

TEST_CASE("mmap_mailbox append_batch: one commit, consecutive UIDs, one msg/ fsync, readable everywhere") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{4}).has_value());
    mmap_mailbox m(dir, own_options("B"));
    REQUIRE(m.append("first", mail_time{1}).has_value());
    auto const g0 = m.generation();
    auto const tail0 = m.tail_count();

    std::vector<std::string> bodies = {"alpha", "", "gamma gamma"};
    std::vector<batch_msg> msgs = {
        {bodies[0], mail_time{10}, system_flag::seen | system_flag::recent, kws({"Work", "New1"})},
        {bodies[1], mail_time{-5}, {}, {}},
        {bodies[2], mail_time{30}, system_flag::flagged, kws({"New1", "New2"})},
    };
    struct reset_hooks {
        ~reset_hooks() { io_hooks() = {}; }
    } reset;
    int dir_syncs = 0, index_syncs = 0, file_syncs = 0;
    io_hooks().fsync = [&](std::string_view p) {
        if (p.size() >= 4 && p.substr(p.size() - 4) == "/msg") ++dir_syncs;
        else if (p.size() >= 6 && p.substr(p.size() - 6) == "/index") ++index_syncs;
        else ++file_syncs;
        return 0;
    };
    auto r = m.append_batch(msgs);
    io_hooks() = {};
    REQUIRE_MESSAGE(r.has_value(), r.error_value().message);
    REQUIRE(r->size() == 3);
    CHECK(value((*r)[0]) == 2);
    CHECK(value((*r)[1]) == 3);
    CHECK(value((*r)[2]) == 4);
    CHECK(m.generation() == g0 + 1);                 // one commit
    CHECK(m.tail_count() == tail0 + 3 + 3);          // three MSG + three new KWDEFs
    CHECK(dir_syncs == 1);                            // one msg/ fsync for the batch
    CHECK(file_syncs == 3);                           // each staged file
    CHECK(index_syncs == 3);                          // recovery + W2 + W6
    CHECK(files_in(dir + "/tmp") == 0);

    for (mmap_mailbox* h : {&m}) {
        auto f = h->fetch(uid_set{{2, 4}}, fetch_fields::all);
        REQUIRE(f.has_value());
        REQUIRE(f->size() == 3);
        CHECK((*f)[0].flags == flag_set{system_flag::seen});
        CHECK((*f)[0].keywords == kws({"Work", "New1"}));
        CHECK((*f)[1].received == mail_time{-5});
        CHECK((*f)[2].keywords == kws({"New1", "New2"}));
        CHECK((*f)[2].size == bodies[2].size());
    }
    mmap_mailbox fresh(dir, own_options("F"));
    auto v1 = snapshot(fresh), v2 = snapshot(m);
    REQUIRE(v1.has_value());
    CHECK(*v1 == *v2);
    for (std::size_t i = 0; i < 3; ++i) {
        auto body = fresh.read_message((*r)[i]);
        REQUIRE(body.has_value());
        CHECK(*body == bodies[i]);
    }
    // An empty batch writes nothing.
    auto e = m.append_batch({});
    REQUIRE(e.has_value());
    CHECK(e->empty());
    CHECK(m.generation() == g0 + 1);
    // A single append after it continues the UIDs.
    auto u = m.append("after", mail_time{2});
    REQUIRE(u.has_value());
    CHECK(value(*u) == 5);
}

TEST_CASE("mmap_mailbox append_batch: an invalid message fails the whole batch before anything is written") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{4}).has_value());
    mmap_mailbox m(dir, own_options("B"));
    REQUIRE(m.append("first", mail_time{1}).has_value());
    auto const before = snapshot(m);
    REQUIRE(before.has_value());
    auto const g0 = m.generation();
    auto bodies = batch_bodies(4, "x");
    auto msgs = batch_of(bodies);
    SUBCASE("date") { msgs[2].received = mail_time{std::int64_t{1} << 60}; }
    SUBCASE("keyword") { msgs[3].keywords = kws({"bad keyword"}); }
    auto r = m.append_batch(msgs);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::invalid_argument));
    CHECK(r.error_value().message.find("of the batch") != std::string::npos);
    CHECK(m.generation() == g0);
    CHECK(*snapshot(m) == *before);
    CHECK(files_in(dir + "/tmp") == 0);
    CHECK(files_in(dir + "/msg") == 1);
}

TEST_CASE("mmap_mailbox append_batch: ENOSPC and fsync failures leave nothing visible and the mailbox writable") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{4}).has_value());
    mmap_mailbox m(dir, own_options("B"));
    REQUIRE(m.append("first", mail_time{1}).has_value());
    auto const before = snapshot(m);
    REQUIRE(before.has_value());
    struct reset_hooks {
        ~reset_hooks() { io_hooks() = {}; }
    } reset;
    auto ends = [](std::string_view p, std::string_view s) { return p.size() >= s.size() && p.substr(p.size() - s.size()) == s; };
    auto in_tmp = [](std::string_view p) { return p.find("/tmp/") != std::string_view::npos; };
    auto bodies = batch_bodies(10, "y");
    auto const msgs = batch_of(bodies);
    bool commit_failure = false;
    int n = 0; // the hooks' counter: it must outlive the SUBCASE blocks that install them

    SUBCASE("ENOSPC staging the 6th file") {
        io_hooks().write = [&](std::string_view p, std::uint64_t, std::size_t) {
            return in_tmp(p) && ++n == 6 ? write_decision{0, 3} : write_decision{};
        };
    }
    SUBCASE("fsync of the 4th staged file fails") {
        io_hooks().fsync = [&](std::string_view p) { return in_tmp(p) && ++n == 4 ? EIO : 0; };
    }
    SUBCASE("fsync of msg/ fails (after the renames)") {
        io_hooks().fsync = [&](std::string_view p) { return ends(p, "/msg") ? EIO : 0; };
    }
    SUBCASE("W1: ENOSPC on the index entries") {
        commit_failure = true;
        io_hooks().write = [&](std::string_view p, std::uint64_t off, std::size_t) {
            return ends(p, "/index") && off >= 8192 ? write_decision{ENOSPC, SIZE_MAX} : write_decision{};
        };
    }
    SUBCASE("W2: fdatasync of the entries fails") {
        commit_failure = true;
        io_hooks().fsync = [&](std::string_view p) { return ends(p, "/index") && ++n == 2 ? EIO : 0; };
    }
    auto r = m.append_batch(msgs);
    io_hooks() = {};
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().message.find("(for backend mailbox B)") != std::string::npos);
    CHECK(*snapshot(m) == *before);
    mmap_mailbox fresh(dir, own_options("F"));
    CHECK(*snapshot(fresh) == *before);
    CHECK(files_in(dir + "/tmp") == 0);
    // Before the commit the batch's files are removed; a failed commit leaves them
    // above uidnext (invisible), for the sweep or the next append to replace.
    if (!commit_failure) CHECK(files_in(dir + "/msg") == 1);
    for (std::uint32_t u = 2; u <= 11; ++u) CHECK_FALSE(fresh.read_message(uid{u}).has_value());

    // The mailbox stays writable, and the same UIDs are handed out again.
    auto bodies2 = batch_bodies(10, "z");
    auto again = m.append_batch(batch_of(bodies2));
    REQUIRE_MESSAGE(again.has_value(), again.error_value().message);
    CHECK(value(again->front()) == 2);
    CHECK(value(again->back()) == 11);
    mmap_mailbox last(dir, own_options("L"));
    for (std::uint32_t i = 0; i < 10; ++i) {
        auto b = last.read_message(uid{2 + i});
        REQUIRE(b.has_value());
        CHECK(*b == bodies2[i]);
    }
}

TEST_CASE("mmap_mailbox append_batch: SIGKILL during batches keeps whole batches only, every acknowledged one") {
    temp_dir t;
    std::string const dir = t.path + "/crash";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{5}).has_value());
    constexpr std::uint32_t batch = 40;
    std::mt19937 rng(4242);
    for (int round = 0; round < 3; ++round) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid_t const pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            mmap_mailbox c(dir);
            for (std::uint32_t i = 0;; ++i) {
                std::vector<std::string> bodies;
                for (std::uint32_t j = 0; j < batch; ++j) bodies.push_back("m " + std::to_string(i) + "." + std::to_string(j));
                std::vector<mmap_mailbox::new_message> msgs;
                for (auto const& b : bodies) msgs.push_back({b, mail_time{static_cast<std::int64_t>(i)}, {}, kws({"K"})});
                auto u = c.append_batch(msgs);
                if (!u) {
                    std::fprintf(stderr, "child: %s\n", u.error_value().message.c_str());
                    ::_exit(2);
                }
                std::uint32_t const v = value(u->back());
                if (::write(fds[1], &v, sizeof v) != static_cast<ssize_t>(sizeof v)) ::_exit(4);
            }
        }
        ::close(fds[1]);
        std::vector<std::uint32_t> acked;
        std::uint32_t v = 0;
        if (::read(fds[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) acked.push_back(v);
        ::usleep(static_cast<useconds_t>(rng() % 80000));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        while (::read(fds[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) acked.push_back(v);
        ::close(fds[0]);
        INFO("round ", round, ": ", acked.size(), " batches acknowledged");
        CHECK(acked.size() > 0);
        mmap_mailbox m(dir);
        auto snap = snapshot(m);
        REQUIRE(snap.has_value());
        // Each batch is all or nothing: the messages are whole batches of consecutive UIDs.
        CHECK(snap->st.exists % batch == 0);
        CHECK((value(snap->st.uid_next) - 1) % batch == 0);
        uid_set present;
        for (auto const& r : snap->recs) present.add(value(r.id));
        for (auto last : acked)
            for (std::uint32_t u = last + 1 - batch; u <= last; ++u) {
                CHECK(present.contains(u));
                CHECK(m.read_message(uid{u}).has_value());
            }
    }
}

TEST_CASE("mmap_mailbox closed_status: the engine does not reopen closed unchanged mmap backends") {
    // Three mailboxes, max_open_backends = 1: after the first sync two backends are
    // closed. Their bases are then damaged behind the engine's back (header slots intact):
    // a second sync that reopened a backend would report `corrupted`; with closed_status
    // it reads the slots, sees nothing changed and leaves them closed.
    temp_dir t;
    mmap_provider p(t.path);
    std::vector<std::string> names = {"a", "b", "c"};
    for (auto const& n : names) {
        REQUIRE(p.create(n).has_value());
        auto mb = p.make(n);
        REQUIRE(mb.has_value());
        for (int i = 0; i < 3; ++i) REQUIRE(mb->append("m", mail_time{100 + i}).has_value());
        REQUIRE(mb->compact().has_value()); // the messages are in the base
    }
    auto def = folder_definition::make(names, "all");
    REQUIRE(def.has_value());
    auto st = mmap_store::open(t.path + "/store");
    REQUIRE(st.has_value());
    folder_options o;
    o.max_open_backends = 1;
    auto f = folder<mmap_provider, mmap_store>::open(*def, p, std::move(*st), std::move(o));
    REQUIRE_MESSAGE(f.has_value(), f.error_value().message);
    auto r1 = f->sync();
    REQUIRE_MESSAGE(r1.has_value(), r1.error_value().message);
    CHECK(f->size() == 9);
    for (auto const& n : names) {
        std::string const index = p.directory_of(n) + "/index";
        auto bytes = read_file(index);
        REQUIRE(bytes.size() > base_off + 40);
        bytes[base_off + 20] ^= std::byte{0x5A};
        write_file(index, bytes);
        mmap_mailbox probe(p.directory_of(n), own_options("probe"));
        auto o2 = probe.open();
        REQUIRE_FALSE(o2.has_value()); // a full open would fail now
        CHECK(o2.error_value().is(errc::corrupted));
    }
    auto r2 = f->sync();
    REQUIRE_MESSAGE(r2.has_value(), r2.error_value().message);
    CHECK(r2->empty());
    CHECK(f->size() == 9);
}

TEST_CASE("mmap_mailbox inconsistent: the engine compares a mailbox whose index was restored from a copy in full") {
    // The index is put back from a backup (a new inode, same UIDVALIDITY, HIGHESTMODSEQ and
    // UIDNEXT lower): the mailbox answers `inconsistent` once, and the engine plans the box
    // again by a full comparison in the same sync instead of trusting changes_since.
    auto one = [](std::uint32_t u) {
        uid_set s;
        s.add(u);
        return s;
    };
    temp_dir t;
    mmap_provider p(t.path);
    REQUIRE(p.create("a").has_value());
    auto mb = p.make("a");
    REQUIRE(mb.has_value());
    for (int i = 0; i < 3; ++i) REQUIRE(mb->append("m", mail_time{100 + i}).has_value());
    auto def = folder_definition::make({"a"}, "all");
    REQUIRE(def.has_value());
    auto st = mmap_store::open(t.path + "/store");
    REQUIRE(st.has_value());
    auto f = folder<mmap_provider, mmap_store>::open(*def, p, std::move(*st), folder_options{});
    REQUIRE_MESSAGE(f.has_value(), f.error_value().message);
    REQUIRE(f->sync().has_value());
    std::string const index = p.directory_of("a") + "/index";
    auto const backup = read_file(index);
    REQUIRE(mb->update_flags(one(1), modify_op::add, system_flag::flagged).has_value());
    REQUIRE(mb->expunge(one(2)).has_value());
    REQUIRE(mb->append("m", mail_time{200}).has_value()); // uid 4
    auto r1 = f->sync();
    REQUIRE_MESSAGE(r1.has_value(), r1.error_value().message);
    REQUIRE(f->size() == 3);
    // Restore: a new file renamed over the index.
    write_file(index + ".restore", backup);
    REQUIRE(std::rename((index + ".restore").c_str(), index.c_str()) == 0);
    auto r2 = f->sync();
    REQUIRE_MESSAGE(r2.has_value(), r2.error_value().message);
    CHECK(r2->expunged == one(4)); // backend uid 4 (vuid 4): gone
    CHECK(r2->added == one(5));    // backend uid 2: back, under a new vuid
    CHECK(r2->flags_changed == one(1));
    std::vector<std::pair<std::uint32_t, std::uint32_t>> view; // (vuid, backend uid)
    f->for_each([&](folder_message const& m) { view.emplace_back(value(m.vuid), value(m.backend_uid)); });
    CHECK(view == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{1, 1}, {3, 3}, {5, 2}});
    CHECK(f->find(uid{1})->flags.empty());
}

// ---------------------------------------------------------------- reader modes (§7, §9.2, §9.4)
TEST_CASE("mmap_mailbox lazy: a damaged LIVE entry opens lazily, fails the first query touching it; a full open fails") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    {
        mmap_mailbox w(dir, own_options("W"));
        for (int i = 1; i <= 10; ++i) REQUIRE(w.append(std::string(static_cast<std::size_t>(i), 'm'), mail_time{i}).has_value());
        REQUIRE(w.compact().has_value()); // the messages are in the base now
        REQUIRE(w.update_flags(uid_set{{9, 9}}, modify_op::add, system_flag::seen).has_value()); // a tail entry
    }
    slot_fields const h = newest_slot(dir + "/index");
    REQUIRE(h.live_count == 10);
    REQUIRE(h.tail_count == 1);
    auto f = read_file(dir + "/index");
    std::uint64_t const bad = h.live_off + entry_size * 4; // the LIVE entry of UID 5
    f[bad + 33] ^= std::byte{0x01};                       // its size
    write_file(dir + "/index", f);
    std::string const where = "at offset " + std::to_string(bad + 92) + ": crc";

    {   // Full validation (the default) refuses the file at open.
        mmap_mailbox full(dir, own_options("F"));
        auto o = full.open();
        REQUIRE_FALSE(o.has_value());
        CHECK(o.error_value().is(errc::corrupted));
    }
    mmap_options lo = own_options("L");
    lo.validate = mmap_options::validation::lazy;
    for (bool use_mmap : {true, false}) {
        CAPTURE(use_mmap);
        lo.use_mmap = use_mmap;
        mmap_mailbox lz(dir, lo);
        REQUIRE(lz.open().has_value());
        auto st = lz.status();
        REQUIRE(st.has_value());
        CHECK(st->exists == 10);
        auto const checked_at_open = lz.reader_stats().lazy_entries_checked;
        CHECK(checked_at_open >= 1); // the last LIVE entry, and the binary search for UID 9 (tail replay)
        CHECK(checked_at_open < 10);
        // Queries that do not touch entry 4 work.
        auto a = lz.fetch(uid_set{{1, 3}}, fetch_fields::all);
        REQUIRE(a.has_value());
        CHECK(a->size() == 3);
        auto c = lz.changes_since(modseq{h.base_modseq});
        REQUIRE(c.has_value());
        CHECK(c->changed == uid_set{{9, 9}});
        // The first query touching it fails cleanly, naming the file, offset and field.
        auto e = lz.fetch(uid_set{{5, 5}}, fetch_fields::all);
        REQUIRE_FALSE(e.has_value());
        CHECK(e.error_value().is(errc::corrupted));
        CHECK(e.error_value().message.find(where) != std::string::npos);
        CHECK(e.error_value().message.find(dir + "/index") != std::string::npos);
        // And every later one that touches it (an entry is marked checked only when it passed).
        auto s = lz.search(search_program::all());
        REQUIRE_FALSE(s.has_value());
        CHECK(s.error_value().is(errc::corrupted));
        auto all = lz.changes_since(modseq{0});
        REQUIRE_FALSE(all.has_value());
        CHECK(all.error_value().message.find(where) != std::string::npos);
        auto u = lz.update_flags(uid_set{{4, 6}}, modify_op::add, system_flag::flagged);
        REQUIRE_FALSE(u.has_value());
        CHECK(u.error_value().is(errc::corrupted));
        CHECK(lz.reader_stats().lazy_entries_checked > checked_at_open);
        // Untouched entries still answer.
        auto again = lz.fetch(uid_set{{1, 3}}, fetch_fields::all);
        REQUIRE(again.has_value());
        CHECK(*again == *a);
    }
}

TEST_CASE("mmap_mailbox modes: no-mmap and lazy answer like the default across base, tail and compaction") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    mmap_mailbox w(dir, own_options("W"));
    for (int i = 1; i <= 30; ++i)
        REQUIRE(w.append("m", mail_time{i}, i % 3 == 0 ? flag_set{system_flag::seen} : flag_set{}, i % 4 == 0 ? kws({"K"}) : keyword_set{}).has_value());
    REQUIRE(w.expunge(uid_set{{3, 5}}).has_value());
    REQUIRE(w.compact().has_value());
    REQUIRE(w.update_keywords(uid_set{{6, 9}}, modify_op::add, kws({"L"})).has_value());
    REQUIRE(w.expunge(uid_set{{7, 7}}).has_value());
    REQUIRE(w.append("n", mail_time{99}).has_value());
    for (int mode = 0; mode < 3; ++mode) {
        CAPTURE(mode);
        auto const want = snapshot(w); // the previous mode wrote and compacted
        REQUIRE(want.has_value());
        auto const wc = w.changes_since(modseq{5});
        REQUIRE(wc.has_value());
        mmap_options o = own_options("M");
        o.use_mmap = mode != 1;
        if (mode == 2) o.validate = mmap_options::validation::lazy;
        mmap_mailbox m(dir, o);
        auto v = snapshot(m);
        REQUIRE(v.has_value());
        CHECK(*v == *want);
        auto c = m.changes_since(modseq{5});
        REQUIRE(c.has_value());
        CHECK(c->changed == wc->changed);
        CHECK(c->expunged == wc->expunged);
        // A write through this mode, then a compaction through it.
        REQUIRE(m.update_flags(uid_set{{1, 2}}, modify_op::add, system_flag::flagged).has_value());
        REQUIRE(m.compact().has_value());
        auto after = snapshot(m);
        REQUIRE(after.has_value());
        auto wa = snapshot(w);
        REQUIRE(wa.has_value());
        CHECK(*after == *wa);
    }
}

// ---------------------------------------------------------------- complexity (§11.6)
TEST_CASE("mmap_mailbox complexity: changes_since and vanished touch O(log N + k + T) entries, not N") {
#if defined(__SANITIZE_ADDRESS__)
    constexpr std::uint32_t n = 20000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    constexpr std::uint32_t n = 20000;
#else
    constexpr std::uint32_t n = 200000;
#endif
#else
    constexpr std::uint32_t n = 200000;
#endif
    temp_dir t;
    std::string const dir = t.path + "/big";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    // A large base written directly (no message files: the queries never read them):
    // UIDs 1..n+n/10; every 11th UID is a tombstone. Modseqs interleave live and expunged.
    {
        mailbox_state s;
        slot_fields h = newest_slot(dir + "/index");
        std::uint64_t mod = 1;
        for (std::uint32_t u = 1; s.live.size() < n; ++u) {
            ++mod;
            if (u % 11 == 0) {
                s.tombs.emplace_back(mod, u);
                continue;
            }
            msg_image m;
            m.uid = u;
            m.modseq = m.created_modseq = mod;
            m.date = u;
            m.size = 1;
            s.live.emplace_hint(s.live.end(), u, live_msg{m, {}});
            h.uidnext = u + 1;
        }
        h.highestmodseq = mod;
        auto bytes = build_index_file(s, h, h.generation + 1, 0x5EED5EED5EEDULL);
        write_file(dir + "/index.big", bytes);
        REQUIRE(std::rename((dir + "/index.big").c_str(), (dir + "/index").c_str()) == 0);
    }
    slot_fields const base = newest_slot(dir + "/index");
    REQUIRE(base.live_count == n);
    std::uint32_t const last_uid = base.uidnext - 1;
    mmap_mailbox m(dir, own_options("Big"));
    // A tail of T = 1000 entries (one commit), then k = 10 changes since X.
    constexpr std::uint32_t tail = 1000;
    uid_set first;
    for (std::uint32_t u = 1, added = 0; added < tail; ++u)
        if (u % 11 != 0) {
            first.add(u);
            ++added;
        }
    REQUIRE(m.update_flags(first, modify_op::add, system_flag::seen).has_value());
    REQUIRE(m.tail_count() == tail);
    auto const x = value(m.status()->highest_modseq);
    auto live_below = [](std::uint32_t u) {
        do --u;
        while (u % 11 == 0);
        return u;
    };
    std::uint32_t const a1 = live_below(last_uid), a2 = live_below(a1), a3 = live_below(a2);
    std::uint32_t const mid = (n / 2) % 11 == 0 ? n / 2 + 1 : n / 2;
    std::vector<std::uint32_t> const flagged{2, 3, 500, 5000, mid, a1, last_uid}; // some also in the tail
    for (auto u : flagged) REQUIRE(m.update_flags(uid_set{{u, u}}, modify_op::add, system_flag::flagged).has_value());
    std::vector<std::uint32_t> const gone{4, 7000, a2};
    for (auto u : gone) REQUIRE(m.expunge(uid_set{{u, u}}).has_value());
    std::uint64_t const k = flagged.size() + gone.size();
    double const log_n = std::log2(static_cast<double>(n));

    auto touched = [&] { return m.reader_stats().entries_touched; };
    // Above the base: the base is not touched at all; the overlay from X on.
    auto const t0 = touched();
    auto c = m.changes_since(modseq{x});
    REQUIRE(c.has_value());
    auto const t1 = touched();
    uid_set want_changed;
    for (auto u : flagged) want_changed.add(u);
    CHECK(c->changed == want_changed);
    REQUIRE(c->expunged.has_value());
    CHECK(*c->expunged == uid_set{{4, 4}, {7000, 7000}, {a2, a2}});
    INFO("touched above the base: ", t1 - t0);
    CHECK(t1 - t0 <= 4 * k + 8);

    // Inside the base: binary searches in MPERM and TOMB, then the entries above X2.
    std::uint64_t const x2 = base.base_modseq - 30; // the newest ~30 base modseqs (live and tombstones)
    auto const t2 = touched();
    auto c2 = m.changes_since(modseq{x2});
    REQUIRE(c2.has_value());
    auto const t3 = touched();
    REQUIRE(c2->expunged.has_value());
    std::uint64_t const k2 = c2->changed.count() + c2->expunged->count();
    CHECK(k2 >= tail);           // the first tail commit is above x2
    CHECK(c2->changed.contains(a3));           // a base entry above x2 that the tail did not touch
    CHECK(c2->changed.contains(last_uid));
    CHECK(c2->expunged->contains(last_uid - (last_uid % 11))); // the newest base tombstone
    INFO("touched inside the base: ", t3 - t2, " for k = ", k2, ", log2 N = ", log_n);
    CHECK(static_cast<double>(t3 - t2) <= 4.0 * (log_n + static_cast<double>(k2) + tail));
    // Far below N: a scan of the base would touch n entries.
    CHECK(t3 - t2 < n / 4 + 2 * tail);
}

TEST_CASE("mmap_mailbox changes_since pages: the union of the pages is the unpaged answer, in modseq order") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    mmap_mailbox m(dir, own_options("P"));
    for (int i = 1; i <= 40; ++i) REQUIRE(m.append("m", mail_time{i}).has_value());
    REQUIRE(m.expunge(uid_set{{5, 8}}).has_value());
    REQUIRE(m.compact().has_value()); // base: 36 live messages
    REQUIRE(m.update_flags(uid_set{{1, 3}, {30, 31}}, modify_op::add, system_flag::seen).has_value());
    REQUIRE(m.update_flags(uid_set{{2, 2}}, modify_op::add, system_flag::flagged).has_value()); // supersedes a tail image
    REQUIRE(m.expunge(uid_set{{31, 31}}).has_value());
    REQUIRE(m.append("n", mail_time{50}).has_value());
    CHECK(m.changes_since(modseq{0}, 0).error_value().is(errc::invalid_argument));
    for (std::uint64_t since : {0ULL, 10ULL, 44ULL, 46ULL, 1000ULL}) {
        auto whole = m.changes_since(modseq{since});
        REQUIRE(whole.has_value());
        for (std::size_t limit : {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{100}}) {
            CAPTURE(since);
            CAPTURE(limit);
            uid_set got;
            std::size_t count = 0;
            modseq at{since};
            for (int page = 0; page < 100; ++page) {
                auto p = m.changes_since(at, limit);
                REQUIRE(p.has_value());
                CHECK(p->changed.size() <= limit);
                for (auto u : p->changed) {
                    CHECK_FALSE(got.contains(value(u))); // nothing repeated
                    got.add(value(u));
                }
                count += p->changed.size();
                if (!p->changed.empty()) CHECK(value(p->next) > value(at));
                at = p->next;
                if (!p->more) break;
                CHECK(p->changed.size() == limit);
            }
            CHECK(got == whole->changed);
            CHECK(count == whole->changed.count());
        }
    }
}

TEST_CASE("mmap_mailbox modes: a file truncated in place under an open handle is reported, never read past its end") {
    // The writer never shrinks a published file; another program might. Every call's
    // refresh checks the committed end against the file size before a query reads the
    // base, so the mapping is not touched past the end (no SIGBUS) in either mode.
    for (bool use_mmap : {true, false}) {
        CAPTURE(use_mmap);
        temp_dir t;
        std::string const dir = t.path + "/box";
        REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
        mmap_options o = own_options("T");
        o.use_mmap = use_mmap;
        mmap_mailbox m(dir, o);
        for (int i = 1; i <= 50; ++i) REQUIRE(m.append("m", mail_time{i}).has_value());
        REQUIRE(m.compact().has_value());
        auto const before = snapshot(m);
        REQUIRE(before.has_value());
        auto const f = read_file(dir + "/index");
        slot_fields const h = newest_slot(dir + "/index");
        REQUIRE(::truncate((dir + "/index").c_str(), static_cast<off_t>(h.live_off + entry_size * 10)) == 0);
        uid_set all;
        all.add_range(1, 0xFFFFFFFEU);
        auto e = m.fetch(all, fetch_fields::all);
        REQUIRE_FALSE(e.has_value());
        CHECK(e.error_value().is(errc::corrupted));
        auto c = m.changes_since(modseq{0});
        REQUIRE_FALSE(c.has_value());
        // Put back (same inode): the handle answers again.
        write_file(dir + "/index", f);
        auto after = snapshot(m);
        REQUIRE(after.has_value());
        CHECK(*after == *before);
    }
}

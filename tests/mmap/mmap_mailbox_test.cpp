// mmap_mailbox (adapters/mmap/mmap_mailbox.hpp): layout, commit, validation, differential
// test against memory_mailbox, crash test.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/adapters/memory/memory_mailbox.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

using namespace vfolder;
using namespace vfolder::mmap_detail;

namespace {

struct temp_dir {
    std::string path;
    temp_dir() {
        std::string t = (std::filesystem::temp_directory_path() / "vfolder-mbox-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
};

std::vector<std::byte> read_file(std::string const& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(v.size());
    std::memcpy(out.data(), v.data(), v.size());
    return out;
}
void write_file(std::string const& p, std::vector<std::byte> const& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<char const*>(b.data()), static_cast<std::streamsize>(b.size()));
}

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
    temp_dir t;
    std::string const dir = t.path + "/diff";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{31}).has_value());
    mmap_mailbox m(dir, {"Diff"});
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

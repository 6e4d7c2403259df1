// Deterministic crash-state enumeration of the index commit (MAILBOX-FORMAT.md §11.5):
// every write and sync an operation makes to `index` is recorded through the test-only
// I/O hooks; then, for every prefix of that trace, every disk state a crash could leave
// is built — writes before the last completed sync are durable, each later write is
// absent (with or without the file grown by it), present, or torn at a 512-byte sector
// boundary or mid-sector — and opened by a fresh reader. Each must open without error
// and show exactly the state before the operation or the state after it, never a mix,
// and the state after it once the operation's last sync (its acknowledgement) is in the
// prefix. A writer must then commit on top of every image without a repair step.
//
// The kill -9 tests (concurrency_test.cpp) cover the same protocol with real processes,
// but only at the instants the scheduler happens to offer and never with lost or torn
// unsynced writes; this covers every instant and every permitted disk state.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>

#include <doctest/doctest.h>
#include "support/mmap_files.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace vfolder;
using namespace vfolder::mmap_detail;

namespace {

using vfolder_test::temp_dir;



// Everything a client can see of a mailbox, as text.
std::string state_of(std::string const& dir) {
    mmap_mailbox m(dir, vfolder_test::own_options("reader"));
    auto st = m.status();
    if (!st) return "error: " + st.error_value().message;
    uid_set all;
    all.add_range(1, 0xFFFFFFFFu);
    auto f = m.fetch(all, fetch_fields::flags | fetch_fields::size | fetch_fields::received);
    if (!f) return "error: " + f.error_value().message;
    std::string out = "v" + std::to_string(value(st->validity)) + " next " + std::to_string(value(st->uid_next)) +
                      " hms " + std::to_string(value(st->highest_modseq)) + " exists " + std::to_string(st->exists) + "\n";
    for (auto const& r : *f) {
        out += std::to_string(value(r.id)) + " f" + std::to_string(r.flags.bits()) + " s" + std::to_string(r.size) + " d" +
               std::to_string(value(r.received));
        for (auto const& k : r.keywords) out += " " + k;
        out += "\n";
    }
    return out;
}

uid_set set(std::vector<std::uint32_t> v) {
    uid_set s;
    s.insert_unsorted(std::span<std::uint32_t>(v));
    return s;
}

struct event {
    bool sync = false;
    std::uint64_t offset = 0;
    std::size_t size = 0;
};

// Runs `op` on a writer handle with the hooks recording the index's writes and syncs.
std::vector<event> record(std::string const& dir, std::function<void(mmap_mailbox&)> const& op) {
    std::vector<event> trace;
    mmap_mailbox w(dir, vfolder_test::own_options("writer"));
    REQUIRE(w.open().has_value());
    struct reset_hooks {
        ~reset_hooks() { io_hooks() = {}; }
    } reset;
    io_hooks().write = [&](std::string_view path, std::uint64_t off, std::size_t n) {
        if (path.ends_with("/index")) trace.push_back({false, off, n});
        return write_decision{};
    };
    io_hooks().fsync = [&](std::string_view path) {
        if (path.ends_with("/index")) trace.push_back({true, 0, 0});
        return 0;
    };
    op(w);
    io_hooks() = {};
    return trace;
}

// How an unsynced write may have reached the disk.
enum class fate { absent, absent_grown, present, torn_sector, torn_mid };

// pre + the writes of trace[0, cut) taken from post: those before the last sync in the
// prefix are durable; those after it follow `fates` (one per such write).
std::vector<std::byte> image(std::vector<std::byte> const& pre, std::vector<std::byte> const& post, std::vector<event> const& trace,
                        std::size_t cut, std::vector<fate> const& fates) {
    std::size_t last_sync = 0; // writes [0, last_sync) are durable
    for (std::size_t i = 0; i < cut; ++i)
        if (trace[i].sync) last_sync = i;
    std::vector<std::byte> img = pre;
    std::size_t k = 0;
    for (std::size_t i = 0; i < cut; ++i) {
        event const& e = trace[i];
        if (e.sync) continue;
        fate const f = i < last_sync ? fate::present : fates.at(k++);
        std::size_t n = e.size;
        if (f == fate::absent) continue;
        if (f == fate::torn_sector) n = std::min<std::size_t>(n, ((e.offset / 512) + 1) * 512 - e.offset);
        if (f == fate::torn_mid) n = n / 2;
        std::size_t const end = static_cast<std::size_t>(e.offset) + e.size;
        if (img.size() < end && f != fate::torn_mid && f != fate::torn_sector) img.resize(end, std::byte{0});
        if (f == fate::absent_grown) continue; // the size reached the disk, the data did not
        std::size_t const tend = static_cast<std::size_t>(e.offset) + n;
        if (img.size() < tend) img.resize(tend, std::byte{0});
        REQUIRE(post.size() >= tend);
        std::copy(post.begin() + static_cast<std::ptrdiff_t>(e.offset), post.begin() + static_cast<std::ptrdiff_t>(tend),
                  img.begin() + static_cast<std::ptrdiff_t>(e.offset));
    }
    return img;
}

struct totals {
    std::size_t images = 0, before = 0, after = 0;
};

// Enumerates every crash image of `op` on the mailbox at `dir` (which `op` leaves in the
// state after it) and checks each; `dir` is put back to the state after `op` at the end.
void enumerate(std::string const& dir, std::function<void(mmap_mailbox&)> const& op, totals& t) {
    std::string const index = dir + "/index";
    std::string const s0 = state_of(dir);
    REQUIRE(s0.rfind("error", 0) != 0);
    auto const pre = vfolder_test::read_file(index);
    auto const trace = record(dir, op);
    auto const post = vfolder_test::read_file(index);
    std::string const s1 = state_of(dir);
    REQUIRE(s1 != s0);
    REQUIRE_FALSE(trace.empty());
    std::size_t ack = 0; // the prefix length that includes the last sync
    for (std::size_t i = 0; i < trace.size(); ++i)
        if (trace[i].sync) ack = i + 1;
    for (std::size_t cut = 0; cut <= trace.size(); ++cut) {
        std::size_t last_sync = 0;
        for (std::size_t i = 0; i < cut; ++i)
            if (trace[i].sync) last_sync = i;
        std::size_t pending = 0;
        for (std::size_t i = last_sync; i < cut; ++i) pending += trace[i].sync ? 0u : 1u;
        if (cut > 0 && trace[cut - 1].sync) pending = 0; // the prefix ends with a sync
        std::vector<fate> fates(pending, fate::absent);
        constexpr int nfates = 5;
        std::size_t combos = 1;
        for (std::size_t i = 0; i < pending; ++i) combos *= nfates;
        REQUIRE(combos <= 625);
        for (std::size_t c = 0; c < combos; ++c) {
            std::size_t x = c;
            for (auto& f : fates) {
                f = static_cast<fate>(x % nfates);
                x /= nfates;
            }
            auto const img = image(pre, post, trace, cut, fates);
            vfolder_test::write_file(index, img);
            std::string const s = state_of(dir);
            INFO("cut ", cut, " of ", trace.size(), ", combination ", c);
            ++t.images;
            if (s == s0) ++t.before;
            else if (s == s1) ++t.after;
            else FAIL_CHECK("a state that is neither before nor after:\n" << s << "before:\n" << s0 << "after:\n" << s1);
            if (cut >= ack) CHECK(s == s1); // acknowledged: never lost
            // The next commit goes through without repair, and leaves a valid file.
            {
                mmap_mailbox w(dir, vfolder_test::own_options("next"));
                auto r = w.update_flags(uid_set{}, modify_op::add, system_flag::seen); // a no-op: writes nothing
                CHECK(r.has_value());
                uid_set one;
                one.add(1);
                CHECK(w.update_keywords(one, modify_op::add, keyword_set{"$Next"}).has_value());
            }
            std::string const n = state_of(dir);
            CHECK(n.rfind("error", 0) != 0);
            CHECK(n.find(" $Next") != std::string::npos);
        }
    }
    vfolder_test::write_file(index, post);
    REQUIRE(state_of(dir) == s1);
}

} // namespace

TEST_CASE("mmap_mailbox crash states: every prefix and every unsynced-write fate of a commit opens as before or after") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    {
        mmap_mailbox w(dir, vfolder_test::own_options("setup"));
        for (int i = 0; i < 6; ++i)
            REQUIRE(w.append("Subject: " + std::to_string(i) + "\r\n\r\nbody", mail_time{1000 + i}).has_value());
    }
    totals n;
    SUBCASE("flag store on three messages") {
        enumerate(dir, [&](mmap_mailbox& w) { REQUIRE(w.update_flags(set({1, 3, 5}), modify_op::add, system_flag::flagged).has_value()); }, n);
    }
    SUBCASE("a new keyword (KWDEF + MSG entries)") {
        enumerate(dir, [&](mmap_mailbox& w) { REQUIRE(w.update_keywords(set({2, 4}), modify_op::add, keyword_set{"Work"}).has_value()); }, n);
    }
    SUBCASE("expunge") {
        enumerate(dir, [&](mmap_mailbox& w) { REQUIRE(w.expunge(set({2, 6})).has_value()); }, n);
    }
    SUBCASE("append (the message file is durable before the index commit)") {
        enumerate(dir, [&](mmap_mailbox& w) { REQUIRE(w.append("Subject: new\r\n\r\nx", mail_time{5000}, system_flag::seen).has_value()); }, n);
    }
    SUBCASE("a batch of 40 appends (a tail write across sectors)") {
        std::vector<std::string> bodies;
        for (int i = 0; i < 40; ++i) bodies.push_back("Subject: b" + std::to_string(i) + "\r\n\r\nx");
        enumerate(dir, [&](mmap_mailbox& w) {
            std::vector<mmap_mailbox::new_message> msgs;
            for (int i = 0; i < 40; ++i) msgs.push_back({bodies[static_cast<std::size_t>(i)], mail_time{6000 + i}, {}, {}});
            REQUIRE(w.append_batch(msgs).has_value());
        }, n);
    }
    SUBCASE("after a compaction: the first commit on a new base") {
        {
            mmap_mailbox w(dir, vfolder_test::own_options("compact"));
            REQUIRE(w.compact().has_value());
        }
        enumerate(dir, [&](mmap_mailbox& w) { REQUIRE(w.update_flags(set({1, 2}), modify_op::add, system_flag::answered).has_value()); }, n);
    }
    MESSAGE("crash images: " << n.images << " (" << n.before << " before, " << n.after << " after)");
    CHECK(n.before > 0);
    CHECK(n.after > 0);
    CHECK(n.images == n.before + n.after);
}

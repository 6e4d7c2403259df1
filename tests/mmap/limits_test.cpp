// The mmap mailbox at the ends of its number spaces (MAILBOX-FORMAT.md §11.4 targeted
// cases): UID exhaustion at 2^32-2, modseq near 2^63-1, and the expunge of the highest
// UID seen by "vanished since" (cyrus-imapd #6071: ranges resolve against uidnext-1).
// The starting states are written directly as index files (a base built with
// build_index_file), since reaching them through appends would take 2^32 commits.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>

#include <doctest/doctest.h>
#include "support/mmap_files.hpp"
#include "support/temp_dir.hpp"

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

using namespace vfolder;
using namespace vfolder::mmap_detail;

namespace {

using vfolder_test::temp_dir;



// A fresh mailbox at `dir` whose index is replaced by a base holding `uids` (modseqs
// first_mod, first_mod+1, ...), uidnext `uidnext` and highestmodseq the last modseq.
void make_base(std::string const& dir, std::vector<std::uint32_t> const& uids, std::uint64_t first_mod, std::uint32_t uidnext) {
    REQUIRE(mmap_mailbox::create(dir, uid_validity{77}).has_value());
    std::string const index = dir + "/index";
    slot_fields h = vfolder_test::newest_slot(index);
    mailbox_state s;
    std::uint64_t mod = first_mod;
    for (auto u : uids) {
        msg_image m;
        m.uid = u;
        m.modseq = m.created_modseq = mod++;
        m.date = 1000;
        m.size = 1;
        s.live.emplace(u, live_msg{m, {}});
    }
    h.uidnext = uidnext;
    h.highestmodseq = mod - 1;
    h.vanished_floor = 0;
    auto bytes = build_index_file(s, h, h.generation + 1, 0xABCDEF12345ULL);
    vfolder_test::write_file(index + ".new", bytes);
    REQUIRE(std::rename((index + ".new").c_str(), index.c_str()) == 0);
}

uid_set one(std::uint32_t u) {
    uid_set s;
    s.add(u);
    return s;
}

} // namespace

TEST_CASE("mmap_mailbox limits: UID exhaustion at 2^32-2 is a clean not_possible, the mailbox stays usable") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    make_base(dir, {5, 0xFFFFFFFDU}, 10, 0xFFFFFFFEU);
    mmap_mailbox m(dir, vfolder_test::own_options("M"));
    REQUIRE(m.open().has_value());
    auto last = m.append("Subject: last\r\n\r\nx", mail_time{2000});
    REQUIRE_MESSAGE(last.has_value(), last.error_value().message);
    CHECK(value(*last) == 0xFFFFFFFEU); // the highest UID there is
    auto const st = m.status();
    REQUIRE(st.has_value());
    CHECK(value(st->uid_next) == 0xFFFFFFFFU);
    auto none = m.append("Subject: one too many\r\n\r\ny", mail_time{2001});
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error_value().is(errc::not_possible));
    CHECK(none.error_value().message.find("UIDs exhausted") != std::string::npos);
    std::vector<mmap_mailbox::new_message> batch{{"a", mail_time{1}, {}, {}}};
    auto nb = m.append_batch(batch);
    REQUIRE_FALSE(nb.has_value());
    CHECK(nb.error_value().is(errc::not_possible));
    // Nothing changed; everything else still works, at the top of the range too.
    auto again = m.status();
    REQUIRE(again.has_value());
    CHECK(*again == *st);
    CHECK(m.read_message(uid{0xFFFFFFFEU}).value() == "Subject: last\r\n\r\nx");
    REQUIRE(m.update_flags(one(0xFFFFFFFEU), modify_op::add, system_flag::seen).has_value());
    uid_set all;
    all.add_range(1, 0xFFFFFFFFU);
    auto seen = m.search(search_program::all(), all);
    REQUIRE(seen.has_value());
    CHECK(seen->contains(0xFFFFFFFEU));
    CHECK(seen->count() == 3);
    // The expunge of the highest UID is in "vanished since" (#6071).
    auto const x = value(m.status()->highest_modseq);
    REQUIRE(m.expunge(one(0xFFFFFFFEU)).has_value());
    auto ch = m.changes_since(modseq{x});
    REQUIRE(ch.has_value());
    REQUIRE(ch->expunged.has_value());
    CHECK(*ch->expunged == one(0xFFFFFFFEU));
    // Compaction and a fresh full open keep all of it.
    REQUIRE(m.compact().has_value());
    mmap_mailbox fresh(dir, vfolder_test::own_options("F"));
    auto fs = fresh.status();
    REQUIRE(fs.has_value());
    CHECK(value(fs->uid_next) == 0xFFFFFFFFU);
    CHECK(fs->exists == 2);
    auto fc = fresh.changes_since(modseq{x});
    REQUIRE(fc.has_value());
    REQUIRE(fc->expunged.has_value());
    CHECK(fc->expunged->contains(0xFFFFFFFEU));
}

TEST_CASE("mmap_mailbox limits: modseqs up to 2^63-1, then a clean not_possible") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    make_base(dir, {1, 2, 3}, max_modseq - 4, 4); // highestmodseq = max_modseq - 2
    mmap_mailbox m(dir, vfolder_test::own_options("M"));
    REQUIRE(m.open().has_value());
    REQUIRE(value(m.status()->highest_modseq) == max_modseq - 2);
    REQUIRE(m.update_flags(one(1), modify_op::add, system_flag::seen).has_value());
    REQUIRE(m.update_flags(one(2), modify_op::add, system_flag::seen).has_value());
    CHECK(value(m.status()->highest_modseq) == max_modseq);
    auto full = m.update_flags(one(3), modify_op::add, system_flag::seen);
    REQUIRE_FALSE(full.has_value());
    CHECK(full.error_value().is(errc::not_possible));
    CHECK(full.error_value().message.find("modseq") != std::string::npos);
    auto ap = m.append("Subject: x\r\n\r\ny", mail_time{5});
    REQUIRE_FALSE(ap.has_value());
    CHECK(ap.error_value().is(errc::not_possible));
    // The last change is there, and a fresh open validates the file.
    mmap_mailbox fresh(dir, vfolder_test::own_options("F"));
    auto ch = fresh.changes_since(modseq{max_modseq - 2});
    REQUIRE_MESSAGE(ch.has_value(), ch.error_value().message);
    CHECK(ch->changed.contains(1));
    CHECK(ch->changed.contains(2));
    CHECK_FALSE(ch->changed.contains(3));
    CHECK(value(ch->highest_modseq) == max_modseq);
    auto none = fresh.changes_since(modseq{max_modseq});
    REQUIRE(none.has_value());
    CHECK(none->changed.empty());
}

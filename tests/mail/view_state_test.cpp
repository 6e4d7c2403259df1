// Tests of view_state.hpp: `validate` (a good state passes; each broken condition it
// documents gives errc::corrupted with a message saying which) and `apply`, the reference
// meaning of a delta (replace_all, header, expunged, appended, updated, backends upserted
// and removed; a delta that does not fit leaves the state unchanged).
#include "conformance/store_fixture.hpp" // builders and the StringMaker of view_state

#include <vfolder/mail/view_state.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace vfolder;
using vfolder_test::sample_state;
using vfolder_test::vbox;
using vfolder_test::vheader;
using vfolder_test::vkeywords;
using vfolder_test::vmsg;

/// The message of validate's error; fails the test if `s` validates.
std::string broken_because(view_state const& s) {
    auto r = validate(s);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::corrupted));
    return r.error_value().message;
}

bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

/// Applies `d` to a copy of `s`; REQUIREs success.
view_state applied(view_state s, view_delta const& d) {
    auto r = apply(s, d);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error_value().message));
    return s;
}

} // namespace

// ---------------------------------------------------------------- validate

TEST_CASE("view_state: validate accepts good states") {
    CHECK(validate(view_state{}).has_value());
    CHECK(validate(sample_state()).has_value());
    view_state s;
    s.header = vheader(1, 1, 0);
    CHECK(validate(s).has_value()); // validity set, nothing else
    s = sample_state();
    s.messages.clear();
    CHECK(validate(s).has_value()); // backends without messages
    s = sample_state();
    s.backends[0].pending_removes = uid_set{{1, 29}}; // up to uid_next - 1
    CHECK(validate(s).has_value());
    s = sample_state();
    s.messages.back().vuid = prev(s.header.next_uid); // the highest allowed vuid
    CHECK(validate(s).has_value());
    s = sample_state();
    s.header.highest_box = 1000; // ids may have been used and forgotten
    CHECK(validate(s).has_value());
    s = sample_state();
    s.messages[1].real_uid = s.messages[0].real_uid; // the same real UID in another box
    CHECK(validate(s).has_value());
}

TEST_CASE("view_state: validate rejects a zero uidvalidity with content") {
    view_state s = sample_state();
    s.header.validity = uid_validity{0};
    CHECK(contains(broken_because(s), "uidvalidity is 0"));
    s.messages.clear();
    CHECK(contains(broken_because(s), "uidvalidity is 0")); // backends alone
    s = sample_state();
    s.header.validity = uid_validity{0};
    s.backends.clear();
    CHECK_FALSE(validate(s).has_value()); // messages alone (also of unknown boxes)
}

TEST_CASE("view_state: validate rejects mailbox ids that do not increase") {
    view_state s = sample_state();
    s.backends[1].box = s.backends[0].box;
    CHECK(contains(broken_because(s), "mailbox ids not increasing"));
    s = sample_state();
    std::swap(s.backends[0], s.backends[1]);
    CHECK(contains(broken_because(s), "mailbox ids not increasing"));
}

TEST_CASE("view_state: validate rejects mailbox ids out of range") {
    view_state s = sample_state();
    s.backends[0].box = 0;
    CHECK(contains(broken_because(s), "mailbox id out of range"));
    s = sample_state();
    s.header.highest_box = 2; // box 3 exists
    CHECK(contains(broken_because(s), "mailbox id out of range"));
}

TEST_CASE("view_state: validate rejects pending removes outside the mailbox's UIDs") {
    view_state s = sample_state();
    s.backends[0].pending_removes = uid_set{{0, 3}};
    auto const m = broken_because(s);
    CHECK(contains(m, "pending removes outside the mailbox's UIDs"));
    CHECK(contains(m, "INBOX")); // names the backend
    s.backends[0].pending_removes = uid_set{{3, 4}, {30, 30}}; // uid_next is 30
    CHECK(contains(broken_because(s), "pending removes"));
    s.backends[0].pending_removes = uid_set{{40, 50}};
    CHECK(contains(broken_because(s), "pending removes"));
    s.backends[0].uid_next = uid{51};
    CHECK(validate(s).has_value());
}

TEST_CASE("view_state: validate rejects vuids out of range") {
    view_state s = sample_state();
    s.messages[0].vuid = uid{0};
    CHECK(contains(broken_because(s), "vuid out of range"));
    s = sample_state();
    s.messages.back().vuid = s.header.next_uid;
    CHECK(contains(broken_because(s), "vuid out of range"));
    s = sample_state();
    s.messages.back().vuid = uid{1000};
    CHECK(contains(broken_because(s), "vuid out of range"));
}

TEST_CASE("view_state: validate rejects vuids that do not increase") {
    view_state s = sample_state();
    s.messages[2].vuid = s.messages[1].vuid;
    CHECK(contains(broken_because(s), "vuids not increasing"));
    s = sample_state();
    std::swap(s.messages[3], s.messages[4]);
    CHECK(contains(broken_because(s), "vuids not increasing"));
}

TEST_CASE("view_state: validate rejects backend UID 0") {
    view_state s = sample_state();
    s.messages[2].real_uid = uid{0};
    CHECK(contains(broken_because(s), "backend uid 0"));
}

TEST_CASE("view_state: validate rejects records of unknown mailboxes") {
    view_state s = sample_state();
    s.messages[1].box = 2; // within highest_box, but not a known backend
    CHECK(contains(broken_because(s), "record of an unknown mailbox id"));
    s.messages[1].box = 0;
    CHECK(contains(broken_because(s), "record of an unknown mailbox id"));
    s = sample_state();
    s.backends.pop_back(); // box 3 forgotten, its messages kept
    CHECK(contains(broken_because(s), "record of an unknown mailbox id"));
}

TEST_CASE("view_state: validate rejects a backend message that appears twice") {
    view_state s = sample_state();
    // Not adjacent: vuid 2 and vuid 14 both name INBOX UID 10.
    s.messages[4].real_uid = s.messages[0].real_uid;
    CHECK(contains(broken_because(s), "a backend message appears twice"));
}

TEST_CASE("view_state: every validate error says it is a broken view state") {
    view_state s = sample_state();
    s.messages[0].real_uid = uid{0};
    CHECK(broken_because(s).rfind("broken view state: ", 0) == 0);
}

// ---------------------------------------------------------------- apply

TEST_CASE("view_state: apply of an empty delta changes nothing") {
    view_delta const d;
    CHECK(d.empty());
    CHECK(applied(sample_state(), d) == sample_state());
    CHECK(applied(view_state{}, d) == view_state{});
}

TEST_CASE("view_state: view_delta::empty looks at every part") {
    auto const not_empty = [](auto&& set) {
        view_delta d;
        set(d);
        return !d.empty();
    };
    CHECK(not_empty([](view_delta& d) { d.replace_all = true; }));
    CHECK(not_empty([](view_delta& d) { d.header = view_header{}; }));
    CHECK(not_empty([](view_delta& d) { d.expunged.add(1); }));
    CHECK(not_empty([](view_delta& d) { d.appended.push_back(vmsg(1, 1, 1)); }));
    CHECK(not_empty([](view_delta& d) { d.updated.push_back(vmsg(1, 1, 1)); }));
    CHECK(not_empty([](view_delta& d) { d.backends.push_back(vbox(1, "x")); }));
    CHECK(not_empty([](view_delta& d) { d.backends_removed.push_back(1); }));
}

TEST_CASE("view_state: apply replace_all drops every record") {
    view_delta d;
    d.replace_all = true;

    SUBCASE("keeps the header unless the delta has one") {
        view_state const s = applied(sample_state(), d);
        CHECK(s.header == sample_state().header);
        CHECK(s.messages.empty());
        CHECK(s.backends.empty());
    }
    SUBCASE("with a new header, backends and messages: exactly those") {
        d.header = vheader(8, 40, 5);
        d.backends = {vbox(5, "Five")};
        d.appended = {vmsg(1, 5, 1), vmsg(30, 5, 2)}; // vuid 1: below the old records, fine
        view_state const s = applied(sample_state(), d);
        CHECK(s.header == vheader(8, 40, 5));
        CHECK(s.backends == std::vector<backend_sync_record>{vbox(5, "Five")});
        CHECK(s.messages == std::vector<view_message>{vmsg(1, 5, 1), vmsg(30, 5, 2)});
        CHECK(validate(s).has_value());
    }
    SUBCASE("an update after replace_all has nothing to update") {
        d.updated = {vmsg(2, 1, 10)};
        view_state s = sample_state();
        CHECK_FALSE(apply(s, d).has_value());
        CHECK(s == sample_state());
    }
}

TEST_CASE("view_state: apply header replaces the header") {
    view_delta d;
    d.header = vheader(7, 99, 9, 1234);
    view_state const s = applied(sample_state(), d);
    CHECK(s.header == vheader(7, 99, 9, 1234));
    CHECK(s.messages == sample_state().messages);
    CHECK(s.backends == sample_state().backends);
}

TEST_CASE("view_state: apply expunged removes those vuids and ignores absent ones") {
    view_delta d;
    d.expunged = uid_set{{1, 2}, {6, 9}, {100, 200}}; // 2, 6, 9 exist; the rest do not
    view_state const s = applied(sample_state(), d);
    REQUIRE(s.messages.size() == 2);
    CHECK(s.messages[0] == sample_state().messages[1]);
    CHECK(s.messages[1] == sample_state().messages[4]);
    CHECK(s.backends == sample_state().backends);
    CHECK(s.header == sample_state().header);
}

TEST_CASE("view_state: apply appended adds messages above all others") {
    view_delta d;
    d.appended = {vmsg(15, 3, 3), vmsg(17, 1, 21, system_flag::draft, vkeywords({"K"}))};
    view_state const s = applied(sample_state(), d);
    REQUIRE(s.messages.size() == 7);
    CHECK(s.messages[5] == vmsg(15, 3, 3));
    CHECK(s.messages[6] == vmsg(17, 1, 21, system_flag::draft, vkeywords({"K"})));

    SUBCASE("into an empty state") {
        CHECK(applied(view_state{}, d).messages == d.appended);
    }
    SUBCASE("after expunging the highest in the same delta: above the remaining ones") {
        view_delta e;
        e.expunged = uid_set{{14, 14}};
        e.appended = {vmsg(12, 1, 22)};
        view_state const t = applied(sample_state(), e);
        CHECK(t.messages.back() == vmsg(12, 1, 22));
        CHECK(t.messages.size() == 5);
    }
}

TEST_CASE("view_state: apply refuses an append not above the others") {
    view_state s = sample_state();
    view_delta d;

    SUBCASE("equal to the highest") { d.appended = {vmsg(14, 1, 50)}; }
    SUBCASE("below the highest") { d.appended = {vmsg(3, 1, 50)}; }
    SUBCASE("not ascending within the delta") { d.appended = {vmsg(16, 1, 50), vmsg(15, 1, 51)}; }
    SUBCASE("a duplicate within the delta") { d.appended = {vmsg(16, 1, 50), vmsg(16, 1, 51)}; }
    SUBCASE("after good parts") {
        d.header = vheader(7, 30, 3);
        d.expunged = uid_set{{2, 2}};
        d.updated = {vmsg(5, 3, 1, system_flag::seen)};
        d.backends = {vbox(2, "New")};
        d.backends_removed = {1};
        d.appended = {vmsg(18, 3, 7), vmsg(18, 3, 8)};
    }
    auto r = apply(s, d);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::invalid_argument));
    CHECK(contains(r.error_value().message, "not above"));
    CHECK(s == sample_state()); // unchanged
}

TEST_CASE("view_state: apply updated replaces flags and keywords only") {
    view_delta d;
    // box and real_uid in an update are not applied: only flags and keywords are.
    d.updated = {vmsg(6, 9, 999, system_flag::seen, vkeywords({"A", "B"})), vmsg(2, 1, 10)};
    view_state const s = applied(sample_state(), d);
    view_state expected = sample_state();
    expected.messages[2].flags = system_flag::seen;
    expected.messages[2].keywords = vkeywords({"A", "B"});
    expected.messages[0].flags = {};
    CHECK(s == expected);
}

TEST_CASE("view_state: apply updated of a message that is not there is refused") {
    view_state s = sample_state();
    view_delta d;

    SUBCASE("never there") { d.updated = {vmsg(3, 1, 10)}; }
    SUBCASE("beyond every message") { d.updated = {vmsg(19, 1, 10)}; }
    SUBCASE("expunged by the same delta") {
        d.expunged = uid_set{{6, 6}};
        d.updated = {vmsg(6, 1, 12, system_flag::seen)};
    }
    SUBCASE("appended by the same delta (updates apply before appends)") {
        d.appended = {vmsg(16, 1, 40)};
        d.updated = {vmsg(16, 1, 40, system_flag::seen)};
    }
    SUBCASE("after a good update") { d.updated = {vmsg(2, 1, 10, system_flag::deleted), vmsg(4, 1, 1)}; }
    auto r = apply(s, d);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::invalid_argument));
    CHECK(contains(r.error_value().message, "does not exist"));
    CHECK(s == sample_state()); // unchanged
}

TEST_CASE("view_state: apply backends upserts by mailbox id") {
    view_delta d;
    d.backends = {vbox(2, "Two"), vbox(3, "Work renamed", 55, 66), vbox(7, "Seven")};
    d.header = vheader(7, 20, 7);
    view_state const s = applied(sample_state(), d);
    REQUIRE(s.backends.size() == 4);
    CHECK(s.backends[0] == sample_state().backends[0]);
    CHECK(s.backends[1] == vbox(2, "Two"));
    CHECK(s.backends[2] == vbox(3, "Work renamed", 55, 66));
    CHECK(s.backends[3] == vbox(7, "Seven"));
    CHECK(validate(s).has_value());

    SUBCASE("in any order in the delta: stored ascending") {
        view_delta e;
        e.backends = {vbox(9, "Nine"), vbox(2, "Two"), vbox(5, "Five")};
        view_state const t = applied(sample_state(), e);
        REQUIRE(t.backends.size() == 5);
        for (std::size_t i = 1; i < t.backends.size(); ++i) CHECK(t.backends[i - 1].box < t.backends[i].box);
    }
}

TEST_CASE("view_state: apply backends_removed forgets backends") {
    view_delta d;
    d.backends_removed = {3, 42}; // 42 is unknown: ignored
    d.expunged = uid_set{{5, 5}, {9, 9}};
    view_state const s = applied(sample_state(), d);
    REQUIRE(s.backends.size() == 1);
    CHECK(s.backends[0].box == 1);
    CHECK(s.messages.size() == 3);
    CHECK(validate(s).has_value());

    SUBCASE("removed and upserted in one delta: the upsert wins") {
        view_delta e;
        e.backends_removed = {1};
        e.backends = {vbox(1, "INBOX again", 31, 12)};
        view_state const t = applied(sample_state(), e);
        REQUIRE(t.backends.size() == 2);
        CHECK(t.backends[0] == vbox(1, "INBOX again", 31, 12));
    }
    SUBCASE("the messages of a removed backend stay unless expunged (validate then fails)") {
        view_delta e;
        e.backends_removed = {3};
        view_state const t = applied(sample_state(), e);
        CHECK(t.messages.size() == 5);
        CHECK_FALSE(validate(t).has_value());
    }
}

TEST_CASE("view_state: apply of a whole delta, each part in its order") {
    // expunged, then updated, then appended, then backends removed, then upserted.
    view_delta d;
    d.header = vheader(7, 25, 4, 42);
    d.expunged = uid_set{{9, 9}};
    d.updated = {vmsg(5, 3, 1, system_flag::flagged)};
    d.appended = {vmsg(21, 4, 1), vmsg(24, 3, 11)};
    d.backends_removed = {1};
    d.backends = {vbox(4, "Four", 2, 1), vbox(3, "Work", 12, 5)};
    d.expunged.add_range(2, 2);
    d.expunged.add_range(6, 6);
    d.expunged.add_range(14, 14); // every INBOX message
    view_state const s = applied(sample_state(), d);
    view_state expected;
    expected.header = vheader(7, 25, 4, 42);
    expected.messages = {vmsg(5, 3, 1, system_flag::flagged), vmsg(21, 4, 1), vmsg(24, 3, 11)};
    expected.backends = {vbox(3, "Work", 12, 5), vbox(4, "Four", 2, 1)};
    CHECK(s == expected);
    CHECK(validate(s).has_value());
}

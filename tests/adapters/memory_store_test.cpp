// Tests of what is particular to memory_store (memory_store.hpp); the view_store rules
// S1-S5 are in tests/conformance/store_conformance_test.cpp. Here: the test hooks
// (crash_next_commit, fail_next_commit, break_state, commit_count, set_raw / raw), the
// messages of its errors, and memory_store_world (slots per folder name, wipe).
#include "conformance/store_fixture.hpp"

#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/mail/view_state.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>

namespace {

using namespace vfolder;
using vfolder_test::sample_rebuild;
using vfolder_test::sample_state;
using vfolder_test::vheader;
using vfolder_test::vmsg;

bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

/// A delta on sample_state() that adds one message (vuid 19 of box 3).
view_delta add_one() {
    view_delta d;
    d.appended = {vmsg(19, 3, 5)};
    return d;
}

view_state with_add_one() {
    view_state s = sample_state();
    s.messages.push_back(vmsg(19, 3, 5));
    return s;
}

} // namespace

TEST_CASE("memory_store: crash_next_commit(true) lands the delta and reports io") {
    memory_store_world world;
    memory_store s(world, "V");
    REQUIRE(s.commit(sample_rebuild()).has_value());
    s.crash_next_commit(true);
    auto r = s.commit(add_one());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::io));
    CHECK(contains(r.error_value().message, "simulated crash"));
    CHECK(contains(r.error_value().message, "(for virtual folder V)"));
    CHECK(s.commit_count() == 2);
    memory_store reopened(world, "V");
    CHECK(**reopened.load() == with_add_one());
    // The crash was for one commit only.
    view_delta d;
    d.updated = {vmsg(19, 3, 5, system_flag::seen)};
    CHECK(s.commit(d).has_value());
    CHECK(s.commit_count() == 3);
}

TEST_CASE("memory_store: crash_next_commit(false) loses the delta entirely and reports io") {
    memory_store_world world;
    memory_store s(world, "V");
    REQUIRE(s.commit(sample_rebuild()).has_value());
    s.crash_next_commit(false);
    auto r = s.commit(add_one());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::io));
    CHECK(s.commit_count() == 1);
    CHECK(**s.load() == sample_state());
    CHECK(s.commit(add_one()).has_value()); // the crash was for one commit only
    CHECK(**s.load() == with_add_one());
}

TEST_CASE("memory_store: a crash of the first commit that does not land leaves nothing") {
    memory_store_world world;
    memory_store s(world, "V");
    s.crash_next_commit(false);
    CHECK_FALSE(s.commit(sample_rebuild()).has_value());
    auto r = s.load();
    REQUIRE(r.has_value());
    CHECK_FALSE(r->has_value());
    CHECK(s.commit_count() == 0);
}

TEST_CASE("memory_store: fail_next_commit fails one commit with the given error") {
    memory_store_world world;
    memory_store s(world, "V");
    REQUIRE(s.commit(sample_rebuild()).has_value());
    error const e{errc::temporary, "lock held by another process"};
    s.fail_next_commit(e);
    auto r = s.commit(add_one());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value() == e);
    CHECK(s.commit_count() == 1);
    CHECK(**s.load() == sample_state());
    REQUIRE(s.commit(add_one()).has_value());
    CHECK(s.commit_count() == 2);
    CHECK(**s.load() == with_add_one());
}

TEST_CASE("memory_store: break_state reports corrupted until reset") {
    memory_store_world world;
    memory_store s(world, "Virtual/Flagged");
    REQUIRE(s.commit(sample_rebuild()).has_value());
    s.break_state();
    for (int i = 0; i < 2; ++i) {
        auto r = s.load();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::corrupted));
        CHECK(contains(r.error_value().message, "(for virtual folder Virtual/Flagged)"));
    }
    CHECK_FALSE(memory_store(world, "Virtual/Flagged").load().has_value()); // persistent

    SUBCASE("reset clears it") {
        REQUIRE(s.reset().has_value());
        auto r = s.load();
        REQUIRE(r.has_value());
        CHECK_FALSE(r->has_value());
    }
    SUBCASE("a replace_all commit clears it") {
        REQUIRE(s.commit(sample_rebuild()).has_value());
        auto r = s.load();
        REQUIRE(r.has_value());
        CHECK(**r == sample_state());
    }
    SUBCASE("a commit without replace_all does not") {
        REQUIRE(s.commit(add_one()).has_value());
        CHECK_FALSE(s.load().has_value());
        CHECK(s.commit_count() == 2);
    }
    SUBCASE("a crashing replace_all that does not land does not") {
        s.crash_next_commit(false);
        CHECK_FALSE(s.commit(sample_rebuild()).has_value());
        CHECK_FALSE(s.load().has_value());
    }
    SUBCASE("a crashing replace_all that lands does") {
        s.crash_next_commit(true);
        CHECK_FALSE(s.commit(sample_rebuild()).has_value());
        REQUIRE(s.load().has_value());
    }
}

TEST_CASE("memory_store: commit_count counts the commits that landed") {
    memory_store_world world;
    memory_store s(world, "V");
    CHECK(s.commit_count() == 0);
    REQUIRE(s.commit(sample_rebuild()).has_value());
    REQUIRE(s.commit(view_delta{}).has_value());
    CHECK(s.commit_count() == 2);
    view_delta bad;
    bad.appended = {vmsg(1, 1, 1)};
    CHECK_FALSE(s.commit(bad).has_value());
    CHECK(s.commit_count() == 2);
    (void)s.load();
    REQUIRE(s.reset().has_value());
    CHECK(s.commit_count() == 2); // reset is not a commit
    CHECK(memory_store(world, "V").commit_count() == 2);
    CHECK(memory_store(world, "W").commit_count() == 0);
}

TEST_CASE("memory_store: set_raw with an invalid state makes load report corrupted") {
    memory_store_world world;
    memory_store s(world, "Virtual/All");
    view_state bad = sample_state();
    bad.messages[3].box = 2; // no backend with id 2
    s.set_raw(bad);
    auto r = s.load();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::corrupted));
    CHECK(r.error_value().message ==
          "broken view state: record of an unknown mailbox id (for virtual folder Virtual/All)");
    // raw() hands out what is stored, unvalidated.
    REQUIRE(s.raw().has_value());
    CHECK(*s.raw() == bad);
    // A good raw state loads.
    s.set_raw(sample_state());
    CHECK(**s.load() == sample_state());
    CHECK(s.commit_count() == 0); // set_raw is not a commit
}

TEST_CASE("memory_store: a commit that leaves an invalid state is stored but not loaded") {
    memory_store_world world;
    memory_store s(world, "V");
    REQUIRE(s.commit(sample_rebuild()).has_value());
    view_delta d;
    d.header = vheader(7, 10, 3, 42); // next_uid below vuid 14
    REQUIRE(s.commit(d).has_value());
    auto r = s.load();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::corrupted));
    CHECK(contains(r.error_value().message, "vuid out of range"));
}

TEST_CASE("memory_store_world: folders are independent and wipe forgets one") {
    memory_store_world world;
    memory_store a(world, "A");
    memory_store b(world, "B");
    REQUIRE(a.commit(sample_rebuild()).has_value());
    CHECK_FALSE(b.load()->has_value());
    REQUIRE(b.commit(sample_rebuild()).has_value());
    REQUIRE(b.commit(add_one()).has_value());

    // Two store objects on one folder share it.
    memory_store a2(world, "A");
    REQUIRE(a2.commit(add_one()).has_value());
    CHECK(**a.load() == with_add_one());

    world.wipe("A");
    CHECK_FALSE(a.load()->has_value());
    CHECK(a.commit_count() == 0);
    CHECK(**b.load() == with_add_one());
    CHECK(b.commit_count() == 2);
    world.wipe("never used"); // harmless
    world.wipe("A");
    CHECK(**b.load() == with_add_one());

    SUBCASE("wipe also forgets the hooks and the broken mark") {
        b.break_state();
        b.fail_next_commit(error{errc::io, "x"});
        world.wipe("B");
        CHECK(b.load().has_value());
        CHECK(b.commit(sample_rebuild()).has_value());
    }
}

// Regression: the slot keeps messages in a map by vuid, so set_raw of a state whose vuids
// did not increase stored a sorted, de-duplicated (valid) copy, and load handed it out.
TEST_CASE("memory_store: set_raw of a state the slot cannot hold as it is loads as corrupted") {
    memory_store_world world;
    memory_store s(world, "V");
    auto const expect_corrupted = [&] {
        auto r = s.load();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::corrupted));
    };
    view_state bad = sample_state();
    SUBCASE("duplicate vuids") { bad.messages[1].vuid = bad.messages[0].vuid; }
    SUBCASE("vuids out of order") { std::swap(bad.messages[1], bad.messages[3]); }
    SUBCASE("duplicate mailbox ids") { bad.backends[1].box = bad.backends[0].box; }
    SUBCASE("mailbox ids out of order") { std::swap(bad.backends[0], bad.backends[1]); }
    REQUIRE_FALSE(validate(bad).has_value());
    s.set_raw(bad);
    expect_corrupted();
    expect_corrupted();
    REQUIRE(s.reset().has_value());
    CHECK_FALSE(s.load()->has_value());
}

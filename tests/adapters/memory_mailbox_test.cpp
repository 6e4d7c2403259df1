// Tests of what is particular to the memory adapter (memory_mailbox.hpp) and the backend
// registry (registry.hpp); the backend rules B1-B9 are in
// tests/conformance/backend_conformance_test.cpp. Here: fault injection and call
// counters, reset_validity, trim_expunge_log, the O(k) cost of changes_since (counted
// with records_touched, not timed), memory_world (create, remove, find, list with
// patterns, fresh identities, invalid names), memory_backend over a deleted and
// re-created mailbox, open/close, and the registry with the "mem" scheme.
#include "conformance/backend_fixture.hpp" // the StringMaker of uid_set

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/any_backend.hpp>
#include <vfolder/registry.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

namespace {

using namespace vfolder;

mail_time at(std::int64_t t) { return mail_time{1580515200 + t}; }

bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

struct world_with_box {
    memory_world world{500};
    memory_mailbox* box = nullptr;
    memory_backend be{world, "Lists/vfolder"};
    world_with_box() {
        auto r = world.create("Lists/vfolder");
        REQUIRE(r.has_value());
        box = *r;
        for (int i = 0; i < 5; ++i) box->append(at(i), {}, "<" + std::to_string(i) + "@x>", 100);
    }
};

} // namespace

// ---------------------------------------------------------------- fault injection

TEST_CASE("memory_mailbox: fail_next fails n calls of one operation then succeeds") {
    world_with_box w;
    w.box->fail_next(backend_op::status, 2, error{errc::temporary, "lock timeout"});
    for (int i = 0; i < 2; ++i) {
        CAPTURE(i);
        auto r = w.be.status();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::temporary));
        CHECK(r.error_value().message == "lock timeout (for backend mailbox Lists/vfolder)");
    }
    auto r = w.be.status();
    REQUIRE(r.has_value());
    CHECK(r->exists == 5);
    CHECK(w.be.status().has_value());
}

TEST_CASE("memory_mailbox: fail_next with n = 0 injects nothing") {
    world_with_box w;
    w.box->fail_next(backend_op::fetch, 0, error{errc::io, "x"});
    CHECK(w.be.fetch(uid_set{{1, 5}}, fetch_fields::all).has_value());
}

TEST_CASE("memory_mailbox: fail_always fails until clear_faults") {
    world_with_box w;
    w.box->fail_always(backend_op::expunge, error{errc::permission, "read-only"});
    for (int i = 0; i < 5; ++i) {
        auto r = w.be.expunge(uid_set{{1, 1}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::permission));
        CHECK(contains(r.error_value().message, "read-only"));
        CHECK(contains(r.error_value().message, "(for backend mailbox Lists/vfolder)"));
    }
    CHECK(w.box->size() == 5); // nothing expunged
    w.box->clear_faults();
    CHECK(w.be.expunge(uid_set{{1, 1}}).has_value());
    CHECK(w.box->size() == 4);
}

TEST_CASE("memory_mailbox: faults are per operation") {
    world_with_box w;
    w.box->fail_always(backend_op::fetch, error{errc::io, "bad sector"});
    w.box->fail_next(backend_op::update_flags, 1, error{errc::temporary, "busy"});
    CHECK(w.be.status().has_value());
    CHECK(w.be.search(search_program::all()).has_value());
    CHECK(w.be.changes_since(modseq{0}).has_value());
    CHECK(w.be.update_keywords(uid_set{{1, 1}}, modify_op::add, {}).has_value());
    CHECK(w.be.expunge({}).has_value());
    CHECK(w.be.open().has_value());
    CHECK(w.be.fetch(uid_set{{1, 1}}, fetch_fields::all).error_value().is(errc::io));
    CHECK(w.be.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::seen).error_value().is(errc::temporary));
    CHECK(w.be.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::seen).has_value());
    CHECK(w.be.fetch(uid_set{{1, 1}}, fetch_fields::all).error_value().is(errc::io));
}

TEST_CASE("memory_mailbox: every backend operation can be faulted") {
    world_with_box w;
    error const e{errc::temporary, "injected"};
    auto const failed = [](auto const& r) {
        return !r.has_value() && r.error_value().is(errc::temporary) &&
               r.error_value().message == "injected (for backend mailbox Lists/vfolder)";
    };
    auto arm = [&](backend_op op) { w.box->fail_next(op, 1, e); };
    arm(backend_op::status);
    CHECK(failed(w.be.status()));
    arm(backend_op::search);
    CHECK(failed(w.be.search(search_program::all())));
    arm(backend_op::search);
    CHECK(failed(w.be.search(search_program::all(), uid_set{{1, 2}})));
    arm(backend_op::changes_since);
    CHECK(failed(w.be.changes_since(modseq{0})));
    arm(backend_op::fetch);
    CHECK(failed(w.be.fetch(uid_set{{1, 2}}, fetch_fields::all)));
    arm(backend_op::update_flags);
    CHECK(failed(w.be.update_flags(uid_set{{1, 2}}, modify_op::add, system_flag::seen)));
    arm(backend_op::update_keywords);
    CHECK(failed(w.be.update_keywords(uid_set{{1, 2}}, modify_op::add, {})));
    arm(backend_op::expunge);
    CHECK(failed(w.be.expunge(uid_set{{1, 2}})));
    arm(backend_op::open);
    CHECK(failed(w.be.open()));
    CHECK_FALSE(w.be.is_open());
    CHECK(w.be.open_count() == 0);
    // Nothing changed: no flags, all five messages, the modseq of the five appends.
    CHECK(w.box->size() == 5);
    CHECK(value(w.box->highest_modseq()) == 5);
    for (auto const& m : w.box->messages()) CHECK(m.flags.empty());
}

TEST_CASE("memory_mailbox: the injected error reaches the caller through any_backend") {
    world_with_box w;
    any_backend a{memory_backend(w.world, "Lists/vfolder")};
    w.box->fail_next(backend_op::search, 1, error{errc::not_possible, "nope"});
    auto r = a.search(search_program::all());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::not_possible));
    CHECK(r.error_value().message == "nope (for backend mailbox Lists/vfolder)");
}

TEST_CASE("memory_mailbox: call counters count every call, faulted ones included") {
    world_with_box w;
    for (std::size_t i = 0; i < backend_op_count; ++i) CHECK(w.box->calls(static_cast<backend_op>(i)) == 0);
    w.box->fail_next(backend_op::status, 1, error{errc::temporary, "t"});
    w.box->fail_always(backend_op::changes_since, error{errc::temporary, "t"});
    (void)w.be.status();
    (void)w.be.status();
    (void)w.be.changes_since(modseq{0});
    (void)w.be.search(search_program::all());
    (void)w.be.search(search_program::all(), uid_set{{1, 1}});
    (void)w.be.fetch({}, fetch_fields::all);
    (void)w.be.open();
    (void)w.be.open();
    CHECK(w.box->calls(backend_op::status) == 2);
    CHECK(w.box->calls(backend_op::search) == 2);
    CHECK(w.box->calls(backend_op::fetch) == 1);
    CHECK(w.box->calls(backend_op::open) == 2);
    CHECK(w.box->calls(backend_op::changes_since) == 1);
    CHECK(w.box->calls(backend_op::update_flags) == 0);
    CHECK(w.box->calls(backend_op::update_keywords) == 0);
    CHECK(w.box->calls(backend_op::expunge) == 0);
    // Host-side operations are not backend calls.
    w.box->append(at(10));
    w.box->expunge_one(uid{1});
    (void)w.box->status_now();
    CHECK(w.box->calls(backend_op::status) == 2);
    CHECK(w.box->calls(backend_op::expunge) == 0);
}

// ---------------------------------------------------------------- host-side API

TEST_CASE("memory_mailbox: host writes report missing messages and strip Recent") {
    memory_mailbox box("Box", uid_validity{9});
    uid const a = box.append(at(0), {system_flag::recent | system_flag::seen, {}}, "<a@x>", 42);
    CHECK(box.find(a)->flags == flag_set(system_flag::seen));
    CHECK(box.find(a)->message_id == "<a@x>");
    CHECK(box.find(a)->size == 42);
    CHECK(box.find(uid{2}) == nullptr);
    CHECK_FALSE(box.modify_flags(uid{2}, modify_op::add, system_flag::seen));
    CHECK_FALSE(box.modify_keywords(uid{2}, modify_op::add, {}));
    CHECK_FALSE(box.expunge_one(uid{2}));
    modseq const m = box.highest_modseq();
    CHECK(box.modify_flags(a, modify_op::add, system_flag::recent)); // exists, changes nothing
    CHECK(box.highest_modseq() == m);
    CHECK(box.find(a)->flags == flag_set(system_flag::seen));
    CHECK(box.find(a)->mod == m);
}

TEST_CASE("memory_mailbox: a copy is an independent snapshot") {
    memory_mailbox box("Box", uid_validity{9});
    box.append(at(0));
    memory_mailbox snap = box;
    box.append(at(1));
    box.modify_flags(uid{1}, modify_op::add, system_flag::flagged);
    CHECK(snap.size() == 1);
    CHECK(snap.find(uid{1})->flags.empty());
    CHECK(value(snap.next_uid()) == 2);
    CHECK(snap.changes_now(modseq{0}).changed == uid_set{{1, 1}});
    CHECK(box.changes_now(modseq{0}).changed == uid_set{{1, 2}});
}

// ---------------------------------------------------------------- reset_validity

TEST_CASE("memory_mailbox: reset_validity renumbers the messages under a new validity") {
    world_with_box w;
    auto& box = *w.box;
    box.expunge_one(uid{2});
    box.expunge_one(uid{5});
    box.modify_flags(uid{3}, modify_op::add, system_flag::flagged);
    modseq const old_high = box.highest_modseq();
    mailbox_guid const old_guid = box.guid();

    SUBCASE("new UIDs 1..n in the old order, dates and flags kept") {
        box.reset_validity(uid_validity{77});
        CHECK(box.validity() == uid_validity{77});
        CHECK(box.guid() == old_guid); // no guid given: kept
        REQUIRE(box.size() == 3);
        CHECK(box.messages()[0].id == uid{1});
        CHECK(box.messages()[0].received == at(0));
        CHECK(box.messages()[1].id == uid{2});
        CHECK(box.messages()[1].received == at(2));
        CHECK(box.messages()[1].flags == flag_set(system_flag::flagged));
        CHECK(box.messages()[2].id == uid{3});
        CHECK(box.messages()[2].received == at(3));
        CHECK(value(box.next_uid()) == 4);
        auto const st = w.be.status();
        REQUIRE(st.has_value());
        CHECK(st->validity == uid_validity{77});
        CHECK(value(st->uid_next) == 4);
        CHECK(st->exists == 3);
        CHECK(value(st->highest_modseq) > value(old_high));
        uid const n = box.append(at(9));
        CHECK(n == uid{4});
    }
    SUBCASE("a new guid when given") {
        mailbox_guid g{};
        g[0] = 0xAB;
        box.reset_validity(uid_validity{78}, g);
        CHECK(box.guid() == g);
        CHECK(w.be.status()->guid == g);
    }
    SUBCASE("questions about the old modseqs get expunged unknown") {
        box.reset_validity(uid_validity{79});
        for (auto m : {modseq{0}, modseq{3}, old_high}) {
            CAPTURE(value(m));
            auto const c = w.be.changes_since(m);
            REQUIRE(c.has_value());
            CHECK_FALSE(c->expunged.has_value());
            CHECK(c->changed == uid_set{{1, 3}}); // every message has a new modseq
        }
        auto const now = w.be.changes_since(box.highest_modseq());
        REQUIRE(now.has_value());
        CHECK(now->changed.empty());
        REQUIRE(now->expunged.has_value());
        CHECK(now->expunged->empty());
        // New expunges are logged again.
        modseq const m = box.highest_modseq();
        box.expunge_one(uid{2});
        auto const later = w.be.changes_since(m);
        REQUIRE(later.has_value());
        REQUIRE(later->expunged.has_value());
        CHECK(*later->expunged == uid_set{{2, 2}});
    }
}

// ---------------------------------------------------------------- trim_expunge_log

TEST_CASE("memory_mailbox: trim_expunge_log forgets old expunges only") {
    world_with_box w;
    auto& box = *w.box;
    modseq const m0 = box.highest_modseq();
    box.expunge_one(uid{1});
    modseq const m1 = box.highest_modseq();
    box.expunge_one(uid{2});
    modseq const m2 = box.highest_modseq();
    box.modify_flags(uid{3}, modify_op::add, system_flag::seen);
    box.expunge_one(uid{4});
    modseq const m3 = box.highest_modseq();

    box.trim_expunge_log(m1);

    SUBCASE("questions below the trim point: unknown, changes still complete") {
        for (auto m : {modseq{0}, m0}) {
            CAPTURE(value(m));
            auto const c = w.be.changes_since(m);
            REQUIRE(c.has_value());
            CHECK_FALSE(c->expunged.has_value());
            CHECK(c->changed == (m == m0 ? uid_set{{3, 3}} : uid_set{{3, 3}, {5, 5}}));
        }
    }
    SUBCASE("questions at or above the trim point: still answered") {
        auto c = w.be.changes_since(m1);
        REQUIRE(c.has_value());
        REQUIRE(c->expunged.has_value());
        CHECK(*c->expunged == uid_set{{2, 2}, {4, 4}});
        c = w.be.changes_since(m2);
        REQUIRE(c.has_value());
        REQUIRE(c->expunged.has_value());
        CHECK(*c->expunged == uid_set{{4, 4}});
        CHECK(c->changed == uid_set{{3, 3}});
        c = w.be.changes_since(m3);
        REQUIRE(c.has_value());
        REQUIRE(c->expunged.has_value());
        CHECK(c->expunged->empty());
        CHECK(c->changed.empty());
    }
    SUBCASE("trimming is monotone") {
        box.trim_expunge_log(m0); // an older point does not bring anything back
        auto const c = w.be.changes_since(m0);
        REQUIRE(c.has_value());
        CHECK_FALSE(c->expunged.has_value());
        box.trim_expunge_log(m2);
        auto const d = w.be.changes_since(m1);
        REQUIRE(d.has_value());
        CHECK_FALSE(d->expunged.has_value());
        auto const e = w.be.changes_since(m2);
        REQUIRE(e.has_value());
        REQUIRE(e->expunged.has_value());
        CHECK(*e->expunged == uid_set{{4, 4}});
    }
}

// ---------------------------------------------------------------- cost

TEST_CASE("memory_mailbox: changes_since reads k records for k changes, not N") {
    memory_world world;
    auto* box = *world.create("Big");
    for (int i = 0; i < 10000; ++i) box->append(at(i));
    memory_backend be(world, "Big");
    modseq const m = box->highest_modseq();
    box->modify_flags(uid{17}, modify_op::add, system_flag::seen);
    box->modify_keywords(uid{5000}, modify_op::add, keyword_set{"Work"});
    box->modify_flags(uid{9999}, modify_op::replace, system_flag::flagged);
    box->expunge_one(uid{42});

    std::uint64_t const t0 = box->records_touched();
    auto const c = be.changes_since(m);
    REQUIRE(c.has_value());
    CHECK(box->records_touched() - t0 == 3);
    CHECK(c->changed == uid_set{{17, 17}, {5000, 5000}, {9999, 9999}});
    REQUIRE(c->expunged.has_value());
    CHECK(*c->expunged == uid_set{{42, 42}});

    SUBCASE("search within reads the records of within, not N") {
        std::uint64_t const t1 = box->records_touched();
        auto const s = be.search(search_program::all(), uid_set{{100, 104}, {20000, 20010}});
        REQUIRE(s.has_value());
        CHECK(s->count() == 5);
        CHECK(box->records_touched() - t1 == 5);
    }
    SUBCASE("fetch reads the records asked for") {
        std::uint64_t const t1 = box->records_touched();
        auto const f = be.fetch(uid_set{{41, 43}}, fetch_fields::all);
        REQUIRE(f.has_value());
        CHECK(f->size() == 2);
        CHECK(box->records_touched() - t1 == 2);
    }
    SUBCASE("a full search reads every record") {
        std::uint64_t const t1 = box->records_touched();
        CHECK(be.search(search_program::all()).has_value());
        CHECK(box->records_touched() - t1 == 9999);
    }
}

// ---------------------------------------------------------------- memory_world

TEST_CASE("memory_world: create, find, remove") {
    memory_world world;
    auto r = world.create("INBOX");
    REQUIRE(r.has_value());
    CHECK((*r)->name() == "INBOX");
    CHECK(world.find("INBOX") == *r);
    CHECK(std::as_const(world).find("INBOX") == *r);
    CHECK(world.find("Inbox") == nullptr); // names are exact
    CHECK(world.find("Other") == nullptr);

    auto dup = world.create("INBOX");
    REQUIRE_FALSE(dup.has_value());
    CHECK(dup.error_value().is(errc::already_exists));
    CHECK(world.find("INBOX") == *r); // the existing one is untouched

    REQUIRE(world.remove("INBOX").has_value());
    CHECK(world.find("INBOX") == nullptr);
    auto gone = world.remove("INBOX");
    REQUIRE_FALSE(gone.has_value());
    CHECK(gone.error_value().is(errc::not_found));
    CHECK(contains(gone.error_value().message, "INBOX"));
}

TEST_CASE("memory_world: invalid names") {
    memory_world world;
    for (std::string_view name : {"", "/", "/INBOX", "INBOX/", "a//b", "//"}) {
        CAPTURE(name);
        auto r = world.create(name);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::invalid_argument));
    }
    CHECK(world.list().empty());
    for (std::string_view name : {"a/b", "a/b/c", "with space", "Ünïcode", "x"}) {
        CAPTURE(name);
        CHECK(world.create(name).has_value());
    }
}

TEST_CASE("memory_world: list, and list with * and % patterns") {
    memory_world world;
    for (auto const* n : {"INBOX", "Lists/boost", "Lists/llvm/dev", "Lists/llvm", "Archive/2020", "Archive"})
        REQUIRE(world.create(n).has_value());
    using names = std::vector<std::string>;
    CHECK(world.list() == names{"Archive", "Archive/2020", "INBOX", "Lists/boost", "Lists/llvm", "Lists/llvm/dev"});
    CHECK(world.list("*") == world.list());
    CHECK(world.list("%") == names{"Archive", "INBOX"});
    CHECK(world.list("Lists/*") == names{"Lists/boost", "Lists/llvm", "Lists/llvm/dev"});
    CHECK(world.list("Lists/%") == names{"Lists/boost", "Lists/llvm"});
    CHECK(world.list("Lists/%/%") == names{"Lists/llvm/dev"});
    CHECK(world.list("*/2020") == names{"Archive/2020"});
    CHECK(world.list("%l%") == names{});
    CHECK(world.list("*l*") == names{"Lists/llvm", "Lists/llvm/dev"}); // case-sensitive
    CHECK(world.list("INBOX") == names{"INBOX"});
    CHECK(world.list("inbox").empty());
    CHECK(world.list("Archive%") == names{"Archive"});
    CHECK(world.list("Archive*") == names{"Archive", "Archive/2020"});
    CHECK(world.list("").empty());
}

TEST_CASE("memory_world: a re-created mailbox gets a fresh validity and guid") {
    memory_world world(40);
    auto* a = *world.create("Work");
    uid_validity const v1 = a->validity();
    mailbox_guid const g1 = a->guid();
    CHECK(v1 == uid_validity{40});
    auto* other = *world.create("Other");
    CHECK(other->validity() != v1);
    CHECK(other->guid() != g1);
    REQUIRE(world.remove("Work").has_value());
    auto* b = *world.create("Work");
    CHECK(b->validity() != v1);
    CHECK(b->validity() != other->validity());
    CHECK(b->guid() != g1);
    CHECK(b->guid() != other->guid());
    CHECK(b->size() == 0);
    CHECK(value(b->next_uid()) == 1);
    // Every guid handed out is new, and none is all zeros.
    std::vector<mailbox_guid> seen;
    for (int i = 0; i < 100; ++i) {
        auto const g = world.fresh_guid();
        CHECK(g != mailbox_guid{});
        for (auto const& s : seen) CHECK(s != g);
        seen.push_back(g);
    }
}

// ---------------------------------------------------------------- memory_backend

TEST_CASE("memory_backend: a deleted then re-created mailbox is seen with its new identity") {
    memory_world world;
    auto* box = *world.create("Work");
    box->append(at(0));
    box->append(at(1));
    memory_backend be(world, "Work");
    auto const before = *be.status();

    REQUIRE(world.remove("Work").has_value());
    CHECK(be.status().error_value().is(errc::not_found));
    CHECK(be.mailbox() == nullptr);

    auto* again = *world.create("Work");
    again->append(at(5));
    auto const after = be.status();
    REQUIRE(after.has_value());
    CHECK(after->validity != before.validity);
    CHECK(after->guid != before.guid);
    CHECK(after->exists == 1);
    CHECK(be.mailbox() == again);
    auto const recs = be.fetch(uid_set{{1, 10}}, fetch_fields::received);
    REQUIRE(recs.has_value());
    REQUIRE(recs->size() == 1);
    CHECK((*recs)[0].received == at(5));
}

TEST_CASE("memory_backend: a backend of a mailbox that does not exist yet") {
    memory_world world;
    memory_backend be(world, "Later");
    auto r = be.status();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::not_found));
    CHECK(r.error_value().message == "Mailbox doesn't exist (for backend mailbox Later)");
    REQUIRE(world.create("Later").has_value());
    CHECK(be.status().has_value());
}

TEST_CASE("memory_backend: open, close, is_open and open_count") {
    world_with_box w;
    auto& be = w.be;
    CHECK_FALSE(be.is_open());
    CHECK(be.open_count() == 0);
    REQUIRE(be.open().has_value());
    CHECK(be.is_open());
    CHECK(be.open_count() == 1);
    REQUIRE(be.open().has_value()); // O1: already open, not counted again
    CHECK(be.open_count() == 1);
    be.close();
    CHECK_FALSE(be.is_open());
    be.close();
    CHECK(be.open_count() == 1);
    REQUIRE(be.open().has_value());
    CHECK(be.open_count() == 2);

    SUBCASE("a failed open leaves it closed and uncounted") {
        be.close();
        w.box->fail_next(backend_op::open, 1, error{errc::temporary, "t"});
        CHECK_FALSE(be.open().has_value());
        CHECK_FALSE(be.is_open());
        CHECK(be.open_count() == 2);
    }
    SUBCASE("a failed open of an open backend leaves it open") {
        w.box->fail_next(backend_op::open, 1, error{errc::temporary, "t"});
        CHECK_FALSE(be.open().has_value());
        CHECK(be.is_open());
    }
    SUBCASE("open of a deleted mailbox: not_found") {
        be.close();
        REQUIRE(w.world.remove("Lists/vfolder").has_value());
        auto r = be.open();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::not_found));
        CHECK(contains(r.error_value().message, "(for backend mailbox Lists/vfolder)"));
        CHECK_FALSE(be.is_open());
    }
    SUBCASE("any_backend forwards open state") {
        any_backend a{memory_backend(w.world, "Lists/vfolder")};
        CHECK_FALSE(a.is_open());
        REQUIRE(a.open().has_value());
        CHECK(a.is_open());
        REQUIRE(a.target<memory_backend>() != nullptr);
        CHECK(a.target<memory_backend>()->open_count() == 1);
        a.close();
        CHECK_FALSE(a.is_open());
    }
}

TEST_CASE("memory_provider: lists the world and makes backends of existing mailboxes") {
    memory_world world;
    memory_provider provider(world);
    CHECK(provider.list().empty());
    REQUIRE(world.create("B").has_value());
    REQUIRE(world.create("A/x").has_value());
    CHECK(provider.list() == std::vector<std::string>{"A/x", "B"});
    CHECK(&provider.world() == &world);
    auto b = provider.make("A/x");
    REQUIRE(b.has_value());
    CHECK(b->name() == "A/x");
    CHECK(b->status().has_value());
    auto missing = provider.make("C");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error_value().is(errc::not_found));
    CHECK(contains(missing.error_value().message, "C"));
}

// ---------------------------------------------------------------- registry

TEST_CASE("backend_registry: the mem scheme creates memory backends") {
    memory_world world;
    backend_registry reg;
    REQUIRE(add_memory_scheme(reg, world).has_value());
    CHECK(reg.contains("mem"));

    SUBCASE("mem:NAME") {
        auto* box = *world.create("INBOX");
        box->append(at(0));
        auto b = reg.create("mem:INBOX");
        REQUIRE(b.has_value());
        CHECK(b->name() == "INBOX");
        auto st = b->status();
        REQUIRE(st.has_value());
        CHECK(st->exists == 1);
        REQUIRE(b->target<memory_backend>() != nullptr);
        CHECK(b->target<memory_backend>()->mailbox() == box);
    }
    SUBCASE("a hierarchical name, and one with a colon") {
        REQUIRE(world.create("Lists/a:b").has_value());
        auto b = reg.create("mem:Lists/a:b");
        REQUIRE(b.has_value());
        CHECK(b->name() == "Lists/a:b");
        CHECK(b->status().has_value());
    }
    SUBCASE("a mailbox that does not exist: the backend answers not_found") {
        auto b = reg.create("mem:Nowhere");
        REQUIRE(b.has_value());
        auto st = b->status();
        REQUIRE_FALSE(st.has_value());
        CHECK(st.error_value().is(errc::not_found));
        CHECK(contains(st.error_value().message, "(for backend mailbox Nowhere)"));
    }
    SUBCASE("mem: without a name") {
        auto b = reg.create("mem:");
        REQUIRE_FALSE(b.has_value());
        CHECK(b.error_value().is(errc::invalid_argument));
    }
    SUBCASE("an unknown scheme: not_found") {
        auto b = reg.create("imap:INBOX");
        REQUIRE_FALSE(b.has_value());
        CHECK(b.error_value().is(errc::not_found));
        CHECK(contains(b.error_value().message, "imap"));
        CHECK(reg.create("MEM:INBOX").error_value().is(errc::not_found)); // schemes are exact
    }
    SUBCASE("no scheme: invalid_argument") {
        for (std::string_view uri : {"INBOX", ":INBOX", ""}) {
            CAPTURE(uri);
            auto b = reg.create(uri);
            REQUIRE_FALSE(b.has_value());
            CHECK(b.error_value().is(errc::invalid_argument));
        }
    }
    SUBCASE("a duplicate scheme: already_exists") {
        memory_world other;
        auto r = add_memory_scheme(reg, other);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::already_exists));
        // The first registration still serves, over the first world.
        REQUIRE(world.create("X").has_value());
        CHECK(reg.create("mem:X")->status().has_value());
    }
    SUBCASE("remove") {
        CHECK(reg.remove("mem"));
        CHECK_FALSE(reg.contains("mem"));
        CHECK_FALSE(reg.remove("mem"));
        CHECK(reg.create("mem:INBOX").error_value().is(errc::not_found));
        CHECK(add_memory_scheme(reg, world).has_value());
    }
}

TEST_CASE("backend_registry: init runs once, and again after a failure") {
    memory_world world;
    REQUIRE(world.create("INBOX").has_value());
    backend_registry reg;
    int inits = 0;
    int creates = 0;
    bool fail_init = true;
    auto create = [&](std::string_view rest) -> result<any_backend> {
        ++creates;
        return any_backend(memory_backend(world, std::string(rest)));
    };
    auto init = [&]() -> result<void> {
        ++inits;
        if (fail_init) return error{errc::temporary, "init failed"};
        return {};
    };
    REQUIRE(reg.add({"t", "test scheme", "test://"}, create, init).has_value());

    auto first = reg.create("t:INBOX");
    REQUIRE_FALSE(first.has_value());
    CHECK(first.error_value().is(errc::temporary));
    CHECK(first.error_value().message == "init failed");
    CHECK(inits == 1);
    CHECK(creates == 0); // the factory is not called when init fails

    fail_init = false;
    CHECK(reg.create("t:INBOX").has_value());
    CHECK(inits == 2); // retried
    CHECK(reg.create("t:INBOX").has_value());
    CHECK(reg.create("t:Other").has_value());
    CHECK(inits == 2); // and then never again
    CHECK(creates == 3);
    fail_init = true;
    CHECK(reg.create("t:INBOX").has_value()); // a later failure of init is never seen
}

TEST_CASE("backend_registry: schemes lists what was registered, in order") {
    memory_world world;
    backend_registry reg;
    CHECK(reg.schemes().empty());
    auto create = [&](std::string_view rest) -> result<any_backend> {
        return any_backend(memory_backend(world, std::string(rest)));
    };
    REQUIRE(reg.add({"zeta", "last letter", "z://"}, create).has_value());
    REQUIRE(add_memory_scheme(reg, world).has_value());
    auto const s = reg.schemes();
    REQUIRE(s.size() == 2);
    CHECK(s[0].scheme == "zeta");
    CHECK(s[0].description == "last letter");
    CHECK(s[0].name_space == "z://");
    CHECK(s[1].scheme == "mem");
    CHECK_FALSE(s[1].description.empty());
    CHECK(s[1].name_space == "mem:");
}

TEST_CASE("backend_registry: invalid registrations") {
    backend_registry reg;
    auto create = [](std::string_view) -> result<any_backend> {
        return error{errc::unsupported, "never"};
    };
    CHECK(reg.add({"", "empty", ""}, create).error_value().is(errc::invalid_argument));
    CHECK(reg.add({"a:b", "colon", ""}, create).error_value().is(errc::invalid_argument));
    CHECK(reg.add({"ok", "no factory", ""}, {}).error_value().is(errc::invalid_argument));
    CHECK(reg.schemes().empty());
    REQUIRE(reg.add({"ok", "factory error", ""}, create).has_value());
    auto b = reg.create("ok:x");
    REQUIRE_FALSE(b.has_value());
    CHECK(b.error_value().is(errc::unsupported)); // the factory's error, unchanged
}

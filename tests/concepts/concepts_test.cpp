// The concepts are neither too loose nor too strict: the archetypes model them, and each
// one-requirement knock-out does not. The adapters model them too (they also assert it in
// their own headers; repeating it here keeps this file the single list).
#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/any_backend.hpp>
#include <vfolder/concepts.hpp>
#include <vfolder/testing/archetypes.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace vfolder;
using testing::archetype_backend;
using testing::archetype_store;
using testing::backend_drop;
using testing::store_drop;

// ---------------------------------------------------------------- backend
static_assert(backend<archetype_backend<>>);
static_assert(openable_backend<archetype_backend<>>);
static_assert(!backend<archetype_backend<backend_drop::name>>);
static_assert(!backend<archetype_backend<backend_drop::status>>);
static_assert(!backend<archetype_backend<backend_drop::search>>);
static_assert(!backend<archetype_backend<backend_drop::search_within>>);
static_assert(!backend<archetype_backend<backend_drop::changes_since>>);
static_assert(!backend<archetype_backend<backend_drop::fetch>>);
static_assert(!backend<archetype_backend<backend_drop::update_flags>>);
static_assert(!backend<archetype_backend<backend_drop::update_keywords>>);
static_assert(!backend<archetype_backend<backend_drop::expunge>>);
static_assert(!backend<archetype_backend<backend_drop::movable>>);
// The openable knock-outs are still backends, but not openable ones.
static_assert(backend<archetype_backend<backend_drop::open>>);
static_assert(!openable_backend<archetype_backend<backend_drop::open>>);
static_assert(!openable_backend<archetype_backend<backend_drop::close>>);
static_assert(!openable_backend<archetype_backend<backend_drop::is_open>>);

// Neither an unrelated type nor a result of a backend is a backend.
static_assert(!backend<int>);
static_assert(!backend<std::string>);
static_assert(!backend<result<any_backend>>);

// The adapters and the type-erased wrapper.
static_assert(backend<memory_backend> && openable_backend<memory_backend>);
static_assert(backend<any_backend> && openable_backend<any_backend>);
static_assert(!std::copyable<any_backend>);
static_assert(std::constructible_from<any_backend, memory_backend>);
static_assert(std::constructible_from<any_backend, archetype_backend<>>);
static_assert(!std::constructible_from<any_backend, archetype_backend<backend_drop::fetch>>);
static_assert(!std::constructible_from<any_backend, int>);

// ---------------------------------------------------------------- view_store
static_assert(view_store<archetype_store<>>);
static_assert(!view_store<archetype_store<store_drop::load>>);
static_assert(!view_store<archetype_store<store_drop::commit>>);
static_assert(!view_store<archetype_store<store_drop::reset>>);
static_assert(view_store<memory_store>);
static_assert(!view_store<memory_backend>);

// Generic code written against the concept compiles with the archetype: it uses nothing
// beyond the concept (checked in an unevaluated context: the archetype has no bodies).
template <backend B>
auto generic_sync_step(B& b, search_program const& p) {
    auto st = b.status();
    auto ch = b.changes_since(modseq{0});
    auto found = b.search(p, ch.value().changed);
    return b.fetch(found.value(), fetch_fields::received | fetch_fields::flags).has_value() &&
           st.has_value();
}
static_assert(std::same_as<decltype(generic_sync_step(std::declval<archetype_backend<>&>(),
                                                      std::declval<search_program const&>())),
                           bool>);

TEST_CASE("concepts: any_backend forwards to its model and treats non-openable models as open") {
    memory_world world;
    REQUIRE(world.create("INBOX").has_value());
    any_backend b = memory_backend(world, "INBOX");
    CHECK(b.name() == "INBOX");
    CHECK_FALSE(b.is_open());
    REQUIRE(b.open().has_value());
    CHECK(b.is_open());
    auto st = b.status();
    REQUIRE(st.has_value());
    CHECK(st->exists == 0);
    REQUIRE(b.target<memory_backend>() != nullptr);
    CHECK(b.target<memory_backend>()->open_count() == 1);
    b.close();
    CHECK_FALSE(b.is_open());
    world.find("INBOX")->append(mail_time{100});
    auto st2 = b.status();
    REQUIRE(st2.has_value());
    CHECK(st2->exists == 1);
}

namespace {
// A backend that is not openable: memory_backend's backend calls only.
struct plain_backend {
    memory_backend b;
    std::string_view name() const { return b.name(); }
    result<mailbox_status> status() { return b.status(); }
    result<uid_set> search(search_program const& p) { return b.search(p); }
    result<uid_set> search(search_program const& p, uid_set const& w) { return b.search(p, w); }
    result<change_set> changes_since(modseq m) { return b.changes_since(m); }
    result<std::vector<message_record>> fetch(uid_set const& u, fetch_fields f) { return b.fetch(u, f); }
    result<void> update_flags(uid_set const& u, modify_op op, flag_set f) { return b.update_flags(u, op, f); }
    result<void> update_keywords(uid_set const& u, modify_op op, keyword_set const& k) {
        return b.update_keywords(u, op, k);
    }
    result<void> expunge(uid_set const& u) { return b.expunge(u); }
};
static_assert(backend<plain_backend> && !openable_backend<plain_backend>);
} // namespace

TEST_CASE("concepts: closed_status: memory_backend answers while closed, any_backend forwards or says unknown") {
    static_assert(closed_status_backend<memory_backend>);
    static_assert(!closed_status_backend<archetype_backend<>>);
    memory_world world;
    REQUIRE(world.create("INBOX").has_value());
    world.find("INBOX")->append(mail_time{100});
    any_backend b = memory_backend(world, "INBOX");
    REQUIRE_FALSE(b.is_open());
    auto cs = b.closed_status();
    REQUIRE(cs.has_value());
    REQUIRE(cs->has_value());
    CHECK_FALSE(b.is_open()); // it did not open
    REQUIRE(b.open().has_value());
    CHECK(**cs == *b.status()); // O4: what status() answers once open
    b.close();
    REQUIRE(world.remove("INBOX").has_value());
    auto gone = b.closed_status();
    REQUIRE_FALSE(gone.has_value());
    CHECK(gone.error_value().is(errc::not_found));
    // A model without closed_status (nor open/close): "unknown", the engine opens it.
    REQUIRE(world.create("Plain").has_value());
    any_backend plain = plain_backend{memory_backend(world, "Plain")};
    CHECK(plain.is_open());
    auto unknown = plain.closed_status();
    REQUIRE(unknown.has_value());
    CHECK_FALSE(unknown->has_value());
}

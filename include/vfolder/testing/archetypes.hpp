/// \file
/// \brief Archetypes of vfolder's concepts, for people writing their own backends and
/// stores: the smallest types that model `backend`, `openable_backend` and `view_store`,
/// each with one-requirement knock-outs.
///
/// `archetype_backend<>` models `backend`; `archetype_backend<backend_drop::fetch>` lacks
/// exactly `fetch` and must not. `tests/concepts/concepts_test.cpp` asserts both ways, so
/// the concepts are proven neither too loose (a knock-out would still model them) nor too
/// strict (the archetype would not). Instantiating generic code with an archetype proves it
/// uses nothing beyond the concept. The members are declared, never defined: use them in
/// unevaluated contexts only.
#pragma once

#include <vfolder/concepts.hpp>

#include <optional>
#include <string_view>
#include <vector>

VFOLDER_BEGIN_NAMESPACE
namespace testing {

/// \brief Which requirement an archetype lacks.
enum class backend_drop {
    none, name, status, search, search_within, changes_since, fetch, update_flags,
    update_keywords, expunge, movable, open, close, is_open,
};

/// \brief The minimal model of `backend` (and, unless a member is dropped, of
/// `openable_backend`).
template <backend_drop D = backend_drop::none>
struct archetype_backend {
    archetype_backend() = default;
    archetype_backend(archetype_backend&&) requires(D != backend_drop::movable) = default;
    archetype_backend& operator=(archetype_backend&&) requires(D != backend_drop::movable) = default;
    archetype_backend(archetype_backend const&) = delete;
    archetype_backend& operator=(archetype_backend const&) = delete;

    std::string_view name() const requires(D != backend_drop::name);
    result<mailbox_status> status() requires(D != backend_drop::status);
    result<uid_set> search(search_program const&) requires(D != backend_drop::search);
    result<uid_set> search(search_program const&, uid_set const&) requires(D != backend_drop::search_within);
    result<change_set> changes_since(modseq) requires(D != backend_drop::changes_since);
    result<std::vector<message_record>> fetch(uid_set const&, fetch_fields) requires(D != backend_drop::fetch);
    result<void> update_flags(uid_set const&, modify_op, flag_set) requires(D != backend_drop::update_flags);
    result<void> update_keywords(uid_set const&, modify_op, keyword_set const&)
        requires(D != backend_drop::update_keywords);
    result<void> expunge(uid_set const&) requires(D != backend_drop::expunge);

    result<void> open() requires(D != backend_drop::open);
    void close() requires(D != backend_drop::close);
    bool is_open() const requires(D != backend_drop::is_open);
};

/// \brief Which requirement a store archetype lacks.
enum class store_drop { none, load, commit, reset };

/// \brief The minimal model of `view_store`.
template <store_drop D = store_drop::none>
struct archetype_store {
    result<std::optional<view_state>> load() requires(D != store_drop::load);
    result<void> commit(view_delta const&) requires(D != store_drop::commit);
    result<void> reset() requires(D != store_drop::reset);
};

} // namespace testing
VFOLDER_END_NAMESPACE

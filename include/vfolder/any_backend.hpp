/// \file
/// \brief `any_backend`: a type-erased `backend` (and `openable_backend`), so one folder
/// can mix backend types (memory, on-disk, your own) behind one type.
///
/// It owns its model (move-only). A model that is not an `openable_backend` is treated as
/// always open: `open()` succeeds, `close()` does nothing, `is_open()` is true. One virtual
/// call per bulk operation: the erasure costs nothing measurable next to the work.
#pragma once

#include <vfolder/concepts.hpp>

#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

class any_backend {
public:
    /// \brief Wraps `b` (moved in).
    // The not-any_backend test comes first: checking backend<any_backend> while deciding
    // whether any_backend is movable would otherwise recurse.
    template <class B>
        requires(!std::same_as<std::remove_cvref_t<B>, any_backend>) && backend<B>
    any_backend(B b) : self_(std::make_unique<model<B>>(std::move(b))) {} // NOLINT: implicit

    any_backend(any_backend&&) noexcept = default;
    any_backend& operator=(any_backend&&) noexcept = default;

    [[nodiscard]] std::string_view name() const { return self_->name(); }
    result<mailbox_status> status() { return self_->status(); }
    result<uid_set> search(search_program const& p) { return self_->search(p); }
    result<uid_set> search(search_program const& p, uid_set const& within) { return self_->search(p, within); }
    result<change_set> changes_since(modseq m) { return self_->changes_since(m); }
    result<std::vector<message_record>> fetch(uid_set const& u, fetch_fields f) { return self_->fetch(u, f); }
    result<void> update_flags(uid_set const& u, modify_op op, flag_set f) { return self_->update_flags(u, op, f); }
    result<void> update_keywords(uid_set const& u, modify_op op, keyword_set const& k) {
        return self_->update_keywords(u, op, k);
    }
    result<void> expunge(uid_set const& u) { return self_->expunge(u); }
    result<void> open() { return self_->open(); }
    void close() { self_->close(); }
    [[nodiscard]] bool is_open() const { return self_->is_open(); }
    /// \brief The model's `closed_status()`; nullopt for a model without one.
    result<std::optional<mailbox_status>> closed_status() { return self_->closed_status(); }

    /// \brief The wrapped model if it is a `B`, else nullptr.
    template <backend B>
    [[nodiscard]] B* target() noexcept {
        auto* m = dynamic_cast<model<B>*>(self_.get());
        return m ? &m->b : nullptr;
    }

private:
    struct concept_base {
        virtual ~concept_base() = default;
        virtual std::string_view name() const = 0;
        virtual result<mailbox_status> status() = 0;
        virtual result<uid_set> search(search_program const&) = 0;
        virtual result<uid_set> search(search_program const&, uid_set const&) = 0;
        virtual result<change_set> changes_since(modseq) = 0;
        virtual result<std::vector<message_record>> fetch(uid_set const&, fetch_fields) = 0;
        virtual result<void> update_flags(uid_set const&, modify_op, flag_set) = 0;
        virtual result<void> update_keywords(uid_set const&, modify_op, keyword_set const&) = 0;
        virtual result<void> expunge(uid_set const&) = 0;
        virtual result<void> open() = 0;
        virtual void close() = 0;
        virtual bool is_open() const = 0;
        virtual result<std::optional<mailbox_status>> closed_status() = 0;
    };

    template <class B>
    struct model final : concept_base {
        explicit model(B x) : b(std::move(x)) {}
        std::string_view name() const override { return b.name(); }
        result<mailbox_status> status() override { return b.status(); }
        result<uid_set> search(search_program const& p) override { return b.search(p); }
        result<uid_set> search(search_program const& p, uid_set const& w) override { return b.search(p, w); }
        result<change_set> changes_since(modseq m) override { return b.changes_since(m); }
        result<std::vector<message_record>> fetch(uid_set const& u, fetch_fields f) override { return b.fetch(u, f); }
        result<void> update_flags(uid_set const& u, modify_op op, flag_set f) override {
            return b.update_flags(u, op, f);
        }
        result<void> update_keywords(uid_set const& u, modify_op op, keyword_set const& k) override {
            return b.update_keywords(u, op, k);
        }
        result<void> expunge(uid_set const& u) override { return b.expunge(u); }
        result<void> open() override {
            if constexpr (openable_backend<B>) return b.open();
            else return {};
        }
        void close() override {
            if constexpr (openable_backend<B>) b.close();
        }
        bool is_open() const override {
            if constexpr (openable_backend<B>) return static_cast<bool>(b.is_open());
            else return true;
        }
        result<std::optional<mailbox_status>> closed_status() override {
            if constexpr (closed_status_backend<B>) return b.closed_status();
            else return std::optional<mailbox_status>{};
        }
        B b;
    };

    std::unique_ptr<concept_base> self_;
};

static_assert(backend<any_backend>);
static_assert(openable_backend<any_backend>);
static_assert(closed_status_backend<any_backend>);

VFOLDER_END_NAMESPACE

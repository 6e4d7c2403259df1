/// \file
/// \brief `memory_mailbox`: a complete mailbox in memory, with fault injection; the
/// `memory_world` of mailboxes it lives in; and `memory_backend`, the handle that models
/// `vfolder::backend` (and `openable_backend`) over a mailbox of a world, by name.
///
/// A memory mailbox keeps what a real IMAP mailbox has: UIDVALIDITY, UIDNEXT, a 128-bit
/// guid, per-message modseq and HIGHESTMODSEQ, received dates, flags, keywords,
/// Message-ID and size. Its change log answers `changes_since(m)` in O(log N + k),
/// expunges (vanished UIDs) included, until the log is trimmed (`trim_expunge_log`), after
/// which older questions get "expunged: unknown".
///
/// Fault injection (for tests): `fail_next(op, n, err)` makes the next n calls of an
/// operation fail with `err`; `fail_always(op, err)` until `clear_faults()`. A deleted
/// mailbox (`memory_world::remove`) answers `errc::not_found` from every backend call.
#pragma once

#include <vfolder/any_backend.hpp>
#include <vfolder/concepts.hpp>
#include <vfolder/registry.hpp>
#include <vfolder/mail/definition.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/message.hpp>
#include <vfolder/mail/search.hpp>
#include <vfolder/mail/status.hpp>
#include <vfolder/mail/types.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief The backend operations a fault can be injected into.
enum class backend_op : std::uint8_t {
    status, search, changes_since, fetch, update_flags, update_keywords, expunge, open,
};
inline constexpr std::size_t backend_op_count = 8;

/// \brief One message of a `memory_mailbox`.
struct memory_message {
    uid id{};
    modseq mod{};
    mail_time received{};
    flag_set flags;
    keyword_set keywords;
    std::string message_id;
    std::uint64_t size = 0;
};

/// \brief A mailbox in memory. Not thread-safe; copyable (a snapshot).
class memory_mailbox {
public:
    memory_mailbox(std::string name, uid_validity validity, mailbox_guid guid = {})
        : name_(std::move(name)), validity_(validity), guid_(guid) {}

    // ------------------------------------------------------------ host-side API
    [[nodiscard]] std::string const& name() const noexcept { return name_; }
    [[nodiscard]] uid_validity validity() const noexcept { return validity_; }
    [[nodiscard]] mailbox_guid const& guid() const noexcept { return guid_; }
    [[nodiscard]] uid next_uid() const noexcept { return next_uid_; }
    [[nodiscard]] modseq highest_modseq() const noexcept { return highest_; }
    [[nodiscard]] std::span<memory_message const> messages() const noexcept { return msgs_; }
    [[nodiscard]] std::size_t size() const noexcept { return msgs_.size(); }

    /// \brief The message with UID `u`, or nullptr. O(log N).
    [[nodiscard]] memory_message const* find(uid u) const noexcept {
        auto const i = index_of(u);
        return i ? &msgs_[*i] : nullptr;
    }

    /// \brief Appends a message; returns its UID. O(log N) amortised.
    uid append(mail_time received, message_flags f = {}, std::string message_id = {},
               std::uint64_t size = 0) {
        uid const u = next_uid_;
        next_uid_ = next(next_uid_);
        modseq const m = bump();
        msgs_.push_back({u, m, received, f.flags.storable(), std::move(f.keywords),
                         std::move(message_id), size});
        by_mod_.emplace(value(m), value(u));
        return u;
    }

    /// \brief Changes the flags of `u`. Returns false if `u` does not exist. A change that
    /// changes nothing keeps the modseq (rule B5).
    bool modify_flags(uid u, modify_op op, flag_set f) {
        auto const i = index_of(u);
        if (!i) return false;
        auto& m = msgs_[*i];
        flag_set const nf = apply(m.flags, op, f).storable();
        if (nf != m.flags) {
            m.flags = nf;
            touch(m);
        }
        return true;
    }

    /// \brief Changes the keywords of `u`. Returns false if `u` does not exist.
    bool modify_keywords(uid u, modify_op op, keyword_set const& k) {
        auto const i = index_of(u);
        if (!i) return false;
        auto& m = msgs_[*i];
        keyword_set nk = apply(m.keywords, op, k);
        if (nk != m.keywords) {
            m.keywords = std::move(nk);
            touch(m);
        }
        return true;
    }

    /// \brief Expunges `u`. Returns false if it does not exist. O(N) (vector erase).
    bool expunge_one(uid u) {
        auto const i = index_of(u);
        if (!i) return false;
        by_mod_.erase(value(msgs_[*i].mod));
        msgs_.erase(msgs_.begin() + static_cast<std::ptrdiff_t>(*i));
        expunge_log_.push_back({value(bump()), value(u)});
        return true;
    }

    /// \brief Resets UIDVALIDITY: every message gets a new UID (1, 2, ...), as after a
    /// mailbox rebuild; the change log restarts (older questions: "unknown").
    void reset_validity(uid_validity v, std::optional<mailbox_guid> g = std::nullopt) {
        validity_ = v;
        if (g) guid_ = *g;
        by_mod_.clear();
        expunge_log_.clear();
        std::uint32_t n = 0;
        for (auto& m : msgs_) {
            m.id = uid{++n};
            m.mod = bump();
            by_mod_.emplace(value(m.mod), value(m.id));
        }
        next_uid_ = uid{n + 1};
        log_floor_ = highest_;
    }

    /// \brief Forgets expunges at or below `m`: `changes_since` below it answers
    /// "expunged: unknown".
    void trim_expunge_log(modseq m) {
        auto it = std::upper_bound(expunge_log_.begin(), expunge_log_.end(), value(m),
                                   [](std::uint64_t x, auto const& e) { return x < e.first; });
        expunge_log_.erase(expunge_log_.begin(), it);
        log_floor_ = std::max(log_floor_, m);
    }

    // ------------------------------------------------------------ fault injection
    void fail_next(backend_op op, unsigned n, error e) {
        auto& f = faults_[static_cast<std::size_t>(op)];
        f.remaining = n;
        f.always = false;
        f.err = std::move(e);
    }
    void fail_always(backend_op op, error e) {
        auto& f = faults_[static_cast<std::size_t>(op)];
        f.always = true;
        f.err = std::move(e);
    }
    void clear_faults() noexcept {
        for (auto& f : faults_) f = {};
    }
    /// \brief How many times each operation was called (faulted calls included).
    [[nodiscard]] std::uint64_t calls(backend_op op) const noexcept {
        return calls_[static_cast<std::size_t>(op)];
    }
    /// \brief Number of message records read by search/fetch/changes (a cost counter).
    [[nodiscard]] std::uint64_t records_touched() const noexcept { return touched_; }

    /// \brief Counts a call of `op`; returns the injected error if one is due.
    std::optional<error> enter(backend_op op) {
        ++calls_[static_cast<std::size_t>(op)];
        auto& f = faults_[static_cast<std::size_t>(op)];
        if (f.always) return with_name(f.err);
        if (f.remaining > 0) {
            --f.remaining;
            return with_name(f.err);
        }
        return std::nullopt;
    }

    // ------------------------------------------------------------ backend operations
    [[nodiscard]] mailbox_status status_now() const {
        return {static_cast<std::uint32_t>(msgs_.size()), validity_, next_uid_, highest_, guid_};
    }

    [[nodiscard]] uid_set search_now(search_program const& p) {
        uid_set out;
        for (auto const& m : msgs_) {
            ++touched_;
            if (p.matches(meta(m))) out.add(value(m.id));
        }
        return out;
    }

    [[nodiscard]] uid_set search_now(search_program const& p, uid_set const& within) {
        uid_set out;
        visit(within, [&](memory_message const& m) {
            if (p.matches(meta(m))) out.add(value(m.id));
        });
        return out;
    }

    [[nodiscard]] change_set changes_now(modseq since) {
        change_set c;
        c.highest_modseq = highest_;
        std::vector<std::uint32_t> changed;
        for (auto it = by_mod_.upper_bound(value(since)); it != by_mod_.end(); ++it) {
            ++touched_;
            changed.push_back(it->second);
        }
        c.changed.insert_unsorted(std::span<std::uint32_t>(changed));
        if (since < log_floor_) {
            c.expunged = std::nullopt;
        } else {
            uid_set ex;
            std::vector<std::uint32_t> v;
            auto it = std::upper_bound(expunge_log_.begin(), expunge_log_.end(), value(since),
                                       [](std::uint64_t x, auto const& e) { return x < e.first; });
            for (; it != expunge_log_.end(); ++it) v.push_back(it->second);
            ex.insert_unsorted(std::span<std::uint32_t>(v));
            c.expunged = std::move(ex);
        }
        return c;
    }

    [[nodiscard]] std::vector<message_record> fetch_now(uid_set const& uids, fetch_fields fields) {
        std::vector<message_record> out;
        visit(uids, [&](memory_message const& m) {
            message_record r;
            r.id = m.id;
            if (has(fields, fetch_fields::received)) r.received = m.received;
            if (has(fields, fetch_fields::flags)) {
                r.flags = m.flags;
                r.keywords = m.keywords;
            }
            if (has(fields, fetch_fields::size)) r.size = m.size;
            out.push_back(std::move(r));
        });
        return out;
    }

    void update_flags_now(uid_set const& uids, modify_op op, flag_set f) {
        for_each_index(uids, [&](std::size_t i) { modify_flags(msgs_[i].id, op, f); });
    }
    void update_keywords_now(uid_set const& uids, modify_op op, keyword_set const& k) {
        for_each_index(uids, [&](std::size_t i) { modify_keywords(msgs_[i].id, op, k); });
    }
    void expunge_now(uid_set const& uids) {
        std::vector<uid> gone;
        visit(uids, [&](memory_message const& m) { gone.push_back(m.id); });
        for (uid u : gone) expunge_one(u);
    }

    [[nodiscard]] static message_meta meta(memory_message const& m) noexcept {
        return {m.flags, &m.keywords, m.received, m.size};
    }

private:
    struct fault {
        unsigned remaining = 0;
        bool always = false;
        error err;
    };

    error with_name(error e) const {
        e.with_context("for backend mailbox " + name_);
        return e;
    }

    modseq bump() noexcept {
        highest_ = next(highest_);
        return highest_;
    }

    void touch(memory_message& m) {
        by_mod_.erase(value(m.mod));
        m.mod = bump();
        by_mod_.emplace(value(m.mod), value(m.id));
    }

    [[nodiscard]] std::optional<std::size_t> index_of(uid u) const noexcept {
        auto it = std::lower_bound(msgs_.begin(), msgs_.end(), u,
                                   [](memory_message const& m, uid x) { return m.id < x; });
        if (it == msgs_.end() || it->id != u) return std::nullopt;
        return static_cast<std::size_t>(it - msgs_.begin());
    }

    // Calls f(index) for each existing message whose UID is in `uids`, ascending; the
    // callback may modify the message but not add or remove messages.
    template <class F>
    void for_each_index(uid_set const& uids, F&& f) {
        std::size_t pos = 0;
        for (auto const& r : uids) {
            auto it = std::lower_bound(msgs_.begin() + static_cast<std::ptrdiff_t>(pos), msgs_.end(),
                                       uid{r.first},
                                       [](memory_message const& m, uid x) { return m.id < x; });
            pos = static_cast<std::size_t>(it - msgs_.begin());
            for (; pos < msgs_.size() && value(msgs_[pos].id) <= r.last; ++pos) {
                ++touched_;
                f(pos);
            }
            if (pos == msgs_.size()) return;
        }
    }

    template <class F>
    void visit(uid_set const& uids, F&& f) {
        for_each_index(uids, [&](std::size_t i) { f(static_cast<memory_message const&>(msgs_[i])); });
    }

    std::string name_;
    uid_validity validity_;
    mailbox_guid guid_;
    uid next_uid_{1};
    modseq highest_{0};
    modseq log_floor_{0};
    std::vector<memory_message> msgs_;                 // ascending UID
    std::map<std::uint64_t, std::uint32_t> by_mod_;    // modseq -> UID, one per message
    std::vector<std::pair<std::uint64_t, std::uint32_t>> expunge_log_; // ascending modseq
    std::array<fault, backend_op_count> faults_{};
    std::array<std::uint64_t, backend_op_count> calls_{};
    std::uint64_t touched_ = 0;
};

/// \brief A set of memory mailboxes with hierarchical names (`/` separated).
///
/// Every mailbox created gets a UIDVALIDITY and a guid never used before in this world, so
/// a re-created mailbox is always recognisably new.
class memory_world {
public:
    explicit memory_world(std::uint32_t first_validity = 1) : next_validity_(first_validity) {}

    /// \brief Creates mailbox `name`. Fails with `already_exists` if it exists, with
    /// `invalid_argument` for an empty name or one with empty hierarchy levels.
    result<memory_mailbox*> create(std::string_view name) {
        if (name.empty() || name.front() == '/' || name.back() == '/' ||
            name.find("//") != std::string_view::npos)
            return error{errc::invalid_argument, "Invalid mailbox name: " + std::string(name)};
        auto it = boxes_.find(name);
        if (it != boxes_.end())
            return error{errc::already_exists, "Mailbox already exists"};
        auto box = std::make_unique<memory_mailbox>(std::string(name), fresh_validity(), fresh_guid());
        auto* p = box.get();
        boxes_.emplace(std::string(name), std::move(box));
        return p;
    }

    /// \brief Deletes mailbox `name`. Fails with `not_found` if it does not exist.
    result<void> remove(std::string_view name) {
        auto it = boxes_.find(name);
        if (it == boxes_.end()) return error{errc::not_found, "Mailbox doesn't exist: " + std::string(name)};
        boxes_.erase(it);
        return {};
    }

    /// \brief The mailbox `name`, or nullptr.
    [[nodiscard]] memory_mailbox* find(std::string_view name) noexcept {
        auto it = boxes_.find(name);
        return it == boxes_.end() ? nullptr : it->second.get();
    }
    [[nodiscard]] memory_mailbox const* find(std::string_view name) const noexcept {
        auto it = boxes_.find(name);
        return it == boxes_.end() ? nullptr : it->second.get();
    }

    /// \brief Names of all mailboxes, sorted bytewise.
    [[nodiscard]] std::vector<std::string> list() const {
        std::vector<std::string> out;
        out.reserve(boxes_.size());
        for (auto const& [n, b] : boxes_) out.push_back(n);
        return out;
    }

    /// \brief Names matching `pattern` (`*` any characters, `%` any but `/`), sorted.
    [[nodiscard]] std::vector<std::string> list(std::string_view pattern) const {
        std::vector<std::string> out;
        for (auto const& [n, b] : boxes_)
            if (detail::glob_match(pattern, n)) out.push_back(n);
        return out;
    }

    /// \brief A UIDVALIDITY never handed out before in this world.
    uid_validity fresh_validity() noexcept { return uid_validity{next_validity_++}; }

    /// \brief A guid never handed out before in this world.
    mailbox_guid fresh_guid() noexcept {
        mailbox_guid g{};
        std::uint64_t x = ++guid_counter_ * 0x9E3779B97F4A7C15ull;
        for (std::size_t i = 0; i < 8; ++i) g[i] = static_cast<std::uint8_t>(x >> (8 * i));
        for (std::size_t i = 0; i < 8; ++i) g[8 + i] = static_cast<std::uint8_t>(guid_counter_ >> (8 * i));
        return g;
    }

private:
    std::map<std::string, std::unique_ptr<memory_mailbox>, std::less<>> boxes_;
    std::uint32_t next_validity_;
    std::uint64_t guid_counter_ = 0;
};

/// \brief The `backend` over the mailbox named `name` of a `memory_world`: every call
/// looks the mailbox up, so a deleted mailbox answers `not_found` and a re-created one is
/// seen with its new identity. Also an `openable_backend` (opening checks existence and
/// counts; the engine's open-backend limit is tested with it).
class memory_backend {
public:
    memory_backend(memory_world& world, std::string name) : world_(&world), name_(std::move(name)) {}

    [[nodiscard]] std::string_view name() const noexcept { return name_; }

    result<void> open() {
        auto* b = world_->find(name_);
        if (!b) return not_found();
        if (auto e = b->enter(backend_op::open)) return std::move(*e);
        if (!open_) ++opens_;
        open_ = true;
        return {};
    }
    void close() noexcept { open_ = false; }
    [[nodiscard]] bool is_open() const noexcept { return open_; }
    /// \brief How many times the backend went from closed to open.
    [[nodiscard]] std::uint64_t open_count() const noexcept { return opens_; }

    result<mailbox_status> status() {
        return call(backend_op::status, [](memory_mailbox& b) { return b.status_now(); });
    }
    /// \brief `status()` without opening (rule O4): like a mailbox list index.
    result<std::optional<mailbox_status>> closed_status() {
        return call(backend_op::status, [](memory_mailbox& b) { return std::optional<mailbox_status>(b.status_now()); });
    }
    result<uid_set> search(search_program const& p) {
        return call(backend_op::search, [&](memory_mailbox& b) { return b.search_now(p); });
    }
    result<uid_set> search(search_program const& p, uid_set const& within) {
        return call(backend_op::search, [&](memory_mailbox& b) { return b.search_now(p, within); });
    }
    result<change_set> changes_since(modseq since) {
        return call(backend_op::changes_since, [&](memory_mailbox& b) { return b.changes_now(since); });
    }
    result<std::vector<message_record>> fetch(uid_set const& uids, fetch_fields fields) {
        return call(backend_op::fetch, [&](memory_mailbox& b) { return b.fetch_now(uids, fields); });
    }
    result<void> update_flags(uid_set const& uids, modify_op op, flag_set f) {
        return call_void(backend_op::update_flags, [&](memory_mailbox& b) { b.update_flags_now(uids, op, f); });
    }
    result<void> update_keywords(uid_set const& uids, modify_op op, keyword_set const& k) {
        return call_void(backend_op::update_keywords, [&](memory_mailbox& b) { b.update_keywords_now(uids, op, k); });
    }
    result<void> expunge(uid_set const& uids) {
        return call_void(backend_op::expunge, [&](memory_mailbox& b) { b.expunge_now(uids); });
    }

    /// \brief The mailbox this handle names, or nullptr when it does not exist.
    [[nodiscard]] memory_mailbox* mailbox() const noexcept { return world_->find(name_); }

private:
    error not_found() const {
        return error{errc::not_found, "Mailbox doesn't exist"}.with_context("for backend mailbox " + name_);
    }
    template <class F>
    auto call(backend_op op, F&& f) -> result<decltype(f(std::declval<memory_mailbox&>()))> {
        auto* b = world_->find(name_);
        if (!b) return not_found();
        if (auto e = b->enter(op)) return std::move(*e);
        return f(*b);
    }
    template <class F>
    result<void> call_void(backend_op op, F&& f) {
        auto* b = world_->find(name_);
        if (!b) return not_found();
        if (auto e = b->enter(op)) return std::move(*e);
        f(*b);
        return {};
    }

    memory_world* world_;
    std::string name_;
    bool open_ = false;
    std::uint64_t opens_ = 0;
};

static_assert(backend<memory_backend>);
static_assert(openable_backend<memory_backend>);
static_assert(closed_status_backend<memory_backend>);

/// \brief A folder's `backend_provider` over a `memory_world`: lists its mailboxes and
/// makes a `memory_backend` for an existing one (`not_found` otherwise).
class memory_provider {
public:
    explicit memory_provider(memory_world& world) noexcept : world_(&world) {}
    [[nodiscard]] std::vector<std::string> list() const { return world_->list(); }
    result<memory_backend> make(std::string_view name) const {
        if (!world_->find(name))
            return error{errc::not_found, "Mailbox doesn't exist: " + std::string(name)};
        return memory_backend(*world_, std::string(name));
    }
    [[nodiscard]] memory_world& world() const noexcept { return *world_; }

private:
    memory_world* world_;
};

/// \brief Registers the scheme "mem" in `reg`: `mem:NAME` creates a `memory_backend` over
/// mailbox NAME of `world` (which must outlive the backends). The mailbox need not exist
/// yet: a backend of a missing mailbox answers `not_found`, like a deleted one.
inline result<void> add_memory_scheme(backend_registry& reg, memory_world& world) {
    return reg.add({"mem", "mailboxes in memory (vfolder::memory_world)", "mem:"},
                   [&world](std::string_view name) -> result<any_backend> {
                       if (name.empty())
                           return error{errc::invalid_argument, "mem: URI without a mailbox name"};
                       return any_backend(memory_backend(world, std::string(name)));
                   });
}

VFOLDER_END_NAMESPACE

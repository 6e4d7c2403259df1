/// \file
/// \brief `folder`: a virtual folder over backends, kept in sync in both directions.
///
/// Synopsis
/// \code
///   auto f = folder<Provider, Store>::open(definition, provider, store, options);
///   auto report = f->sync(sync_flags::reopen);      // SELECT semantics: applies pending removes
///   f->store_flags(vuids, modify_op::add, system_flag::seen);   // queued, applied at next sync
///   f->sync();                                       // NOOP/IDLE semantics: removals delayed
///   f->for_each([](folder_message const& m) { ... });  // vuid order
/// \endcode
///
/// A `Provider` lists the mailboxes that exist (`list()`) and makes a backend for a name
/// (`make(name)` → `result<Backend>`, Backend a `vfolder::backend`). The `Store` is a
/// `vfolder::view_store`. The behaviour is SEMANTICS.md §3 and §7 without Dovecot's bugs;
/// docs/engine.md has the details and the differences.
#pragma once

#include <vfolder/concepts.hpp>
#include <vfolder/core/seq_range_set.hpp>
#include <vfolder/core/uid_map.hpp>
#include <vfolder/detail/interpolation_search.hpp>
#include <vfolder/mail/definition.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/view_state.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief How a sync treats messages that stopped matching.
enum class sync_flags : std::uint8_t {
    none = 0,
    expunge = 1u << 0, ///< client EXPUNGE: \Deleted messages are expunged, pending removes applied
    reopen = 1u << 1,  ///< open/SELECT: pending removes applied, backend patterns re-expanded
    fast = 1u << 2,    ///< accepted for API compatibility; a sync is always complete
    refresh = 1u << 3, ///< re-expand the backend patterns (pick up created/deleted backends)
};
[[nodiscard]] constexpr sync_flags operator|(sync_flags a, sync_flags b) noexcept {
    return static_cast<sync_flags>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
[[nodiscard]] constexpr bool has(sync_flags set, sync_flags f) noexcept {
    return (static_cast<std::uint8_t>(set) & static_cast<std::uint8_t>(f)) != 0;
}

/// \brief What one sync changed in the view: what an IMAP server turns into EXPUNGE,
/// EXISTS and FETCH FLAGS responses. All sets hold virtual UIDs.
struct sync_report {
    uid_set expunged;       ///< removed from the view
    uid_set added;          ///< new in the view
    uid_set flags_changed;  ///< flags or keywords changed (not in `added` or `expunged`)
    [[nodiscard]] bool empty() const noexcept {
        return expunged.empty() && added.empty() && flags_changed.empty();
    }
};

/// \brief The status of a virtual folder.
struct folder_status {
    uid_validity validity{};
    uid uid_next{1};
    std::uint32_t messages = 0;
    friend bool operator==(folder_status const&, folder_status const&) = default;
};

/// \brief One message of the view, as the folder shows it.
struct folder_message {
    uid vuid{};
    std::string_view backend;  ///< the backend mailbox name
    uid backend_uid{};
    flag_set flags;
    keyword_set const* keywords = nullptr; ///< never null; valid until the folder next syncs or moves
};

/// \brief What a folder needs to find its backends.
template <class P>
concept backend_provider = requires(P& p, std::string_view name) {
    { p.list() } -> std::convertible_to<std::vector<std::string>>;
    typename decltype(p.make(name))::value_type;
    requires backend<typename decltype(p.make(name))::value_type>;
    { p.make(name) } -> std::same_as<result<typename decltype(p.make(name))::value_type>>;
};

template <backend_provider P>
using provider_backend_t = typename decltype(std::declval<P&>().make(std::string_view{}))::value_type;

/// \brief Options of a folder.
struct folder_options {
    /// The folder's own name: a wildcard never matches it; naming it explicitly is a loop.
    std::string self_name;
    /// At most this many openable backends are kept open (the least recently used idle
    /// one without pending removes is closed first).
    std::size_t max_open_backends = 64;
    /// Plan the backends of a sync concurrently (std::async). The result is identical to
    /// a sequential sync. Requires backends that may be used from different threads at the
    /// same time (each backend by one thread at a time).
    bool parallel = false;
    /// Re-expand the backend patterns at every sync, not only at `reopen`: backends created
    /// or deleted meanwhile are picked up (Dovecot can't: "reopen the virtual mailbox").
    bool refresh_backends_on_sync = false;
    /// Gives the UIDVALIDITY of a new folder; `previous` is the last one this folder had
    /// (0 if unknown) and must not be returned. Default: the current time in seconds.
    std::function<uid_validity(uid_validity previous)> make_validity;
};

namespace detail {
// FNV-1a: identifies the definition the stored records were made for.
[[nodiscard]] inline std::uint64_t fnv1a(std::string_view s) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ull;
    }
    return h;
}

[[nodiscard]] inline uid_validity default_validity(uid_validity previous) {
    auto const now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    auto v = static_cast<std::uint32_t>(now);
    if (v == 0) v = 1;
    if (v <= value(previous)) v = value(previous) + 1;
    // Never the same value twice in a process: a folder rebuilt within the second (its
    // old UIDVALIDITY unknown, previous == 0) must not get its old one back.
    static std::atomic<std::uint32_t> last{0};
    std::uint32_t l = last.load();
    do {
        if (v <= l) v = l + 1;
    } while (!last.compare_exchange_weak(l, v));
    return uid_validity{v};
}

template <class B>
concept has_open = openable_backend<B>;

// The distinct keyword sets of a folder's messages, each stored once and named by a
// 32-bit index (0: the empty set), reference-counted: a folder's records stay small
// (most messages share one of a few sets), and a set no record uses is freed.
class keyword_table {
public:
    keyword_table() : sets_(1), refs_(1, 0) {}

    [[nodiscard]] keyword_set const& get(std::uint32_t i) const noexcept { return sets_[i]; }

    // The index of `k`, one more reference to it.
    [[nodiscard]] std::uint32_t acquire(keyword_set const& k) {
        if (k.empty()) return 0;
        auto it = index_.find(k);
        if (it != index_.end()) {
            ++refs_[it->second];
            return it->second;
        }
        std::uint32_t i;
        if (!free_.empty()) {
            i = free_.back();
            free_.pop_back();
            sets_[i] = k;
        } else {
            i = static_cast<std::uint32_t>(sets_.size());
            sets_.push_back(k);
            refs_.push_back(0);
        }
        refs_[i] = 1;
        index_.emplace(k, i);
        return i;
    }
    // Drops one reference to index `i`; the set is freed with the last one.
    void release(std::uint32_t i) {
        if (i == 0 || --refs_[i] != 0) return;
        index_.erase(sets_[i]);
        sets_[i] = keyword_set{};
        free_.push_back(i);
    }
    [[nodiscard]] std::size_t distinct() const noexcept { return index_.size(); }

private:
    std::deque<keyword_set> sets_;          // stable addresses: folder_message points here
    std::vector<std::uint32_t> refs_;
    std::map<keyword_set, std::uint32_t> index_;
    std::vector<std::uint32_t> free_;
};
} // namespace detail

/// \brief A virtual folder: the messages of its backends that match its definition.
template <backend_provider Provider, view_store Store>
class folder {
public:
    using backend_type = provider_backend_t<Provider>;

    /// \brief Opens the folder: loads the stored state (a broken one is discarded and the
    /// folder rebuilt with a new UIDVALIDITY), expands the backend patterns and makes the
    /// backends. Talks to no backend beyond `make`; the first `sync` does the work.
    /// Errors: a backend that cannot be made for another reason than `not_found` or
    /// `permission` (named in the message); a definition naming the folder itself
    /// (`not_possible`); a store that cannot be read or reset.
    [[nodiscard]] static result<folder> open(folder_definition def, Provider provider, Store store,
                                             folder_options opt = {}) {
        folder f(std::move(def), std::move(provider), std::move(store), std::move(opt));
        if (auto r = f.load(); !r) return std::move(r).error_value();
        if (auto r = f.expand_backends(); !r) return std::move(r).error_value();
        return f;
    }

    folder(folder&&) noexcept = default;
    folder& operator=(folder&&) noexcept = default;

    // ------------------------------------------------------------ the view
    [[nodiscard]] folder_status status() const noexcept {
        return {header_.validity, header_.next_uid, static_cast<std::uint32_t>(recs_.size() - dead_)};
    }
    [[nodiscard]] std::size_t size() const noexcept { return recs_.size() - dead_; }
    [[nodiscard]] folder_definition const& definition() const noexcept { return def_; }
    /// \brief The view store (for store-specific calls; committing through it directly
    /// would break the folder's view).
    [[nodiscard]] Store& store() noexcept { return store_; }

    /// \brief Calls `f(folder_message const&)` for every message, ascending vuid. O(N).
    template <class F>
    void for_each(F&& f) const {
        for (auto const& r : recs_)
            if (r.alive) f(to_message(r));
    }

    /// \brief The message with virtual UID `vuid`. O(log N).
    [[nodiscard]] std::optional<folder_message> find(uid vuid) const {
        auto const* r = find_rec(vuid);
        if (!r) return std::nullopt;
        return to_message(*r);
    }

    /// \brief The message at sequence number `n` (1-based). O(1) unless messages were
    /// expunged since the last compaction, then O(N).
    [[nodiscard]] std::optional<folder_message> at(seqno n) const {
        auto const i = value(n);
        if (i == 0 || i > size()) return std::nullopt;
        if (dead_ == 0) return to_message(recs_[i - 1]);
        std::uint32_t k = 0;
        for (auto const& r : recs_)
            if (r.alive && ++k == i) return to_message(r);
        return std::nullopt;
    }

    /// \brief The virtual UIDs of backend `name`'s UIDs `uids` (unmapped ones skipped).
    [[nodiscard]] uid_set to_virtual(std::string_view name, uid_set const& uids) const {
        auto const* b = find_box(name);
        return b ? b->members.translate(uids) : uid_set{};
    }
    /// \brief One virtual UID per value of `uids`, 0 for unmapped ones.
    [[nodiscard]] std::vector<std::uint32_t> to_virtual_each(std::string_view name, uid_set const& uids) const {
        auto const* b = find_box(name);
        if (!b) return std::vector<std::uint32_t>(uids.count(), 0);
        return b->members.translate_each(uids);
    }

    /// \brief The backend mailbox names, in mailbox-id order; optionally only those with
    /// messages in the view.
    [[nodiscard]] std::vector<std::string> backends(bool only_with_messages = false) const {
        std::vector<std::string> out;
        for (auto const& b : boxes_)
            if (!b.deleted && (!only_with_messages || !b.members.empty())) out.push_back(b.name);
        return out;
    }
    /// \brief The backend object of `name`, or nullptr.
    [[nodiscard]] backend_type* backend_of(std::string_view name) noexcept {
        auto* b = find_box(name);
        return b && b->backend ? &*b->backend : nullptr;
    }
    /// \brief The pending removes (backend UIDs) of backend `name`.
    [[nodiscard]] uid_set pending_removes(std::string_view name) const {
        auto const* b = find_box(name);
        return b ? b->pending : uid_set{};
    }

    // ------------------------------------------------------------ view-side changes
    /// \brief Queues a flag change of the messages `vuids`; applied to their backends at
    /// the next sync, grouped per backend, writes that change nothing left out.
    void store_flags(uid_set const& vuids, modify_op op, flag_set flags) {
        queue_.push_back({change_kind::flags, vuids, op, flags.storable(), {}});
    }
    /// \brief Queues a keyword change, like `store_flags`.
    void store_keywords(uid_set const& vuids, modify_op op, keyword_set keywords) {
        queue_.push_back({change_kind::keywords, vuids, op, {}, std::move(keywords)});
    }
    /// \brief Queues the expunge of `vuids` in their backends (UID EXPUNGE).
    void expunge(uid_set const& vuids) { queue_.push_back({change_kind::expunge, vuids, {}, {}, {}}); }

    // ------------------------------------------------------------ sync
    /// \brief Brings the view and the backends in sync (see the file comment).
    /// A failing backend fails the sync with its error; the committed state and the view
    /// stay as they were (view-side changes already written to backends stay written and
    /// are seen by the next sync).
    result<sync_report> sync(sync_flags flags = sync_flags::none) {
        if (!reload_) return sync_once(flags);
        // A commit failed: reload what the store holds first. If this sync fails too, the
        // view goes back to the one the client saw, and the next sync reloads again.
        loaded_part seen;
        if (auto r = reload(seen); !r) return std::move(r).error_value();
        auto r = sync_once(flags);
        if (r) reload_ = false;
        else unload(seen);
        return r;
    }

private:
    result<sync_report> sync_once(sync_flags flags) {
        if (has(flags, sync_flags::reopen) || has(flags, sync_flags::refresh) || opt_.refresh_backends_on_sync) {
            if (auto r = expand_backends(); !r) return std::move(r).error_value();
        }
        if (auto r = push_view_changes(has(flags, sync_flags::expunge)); !r) return std::move(r).error_value();

        bool const apply_pending = has(flags, sync_flags::expunge) || has(flags, sync_flags::reopen);
        std::vector<box_plan> plans(boxes_.size());
        if (!opt_.parallel || boxes_.size() < 2) {
            for (std::size_t i = 0; i < boxes_.size(); ++i) {
                if (!prepare_box(boxes_[i], plans[i])) continue;
                if (auto r = open_box(boxes_[i], plans[i], apply_pending); !r) return std::move(r).error_value();
                if (plans[i].drop || plans[i].unchanged) continue;
                if (auto r = plan_box(boxes_[i], plans[i], apply_pending); !r) return std::move(r).error_value();
            }
        } else {
            // Backends are independent until the ordering step: plan them concurrently, in
            // batches that fit the open-backend limit (opening stays sequential: the LRU
            // bookkeeping is shared). The commit is sequential, so the result is identical.
            std::size_t const batch = std::max<std::size_t>(1, opt_.max_open_backends);
            for (std::size_t start = 0; start < boxes_.size(); start += batch) {
                std::size_t const end = std::min(boxes_.size(), start + batch);
                std::vector<std::future<result<void>>> work;
                std::vector<std::size_t> index;
                // Backends opened for this batch are being planned: never LRU victims.
                std::uint64_t const batch_tick = tick_ + 1;
                for (std::size_t i = start; i < end; ++i) {
                    if (!prepare_box(boxes_[i], plans[i])) continue;
                    if (auto r = open_box(boxes_[i], plans[i], apply_pending, batch_tick); !r)
                        return std::move(r).error_value();
                    if (plans[i].drop || plans[i].unchanged) continue;
                    index.push_back(i);
                    work.push_back(std::async(std::launch::async, [this, i, &plans, apply_pending] {
                        return plan_box(boxes_[i], plans[i], apply_pending);
                    }));
                }
                std::optional<error> first;
                for (auto& w : work) { // wait for all, report the first failure in box order
                    auto r = w.get();
                    if (!r && !first) first = std::move(r).error_value();
                }
                if (first) return std::move(*first);
            }
        }
        auto report = commit(plans);
        // Backends that stopped having pending removes may leave the limit exceeded.
        close_lru(opt_.max_open_backends, nullptr, 0);
        return report;
    }

    enum class change_kind : std::uint8_t { flags, keywords, expunge };
    struct view_change {
        change_kind kind;
        uid_set vuids;
        modify_op op;
        flag_set flags;
        keyword_set keywords;
    };

    // One message of the view: 20 bytes; its keyword set is interned in `kw_`.
    struct rec {
        uid vuid;
        mailbox_id box;
        uid real;
        std::uint32_t kw = 0; // keyword_table index (0: none)
        flag_set flags;
        bool alive = true;
    };

    struct box {
        mailbox_id id = 0;
        std::string name;
        std::size_t group = 0;
        std::optional<backend_type> backend;
        uid_map<std::uint32_t> members;              // real -> vuid of the box's messages in the view
        uid_set pending;                             // stopped matching; removal delayed
        std::optional<backend_sync_record> saved;    // as of the last committed sync
        bool deleted = false;                        // found deleted; skipped until reopen
        bool forget = false;                         // no longer in the definition: drop at commit
        bool resync = false;                         // answered errc::inconsistent: compare in full
        std::uint64_t used = 0;                      // LRU tick
    };

    struct add_item { // one message entering the view, as the date sort sees it
        mail_time received;
        uid real;
        std::uint32_t box_index; // into boxes_ / plans
        std::uint32_t pos;       // into plans[box_index].adds
    };

    struct box_plan {
        bool changed = false;       // the sync record changes
        bool drop = false;          // forget the box (deleted or gone)
        bool unchanged = false;     // closed and unchanged (closed_status): not opened
        bool full = false;          // planned by a full comparison (clears box::resync at commit)
        uid_set erase;              // real UIDs leaving the view now
        std::vector<message_record> adds;                 // entering, ascending UID, fetched
        std::vector<uid> add_vuids;                       // at commit: the vuid of each of adds
        std::vector<std::pair<uid, message_record>> updates; // vuid -> new flags
        uid_set pending;
        backend_sync_record record;
    };

    folder(folder_definition def, Provider provider, Store store, folder_options opt)
        : def_(std::move(def)), provider_(std::move(provider)), store_(std::move(store)),
          opt_(std::move(opt)), def_id_(detail::fnv1a(def_.to_text())) {
        if (!opt_.make_validity) opt_.make_validity = detail::default_validity;
        if (opt_.max_open_backends == 0) opt_.max_open_backends = 1;
    }

    // ------------------------------------------------------------ open
    // `reuse`: the UIDVALIDITY to give a folder the store holds nothing of (a reload after
    // a first commit that failed); 0: a new one.
    result<void> load(uid_validity reuse = {}) {
        auto st = store_.load();
        std::optional<view_state> state;
        uid_validity previous{};
        if (!st) {
            if (!st.error_value().is(errc::corrupted)) return st.error_value();
            // Broken: discard and rebuild, never trust (S2). A new UIDVALIDITY follows.
            if (auto r = store_.reset(); !r) return r;
            rebuild_all_ = true;
        } else {
            state = std::move(*st);
        }
        if (!state) {
            header_.validity = value(reuse) != 0 && !rebuild_all_ ? reuse : opt_.make_validity(previous);
            header_.next_uid = uid{1};
            header_.definition_id = def_id_;
            header_dirty_ = true;
            rebuild_all_ = true;
            return {};
        }
        header_ = state->header;
        if (header_.definition_id != def_id_) {
            // The search programs changed: every record goes, every match comes back with a
            // new vuid; UIDVALIDITY stays (SEMANTICS §7.5).
            for (auto const& m : state->messages) orphan_vuids_.add(value(m.vuid));
            header_.definition_id = def_id_;
            header_dirty_ = true;
            rebuild_all_ = true;
            // Forget the backend records so that every backend is searched afresh.
            for (auto const& b : state->backends) forgotten_.push_back(b.box);
            return {};
        }
        for (auto const& b : state->backends) {
            box x;
            x.id = b.box;
            x.name = b.name;
            x.saved = b;
            x.pending = b.pending_removes;
            boxes_.push_back(std::move(x));
        }
        // Group the records per box to build each uid_map in one bulk pass per box.
        std::vector<std::pair<std::uint64_t, std::uint32_t>> keys;  // (box << 32 | real), vuid
        keys.reserve(state->messages.size());
        recs_.reserve(state->messages.size());
        for (auto const& m : state->messages) {
            recs_.push_back({m.vuid, m.box, m.real_uid, kw_.acquire(m.keywords), m.flags, true});
            if (m.flags.contains(system_flag::deleted)) deleted_vuids_.add(value(m.vuid));
            keys.emplace_back((std::uint64_t{m.box} << 32) | value(m.real_uid), value(m.vuid));
        }
        std::sort(keys.begin(), keys.end());
        std::size_t i = 0;
        while (i < keys.size()) {
            auto const id = static_cast<mailbox_id>(keys[i].first >> 32);
            box* b = find_box_id(id);
            std::size_t j = i;
            while (j < keys.size() && (keys[j].first >> 32) == id) ++j;
            if (b) {
                b->members.reserve(j - i);
                for (std::size_t k = i; k < j; ++k)
                    b->members.insert(static_cast<std::uint32_t>(keys[k].first), keys[k].second);
            }
            i = j;
        }
        return {};
    }

    // The state load() builds, swapped out and back by reload().
    struct loaded_part {
        view_header header;
        bool header_dirty = false;
        bool rebuild_all = false;
        std::vector<mailbox_id> forgotten;
        uid_set orphans;
        std::vector<box> boxes;
        std::vector<rec> recs;
        detail::keyword_table kw;
        std::size_t dead = 0;
        uid_set deleted;
    };
    void swap_loaded(loaded_part& p) noexcept {
        using std::swap;
        swap(header_, p.header);
        swap(header_dirty_, p.header_dirty);
        swap(rebuild_all_, p.rebuild_all);
        swap(forgotten_, p.forgotten);
        swap(orphan_vuids_, p.orphans);
        swap(boxes_, p.boxes);
        swap(recs_, p.recs);
        swap(kw_, p.kw);
        swap(dead_, p.dead);
        swap(deleted_vuids_, p.deleted);
    }
    // After a failed commit: the store may hold the failed commit or not. The view is
    // rebuilt from what the store holds (O(N), only after a failure), and what differs
    // from the view the client saw (left in `old`) goes into the next sync report. On
    // failure nothing changes.
    result<void> reload(loaded_part& old) {
        swap_loaded(old);
        if (auto r = load(old.header.validity); !r) {
            swap_loaded(old);
            return r;
        }
        // The boxes stay those of the view (a reload does not re-expand the patterns): a
        // stored box takes its backend and flags from the box of the same id; a box the
        // store does not hold (not committed yet) comes back without messages.
        for (auto& b : boxes_) {
            auto it = std::find_if(old.boxes.begin(), old.boxes.end(), [&](box const& o) { return o.id == b.id; });
            if (it == old.boxes.end()) {
                b.forget = true; // unknown to this object: its messages leave
                continue;
            }
            b.backend = std::exchange(it->backend, std::nullopt);
            b.group = it->group;
            b.deleted = it->deleted;
            b.forget = it->forget;
            b.resync = it->resync;
            b.used = it->used;
        }
        std::vector<box> extra; // added after the loop: find_box_id needs boxes_ sorted
        for (auto& o : old.boxes) {
            if (find_box_id(o.id)) continue;
            // Stored before but not now: a failed commit that landed dropped it, found
            // deleted (skipped until the next reopen, as after a successful commit) or
            // forgotten (gone).
            bool const dropped = o.saved.has_value() && !o.deleted;
            if (dropped && o.forget) continue;
            box x;
            x.id = o.id;
            x.name = o.name;
            x.group = o.group;
            x.backend = std::exchange(o.backend, std::nullopt);
            x.deleted = o.deleted || dropped;
            x.forget = o.forget;
            x.resync = o.resync;
            x.used = o.used;
            extra.push_back(std::move(x));
        }
        if (!extra.empty()) {
            std::move(extra.begin(), extra.end(), std::back_inserter(boxes_));
            std::sort(boxes_.begin(), boxes_.end(), [](box const& a, box const& b) { return a.id < b.id; });
        }
        if (old.header.highest_box > header_.highest_box) { // ids handed out since: never again
            header_.highest_box = old.header.highest_box;
            header_dirty_ = true;
        }
        // What the client saw (old) against what is committed (recs_): both ascending vuid.
        carry_ = {};
        auto o = old.recs.begin();
        auto n = recs_.begin();
        while (o != old.recs.end() || n != recs_.end()) {
            if (o != old.recs.end() && !o->alive) { ++o; continue; }
            if (n != recs_.end() && !n->alive) { ++n; continue; }
            if (n == recs_.end() || (o != old.recs.end() && o->vuid < n->vuid)) {
                carry_.expunged.add(value(o->vuid));
                ++o;
            } else if (o == old.recs.end() || n->vuid < o->vuid) {
                carry_.added.add(value(n->vuid));
                ++n;
            } else {
                if (o->flags != n->flags || old.kw.get(o->kw) != kw_.get(n->kw)) carry_.flags_changed.add(value(n->vuid));
                ++o;
                ++n;
            }
        }
        return {};
    }
    // Undoes reload(old) after a failed sync: the view the client saw comes back, with
    // the backend objects and what the failed sync's expansion found (new boxes, boxes
    // to forget), as a failed sync without a reload keeps them.
    void unload(loaded_part& old) {
        for (auto& b : boxes_) {
            auto it = std::find_if(old.boxes.begin(), old.boxes.end(), [&](box const& o) { return o.id == b.id; });
            if (it == old.boxes.end()) {
                box x;
                x.id = b.id;
                x.name = b.name;
                x.group = b.group;
                x.backend = std::exchange(b.backend, std::nullopt);
                x.forget = b.forget;
                x.used = b.used;
                old.boxes.push_back(std::move(x));
                continue;
            }
            if (!it->backend) it->backend = std::exchange(b.backend, std::nullopt);
            it->group = b.group;
            it->forget = b.forget;
            it->used = b.used;
        }
        std::stable_sort(old.boxes.begin(), old.boxes.end(), [](box const& a, box const& b) { return a.id < b.id; });
        if (header_.highest_box > old.header.highest_box) {
            old.header.highest_box = header_.highest_box;
            old.header_dirty = true;
        }
        swap_loaded(old);
        carry_ = {};
    }

    // Expands the definition over the existing mailboxes: new names get new ids, boxes
    // that are no longer matched are forgotten (their messages leave at the next sync).
    result<void> expand_backends() {
        std::vector<std::string> names = provider_.list();
        for (auto const& g : def_.groups())
            for (auto const& p : g.patterns)
                if (!p.exclude && !p.is_wildcard() && !opt_.self_name.empty() && p.pattern == opt_.self_name)
                    return error{errc::not_possible, "virtual folder " + opt_.self_name + " lists itself as a backend"};
        auto const exp = def_.expand(names, opt_.self_name);
        std::vector<bool> keep(boxes_.size(), false);
        for (auto const& e : exp) {
            box* b = find_box(e.name);
            if (b && b->deleted) b = nullptr; // deleted then re-created: a new box, new id
            if (!b) {
                auto made = provider_.make(e.name);
                if (!made) {
                    auto const& err = made.error_value();
                    if (err.is(errc::not_found) || err.is(errc::permission)) continue;
                    error out = err;
                    return out.with_context("for backend mailbox " + e.name);
                }
                box x;
                x.id = ++header_.highest_box;
                header_dirty_ = true;
                x.name = e.name;
                x.group = e.group;
                x.backend.emplace(std::move(made).value());
                boxes_.push_back(std::move(x));
                keep.push_back(true);
                continue;
            }
            auto const idx = static_cast<std::size_t>(b - boxes_.data());
            keep[idx] = true;
            b->group = e.group;
            if (!b->backend) {
                auto made = provider_.make(e.name);
                if (!made) {
                    auto const& err = made.error_value();
                    if (err.is(errc::not_found) || err.is(errc::permission)) {
                        keep[idx] = false;
                        continue;
                    }
                    error out = err;
                    return out.with_context("for backend mailbox " + e.name);
                }
                b->backend.emplace(std::move(made).value());
            }
        }
        // A box found again (forgotten by an earlier expansion whose sync failed) is kept.
        for (std::size_t i = 0; i < boxes_.size(); ++i) boxes_[i].forget = !keep[i];
        std::stable_sort(boxes_.begin(), boxes_.end(), [](box const& a, box const& b) { return a.id < b.id; });
        return {};
    }

    // ------------------------------------------------------------ phase 1: view -> backends
    // The client's flags of a message are the view's with every queued change applied in
    // order (those a failed sync already wrote included: they stay queued, not rewritten,
    // until a sync commits). A write is left out only when it changes nothing there and
    // the backend was unchanged since the last sync when this push first wrote to it (the
    // view's flags are then the backend's). sync(expunge) expunges what is \Deleted there.
    // Nothing is written to a backend whose identity changed since the last sync: its
    // UIDs name other messages now (phase 2 expunges the old ones).
    result<void> push_view_changes(bool expunge_deleted) {
        struct client_flags {
            flag_set flags;
            keyword_set keywords;
        };
        std::map<std::uint32_t, client_flags> client;
        enum class known : std::uint8_t { untouched, fresh, stale, foreign };
        std::vector<known> state(boxes_.size(), known::untouched);
        auto const write = [](box& b, view_change const& c, uid_set const& reals) -> result<void> {
            switch (c.kind) {
            case change_kind::flags: return b.backend->update_flags(reals, c.op, c.flags);
            case change_kind::keywords: return b.backend->update_keywords(reals, c.op, c.keywords);
            case change_kind::expunge: return b.backend->expunge(reals);
            }
            return {};
        };
        // Writes `c` to the boxes: needed[i] always, noop[i] unless box i is fresh.
        auto const push = [&](view_change const& c, std::vector<std::vector<std::uint32_t>>& needed,
                              std::vector<std::vector<std::uint32_t>>& noop) -> result<void> {
            for (std::size_t i = 0; i < boxes_.size(); ++i) {
                if (needed[i].empty() && noop[i].empty()) continue;
                box& b = boxes_[i];
                if (auto r = ensure_open(b); !r) {
                    if (r.error_value().is(errc::not_found)) continue; // deleted: phase 2 sees it
                    return r;
                }
                if (state[i] == known::untouched) {
                    state[i] = known::foreign;
                    if (b.saved) {
                        auto st = b.backend->status();
                        if (!st) {
                            if (!st.error_value().is(errc::not_found)) return failed(b, std::move(st).error_value());
                        } else if (st->validity == b.saved->validity &&
                                   !(st->guid && b.saved->guid && *st->guid != *b.saved->guid)) {
                            state[i] = st->uid_next == b.saved->uid_next && st->highest_modseq == b.saved->highest_modseq
                                           ? known::fresh
                                           : known::stale;
                            // Went back (restored from a copy): our writes below could bring
                            // HIGHESTMODSEQ back to the saved value with other changes, so
                            // phase 2 must not trust it: compare in full.
                            if (value(st->highest_modseq) < value(b.saved->highest_modseq) ||
                                value(st->uid_next) < value(b.saved->uid_next))
                                b.resync = true;
                        }
                    }
                }
                if (state[i] == known::foreign) continue; // deleted or re-created: not its messages
                if (state[i] != known::fresh) needed[i].insert(needed[i].end(), noop[i].begin(), noop[i].end());
                if (needed[i].empty()) continue;
                uid_set reals;
                reals.insert_unsorted(std::span<std::uint32_t>(needed[i]));
                if (auto r = write(b, c, reals); !r && !r.error_value().is(errc::not_found)) return r;
            }
            return {};
        };
        for (std::size_t k = 0; k < queue_.size(); ++k) {
            view_change const& c = queue_[k];
            // Group the vuids per box; writes that change nothing go to `noop`.
            std::vector<std::vector<std::uint32_t>> needed(boxes_.size()), noop(boxes_.size());
            c.vuids.for_each_value([&](std::uint32_t v) {
                rec const* r = find_rec(uid{v});
                if (!r) return;
                box* b = find_box_id(r->box);
                if (!b || b->deleted || b->forget) return;
                auto& cf = client.try_emplace(v, client_flags{r->flags.storable(), kw_.get(r->kw)}).first->second;
                bool change = true;
                if (c.kind == change_kind::flags) {
                    flag_set const n = apply(cf.flags, c.op, c.flags).storable();
                    change = n != cf.flags;
                    cf.flags = n;
                } else if (c.kind == change_kind::keywords) {
                    keyword_set n = apply(cf.keywords, c.op, c.keywords);
                    change = n != cf.keywords;
                    cf.keywords = std::move(n);
                }
                (change ? needed : noop)[static_cast<std::size_t>(b - boxes_.data())].push_back(value(r->real));
            });
            if (k < pushed_) continue; // written by a sync that failed afterwards
            if (auto r = push(c, needed, noop); !r) return r;
            ++pushed_;
        }
        if (expunge_deleted) {
            view_change c{change_kind::expunge, deleted_vuids_, {}, {}, {}};
            for (auto const& [v, cf] : client) {
                if (cf.flags.contains(system_flag::deleted)) c.vuids.add(v);
                else c.vuids.remove(v);
            }
            std::vector<std::vector<std::uint32_t>> reals(boxes_.size()), none(boxes_.size());
            c.vuids.for_each_value([&](std::uint32_t v) {
                rec const* r = find_rec(uid{v});
                if (!r) return;
                box* b = find_box_id(r->box);
                if (!b || b->deleted || b->forget) return;
                reals[static_cast<std::size_t>(b - boxes_.data())].push_back(value(r->real));
            });
            if (auto r = push(c, reals, none); !r) return r;
        }
        return {};
    }

    // ------------------------------------------------------------ phase 2: backends -> view
    // Boxes that need no backend call: forgotten ones and those without a backend drop
    // all their messages, deleted ones wait for the next reopen. False: nothing to plan.
    static bool prepare_box(box& b, box_plan& plan) {
        if (b.forget || (!b.deleted && !b.backend)) {
            plan.drop = true;
            plan.erase = b.members.real_uids();
            return false;
        }
        return !b.deleted;
    }

    // Opens the backend (LRU); a backend found deleted drops all its messages at once. A
    // closed backend that can tell its status (closed_status_backend) and did not change
    // since the last sync stays closed when there is nothing to apply.
    result<void> open_box(box& b, box_plan& plan, bool apply_pending, std::uint64_t keep_since = 0) {
        if constexpr (closed_status_backend<backend_type>) {
            if (b.saved && !b.backend->is_open() && (!apply_pending || b.pending.empty())) {
                auto st = b.backend->closed_status();
                if (!st) {
                    if (!st.error_value().is(errc::not_found)) return failed(b, std::move(st).error_value());
                    plan.drop = true;
                    plan.erase = b.members.real_uids();
                    return {};
                }
                if (*st && !b.resync && unchanged_since(*b.saved, **st)) {
                    plan.unchanged = true;
                    return {};
                }
            }
        }
        if (auto r = ensure_open(b, keep_since); !r) {
            if (!r.error_value().is(errc::not_found)) return r;
            plan.drop = true;
            plan.erase = b.members.real_uids();
        }
        return {};
    }

    // Phase 2 for one open backend. Reads `this` only through const paths (find_rec) and
    // touches only `b`'s backend: safe to run for different boxes concurrently.
    result<void> plan_box(box& b, box_plan& plan, bool apply_pending) {
        box_plan const start = plan;
        bool const was_resync = b.resync;
        auto r = plan_box_once(b, plan, apply_pending);
        if (r || was_resync || !b.resync) return r;
        // The backend said its incremental answers cannot be trusted (a reader that found
        // its index replaced by an older copy, say): it serves the new state now, so plan
        // the box again, by a full comparison.
        plan = start;
        return plan_box_once(b, plan, apply_pending);
    }

    // Phase 2 for one box, incremental (changes_since) or, when the box is marked `resync`
    // or the backend went back (HIGHESTMODSEQ or UIDNEXT below the saved ones under the same
    // identity), by a full comparison: every member's existence, every match, every
    // member's flags. O(N_box); only after an `inconsistent` answer or a regression.
    result<void> plan_box_once(box& b, box_plan& plan, bool apply_pending) {
        auto gone = [&]() {
            plan.drop = true;
            plan.erase = b.members.real_uids();
            return result<void>{};
        };
        auto st_r = b.backend->status();
        if (!st_r) {
            if (st_r.error_value().is(errc::not_found)) return gone();
            return failed(b, std::move(st_r).error_value());
        }
        mailbox_status const st = *st_r;
        search_program const& prog = def_.groups()[b.group].program;
        plan.pending = b.pending;

        bool const identity_changed =
            !b.saved || b.saved->validity != st.validity ||
            (b.saved->guid && st.guid && *b.saved->guid != *st.guid);
        bool const regressed = !identity_changed && (value(st.highest_modseq) < value(b.saved->highest_modseq) ||
                                                      value(st.uid_next) < value(b.saved->uid_next));
        // Flags of members that changed (and stay, pending included) are copied back.
        auto refresh_flags = [&](uid_set const& reals) -> result<void> {
            uid_set refresh;
            b.members.visit_matches(reals, [&](auto const& e) { refresh.add(e.real_uid); });
            if (refresh.empty()) return {};
            auto f = b.backend->fetch(refresh, fetch_fields::flags);
            if (!f) return failed(b, std::move(f).error_value());
            for (auto& m : *f) {
                auto const vu = b.members.lookup(value(m.id));
                if (!vu || *vu == 0) continue;
                rec const* r = find_rec(uid{*vu});
                if (!r) continue;
                if (r->flags.storable() != m.flags.storable() || kw_.get(r->kw) != m.keywords)
                    plan.updates.emplace_back(uid{*vu}, std::move(m));
            }
            return {};
        };
        uid_set added;
        if (identity_changed) {
            // First sight or a new identity: the old records go, every match is new.
            plan.full = true;
            auto m = b.backend->search(prog);
            if (!m) return failed(b, std::move(m).error_value());
            plan.erase = b.members.real_uids();
            plan.pending.clear();
            added = std::move(*m);
        } else if (b.resync || regressed) {
            plan.full = true;
            auto mem = b.members.real_uids();
            uid_set existing;
            if (!mem.empty()) {
                auto e = b.backend->search(search_program::all(), mem);
                if (!e) return failed(b, std::move(e).error_value());
                existing = std::move(*e);
            }
            auto m = b.backend->search(prog);
            if (!m) return failed(b, std::move(m).error_value());
            uid_set expunged = mem;
            expunged.remove_set(existing);
            // Existing members that do not match wait as pending removes (old pending ones
            // that match again are cancelled); matches that are not members are new.
            uid_set stopped = existing;
            stopped.remove_set(*m);
            m->for_each_value([&](std::uint32_t u) {
                if (!b.members.contains(u)) added.add(u);
            });
            plan.pending = std::move(stopped);
            plan.erase = std::move(expunged);
            if (auto r = refresh_flags(existing); !r) return r;
        } else if (unchanged_since(*b.saved, st)) {
            // Unchanged: no search, no fetch.
            if (apply_pending && !plan.pending.empty()) {
                plan.erase = std::move(plan.pending);
                plan.pending.clear();
                plan.changed = true;
            }
            plan.record = record_for(b, st, plan.pending);
            return {};
        } else {
            auto ch_r = b.backend->changes_since(b.saved->highest_modseq);
            if (!ch_r) return failed(b, std::move(ch_r).error_value());
            change_set& ch = *ch_r;
            // Which of our members were expunged in the backend: removed at once.
            uid_set expunged;
            if (ch.expunged) {
                b.members.visit_matches(*ch.expunged, [&](auto const& e) { expunged.add(e.real_uid); });
            } else {
                auto mem = b.members.real_uids();
                auto existing = b.backend->search(search_program::all(), mem);
                if (!existing) return failed(b, std::move(existing).error_value());
                mem.remove_set(*existing);
                expunged = std::move(mem);
            }
            ch.changed.remove_set(expunged);
            // Membership can change for new messages, and for changed old ones only when
            // the program looks at flags or keywords (SEMANTICS §7.9).
            uid_set eval = ch.changed;
            if (!prog.depends_on_flags_or_keywords() && value(b.saved->uid_next) > 1)
                eval.remove_range(1, value(b.saved->uid_next) - 1);
            uid_set matched;
            if (!eval.empty()) {
                auto m = b.backend->search(prog, eval);
                if (!m) return failed(b, std::move(m).error_value());
                matched = std::move(*m);
            }
            // stopped = evaluated members that no longer match; added = matches not members.
            uid_set stopped;
            b.members.visit_matches(eval, [&](auto const& e) {
                if (!matched.contains(e.real_uid)) stopped.add(e.real_uid);
            });
            matched.for_each_value([&](std::uint32_t u) {
                if (!b.members.contains(u)) added.add(u);
            });
            plan.pending.remove_set(expunged);
            plan.pending.remove_set(matched);   // matches again: cancelled, keeps its vuid
            plan.pending.merge(stopped);
            plan.erase = std::move(expunged);
            if (auto r = refresh_flags(ch.changed); !r) return r;
        }
        if (apply_pending && !plan.pending.empty()) {
            plan.erase.merge(plan.pending);
            plan.pending.clear();
        }
        if (!added.empty()) {
            auto f = b.backend->fetch(added, fetch_fields::received | fetch_fields::flags);
            if (!f) return failed(b, std::move(f).error_value());
            plan.adds = std::move(*f); // messages gone since the search are simply not there
        }
        plan.changed = true;
        plan.record = record_for(b, st, plan.pending);
        return {};
    }

    // Same identity (not checked here), nothing appended, expunged or changed.
    static bool unchanged_since(backend_sync_record const& saved, mailbox_status const& st) noexcept {
        return st.validity == saved.validity && st.uid_next == saved.uid_next &&
               st.highest_modseq == saved.highest_modseq && st.guid == saved.guid;
    }

    static backend_sync_record record_for(box const& b, mailbox_status const& st, uid_set const& pending) {
        return {b.id, b.name, st.validity, st.guid, st.uid_next, st.highest_modseq, pending};
    }

    // The error of a backend call for `b`; an `inconsistent` one marks the box for a full
    // comparison at its next planning.
    static result<void> failed(box& b, error e) {
        if (e.is(errc::inconsistent)) b.resync = true;
        if (e.message.find("(for backend mailbox") == std::string::npos)
            e.with_context("for backend mailbox " + b.name);
        return e;
    }

    // ------------------------------------------------------------ phases 3-5
    result<sync_report> commit(std::vector<box_plan>& plans) {
        sync_report report;
        view_delta d;
        // Erasures.
        for (std::size_t i = 0; i < boxes_.size(); ++i) {
            auto const& p = plans[i];
            if (!p.erase.empty()) boxes_[i].members.visit_matches(p.erase, [&](auto const& e) {
                if (e.virtual_uid != 0) report.expunged.add(e.virtual_uid);
            });
        }
        report.expunged.merge(orphan_vuids_);
        // Adds: one batch; ordered by received date when it spans several boxes. The sort
        // moves small keys, not the fetched records.
        std::vector<add_item> adds;
        std::size_t boxes_with_adds = 0;
        for (std::size_t i = 0; i < boxes_.size(); ++i) {
            if (plans[i].adds.empty()) continue;
            ++boxes_with_adds;
            plans[i].add_vuids.resize(plans[i].adds.size());
            for (std::size_t j = 0; j < plans[i].adds.size(); ++j)
                adds.push_back({plans[i].adds[j].received, plans[i].adds[j].id,
                                static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(j)});
        }
        if (boxes_with_adds > 1)
            std::stable_sort(adds.begin(), adds.end(), [](add_item const& a, add_item const& b) {
                if (a.received != b.received) return a.received < b.received;
                return a.real < b.real;
            });
        view_header header = header_;
        d.appended.reserve(adds.size());
        for (auto const& a : adds) {
            uid const v = header.next_uid;
            header.next_uid = next(header.next_uid);
            auto& m = plans[a.box_index].adds[a.pos];
            d.appended.push_back({v, boxes_[a.box_index].id, m.id, m.flags.storable(), std::move(m.keywords)});
            plans[a.box_index].add_vuids[a.pos] = v;
            report.added.add(value(v));
        }
        for (std::size_t i = 0; i < boxes_.size(); ++i) {
            for (auto const& [v, m] : plans[i].updates) {
                if (report.expunged.contains(value(v))) continue;
                d.updated.push_back({v, boxes_[i].id, m.id, m.flags.storable(), m.keywords});
                report.flags_changed.add(value(v));
            }
            if (plans[i].drop) {
                if (boxes_[i].saved) d.backends_removed.push_back(boxes_[i].id);
            } else if (plans[i].changed) {
                d.backends.push_back(plans[i].record);
            }
        }
        for (auto id : forgotten_) d.backends_removed.push_back(id);
        d.expunged = report.expunged;
        if (header != header_ || header_dirty_) d.header = header;
        d.replace_all = rebuild_all_ && recs_.empty() && orphan_vuids_.empty();
        if (!d.empty()) {
            if (auto r = store_.commit(d); !r) {
                // It may have landed all the same (an I/O error after the data was durable):
                // what is committed is unknown now, the next sync reloads it.
                reload_ = true;
                return std::move(r).error_value();
            }
        }
        if (!carry_.empty()) { // what a reload found changed, reported with this sync
            report.expunged.merge(carry_.expunged);
            carry_.added.remove_set(report.expunged);
            report.added.merge(carry_.added);
            carry_.flags_changed.remove_set(report.expunged);
            carry_.flags_changed.remove_set(report.added);
            report.flags_changed.merge(carry_.flags_changed);
            carry_ = {};
        }
        // Committed: now the in-memory state follows.
        header_ = header;
        header_dirty_ = false;
        rebuild_all_ = false;
        forgotten_.clear();
        orphan_vuids_.clear();
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(pushed_)); // now in the view
        pushed_ = 0;
        std::vector<std::size_t> dropped;
        report.expunged.for_each_value([&](std::uint32_t v) { kill_rec(uid{v}); });
        for (std::size_t i = 0; i < boxes_.size(); ++i) {
            box& b = boxes_[i];
            box_plan& p = plans[i];
            if (!p.erase.empty()) b.members.erase(p.erase);
            if (p.drop) {
                b.members.clear();
                b.pending.clear();
                b.saved.reset();
                b.resync = false;
                if (b.forget) dropped.push_back(i);
                else b.deleted = true;
                continue;
            }
            if (p.changed) {
                b.pending = std::move(p.pending);
                b.saved = std::move(p.record);
                if (p.full) b.resync = false;
            }
        }
        for (std::size_t i = 0; i < boxes_.size(); ++i)
            if (!plans[i].adds.empty()) add_members(boxes_[i], plans[i]);
        if (recs_.empty()) recs_.reserve(d.appended.size()); // else geometric growth
        for (auto const& a : d.appended) {
            recs_.push_back({a.vuid, a.box, a.real_uid, kw_.acquire(a.keywords), a.flags, true});
            if (a.flags.contains(system_flag::deleted)) deleted_vuids_.add(value(a.vuid));
        }
        for (auto const& u : d.updated) {
            rec* r = find_rec_mut(u.vuid);
            if (!r) continue;
            r->flags = u.flags;
            if (kw_.get(r->kw) != u.keywords) {
                kw_.release(r->kw);
                r->kw = kw_.acquire(u.keywords);
            }
            if (u.flags.contains(system_flag::deleted)) deleted_vuids_.add(value(u.vuid));
            else deleted_vuids_.remove(value(u.vuid));
        }
        for (auto it = dropped.rbegin(); it != dropped.rend(); ++it)
            boxes_.erase(boxes_.begin() + static_cast<std::ptrdiff_t>(*it));
        if (dead_ > 64 && dead_ * 2 > recs_.size()) compact();
        return report;
    }

    // ------------------------------------------------------------ helpers
    // Adds a box's entering messages (ascending UID) to its uid map: one bulk insert of
    // the new UIDs, then their vuids; when all are above the map's last UID (new mail) the
    // entries are the map's tail and take their vuids by index, else by binary search.
    // Inserting them one by one in date order would shift the map once per message.
    static void add_members(box& b, box_plan const& p) {
        uid_set reals;
        for (auto const& m : p.adds) reals.add(value(m.id));
        auto const old_size = b.members.size();
        bool const tail = (old_size == 0 || b.members.begin()[old_size - 1].real_uid < reals.front().first) &&
                          std::adjacent_find(p.adds.begin(), p.adds.end(), [](auto const& x, auto const& y) {
                              return !(x.id < y.id);
                          }) == p.adds.end(); // strictly ascending (the fetch order, rule B6)
        b.members.insert(reals);
        for (std::size_t j = 0; j < p.adds.size(); ++j) {
            if (tail)
                b.members.assign_at(old_size + j, value(p.add_vuids[j]));
            else
                b.members.assign(value(p.adds[j].id), value(p.add_vuids[j]));
        }
    }

    // Boxes used at or after tick `keep_since` (if not 0) are not closed to make room.
    result<void> ensure_open(box& b, std::uint64_t keep_since = 0) {
        b.used = ++tick_;
        if constexpr (detail::has_open<backend_type>) {
            if (b.backend->is_open()) return {};
            close_lru(opt_.max_open_backends - 1, &b, keep_since);
            auto r = b.backend->open();
            if (!r) {
                error e = std::move(r).error_value();
                return failed(b, std::move(e));
            }
        }
        return {};
    }

    // Closes the least recently used idle backends (no pending removes, not `except`, not
    // used at or after tick `keep_since` if not 0) until at most `limit` are open. O(B)
    // per call plus O(B) per backend closed; called only when a backend is opened and
    // once per sync.
    void close_lru([[maybe_unused]] std::size_t limit, [[maybe_unused]] box const* except,
                   [[maybe_unused]] std::uint64_t keep_since) {
        if constexpr (detail::has_open<backend_type>) {
            std::size_t open = 0;
            for (auto const& x : boxes_)
                if (x.backend && x.backend->is_open()) ++open;
            while (open > limit) {
                box* victim = nullptr;
                for (auto& x : boxes_)
                    if (&x != except && (keep_since == 0 || x.used < keep_since) && x.backend &&
                        x.backend->is_open() && x.pending.empty() && (!victim || x.used < victim->used))
                        victim = &x;
                if (!victim) break; // all open ones have pending removes: exceed the limit
                victim->backend->close();
                --open;
            }
        }
    }

    folder_message to_message(rec const& r) const {
        box const* b = find_box_id(r.box);
        return {r.vuid, b ? std::string_view(b->name) : std::string_view{}, r.real, r.flags, &kw_.get(r.kw)};
    }

    // Vuids are handed out densely and records leave only at compaction: interpolation
    // finds a record in O(1) probes then (detail/interpolation_search.hpp).
    rec const* find_rec(uid v) const noexcept {
        auto it = detail::interpolation_lower_bound(recs_.begin(), recs_.end(), value(v),
                                                    [](rec const& r) { return value(r.vuid); });
        return it != recs_.end() && it->vuid == v && it->alive ? &*it : nullptr;
    }
    rec* find_rec_mut(uid v) noexcept { return const_cast<rec*>(find_rec(v)); }
    void kill_rec(uid v) {
        if (rec* r = find_rec_mut(v)) {
            r->alive = false;
            kw_.release(r->kw);
            r->kw = 0;
            ++dead_;
            deleted_vuids_.remove(value(v));
        }
    }
    void compact() {
        std::erase_if(recs_, [](rec const& r) { return !r.alive; });
        dead_ = 0;
    }

    box* find_box(std::string_view name) noexcept {
        for (auto& b : boxes_)
            if (b.name == name && !b.deleted) return &b;
        return nullptr;
    }
    box const* find_box(std::string_view name) const noexcept {
        return const_cast<folder*>(this)->find_box(name);
    }
    box* find_box_id(mailbox_id id) noexcept {
        auto it = std::lower_bound(boxes_.begin(), boxes_.end(), id, [](box const& b, mailbox_id x) { return b.id < x; });
        return it != boxes_.end() && it->id == id ? &*it : nullptr;
    }
    box const* find_box_id(mailbox_id id) const noexcept {
        return const_cast<folder*>(this)->find_box_id(id);
    }

    folder_definition def_;
    Provider provider_;
    Store store_;
    folder_options opt_;
    std::uint64_t def_id_;
    view_header header_;
    bool header_dirty_ = false;
    bool rebuild_all_ = false;
    std::vector<mailbox_id> forgotten_;   // stored backend records to drop at next commit
    uid_set orphan_vuids_;                // stored records to expunge at next commit
    std::vector<box> boxes_;              // ascending id
    std::vector<rec> recs_;               // ascending vuid; dead ones until compaction
    detail::keyword_table kw_;            // the keyword sets of recs_
    std::size_t dead_ = 0;
    uid_set deleted_vuids_;               // vuids whose view flags have \Deleted
    std::vector<view_change> queue_;
    std::size_t pushed_ = 0;              // queue_ entries already written to the backends
    std::uint64_t tick_ = 0;
    bool reload_ = false;                 // a commit failed: reload from the store first
    sync_report carry_;                   // found by a reload, reported by the next sync
};

VFOLDER_END_NAMESPACE

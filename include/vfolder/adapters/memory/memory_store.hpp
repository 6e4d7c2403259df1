/// \file
/// \brief `memory_store`: a `view_store` in memory that keeps committed state across
/// folder close and re-open within the process, and can simulate crashes and broken
/// state for tests.
///
/// Stores live in a `memory_store_world` (one per process, or per test), keyed by folder
/// name: closing a folder and opening it again with a store of the same name continues
/// from the last commit. Test hooks:
///  - `crash_next_commit(bool lands)`: the next commit "crashes": it returns
///    `errc::io` ("simulated crash") and either lands entirely or not at all, as a durable
///    atomic store may do when the process dies in the middle of a commit;
///  - `fail_next_commit(err)`: the next commit fails with `err` and changes nothing;
///  - `break_state()`: the stored state is marked broken; `load()` reports
///    `errc::corrupted` until `reset()` or a `replace_all` commit;
///  - `commit_count()`: how many commits landed.
#pragma once

#include <vfolder/concepts.hpp>
#include <vfolder/detail/interpolation_search.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/view_state.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief The persistent part of memory stores: what survives a folder's close.
class memory_store_world {
public:
    /// \brief The committed state of one folder, indexed so that a commit of k changes
    /// costs O(k) probes when the vuids are dense (interpolation search), O(k log N) at
    /// worst: the engine's incremental syncs stay independent of N.
    struct slot {
        struct entry {
            view_message m;
            bool dead = false; // expunged; removed at the next compaction
        };
        bool present = false; // something was committed
        view_header header;
        std::vector<entry> messages;                        // ascending vuid; the last is live
        std::size_t dead = 0;
        std::map<mailbox_id, backend_sync_record> backends;
        bool broken = false;
        std::uint64_t commits = 0;
        std::optional<error> fail_next;
        std::optional<bool> crash_next; // value: whether the crashing commit lands

        [[nodiscard]] view_state state() const {
            view_state s{header, {}, {}};
            s.messages.reserve(messages.size() - dead);
            for (auto const& e : messages)
                if (!e.dead) s.messages.push_back(e.m);
            for (auto const& [id, b] : backends) s.backends.push_back(b);
            return s;
        }
        void assign(view_state const& s) {
            present = true;
            header = s.header;
            messages.clear();
            dead = 0;
            backends.clear();
            // Sorted, one per vuid (the first kept), as a map keyed by vuid would hold them.
            for (auto const& m : s.messages) messages.push_back({m, false});
            std::stable_sort(messages.begin(), messages.end(),
                             [](entry const& a, entry const& b) { return a.m.vuid < b.m.vuid; });
            messages.erase(std::unique(messages.begin(), messages.end(),
                                       [](entry const& a, entry const& b) { return a.m.vuid == b.m.vuid; }),
                           messages.end());
            for (auto const& b : s.backends) backends.emplace(b.box, b);
        }

        // The first entry whose vuid is not below `v` (dead ones included).
        [[nodiscard]] std::vector<entry>::iterator lower_bound(std::uint32_t v) {
            return detail::interpolation_lower_bound(messages.begin(), messages.end(), v,
                                                     [](entry const& e) { return value(e.m.vuid); });
        }
        [[nodiscard]] entry const* find(std::uint32_t v) const {
            auto it = const_cast<slot*>(this)->lower_bound(v);
            return it != messages.end() && value(it->m.vuid) == v && !it->dead ? &*it : nullptr;
        }
    };

    /// \brief The slot of folder `name`, created empty on first use.
    slot& at(std::string_view name) {
        auto it = slots_.find(name);
        if (it == slots_.end()) it = slots_.emplace(std::string(name), slot{}).first;
        return it->second;
    }
    slot const& at(std::string_view name) const { return const_cast<memory_store_world*>(this)->at(name); }

    /// \brief Deletes the stored state of `name` (like removing its files).
    void wipe(std::string_view name) {
        auto it = slots_.find(name);
        if (it != slots_.end()) slots_.erase(it);
    }

private:
    std::map<std::string, slot, std::less<>> slots_;
};

/// \brief A `view_store` over the slot of one folder in a `memory_store_world`.
class memory_store {
public:
    memory_store(memory_store_world& world, std::string folder)
        : world_(&world), folder_(std::move(folder)) {}

    [[nodiscard]] std::string_view folder() const noexcept { return folder_; }

    /// \brief S1/S2: the committed state, nullopt if none, `corrupted` if broken or invalid.
    /// O(N log N) (validation).
    result<std::optional<view_state>> load() {
        auto& s = world_->at(folder_);
        if (s.broken) return error{errc::corrupted, "view state is broken (for virtual folder " + folder_ + ")"};
        if (!s.present) return std::optional<view_state>{};
        view_state st = s.state();
        if (auto v = validate(st); !v) {
            error e = v.error_value();
            e.with_context("for virtual folder " + folder_);
            return e;
        }
        return std::optional<view_state>{std::move(st)};
    }

    /// \brief S3/S4: applies `d` atomically (the meaning of `apply` in view_state.hpp); on
    /// failure nothing changes. O(|d| log N).
    result<void> commit(view_delta const& d) {
        auto& s = world_->at(folder_);
        if (s.fail_next) {
            error e = std::move(*s.fail_next);
            s.fail_next.reset();
            return e;
        }
        if (auto r = check(s, d); !r) return r;
        if (s.crash_next) {
            bool const lands = *s.crash_next;
            s.crash_next.reset();
            if (lands) land(s, d);
            return error{errc::io, "simulated crash during commit (for virtual folder " + folder_ + ")"};
        }
        land(s, d);
        return {};
    }

    /// \brief S5: discards the stored state.
    result<void> reset() {
        auto& s = world_->at(folder_);
        s.present = false;
        s.header = {};
        s.messages.clear();
        s.dead = 0;
        s.backends.clear();
        s.broken = false;
        return {};
    }

    // ------------------------------------------------------------ test hooks
    void crash_next_commit(bool lands) { world_->at(folder_).crash_next = lands; }
    void fail_next_commit(error e) { world_->at(folder_).fail_next = std::move(e); }
    void break_state() { world_->at(folder_).broken = true; }
    [[nodiscard]] std::uint64_t commit_count() const { return world_->at(folder_).commits; }
    /// \brief The raw stored state (for tests), without validation; nullopt if none.
    [[nodiscard]] std::optional<view_state> raw() const {
        auto const& s = world_->at(folder_);
        if (!s.present) return std::nullopt;
        return s.state();
    }
    /// \brief Overwrites the raw stored state (for tests that hand out a bad state). A
    /// state the slot's maps cannot hold as it is (vuids or mailbox ids not strictly
    /// increasing: the maps would sort and de-duplicate it into a valid one) is stored
    /// marked broken, so that `load` reports it corrupted as S2 requires.
    void set_raw(view_state const& st) {
        auto& s = world_->at(folder_);
        s.assign(st);
        auto const by_vuid = [](view_message const& a, view_message const& b) { return a.vuid >= b.vuid; };
        auto const by_box = [](backend_sync_record const& a, backend_sync_record const& b) { return a.box >= b.box; };
        if (std::adjacent_find(st.messages.begin(), st.messages.end(), by_vuid) != st.messages.end() ||
            std::adjacent_find(st.backends.begin(), st.backends.end(), by_box) != st.backends.end())
            s.broken = true;
    }

private:
    using slot = memory_store_world::slot;

    static bool has_message(slot const& s, view_delta const& d, uid v) {
        if (d.replace_all) return false;
        return s.find(value(v)) != nullptr && !d.expunged.contains(value(v));
    }

    // Whether `d` fits the state (the error cases of `apply`), without changing anything.
    static result<void> check(slot const& s, view_delta const& d) {
        for (auto const& u : d.updated)
            if (!has_message(s, d, u.vuid))
                return error{errc::invalid_argument, "delta updates a message that does not exist"};
        // The highest vuid that stays: appends must go above it.
        std::optional<std::uint32_t> top;
        if (!d.replace_all) {
            for (auto it = s.messages.rbegin(); it != s.messages.rend(); ++it) {
                if (!it->dead && !d.expunged.contains(value(it->m.vuid))) { // expunged ones at the top: skipped
                    top = value(it->m.vuid);
                    break;
                }
            }
        }
        for (auto const& a : d.appended) {
            if (top && value(a.vuid) <= *top)
                return error{errc::invalid_argument, "delta appends a vuid that is not above the others"};
            top = value(a.vuid);
        }
        return {};
    }

    static void land(slot& s, view_delta const& d) {
        if (d.replace_all) {
            s.messages.clear();
            s.dead = 0;
            s.backends.clear();
            s.broken = false;
        }
        s.present = true;
        if (d.header) s.header = *d.header;
        for (auto const& r : d.expunged) {
            for (auto it = s.lower_bound(r.first); it != s.messages.end() && value(it->m.vuid) <= r.last; ++it) {
                if (it->dead) continue;
                it->dead = true;
                it->m.keywords = {};
                ++s.dead;
            }
        }
        for (auto const& u : d.updated) {
            auto it = s.lower_bound(value(u.vuid)); // exists: checked
            it->m.flags = u.flags;
            it->m.keywords = u.keywords;
        }
        // The dead at the end go now (appends come above the live ones), the others when
        // they are half of all: O(1) amortized per expunge.
        while (!s.messages.empty() && s.messages.back().dead) {
            s.messages.pop_back();
            --s.dead;
        }
        if (s.dead > 64 && s.dead * 2 > s.messages.size()) {
            std::erase_if(s.messages, [](slot::entry const& e) { return e.dead; });
            s.dead = 0;
        }
        for (auto const& a : d.appended) s.messages.push_back({a, false});
        for (auto id : d.backends_removed) s.backends.erase(id);
        for (auto const& b : d.backends) s.backends.insert_or_assign(b.box, b);
        ++s.commits;
    }

    memory_store_world* world_;
    std::string folder_;
};

static_assert(view_store<memory_store>);

VFOLDER_END_NAMESPACE

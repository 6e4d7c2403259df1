// The baseline of bench_engine: a "recompute everything" virtual-folder engine. On every
// sync it searches every backend fully, fetches every match, and rebuilds the whole view:
// the map (backend, uid) -> vuid (a std::map, rebuilt from scratch), the vuid-ordered
// view with the flags, and the stored state (rewritten in full). New messages get vuids
// in received-date order (ties: backend UID, then backend order), like vfolder's engine.
// Members that stop matching stay as pending removes until a sync with `apply_pending`
// (EXPUNGE / SELECT), and keep their vuid if they match again — the same visible
// semantics as vfolder::folder for the benchmark workloads (no view-side writes).
#pragma once

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/mail/search.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bench {

class naive_engine {
public:
    struct stored_rec {
        std::uint32_t box, uid, vuid;
        bool pending;
    };
    // What the naive engine persists: everything, rewritten at every sync.
    struct store {
        bool present = false;
        std::uint32_t next_vuid = 1;
        std::vector<stored_rec> recs;
    };
    struct view_entry {
        std::uint32_t vuid, box, uid;
        vfolder::flag_set flags;
    };

    // Open: load the stored state (if any) into the map.
    naive_engine(vfolder::memory_world& w, std::vector<std::string> const& names,
                 vfolder::search_program prog, store& st)
        : prog_(std::move(prog)), store_(&st) {
        backends_.reserve(names.size());
        for (auto const& n : names) backends_.emplace_back(w, n);
        if (st.present) {
            next_vuid_ = st.next_vuid;
            for (auto const& r : st.recs) map_.emplace(key_t{r.box, r.uid}, member{r.vuid, r.pending});
        }
    }

    // Full re-search and rebuild. `apply_pending`: EXPUNGE / SELECT semantics.
    bool sync(bool apply_pending) {
        std::map<key_t, member> next;
        std::vector<view_entry> view;
        view.reserve(map_.size());
        struct fresh {
            std::uint32_t box;
            vfolder::message_record m;
        };
        std::vector<fresh> adds;
        for (std::uint32_t b = 0; b < backends_.size(); ++b) {
            auto& be = backends_[b];
            auto matches = be.search(prog_);
            if (!matches) return false;
            auto recs = be.fetch(*matches, vfolder::fetch_fields::received | vfolder::fetch_fields::flags);
            if (!recs) return false;
            for (auto& r : *recs) {
                key_t const k{b, vfolder::value(r.id)};
                auto it = map_.find(k);
                if (it == map_.end()) {
                    adds.push_back({b, std::move(r)});
                    continue;
                }
                next.emplace_hint(next.end(), k, member{it->second.vuid, false});
                view.push_back({it->second.vuid, b, k.second, r.flags.storable()});
            }
            // Members that no longer match: kept as pending removes while they exist.
            if (!apply_pending) {
                vfolder::uid_set stopped;
                for (auto it = map_.lower_bound(key_t{b, 0}); it != map_.end() && it->first.first == b; ++it)
                    if (!matches->contains(it->first.second)) stopped.add(it->first.second);
                if (!stopped.empty()) {
                    auto still = be.fetch(stopped, vfolder::fetch_fields::flags);
                    if (!still) return false;
                    for (auto const& r : *still) {
                        key_t const k{b, vfolder::value(r.id)};
                        auto const v = map_.at(k).vuid;
                        next.emplace(k, member{v, true});
                        view.push_back({v, b, k.second, r.flags.storable()});
                    }
                }
            }
        }
        std::stable_sort(adds.begin(), adds.end(), [](fresh const& a, fresh const& b) {
            if (a.m.received != b.m.received) return a.m.received < b.m.received;
            return a.m.id < b.m.id;
        });
        for (auto const& a : adds) {
            std::uint32_t const v = next_vuid_++;
            next.emplace(key_t{a.box, vfolder::value(a.m.id)}, member{v, false});
            view.push_back({v, a.box, vfolder::value(a.m.id), a.m.flags.storable()});
        }
        std::sort(view.begin(), view.end(), [](view_entry const& a, view_entry const& b) { return a.vuid < b.vuid; });
        map_ = std::move(next);
        view_ = std::move(view);
        // Persist: the whole state, rewritten.
        store_->present = true;
        store_->next_vuid = next_vuid_;
        store_->recs.clear();
        store_->recs.reserve(map_.size());
        for (auto const& [k, m] : map_) store_->recs.push_back({k.first, k.second, m.vuid, m.pending});
        return true;
    }

    [[nodiscard]] std::size_t size() const noexcept { return view_.size(); }

    // The view's flags of backend `box`'s message `uid`, if it is in the view.
    [[nodiscard]] std::optional<vfolder::flag_set> flags_of(std::uint32_t box, std::uint32_t uid) const {
        auto it = map_.find(key_t{box, uid});
        if (it == map_.end()) return std::nullopt;
        auto v = std::lower_bound(view_.begin(), view_.end(), it->second.vuid,
                                  [](view_entry const& e, std::uint32_t x) { return e.vuid < x; });
        if (v == view_.end() || v->vuid != it->second.vuid) return std::nullopt;
        return v->flags;
    }

private:
    using key_t = std::pair<std::uint32_t, std::uint32_t>; // (backend index, backend UID)
    struct member {
        std::uint32_t vuid;
        bool pending;
    };

    vfolder::search_program prog_;
    store* store_;
    std::vector<vfolder::memory_backend> backends_;
    std::map<key_t, member> map_;
    std::vector<view_entry> view_; // ascending vuid
    std::uint32_t next_vuid_ = 1;
};

} // namespace bench

// Tutorial: a complete vfolder backend over a plain std::map (docs/concepts.md quotes it).
#include <vfolder/any_backend.hpp>
#include <vfolder/concepts.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// [tutorial-begin]
/// A mailbox kept in a std::map from UID to message: a complete vfolder::backend.
class map_backend {
public:
    struct message {
        vfolder::mail_time received{};
        vfolder::flag_set flags;
        vfolder::keyword_set keywords;
        std::uint64_t size = 0;
        vfolder::modseq mod{};
    };

    map_backend(std::string name, vfolder::uid_validity validity)
        : name_(std::move(name)), validity_(validity) {}

    // Host side: how mail gets in (not part of the concept).
    vfolder::uid append(vfolder::mail_time received, std::uint64_t size = 0) {
        auto const u = next_uid_;
        next_uid_ = vfolder::next(next_uid_);
        msgs_[vfolder::value(u)] = message{received, {}, {}, size, bump()};
        return u;
    }

    // ---- the vfolder::backend concept
    std::string_view name() const { return name_; }

    vfolder::result<vfolder::mailbox_status> status() {
        return vfolder::mailbox_status{static_cast<std::uint32_t>(msgs_.size()), validity_,
                                       next_uid_, highest_, std::nullopt};
    }

    vfolder::result<vfolder::uid_set> search(vfolder::search_program const& p) {
        vfolder::uid_set out;
        for (auto const& [u, m] : msgs_)
            if (p.matches(meta(m))) out.add(u); // ascending: O(1) appends
        return out;
    }

    vfolder::result<vfolder::uid_set> search(vfolder::search_program const& p,
                                             vfolder::uid_set const& within) {
        vfolder::uid_set out;
        each(within, [&](std::uint32_t u, message& m) {
            if (p.matches(meta(m))) out.add(u);
        });
        return out;
    }

    vfolder::result<vfolder::change_set> changes_since(vfolder::modseq since) {
        // A linear scan keeps the tutorial short; index by modseq for O(log N + k).
        vfolder::change_set c;
        for (auto const& [u, m] : msgs_)
            if (m.mod > since) c.changed.add(u);
        vfolder::uid_set gone;
        for (auto const& [mod, u] : expunged_)
            if (mod > since) gone.add(u);
        c.expunged = std::move(gone);
        c.highest_modseq = highest_;
        return c;
    }

    vfolder::result<std::vector<vfolder::message_record>> fetch(vfolder::uid_set const& uids,
                                                               vfolder::fetch_fields) {
        std::vector<vfolder::message_record> out;
        each(uids, [&](std::uint32_t u, message& m) {
            out.push_back({vfolder::uid{u}, m.received, m.flags, m.keywords, m.size});
        });
        return out;
    }

    vfolder::result<void> update_flags(vfolder::uid_set const& uids, vfolder::modify_op op,
                                       vfolder::flag_set f) {
        each(uids, [&](std::uint32_t, message& m) {
            auto const nf = vfolder::apply(m.flags, op, f).storable();
            if (nf != m.flags) { // B5: a write that changes nothing keeps the modseq
                m.flags = nf;
                m.mod = bump();
            }
        });
        return {};
    }

    vfolder::result<void> update_keywords(vfolder::uid_set const& uids, vfolder::modify_op op,
                                          vfolder::keyword_set const& k) {
        each(uids, [&](std::uint32_t, message& m) {
            auto nk = vfolder::apply(m.keywords, op, k);
            if (nk != m.keywords) {
                m.keywords = std::move(nk);
                m.mod = bump();
            }
        });
        return {};
    }

    vfolder::result<void> expunge(vfolder::uid_set const& uids) {
        std::vector<std::uint32_t> gone;
        each(uids, [&](std::uint32_t u, message&) { gone.push_back(u); });
        for (auto u : gone) {
            msgs_.erase(u);
            expunged_.emplace_back(bump(), u);
        }
        return {};
    }

private:
    static vfolder::message_meta meta(message const& m) {
        return {m.flags, &m.keywords, m.received, m.size};
    }
    vfolder::modseq bump() { return highest_ = vfolder::next(highest_); }

    // Visits the existing messages of `uids`: one lower_bound per range, then a walk.
    template <class F>
    void each(vfolder::uid_set const& uids, F&& f) {
        for (auto const& r : uids)
            for (auto it = msgs_.lower_bound(r.first); it != msgs_.end() && it->first <= r.last; ++it)
                f(it->first, it->second);
    }

    std::string name_;
    vfolder::uid_validity validity_;
    vfolder::uid next_uid_{1};
    vfolder::modseq highest_{};
    std::map<std::uint32_t, message> msgs_;
    std::vector<std::pair<vfolder::modseq, std::uint32_t>> expunged_;
};

static_assert(vfolder::backend<map_backend>); // the error shows here, not in the engine
// [tutorial-end]

int main() {
    map_backend box("Archive", vfolder::uid_validity{42});
    box.append(vfolder::mail_time{1000}, 10);
    box.append(vfolder::mail_time{2000}, 5000);
    auto const u3 = box.append(vfolder::mail_time{3000}, 20);

    auto unseen = vfolder::search_program::parse("unseen smaller 1000");
    if (!unseen) return 1;
    auto before = box.search(*unseen);
    std::printf("unseen and small: %u messages\n", before->count());

    auto const m0 = box.status()->highest_modseq;
    (void)box.update_flags(vfolder::uid_set{{vfolder::value(u3), vfolder::value(u3)}},
                           vfolder::modify_op::add, vfolder::system_flag::seen);
    auto changes = box.changes_since(m0);
    std::printf("changed since modseq %llu: %u message(s)\n",
                static_cast<unsigned long long>(vfolder::value(m0)), changes->changed.count());
    auto after = box.search(*unseen, changes->changed);
    std::printf("of those, still unseen and small: %u\n", after->count());

    // Any backend can be type-erased to mix with others in one folder; a backend that is
    // not openable counts as always open.
    vfolder::any_backend erased = std::move(box);
    std::printf("%.*s is open: %s\n", static_cast<int>(erased.name().size()), erased.name().data(),
                erased.is_open() ? "yes" : "no");
    return before->count() == 2 && changes->changed.count() == 1 && after->count() == 0 &&
                   erased.is_open()
               ? 0
               : 1;
}

/// \file
/// \brief The persisted state of a virtual folder (`view_state`), the unit of change a
/// store commits (`view_delta`), how a delta applies, and how a loaded state is validated.
///
/// A `view_store` (concepts.hpp) keeps one `view_state` per folder. The engine commits one
/// `view_delta` per sync; `apply` is the reference meaning of a delta, which every store
/// must reproduce. `validate` decides whether a loaded state can be trusted: a broken
/// state is reported and rebuilt, never used.
#pragma once

#include <vfolder/mail/error.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/message.hpp>
#include <vfolder/mail/status.hpp>
#include <vfolder/mail/types.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief A mailbox id: numbers a backend within one folder; never reused.
using mailbox_id = std::uint32_t;

/// \brief One message of the view: its virtual UID, where it lives, its mirrored flags.
struct view_message {
    uid vuid{};
    mailbox_id box = 0;
    uid real_uid{};
    flag_set flags;
    keyword_set keywords;
    friend bool operator==(view_message const&, view_message const&) = default;
};

/// \brief What the folder remembers of one backend between syncs.
struct backend_sync_record {
    mailbox_id box = 0;
    std::string name;
    uid_validity validity{};
    std::optional<mailbox_guid> guid;
    uid uid_next{1};          ///< backend UIDNEXT at the last sync
    modseq highest_modseq{};  ///< backend HIGHESTMODSEQ at the last sync
    uid_set pending_removes;  ///< backend UIDs that stopped matching, removal delayed
    friend bool operator==(backend_sync_record const&, backend_sync_record const&) = default;
};

/// \brief The folder-wide header.
struct view_header {
    uid_validity validity{};          ///< set once, when the folder is first built
    uid next_uid{1};                  ///< the next virtual UID; never decreases
    mailbox_id highest_box = 0;       ///< the highest mailbox id ever assigned
    std::uint64_t definition_id = 0;  ///< identity of the definition the records match
    friend bool operator==(view_header const&, view_header const&) = default;
};

/// \brief The whole persisted state of a folder.
struct view_state {
    view_header header;
    std::vector<view_message> messages;          ///< ascending vuid
    std::vector<backend_sync_record> backends;   ///< ascending mailbox id
    friend bool operator==(view_state const&, view_state const&) = default;
};

/// \brief One sync's worth of changes, committed atomically.
struct view_delta {
    bool replace_all = false;                     ///< drop every stored record first (rebuild)
    std::optional<view_header> header;            ///< new header, if it changed
    uid_set expunged;                             ///< vuids removed
    std::vector<view_message> appended;           ///< new messages, ascending vuid, above all others
    std::vector<view_message> updated;            ///< new flags/keywords of existing vuids
    std::vector<backend_sync_record> backends;    ///< inserted or replaced, by mailbox id
    std::vector<mailbox_id> backends_removed;     ///< forgotten backends
    [[nodiscard]] bool empty() const noexcept {
        return !replace_all && !header && expunged.empty() && appended.empty() &&
               updated.empty() && backends.empty() && backends_removed.empty();
    }
};

/// \brief Checks that a state can be trusted: vuids strictly increase and stay below
/// next_uid, each (box, real_uid) appears once, every box is known and ids increase,
/// highest_box covers every id, and pending removes name nothing outside the box's
/// messages' UID space (they must be below the box's uid_next).
[[nodiscard]] inline result<void> validate(view_state const& s) {
    auto const broken = [](std::string what) {
        return error{errc::corrupted, "broken view state: " + std::move(what)};
    };
    if (value(s.header.validity) == 0 && (!s.messages.empty() || !s.backends.empty()))
        return broken("uidvalidity is 0");
    for (std::size_t i = 0; i < s.backends.size(); ++i) {
        auto const& b = s.backends[i];
        if (i > 0 && s.backends[i - 1].box >= b.box) return broken("mailbox ids not increasing");
        if (b.box == 0 || b.box > s.header.highest_box) return broken("mailbox id out of range");
        if (!b.pending_removes.empty() &&
            (b.pending_removes.front().first == 0 || b.pending_removes.back().last >= value(b.uid_next)))
            return broken("pending removes outside the mailbox's UIDs (" + b.name + ")");
    }
    auto const known = [&](mailbox_id id) {
        auto it = std::lower_bound(s.backends.begin(), s.backends.end(), id,
                                   [](backend_sync_record const& b, mailbox_id x) { return b.box < x; });
        return it != s.backends.end() && it->box == id;
    };
    std::vector<std::pair<mailbox_id, std::uint32_t>> keys;
    keys.reserve(s.messages.size());
    for (std::size_t i = 0; i < s.messages.size(); ++i) {
        auto const& m = s.messages[i];
        if (value(m.vuid) == 0 || m.vuid >= s.header.next_uid) return broken("vuid out of range");
        if (i > 0 && s.messages[i - 1].vuid >= m.vuid) return broken("vuids not increasing");
        if (value(m.real_uid) == 0) return broken("backend uid 0");
        if (!known(m.box)) return broken("record of an unknown mailbox id");
        keys.emplace_back(m.box, value(m.real_uid));
    }
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end())
        return broken("a backend message appears twice");
    return {};
}

/// \brief Applies `d` to `s`: the reference meaning of a delta. Returns an error (and
/// leaves `s` unchanged) when the delta does not fit the state: an appended vuid not above
/// every existing one, an update of a vuid that does not exist.
[[nodiscard]] inline result<void> apply(view_state& s, view_delta const& d) {
    view_state n = d.replace_all ? view_state{s.header, {}, {}} : s;
    if (d.header) n.header = *d.header;
    if (!d.expunged.empty()) {
        std::erase_if(n.messages, [&](view_message const& m) { return d.expunged.contains(value(m.vuid)); });
    }
    for (auto const& u : d.updated) {
        auto it = std::lower_bound(n.messages.begin(), n.messages.end(), u.vuid,
                                   [](view_message const& m, uid v) { return m.vuid < v; });
        if (it == n.messages.end() || it->vuid != u.vuid)
            return error{errc::invalid_argument, "delta updates a message that does not exist"};
        it->flags = u.flags;
        it->keywords = u.keywords;
    }
    for (auto const& a : d.appended) {
        if (!n.messages.empty() && n.messages.back().vuid >= a.vuid)
            return error{errc::invalid_argument, "delta appends a vuid that is not above the others"};
        n.messages.push_back(a);
    }
    for (auto id : d.backends_removed)
        std::erase_if(n.backends, [&](backend_sync_record const& b) { return b.box == id; });
    for (auto const& b : d.backends) {
        auto it = std::lower_bound(n.backends.begin(), n.backends.end(), b.box,
                                   [](backend_sync_record const& x, mailbox_id id) { return x.box < id; });
        if (it != n.backends.end() && it->box == b.box)
            *it = b;
        else
            n.backends.insert(it, b);
    }
    s = std::move(n);
    return {};
}

VFOLDER_END_NAMESPACE

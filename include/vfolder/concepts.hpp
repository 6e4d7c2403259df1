/// \file
/// \brief The concepts the engine talks to: `backend` (one real mailbox), its refinement
/// `openable_backend`, and `view_store` (where a folder's state persists).
///
/// The compiler checks the expressions; the numbered rules below it cannot check, and
/// every model must keep them. `tests/conformance/` checks rules B1-B9 on each adapter;
/// the rule numbers are the names of its test cases.
#pragma once

#include <vfolder/mail/error.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/message.hpp>
#include <vfolder/mail/search.hpp>
#include <vfolder/mail/status.hpp>
#include <vfolder/mail/types.hpp>
#include <vfolder/mail/view_state.hpp>

#include <concepts>
#include <optional>
#include <string_view>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

/// \brief One real mailbox that a virtual folder draws messages from.
///
/// All bulk operations take UID sets, so a remote backend (IMAP, a database) answers each
/// step of a sync in one round trip, not one per message. Every fallible call returns a
/// `result`; none throws for an expected failure.
///
/// Rules (each model keeps them; `tests/conformance/backend_conformance_test.cpp`):
///  - B1 Identity: while `status().validity` (and `guid`, when reported) is unchanged, a
///       UID never names another message, and an expunged UID never comes back.
///  - B2 Order: UIDs are assigned strictly increasing; every UID is below `uid_next`;
///       `exists` is the number of messages.
///  - B3 Search: `search(p)` returns exactly the UIDs of existing messages matching `p`;
///       `search(p, within)` the same intersected with `within` (UIDs in `within` that do
///       not exist are ignored).
///  - B4 Changes: `changes_since(m).changed` holds every existing message whose modseq is
///       above `m` (new messages included); `expunged`, when not nullopt, holds every UID
///       expunged after `m` (it may hold more: UIDs that never matched anything are fine);
///       `highest_modseq` equals `status().highest_modseq` at that time. `changes_since` of
///       the current highest modseq reports nothing changed.
///  - B5 Modseq: every flag or keyword change that changes something, and every append and
///       expunge, raises `highest_modseq`; a write that changes nothing does not.
///  - B6 Fetch: `fetch(uids, fields)` returns one record per existing UID of `uids`, in
///       ascending UID order, skipping UIDs that do not exist; the received date of a
///       message never changes.
///  - B7 Update: `update_flags(uids, op, f)` / `update_keywords(uids, op, k)` apply `op`
///       to each existing message of `uids` (others ignored); `\Recent` is never set.
///  - B8 Expunge: `expunge(uids)` removes the existing messages of `uids` (others
///       ignored); afterwards they are gone from search, fetch and status.
///  - B9 Failure: a failed call changes nothing the caller can observe except as its error
///       says; a deleted mailbox answers `errc::not_found` from every call, naming itself in
///       the message ("... (for backend mailbox NAME)"). A backend whose state went back
///       or was replaced behind it may answer `errc::inconsistent`: the engine then compares
///       the box in full instead of trusting `changes_since` (also done when HIGHESTMODSEQ
///       or UIDNEXT went down under the same UIDVALIDITY).
///  Complexity expectations (not checked): `status` O(1); `changes_since` O(log N + k);
///  `search(p, within)` O(|within|) evaluations.
// The member checks come before std::movable<B>: for a type without them the concept
// then fails without asking whether B is movable, which for wrappers that convert from
// anything (result<any_backend>) would recurse.
template <class B>
concept backend =
    requires(B& b, B const& cb, uid_set const& uids, search_program const& prog, modseq since,
             modify_op op, flag_set flags, keyword_set const& keywords, fetch_fields fields) {
        { cb.name() } -> std::convertible_to<std::string_view>;
        { b.status() } -> std::same_as<result<mailbox_status>>;
        { b.search(prog) } -> std::same_as<result<uid_set>>;
        { b.search(prog, uids) } -> std::same_as<result<uid_set>>;
        { b.changes_since(since) } -> std::same_as<result<change_set>>;
        { b.fetch(uids, fields) } -> std::same_as<result<std::vector<message_record>>>;
        { b.update_flags(uids, op, flags) } -> std::same_as<result<void>>;
        { b.update_keywords(uids, op, keywords) } -> std::same_as<result<void>>;
        { b.expunge(uids) } -> std::same_as<result<void>>;
    } && std::movable<B>;

/// \brief A backend that must be opened before use and can be closed to save resources;
/// the engine keeps at most N of them open (least recently used idle one closed first).
///
/// Rules: O1 `open()` on an open backend succeeds and changes nothing; O2 after `close()`,
/// `is_open()` is false and the next `backend` call may fail unless `open()` is called
/// again (the engine always opens first); O3 closing loses nothing committed.
template <class B>
concept openable_backend = backend<B> && requires(B& b, B const& cb) {
    { b.open() } -> std::same_as<result<void>>;
    b.close();
    { cb.is_open() } -> std::convertible_to<bool>;
};

/// \brief An `openable_backend` that can tell its status while closed, as IMAP STATUS or
/// a mailbox list index can: the engine asks a closed backend first and opens it only
/// when something changed since the last sync, so a folder over more backends than its
/// open limit does not reopen every backend at every sync.
///
/// Rule O4: `closed_status()` answers what `status()` would answer after `open()`, or
/// nullopt when it cannot tell without opening; a deleted mailbox answers `not_found`.
template <class B>
concept closed_status_backend = openable_backend<B> && requires(B& b) {
    { b.closed_status() } -> std::same_as<result<std::optional<mailbox_status>>>;
};

/// \brief Where a virtual folder's state persists between opens.
///
/// Rules (`tests/conformance/store_conformance_test.cpp`):
///  - S1 `load()` returns nullopt when nothing was ever committed (or after `reset()`),
///       else the state as of the last successful commit, i.e. what `apply` (view_state.hpp)
///       makes of the committed deltas in order.
///  - S2 A state that fails `validate` (or any store-level check) is reported as
///       `errc::corrupted`; the store never hands out a state it cannot vouch for.
///  - S3 `commit(d)` is atomic and durable when it returns success: a crash after it loses
///       nothing of `d`, a crash before or during it loses all of `d` and nothing else.
///  - S4 A failed commit changes nothing.
///  - S5 `reset()` discards the stored state (the next load returns nullopt).
template <class S>
concept view_store = requires(S& s, view_delta const& d) {
    { s.load() } -> std::same_as<result<std::optional<view_state>>>;
    { s.commit(d) } -> std::same_as<result<void>>;
    { s.reset() } -> std::same_as<result<void>>;
};

VFOLDER_END_NAMESPACE

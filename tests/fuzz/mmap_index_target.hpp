// The mmap_mailbox index fuzz target (MAILBOX-FORMAT.md §11.3): the input bytes become a
// mailbox's `index` file, which is then opened, queried and, when accepted, written to and
// compacted through the public API. Each input runs twice: as raw bytes, and with every
// checksum recomputed ("CRC fix-up": the slot CRCs, the entry CRCs of LIVE, KW and TAIL,
// base_crc and tail_chain_crc, using each slot's own offsets and counts), so that mutations
// reach the semantic checks instead of dying at the first checksum.
//
// Oracle, when an open succeeds (a violation aborts):
//  * status, search ALL, fetch of 1:*, changes_since(0) agree: the same UIDs, ascending,
//    all below UIDNEXT, `exists` of them; expunged UIDs are not live;
//  * changes_since(X) is a subset of changes_since(0), and empty at HIGHESTMODSEQ;
//  * commits (STORE +FLAGS \Flagged on 1:*, a keyword store on 1:*, an append, an expunge
//    of the highest UID) each either fail cleanly (not `corrupted`: the file was accepted)
//    or have their effect, and produce a file a fresh handle opens showing the same state;
//  * compact() likewise: a fresh handle shows exactly the state before it.
// A rejected file must be `corrupted`, `unsupported` or `not_possible`; never a crash.
#pragma once

#include "fuzz_common.hpp"

#include <vfolder/adapters/mmap/mmap_mailbox.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vfolder_fuzz {

namespace index_detail {

using namespace vfolder;
namespace md = vfolder::mmap_detail;

struct view {
    std::uint32_t exists = 0;
    std::uint32_t validity = 0;
    std::uint32_t uid_next = 0;
    std::uint64_t hms = 0;
    std::vector<message_record> recs;
    uid_set live;
    std::optional<uid_set> expunged;
    friend bool operator==(view const&, view const&) = default;
};

inline std::string describe(error const& e) { return e.message; }

template <class T>
T must(result<T> r, char const* what) {
    if (!r) oracle_fail(std::string(what) + " failed after a successful open: " + r.error_value().message);
    return std::move(*r);
}

// Reads the whole state through the public API and checks its internal consistency.
inline view read_view(mmap_mailbox& m) {
    view v;
    auto st = must(m.status(), "status");
    v.exists = st.exists;
    v.validity = value(st.validity);
    v.uid_next = value(st.uid_next);
    v.hms = value(st.highest_modseq);
    uid_set all;
    all.add_range(1, 0xFFFFFFFFU);
    v.recs = must(m.fetch(all, fetch_fields::all), "fetch");
    auto const s = must(m.search(search_program::all()), "search");
    auto const c = must(m.changes_since(modseq{0}), "changes_since(0)");
    for (std::size_t i = 0; i < v.recs.size(); ++i) {
        std::uint32_t const u = value(v.recs[i].id);
        if (i > 0 && value(v.recs[i - 1].id) >= u) oracle_fail("fetch: UIDs not ascending");
        if (u == 0 || u >= v.uid_next) oracle_fail("fetch: UID " + std::to_string(u) + " not in [1, UIDNEXT)");
        v.live.add(u);
    }
    if (v.recs.size() != v.exists) oracle_fail("exists " + std::to_string(v.exists) + " but " + std::to_string(v.recs.size()) + " fetched");
    if (!(s == v.live)) oracle_fail("search ALL differs from fetch 1:*");
    if (!(c.changed == v.live)) oracle_fail("changes_since(0).changed differs from fetch 1:*");
    if (value(c.highest_modseq) != v.hms) oracle_fail("changes_since(0).highest_modseq differs from status");
    v.expunged = c.expunged;
    if (v.expunged) {
        if (v.expunged->have_common(v.live)) oracle_fail("an expunged UID is live");
        if (!v.expunged->empty() && v.expunged->back().last >= v.uid_next) oracle_fail("an expunged UID is not below UIDNEXT");
    }
    for (std::uint64_t x : {std::uint64_t{1}, v.hms / 2, v.hms - 1, v.hms}) {
        auto const cx = must(m.changes_since(modseq{x}), "changes_since(X)");
        if (value(cx.highest_modseq) != v.hms) oracle_fail("changes_since(X).highest_modseq differs");
        uid_set extra = cx.changed;
        extra.remove_set(v.live);
        if (!extra.empty()) oracle_fail("changes_since(X).changed is not a subset of the live UIDs");
        if (x >= v.hms && !cx.changed.empty()) oracle_fail("changes_since(HIGHESTMODSEQ).changed is not empty");
        if (cx.expunged && v.expunged) {
            uid_set ex = *cx.expunged;
            ex.remove_set(*v.expunged);
            if (!ex.empty()) oracle_fail("changes_since(X).expunged is not a subset of changes_since(0).expunged");
            if (x >= v.hms && !cx.expunged->empty()) oracle_fail("changes_since(HIGHESTMODSEQ).expunged is not empty");
        }
    }
    static std::vector<search_program> const progs = [] {
        std::vector<search_program> p;
        for (char const* t : {"seen", "or flagged keyword Work", "larger 100", "before 1-Jan-1971"})
            if (auto r = search_program::parse(t)) p.push_back(*r);
        return p;
    }();
    for (auto const& p : progs) {
        auto const r = must(m.search(p), "search");
        uid_set extra = r;
        extra.remove_set(v.live);
        if (!extra.empty()) oracle_fail("search returned a UID that is not live");
    }
    if (!v.recs.empty()) (void)m.read_message(v.recs.front().id); // no message files: an error, never a crash
    return v;
}

inline bool commit_error_ok(error const& e) {
    // The file was accepted: its own commit must not find it corrupted.
    return e.is(errc::unsupported) || e.is(errc::not_possible);
}

// The CRC fix-up (see the file comment). Returns false when nothing could be fixed.
inline bool fix_crcs(std::vector<std::byte>& f) {
    bool any = false;
    std::uint64_t const size = f.size();
    for (std::uint64_t at : {std::uint64_t{0}, md::slot_b_off}) {
        if (size < at + md::slot_size) continue;
        md::slot_fields const s = md::decode_slot(std::span<std::byte const, md::slot_size>(f.data() + at, md::slot_size));
        if (!s.magic_ok) continue;
        any = true;
        std::uint32_t const seed = s.seed();
        auto seal = [&](std::uint64_t off, std::uint64_t count, std::uint32_t* chain) {
            if (off < md::base_off || off > size) return;
            count = std::min(count, (size - off) / md::entry_size);
            for (std::uint64_t i = 0; i < count; ++i) {
                std::byte* e = f.data() + off + md::entry_size * i;
                md::seal_entry(e, seed);
                if (chain != nullptr) *chain = md::crc32c_update(*chain, std::span<std::byte const>(e, md::entry_size));
            }
        };
        seal(s.live_off, s.live_count, nullptr);
        seal(s.kw_off, s.base_kw_count, nullptr);
        if (s.tail_off >= md::base_off && s.tail_off <= size) {
            std::uint32_t const base = md::crc32c_update(seed, std::span<std::byte const>(f.data() + md::base_off, s.tail_off - md::base_off));
            md::store_le<std::uint32_t>(f.data() + at + 108, base);
        }
        std::uint32_t chain = seed;
        seal(s.tail_off, s.tail_count, &chain);
        md::store_le<std::uint32_t>(f.data() + at + 156, chain);
        md::store_le<std::uint32_t>(f.data() + at + 252, md::crc32c_update(0, std::span<std::byte const>(f.data() + at, 252)));
    }
    return any;
}

inline void run_image(std::string const& box, std::span<std::byte const> img) {
    put_file(box + "/index", img);
    mmap_options opt;
    opt.name = "fuzz";
    opt.lock_timeout = std::chrono::milliseconds(1000);
    mmap_mailbox m(box, opt);
    if (auto o = m.open(); !o) {
        if (!rejection_ok(o.error_value())) oracle_fail("open: unexpected error kind: " + o.error_value().message);
        return;
    }
    view const v = read_view(m);

    // A commit on an accepted file.
    uid_set all;
    all.add_range(1, 0xFFFFFFFFU);
    if (auto w = m.update_flags(all, modify_op::add, system_flag::flagged); !w) {
        if (!commit_error_ok(w.error_value())) oracle_fail("commit on an accepted file: " + w.error_value().message);
        return;
    }
    view const after = read_view(m);
    {
        mmap_mailbox fresh(box, opt);
        if (auto o = fresh.open(); !o) oracle_fail("the file written by a commit does not open: " + o.error_value().message);
        if (!(read_view(fresh) == after)) oracle_fail("a fresh handle disagrees after a commit");
    }
    if (after.live != v.live || after.uid_next != v.uid_next) oracle_fail("a flag change changed the UIDs");
    for (auto const& r : after.recs)
        if (!r.flags.contains(system_flag::flagged)) oracle_fail("STORE +FLAGS \\Flagged 1:* left a message unflagged");
    // A keyword store (may define keyword 129: not_possible), an append (UIDs or modseqs
    // may be exhausted: not_possible) and an expunge of the highest UID.
    keyword_set fk;
    fk.insert("FuzzKw");
    if (auto w = m.update_keywords(all, modify_op::add, fk); !w) {
        if (!commit_error_ok(w.error_value())) oracle_fail("keyword store on an accepted file: " + w.error_value().message);
    } else {
        for (auto const& r : read_view(m).recs)
            if (r.keywords.count("FuzzKw") == 0) oracle_fail("STORE +FLAGS (FuzzKw) 1:* left a message without it");
    }
    if (auto a = m.append("fuzz", mail_time{0}, system_flag::seen); !a) {
        if (!commit_error_ok(a.error_value())) oracle_fail("append to an accepted file: " + a.error_value().message);
    } else {
        if (value(*a) != after.uid_next) oracle_fail("append did not get UIDNEXT");
        auto const b = m.read_message(*a);
        if (!b || *b != "fuzz") oracle_fail("the appended message does not read back");
    }
    view const grown = read_view(m);
    if (!grown.recs.empty()) {
        uid const top = grown.recs.back().id;
        if (auto x = m.expunge(uid_set{{value(top), value(top)}}); !x) {
            if (!commit_error_ok(x.error_value())) oracle_fail("expunge on an accepted file: " + x.error_value().message);
        } else {
            auto const c = must(m.changes_since(modseq{grown.hms}), "changes_since");
            if (!c.expunged || !c.expunged->contains(value(top))) oracle_fail("an expunged UID is not reported vanished");
            if (c.changed.contains(value(top))) oracle_fail("an expunged UID is reported changed");
        }
    }
    view const before_compact = read_view(m);
    {
        mmap_mailbox fresh(box, opt);
        if (auto o = fresh.open(); !o) oracle_fail("the file written by the commits does not open: " + o.error_value().message);
        if (!(read_view(fresh) == before_compact)) oracle_fail("a fresh handle disagrees after the commits");
    }

    // Compaction keeps the logical state.
    if (auto c = m.compact(); !c) {
        if (!commit_error_ok(c.error_value())) oracle_fail("compact of an accepted file: " + c.error_value().message);
        return;
    }
    mmap_mailbox fresh(box, opt);
    if (auto o = fresh.open(); !o) oracle_fail("the compacted file does not open: " + o.error_value().message);
    if (!(read_view(fresh) == before_compact)) oracle_fail("compaction changed the state");
}

} // namespace index_detail

/// \brief One fuzz input: see the file comment.
inline int mmap_index_one(std::uint8_t const* data, std::size_t size) {
    static std::string const box = [] {
        std::string b = scratch_dir() + "/box";
        if (auto r = vfolder::mmap_mailbox::create(b, vfolder::uid_validity{1}); !r)
            oracle_fail("cannot create the scratch mailbox: " + r.error_value().message);
        return b;
    }();
    std::span<std::byte const> const raw(reinterpret_cast<std::byte const*>(data), size);
    index_detail::run_image(box, raw);
    std::vector<std::byte> fixed(raw.begin(), raw.end());
    if (index_detail::fix_crcs(fixed) && !std::equal(fixed.begin(), fixed.end(), raw.begin()))
        index_detail::run_image(box, fixed);
    return 0;
}

} // namespace vfolder_fuzz

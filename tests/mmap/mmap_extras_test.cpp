// mmap_mailbox extras: the modseq.hwm sidecar (§10 case 3), keyword reclaim at compaction
// (§8.4), append_batch through the provider.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/adapters/mmap/mmap_provider.hpp>

#include <doctest/doctest.h>
#include "support/mmap_files.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace vfolder;
using namespace vfolder::mmap_detail;

namespace {

using vfolder_test::temp_dir;
using vfolder_test::read_file;
using vfolder_test::write_file;


keyword_set kws(std::initializer_list<std::string> names) {
    keyword_set k;
    for (auto const& n : names) k.insert(n);
    return k;
}

mmap_options opts(std::string name, std::uint64_t step = default_hwm_step) {
    mmap_options o = vfolder_test::own_options(std::move(name));
    o.hwm_step = step;
    return o;
}

std::vector<std::uint32_t> live_uids(mmap_mailbox& m) {
    std::vector<std::uint32_t> out;
    auto s = m.search(search_program::all());
    REQUIRE(s.has_value());
    for (auto const& r : *s)
        for (std::uint64_t u = r.first; u <= r.last; ++u) out.push_back(static_cast<std::uint32_t>(u));
    return out;
}

struct reset_hooks {
    ~reset_hooks() { io_hooks() = {}; }
};

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

} // namespace

// ------------------------------------------------------------------ modseq.hwm

TEST_CASE("modseq.hwm: encode/parse round trip; any damage reads as unknown") {
    hwm_mark const m{9, 131072, 70000};
    std::string const text = encode_hwm(m);
    auto p = parse_hwm(text);
    REQUIRE(p.has_value());
    CHECK(*p == m);
    for (std::size_t i = 0; i < text.size(); ++i) {
        CAPTURE(i);
        std::string g = text;
        g[i] = static_cast<char>(g[i] ^ 0x01);
        CHECK_FALSE(parse_hwm(g).has_value());
        CHECK_FALSE(parse_hwm(text.substr(0, i)).has_value()); // truncated
    }
    CHECK_FALSE(parse_hwm(text + "x").has_value());
    CHECK_FALSE(parse_hwm("").has_value());
    CHECK_FALSE(parse_hwm(encode_hwm({0, 5, 5})).has_value()); // zero fields are not written
    CHECK_FALSE(parse_hwm(encode_hwm({9, 5, std::uint64_t{1} << 32})).has_value());
}

TEST_CASE("modseq.hwm: the next mark is step..2*step above; a rewrite is due within step/2") {
    for (std::uint64_t step : {std::uint64_t{2}, std::uint64_t{4}, std::uint64_t{65536}}) {
        for (std::uint64_t hms : {std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{65535}, std::uint64_t{1} << 40}) {
            CAPTURE(step);
            CAPTURE(hms);
            hwm_mark const m = next_hwm(7, hms, 100, step);
            CHECK(m.uidvalidity == 7);
            CHECK(m.modseq >= hms + step);
            CHECK(m.modseq <= hms + 2 * step);
            CHECK(m.modseq % step == 0);
            CHECK(m.uidnext == 100 + (m.modseq - hms));
            CHECK_FALSE(hwm_rewrite_needed(m, 7, hms, 100, step));
            CHECK(hwm_rewrite_needed(m, 8, hms, 100, step));             // another UIDVALIDITY
            CHECK(hwm_rewrite_needed(std::nullopt, 7, hms, 100, step));  // unknown
            CHECK(hwm_rewrite_needed(m, 7, m.modseq, 100, step));        // reached
            CHECK(hwm_rewrite_needed(m, 7, hms, m.uidnext, step));       // uidnext reached
        }
    }
    constexpr std::uint64_t top = (std::uint64_t{1} << 63) - 1;
    hwm_mark const t = next_hwm(1, top - 3, 0xFFFFFFF0U, 65536);
    CHECK(t.modseq == top);
    CHECK(t.uidnext == 0xFFFFFFF3U);
    CHECK(next_hwm(1, 5, 0xFFFFFFFEU, 65536).uidnext == 0xFFFFFFFFU);
    CHECK_FALSE(hwm_rewrite_needed(t, 1, top, 0xFFFFFFF3U, 65536)); // at the top: nothing more to cover
}

TEST_CASE("modseq.hwm: create writes it; every published highestmodseq and uidnext stays below the persisted mark") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    auto first = read_hwm(dir + "/modseq.hwm");
    REQUIRE(first.has_value());
    CHECK(first->uidvalidity == 9);
    CHECK(first->modseq >= 1 + default_hwm_step);

    constexpr std::uint64_t step = 4;
    // As if created with the small step (create uses the default one).
    REQUIRE(write_hwm(dir, next_hwm(9, 1, 1, step)).has_value());
    first = read_hwm(dir + "/modseq.hwm");
    REQUIRE(first.has_value());
    reset_hooks reset;
    // At every header slot write (the publication of a commit), read the mark on disk.
    std::optional<hwm_mark> at_publish;
    int sidecar_writes = 0;
    io_hooks().write = [&](std::string_view p, std::uint64_t off, std::size_t size) {
        if (ends_with(p, "/index") && (off == 0 || off == slot_b_off) && size == slot_size)
            at_publish = read_hwm(dir + "/modseq.hwm");
        if (ends_with(p, "/modseq.hwm.new")) ++sidecar_writes;
        return write_decision{};
    };
    mmap_mailbox m(dir, opts("M", step));
    int commits = 0;
    bool on = false;
    for (int i = 0; i < 60; ++i) {
        CAPTURE(i);
        at_publish.reset();
        if (i % 3 == 0) {
            std::vector<mmap_mailbox::new_message> batch(static_cast<std::size_t>(1 + i % 5));
            for (auto& b : batch) b = {"body", mail_time{100}, {}, {}};
            REQUIRE(m.append_batch(batch).has_value());
        } else {
            on = !on;
            REQUIRE(m.update_flags(uid_set{{1, 1}}, on ? modify_op::add : modify_op::remove, system_flag::flagged)
                        .has_value());
        }
        ++commits;
        auto st = m.status();
        REQUIRE(st.has_value());
        REQUIRE(at_publish.has_value()); // a commit was published, and the mark was there before it
        CHECK(at_publish->uidvalidity == 9);
        CHECK(value(st->highest_modseq) <= at_publish->modseq);
        CHECK(value(st->uid_next) <= at_publish->uidnext);
    }
    auto st = m.status();
    REQUIRE(st.has_value());
    // The modseqs went far past the first mark: it was rewritten as they went (each mark
    // covers at most 2*step more, a commit at most 5 modseqs), though not at every commit.
    std::uint64_t const hms = value(st->highest_modseq);
    CHECK(hms > first->modseq + 50);
    CHECK(sidecar_writes >= static_cast<int>((hms - first->modseq) / (2 * step + 5)));
    CHECK(sidecar_writes < commits);
}

TEST_CASE("modseq.hwm: a failed sidecar write fails the commit cleanly; the next one succeeds") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    REQUIRE(write_hwm(dir, next_hwm(9, 1, 1, 4)).has_value()); // as if created with the small step
    mmap_mailbox m(dir, opts("M", 4));
    REQUIRE(m.append("one", mail_time{1}).has_value());
    reset_hooks reset;
    for (int kind = 0; kind < 2; ++kind) {
        CAPTURE(kind);
        if (kind == 0)
            io_hooks().write = [](std::string_view p, std::uint64_t, std::size_t) {
                return ends_with(p, "/modseq.hwm.new") ? write_decision{ENOSPC} : write_decision{};
            };
        else
            io_hooks().fsync = [](std::string_view p) { return ends_with(p, "/modseq.hwm.new") ? EIO : 0; };
        // Commits succeed until one would pass the mark: that one fails, publishing nothing.
        bool failed = false;
        for (int i = 0; i < 10 && !failed; ++i) {
            auto before = m.status();
            REQUIRE(before.has_value());
            auto const mark = read_hwm(dir + "/modseq.hwm");
            REQUIRE(mark.has_value());
            auto r = m.update_flags(uid_set{{1, 1}}, i % 2 == 0 ? modify_op::add : modify_op::remove,
                                    system_flag::flagged);
            if (r) {
                CHECK(value(m.status()->highest_modseq) <= mark->modseq);
                continue;
            }
            failed = true;
            CHECK(r.error_value().is(errc::io));
            CHECK(r.error_value().message.find("(for backend mailbox M)") != std::string::npos);
            auto after = m.status();
            REQUIRE(after.has_value());
            CHECK(after->highest_modseq == before->highest_modseq);
            mmap_mailbox fresh(dir, opts("F"));
            CHECK(fresh.status()->highest_modseq == before->highest_modseq);
            CHECK(read_hwm(dir + "/modseq.hwm") == mark); // the old mark, whole
            CHECK_FALSE(std::filesystem::exists(dir + "/tmp/modseq.hwm.new"));
        }
        CHECK(failed);
        io_hooks() = {};
        REQUIRE(m.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::answered).has_value());
        CHECK(value(m.status()->highest_modseq) <= read_hwm(dir + "/modseq.hwm")->modseq);
    }
}

namespace {
// A mailbox with history: appends, flag changes, expunges (including the highest UID),
// a compaction. Returns (highestmodseq, uidnext) published last.
std::pair<std::uint64_t, std::uint32_t> make_history(std::string const& dir, std::uint64_t step) {
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    REQUIRE(write_hwm(dir, next_hwm(9, 1, 1, step)).has_value()); // as if created with `step`
    mmap_mailbox m(dir, opts("H", step));
    for (int i = 0; i < 12; ++i)
        REQUIRE(m.append("msg " + std::to_string(i), mail_time{100 + i}, system_flag::seen, kws({"K1"})).has_value());
    REQUIRE(m.expunge(uid_set{{3, 4}}).has_value());
    REQUIRE(m.compact().has_value());
    for (int i = 0; i < 10; ++i)
        REQUIRE(m.update_flags(uid_set{{1, 2}}, i % 2 == 0 ? modify_op::add : modify_op::remove, system_flag::flagged)
                    .has_value());
    REQUIRE(m.expunge(uid_set{{12, 12}}).has_value()); // the highest UID: uidnext stays above the files
    auto st = m.status();
    REQUIRE(st.has_value());
    return {value(st->highest_modseq), value(st->uid_next)};
}

void zero_slots(std::string const& dir) {
    auto f = read_file(dir + "/index");
    for (std::size_t i = 0; i < slot_size; ++i) f[i] = f[slot_b_off + i] = std::byte{0};
    write_file(dir + "/index", f);
}
} // namespace

TEST_CASE("modseq.hwm: a rebuild with the sidecar keeps UIDVALIDITY, new modseqs and UIDs above all published") {
    for (std::uint64_t step : {std::uint64_t{4}, default_hwm_step}) {
        CAPTURE(step);
        temp_dir t;
        std::string const dir = t.path + "/box";
        auto const [hms, next] = make_history(dir, step);
        zero_slots(dir);
        auto r = mmap_mailbox::repair(dir, opts("R", step));
        REQUIRE(r.has_value());
        CHECK(r->done == mmap_repair_report::action::rebuilt);
        CHECK(r->uidvalidity_kept);
        CHECK(r->uidvalidity_why.find("kept") != std::string::npos);
        CHECK(r->old_uidvalidity == 0); // no slot
        CHECK(r->new_uidvalidity == 9);
        CHECK(r->hwm_modseq >= hms);
        CHECK(r->new_highestmodseq > hms);

        mmap_mailbox m(dir, opts("A", step));
        auto st = m.status();
        REQUIRE(st.has_value());
        CHECK(value(st->validity) == 9);
        CHECK(value(st->uid_next) >= next);
        auto const live = live_uids(m);
        CHECK(live == std::vector<std::uint32_t>{1, 2, 5, 6, 7, 8, 9, 10, 11});
        // Every live message has a modseq above every modseq published before: a client
        // that synced at `hms` (or earlier) sees all of them as changed.
        auto ch = m.changes_since(modseq{hms});
        REQUIRE(ch.has_value());
        uid_set want;
        for (auto u : live) want.add(u);
        CHECK(ch->changed == want);
        // New UIDs never reuse one published before (12 was expunged; uidnext was `next`).
        auto u = m.append("new", mail_time{500});
        REQUIRE(u.has_value());
        CHECK(value(*u) >= next);
        auto side = read_hwm(dir + "/modseq.hwm");
        REQUIRE(side.has_value());
        CHECK(side->uidvalidity == 9);
        CHECK(side->modseq >= value(m.status()->highest_modseq));
        // And a second loss of both slots keeps going up.
        auto const hms2 = value(m.status()->highest_modseq);
        m.close();
        zero_slots(dir);
        auto r2 = mmap_mailbox::repair(dir, opts("R", step));
        REQUIRE(r2.has_value());
        CHECK(r2->uidvalidity_kept);
        CHECK(r2->new_highestmodseq > hms2);
    }
}

TEST_CASE("modseq.hwm: a rebuild without a valid sidecar changes UIDVALIDITY") {
    for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(variant);
        temp_dir t;
        std::string const dir = t.path + "/box";
        auto const [hms, next] = make_history(dir, 4);
        (void)next;
        std::string const side = dir + "/modseq.hwm";
        if (variant == 0) {
            REQUIRE(std::filesystem::remove(side));
        } else if (variant == 1) {
            auto f = read_file(side);
            f[f.size() / 2] ^= std::byte{0x04}; // garbled: the CRC fails
            write_file(side, f);
        } else if (variant == 2) {
            write_file(side, {}); // empty
        } else {
            // A valid sidecar of another UIDVALIDITY, with a surviving slot whose base is bad.
            auto const mark = read_hwm(side);
            REQUIRE(mark.has_value());
            std::string const text = encode_hwm({8, mark->modseq, mark->uidnext});
            write_file(side, std::vector<std::byte>(reinterpret_cast<std::byte const*>(text.data()),
                                                    reinterpret_cast<std::byte const*>(text.data()) + text.size()));
        }
        if (variant == 3) {
            auto f = read_file(dir + "/index");
            f[base_off + 20] ^= std::byte{0x10}; // a LIVE entry: base_crc fails
            write_file(dir + "/index", f);
        } else {
            zero_slots(dir);
        }
        auto r = mmap_mailbox::repair(dir, opts("R", 4));
        REQUIRE(r.has_value());
        CHECK(r->done == mmap_repair_report::action::rebuilt);
        CHECK_FALSE(r->uidvalidity_kept);
        CHECK(r->hwm_modseq == 0);
        CHECK(r->uidvalidity_why.find("changes") != std::string::npos);
        CHECK(r->new_uidvalidity > 9);
        mmap_mailbox m(dir, opts("A"));
        CHECK(value(m.status()->validity) == r->new_uidvalidity);
        // The sidecar now describes the new UIDVALIDITY.
        auto after = read_hwm(side);
        REQUIRE(after.has_value());
        CHECK(after->uidvalidity == r->new_uidvalidity);
        CHECK(after->modseq >= r->new_highestmodseq);
    }
}

TEST_CASE("modseq.hwm: a salvage (case 2) keeps UIDVALIDITY from the slot and raises the sidecar") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    auto const [hms, next] = make_history(dir, 4);
    (void)next;
    REQUIRE(std::filesystem::remove(dir + "/modseq.hwm"));
    auto f = read_file(dir + "/index");
    std::uint64_t const tail_off = [&] {
        auto sa = decode_slot(std::span<std::byte const, slot_size>(f.data(), slot_size));
        auto sb = decode_slot(std::span<std::byte const, slot_size>(f.data() + slot_b_off, slot_size));
        return (sa.generation > sb.generation ? sa : sb).tail_off;
    }();
    f[tail_off + entry_size + 30] ^= std::byte{0x01}; // the second tail entry
    write_file(dir + "/index", f);
    auto r = mmap_mailbox::repair(dir, opts("R", 4));
    REQUIRE(r.has_value());
    CHECK(r->done == mmap_repair_report::action::salvaged);
    CHECK(r->uidvalidity_kept);
    CHECK(r->new_uidvalidity == 9);
    auto side = read_hwm(dir + "/modseq.hwm");
    REQUIRE(side.has_value());
    CHECK(side->uidvalidity == 9);
    CHECK(side->modseq >= r->new_highestmodseq);
}

// ------------------------------------------------------------------ keyword reclaim

namespace {
keyword_set numbered(int from, int to) {
    keyword_set k;
    for (int i = from; i < to; ++i) k.insert("k" + std::to_string(i));
    return k;
}
keyword_set keywords_of(mmap_mailbox& m, std::uint32_t u) {
    auto r = m.fetch(uid_set{{u, u}}, fetch_fields::flags);
    REQUIRE(r.has_value());
    REQUIRE(r->size() == 1);
    return (*r)[0].keywords;
}
std::uint32_t index_kw_count(std::string const& dir) {
    auto f = read_file(dir + "/index");
    auto sa = decode_slot(std::span<std::byte const, slot_size>(f.data(), slot_size));
    auto sb = decode_slot(std::span<std::byte const, slot_size>(f.data() + slot_b_off, slot_size));
    return (sa.generation > sb.generation ? sa : sb).kw_count;
}
} // namespace

TEST_CASE("keyword reclaim: 128 keywords defined then cleared; compaction drops the unused, a new keyword works") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    mmap_mailbox m(dir, opts("M"));
    REQUIRE(m.append("one", mail_time{1}, {}, numbered(0, 64)).has_value());
    REQUIRE(m.append("two", mail_time{2}, {}, numbered(64, 128)).has_value());
    REQUIRE_FALSE(m.append("three", mail_time{3}, {}, kws({"k7", "k100", "Case"})).has_value()); // 129th: full
    CHECK(index_kw_count(dir) == 128);
    auto full = m.update_keywords(uid_set{{1, 1}}, modify_op::add, kws({"extra"}));
    REQUIRE_FALSE(full.has_value());
    CHECK(full.error_value().is(errc::not_possible));
    // Clear them, except k100 on 2 and k7 on 1 (kept, renumbered to 0 and 1).
    REQUIRE(m.update_keywords(uid_set{{1, 1}}, modify_op::replace, kws({"k7"})).has_value());
    REQUIRE(m.update_keywords(uid_set{{2, 2}}, modify_op::replace, kws({"k100"})).has_value());
    CHECK(m.compaction_worthwhile()); // > 96 defined, some unused: the close of the last handle compacts

    // A reader with a state of its own, holding the snapshot before the compaction.
    mmap_mailbox r(dir, opts("R"));
    CHECK(keywords_of(r, 1) == kws({"k7"}));
    auto const gen = r.generation();
    REQUIRE(m.compact().has_value());
    CHECK(index_kw_count(dir) == 2);
    CHECK_FALSE(m.compaction_worthwhile());
    CHECK(keywords_of(m, 1) == kws({"k7"}));
    CHECK(keywords_of(m, 2) == kws({"k100"}));
    // The reader still answers from its snapshot's names, then moves to the new file.
    CHECK(r.generation() == gen);
    CHECK(keywords_of(r, 1) == kws({"k7"}));
    CHECK(keywords_of(r, 2) == kws({"k100"}));
    CHECK(r.generation() > gen);
    // New keywords work again; the old names keep their messages; names stay case-sensitive.
    REQUIRE(m.update_keywords(uid_set{{1, 1}}, modify_op::add, kws({"extra", "K7"})).has_value());
    CHECK(keywords_of(m, 1) == kws({"k7", "K7", "extra"}));
    auto u3 = m.append("three", mail_time{3}, {}, numbered(0, 100));
    REQUIRE(u3.has_value());
    CHECK(keywords_of(r, 1) == kws({"k7", "K7", "extra"}));
    CHECK(keywords_of(r, value(*u3)) == numbered(0, 100));
    CHECK(index_kw_count(dir) == 2 + 2 + 99); // k7, k100, extra, K7, k0..k99 without k7
    mmap_mailbox fresh(dir, opts("F"));
    CHECK(keywords_of(fresh, 2) == kws({"k100"}));
}

TEST_CASE("keyword reclaim: the last close compacts when more than 96 are defined and some unused") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{9}).has_value());
    {
        mmap_options o = opts("M");
        o.auto_compact = true;
        mmap_mailbox m(dir, o);
        REQUIRE(m.append("one", mail_time{1}, {}, numbered(0, 97)).has_value());
        REQUIRE(m.update_keywords(uid_set{{1, 1}}, modify_op::remove, numbered(1, 97)).has_value());
        CHECK(m.compaction_worthwhile());
    }
    CHECK(index_kw_count(dir) == 1);
    {
        mmap_options o = opts("M");
        o.auto_compact = true;
        mmap_mailbox m(dir, o);
        REQUIRE(m.append("two", mail_time{2}, {}, numbered(0, 96)).has_value()); // 96 defined, all used
        REQUIRE(m.update_keywords(uid_set{{2, 2}}, modify_op::remove, numbered(1, 96)).has_value());
        CHECK_FALSE(m.compaction_worthwhile()); // not above 96
    }
    CHECK(index_kw_count(dir) == 96);
    mmap_mailbox m(dir, opts("A"));
    CHECK(keywords_of(m, 1) == kws({"k0"}));
    CHECK(keywords_of(m, 2) == kws({"k0"}));
}

TEST_CASE("keyword reclaim: the built-file check compares names, so a wrong remap aborts the compaction") {
    // The state before (keywords a b c d; message 1 has b d, message 3 has d) and a
    // renumbered copy (b d): the copy passes the check against the original; a copy with
    // message 3 pointed at "b" instead of "d" does not.
    mailbox_state s;
    s.hdr.uidvalidity = 9;
    s.hdr.uidnext = 4;
    s.hdr.highestmodseq = 10;
    auto fill = [](mailbox_state& st, std::vector<std::string> kw,
                   std::initializer_list<std::pair<std::uint32_t, std::vector<std::uint32_t>>> msgs) {
        st.kw = std::move(kw);
        st.kw_index.clear();
        for (std::uint32_t i = 0; i < st.kw.size(); ++i) st.kw_index.emplace(st.kw[i], i);
        st.live.clear();
        st.by_mod.clear();
        std::uint64_t mod = 5;
        for (auto const& [u, bits] : msgs) {
            live_msg m;
            m.img.uid = u;
            m.img.modseq = m.img.created_modseq = mod;
            m.img.date = 1;
            for (auto b : bits) {
                m.img.set_kw(b);
                m.kws.insert(st.kw[b]);
            }
            st.live.emplace(u, m);
            st.by_mod.emplace(mod, u);
            mod += 4;
        }
    };
    fill(s, {"a", "b", "c", "d"}, {{1, {1, 3}}, {3, {3}}});
    auto const empty = std::span<std::pair<std::uint64_t, std::uint32_t> const>{};
    mailbox_state r = s;
    fill(r, {"b", "d"}, {{1, {0, 1}}, {3, {1}}});
    auto good = build_index_file(r, r.hdr, 2, 77, empty);
    CHECK(check_built_file(good, s, empty, "x").has_value());
    mailbox_state bad_state = s;
    fill(bad_state, {"b", "d"}, {{1, {0, 1}}, {3, {0}}});
    auto bad = build_index_file(bad_state, bad_state.hdr, 2, 77, empty);
    auto c = check_built_file(bad, s, empty, "x");
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error_value().message.find("uid 3 differs") != std::string::npos);
}

// ------------------------------------------------------------------ the provider

TEST_CASE("mmap_provider: make() gives the mmap_mailbox itself, so append_batch is reachable") {
    temp_dir t;
    mmap_provider p(t.path);
    REQUIRE(p.create("Archive/2020").has_value());
    auto engine_side = p.make("Archive/2020");
    REQUIRE(engine_side.has_value());
    REQUIRE(engine_side->open().has_value());
    auto host = p.make("Archive/2020");
    REQUIRE(host.has_value());
    mmap_mailbox::new_message const msgs[] = {{"a", mail_time{1}, system_flag::seen, kws({"X"})},
                                               {"bb", mail_time{2}, {}, {}}};
    auto uids = host->append_batch(msgs);
    REQUIRE(uids.has_value());
    CHECK(*uids == std::vector<uid>{uid{1}, uid{2}});
    CHECK(host->shared_handles() == 2); // one state with the other handle of the process
    auto st = engine_side->status();
    REQUIRE(st.has_value());
    CHECK(st->exists == 2);
    CHECK(keywords_of(*engine_side, 1) == kws({"X"}));
    CHECK(*engine_side->read_message(uid{2}) == "bb");
}

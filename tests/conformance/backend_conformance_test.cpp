// The backend conformance suite: rules B1-B9 of vfolder::backend, O1-O3 of
// vfolder::openable_backend and O4 of vfolder::closed_status_backend (concepts.hpp), one
// TEST_CASE_TEMPLATE per rule, run on every fixture of VFOLDER_BACKEND_FIXTURES
// (backend_fixture.hpp explains how an adapter joins).
//
// Every test drives the backend through a `harness`, which mirrors each write (the
// fixture's host-side ones and the backend's own) in a naive model: a std::map from UID to
// the message's received date, flags, keywords and size, plus the number of the event
// that last changed it. The backend's answers are compared with what the model says the
// rules require; modseqs are compared only through snapshots (the backend's highest
// modseq and the model's event count taken at the same moment), since a backend chooses
// its own modseq values.
#include "conformance/backend_fixture.hpp"

#include <vfolder/concepts.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/message.hpp>
#include <vfolder/mail/search.hpp>
#include <vfolder/mail/types.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace vfolder;

// 2020-02-01T00:00:00Z.
constexpr std::int64_t feb1_2020 = 1580515200;
constexpr std::int64_t day_s = 86400;

// `n` days after 1-Feb-2020, at `hour` UTC.
mail_time day(std::int64_t n, std::int64_t hour = 12) {
    return mail_time{feb1_2020 + n * day_s + hour * 3600};
}

uid_set set_of(std::initializer_list<std::uint32_t> values) {
    uid_set s;
    for (auto v : values) s.add(v);
    return s;
}
uid_set set_of(std::initializer_list<uid> values) {
    uid_set s;
    for (auto v : values) s.add(value(v));
    return s;
}

keyword_set kws(std::initializer_list<char const*> names) {
    keyword_set k;
    for (auto const* n : names) k.insert(n);
    return k;
}

search_program prog(std::string_view text) {
    auto r = search_program::parse(text);
    INFO("program: ", text);
    REQUIRE(r.has_value());
    return *r;
}

template <class T>
std::string what(result<T> const& r) {
    return r.has_value() ? std::string() : r.error_value().message;
}

bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

flag_set const recent_flag = system_flag::recent;

// The reference meaning of an update (written out rather than taken from flags.hpp).
flag_set model_apply(flag_set cur, modify_op op, flag_set f) {
    f -= recent_flag;
    switch (op) {
    case modify_op::add: return cur | f;
    case modify_op::remove: return cur - f;
    case modify_op::replace: return f;
    }
    return cur;
}
keyword_set model_apply(keyword_set cur, modify_op op, keyword_set const& k) {
    switch (op) {
    case modify_op::add:
        for (auto const& n : k) cur.insert(n);
        return cur;
    case modify_op::remove:
        for (auto const& n : k) cur.erase(n);
        return cur;
    case modify_op::replace: return k;
    }
    return cur;
}

struct model_message {
    mail_time received{};
    flag_set flags;
    keyword_set keywords;
    std::uint64_t size = 0;
    std::uint64_t changed_at = 0; ///< the event that last changed it (its append included)
};

/// The backend's highest modseq and the model's event count, taken at the same moment.
struct snapshot {
    modseq highest{};
    std::uint64_t event = 0;
};

template <class F>
class harness {
public:
    F f;

    typename F::backend_type& be() { return f.backend(); }

    // ------------------------------------------------------------ host-side writes
    uid append(mail_time t, flag_set fl = {}, keyword_set k = {}, std::uint64_t size = 0) {
        uid const u = f.append(t, fl, k, size);
        INFO("appended UID ", value(u), ", previous highest ", highest_assigned_);
        CHECK(value(u) > highest_assigned_); // B2: strictly increasing, never reused
        highest_assigned_ = value(u);
        msgs_[value(u)] = {t, fl - recent_flag, std::move(k), size, ++events_};
        return u;
    }
    void host_set_flags(uid u, flag_set fl) {
        f.host_set_flags(u, fl);
        change(value(u), [&](model_message& m) { m.flags = fl - recent_flag; });
    }
    void host_set_keywords(uid u, keyword_set const& k) {
        f.host_set_keywords(u, k);
        change(value(u), [&](model_message& m) { m.keywords = k; });
    }
    void host_expunge(uid u) {
        f.host_expunge(u);
        gone(value(u));
    }

    // ------------------------------------------------------------ backend writes, mirrored
    void update_flags(uid_set const& s, modify_op op, flag_set fl) {
        auto r = be().update_flags(s, op, fl);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        for (auto u : existing_in(s))
            change(u, [&](model_message& m) { m.flags = model_apply(m.flags, op, fl); });
    }
    void update_keywords(uid_set const& s, modify_op op, keyword_set const& k) {
        auto r = be().update_keywords(s, op, k);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        for (auto u : existing_in(s))
            change(u, [&](model_message& m) { m.keywords = model_apply(m.keywords, op, k); });
    }
    void expunge(uid_set const& s) {
        auto r = be().expunge(s);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        for (auto u : existing_in(s)) gone(u);
    }

    // ------------------------------------------------------------ backend reads
    mailbox_status status() {
        auto r = be().status();
        REQUIRE_MESSAGE(r.has_value(), what(r));
        return *r;
    }
    modseq highest() { return status().highest_modseq; }
    snapshot snap() { return {highest(), events_}; }

    uid_set search(search_program const& p) {
        auto r = be().search(p);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        return *r;
    }
    uid_set search(search_program const& p, uid_set const& within) {
        auto r = be().search(p, within);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        return *r;
    }
    std::vector<message_record> fetch(uid_set const& s, fetch_fields fields = fetch_fields::all) {
        auto r = be().fetch(s, fields);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        return *r;
    }
    change_set changes(modseq m) {
        auto r = be().changes_since(m);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        return *r;
    }

    // ------------------------------------------------------------ the model
    [[nodiscard]] std::map<std::uint32_t, model_message> const& messages() const { return msgs_; }
    [[nodiscard]] model_message const& message(uid u) const { return msgs_.at(value(u)); }
    [[nodiscard]] std::uint32_t highest_assigned() const { return highest_assigned_; }
    [[nodiscard]] std::uint64_t events() const { return events_; }
    [[nodiscard]] std::vector<std::uint32_t> expunged_uids() const {
        std::vector<std::uint32_t> out;
        for (auto const& [u, e] : expunged_) out.push_back(u);
        return out;
    }

    [[nodiscard]] std::vector<std::uint32_t> existing_in(uid_set const& s) const {
        std::vector<std::uint32_t> out;
        for (auto const& [u, m] : msgs_)
            if (s.contains(u)) out.push_back(u);
        return out;
    }
    [[nodiscard]] uid_set existing() const {
        uid_set out;
        for (auto const& [u, m] : msgs_) out.add(u);
        return out;
    }
    [[nodiscard]] uid_set matching(search_program const& p) const {
        uid_set out;
        for (auto const& [u, m] : msgs_)
            if (p.matches(message_meta{m.flags, &m.keywords, m.received, m.size})) out.add(u);
        return out;
    }
    [[nodiscard]] uid_set matching(search_program const& p, uid_set const& within) const {
        uid_set out = matching(p);
        out.intersect(within);
        return out;
    }
    [[nodiscard]] uid_set changed_after(snapshot const& s) const {
        uid_set out;
        for (auto const& [u, m] : msgs_)
            if (m.changed_at > s.event) out.add(u);
        return out;
    }
    [[nodiscard]] uid_set expunged_after(snapshot const& s) const {
        uid_set out;
        for (auto const& [u, e] : expunged_)
            if (e > s.event) out.add(u);
        return out;
    }

    // ------------------------------------------------------------ checks
    /// B6: fetch(s, fields) against the model.
    void check_fetch(uid_set const& s, fetch_fields fields = fetch_fields::all) {
        INFO("fetch of ", doctest::toString(s), " fields ", static_cast<int>(fields));
        auto const recs = fetch(s, fields);
        std::vector<std::uint32_t> got;
        for (auto const& r : recs) got.push_back(value(r.id));
        CHECK(got == existing_in(s));
        for (auto const& r : recs) {
            auto it = msgs_.find(value(r.id));
            if (it == msgs_.end()) continue;
            INFO("UID ", value(r.id));
            auto const& m = it->second;
            if (has(fields, fetch_fields::received)) CHECK(r.received == m.received);
            if (has(fields, fetch_fields::size)) CHECK(r.size == m.size);
            if (has(fields, fetch_fields::flags)) {
                CHECK(r.flags.bits() == m.flags.bits());
                CHECK(r.keywords == m.keywords);
            }
            CHECK_FALSE(r.flags.contains(system_flag::recent)); // B7
        }
    }

    /// B4: changes_since(s.highest) against the model.
    void check_changes(snapshot const& s) {
        INFO("changes since modseq ", value(s.highest), " (event ", s.event, ")");
        auto const before = highest();
        auto const c = changes(s.highest);
        auto const after = highest();
        CHECK(c.changed == changed_after(s));
        if (c.expunged) {
            uid_set missing = expunged_after(s);
            missing.remove_set(*c.expunged);
            CHECK_MESSAGE(missing.empty(), "expunges not reported: ", doctest::toString(missing));
            // "More" may mean UIDs that never matched anything, never one that exists.
            CHECK_FALSE(c.expunged->have_common(existing()));
        }
        CHECK(before == after);
        CHECK(c.highest_modseq == after);
    }

    /// B2/B6/B8: status, search all and fetch of everything against the model.
    void check_state() {
        auto const st = status();
        CHECK(st.exists == msgs_.size());
        CHECK(value(st.uid_next) > highest_assigned_);
        CHECK(search(search_program::all()) == existing());
        check_fetch(uid_set{{1, highest_assigned_ + 10}});
    }

private:
    template <class Fn>
    void change(std::uint32_t u, Fn&& fn) {
        auto& m = msgs_.at(u);
        model_message const old = m;
        fn(m);
        if (m.flags != old.flags || m.keywords != old.keywords) m.changed_at = ++events_;
    }
    void gone(std::uint32_t u) {
        msgs_.erase(u);
        expunged_[u] = ++events_;
    }

    std::map<std::uint32_t, model_message> msgs_;
    std::map<std::uint32_t, std::uint64_t> expunged_; // UID -> the event that expunged it
    std::uint64_t events_ = 0;
    std::uint32_t highest_assigned_ = 0;
};

/// Ten messages with varied dates, flags, keywords and sizes (two expunged when
/// `with_gaps`), for the read rules.
template <class F>
std::vector<uid> populate(harness<F>& h, bool with_gaps = true) {
    std::vector<uid> u;
    u.push_back(h.append(day(0), {}, {}, 500));
    u.push_back(h.append(day(1), system_flag::seen, kws({"Work"}), 1500));
    u.push_back(h.append(day(2), system_flag::seen | system_flag::flagged, kws({"$Label1", "Work"}), 100));
    u.push_back(h.append(day(3), system_flag::deleted, {}, 2000));
    u.push_back(h.append(day(4), system_flag::draft | system_flag::answered, kws({"Private"}), 1000));
    u.push_back(h.append(day(5), system_flag::flagged, kws({"work"}), 999));
    u.push_back(h.append(day(6, 0), system_flag::seen, {}, 1001));
    u.push_back(h.append(day(2, 23), {}, kws({"$Label1"}), 0));  // received out of order
    u.push_back(h.append(day(-400), system_flag::answered, {}, 1)); // the year before
    u.push_back(h.append(day(9), system_flag::seen | system_flag::deleted, kws({"Work", "Later"}), 65536));
    if (with_gaps) {
        h.host_expunge(u[3]);
        h.expunge(set_of({u[6]}));
    }
    return u;
}

} // namespace

// ============================================================================ B1

TEST_CASE_TEMPLATE("B1 identity: a UID keeps naming its message while the identity holds", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    auto const st0 = h.status();
    CHECK(value(st0.validity) != 0);

    SUBCASE("through flag changes, keyword changes, other expunges and appends") {
        h.host_set_flags(u[0], system_flag::seen | system_flag::flagged);
        h.host_set_keywords(u[1], kws({"Other"}));
        h.update_flags(set_of({u[2], u[4]}), modify_op::replace, system_flag::draft);
        h.expunge(set_of({u[5]}));
        h.append(day(20), {}, {}, 77);
        auto const st = h.status();
        CHECK(st.validity == st0.validity);
        CHECK(st.guid == st0.guid);
        h.check_fetch(h.existing());
    }
    SUBCASE("an expunged UID never comes back") {
        // Expunge the highest UID: a backend that derives UIDNEXT from the last message
        // would hand it out again.
        uid const last = u.back();
        h.expunge(set_of({last}));
        uid const fresh = h.append(day(30));
        CHECK(value(fresh) > value(last));
        CHECK(h.fetch(set_of({last})).empty());
        CHECK(h.search(search_program::all(), set_of({last})).empty());
        CHECK_FALSE(h.changes(modseq{0}).changed.contains(value(last)));
        CHECK(h.status().validity == st0.validity);
        h.check_state();
    }
    SUBCASE("a re-created mailbox is a new identity, or its UIDs do not collide") {
        h.f.recreate_mailbox();
        auto r = h.be().status();
        REQUIRE_MESSAGE(r.has_value(), what(r));
        CHECK(r->exists == 0);
        uid const n = h.f.append(day(40), {}, {}, 10);
        auto const st = h.status();
        bool const same_validity = st.validity == st0.validity;
        bool const guid_differs = st.guid && st0.guid && *st.guid != *st0.guid;
        if (same_validity && !guid_differs) {
            // The same identity: the new message must not take any UID ever used.
            CHECK(value(n) > h.highest_assigned());
        }
        auto const recs = h.fetch(set_of({n}));
        REQUIRE(recs.size() == 1);
        CHECK(recs[0].size == 10);
        CHECK(recs[0].received == day(40));
    }
}

// ============================================================================ B2

TEST_CASE_TEMPLATE("B2 order: UIDs strictly increase and stay below uid_next", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;

    SUBCASE("an empty mailbox") {
        auto const st = h.status();
        CHECK(st.exists == 0);
        CHECK(value(st.uid_next) >= 1);
        CHECK(h.search(search_program::all()).empty());
        CHECK(h.fetch(uid_set{{1, 100}}).empty());
    }
    SUBCASE("appends interleaved with expunges") {
        std::uint32_t last_next = value(h.status().uid_next);
        for (int i = 0; i < 40; ++i) {
            INFO("step ", i);
            uid const u = h.append(day(i % 7), {}, {}, static_cast<std::uint64_t>(i));
            auto const st = h.status();
            CHECK(value(u) < value(st.uid_next));
            CHECK(value(st.uid_next) >= last_next);
            last_next = value(st.uid_next);
            if (i % 3 == 2) h.host_expunge(u);              // the newest
            if (i % 5 == 4) h.expunge(set_of({h.messages().begin()->first})); // the oldest
            CHECK(h.status().exists == h.messages().size());
            CHECK(value(h.status().uid_next) >= last_next);
        }
        h.check_state();
    }
    SUBCASE("exists counts the messages after every kind of write") {
        auto const u = populate(h);
        CHECK(h.status().exists == 8);
        h.update_flags(h.existing(), modify_op::add, system_flag::deleted);
        CHECK(h.status().exists == 8);
        h.expunge(h.search(prog("deleted")));
        CHECK(h.status().exists == 0);
        h.check_state();
        (void)u;
    }
}

// ============================================================================ B3

TEST_CASE_TEMPLATE("B3 search: exactly the existing matching UIDs and within restricts", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    std::uint32_t const next = value(h.status().uid_next);
    std::uint32_t const gone1 = value(u[3]);
    std::uint32_t const gone2 = value(u[6]);

    char const* const programs[] = {
        "all", "seen", "unseen", "flagged", "unflagged", "answered", "deleted", "undeleted",
        "draft", "undraft", "keyword Work", "unkeyword Work", "keyword work", "keyword $Label1",
        "since 3-Feb-2020", "before 3-Feb-2020", "on 3-Feb-2020", "larger 1000", "smaller 1000",
        "or seen keyword $Label1", "not (seen flagged)", "seen keyword Work larger 200",
        "not all", "keyword Nothing"};

    std::vector<std::pair<char const*, uid_set>> const withins = {
        {"empty", uid_set{}},
        {"everything existing", h.existing()},
        {"only expunged UIDs", set_of({gone1, gone2})},
        {"UID 0", set_of({0u})},
        {"beyond uid_next", uid_set{{next, next + 50}}},
        {"the top of the UID space", uid_set{{0xFFFFFFF0u, 0xFFFFFFFFu}}},
        {"mixed", [&] {
             uid_set s = set_of({value(u[0]), value(u[1]), gone1, value(u[8]), next + 3});
             s.add_range(value(u[4]), gone2);
             return s;
         }()},
        {"one range over everything", uid_set{{1, next + 1000}}},
    };

    SUBCASE("without within") {
        for (auto const* text : programs) {
            INFO("program: ", text);
            auto const p = prog(text);
            uid_set const got = h.search(p);
            CHECK(got == h.matching(p));
            CHECK_FALSE(got.contains(gone1));
            CHECK_FALSE(got.contains(gone2));
        }
    }
    SUBCASE("within, absent UIDs ignored") {
        for (auto const* text : programs) {
            auto const p = prog(text);
            for (auto const& within : withins) {
                // (No structured binding: clang 14 cannot capture one in INFO's lambda.)
                auto const& w = within.second;
                INFO("program: ", text, ", within: ", within.first, " ", doctest::toString(w));
                CHECK(h.search(p, w) == h.matching(p, w));
            }
        }
    }
    SUBCASE("results follow flag and keyword changes") {
        auto const seen = prog("seen");
        auto const work = prog("keyword Work");
        h.host_set_flags(u[0], system_flag::seen);
        h.update_flags(set_of({u[1]}), modify_op::remove, system_flag::seen);
        h.host_set_keywords(u[0], kws({"Work"}));
        h.update_keywords(set_of({u[2]}), modify_op::replace, {});
        CHECK(h.search(seen) == h.matching(seen));
        CHECK(h.search(work) == h.matching(work));
        CHECK(h.search(seen, set_of({u[0], u[1]})) == set_of({u[0]}));
        CHECK(h.search(work, set_of({u[0], u[2]})) == set_of({u[0]}));
    }
    SUBCASE("new messages are found") {
        uid const n = h.append(day(50), system_flag::flagged, kws({"Work"}), 5);
        CHECK(h.search(prog("flagged keyword Work")).contains(value(n)));
        CHECK(h.search(prog("flagged"), set_of({n})) == set_of({n}));
    }
}

// ============================================================================ B4

TEST_CASE_TEMPLATE("B4 changes: changes_since reports what changed above a modseq", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;

    SUBCASE("an empty mailbox: nothing") {
        auto const c = h.changes(h.highest());
        CHECK(c.changed.empty());
        if (c.expunged) CHECK(c.expunged->empty());
        CHECK(c.highest_modseq == h.highest());
    }

    auto const u = populate(h);

    SUBCASE("since 0: every existing message") {
        auto const c = h.changes(modseq{0});
        CHECK(c.changed == h.existing());
        CHECK(c.highest_modseq == h.highest());
        h.check_changes({modseq{0}, 0});
    }
    SUBCASE("the current highest modseq: nothing") {
        auto const c = h.changes(h.highest());
        CHECK(c.changed.empty());
        if (c.expunged) CHECK(c.expunged->empty());
        CHECK(c.highest_modseq == h.highest());
    }
    SUBCASE("a flag change, a keyword change, an append") {
        auto const s = h.snap();
        h.host_set_flags(u[0], system_flag::answered);
        h.check_changes(s);
        auto const s2 = h.snap();
        h.host_set_keywords(u[1], kws({"New"}));
        h.check_changes(s2);
        auto const s3 = h.snap();
        uid const n = h.append(day(60));
        h.check_changes(s3);
        CHECK(h.changes(s3.highest).changed == set_of({n}));
        h.check_changes(s);
        CHECK(h.changes(s.highest).changed == set_of({u[0], u[1], n}));
    }
    SUBCASE("changes through the backend") {
        auto const s = h.snap();
        h.update_flags(set_of({u[0], u[1], u[2]}), modify_op::add, system_flag::seen); // u1, u2 are seen
        CHECK(h.changes(s.highest).changed == set_of({u[0]}));
        h.update_keywords(set_of({u[4], u[5]}), modify_op::add, kws({"Work"}));
        h.check_changes(s);
    }
    SUBCASE("expunged reported after expunge") {
        auto const s = h.snap();
        h.host_expunge(u[0]);
        h.expunge(set_of({u[1], u[2]}));
        auto const c = h.changes(s.highest);
        CHECK(c.changed.empty());
        if (c.expunged) {
            CHECK(c.expunged->contains(value(u[0])));
            CHECK(c.expunged->contains(value(u[1])));
            CHECK(c.expunged->contains(value(u[2])));
        }
        h.check_changes(s);
    }
    SUBCASE("a message changed then expunged is expunged, not changed") {
        auto const s = h.snap();
        h.host_set_flags(u[0], system_flag::flagged);
        h.host_expunge(u[0]);
        auto const c = h.changes(s.highest);
        CHECK_FALSE(c.changed.contains(value(u[0])));
        if (c.expunged) CHECK(c.expunged->contains(value(u[0])));
        h.check_changes(s);
    }
    SUBCASE("every earlier snapshot answers correctly") {
        std::vector<snapshot> snaps{h.snap()};
        h.host_set_flags(u[0], system_flag::seen);
        snaps.push_back(h.snap());
        h.append(day(70));
        snaps.push_back(h.snap());
        h.expunge(set_of({u[1], u[9]}));
        snaps.push_back(h.snap());
        h.update_keywords(h.existing(), modify_op::add, kws({"All"}));
        snaps.push_back(h.snap());
        h.host_set_flags(u[0], system_flag::seen); // no change
        snaps.push_back(h.snap());
        h.host_expunge(u[2]);
        snaps.push_back(h.snap());
        h.update_flags(set_of({u[4]}), modify_op::replace, {});
        snaps.push_back(h.snap());
        for (auto const& s : snaps) h.check_changes(s);
        h.check_changes({modseq{0}, 0});
    }
    SUBCASE("randomized operations, every snapshot checked") {
        for (std::uint32_t seed : {1u, 2u, 3u, 77u, 20240611u}) {
            INFO("seed ", seed);
            std::mt19937 rng(seed);
            auto const pick = [&](std::uint32_t n) {
                // mt19937's output is fixed by the standard, distributions are not: a
                // seed replays the same run with every standard library.
                return static_cast<std::uint32_t>(rng() % n);
            };
            char const* const pool[] = {"Work", "$Label1", "Private", "work", "Later"};
            auto const random_keywords = [&] {
                keyword_set k;
                for (auto const* n : pool)
                    if (pick(3) == 0) k.insert(n);
                return k;
            };
            auto const random_flags = [&] { return flag_set::from_bits(static_cast<std::uint8_t>(pick(64))); };
            auto const random_uids = [&] {
                uid_set s;
                std::uint32_t const top = h.highest_assigned() + 3;
                for (std::uint32_t i = pick(4); i > 0; --i) s.add(1 + pick(top));
                if (pick(3) == 0) {
                    std::uint32_t const a = 1 + pick(top);
                    s.add_range(a, a + pick(6));
                }
                return s;
            };
            auto const random_existing = [&]() -> std::optional<uid> {
                auto const& m = h.messages();
                if (m.empty()) return std::nullopt;
                auto it = m.begin();
                std::advance(it, static_cast<std::ptrdiff_t>(pick(static_cast<std::uint32_t>(m.size()))));
                return uid{it->first};
            };
            modify_op const ops[] = {modify_op::add, modify_op::remove, modify_op::replace};

            std::vector<snapshot> snaps{h.snap()};
            for (int step = 0; step < 120; ++step) {
                INFO("step ", step);
                switch (pick(8)) {
                case 0:
                case 1:
                {
                    // One pick per statement: the order of function arguments is unspecified.
                    std::int64_t const d = pick(30);
                    std::int64_t const hour = pick(24);
                    flag_set const fl = random_flags();
                    keyword_set const k = random_keywords();
                    h.append(day(d, hour), fl, k, pick(5000));
                }
                    break;
                case 2:
                    if (auto x = random_existing()) h.host_set_flags(*x, random_flags());
                    break;
                case 3:
                    if (auto x = random_existing()) h.host_set_keywords(*x, random_keywords());
                    break;
                case 4:
                    if (auto x = random_existing(); x && pick(2) == 0) h.host_expunge(*x);
                    break;
                case 5: {
                    uid_set const s = random_uids();
                    modify_op const op = ops[pick(3)];
                    h.update_flags(s, op, random_flags());
                    break;
                }
                case 6: {
                    uid_set const s = random_uids();
                    modify_op const op = ops[pick(3)];
                    h.update_keywords(s, op, random_keywords());
                    break;
                }
                case 7:
                    if (pick(2) == 0) h.expunge(random_uids());
                    break;
                }
                snaps.push_back(h.snap());
                h.check_changes(snaps[snaps.size() - 2]);
                h.check_changes(snaps[pick(static_cast<std::uint32_t>(snaps.size()))]);
                if (step % 20 == 19) h.check_state();
            }
            for (auto const& s : snaps) h.check_changes(s);
            h.check_state();
        }
    }
}

// ============================================================================ B5

TEST_CASE_TEMPLATE("B5 modseq: every change raises highest_modseq and no-ops do not", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    // u[1]: \Seen, Work; u[0]: no flags, no keywords.

    auto const raises = [&](char const* label, auto&& op) {
        INFO("write: ", label);
        auto const s = h.snap();
        op();
        CHECK(value(h.highest()) > value(s.highest));
        h.check_changes(s);
    };
    auto const keeps = [&](char const* label, auto&& op) {
        INFO("no-op write: ", label);
        auto const s = h.snap();
        op();
        CHECK(h.highest() == s.highest);
        CHECK(h.changes(s.highest).changed.empty());
        CHECK(h.events() == s.event); // the model agrees that nothing changed
    };

    SUBCASE("changing writes raise it") {
        raises("append", [&] { h.append(day(80)); });
        raises("host flags", [&] { h.host_set_flags(u[0], system_flag::draft); });
        raises("host keywords", [&] { h.host_set_keywords(u[0], kws({"K"})); });
        raises("host expunge", [&] { h.host_expunge(u[0]); });
        raises("update_flags add", [&] { h.update_flags(set_of({u[1]}), modify_op::add, system_flag::flagged); });
        raises("update_flags remove", [&] { h.update_flags(set_of({u[1]}), modify_op::remove, system_flag::seen); });
        raises("update_flags replace", [&] { h.update_flags(set_of({u[1]}), modify_op::replace, system_flag::answered); });
        raises("update_keywords add", [&] { h.update_keywords(set_of({u[1]}), modify_op::add, kws({"A"})); });
        raises("update_keywords remove", [&] { h.update_keywords(set_of({u[1]}), modify_op::remove, kws({"Work"})); });
        raises("update_keywords replace", [&] { h.update_keywords(set_of({u[1]}), modify_op::replace, kws({"B"})); });
        raises("update_flags over many", [&] { h.update_flags(h.existing(), modify_op::add, system_flag::seen); });
        raises("expunge", [&] { h.expunge(set_of({u[1], u[2]})); });
    }
    SUBCASE("writes that change nothing keep it") {
        keeps("add a flag already set", [&] { h.update_flags(set_of({u[1]}), modify_op::add, system_flag::seen); });
        keeps("remove a flag not set", [&] { h.update_flags(set_of({u[0]}), modify_op::remove, system_flag::seen); });
        keeps("replace with the same flags", [&] { h.update_flags(set_of({u[1]}), modify_op::replace, system_flag::seen); });
        keeps("add only \\Recent", [&] { h.update_flags(set_of({u[0], u[1]}), modify_op::add, system_flag::recent); });
        keeps("add no flags", [&] { h.update_flags(h.existing(), modify_op::add, {}); });
        keeps("add a keyword already set", [&] { h.update_keywords(set_of({u[1]}), modify_op::add, kws({"Work"})); });
        keeps("remove a keyword not set", [&] { h.update_keywords(set_of({u[0]}), modify_op::remove, kws({"Work"})); });
        keeps("replace with the same keywords", [&] { h.update_keywords(set_of({u[1]}), modify_op::replace, kws({"Work"})); });
        keeps("updates of absent UIDs", [&] {
            h.update_flags(set_of({u[3], u[6]}), modify_op::add, system_flag::flagged);
            h.update_keywords(uid_set{{h.highest_assigned() + 1, h.highest_assigned() + 100}},
                              modify_op::add, kws({"X"}));
        });
        keeps("updates of the empty set", [&] {
            h.update_flags({}, modify_op::replace, system_flag::seen);
            h.update_keywords({}, modify_op::replace, kws({"X"}));
        });
        keeps("expunge of absent UIDs and of the empty set", [&] {
            h.expunge(set_of({value(u[3]), 0u, h.highest_assigned() + 1}));
            h.expunge({});
        });
        keeps("host writes that change nothing", [&] {
            h.host_set_flags(u[1], system_flag::seen);
            h.host_set_keywords(u[1], kws({"Work"}));
        });
        keeps("reads", [&] {
            (void)h.status();
            (void)h.search(prog("seen"));
            (void)h.search(prog("seen"), h.existing());
            (void)h.fetch(h.existing());
            (void)h.changes(modseq{0});
        });
    }
    SUBCASE("a write over several messages reports only those it changed") {
        auto const s = h.snap();
        h.update_flags(set_of({u[0], u[1], u[2], u[3]}), modify_op::add, system_flag::seen);
        CHECK(h.changes(s.highest).changed == set_of({u[0]}));
        h.check_changes(s);
    }
}

// ============================================================================ B6

TEST_CASE_TEMPLATE("B6 fetch: one record per existing UID in ascending order", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    std::uint32_t const next = value(h.status().uid_next);

    SUBCASE("absent UIDs are skipped") {
        h.check_fetch(set_of({0u, value(u[3]), value(u[6]), next, next + 7, 0xFFFFFFFFu}));
        h.check_fetch(set_of({value(u[0]), value(u[3]), value(u[4]), value(u[6]), value(u[9]), next}));
        h.check_fetch(uid_set{{value(u[2]), value(u[7])}});
        h.check_fetch(uid_set{{1, next + 1000}});
        CHECK(h.fetch({}).empty());
        CHECK(h.fetch(set_of({value(u[3])})).empty());
    }
    SUBCASE("ascending order") {
        auto const recs = h.fetch(uid_set{{1, next}});
        REQUIRE(recs.size() == 8);
        for (std::size_t i = 1; i < recs.size(); ++i) CHECK(value(recs[i - 1].id) < value(recs[i].id));
        // Received dates are deliberately out of order (u[7], u[8]): the order is by UID.
        CHECK(recs[5].id == u[7]);
        CHECK(recs[6].id == u[8]);
    }
    SUBCASE("each field set alone and together") {
        for (auto fields : {fetch_fields::received, fetch_fields::flags, fetch_fields::size,
                            fetch_fields::received | fetch_fields::size, fetch_fields::all})
            h.check_fetch(uid_set{{1, next}}, fields);
    }
    SUBCASE("the received date never changes") {
        h.host_set_flags(u[0], system_flag::seen);
        h.update_keywords(h.existing(), modify_op::add, kws({"Z"}));
        h.expunge(set_of({u[1]}));
        h.append(day(90));
        auto const recs = h.fetch(set_of({u[0], u[2], u[8]}), fetch_fields::received);
        REQUIRE(recs.size() == 3);
        CHECK(recs[0].received == day(0));
        CHECK(recs[1].received == day(2));
        CHECK(recs[2].received == day(-400));
        h.check_state();
    }
}

// ============================================================================ B7

TEST_CASE_TEMPLATE("B7 update: flags and keywords apply to existing UIDs and never set Recent", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    std::uint32_t const next = value(h.status().uid_next);
    uid_set const some = [&] {
        uid_set s = set_of({u[0], u[1], u[3], u[6]}); // u[3], u[6] are expunged
        s.add_range(next, next + 10);
        return s;
    }();

    SUBCASE("flags: add, remove, replace") {
        for (auto op : {modify_op::add, modify_op::remove, modify_op::replace}) {
            INFO("op ", static_cast<int>(op));
            h.update_flags(some, op, system_flag::flagged | system_flag::answered);
            h.check_state(); // messages outside the set unchanged, absent ones not created
        }
        h.update_flags(h.existing(), modify_op::replace, {});
        h.check_state();
        CHECK(h.search(prog("or or seen flagged or answered or deleted draft")).empty());
    }
    SUBCASE("keywords: add, remove, replace") {
        for (auto op : {modify_op::add, modify_op::remove, modify_op::replace}) {
            INFO("op ", static_cast<int>(op));
            h.update_keywords(some, op, kws({"Work", "Extra"}));
            h.check_state();
        }
        h.update_keywords(h.existing(), modify_op::replace, {});
        h.check_state();
        CHECK(h.search(prog("or keyword Work keyword $Label1")).empty());
    }
    SUBCASE("keywords are case-sensitive") {
        h.update_keywords(set_of({u[1]}), modify_op::remove, kws({"work"})); // has "Work"
        CHECK(h.fetch(set_of({u[1]}))[0].keywords == kws({"Work"}));
        h.update_keywords(set_of({u[1]}), modify_op::add, kws({"work"}));
        CHECK(h.fetch(set_of({u[1]}))[0].keywords == kws({"Work", "work"}));
        h.check_state();
    }
    SUBCASE("Recent is never set") {
        h.update_flags(h.existing(), modify_op::add, system_flag::recent);
        h.update_flags(set_of({u[0]}), modify_op::replace, system_flag::recent | system_flag::seen);
        h.update_flags(set_of({u[1]}), modify_op::replace, system_flag::recent);
        h.update_flags(set_of({u[2]}), modify_op::remove, system_flag::recent);
        for (auto const& r : h.fetch(uid_set{{1, next}}, fetch_fields::flags))
            CHECK_FALSE(r.flags.contains(system_flag::recent));
        CHECK(h.fetch(set_of({u[0]}))[0].flags == flag_set(system_flag::seen));
        CHECK(h.fetch(set_of({u[1]}))[0].flags.empty());
        h.check_state();
    }
    SUBCASE("an appended message with Recent does not store it") {
        uid const n = h.append(day(95), system_flag::recent | system_flag::seen);
        auto const recs = h.fetch(set_of({n}), fetch_fields::flags);
        REQUIRE(recs.size() == 1);
        CHECK(recs[0].flags == flag_set(system_flag::seen));
    }
}

// ============================================================================ B8

TEST_CASE_TEMPLATE("B8 expunge: existing UIDs removed from search and fetch and status", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    auto const st0 = h.status();

    SUBCASE("existing ones go, absent ones are ignored") {
        uid_set s = set_of({value(u[0]), value(u[3]), value(u[5]), 0u, value(st0.uid_next) + 2});
        h.expunge(s);
        auto const st = h.status();
        CHECK(st.exists == st0.exists - 2);
        CHECK(st.uid_next == st0.uid_next);
        CHECK(st.validity == st0.validity);
        CHECK(h.fetch(s).empty());
        CHECK(h.search(search_program::all(), s).empty());
        CHECK_FALSE(h.search(search_program::all()).have_common(s));
        CHECK_FALSE(h.changes(modseq{0}).changed.have_common(s));
        h.check_state();
    }
    SUBCASE("a range over everything empties the mailbox") {
        h.expunge(uid_set{{1, value(st0.uid_next) + 100}});
        CHECK(h.status().exists == 0);
        CHECK(h.search(search_program::all()).empty());
        h.check_state();
    }
    SUBCASE("expunging twice, and expunging nothing") {
        h.expunge(set_of({u[1]}));
        auto const s = h.snap();
        h.expunge(set_of({u[1]}));
        h.expunge({});
        CHECK(h.highest() == s.highest);
        CHECK(h.status().exists == st0.exists - 1);
        h.check_state();
    }
}

// ============================================================================ B9

TEST_CASE_TEMPLATE("B9 failure: a deleted mailbox answers not_found from every call", F,
                   VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    std::string const name = h.f.mailbox_name();
    std::string const context = "(for backend mailbox " + name + ")";
    h.f.delete_mailbox();

    auto const check = [&](char const* call, auto const& r) {
        INFO("call: ", call);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::not_found));
        INFO("message: ", r.error_value().message);
        CHECK(contains(r.error_value().message, context));
    };
    auto& b = h.be();
    CHECK(std::string(b.name()) == name);
    check("status", b.status());
    check("search", b.search(search_program::all()));
    check("search within", b.search(search_program::all(), h.existing()));
    check("search within nothing", b.search(prog("seen"), uid_set{}));
    check("changes_since 0", b.changes_since(modseq{0}));
    check("changes_since high", b.changes_since(modseq{1000000}));
    check("fetch", b.fetch(h.existing(), fetch_fields::all));
    check("fetch nothing", b.fetch({}, fetch_fields::received));
    check("update_flags", b.update_flags(h.existing(), modify_op::add, system_flag::seen));
    check("update_flags nothing", b.update_flags({}, modify_op::add, system_flag::seen));
    check("update_keywords", b.update_keywords(h.existing(), modify_op::replace, kws({"X"})));
    check("expunge", b.expunge(set_of({u[0]})));
    check("expunge nothing", b.expunge({}));
    if constexpr (openable_backend<typename F::backend_type>) {
        b.close();
        check("open", b.open());
        CHECK_FALSE(b.is_open());
    }
    CHECK(std::string(b.name()) == name);
}

TEST_CASE_TEMPLATE("B9 failure: a failed call changes nothing", F, VFOLDER_BACKEND_FIXTURES) {
    harness<F> h;
    auto const u = populate(h);
    error const injected{errc::temporary, "injected failure"};
    auto const expect_failure = [&](auto const& r) {
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::temporary));
        CHECK(contains(r.error_value().message, "injected failure"));
    };
    auto& b = h.be();
    auto const s = h.snap();
    auto const after_failure = [&] {
        CHECK(h.highest() == s.highest);
        h.check_changes(s);
        h.check_state();
    };

    SUBCASE("status") {
        if (!h.f.fail_next(backend_op::status, injected)) return;
        expect_failure(b.status());
        after_failure();
    }
    SUBCASE("search") {
        if (!h.f.fail_next(backend_op::search, injected)) return;
        expect_failure(b.search(search_program::all()));
        REQUIRE(h.f.fail_next(backend_op::search, injected));
        expect_failure(b.search(search_program::all(), h.existing()));
        after_failure();
    }
    SUBCASE("changes_since") {
        if (!h.f.fail_next(backend_op::changes_since, injected)) return;
        expect_failure(b.changes_since(modseq{0}));
        after_failure();
    }
    SUBCASE("fetch") {
        if (!h.f.fail_next(backend_op::fetch, injected)) return;
        expect_failure(b.fetch(h.existing(), fetch_fields::all));
        after_failure();
    }
    SUBCASE("update_flags") {
        if (!h.f.fail_next(backend_op::update_flags, injected)) return;
        expect_failure(b.update_flags(h.existing(), modify_op::replace, system_flag::draft));
        after_failure();
        h.update_flags(h.existing(), modify_op::replace, system_flag::draft); // then it works
        h.check_state();
    }
    SUBCASE("update_keywords") {
        if (!h.f.fail_next(backend_op::update_keywords, injected)) return;
        expect_failure(b.update_keywords(h.existing(), modify_op::replace, kws({"Q"})));
        after_failure();
        h.update_keywords(h.existing(), modify_op::replace, kws({"Q"}));
        h.check_state();
    }
    SUBCASE("expunge") {
        if (!h.f.fail_next(backend_op::expunge, injected)) return;
        expect_failure(b.expunge(h.existing()));
        after_failure();
        h.expunge(set_of({u[0]}));
        h.check_state();
    }
    SUBCASE("open") {
        if constexpr (openable_backend<typename F::backend_type>) {
            b.close();
            if (!h.f.fail_next(backend_op::open, injected)) return;
            expect_failure(b.open());
            CHECK_FALSE(b.is_open());
            REQUIRE(b.open().has_value());
            CHECK(b.is_open());
            after_failure();
        }
    }
}

// ============================================================================ O1-O3

TEST_CASE_TEMPLATE("O1 open: open on an open backend succeeds and changes nothing", F,
                   VFOLDER_BACKEND_FIXTURES) {
    if constexpr (openable_backend<typename F::backend_type>) {
        harness<F> h;
        populate(h);
        auto const s = h.snap();
        REQUIRE(h.be().is_open());
        REQUIRE(h.be().open().has_value());
        REQUIRE(h.be().open().has_value());
        CHECK(h.be().is_open());
        CHECK(h.highest() == s.highest);
        h.check_state();
    }
}

TEST_CASE_TEMPLATE("O2 close: closed until opened again", F, VFOLDER_BACKEND_FIXTURES) {
    if constexpr (openable_backend<typename F::backend_type>) {
        harness<F> h;
        populate(h);
        h.be().close();
        CHECK_FALSE(h.be().is_open());
        h.be().close(); // closing twice is harmless
        CHECK_FALSE(h.be().is_open());
        REQUIRE(h.be().open().has_value());
        CHECK(h.be().is_open());
        h.check_state();
    }
}

TEST_CASE_TEMPLATE("O3 close loses nothing committed", F, VFOLDER_BACKEND_FIXTURES) {
    if constexpr (openable_backend<typename F::backend_type>) {
        harness<F> h;
        auto const u = populate(h);
        auto const s = h.snap();
        h.update_flags(set_of({u[0], u[1]}), modify_op::add, system_flag::flagged);
        h.update_keywords(set_of({u[2]}), modify_op::add, kws({"Kept"}));
        h.expunge(set_of({u[4]}));
        h.be().close();
        REQUIRE(h.be().open().has_value());
        h.check_state();
        h.check_changes(s);
    }
}

// ============================================================================ O4

TEST_CASE_TEMPLATE("O4 closed_status: a closed backend tells the status open() would show", F,
                   VFOLDER_BACKEND_FIXTURES) {
    if constexpr (closed_status_backend<typename F::backend_type>) {
        harness<F> h;
        auto& b = h.be();
        // What closed_status answers now must be what status answers after open; the
        // backend is left closed by closed_status.
        auto const check = [&](char const* when) {
            INFO("after: ", when);
            b.close();
            REQUIRE_FALSE(b.is_open());
            auto cs = b.closed_status();
            REQUIRE_MESSAGE(cs.has_value(), what(cs));
            CHECK_FALSE(b.is_open());
            REQUIRE(b.open().has_value());
            auto const st = h.status();
            if (cs->has_value()) {
                CHECK(**cs == st);
                CHECK((*cs)->exists == h.messages().size());
            }
        };
        check("nothing");
        auto const u = populate(h);
        check("appends and expunges");
        b.close();
        h.append(day(20), system_flag::seen, kws({"Late"}), 10); // while closed
        check("an append while closed");
        b.close();
        h.host_set_flags(u[0], system_flag::flagged);
        check("a flag change while closed");
        b.close();
        h.host_set_keywords(u[1], kws({"Other"}));
        check("a keyword change while closed");
        b.close();
        h.host_expunge(u[2]);
        check("an expunge while closed");
        h.update_flags(set_of({u[4]}), modify_op::add, system_flag::seen);
        check("the backend's own flag change");
        h.check_state();

        b.close();
        h.f.delete_mailbox();
        auto gone = b.closed_status();
        REQUIRE_FALSE(gone.has_value());
        CHECK(gone.error_value().is(errc::not_found));
        CHECK(contains(gone.error_value().message, "(for backend mailbox " + h.f.mailbox_name() + ")"));
        CHECK_FALSE(b.is_open());
    }
}

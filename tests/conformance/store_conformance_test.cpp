// The view_store conformance suite: rules S1-S5 of concepts.hpp, run on every fixture of
// VFOLDER_STORE_FIXTURES (store_fixture.hpp explains how an adapter joins). The reference
// is `apply` (view_state.hpp): after every commit the store must load exactly what
// applying the committed deltas in order to an empty state gives. A randomized run of
// valid deltas (seeded) checks the same after every step, with reopens, resets and
// refused deltas mixed in.
#include "conformance/store_fixture.hpp"

#include <vfolder/concepts.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/view_state.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace vfolder;
using vfolder_test::sample_rebuild;
using vfolder_test::sample_state;
using vfolder_test::vbox;
using vfolder_test::vheader;
using vfolder_test::vkeywords;
using vfolder_test::vmsg;

template <class T>
std::string what(result<T> const& r) {
    return r.has_value() ? std::string() : r.error_value().message;
}

/// The store's state, which must load without error.
template <class S>
std::optional<view_state> load_ok(S& s) {
    auto r = s.load();
    REQUIRE_MESSAGE(r.has_value(), what(r));
    return *r;
}

/// The committed deltas applied in order to an empty state: what the store must hold.
class reference {
public:
    /// Applies `d`; REQUIREs that it applies.
    void commit(view_delta const& d) {
        view_state next = state_.value_or(view_state{});
        auto r = apply(next, d);
        REQUIRE_MESSAGE(r.has_value(), what(r));
        state_ = std::move(next);
    }
    void reset() { state_.reset(); }
    [[nodiscard]] std::optional<view_state> const& state() const { return state_; }

    template <class S>
    void check(S& store) const {
        auto const got = load_ok(store);
        REQUIRE(got.has_value() == state_.has_value());
        if (got) CHECK(*got == *state_);
    }

private:
    std::optional<view_state> state_;
};

template <class F>
void commit_ok(F& f, reference& ref, view_delta const& d) {
    auto r = f.store().commit(d);
    REQUIRE_MESSAGE(r.has_value(), what(r));
    ref.commit(d);
    ref.check(f.store());
}

/// A delta on sample_state(): flags of two messages, one expunged, two appended, a
/// backend record updated, the header advanced.
view_delta sample_followup() {
    view_delta d;
    d.header = vheader(7, 23, 3, 42);
    d.expunged = uid_set{{5, 5}};
    d.updated = {vmsg(2, 1, 10, system_flag::seen | system_flag::flagged),
                 vmsg(14, 1, 20, {}, vkeywords({"Later"}))};
    d.appended = {vmsg(20, 3, 12), vmsg(22, 1, 31, system_flag::draft)};
    d.backends = {vbox(1, "INBOX", 32, 15), vbox(3, "Work", 13, 9)};
    return d;
}

// ---------------------------------------------------------------- random valid deltas

/// Makes random deltas that keep a state valid: it reads the current state and builds a
/// delta whose application validates (the test REQUIREs that, so a generator bug shows).
class delta_generator {
public:
    explicit delta_generator(std::uint32_t seed) : rng_(seed) {}

    // mt19937's output is fixed by the standard, distributions are not: a seed replays
    // the same run with every standard library. (One pick per statement below: the order
    // of function arguments is unspecified.)
    std::uint32_t pick(std::uint32_t n) { return static_cast<std::uint32_t>(rng_() % n); }
    bool chance(std::uint32_t one_in) { return pick(one_in) == 0; }

    view_delta make(std::optional<view_state> const& current) {
        if (!current || chance(15)) return rebuild(current);
        view_state const& s = *current;
        view_delta d;
        view_header h = s.header;
        std::map<mailbox_id, backend_sync_record> boxes; // as they will be after d
        for (auto const& b : s.backends) boxes[b.box] = b;
        std::map<mailbox_id, bool> touched;

        if (chance(6)) { // a new backend
            mailbox_id const id = h.highest_box + 1 + pick(2);
            h.highest_box = id;
            std::uint32_t const next_real = 1 + pick(5);
            boxes[id] = vbox(id, "Box" + std::to_string(id), next_real, pick(100));
            touched[id] = true;
        }
        std::vector<mailbox_id> removed;
        if (boxes.size() > 1 && chance(10)) { // a backend forgotten, with its messages
            auto it = boxes.begin();
            std::advance(it, static_cast<std::ptrdiff_t>(pick(static_cast<std::uint32_t>(boxes.size()))));
            removed.push_back(it->first);
            touched.erase(it->first);
            boxes.erase(it);
        }
        if (chance(12)) d.backends_removed.push_back(h.highest_box + 5); // unknown id: ignored
        for (auto id : removed) d.backends_removed.push_back(id);

        std::vector<view_message> kept;
        for (auto const& m : s.messages) {
            bool const box_gone = !boxes.contains(m.box);
            if (box_gone || chance(8)) {
                d.expunged.add(value(m.vuid));
            } else {
                kept.push_back(m);
            }
        }
        bool const top_expunged = !s.messages.empty() &&
                                  (kept.empty() || kept.back().vuid != s.messages.back().vuid);
        if (chance(5)) d.expunged.add(value(h.next_uid) + pick(10)); // absent: ignored
        for (auto const& m : kept) {
            if (!chance(5)) continue;
            view_message u = m;
            u.flags = flag_set::from_bits(static_cast<std::uint8_t>(pick(32)));
            u.keywords = chance(2) ? keyword_set{} : vkeywords({chance(2) ? "Work" : "$Label1"});
            d.updated.push_back(u);
        }
        if (!boxes.empty()) {
            std::vector<mailbox_id> ids;
            for (auto const& [id, b] : boxes) ids.push_back(id);
            std::uint32_t const n = pick(5);
            for (std::uint32_t i = 0; i < n; ++i) {
                mailbox_id const id = ids[pick(static_cast<std::uint32_t>(ids.size()))];
                auto& b = boxes[id];
                std::uint32_t const real = value(b.uid_next) + pick(3);
                b.uid_next = uid{real + 1};
                touched[id] = true;
                flag_set const fl = flag_set::from_bits(static_cast<std::uint8_t>(pick(32)));
                if (i == 0 && top_expunged && chance(2)) {
                    // Just above the messages that stay, below the expunged top: apply
                    // accepts it, so the store must too.
                    d.appended.push_back(vmsg(kept.empty() ? 1 : value(kept.back().vuid) + 1, id, real, fl));
                    continue;
                }
                h.next_uid = uid{value(h.next_uid) + pick(3)};
                d.appended.push_back(vmsg(value(h.next_uid), id, real, fl));
                h.next_uid = next(h.next_uid);
            }
            if (chance(3)) { // a backend's sync record moves on
                mailbox_id const id = ids[pick(static_cast<std::uint32_t>(ids.size()))];
                auto& b = boxes[id];
                b.highest_modseq = modseq{value(b.highest_modseq) + 1 + pick(50)};
                b.pending_removes.clear();
                if (value(b.uid_next) > 1 && chance(2)) {
                    std::uint32_t const top = value(b.uid_next) - 1;
                    std::uint32_t const a = 1 + pick(top);
                    b.pending_removes.add_range(a, std::min(top, a + pick(4)));
                }
                touched[id] = true;
            }
        }
        for (auto const& [id, t] : touched) d.backends.push_back(boxes[id]);
        if (h != s.header || chance(10)) {
            if (chance(4)) h.definition_id = pick(3);
            d.header = h;
        }
        return d;
    }

private:
    view_delta rebuild(std::optional<view_state> const& current) {
        view_delta d;
        d.replace_all = true;
        view_header h = current ? current->header : view_header{};
        if (value(h.validity) == 0 || chance(3)) h.validity = uid_validity{1 + pick(1000)};
        h.highest_box = h.highest_box + 1 + pick(2);
        std::uint32_t const nboxes = std::min(1 + pick(3), h.highest_box);
        for (std::uint32_t i = 0; i < nboxes; ++i) {
            mailbox_id const id = h.highest_box - nboxes + 1 + i;
            d.backends.push_back(vbox(id, "Rebuilt" + std::to_string(id), 1, pick(100)));
        }
        std::uint32_t const n = pick(8);
        for (std::uint32_t i = 0; i < n && !d.backends.empty(); ++i) {
            auto& b = d.backends[pick(static_cast<std::uint32_t>(d.backends.size()))];
            d.appended.push_back(vmsg(value(h.next_uid), b.box, value(b.uid_next)));
            b.uid_next = next(b.uid_next);
            h.next_uid = next(h.next_uid);
        }
        d.header = h;
        return d;
    }

    std::mt19937 rng_;
};

} // namespace

// ============================================================================ S1

TEST_CASE_TEMPLATE("S1 load: nothing committed loads as nullopt", F, VFOLDER_STORE_FIXTURES) {
    F f;
    CHECK_FALSE(load_ok(f.store()).has_value());
    CHECK_FALSE(load_ok(f.store()).has_value()); // loading is not committing
    f.reopen();
    CHECK_FALSE(load_ok(f.store()).has_value());
}

TEST_CASE_TEMPLATE("S1 load: the state is apply of the committed deltas in order", F,
                   VFOLDER_STORE_FIXTURES) {
    F f;
    reference ref;

    SUBCASE("a rebuild then a follow-up") {
        commit_ok(f, ref, sample_rebuild());
        CHECK(*load_ok(f.store()) == sample_state());
        commit_ok(f, ref, sample_followup());
    }
    SUBCASE("a first commit without replace_all starts from an empty state") {
        view_delta d;
        d.header = vheader(3, 5, 1);
        d.backends = {vbox(1, "INBOX")};
        d.appended = {vmsg(1, 1, 7), vmsg(4, 1, 9)};
        commit_ok(f, ref, d);
    }
    SUBCASE("an empty delta commits and changes nothing") {
        commit_ok(f, ref, sample_rebuild());
        commit_ok(f, ref, view_delta{});
        CHECK(*load_ok(f.store()) == sample_state());
    }
    SUBCASE("an empty delta as the first commit stores an empty state") {
        auto r = f.store().commit(view_delta{});
        REQUIRE_MESSAGE(r.has_value(), what(r));
        auto const got = load_ok(f.store());
        // Something was committed: S1 says the state of the last commit, i.e. an empty one.
        REQUIRE(got.has_value());
        CHECK(*got == view_state{});
    }
    SUBCASE("a second rebuild drops everything before it") {
        commit_ok(f, ref, sample_rebuild());
        commit_ok(f, ref, sample_followup());
        view_delta d;
        d.replace_all = true;
        d.backends = {vbox(2, "Other", 5, 1)};
        d.appended = {vmsg(30, 2, 4)};
        d.header = vheader(7, 31, 3, 43);
        commit_ok(f, ref, d);
        CHECK(load_ok(f.store())->messages.size() == 1);
    }
    SUBCASE("an append above the messages that stay, after expunging the highest") {
        commit_ok(f, ref, sample_rebuild());
        view_delta d;
        d.expunged = uid_set{{9, 9}, {14, 14}};
        d.appended = {vmsg(7, 3, 3), vmsg(12, 1, 21)}; // below the expunged 14: apply accepts
        commit_ok(f, ref, d);
        CHECK(load_ok(f.store())->messages.back() == vmsg(12, 1, 21));
    }
    SUBCASE("a rebuild without a header keeps the header") {
        commit_ok(f, ref, sample_rebuild());
        view_delta d;
        d.replace_all = true;
        commit_ok(f, ref, d);
        CHECK(load_ok(f.store())->header == sample_state().header);
    }
    SUBCASE("backends inserted, replaced and removed") {
        commit_ok(f, ref, sample_rebuild());
        view_delta d;
        d.header = vheader(7, 20, 4, 42);
        d.expunged = uid_set{{5, 5}, {9, 9}};   // the messages of box 3
        d.backends_removed = {3};
        d.backends = {vbox(4, "New", 3, 1), vbox(1, "INBOX renamed", 40, 60), vbox(2, "Two")};
        commit_ok(f, ref, d);
        auto const got = load_ok(f.store());
        REQUIRE(got->backends.size() == 3);
        CHECK(got->backends[0].name == "INBOX renamed");
        CHECK(got->backends[1].box == 2);
        CHECK(got->backends[2].box == 4);
    }
}

TEST_CASE_TEMPLATE("S1 reopen: a new store object on the same folder sees the committed state", F,
                   VFOLDER_STORE_FIXTURES) {
    F f;
    reference ref;
    commit_ok(f, ref, sample_rebuild());
    f.reopen();
    ref.check(f.store());
    commit_ok(f, ref, sample_followup());
    f.reopen();
    ref.check(f.store());
    f.reopen();
    f.reopen();
    ref.check(f.store());
}

// ============================================================================ S2

TEST_CASE_TEMPLATE("S2 corrupted: a state failing validate is never handed out", F,
                   VFOLDER_STORE_FIXTURES) {
    F f;
    auto const expect_corrupted = [&] {
        auto r = f.store().load();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::corrupted));
        CHECK_FALSE(r.error_value().message.empty());
    };

    SUBCASE("a planted broken state") {
        std::vector<std::pair<char const*, view_state>> broken;
        view_state s = sample_state();
        s.messages[1].vuid = uid{2};
        broken.emplace_back("vuids not increasing", s);
        s = sample_state();
        s.messages.back().vuid = s.header.next_uid;
        broken.emplace_back("vuid not below next_uid", s);
        s = sample_state();
        s.messages[0].box = 2;
        broken.emplace_back("unknown mailbox id", s);
        s = sample_state();
        s.messages[2].real_uid = s.messages[0].real_uid;
        broken.emplace_back("a backend message twice", s);
        s = sample_state();
        s.header.validity = uid_validity{0};
        broken.emplace_back("uidvalidity 0", s);
        for (auto const& item : broken) {
            // (No structured binding: clang 14 cannot capture one in INFO's lambda.)
            view_state const& bad = item.second;
            INFO("broken: ", std::string(item.first));
            REQUIRE(!validate(bad).has_value());
            if (!f.plant(bad)) return;
            expect_corrupted();
            f.reopen();
            expect_corrupted();
        }
    }
    SUBCASE("a delta that applies but leaves an invalid state") {
        reference ref;
        commit_ok(f, ref, sample_rebuild());
        view_delta d;
        d.appended = {vmsg(25, 1, 99)}; // vuid 25 is not below next_uid 20
        auto r = f.store().commit(d);
        if (r.has_value()) {
            expect_corrupted(); // stored, but not handed out
            f.reopen();
            expect_corrupted();
        } else {
            ref.check(f.store()); // refused: nothing changed (S4)
        }
    }
    SUBCASE("a good planted state loads") {
        if (!f.plant(sample_state())) return;
        CHECK(*load_ok(f.store()) == sample_state());
    }
}

// ============================================================================ S3

TEST_CASE_TEMPLATE("S3 atomic: a crashing commit lands entirely or not at all", F,
                   VFOLDER_STORE_FIXTURES) {
    F f;
    reference ref;
    commit_ok(f, ref, sample_rebuild());
    view_delta const d = sample_followup();

    for (bool lands : {false, true}) {
        CAPTURE(lands);
        if (!f.crash_next_commit(lands)) return;
        auto r = f.store().commit(d);
        CHECK_FALSE(r.has_value());
        f.reopen();
        auto const got = load_ok(f.store());
        REQUIRE(got.has_value());
        view_state after = *ref.state();
        REQUIRE(apply(after, d).has_value());
        // All of d or none of it, and nothing else.
        CHECK((*got == *ref.state() || *got == after));
        if (*got == after) ref.commit(d);
        // The store goes on from what landed.
        view_delta e;
        e.updated = {vmsg(6, 1, 12, system_flag::deleted)};
        commit_ok(f, ref, e);
        f.reopen();
        ref.check(f.store());
    }
}

TEST_CASE_TEMPLATE("S3 durable: a successful commit survives reopening", F, VFOLDER_STORE_FIXTURES) {
    F f;
    reference ref;
    delta_generator gen(5);
    for (int i = 0; i < 30; ++i) {
        CAPTURE(i);
        view_delta const d = gen.make(ref.state());
        commit_ok(f, ref, d);
        f.reopen();
        ref.check(f.store());
    }
}

// ============================================================================ S4

TEST_CASE_TEMPLATE("S4 failed commit: a refused delta changes nothing", F, VFOLDER_STORE_FIXTURES) {
    F f;
    reference ref;
    commit_ok(f, ref, sample_rebuild());

    auto const refused = [&](char const* label, view_delta const& d) {
        INFO("delta: ", label);
        view_state probe = *ref.state();
        REQUIRE_FALSE(apply(probe, d).has_value()); // apply refuses it too
        auto r = f.store().commit(d);
        CHECK_FALSE(r.has_value());
        ref.check(f.store());
        f.reopen();
        ref.check(f.store());
    };

    SUBCASE("refused deltas") {
        view_delta d;
        d.appended = {vmsg(14, 1, 50)};
        refused("appended vuid equal to the last", d);
        d.appended = {vmsg(3, 1, 50)};
        refused("appended vuid below the last", d);
        d.appended = {vmsg(16, 1, 50), vmsg(15, 1, 51)};
        refused("appended vuids not ascending", d);
        d = {};
        d.updated = {vmsg(3, 1, 10, system_flag::seen)};
        refused("update of a vuid that does not exist", d);
        // A delta whose first parts are fine and whose last part is not: none of it lands.
        d = sample_followup();
        d.updated.push_back(vmsg(5, 3, 1, system_flag::seen)); // 5 is expunged by d itself
        refused("a good delta with one bad update", d);
        d = sample_followup();
        d.appended.push_back(vmsg(21, 1, 77)); // below 22, appended before it
        refused("a good delta with one bad append", d);
    }
    SUBCASE("an injected failure") {
        if (!f.fail_next_commit(error{errc::io, "disk full"})) return;
        auto r = f.store().commit(sample_followup());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::io));
        ref.check(f.store());
        f.reopen();
        ref.check(f.store());
        commit_ok(f, ref, sample_followup()); // then it works
    }
    SUBCASE("the store works after refusals") {
        view_delta bad;
        bad.appended = {vmsg(1, 1, 50)};
        CHECK_FALSE(f.store().commit(bad).has_value());
        commit_ok(f, ref, sample_followup());
    }
}

// ============================================================================ S5

TEST_CASE_TEMPLATE("S5 reset: discards the stored state", F, VFOLDER_STORE_FIXTURES) {
    F f;
    reference ref;

    SUBCASE("reset of nothing") {
        auto r = f.store().reset();
        REQUIRE_MESSAGE(r.has_value(), what(r));
        CHECK_FALSE(load_ok(f.store()).has_value());
    }
    SUBCASE("reset after commits, seen after reopening") {
        commit_ok(f, ref, sample_rebuild());
        commit_ok(f, ref, sample_followup());
        REQUIRE(f.store().reset().has_value());
        CHECK_FALSE(load_ok(f.store()).has_value());
        f.reopen();
        CHECK_FALSE(load_ok(f.store()).has_value());
    }
    SUBCASE("the first commit after a reset starts from an empty state") {
        commit_ok(f, ref, sample_rebuild());
        REQUIRE(f.store().reset().has_value());
        ref.reset();
        view_delta d;
        d.header = vheader(9, 3, 1);
        d.backends = {vbox(1, "Fresh")};
        d.appended = {vmsg(1, 1, 1), vmsg(2, 1, 2)};
        commit_ok(f, ref, d);
        CHECK(load_ok(f.store())->messages.size() == 2);
    }
    SUBCASE("reset of a corrupted state") {
        view_state bad = sample_state();
        bad.messages[0].vuid = uid{0};
        if (!f.plant(bad)) return;
        CHECK_FALSE(f.store().load().has_value());
        REQUIRE(f.store().reset().has_value());
        CHECK_FALSE(load_ok(f.store()).has_value());
    }
}

// ============================================================================ randomized

TEST_CASE_TEMPLATE("S1-S5 randomized: valid deltas against the apply model", F,
                   VFOLDER_STORE_FIXTURES) {
    for (std::uint32_t seed : {1u, 2u, 3u, 99u, 4242u, 20240611u}) {
        INFO("seed ", seed);
        F f;
        reference ref;
        delta_generator gen(seed);
        for (int step = 0; step < 150; ++step) {
            INFO("step ", step);
            switch (gen.pick(20)) {
            case 0: // reopen
                f.reopen();
                break;
            case 1: // reset
                REQUIRE(f.store().reset().has_value());
                ref.reset();
                break;
            case 2: { // a refused delta: a valid one plus an update of a vuid never used
                if (!ref.state()) break;
                view_delta bad = gen.make(ref.state());
                if (bad.replace_all) bad = {};
                bad.updated.push_back(vmsg(value(ref.state()->header.next_uid) + 1000, 1, 1));
                CHECK_FALSE(f.store().commit(bad).has_value());
                break;
            }
            default: {
                view_delta const d = gen.make(ref.state());
                view_state probe = ref.state().value_or(view_state{});
                REQUIRE(apply(probe, d).has_value());
                auto const v = validate(probe);
                REQUIRE_MESSAGE(v.has_value(), "generator made an invalid state: ", what(v));
                auto r = f.store().commit(d);
                REQUIRE_MESSAGE(r.has_value(), what(r));
                ref.commit(d);
                break;
            }
            }
            ref.check(f.store());
        }
    }
}

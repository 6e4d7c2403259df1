// The cost shape of a sync (engine issue, section 3), proven by counting, never timing:
// backend calls (memory_mailbox::calls) and message records read (records_touched), and
// the size of what is committed to the store. With N = 20000 messages over B = 10
// backends:
//  - a sync after k flag changes reads O(k) records (at most c*k, the same for N = 2000
//    and N = 20000) and makes no search on the backends that did not change;
//  - a sync with nothing changed makes one status call per backend and no other call;
//  - what a sync commits is O(k) records, not N.
#include "conformance/backend_fixture.hpp" // the StringMaker of uid_set

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace vfolder;

constexpr std::int64_t base_time = 1580515200; // 1-Feb-2020

// A memory_store that records the size of each delta it is given.
struct delta_sizes {
    std::size_t commits = 0;
    std::size_t records = 0;  // appended + updated + expunged in the last commit
    std::size_t backends = 0; // backend records written in the last commit
};
class counting_store {
public:
    counting_store(memory_store s, delta_sizes& d) : s_(std::move(s)), d_(&d) {}
    result<std::optional<view_state>> load() { return s_.load(); }
    result<void> commit(view_delta const& d) {
        ++d_->commits;
        d_->records = d.appended.size() + d.updated.size() + static_cast<std::size_t>(d.expunged.count());
        d_->backends = d.backends.size() + d.backends_removed.size();
        return s_.commit(d);
    }
    result<void> reset() { return s_.reset(); }

private:
    memory_store s_;
    delta_sizes* d_;
};
static_assert(view_store<counting_store>);

using folder_t = folder<memory_provider, counting_store>;

constexpr std::size_t op_count = backend_op_count;
using call_counts = std::array<std::uint64_t, op_count>;

struct big_world {
    memory_world world{100};
    memory_store_world stores;
    delta_sizes sizes;
    std::vector<memory_mailbox*> boxes;
    std::optional<folder_t> f;

    big_world(std::size_t n, std::size_t b, char const* program, bool parallel = false) {
        std::vector<std::string> names;
        for (std::size_t i = 0; i < b; ++i) {
            names.push_back("box" + std::to_string(i));
            boxes.push_back(*world.create(names.back()));
        }
        for (std::size_t i = 0; i < n; ++i) {
            auto* mb = boxes[i % b];
            message_flags fl;
            if (i % 3 == 0) fl.flags = system_flag::seen;
            if (i % 7 == 0) fl.keywords.insert("$X");
            mb->append(mail_time{base_time + static_cast<std::int64_t>(i % 5000)}, std::move(fl), {}, 100);
        }
        auto def = folder_definition::make(names, program);
        REQUIRE(def.has_value());
        folder_options o;
        o.parallel = parallel;
        o.make_validity = [](uid_validity) { return uid_validity{77}; };
        auto r = folder_t::open(std::move(def).value(), memory_provider(world),
                                counting_store(memory_store(stores, "V"), sizes), o);
        REQUIRE(r.has_value());
        f.emplace(std::move(r).value());
        REQUIRE(f->sync(sync_flags::reopen).has_value());
    }

    std::uint64_t touched() const {
        std::uint64_t t = 0;
        for (auto const* b : boxes) t += b->records_touched();
        return t;
    }
    static call_counts calls_of(memory_mailbox const& b) {
        call_counts c{};
        for (std::size_t i = 0; i < op_count; ++i) c[i] = b.calls(static_cast<backend_op>(i));
        return c;
    }
    std::vector<call_counts> calls() const {
        std::vector<call_counts> v;
        for (auto const* b : boxes) v.push_back(calls_of(*b));
        return v;
    }
};

std::uint64_t delta(call_counts const& after, call_counts const& before, backend_op op) {
    auto const i = static_cast<std::size_t>(op);
    return after[i] - before[i];
}

// k flag changes spread over the first `changed` backends; returns the records touched
// by the sync that follows.
std::uint64_t touched_by_flag_changes(big_world& w, std::size_t k, std::size_t changed) {
    for (std::size_t j = 0; j < k; ++j) {
        auto* b = w.boxes[j % changed];
        auto const& m = b->messages()[(j * 37) % 150]; // the same messages for every N >= 1500
        b->modify_flags(m.id, modify_op::replace, m.flags.contains(system_flag::seen) ? flag_set{} : flag_set(system_flag::seen));
    }
    auto const t0 = w.touched();
    auto r = w.f->sync();
    REQUIRE(r.has_value());
    return w.touched() - t0;
}

} // namespace

TEST_CASE("folder shape: an incremental sync after k flag changes touches O(k) records, not N") {
    constexpr std::size_t n = 20000, b = 10, k = 5;
    for (char const* program : {"unseen", "all", "or flagged keyword $X"}) {
        CAPTURE(program);
        big_world w(n, b, program);
        auto const before = w.calls();
        std::uint64_t const touched = touched_by_flag_changes(w, k, 2); // boxes 0 and 1 change
        auto const after = w.calls();
        CHECK(touched <= 4 * k); // changes_since + search within + fetch: a few reads per change
        CHECK(touched >= k);     // the changes were read
        for (std::size_t i = 0; i < b; ++i) {
            CAPTURE(i);
            CHECK(delta(after[i], before[i], backend_op::status) == 1);
            if (i >= 2) { // unchanged: nothing but status
                CHECK(delta(after[i], before[i], backend_op::search) == 0);
                CHECK(delta(after[i], before[i], backend_op::changes_since) == 0);
                CHECK(delta(after[i], before[i], backend_op::fetch) == 0);
            } else {
                CHECK(delta(after[i], before[i], backend_op::changes_since) == 1);
                CHECK(delta(after[i], before[i], backend_op::search) <= 1);
                CHECK(delta(after[i], before[i], backend_op::fetch) <= 2);
            }
        }
        // What was committed: the changed records and the two backend records.
        CHECK(w.sizes.records <= k);
        CHECK(w.sizes.backends == 2);
    }
}

TEST_CASE("folder shape: the records touched by an incremental sync do not grow with N") {
    constexpr std::size_t k = 5;
    for (char const* program : {"unseen", "all"}) {
        CAPTURE(program);
        big_world small(2000, 10, program), large(20000, 10, program);
        CHECK(touched_by_flag_changes(small, k, 3) == touched_by_flag_changes(large, k, 3));
        // New messages and expunges too.
        for (auto* w : {&small, &large}) {
            for (std::size_t j = 0; j < k; ++j) w->boxes[j]->append(mail_time{base_time + 9}, {}, {}, 100);
            for (std::size_t j = 0; j < k; ++j) w->boxes[j]->expunge_one(w->boxes[j]->messages()[j * 3].id);
        }
        auto const s0 = small.touched(), l0 = large.touched();
        REQUIRE(small.f->sync().has_value());
        REQUIRE(large.f->sync().has_value());
        CHECK(small.touched() - s0 == large.touched() - l0);
        CHECK(large.touched() - l0 <= 4 * 2 * k);
        CHECK(large.sizes.records <= 2 * k);
    }
}

TEST_CASE("folder shape: a sync with nothing changed makes one status call per backend and no other call") {
    constexpr std::size_t n = 20000, b = 10;
    for (bool parallel : {false, true}) {
        CAPTURE(parallel);
        big_world w(n, b, "unseen", parallel);
        // Pending removes (which the next open applies) do not cost a rescan either.
        w.boxes[4]->modify_flags(w.boxes[4]->messages()[1].id, modify_op::add, system_flag::seen);
        REQUIRE(w.f->sync().has_value());
        REQUIRE_FALSE(w.f->pending_removes("box4").empty());
        auto const commits = w.sizes.commits;
        for (sync_flags fl : {sync_flags::none, sync_flags::fast, sync_flags::none}) {
            auto const before = w.calls();
            auto const t0 = w.touched();
            auto r = w.f->sync(fl);
            REQUIRE(r.has_value());
            CHECK(r->empty());
            auto const after = w.calls();
            CHECK(w.touched() == t0);
            for (std::size_t i = 0; i < b; ++i) {
                CAPTURE(i);
                for (std::size_t op = 0; op < op_count; ++op) {
                    CAPTURE(op);
                    CHECK(after[i][op] - before[i][op] == (static_cast<backend_op>(op) == backend_op::status ? 1u : 0u));
                }
            }
        }
        CHECK(w.sizes.commits == commits); // nothing to commit either

        // sync(reopen) applies the pending removes without reading the backends.
        auto const before = w.calls();
        auto const t0 = w.touched();
        auto r = w.f->sync(sync_flags::reopen);
        REQUIRE(r.has_value());
        CHECK(r->expunged.count() == 1);
        CHECK(w.touched() == t0);
        auto const after = w.calls();
        for (std::size_t i = 0; i < b; ++i) {
            CAPTURE(i);
            CHECK(delta(after[i], before[i], backend_op::status) == 1);
            CHECK(delta(after[i], before[i], backend_op::search) == 0);
            CHECK(delta(after[i], before[i], backend_op::changes_since) == 0);
            CHECK(delta(after[i], before[i], backend_op::fetch) == 0);
        }
        CHECK(w.sizes.records == 1);
    }
}

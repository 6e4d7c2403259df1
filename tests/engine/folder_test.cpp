// Targeted tests of the sync engine (engine/folder.hpp), one behaviour per TEST_CASE:
// SEMANTICS.md §3.2-§3.13 and §7 without Dovecot's bugs, and sections 2 and 5 of the
// engine issue. The randomized model check is model_test.cpp, the cost shape
// shape_test.cpp. Backend work is proven with memory_mailbox::calls() and
// records_touched(), never timed.
#include "conformance/backend_fixture.hpp" // the StringMaker of uid_set

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/any_backend.hpp>
#include <vfolder/engine/folder.hpp>
#include <vfolder/engine/registry_provider.hpp>
#include <vfolder/registry.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace vfolder;
using folder_t = folder<memory_provider, memory_store>;

constexpr std::int64_t base_time = 1580515200; // 1-Feb-2020 00:00:00 UTC
mail_time at(std::int64_t seconds) { return mail_time{base_time + seconds}; }

uid_set set_of(std::initializer_list<std::uint32_t> values) {
    uid_set s;
    for (auto v : values) s.add(v);
    return s;
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

std::string format_flags(flag_set flags, keyword_set const& kws) {
    std::vector<std::string> all(kws.begin(), kws.end());
    for (auto f : all_system_flags)
        if (flags.contains(f)) all.emplace_back(flag_name(f)); // \Recent too: it must never be there
    std::sort(all.begin(), all.end());
    std::string out = "(";
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (i) out += ' ';
        out += all[i];
    }
    return out + ")";
}

// The view in the scenario form: "vuid backend backend_uid (flags)" per line, vuid order.
template <class F>
std::string dump(F const& f) {
    std::string out;
    f.for_each([&](folder_message const& m) {
        out += std::to_string(value(m.vuid)) + ' ' + std::string(m.backend) + ' ' +
               std::to_string(value(m.backend_uid)) + ' ' + format_flags(m.flags, *m.keywords) + '\n';
    });
    return out;
}

template <class F>
sync_report must_sync(F& f, sync_flags flags = sync_flags::none) {
    auto r = f.sync(flags);
    if (!r.has_value()) FAIL("sync failed: " << r.error_value().message);
    return std::move(r).value();
}

message_flags with(flag_set f, std::initializer_list<char const*> kws = {}) {
    message_flags m;
    m.flags = f;
    for (auto const* k : kws) m.keywords.insert(k);
    return m;
}

keyword_set kw(std::initializer_list<char const*> names) {
    keyword_set k;
    for (auto const* n : names) k.insert(n);
    return k;
}

// A world of memory mailboxes, a store world, and a deterministic UIDVALIDITY source.
struct env {
    memory_world world{100};
    memory_store_world stores;
    std::uint32_t next_validity = 7000;

    folder_options options() {
        folder_options o;
        o.self_name = "Virtual/V";
        o.make_validity = [this](uid_validity) { return uid_validity{++next_validity}; };
        return o;
    }
    memory_mailbox& box(std::string_view name) {
        if (auto* b = world.find(name)) return *b;
        auto r = world.create(name);
        REQUIRE(r.has_value());
        return **r;
    }
    memory_store store(std::string name = "V") { return memory_store(stores, std::move(name)); }

    folder_t open(folder_definition const& def, folder_options o) {
        auto r = folder_t::open(def, memory_provider(world), store(), std::move(o));
        if (!r.has_value()) FAIL("open failed: " << r.error_value().message);
        return std::move(r).value();
    }
    folder_t open(std::initializer_list<std::string_view> patterns, std::string_view program) {
        return open(make_def(patterns, program), options());
    }
    static folder_definition make_def(std::initializer_list<std::string_view> patterns, std::string_view program) {
        auto d = folder_definition::make(patterns, program);
        REQUIRE(d.has_value());
        return std::move(d).value();
    }
};

std::uint64_t calls(memory_mailbox const& b, backend_op op) { return b.calls(op); }

// Counters of one mailbox, to compare before and after a sync.
struct counters {
    std::uint64_t status, search, changes, fetch, update_flags, update_keywords, expunge, open, touched;
    explicit counters(memory_mailbox const& b)
        : status(b.calls(backend_op::status)), search(b.calls(backend_op::search)),
          changes(b.calls(backend_op::changes_since)), fetch(b.calls(backend_op::fetch)),
          update_flags(b.calls(backend_op::update_flags)), update_keywords(b.calls(backend_op::update_keywords)),
          expunge(b.calls(backend_op::expunge)), open(b.calls(backend_op::open)), touched(b.records_touched()) {}
};

// ---------------------------------------------------------------- a backend with knobs
// Wraps memory_backend: make() can answer permission or I/O errors for chosen names,
// fetch can report \Recent, status can be slow, and every call checks that the backend
// is open (and that it is not closed in the middle of a call).
struct knobs {
    std::vector<std::string> permission; // make() -> errc::permission
    std::vector<std::string> broken;     // make() -> errc::io
    bool recent_in_fetch = false;
    std::string slow;                    // this backend's status() sleeps 50 ms
    int open_now = 0;
    int max_open = 0;
    std::atomic<int> violations{0};      // a call on a closed backend, or a close during a call
};

class test_backend {
public:
    test_backend(memory_backend b, knobs* k)
        : inner_(std::move(b)), k_(k), open_(std::make_unique<std::atomic<bool>>(false)),
          in_call_(std::make_unique<std::atomic<int>>(0)) {}

    [[nodiscard]] std::string_view name() const noexcept { return inner_.name(); }
    result<void> open() {
        bool const was = inner_.is_open();
        auto r = inner_.open();
        if (r && !was) {
            ++k_->open_now;
            k_->max_open = std::max(k_->max_open, k_->open_now);
            *open_ = true;
        }
        return r;
    }
    void close() noexcept {
        if (inner_.is_open()) {
            --k_->open_now;
            if (*in_call_ > 0) ++k_->violations;
        }
        *open_ = false;
        inner_.close();
    }
    [[nodiscard]] bool is_open() const noexcept { return inner_.is_open(); }
    [[nodiscard]] memory_backend& inner() noexcept { return inner_; }

    result<mailbox_status> status() {
        guard g(*this);
        if (!k_->slow.empty() && name() == k_->slow) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return inner_.status();
    }
    result<uid_set> search(search_program const& p) {
        guard g(*this);
        return inner_.search(p);
    }
    result<uid_set> search(search_program const& p, uid_set const& within) {
        guard g(*this);
        return inner_.search(p, within);
    }
    result<change_set> changes_since(modseq m) {
        guard g(*this);
        return inner_.changes_since(m);
    }
    result<std::vector<message_record>> fetch(uid_set const& u, fetch_fields f) {
        guard g(*this);
        auto r = inner_.fetch(u, f);
        if (r && k_->recent_in_fetch)
            for (auto& m : *r) m.flags |= system_flag::recent;
        return r;
    }
    result<void> update_flags(uid_set const& u, modify_op op, flag_set f) {
        guard g(*this);
        return inner_.update_flags(u, op, f);
    }
    result<void> update_keywords(uid_set const& u, modify_op op, keyword_set const& k) {
        guard g(*this);
        return inner_.update_keywords(u, op, k);
    }
    result<void> expunge(uid_set const& u) {
        guard g(*this);
        return inner_.expunge(u);
    }

private:
    struct guard {
        test_backend& b;
        explicit guard(test_backend& x) : b(x) {
            if (!*b.open_) ++b.k_->violations;
            ++*b.in_call_;
        }
        ~guard() { --*b.in_call_; }
        guard(guard const&) = delete;
        guard& operator=(guard const&) = delete;
    };
    memory_backend inner_;
    knobs* k_;
    std::unique_ptr<std::atomic<bool>> open_;
    std::unique_ptr<std::atomic<int>> in_call_;
};
static_assert(openable_backend<test_backend>);

class test_provider {
public:
    test_provider(memory_world& w, knobs& k) : w_(&w), k_(&k) {}
    [[nodiscard]] std::vector<std::string> list() const { return w_->list(); }
    result<test_backend> make(std::string_view name) const {
        auto const listed = [&](std::vector<std::string> const& v) {
            return std::find(v.begin(), v.end(), name) != v.end();
        };
        if (listed(k_->permission)) return error{errc::permission, "Permission denied"};
        if (listed(k_->broken)) return error{errc::io, "Input/output error"};
        if (!w_->find(name)) return error{errc::not_found, "Mailbox doesn't exist: " + std::string(name)};
        return test_backend(memory_backend(*w_, std::string(name)), k_);
    }

private:
    memory_world* w_;
    knobs* k_;
};
using test_folder = folder<test_provider, memory_store>;

test_folder open_test(env& e, knobs& k, folder_definition const& def, folder_options o) {
    auto r = test_folder::open(def, test_provider(e.world, k), e.store(), std::move(o));
    if (!r.has_value()) FAIL("open failed: " << r.error_value().message);
    return std::move(r).value();
}

template <class F>
int open_count(F& f) {
    int n = 0;
    for (auto const& name : f.backends())
        if (auto* b = f.backend_of(name); b && b->is_open()) ++n;
    return n;
}

} // namespace

// ================================================================ the three paths

TEST_CASE("folder: the first sync searches every backend and adds every match") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    a.append(at(10), with(system_flag::seen));
    a.append(at(20));
    b.append(at(15));
    auto f = e.open({"A", "B"}, "unseen");
    CHECK(f.size() == 0); // open talks to no backend beyond make
    CHECK(calls(a, backend_op::status) == 0);
    auto r = must_sync(f, sync_flags::reopen);
    CHECK(r.added == set_of({1, 2}));
    CHECK(r.expunged.empty());
    CHECK(dump(f) == "1 B 1 ()\n2 A 2 ()\n");
    CHECK(calls(a, backend_op::search) == 1);
    CHECK(calls(b, backend_op::search) == 1);
}

TEST_CASE("folder: an unchanged backend costs one status call and no search, changes or fetch") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    for (int i = 0; i < 50; ++i) a.append(at(i));
    b.append(at(1));
    auto f = e.open({"A", "B"}, "unseen");
    must_sync(f, sync_flags::reopen);
    b.append(at(2)); // B changes, A does not

    counters const a0(a);
    auto r = must_sync(f);
    counters const a1(a);
    CHECK(r.added == set_of({52}));
    CHECK(a1.status == a0.status + 1);
    CHECK(a1.search == a0.search);
    CHECK(a1.changes == a0.changes);
    CHECK(a1.fetch == a0.fetch);
    CHECK(a1.touched == a0.touched);
    CHECK(a1.open == a0.open);

    SUBCASE("also with sync(reopen) and sync(expunge)") {
        counters const a2(a);
        must_sync(f, sync_flags::reopen);
        must_sync(f, sync_flags::expunge);
        counters const a3(a);
        CHECK(a3.status == a2.status + 2);
        CHECK(a3.search == a2.search);
        CHECK(a3.changes == a2.changes);
        CHECK(a3.fetch == a2.fetch);
        CHECK(a3.touched == a2.touched);
    }
}

TEST_CASE("folder: an incremental sync reads changes_since, never a full search") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 200; ++i) a.append(at(i));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);

    SUBCASE("a new message: search within the new UIDs, one fetch") {
        counters const c0(a);
        a.append(at(500));
        auto r = must_sync(f);
        counters const c1(a);
        CHECK(r.added == set_of({201}));
        CHECK(c1.changes == c0.changes + 1);
        CHECK(c1.search == c0.search + 1);
        CHECK(c1.fetch == c0.fetch + 1);
        CHECK(c1.touched - c0.touched <= 4); // not 200
    }
    SUBCASE("a flag change under a program that ignores flags: no search at all") {
        counters const c0(a);
        a.modify_flags(uid{7}, modify_op::add, system_flag::flagged);
        auto r = must_sync(f);
        counters const c1(a);
        CHECK(r.flags_changed == set_of({7}));
        CHECK(c1.changes == c0.changes + 1);
        CHECK(c1.search == c0.search);
        CHECK(c1.fetch == c0.fetch + 1);
        CHECK(c1.touched - c0.touched <= 3);
        CHECK(f.find(uid{7})->flags == flag_set(system_flag::flagged));
    }
    SUBCASE("expunges, with the expunge log trimmed: a search within the members, no full search") {
        a.expunge_one(uid{3});
        a.trim_expunge_log(a.highest_modseq());
        counters const c0(a);
        auto r = must_sync(f);
        counters const c1(a);
        CHECK(r.expunged == set_of({3}));
        CHECK(c1.changes == c0.changes + 1);
        CHECK(c1.search == c0.search + 1);
        CHECK(f.size() == 199);
    }
}

TEST_CASE("folder: a UIDVALIDITY reset expunges the old vuids and re-adds the matches with new ones") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    for (int i = 0; i < 3; ++i) a.append(at(i));
    b.append(at(100));
    auto f = e.open({"A", "B"}, "unseen");
    must_sync(f, sync_flags::reopen);
    REQUIRE(dump(f) == "1 A 1 ()\n2 A 2 ()\n3 A 3 ()\n4 B 1 ()\n");
    a.modify_flags(uid{2}, modify_op::add, system_flag::seen);
    must_sync(f); // 2 is now a pending remove
    REQUIRE(f.pending_removes("A") == set_of({2}));

    // Same real UIDs after the reset: re-linking by UID would be the seed bug.
    a.reset_validity(e.world.fresh_validity());
    auto r = must_sync(f); // a plain sync: detected at any time, not only at open
    CHECK(r.expunged == set_of({1, 2, 3}));
    CHECK(r.added == set_of({5, 6}));
    CHECK(dump(f) == "4 B 1 ()\n5 A 1 ()\n6 A 3 ()\n");
    CHECK(f.pending_removes("A").empty());
    CHECK(f.status().uid_next == uid{7});
}

TEST_CASE("folder: a guid change alone is an identity change") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    a.append(at(2));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    a.reset_validity(a.validity(), e.world.fresh_guid()); // same UIDVALIDITY, new guid
    auto r = must_sync(f);
    CHECK(r.expunged == set_of({1, 2}));
    CHECK(r.added == set_of({3, 4}));
}

TEST_CASE("folder: a backend deleted and re-created between syncs is a new identity") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    a.append(at(2));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    REQUIRE(e.world.remove("A").has_value());
    auto& a2 = e.box("A");
    a2.append(at(3));
    auto r = must_sync(f);
    CHECK(r.expunged == set_of({1, 2}));
    CHECK(r.added == set_of({3}));
    CHECK(dump(f) == "3 A 1 ()\n");
}

TEST_CASE("folder: an identity change is detected after the backend was auto-closed") {
    env e;
    for (auto const* n : {"A", "B", "C"}) e.box(n).append(at(1));
    auto o = e.options();
    o.max_open_backends = 1;
    auto f = e.open(env::make_def({"A", "B", "C"}, "all"), o);
    must_sync(f, sync_flags::reopen);
    CHECK_FALSE(f.backend_of("A")->is_open());
    e.box("A").reset_validity(e.world.fresh_validity());
    auto r = must_sync(f);
    CHECK(r.expunged == set_of({1}));
    CHECK(r.added == set_of({4}));
}

TEST_CASE("folder: each backend is filtered with the program of its group") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("L/b");
    a.append(at(1), with(system_flag::seen));
    a.append(at(2));
    b.append(at(3), with(system_flag::seen));
    b.append(at(4));
    auto def = env::make_def({"A"}, "all");
    REQUIRE(def.add_group({"L/*"}, "unseen").has_value());
    auto f = e.open(def, e.options());
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 A 1 (\\Seen)\n2 A 2 ()\n3 L/b 2 ()\n");
    a.modify_flags(uid{2}, modify_op::add, system_flag::seen);   // still matches "all"
    b.modify_flags(uid{2}, modify_op::add, system_flag::seen);   // stops matching "unseen"
    b.modify_flags(uid{1}, modify_op::remove, system_flag::seen); // starts matching
    auto r = must_sync(f);
    CHECK(r.added == set_of({4}));
    CHECK(f.pending_removes("A").empty());
    CHECK(f.pending_removes("L/b") == set_of({2}));
    auto x = must_sync(f, sync_flags::reopen); // re-expanding keeps each backend's group
    CHECK(x.expunged == set_of({3}));
    CHECK(dump(f) == "1 A 1 (\\Seen)\n2 A 2 (\\Seen)\n4 L/b 1 ()\n");
}

// ================================================================ pending removes

TEST_CASE("folder: a message that stops matching is a pending remove on a plain sync") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 3; ++i) a.append(at(i));
    auto f = e.open({"A"}, "unseen");
    must_sync(f, sync_flags::reopen);
    a.modify_flags(uid{2}, modify_op::add, system_flag::seen);
    auto r = must_sync(f);
    CHECK(r.expunged.empty());
    CHECK(r.flags_changed == set_of({2}));   // still visible, flags still updated
    CHECK(dump(f) == "1 A 1 ()\n2 A 2 (\\Seen)\n3 A 3 ()\n");
    CHECK(f.pending_removes("A") == set_of({2}));
    CHECK(must_sync(f).empty());             // stays pending
    CHECK(f.pending_removes("A") == set_of({2}));

    SUBCASE("applied by sync(expunge)") {
        auto x = must_sync(f, sync_flags::expunge);
        CHECK(x.expunged == set_of({2}));
        CHECK(dump(f) == "1 A 1 ()\n3 A 3 ()\n");
        CHECK(f.pending_removes("A").empty());
    }
    SUBCASE("applied by sync(reopen)") {
        auto x = must_sync(f, sync_flags::reopen);
        CHECK(x.expunged == set_of({2}));
        CHECK(f.pending_removes("A").empty());
    }
    SUBCASE("the stored record holds the pending removes") {
        auto raw = e.store().raw();
        REQUIRE(raw.has_value());
        REQUIRE(raw->backends.size() == 1);
        CHECK(raw->backends[0].pending_removes == set_of({2}));
    }
}

TEST_CASE("folder: a pending remove that matches again is cancelled and keeps its vuid") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 3; ++i) a.append(at(i));
    auto f = e.open({"A"}, "unseen");
    must_sync(f, sync_flags::reopen);
    a.modify_flags(uid{2}, modify_op::add, system_flag::seen);
    must_sync(f);
    REQUIRE(f.pending_removes("A") == set_of({2}));
    a.modify_flags(uid{2}, modify_op::remove, system_flag::seen);
    auto r = must_sync(f);
    CHECK(r.added.empty());
    CHECK(r.expunged.empty());
    CHECK(r.flags_changed == set_of({2}));
    CHECK(f.pending_removes("A").empty());
    // Dovecot's bug would remove it here although it matches.
    auto x = must_sync(f, sync_flags::expunge);
    CHECK(x.expunged.empty());
    CHECK(dump(f) == "1 A 1 ()\n2 A 2 ()\n3 A 3 ()\n");
    auto y = must_sync(f, sync_flags::reopen);
    CHECK(y.empty());
}

TEST_CASE("folder: pending removes persist across close and re-open and are applied at the next open") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 3; ++i) a.append(at(i));
    {
        auto f = e.open({"A"}, "unseen");
        must_sync(f, sync_flags::reopen);
        a.modify_flags(uid{1}, modify_op::add, system_flag::seen);
        a.modify_flags(uid{3}, modify_op::add, system_flag::seen);
        must_sync(f);
        REQUIRE(f.pending_removes("A") == set_of({1, 3}));
    } // closed without expunge (a crash or a logout)
    auto g = e.open({"A"}, "unseen");
    CHECK(g.pending_removes("A") == set_of({1, 3}));
    CHECK(dump(g) == "1 A 1 (\\Seen)\n2 A 2 ()\n3 A 3 (\\Seen)\n");

    SUBCASE("the next open applies them") {
        auto r = must_sync(g, sync_flags::reopen);
        CHECK(r.expunged == set_of({1, 3}));
        CHECK(dump(g) == "2 A 2 ()\n");
        CHECK(g.pending_removes("A").empty());
        auto raw = e.store().raw();
        REQUIRE(raw.has_value());
        CHECK(raw->backends[0].pending_removes.empty());
    }
    SUBCASE("a plain sync after the open keeps them") {
        auto r = must_sync(g);
        CHECK(r.empty());
        CHECK(g.pending_removes("A") == set_of({1, 3}));
    }
    SUBCASE("one that matches again meanwhile is cancelled") {
        a.modify_flags(uid{3}, modify_op::remove, system_flag::seen);
        auto r = must_sync(g, sync_flags::reopen);
        CHECK(r.expunged == set_of({1}));
        CHECK(dump(g) == "2 A 2 ()\n3 A 3 ()\n");
    }
}

TEST_CASE("folder: backend expunges remove at once, pending removes included") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 4; ++i) a.append(at(i));
    auto f = e.open({"A"}, "unseen");
    must_sync(f, sync_flags::reopen);
    a.modify_flags(uid{2}, modify_op::add, system_flag::seen);
    must_sync(f);
    REQUIRE(f.pending_removes("A") == set_of({2}));
    a.expunge_one(uid{2});
    a.expunge_one(uid{3});
    auto r = must_sync(f); // a plain sync
    CHECK(r.expunged == set_of({2, 3}));
    CHECK(dump(f) == "1 A 1 ()\n4 A 4 ()\n");
    CHECK(f.pending_removes("A").empty());
}

TEST_CASE("folder: a deleted backend's messages are removed at once") {
    env e;
    e.box("A").append(at(1));
    e.box("B").append(at(2));
    e.box("B").append(at(3));
    auto f = e.open({"A", "B"}, "all");
    must_sync(f, sync_flags::reopen);
    e.box("B").modify_flags(uid{1}, modify_op::add, system_flag::seen);
    REQUIRE(e.world.remove("B").has_value());
    auto r = must_sync(f);
    CHECK(r.expunged == set_of({2, 3}));
    CHECK(dump(f) == "1 A 1 ()\n");
    CHECK(f.backends() == std::vector<std::string>{"A"});
    CHECK(f.to_virtual("B", set_of({1, 2})).empty());
    auto raw = e.store().raw();
    REQUIRE(raw.has_value());
    CHECK(raw->backends.size() == 1);
    CHECK(must_sync(f).empty());
}

// ================================================================ order and vuids

TEST_CASE("folder: a batch over several backends is ordered by received date, then real UID, then backend") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    a.append(at(30)); // A1
    a.append(at(10)); // A2
    a.append(at(20)); // A3
    b.append(at(20)); // B1
    b.append(at(10)); // B2

    SUBCASE("backend order is definition order: A first") {
        auto f = e.open({"A", "B"}, "all");
        must_sync(f, sync_flags::reopen);
        CHECK(dump(f) == "1 A 2 ()\n2 B 2 ()\n3 B 1 ()\n4 A 3 ()\n5 A 1 ()\n");
    }
    SUBCASE("B written first: B wins the full tie") {
        auto f = e.open({"B", "A"}, "all");
        must_sync(f, sync_flags::reopen);
        CHECK(dump(f) == "1 B 2 ()\n2 A 2 ()\n3 B 1 ()\n4 A 3 ()\n5 A 1 ()\n");
    }
    SUBCASE("explicit names before wildcard matches, wildcard matches in name order") {
        e.box("L/b").append(at(10));
        e.box("L/a").append(at(10));
        auto f = e.open({"L/*", "B"}, "all");
        must_sync(f, sync_flags::reopen);
        // B (named) is backend 1, then L/a, L/b; full ties at (10, 1): none; (10,2): B only.
        CHECK(dump(f) == "1 L/a 1 ()\n2 L/b 1 ()\n3 B 2 ()\n4 B 1 ()\n");
        CHECK(f.backends() == std::vector<std::string>{"B", "L/a", "L/b"});
    }
    SUBCASE("a later batch over several backends is ordered the same way") {
        auto f = e.open({"A", "B"}, "all");
        must_sync(f, sync_flags::reopen);
        b.append(at(5));   // B3
        a.append(at(5));   // A4
        a.append(at(1));   // A5
        auto r = must_sync(f);
        CHECK(r.added == set_of({6, 7, 8}));
        CHECK(dump(f).substr(dump(f).find("6 ")) == "6 A 5 ()\n7 B 3 ()\n8 A 4 ()\n");
    }
}

TEST_CASE("folder: a batch from one backend keeps ascending UID order whatever the dates") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    a.append(at(30));
    a.append(at(20));
    a.append(at(10));
    auto f = e.open({"A", "B"}, "all");
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 A 1 ()\n2 A 2 ()\n3 A 3 ()\n");
    b.append(at(9));
    b.append(at(8));
    b.append(at(1));
    must_sync(f);
    CHECK(dump(f) == "1 A 1 ()\n2 A 2 ()\n3 A 3 ()\n4 B 1 ()\n5 B 2 ()\n6 B 3 ()\n");
}

TEST_CASE("folder: vuids come from uid_next and are never reused") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 3; ++i) a.append(at(i));
    {
        auto f = e.open({"A"}, "all");
        must_sync(f, sync_flags::reopen);
        CHECK(f.status().uid_next == uid{4});
        for (std::uint32_t u = 1; u <= 3; ++u) a.expunge_one(uid{u});
        must_sync(f);
        CHECK(f.size() == 0);
        CHECK(f.status().uid_next == uid{4});
        a.append(at(9));
        auto r = must_sync(f);
        CHECK(r.added == set_of({4}));
    }
    auto g = e.open({"A"}, "all"); // from the store
    CHECK(g.status().uid_next == uid{5});
    a.append(at(10));
    auto r = must_sync(g, sync_flags::reopen);
    CHECK(r.added == set_of({5}));
    a.reset_validity(e.world.fresh_validity());
    auto x = must_sync(g);
    CHECK(x.expunged == set_of({4, 5}));
    CHECK(x.added == set_of({6, 7}));
}

TEST_CASE("folder: UIDVALIDITY is set once") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    uid_validity v{};
    {
        auto f = e.open({"A"}, "all");
        v = f.status().validity;
        CHECK(value(v) != 0);
        must_sync(f, sync_flags::reopen);
        a.append(at(2));
        a.expunge_one(uid{1});
        must_sync(f);
        a.reset_validity(e.world.fresh_validity()); // a backend identity change
        must_sync(f);
        CHECK(f.status().validity == v);
    }
    SUBCASE("kept across re-open") {
        auto g = e.open({"A"}, "all");
        CHECK(g.status().validity == v);
        must_sync(g, sync_flags::reopen);
        CHECK(g.status().validity == v);
    }
    SUBCASE("kept across a definition change") {
        auto g = e.open({"A"}, "unseen");
        must_sync(g, sync_flags::reopen);
        CHECK(g.status().validity == v);
    }
    SUBCASE("a new one after a broken state is rebuilt, and vuids start over") {
        e.store().break_state();
        auto g = e.open({"A"}, "all");
        CHECK(g.status().validity != v);
        CHECK(g.status().uid_next == uid{1});
        auto r = must_sync(g, sync_flags::reopen);
        CHECK(r.added == set_of({1}));
        auto raw = e.store().raw();
        REQUIRE(raw.has_value());
        CHECK(raw->header.validity == g.status().validity);
        CHECK(e.store().load().has_value());
    }
}

TEST_CASE("folder: bug: the default UIDVALIDITY of a rebuilt folder could equal the broken one's") {
    // Within one second, default_validity(0) gave the same value again: vuid 1 of the
    // rebuilt folder then named another message under the same UIDVALIDITY.
    env e;
    e.box("A").append(at(1));
    folder_options o;
    o.self_name = "Virtual/V";
    std::vector<std::uint32_t> seen;
    for (int round = 0; round < 3; ++round) {
        auto f = e.open(env::make_def({"A"}, "all"), o);
        must_sync(f, sync_flags::reopen);
        auto const v = value(f.status().validity);
        CHECK(std::find(seen.begin(), seen.end(), v) == seen.end());
        seen.push_back(v);
        e.store().break_state();
    }
}

// ================================================================ flags and keywords

TEST_CASE("folder: backend flags and keywords reach the view by replace, without \\Recent") {
    env e;
    auto& a = e.box("A");
    a.append(at(1), with(system_flag::seen | system_flag::answered, {"$X", "$Y"}));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 A 1 ($X $Y \\Answered \\Seen)\n");
    a.modify_flags(uid{1}, modify_op::replace, system_flag::flagged);
    a.modify_keywords(uid{1}, modify_op::replace, kw({"$Z"}));
    auto r = must_sync(f);
    CHECK(r.flags_changed == set_of({1}));
    CHECK(dump(f) == "1 A 1 ($Z \\Flagged)\n");
    a.modify_flags(uid{1}, modify_op::replace, flag_set{});
    a.modify_keywords(uid{1}, modify_op::replace, keyword_set{});
    must_sync(f);
    CHECK(dump(f) == "1 A 1 ()\n");
}

TEST_CASE("folder: \\Recent from a backend never reaches the view") {
    env e;
    knobs k;
    k.recent_in_fetch = true;
    e.box("A").append(at(1), with(system_flag::seen));
    auto f = open_test(e, k, env::make_def({"A"}, "all"), e.options());
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 A 1 (\\Seen)\n");
    e.box("A").modify_flags(uid{1}, modify_op::add, system_flag::flagged);
    must_sync(f);
    CHECK(dump(f) == "1 A 1 (\\Flagged \\Seen)\n");
    auto raw = e.store().raw();
    REQUIRE(raw.has_value());
    CHECK_FALSE(raw->messages[0].flags.contains(system_flag::recent));
}

TEST_CASE("folder: view flag changes reach the backend as deltas") {
    env e;
    auto& a = e.box("A");
    a.append(at(1), with(system_flag::answered));
    a.append(at(2));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    a.modify_flags(uid{1}, modify_op::add, system_flag::draft); // another client, not synced yet

    f.store_flags(set_of({1}), modify_op::add, system_flag::seen | system_flag::recent);
    CHECK(a.find(uid{1})->flags == (system_flag::answered | system_flag::draft)); // queued
    auto r = must_sync(f);
    CHECK(a.find(uid{1})->flags == (system_flag::answered | system_flag::draft | system_flag::seen));
    CHECK(r.flags_changed == set_of({1}));
    CHECK(dump(f) == "1 A 1 (\\Answered \\Draft \\Seen)\n2 A 2 ()\n");

    f.store_flags(set_of({1, 2}), modify_op::remove, system_flag::answered);
    must_sync(f);
    CHECK(a.find(uid{1})->flags == (system_flag::draft | system_flag::seen));
    CHECK(a.find(uid{2})->flags.empty());

    f.store_flags(set_of({1, 2}), modify_op::replace, system_flag::flagged);
    must_sync(f);
    CHECK(a.find(uid{1})->flags == flag_set(system_flag::flagged));
    CHECK(a.find(uid{2})->flags == flag_set(system_flag::flagged));
    CHECK(dump(f) == "1 A 1 (\\Flagged)\n2 A 2 (\\Flagged)\n");
}

TEST_CASE("folder: view flag changes are grouped per backend and no-op writes are left out") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    a.append(at(1), with(system_flag::seen));
    a.append(at(2));
    b.append(at(3));
    auto f = e.open({"A", "B"}, "all"); // vuids 1 = A1, 2 = A2, 3 = B1
    must_sync(f, sync_flags::reopen);
    REQUIRE(dump(f) == "1 A 1 (\\Seen)\n2 A 2 ()\n3 B 1 ()\n");

    SUBCASE("one call per backend") {
        auto const m1 = a.find(uid{1})->mod;
        counters const a0(a), b0(b);
        f.store_flags(set_of({1, 2, 3}), modify_op::add, system_flag::seen);
        must_sync(f);
        CHECK(counters(a).update_flags == a0.update_flags + 1);
        CHECK(counters(b).update_flags == b0.update_flags + 1);
        CHECK(a.find(uid{1})->mod == m1); // A1 already had \Seen: untouched
    }
    SUBCASE("a write that changes nothing makes no call") {
        auto const hm = a.highest_modseq();
        counters const a0(a);
        f.store_flags(set_of({1}), modify_op::add, system_flag::seen);
        f.store_flags(set_of({2}), modify_op::remove, system_flag::seen);
        f.store_flags(set_of({1}), modify_op::replace, system_flag::seen);
        f.store_keywords(set_of({1, 2}), modify_op::remove, kw({"$X"}));
        f.store_flags(set_of({99}), modify_op::add, system_flag::seen); // no such vuid
        auto r = must_sync(f);
        CHECK(r.empty());
        CHECK(counters(a).update_flags == a0.update_flags);
        CHECK(counters(a).update_keywords == a0.update_keywords);
        CHECK(a.highest_modseq() == hm);
    }
}

TEST_CASE("folder: store_keywords adds, removes and replaces backend keywords") {
    env e;
    auto& a = e.box("A");
    a.append(at(1), with({}, {"$Old"}));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    f.store_keywords(set_of({1}), modify_op::add, kw({"$A", "$B"}));
    must_sync(f);
    CHECK(a.find(uid{1})->keywords == kw({"$A", "$B", "$Old"}));
    CHECK(dump(f) == "1 A 1 ($A $B $Old)\n");
    f.store_keywords(set_of({1}), modify_op::remove, kw({"$A", "$None"}));
    must_sync(f);
    CHECK(a.find(uid{1})->keywords == kw({"$B", "$Old"}));
    f.store_keywords(set_of({1}), modify_op::replace, kw({"$C"}));
    auto r = must_sync(f);
    CHECK(r.flags_changed == set_of({1}));
    CHECK(a.find(uid{1})->keywords == kw({"$C"}));
    CHECK(dump(f) == "1 A 1 ($C)\n");
}

TEST_CASE("folder: a view keyword change that makes a message stop matching leaves it pending") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    a.append(at(2), with({}, {"$X"}));
    auto f = e.open({"A"}, "keyword $X");
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 A 2 ($X)\n");
    f.store_keywords(set_of({1}), modify_op::remove, kw({"$X"}));
    must_sync(f);
    CHECK(f.pending_removes("A") == set_of({2}));
    auto r = must_sync(f, sync_flags::expunge);
    CHECK(r.expunged == set_of({1}));
}

TEST_CASE("folder: expunge() through the view expunges in the backend") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    a.append(at(1));
    a.append(at(2));
    b.append(at(3));
    auto f = e.open({"A", "B"}, "all");
    must_sync(f, sync_flags::reopen);
    f.expunge(set_of({2, 3}));
    CHECK(f.size() == 3); // queued
    auto r = must_sync(f);
    CHECK(r.expunged == set_of({2, 3}));
    CHECK(dump(f) == "1 A 1 ()\n");
    CHECK(a.find(uid{2}) == nullptr);
    CHECK(b.size() == 0);
}

TEST_CASE("folder: sync(expunge) expunges the \\Deleted messages in their backends") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    a.append(at(1), with(system_flag::deleted));
    a.append(at(2));
    b.append(at(3));
    auto f = e.open({"A", "B"}, "all");
    must_sync(f, sync_flags::reopen);
    f.store_flags(set_of({3}), modify_op::add, system_flag::deleted);
    must_sync(f); // a plain sync expunges nothing
    CHECK(f.size() == 3);
    CHECK(b.find(uid{1})->flags == flag_set(system_flag::deleted));
    auto r = must_sync(f, sync_flags::expunge);
    CHECK(r.expunged == set_of({1, 3}));
    CHECK(dump(f) == "2 A 2 ()\n");
    CHECK(a.size() == 1);
    CHECK(b.size() == 0);
}

TEST_CASE("folder: bug: sync(expunge) expunged a message undeleted by a queued store") {
    // The \Deleted set was taken from the view before the queued changes were applied:
    // STORE -FLAGS \Deleted then EXPUNGE lost the message.
    env e;
    auto& a = e.box("A");
    a.append(at(1), with(system_flag::deleted));
    a.append(at(2));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    f.store_flags(set_of({1}), modify_op::remove, system_flag::deleted);
    f.store_flags(set_of({2}), modify_op::add, system_flag::deleted);
    auto r = must_sync(f, sync_flags::expunge);
    CHECK(r.expunged == set_of({2}));
    CHECK(dump(f) == "1 A 1 ()\n");
    REQUIRE(a.find(uid{1}) != nullptr);
    CHECK(a.find(uid{1})->flags.empty());
    CHECK(a.find(uid{2}) == nullptr);
}

TEST_CASE("folder: bug: queued flag changes were compared with stale flags and left out") {
    env e;
    auto& a = e.box("A");
    a.append(at(1), with(system_flag::seen));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);

    SUBCASE("two queued changes of one message: the later one is not a no-op") {
        f.store_flags(set_of({1}), modify_op::remove, system_flag::seen);
        f.store_flags(set_of({1}), modify_op::add, system_flag::seen);
        must_sync(f);
        CHECK(a.find(uid{1})->flags == flag_set(system_flag::seen));
        CHECK(dump(f) == "1 A 1 (\\Seen)\n");
    }
    SUBCASE("keywords too") {
        f.store_keywords(set_of({1}), modify_op::add, kw({"$X"}));
        f.store_keywords(set_of({1}), modify_op::remove, kw({"$X"}));
        must_sync(f);
        CHECK(a.find(uid{1})->keywords.empty());
    }
    SUBCASE("the backend changed since the view was synced") {
        // Another client removed \Seen; the view still shows it. STORE +\Seen must win.
        a.modify_flags(uid{1}, modify_op::remove, system_flag::seen);
        f.store_flags(set_of({1}), modify_op::add, system_flag::seen);
        must_sync(f);
        CHECK(a.find(uid{1})->flags == flag_set(system_flag::seen));
        CHECK(dump(f) == "1 A 1 (\\Seen)\n");
    }
}

TEST_CASE("folder: bug: a view write after the backend was re-created went to another message") {
    // The write went to the stored real UID, which names another message once the
    // backend has a new identity; sync(expunge) then expunged that message.
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    a.append(at(2));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    f.store_flags(set_of({1, 2}), modify_op::add, system_flag::deleted);
    must_sync(f);
    REQUIRE(a.find(uid{1})->flags == flag_set(system_flag::deleted));

    SUBCASE("deleted and re-created") {
        REQUIRE(e.world.remove("A").has_value());
        auto& a2 = e.box("A");
        a2.append(at(3));
        a2.append(at(4), with(system_flag::seen));
        f.store_flags(set_of({1}), modify_op::replace, system_flag::flagged);
        f.expunge(set_of({2}));
        auto r = must_sync(f, sync_flags::expunge);
        CHECK(r.expunged == set_of({1, 2}));
        CHECK(r.added == set_of({3, 4}));
        REQUIRE(a2.size() == 2);
        CHECK(a2.find(uid{1})->flags.empty());
        CHECK(a2.find(uid{2})->flags == flag_set(system_flag::seen));
        CHECK(dump(f) == "3 A 1 ()\n4 A 2 (\\Seen)\n");
    }
    SUBCASE("UIDVALIDITY reset") {
        a.modify_flags(uid{1}, modify_op::remove, system_flag::deleted);
        a.reset_validity(e.world.fresh_validity()); // same UIDs 1 and 2, new identity
        auto r = must_sync(f, sync_flags::expunge);  // vuid 1 had \Deleted in the view
        CHECK(r.expunged == set_of({1, 2}));
        CHECK(r.added == set_of({3, 4}));
        CHECK(a.size() == 2);
    }
}

// ================================================================ backends at open

TEST_CASE("folder: a named backend that does not exist is skipped") {
    env e;
    e.box("A").append(at(1));
    auto f = e.open({"A", "Nope"}, "all");
    CHECK(f.backends() == std::vector<std::string>{"A"});
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 A 1 ()\n");
}

TEST_CASE("folder: a wildcard backend that gives a permission error is skipped") {
    env e;
    knobs k;
    k.permission = {"Secret"};
    e.box("A").append(at(1));
    e.box("Secret").append(at(2));
    auto f = open_test(e, k, env::make_def({"*"}, "all"), e.options());
    CHECK(f.backends() == std::vector<std::string>{"A"});
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 A 1 ()\n");
}

TEST_CASE("folder: another backend error fails the open and names the backend") {
    env e;
    knobs k;
    k.broken = {"Bad"};
    e.box("A");
    e.box("Bad");
    auto r = test_folder::open(env::make_def({"*"}, "all"), test_provider(e.world, k), e.store(), e.options());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::io));
    CHECK(contains(r.error_value().message, "Bad"));

    SUBCASE("also when it appears later, at sync(reopen)") {
        k.broken.clear();
        REQUIRE(e.world.remove("Bad").has_value());
        auto f = open_test(e, k, env::make_def({"*"}, "all"), e.options());
        must_sync(f, sync_flags::reopen);
        e.box("Bad");
        k.broken = {"Bad"};
        auto s = f.sync(sync_flags::reopen);
        REQUIRE_FALSE(s.has_value());
        CHECK(s.error_value().is(errc::io));
        CHECK(contains(s.error_value().message, "for backend mailbox Bad"));
    }
}

TEST_CASE("folder: a definition that names the folder itself is not_possible") {
    env e;
    e.box("A");
    e.box("Virtual/V");
    auto r = folder_t::open(env::make_def({"A", "Virtual/V"}, "all"), memory_provider(e.world), e.store(),
                            e.options());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::not_possible));
    CHECK(contains(r.error_value().message, "Virtual/V"));

    SUBCASE("a wildcard never matches the folder itself") {
        auto f = e.open({"*"}, "all");
        CHECK(f.backends() == std::vector<std::string>{"A"});
    }
}

// ================================================================ open backends

TEST_CASE("folder: at most max_open_backends are open, 64 by default") {
    CHECK(folder_options{}.max_open_backends == 64);
    env e;
    for (int i = 0; i < 70; ++i) e.box((i < 10 ? "M0" : "M") + std::to_string(i)).append(at(i));
    knobs k;
    auto o = e.options();
    o.max_open_backends = folder_options{}.max_open_backends;
    auto f = open_test(e, k, env::make_def({"M*"}, "all"), o);
    must_sync(f, sync_flags::reopen);
    CHECK(f.size() == 70);
    CHECK(k.max_open == 64);
    CHECK(open_count(f) == 64);
    CHECK(k.violations.load() == 0);
}

TEST_CASE("folder: over more backends than the limit, a sync opens only those whose status changed") {
    // memory_backend is a closed_status_backend: a closed one that did not change since
    // the last sync is not opened (before, a limit of 3 over 10 reopened all of them).
    env e;
    std::vector<std::string> names;
    for (int i = 0; i < 10; ++i) {
        names.push_back("B" + std::to_string(i));
        e.box(names.back()).append(at(i));
    }
    auto o = e.options();
    o.max_open_backends = 3;
    auto f = e.open(env::make_def({"B*"}, "all"), o);
    must_sync(f, sync_flags::reopen);
    REQUIRE(f.size() == 10);
    CHECK(open_count(f) <= 3);
    auto const opens = [&] {
        std::vector<std::uint64_t> v;
        for (auto const& n : names) v.push_back(calls(e.box(n), backend_op::open));
        return v;
    };
    auto const before = opens();
    must_sync(f);
    must_sync(f, sync_flags::reopen);
    CHECK(opens() == before); // nothing changed: nothing opened
    e.box("B2").append(at(20));
    e.box("B7").modify_flags(uid{1}, modify_op::add, system_flag::flagged);
    auto const r = must_sync(f);
    auto const after = opens();
    for (std::size_t i = 0; i < names.size(); ++i) {
        CAPTURE(names[i]);
        if (i == 2 || i == 7) CHECK(after[i] <= before[i] + 1);
        else CHECK(after[i] == before[i]);
    }
    CHECK(r.added.count() == 1);
    CHECK(r.flags_changed.count() == 1);
    CHECK(f.size() == 11);
    CHECK(open_count(f) <= 3);
    // A closed backend deleted meanwhile is seen by its closed status: removed at once.
    std::string closed;
    for (auto const& n : names)
        if (!f.backend_of(n)->is_open()) closed = n;
    REQUIRE(!closed.empty());
    REQUIRE(e.world.remove(closed).has_value());
    auto const r2 = must_sync(f);
    CHECK(r2.expunged.count() == 1);
    CHECK(f.size() == 10);
}

TEST_CASE("folder: with a limit of 2 over 5 backends, never more than 2 are open at once") {
    env e;
    for (auto const* n : {"A", "B", "C", "D", "E"}) e.box(n).append(at(1));
    knobs k;
    auto o = e.options();
    o.max_open_backends = 2;
    auto f = open_test(e, k, env::make_def({"A", "B", "C", "D", "E"}, "all"), o);
    auto const all_vuids = [&] {
        uid_set s;
        if (value(f.status().uid_next) > 1) s.add_range(1, value(f.status().uid_next) - 1);
        return s;
    };
    for (int round = 0; round < 6; ++round) {
        CAPTURE(round);
        f.store_flags(all_vuids(), modify_op::add, system_flag::seen); // writes to all five
        for (auto const* n : {"A", "C", "E"}) e.box(n).append(at(round));
        must_sync(f, round % 2 ? sync_flags::none : sync_flags::reopen);
        CHECK(k.max_open <= 2);
        CHECK(open_count(f) <= 2);
    }
    f.store_flags(all_vuids(), modify_op::add, system_flag::seen);
    must_sync(f);
    CHECK(f.size() == 5 + 18);
    CHECK(k.max_open <= 2);
    CHECK(k.violations.load() == 0);
    for (auto const* n : {"A", "B", "C", "D", "E"})
        for (auto const& m : e.box(n).messages()) CHECK(m.flags == flag_set(system_flag::seen));
}

TEST_CASE("folder: a backend with pending removes is never closed by the limit") {
    env e;
    for (auto const* n : {"A", "B", "C"}) {
        e.box(n).append(at(1));
        e.box(n).append(at(2));
    }
    auto o = e.options();
    o.max_open_backends = 1;
    auto f = e.open(env::make_def({"A", "B", "C"}, "unseen"), o);
    must_sync(f, sync_flags::reopen);
    e.box("A").modify_flags(uid{1}, modify_op::add, system_flag::seen);
    must_sync(f);
    REQUIRE(f.pending_removes("A") == set_of({1}));
    must_sync(f); // A may have been closed by the sync that made its pending removes
    CHECK(f.backend_of("A")->is_open());
    auto const opens = f.backend_of("A")->open_count();
    for (int round = 0; round < 4; ++round) {
        e.box("B").append(at(10 + round));
        e.box("C").append(at(10 + round));
        must_sync(f);
        CHECK(f.backend_of("A")->is_open());
    }
    CHECK(f.backend_of("A")->open_count() == opens);
    must_sync(f, sync_flags::expunge); // no pending any more: A may be closed again
    CHECK(f.pending_removes("A").empty());
    must_sync(f);
    CHECK(open_count(f) <= 1);
}

TEST_CASE("folder: bug: a parallel sync closed a backend whose planning was still running") {
    // The open-backend limit picked a backend of the running batch as the victim when the
    // others had pending removes, and closed it under the thread planning it.
    env e;
    for (auto const* n : {"A", "B", "C", "D"}) e.box(n).append(at(1));
    knobs k;
    auto o = e.options();
    o.max_open_backends = 2;
    o.parallel = true;
    auto f = open_test(e, k, env::make_def({"A", "B", "C", "D"}, "unseen"), o);
    must_sync(f, sync_flags::reopen);
    e.box("A").modify_flags(uid{1}, modify_op::add, system_flag::seen);
    e.box("B").modify_flags(uid{1}, modify_op::add, system_flag::seen);
    must_sync(f);
    REQUIRE(f.pending_removes("A") == set_of({1}));
    REQUIRE(f.pending_removes("B") == set_of({1}));
    e.box("C").append(at(2));
    e.box("D").append(at(2));
    k.slow = "C";
    must_sync(f);
    CHECK(k.violations.load() == 0);
    CHECK(f.size() == 6);
}

// ================================================================ backends come and go

TEST_CASE("folder: backends created or deleted while open are picked up at sync(reopen)") {
    env e;
    e.box("A").append(at(1));
    e.box("L/x").append(at(2));
    auto f = e.open({"A", "B", "L/*"}, "all");
    must_sync(f, sync_flags::reopen);
    REQUIRE(dump(f) == "1 A 1 ()\n2 L/x 1 ()\n");

    e.box("B").append(at(3));
    e.box("L/y").append(at(4));
    CHECK(must_sync(f).empty()); // a plain sync does not re-expand
    auto r = must_sync(f, sync_flags::reopen);
    CHECK(r.added == set_of({3, 4}));
    CHECK(f.backends() == std::vector<std::string>{"A", "L/x", "B", "L/y"});

    REQUIRE(e.world.remove("L/x").has_value());
    auto d = must_sync(f); // deletion: at once, even on a plain sync
    CHECK(d.expunged == set_of({2}));
    e.box("L/x").append(at(5)); // re-created: a new backend, seen at the next reopen
    CHECK(must_sync(f).empty());
    auto x = must_sync(f, sync_flags::reopen);
    CHECK(x.added == set_of({5}));
    CHECK(dump(f) == "1 A 1 ()\n3 B 1 ()\n4 L/y 1 ()\n5 L/x 1 ()\n");
}

TEST_CASE("folder: sync(refresh) and refresh_backends_on_sync pick up new backends at a plain sync") {
    env e;
    e.box("A").append(at(1));
    SUBCASE("sync(refresh)") {
        auto f = e.open({"*"}, "all");
        must_sync(f, sync_flags::reopen);
        e.box("B").append(at(2));
        CHECK(must_sync(f).empty());
        auto r = must_sync(f, sync_flags::refresh);
        CHECK(r.added == set_of({2}));
    }
    SUBCASE("refresh_backends_on_sync") {
        auto o = e.options();
        o.refresh_backends_on_sync = true;
        auto f = e.open(env::make_def({"*"}, "unseen"), o);
        must_sync(f, sync_flags::reopen);
        e.box("B").append(at(2));
        e.box("A").modify_flags(uid{1}, modify_op::add, system_flag::seen);
        auto r = must_sync(f);
        CHECK(r.added == set_of({2}));
        CHECK(f.pending_removes("A") == set_of({1})); // refresh does not apply pending removes
        REQUIRE(e.world.remove("B").has_value());
        e.box("B").append(at(3));
        auto x = must_sync(f); // deleted and re-created: gone and back in one sync
        CHECK(x.expunged == set_of({2}));
        CHECK(x.added == set_of({3}));
    }
}

TEST_CASE("folder: bug: a backend forgotten by a failed reopen stayed forgotten when found again") {
    env e;
    e.box("A").append(at(1));
    e.box("B").append(at(2));
    auto f = e.open({"A", "B"}, "all");
    must_sync(f, sync_flags::reopen);
    REQUIRE(e.world.remove("A").has_value());
    e.box("B").fail_next(backend_op::status, 1, error{errc::temporary, "lock timeout"});
    REQUIRE_FALSE(f.sync(sync_flags::reopen).has_value()); // A no longer listed: to be forgotten
    e.box("A").append(at(3));                                // A is back before any sync succeeded
    auto r = must_sync(f, sync_flags::reopen);
    CHECK(r.expunged == set_of({1}));
    CHECK(r.added == set_of({3}));
    CHECK(dump(f) == "2 B 1 ()\n3 A 1 ()\n");
}

TEST_CASE("folder: a definition change re-adds everything with new vuids, UIDVALIDITY unchanged") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    a.append(at(2), with(system_flag::seen));
    uid_validity v{};
    {
        auto f = e.open({"A"}, "all");
        must_sync(f, sync_flags::reopen);
        v = f.status().validity;
        REQUIRE(f.status().uid_next == uid{3});
    }
    {
        auto g = e.open({"A"}, "unseen");
        CHECK(g.status().validity == v);
        auto r = must_sync(g, sync_flags::reopen);
        CHECK(r.expunged == set_of({1, 2}));
        CHECK(r.added == set_of({3}));
        CHECK(dump(g) == "3 A 1 ()\n");
        CHECK(g.status().validity == v);
        auto raw = e.store().raw();
        REQUIRE(raw.has_value());
        CHECK(raw->messages.size() == 1);
        CHECK(raw->header.validity == v);
    }
    // and back: everything new again
    auto h = e.open({"A"}, "all");
    auto x = must_sync(h, sync_flags::reopen);
    CHECK(x.expunged == set_of({3}));
    CHECK(x.added == set_of({4, 5}));
    CHECK(h.status().validity == v);
}

// ================================================================ failures

TEST_CASE("folder: a failing backend fails the sync, names it, changes nothing, and the next sync converges") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    a.append(at(1));
    b.append(at(2));
    b.append(at(3));
    auto f = e.open({"A", "B"}, "unseen");
    must_sync(f, sync_flags::reopen);
    // Changes everywhere: A gets a new message, B a new one, a flag change, an expunge.
    a.append(at(4));
    b.append(at(5));
    b.modify_flags(uid{1}, modify_op::add, system_flag::flagged);
    b.expunge_one(uid{2});

    backend_op op = backend_op::status;
    SUBCASE("status") { op = backend_op::status; }
    SUBCASE("search") { op = backend_op::search; }
    SUBCASE("changes_since") { op = backend_op::changes_since; }
    SUBCASE("fetch") { op = backend_op::fetch; }
    CAPTURE(static_cast<int>(op));
    b.fail_next(op, 1, error{errc::temporary, "lock timeout"});

    auto const status0 = f.status();
    auto const view0 = dump(f);
    auto const raw0 = e.store().raw();
    auto r = f.sync();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::temporary));
    CHECK(r.error_value().message == "lock timeout (for backend mailbox B)");
    CHECK(f.status() == status0);
    CHECK(dump(f) == view0);
    CHECK(e.store().raw() == raw0);

    auto ok = must_sync(f);
    CHECK(ok.expunged == set_of({3}));
    CHECK(ok.added == set_of({4, 5}));
    CHECK(ok.flags_changed == set_of({2}));
    CHECK(dump(f) == "1 A 1 ()\n2 B 1 (\\Flagged)\n4 A 2 ()\n5 B 3 ()\n");
}

TEST_CASE("folder: a backend that fails to open fails the sync and names it") {
    env e;
    e.box("A").append(at(1));
    e.box("B").append(at(2));
    auto f = e.open({"A", "B"}, "all");
    e.box("B").fail_next(backend_op::open, 1, error{errc::temporary, "busy"});
    auto r = f.sync(sync_flags::reopen);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(errc::temporary));
    CHECK(r.error_value().message == "busy (for backend mailbox B)");
    CHECK(f.size() == 0);
    CHECK_FALSE(e.store().raw().has_value());
    must_sync(f, sync_flags::reopen);
    CHECK(f.size() == 2);
}

TEST_CASE("folder: a failing backend write fails the sync; the write is retried by the next one") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    a.fail_next(backend_op::update_flags, 1, error{errc::temporary, "lock timeout"});
    f.store_flags(set_of({1}), modify_op::add, system_flag::flagged);
    auto r = f.sync();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().message == "lock timeout (for backend mailbox A)");
    CHECK(dump(f) == "1 A 1 ()\n");
    must_sync(f);
    CHECK(a.find(uid{1})->flags == flag_set(system_flag::flagged));
    CHECK(dump(f) == "1 A 1 (\\Flagged)\n");
}

TEST_CASE("folder: a failed store commit leaves the in-memory view unchanged") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    a.append(at(2));
    auto f = e.open({"A"}, "unseen");
    must_sync(f, sync_flags::reopen);
    a.append(at(3));
    a.expunge_one(uid{1});
    a.modify_flags(uid{2}, modify_op::add, system_flag::flagged);
    auto const status0 = f.status();
    auto const view0 = dump(f);
    auto const raw0 = e.store().raw();
    REQUIRE(view0 == "1 A 1 ()\n2 A 2 ()\n");
    auto const expected = "2 A 2 (\\Flagged)\n3 A 3 ()\n";

    SUBCASE("fail_next_commit") {
        e.store().fail_next_commit(error{errc::io, "No space left on device"});
        auto r = f.sync();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(errc::io));
        CHECK(f.status() == status0);
        CHECK(dump(f) == view0);
        CHECK(e.store().raw() == raw0);
        auto ok = must_sync(f);
        CHECK(ok.expunged == set_of({1}));
        CHECK(ok.added == set_of({3}));
        CHECK(dump(f) == expected);
    }
    SUBCASE("a crash that does not land") {
        e.store().crash_next_commit(false);
        REQUIRE_FALSE(f.sync().has_value());
        CHECK(f.status() == status0);
        CHECK(dump(f) == view0);
        CHECK(e.store().raw() == raw0);
        SUBCASE("the same folder goes on") {
            must_sync(f);
            CHECK(dump(f) == expected);
        }
        SUBCASE("re-opened after the crash") {
            auto g = e.open({"A"}, "unseen");
            CHECK(dump(g) == view0);
            must_sync(g, sync_flags::reopen);
            CHECK(dump(g) == expected);
        }
    }
    SUBCASE("a crash that lands") {
        e.store().crash_next_commit(true);
        REQUIRE_FALSE(f.sync().has_value());
        CHECK(f.status() == status0);
        CHECK(dump(f) == view0);
        CHECK(e.store().raw() != raw0);
        auto g = e.open({"A"}, "unseen"); // the process restarts
        CHECK(dump(g) == expected);
        CHECK(must_sync(g, sync_flags::reopen).empty());
        CHECK(dump(g) == expected);
    }
}

// Known, not fixed: the engine cannot tell that a failed commit landed; it keeps its old
// state and its next deltas conflict with the stored one ("delta appends a vuid that is not
// above the others") until the folder is re-opened. Remove should_fail() once it converges.
TEST_CASE("folder: after a failed commit that landed, the same folder object converges") {
    // Fixed: the folder kept its pre-commit view and re-added A:2 as vuid 2, which the
    // store refused ("not above the others") at every later sync. Now a failed commit
    // makes the next sync reload what the store holds, and report what differs.
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    a.append(at(5));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    a.append(at(2));
    a.expunge_one(uid{2});
    e.store().crash_next_commit(true); // an I/O error reported after the data was durable
    REQUIRE_FALSE(f.sync().has_value());
    CHECK(dump(f) == "1 A 1 ()\n2 A 2 ()\n"); // the view did not change
    a.append(at(3));
    auto r = f.sync();
    REQUIRE(r.has_value());
    CHECK(dump(f) == "1 A 1 ()\n3 A 3 ()\n4 A 4 ()\n");
    CHECK(r->expunged == set_of({2}));
    CHECK(r->added == set_of({3, 4}));
    auto again = f.sync();
    REQUIRE(again.has_value());
    CHECK(again->empty());
    // And a reopened folder sees the same.
    auto g = e.open({"A"}, "all");
    must_sync(g);
    CHECK(dump(g) == dump(f));
}

TEST_CASE("folder: after a failed commit that did not land, the next sync converges") {
    env e;
    auto& a = e.box("A");
    a.append(at(1));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    a.append(at(2));
    a.modify_flags(uid{1}, modify_op::add, system_flag::flagged);
    e.store().crash_next_commit(false);
    REQUIRE_FALSE(f.sync().has_value());
    auto r = f.sync();
    REQUIRE(r.has_value());
    CHECK(dump(f) == "1 A 1 (\\Flagged)\n2 A 2 ()\n");
    CHECK(r->added == set_of({2}));
    CHECK(r->flags_changed == set_of({1}));
    CHECK(r->expunged.empty());
}

// ================================================================ the API around the view

TEST_CASE("folder: the sync report lists expunged, added and flag-changed vuids") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 4; ++i) a.append(at(i));
    auto f = e.open({"A"}, "unseen");
    auto first = must_sync(f, sync_flags::reopen);
    CHECK(first.added == set_of({1, 2, 3, 4}));
    CHECK(first.expunged.empty());
    CHECK(first.flags_changed.empty());
    CHECK(must_sync(f).empty());

    a.expunge_one(uid{1});
    a.modify_flags(uid{2}, modify_op::add, system_flag::flagged);
    a.modify_keywords(uid{3}, modify_op::add, kw({"$X"}));
    a.modify_flags(uid{4}, modify_op::add, system_flag::seen); // pending: flags changed only
    a.append(at(9));
    a.append(at(10), with(system_flag::seen));                 // does not match
    auto r = must_sync(f);
    CHECK(r.expunged == set_of({1}));
    CHECK(r.added == set_of({5}));
    CHECK(r.flags_changed == set_of({2, 3, 4}));
    CHECK_FALSE(r.empty());

    // A message changed and expunged in one sync is only expunged.
    a.modify_flags(uid{2}, modify_op::add, system_flag::answered);
    auto x = must_sync(f, sync_flags::expunge);
    CHECK(x.expunged == set_of({4}));
    CHECK(x.flags_changed == set_of({2}));
    a.modify_flags(uid{3}, modify_op::add, system_flag::answered);
    a.expunge_one(uid{3});
    auto y = must_sync(f);
    CHECK(y.expunged == set_of({3}));
    CHECK(y.flags_changed.empty());
}

TEST_CASE("folder: to_virtual and to_virtual_each translate backend UIDs") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    for (int i = 0; i < 5; ++i) a.append(at(10 + i), with(i % 2 ? flag_set(system_flag::seen) : flag_set{}));
    b.append(at(1));
    auto f = e.open({"A", "B"}, "unseen");
    must_sync(f, sync_flags::reopen);
    REQUIRE(dump(f) == "1 B 1 ()\n2 A 1 ()\n3 A 3 ()\n4 A 5 ()\n");
    CHECK(f.to_virtual("A", set_of({1, 2, 3, 4, 5, 6})) == set_of({2, 3, 4}));
    CHECK(f.to_virtual("A", set_of({2, 4})).empty());
    CHECK(f.to_virtual("B", set_of({1})) == set_of({1}));
    CHECK(f.to_virtual("Nope", set_of({1})).empty());
    CHECK(f.to_virtual_each("A", set_of({1, 2, 3, 4, 5})) == std::vector<std::uint32_t>{2, 0, 3, 0, 4});
    CHECK(f.to_virtual_each("Nope", set_of({1, 2})) == std::vector<std::uint32_t>{0, 0});
    a.expunge_one(uid{3});
    must_sync(f);
    CHECK(f.to_virtual_each("A", set_of({1, 3, 5})) == std::vector<std::uint32_t>{2, 0, 4});
}

TEST_CASE("folder: find and at(seqno) before and after expunges") {
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 6; ++i) a.append(at(i));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    auto const check_all = [&] {
        std::uint32_t n = 0;
        f.for_each([&](folder_message const& m) {
            ++n;
            auto byseq = f.at(seqno{n});
            REQUIRE(byseq.has_value());
            CHECK(byseq->vuid == m.vuid);
            auto byuid = f.find(m.vuid);
            REQUIRE(byuid.has_value());
            CHECK(byuid->backend_uid == m.backend_uid);
            CHECK(byuid->backend == "A");
        });
        CHECK(n == f.size());
        CHECK_FALSE(f.at(seqno{0}).has_value());
        CHECK_FALSE(f.at(seqno{n + 1}).has_value());
    };
    check_all();
    CHECK(f.at(seqno{3})->vuid == uid{3});
    a.expunge_one(uid{2});
    a.expunge_one(uid{5});
    must_sync(f);
    check_all();
    CHECK_FALSE(f.find(uid{2}).has_value());
    CHECK_FALSE(f.find(uid{5}).has_value());
    CHECK_FALSE(f.find(uid{99}).has_value());
    CHECK(f.at(seqno{2})->vuid == uid{3});
    CHECK(f.at(seqno{4})->vuid == uid{6});
    // Many expunges (past the compaction threshold) and adds.
    for (int i = 0; i < 300; ++i) a.append(at(100 + i));
    must_sync(f);
    for (std::uint32_t u = 7; u < 7 + 250; ++u) a.expunge_one(uid{u});
    must_sync(f);
    check_all();
    CHECK(f.size() == 4 + 50);
    CHECK(f.at(seqno{5})->vuid == uid{257});
}

TEST_CASE("folder: backends() lists the backends in id order, optionally only those with messages") {
    env e;
    e.box("A").append(at(1), with(system_flag::seen));
    e.box("B").append(at(2));
    e.box("C");
    auto f = e.open({"C", "A", "B"}, "unseen");
    CHECK(f.backends() == std::vector<std::string>{"C", "A", "B"});
    must_sync(f, sync_flags::reopen);
    CHECK(f.backends(true) == std::vector<std::string>{"B"});
    e.box("A").modify_flags(uid{1}, modify_op::remove, system_flag::seen);
    must_sync(f);
    CHECK(f.backends(true) == std::vector<std::string>{"A", "B"});
}

TEST_CASE("folder: registry_provider mixes backends of two kinds through any_backend") {
    memory_world w1{100}, w2{900};
    backend_registry reg;
    REQUIRE(add_memory_scheme(reg, w1).has_value());
    REQUIRE(reg.add({"arch", "archive mailboxes", "arch:"},
                    [&w2](std::string_view name) -> result<any_backend> {
                        return any_backend(memory_backend(w2, std::string(name)));
                    })
                .has_value());
    (*w1.create("INBOX"))->append(at(20));
    (*w1.create("Work"))->append(at(5), with(system_flag::seen));
    (*w2.create("Archive/2019"))->append(at(10));
    auto lister = [&] {
        auto names = w1.list();
        for (auto const& n : w2.list()) names.push_back(n);
        return names;
    };
    auto uri_of = [](std::string_view name) {
        return (name.rfind("Archive/", 0) == 0 ? std::string("arch:") : std::string("mem:")) + std::string(name);
    };
    memory_store_world stores;
    folder_options o;
    o.make_validity = [](uid_validity) { return uid_validity{42}; };
    auto r = folder<registry_provider, memory_store>::open(
        env::make_def({"INBOX", "Work", "Archive/*"}, "unseen"), registry_provider(reg, lister, uri_of),
        memory_store(stores, "V"), o);
    REQUIRE(r.has_value());
    auto f = std::move(r).value();
    must_sync(f, sync_flags::reopen);
    CHECK(dump(f) == "1 Archive/2019 1 ()\n2 INBOX 1 ()\n");
    REQUIRE(f.backend_of("Archive/2019") != nullptr);
    CHECK(f.backend_of("Archive/2019")->target<memory_backend>() != nullptr);
    w1.find("Work")->modify_flags(uid{1}, modify_op::remove, system_flag::seen);
    f.store_flags(set_of({1}), modify_op::add, system_flag::flagged);
    auto x = must_sync(f);
    CHECK(x.added == set_of({3}));
    CHECK(w2.find("Archive/2019")->find(uid{1})->flags == flag_set(system_flag::flagged));
    REQUIRE(w2.remove("Archive/2019").has_value());
    auto y = must_sync(f);
    CHECK(y.expunged == set_of({1}));
    CHECK(dump(f) == "2 INBOX 1 ()\n3 Work 1 ()\n");
}

// ================================================================ parallel

namespace {

// A seeded workload over 4 backends applied identically to two worlds.
struct twin {
    env e;
    folder_t f;
    explicit twin(bool parallel, std::size_t max_open)
        : f([&] {
              for (auto const* n : {"A", "B", "C", "D"}) e.box(n);
              auto o = e.options();
              o.parallel = parallel;
              o.max_open_backends = max_open;
              return e.open(env::make_def({"A", "B", "C", "D"}, "or unseen keyword $X"), o);
          }()) {}
};

void random_step(std::mt19937& rng, twin& t, std::uint32_t& r1) {
    auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
    char const* names[] = {"A", "B", "C", "D"};
    auto& box = t.e.box(names[pick(4)]);
    std::uint32_t const op = pick(10);
    r1 = pick(1000);
    if (op < 4 || box.size() == 0) {
        box.append(at(pick(5)), pick(3) == 0 ? with(system_flag::seen) : with({}));
    } else {
        auto const& m = box.messages()[r1 % box.size()];
        if (op < 6) box.modify_flags(m.id, modify_op::replace, pick(2) ? flag_set(system_flag::seen) : flag_set{});
        else if (op < 7) box.modify_keywords(m.id, pick(2) ? modify_op::add : modify_op::remove, kw({"$X"}));
        else if (op < 8) box.expunge_one(m.id);
        else if (op < 9) t.f.store_flags(set_of({r1 % (value(t.f.status().uid_next)) + 1}), modify_op::add, system_flag::seen);
        else t.f.expunge(set_of({r1 % (value(t.f.status().uid_next)) + 1}));
    }
}

} // namespace

TEST_CASE("folder: parallel sync gives the same results as sequential on the same workload") {
    for (std::size_t max_open : {std::size_t{64}, std::size_t{2}}) {
        for (unsigned seed = 1; seed <= 4; ++seed) {
            CAPTURE(max_open);
            CAPTURE(seed);
            twin seq(false, max_open), par(true, max_open);
            std::mt19937 r_seq(seed), r_par(seed);
            for (int step = 0; step < 150; ++step) {
                CAPTURE(step);
                std::uint32_t x1 = 0, x2 = 0;
                for (int k = 0; k < 3; ++k) {
                    random_step(r_seq, seq, x1);
                    random_step(r_par, par, x2);
                }
                sync_flags const fl = step % 7 == 0 ? sync_flags::reopen
                                      : step % 5 == 0 ? sync_flags::expunge
                                                      : sync_flags::none;
                auto a = must_sync(seq.f, fl);
                auto b = must_sync(par.f, fl);
                CHECK(a.added == b.added);
                CHECK(a.expunged == b.expunged);
                CHECK(a.flags_changed == b.flags_changed);
                REQUIRE(dump(seq.f) == dump(par.f));
                for (auto const* n : {"A", "B", "C", "D"}) CHECK(seq.f.pending_removes(n) == par.f.pending_removes(n));
            }
            CHECK(seq.e.store().raw() == par.e.store().raw());
        }
    }
}

TEST_CASE("folder: a sync that fails after a failed commit leaves the view and the backends usable") {
    // Bug found by the model test: reloading after a failed commit handed a backend object
    // to the reloaded view by moving it out of an optional that stayed engaged; when that
    // sync failed too, the view got back the moved-from object, which named no mailbox, and
    // the next sync dropped the backend's messages.
    env e;
    e.box("A").append(at(1));
    auto o = e.options();
    o.max_open_backends = 1;
    auto f = e.open(env::make_def({"*"}, "all"), o);
    must_sync(f, sync_flags::reopen);
    e.box("B").append(at(2));
    e.store().fail_next_commit(error{errc::io, "No space left on device"});
    REQUIRE_FALSE(f.sync(sync_flags::refresh).has_value());
    CHECK(dump(f) == "1 A 1 ()\n");
    e.box("B").fail_next(backend_op::search, 1, error{errc::temporary, "lock timeout"});
    auto failed = f.sync();
    REQUIRE_FALSE(failed.has_value());
    CHECK(contains(failed.error_value().message, "for backend mailbox B"));
    CHECK(dump(f) == "1 A 1 ()\n");
    REQUIRE(f.backend_of("B") != nullptr);
    CHECK(f.backend_of("B")->name() == "B");
    auto r = must_sync(f, sync_flags::reopen);
    CHECK(r.added == set_of({2}));
    CHECK(dump(f) == "1 A 1 ()\n2 B 1 ()\n");
}

TEST_CASE("folder: a backend whose state went back is compared in full, not through changes_since") {
    // An index restored from a copy: HIGHESTMODSEQ and UIDNEXT go down under the same
    // UIDVALIDITY. changes_since(the saved modseq) would answer "nothing changed".
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 6; ++i) a.append(at(i));
    auto f = e.open({"A"}, "unseen");
    must_sync(f, sync_flags::reopen);
    memory_mailbox const copy = a; // the backup
    a.modify_flags(uid{2}, modify_op::add, system_flag::seen);    // stops matching: pending
    a.modify_flags(uid{4}, modify_op::add, system_flag::flagged); // still matches
    a.expunge_one(uid{3});
    a.append(at(10));                                             // uid 7
    must_sync(f);
    REQUIRE(dump(f) == "1 A 1 ()\n2 A 2 (\\Seen)\n4 A 4 (\\Flagged)\n5 A 5 ()\n6 A 6 ()\n7 A 7 ()\n");
    REQUIRE(f.pending_removes("A") == set_of({2}));
    e.box("A") = copy;                                            // restored
    REQUIRE(value(e.box("A").highest_modseq()) < 10);
    counters const c0(e.box("A"));
    auto r = must_sync(f);
    counters const c1(e.box("A"));
    CHECK(c1.changes == c0.changes);    // not trusted
    CHECK(c1.search >= c0.search + 2);  // members' existence, then every match
    // 7 is gone; 3 is back (a new vuid: its old one was expunged); 2 matches again (no
    // longer pending) and, like 4, gets the backup's flags.
    CHECK(r.expunged == set_of({7}));
    CHECK(r.added == set_of({8}));
    CHECK(r.flags_changed == set_of({2, 4}));
    CHECK(dump(f) == "1 A 1 ()\n2 A 2 ()\n4 A 4 ()\n5 A 5 ()\n6 A 6 ()\n8 A 3 ()\n");
    CHECK(f.pending_removes("A").empty());
    // Then incremental again.
    e.box("A").modify_flags(uid{5}, modify_op::add, system_flag::seen);
    counters const c2(e.box("A"));
    auto r2 = must_sync(f);
    counters const c3(e.box("A"));
    CHECK(c3.changes == c2.changes + 1);
    CHECK(r2.flags_changed == set_of({5}));
    CHECK(f.pending_removes("A") == set_of({5}));
}

TEST_CASE("folder: a backend that went back is caught before view-side writes hide it") {
    // Restored from a copy, then the sync's own write brings HIGHESTMODSEQ back to the saved
    // value: the status the write phase reads already shows the regression (found by the
    // model test).
    env e;
    auto& a = e.box("A");
    for (int i = 0; i < 3; ++i) a.append(at(i));
    auto f = e.open({"A"}, "all");
    must_sync(f, sync_flags::reopen);
    memory_mailbox const copy = a;
    a.modify_flags(uid{1}, modify_op::add, system_flag::flagged);
    must_sync(f);
    REQUIRE(f.find(uid{1})->flags == flag_set(system_flag::flagged));
    e.box("A") = copy;
    f.store_flags(set_of({2}), modify_op::add, system_flag::seen);
    auto r = must_sync(f);
    REQUIRE(value(e.box("A").highest_modseq()) == value(copy.highest_modseq()) + 1); // the saved value again
    CHECK(r.flags_changed == set_of({1, 2}));
    CHECK(dump(f) == "1 A 1 ()\n2 A 2 (\\Seen)\n3 A 3 ()\n");
}

TEST_CASE("folder: an inconsistent answer makes the engine compare that box in full") {
    env e;
    auto& a = e.box("A");
    auto& b = e.box("B");
    for (int i = 0; i < 4; ++i) a.append(at(i));
    b.append(at(9));
    auto f = e.open({"A", "B"}, "unseen");
    must_sync(f, sync_flags::reopen);
    a.modify_flags(uid{1}, modify_op::add, system_flag::seen);

    SUBCASE("from changes_since: planned again in the same sync") {
        a.fail_next(backend_op::changes_since, 1, error{errc::inconsistent, "index replaced"});
        counters const c0(a), b0(b);
        b.modify_flags(uid{1}, modify_op::add, system_flag::answered);
        auto r = must_sync(f);
        counters const c1(a), b1(b);
        CHECK(c1.changes == c0.changes + 1); // the failed call only
        CHECK(c1.search >= c0.search + 2);
        CHECK(b1.changes == b0.changes + 1); // B stays incremental
        CHECK(b1.search == b0.search + 1);   // within the changed UID only
        CHECK(r.flags_changed == set_of({1, 5}));
        CHECK(f.pending_removes("A") == set_of({1}));
        CHECK(dump(f) == "1 A 1 (\\Seen)\n2 A 2 ()\n3 A 3 ()\n4 A 4 ()\n5 B 1 (\\Answered)\n");
    }
    SUBCASE("from status: the retry reads the new state, in full") {
        a.fail_next(backend_op::status, 1, error{errc::inconsistent, "index replaced"});
        counters const c0(a);
        auto r = must_sync(f);
        counters const c1(a);
        CHECK(c1.changes == c0.changes);
        CHECK(c1.search >= c0.search + 2);
        CHECK(r.flags_changed == set_of({1}));
        CHECK(f.pending_removes("A") == set_of({1}));
    }
    SUBCASE("from a search after changes_since: the sync fails once, the next one is full") {
        a.fail_next(backend_op::search, 1, error{errc::temporary, "busy"});
        REQUIRE_FALSE(f.sync().has_value()); // an ordinary failure: no resync
        a.fail_next(backend_op::fetch, 2, error{errc::inconsistent, "index replaced"});
        auto failed = f.sync();              // inconsistent twice: the full retry fails too
        REQUIRE_FALSE(failed.has_value());
        CHECK(failed.error_value().is(errc::inconsistent));
        counters const c0(a);
        auto r = must_sync(f);
        counters const c1(a);
        CHECK(c1.changes == c0.changes);     // still marked: full
        CHECK(r.flags_changed == set_of({1}));
        a.modify_flags(uid{2}, modify_op::add, system_flag::flagged);
        counters const c2(a);
        must_sync(f);
        counters const c3(a);
        CHECK(c3.changes == c2.changes + 1); // cleared by the committed full sync
    }
}

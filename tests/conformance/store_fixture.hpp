// The fixture interface of the view_store conformance suite (store_conformance_test.cpp),
// the fixtures of memory_store and mmap_store, and helpers to build view states and deltas (also used by
// tests/adapters/memory_store_test.cpp and tests/mail/view_state_test.cpp).
//
// The suite is written once, as TEST_CASE_TEMPLATEs over a fixture type F. A fixture owns
// the persistent side of one fresh folder (nothing committed yet) and a store object over
// it. An adapter adds itself by writing a fixture and adding it to VFOLDER_STORE_FIXTURES.
//
// A fixture F provides (checked by the concept `store_fixture` below):
//
//   F()                          a fresh folder: nothing committed
//   using store_type             the type under test; models vfolder::view_store
//   store_type& store()          the current store object
//   void reopen()                destroys the store object and makes a new one over the
//                                same persistent state (the folder closed and opened
//                                again; for an on-disk store, the process restarted)
//   bool plant(view_state s)     makes `s` the stored state without commit or validation
//                                (as a damaged file would be); false if unsupported
//   bool crash_next_commit(bool lands)
//                                the next commit "crashes": it returns an error and then
//                                either all of its delta is stored (lands) or none of it;
//                                false if unsupported
//   bool fail_next_commit(error e)
//                                the next commit fails with `e`; false if unsupported
//
// Subcases that need an unsupported hook are skipped.
#pragma once

#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/adapters/mmap/mmap_store.hpp>
#include <vfolder/concepts.hpp>
#include <vfolder/mail/view_state.hpp>

#include <doctest/doctest.h>

#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace vfolder_test {

/// The interface every store conformance fixture provides (see the file comment).
template <class F>
concept store_fixture =
    std::default_initializable<F> && vfolder::view_store<typename F::store_type> &&
    requires(F& f, vfolder::view_state s, bool lands, vfolder::error e) {
        { f.store() } -> std::same_as<typename F::store_type&>;
        f.reopen();
        { f.plant(s) } -> std::same_as<bool>;
        { f.crash_next_commit(lands) } -> std::same_as<bool>;
        { f.fail_next_commit(e) } -> std::same_as<bool>;
    };

/// memory_store over a memory_store_world of its own; reopen makes a new memory_store
/// object on the same world and folder name.
class memory_store_fixture {
public:
    using store_type = vfolder::memory_store;

    memory_store_fixture() { reopen(); }

    [[nodiscard]] store_type& store() { return *store_; }
    void reopen() {
        store_.reset(); // the old object is gone before the new one exists
        store_ = std::make_unique<store_type>(world_, folder_);
    }
    bool plant(vfolder::view_state s) {
        store_->set_raw(std::move(s));
        return true;
    }
    bool crash_next_commit(bool lands) {
        store_->crash_next_commit(lands);
        return true;
    }
    bool fail_next_commit(vfolder::error e) {
        store_->fail_next_commit(std::move(e));
        return true;
    }

    [[nodiscard]] vfolder::memory_store_world& world() noexcept { return world_; }
    [[nodiscard]] std::string const& folder() const noexcept { return folder_; }

private:
    vfolder::memory_store_world world_;
    std::string folder_ = "Virtual/All mail";
    std::unique_ptr<store_type> store_; // (std::optional here: a false -Wmaybe-uninitialized in g++ 12)
};

static_assert(store_fixture<memory_store_fixture>);

/// mmap_store in a fresh temp directory (mkdtemp, removed afterwards); reopen closes the
/// store (releasing its lock) and opens the directory again, as a restarted process would.
/// Small checkpoint threshold so that checkpoints happen within the suite's runs.
class mmap_store_fixture {
public:
    using store_type = vfolder::mmap_store;

    mmap_store_fixture() {
        std::string t = (std::filesystem::temp_directory_path() / "vfolder-conformance-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        tmp_ = t;
        dir_ = tmp_ + "/Virtual folder";
        opt_.checkpoint_min_bytes = 512;
        reopen();
    }
    mmap_store_fixture(mmap_store_fixture const&) = delete;
    mmap_store_fixture& operator=(mmap_store_fixture const&) = delete;
    ~mmap_store_fixture() {
        store_.reset();
        std::error_code ec;
        std::filesystem::remove_all(tmp_, ec);
    }

    [[nodiscard]] store_type& store() { return *store_; }
    void reopen() {
        store_.reset();
        auto r = vfolder::mmap_store::open(dir_, opt_);
        REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? std::string() : r.error_value().message));
        store_ = std::make_unique<store_type>(std::move(*r));
    }
    bool plant(vfolder::view_state s) {
        auto r = store_->plant(s);
        REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? std::string() : r.error_value().message));
        return true;
    }
    bool crash_next_commit(bool lands) {
        store_->crash_next_commit(lands);
        return true;
    }
    bool fail_next_commit(vfolder::error e) {
        store_->fail_next_commit(std::move(e));
        return true;
    }

private:
    std::string tmp_;
    std::string dir_;
    vfolder::mmap_store::options opt_;
    std::unique_ptr<store_type> store_;
};

static_assert(store_fixture<mmap_store_fixture>);

// ---------------------------------------------------------------- builders

inline vfolder::view_message vmsg(std::uint32_t vuid, vfolder::mailbox_id box, std::uint32_t real,
                                  vfolder::flag_set flags = {}, vfolder::keyword_set keywords = {}) {
    return {vfolder::uid{vuid}, box, vfolder::uid{real}, flags, std::move(keywords)};
}

inline vfolder::backend_sync_record vbox(vfolder::mailbox_id box, std::string name,
                                         std::uint32_t uid_next = 100, std::uint64_t highest = 50,
                                         vfolder::uid_set pending = {}) {
    vfolder::backend_sync_record r;
    r.box = box;
    r.name = std::move(name);
    r.validity = vfolder::uid_validity{1000 + box};
    r.guid = vfolder::mailbox_guid{static_cast<std::uint8_t>(box)};
    r.uid_next = vfolder::uid{uid_next};
    r.highest_modseq = vfolder::modseq{highest};
    r.pending_removes = std::move(pending);
    return r;
}

inline vfolder::view_header vheader(std::uint32_t validity, std::uint32_t next_uid,
                                    vfolder::mailbox_id highest_box, std::uint64_t definition = 1) {
    return {vfolder::uid_validity{validity}, vfolder::uid{next_uid}, highest_box, definition};
}

inline vfolder::keyword_set vkeywords(std::initializer_list<char const*> names) {
    vfolder::keyword_set k;
    for (auto const* n : names) k.insert(n);
    return k;
}

/// A valid state: two backends (ids 1 and 3 of highest 3), five messages.
inline vfolder::view_state sample_state() {
    using vfolder::system_flag;
    vfolder::view_state s;
    s.header = vheader(7, 20, 3, 42);
    s.backends = {vbox(1, "INBOX", 30, 11, vfolder::uid_set{{25, 26}}), vbox(3, "Work", 10, 4)};
    s.messages = {vmsg(2, 1, 10, system_flag::seen), vmsg(5, 3, 1),
                  vmsg(6, 1, 12, system_flag::flagged, vkeywords({"Work"})), vmsg(9, 3, 2),
                  vmsg(14, 1, 20, system_flag::seen | system_flag::answered)};
    return s;
}

/// The delta that builds sample_state() from anything (a rebuild).
inline vfolder::view_delta sample_rebuild() {
    vfolder::view_state const s = sample_state();
    vfolder::view_delta d;
    d.replace_all = true;
    d.header = s.header;
    d.appended = s.messages;
    d.backends = s.backends;
    return d;
}

} // namespace vfolder_test

// view_state in failure messages: header, backends and messages, one short line.
template <>
struct doctest::StringMaker<vfolder::view_state> {
    static doctest::String convert(vfolder::view_state const& s) {
        using vfolder::value;
        std::string out = "{validity " + std::to_string(value(s.header.validity)) + " next " +
                          std::to_string(value(s.header.next_uid)) + " hbox " +
                          std::to_string(s.header.highest_box) + " def " +
                          std::to_string(s.header.definition_id) + "; boxes";
        for (auto const& b : s.backends)
            out += " " + std::to_string(b.box) + ":" + b.name + "@" + std::to_string(value(b.uid_next)) +
                   "/" + std::to_string(value(b.highest_modseq)) + "+" +
                   std::to_string(b.pending_removes.count());
        out += "; msgs";
        for (auto const& m : s.messages) {
            out += " " + std::to_string(value(m.vuid)) + "=" + std::to_string(m.box) + "/" +
                   std::to_string(value(m.real_uid)) + "f" + std::to_string(m.flags.bits());
            for (auto const& k : m.keywords) out += "," + k;
        }
        out += "}";
        return out.c_str();
    }
};

TYPE_TO_STRING_AS("memory_store", vfolder_test::memory_store_fixture);
TYPE_TO_STRING_AS("mmap_store", vfolder_test::mmap_store_fixture);

/// The fixtures every store conformance test case runs over. An adapter adds its own here.
#define VFOLDER_STORE_FIXTURES vfolder_test::memory_store_fixture, vfolder_test::mmap_store_fixture

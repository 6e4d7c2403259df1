// The fixture interface of the backend conformance suite (backend_conformance_test.cpp),
// and the fixtures of the memory adapter.
//
// The suite is written once, as TEST_CASE_TEMPLATEs over a fixture type F. A fixture
// owns one fresh, empty mailbox and the backend object under test; it also offers the
// host-side operations the suite needs that are not part of vfolder::backend (another
// client delivering mail or changing flags, the mailbox being deleted). An adapter adds
// itself to the suite by writing a fixture and adding it to VFOLDER_BACKEND_FIXTURES.
//
// A fixture F provides (checked by the concept `backend_fixture` below):
//
//   F()                         a fresh mailbox with no messages, and a backend over it
//                               (already open, if the backend is openable)
//   using backend_type          the type under test; models vfolder::backend
//   backend_type& backend()     the object under test (always the same object)
//   std::string mailbox_name()  the name the backend reports, and that its errors name
//   uid append(received, flags, keywords, size)
//                               delivers a message the way another client would; returns
//                               its UID. `\Recent` in `flags` is not stored.
//   void host_set_flags(u, f)   replaces the system flags of existing message u
//   void host_set_keywords(u, k) replaces the keywords of existing message u
//   void host_expunge(u)        expunges existing message u
//   void delete_mailbox()       deletes the mailbox; the backend object stays alive
//   void recreate_mailbox()     deletes the mailbox and creates an empty one of the same
//                               name (a new mailbox: rule B1 applies across the two)
//   bool fail_next(op, e)       makes the next backend call of `op` fail with `e` and
//                               return true, or returns false (and does nothing) when the
//                               adapter has no fault injection: the failure subcases are
//                               then skipped
//
// Host-side writes raise the mailbox's modseq the way the backend's own writes do (the
// suite checks rule B5 through them too).
#pragma once

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/any_backend.hpp>
#include <vfolder/concepts.hpp>

#include <doctest/doctest.h>

#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace vfolder_test {

/// The interface every backend conformance fixture provides (see the file comment).
template <class F>
concept backend_fixture =
    std::default_initializable<F> && vfolder::backend<typename F::backend_type> &&
    requires(F& f, vfolder::uid u, vfolder::mail_time t, vfolder::flag_set fl,
             vfolder::keyword_set k, std::uint64_t size, vfolder::backend_op op, vfolder::error e) {
        { f.backend() } -> std::same_as<typename F::backend_type&>;
        { f.mailbox_name() } -> std::convertible_to<std::string>;
        { f.append(t, fl, k, size) } -> std::same_as<vfolder::uid>;
        f.host_set_flags(u, fl);
        f.host_set_keywords(u, k);
        f.host_expunge(u);
        f.delete_mailbox();
        f.recreate_mailbox();
        { f.fail_next(op, e) } -> std::same_as<bool>;
    };

/// The memory adapter's host side, shared by the two memory fixtures: a memory_world with
/// one mailbox, "Archive/2020", whose name has a hierarchy level (error messages must
/// name it whole).
class memory_host {
public:
    memory_host() { REQUIRE(world_.create(name_).has_value()); }

    [[nodiscard]] std::string mailbox_name() const { return name_; }

    vfolder::uid append(vfolder::mail_time received, vfolder::flag_set flags,
                        vfolder::keyword_set keywords, std::uint64_t size) {
        return box().append(received, {flags, std::move(keywords)}, {}, size);
    }
    void host_set_flags(vfolder::uid u, vfolder::flag_set f) {
        REQUIRE(box().modify_flags(u, vfolder::modify_op::replace, f));
    }
    void host_set_keywords(vfolder::uid u, vfolder::keyword_set const& k) {
        REQUIRE(box().modify_keywords(u, vfolder::modify_op::replace, k));
    }
    void host_expunge(vfolder::uid u) { REQUIRE(box().expunge_one(u)); }
    void delete_mailbox() { REQUIRE(world_.remove(name_).has_value()); }
    void recreate_mailbox() {
        delete_mailbox();
        REQUIRE(world_.create(name_).has_value());
    }
    bool fail_next(vfolder::backend_op op, vfolder::error e) {
        box().fail_next(op, 1, std::move(e));
        return true;
    }

    [[nodiscard]] vfolder::memory_world& world() noexcept { return world_; }
    [[nodiscard]] vfolder::memory_mailbox& box() {
        auto* b = world_.find(name_);
        REQUIRE(b != nullptr);
        return *b;
    }

private:
    std::string name_ = "Archive/2020";
    // A first validity well away from 1, so that a UID and a validity are never equal by
    // accident in a test.
    vfolder::memory_world world_{1000};
};

/// memory_backend over a mailbox of a memory_world.
class memory_fixture : public memory_host {
public:
    using backend_type = vfolder::memory_backend;
    memory_fixture() { REQUIRE(be_.open().has_value()); }
    [[nodiscard]] backend_type& backend() noexcept { return be_; }

private:
    backend_type be_{world(), mailbox_name()};
};

/// The same memory_backend behind any_backend (the type erasure must forward every call
/// and every error unchanged).
class any_memory_fixture : public memory_host {
public:
    using backend_type = vfolder::any_backend;
    any_memory_fixture() { REQUIRE(be_.open().has_value()); }
    [[nodiscard]] backend_type& backend() noexcept { return be_; }

private:
    backend_type be_{vfolder::memory_backend(world(), mailbox_name())};
};

static_assert(backend_fixture<memory_fixture>);
static_assert(backend_fixture<any_memory_fixture>);

/// mmap_mailbox over a mailbox directory in a fresh temporary directory; the host side is
/// a second handle on the same directory (another process's writes, seen through the
/// index refresh). Fault injection through the test-only I/O hooks
/// (`mmap_detail::io_hooks()`): `fail_next` fails, for real, the first I/O of the next
/// call on the mailbox's index (see `fail_next`).
/// `Mode`: 0 the default reader (mapped base, full validation), 1 no-mmap (pread into a
/// private buffer), 2 lazy validation (MAILBOX-FORMAT §7).
template <int Mode>
class mmap_fixture_t {
public:
    using backend_type = vfolder::mmap_mailbox;
    static vfolder::mmap_options options(std::string name) {
        vfolder::mmap_options o;
        o.name = std::move(name);
        o.lock_timeout = std::chrono::milliseconds(10000);
        o.allow_remote_fs = false;
        o.use_mmap = Mode != 1;
        if (Mode == 2) o.validate = vfolder::mmap_options::validation::lazy;
        return o;
    }
    mmap_fixture_t() {
        std::string t = (std::filesystem::temp_directory_path() / "vfolder-conf-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        root_ = t;
        dir_ = root_ + "/box";
        REQUIRE(vfolder::mmap_mailbox::create(dir_, next_validity()).has_value());
        be_ = vfolder::mmap_mailbox(dir_, options(name_));
        host_ = vfolder::mmap_mailbox(dir_, options(name_ + " (host)"));
        REQUIRE(be_.open().has_value());
    }
    ~mmap_fixture_t() {
        vfolder::mmap_detail::io_hooks() = {};
        std::filesystem::remove_all(root_);
    }
    mmap_fixture_t(mmap_fixture_t const&) = delete;
    mmap_fixture_t& operator=(mmap_fixture_t const&) = delete;

    [[nodiscard]] backend_type& backend() noexcept { return be_; }
    [[nodiscard]] std::string mailbox_name() const { return name_; }

    vfolder::uid append(vfolder::mail_time received, vfolder::flag_set flags, vfolder::keyword_set keywords,
                        std::uint64_t size) {
        auto u = host_.append(std::string(static_cast<std::size_t>(size), 'x'), received, flags, keywords);
        REQUIRE_MESSAGE(u.has_value(), (u.has_value() ? std::string() : u.error_value().message));
        return *u;
    }
    void host_set_flags(vfolder::uid u, vfolder::flag_set f) {
        REQUIRE(host_.update_flags(one(u), vfolder::modify_op::replace, f).has_value());
    }
    void host_set_keywords(vfolder::uid u, vfolder::keyword_set const& k) {
        REQUIRE(host_.update_keywords(one(u), vfolder::modify_op::replace, k).has_value());
    }
    void host_expunge(vfolder::uid u) { REQUIRE(host_.expunge(one(u)).has_value()); }
    void delete_mailbox() {
        host_.close();
        REQUIRE(vfolder::mmap_mailbox::remove(dir_).has_value());
    }
    void recreate_mailbox() {
        delete_mailbox();
        REQUIRE(vfolder::mmap_mailbox::create(dir_, next_validity()).has_value());
    }
    // The next call of `op` fails at its first I/O on `index`, with the errno of `e`'s
    // code and `e.message` in the error: read operations (and open) at the pread of the
    // header slots (their refresh, or the load), write operations at the pwrite of their
    // entries (W1; nothing is published). One-shot: the hook disarms itself when it
    // fires. false (nothing armed) for a code no errno maps to.
    bool fail_next(vfolder::backend_op op, vfolder::error e) {
        using namespace vfolder::mmap_detail;
        int err = 0;
        if (e.is(vfolder::errc::temporary)) err = EAGAIN;
        else if (e.is(vfolder::errc::io)) err = EIO;
        else if (e.is(vfolder::errc::permission)) err = EACCES;
        else if (e.is(vfolder::errc::not_found)) err = ENOENT;
        else if (e.is(vfolder::errc::invalid_argument)) err = EINVAL;
        else if (e.is(vfolder::errc::already_exists)) err = EEXIST;
        else return false;
        bool const is_write = op == vfolder::backend_op::update_flags || op == vfolder::backend_op::update_keywords ||
                              op == vfolder::backend_op::expunge;
        auto armed = std::make_shared<bool>(true);
        auto hook = [armed, err, path = dir_ + "/index"](std::string_view p, std::uint64_t, std::size_t) {
            if (!*armed || p != path) return write_decision{};
            *armed = false;
            return write_decision{err, SIZE_MAX};
        };
        io_hooks() = {};
        io_hooks().note = e.message;
        if (is_write)
            io_hooks().write = hook;
        else
            io_hooks().read = hook;
        return true;
    }

private:
    static vfolder::uid_set one(vfolder::uid u) {
        vfolder::uid_set s;
        s.add(vfolder::value(u));
        return s;
    }
    static vfolder::uid_validity next_validity() {
        static std::uint32_t v = 5000;
        return vfolder::uid_validity{++v};
    }
    std::string name_ = "Archive/2020";
    std::string root_;
    std::string dir_;
    backend_type be_{""};
    backend_type host_{""};
};

using mmap_fixture = mmap_fixture_t<0>;
using mmap_nommap_fixture = mmap_fixture_t<1>;
using mmap_lazy_fixture = mmap_fixture_t<2>;
static_assert(backend_fixture<mmap_fixture>);
static_assert(backend_fixture<mmap_nommap_fixture>);
static_assert(backend_fixture<mmap_lazy_fixture>);

} // namespace vfolder_test

// uid_set in failure messages: "{1:3,7}".
template <>
struct doctest::StringMaker<vfolder::uid_set> {
    static doctest::String convert(vfolder::uid_set const& s) {
        std::string out = "{";
        bool first = true;
        for (auto const& r : s) {
            if (!first) out += ',';
            first = false;
            out += std::to_string(r.first);
            if (r.last != r.first) out += ':' + std::to_string(r.last);
        }
        out += '}';
        return out.c_str();
    }
};

TYPE_TO_STRING_AS("memory_backend", vfolder_test::memory_fixture);
TYPE_TO_STRING_AS("any_backend(memory_backend)", vfolder_test::any_memory_fixture);
TYPE_TO_STRING_AS("mmap_mailbox", vfolder_test::mmap_fixture);
TYPE_TO_STRING_AS("mmap_mailbox (no-mmap)", vfolder_test::mmap_nommap_fixture);
TYPE_TO_STRING_AS("mmap_mailbox (lazy)", vfolder_test::mmap_lazy_fixture);

/// The fixtures every backend conformance test case runs over. An adapter adds its own
/// here (and includes its fixture header in backend_conformance_test.cpp).
#define VFOLDER_BACKEND_FIXTURES \
    vfolder_test::memory_fixture, vfolder_test::any_memory_fixture, vfolder_test::mmap_fixture, \
        vfolder_test::mmap_nommap_fixture, vfolder_test::mmap_lazy_fixture

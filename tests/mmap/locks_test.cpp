// Lock behaviour of the mmap mailbox (MAILBOX-FORMAT.md §11.5 "Locks"): a reader process
// stopped (SIGSTOP) while it holds the publish lock makes a writer time out with a
// diagnostic and publish nothing; other readers keep reading the last committed state;
// once the holder is killed the lock comes free and the next commit goes through. The
// same for a writer stopped while it holds the writer lock.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>

#include <doctest/doctest.h>
#include "support/mmap_files.hpp"
#include "support/temp_dir.hpp"

#include <chrono>
#include <cstdint>
#include <string>

#include <csignal>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace vfolder;

namespace {

using vfolder_test::temp_dir;

mmap_options own(std::string name, std::chrono::milliseconds timeout) {
    mmap_options o = vfolder_test::own_options(std::move(name));
    o.lock_timeout = timeout;
    return o;
}

uid_set one(std::uint32_t u) {
    uid_set s;
    s.add(u);
    return s;
}

// A child that takes `lock` (`op`: LOCK_SH or LOCK_EX) on DIR/file, then stops itself.
// Returns its pid once it is stopped (the lock held), or -1.
pid_t stopped_holder(std::string const& path, int op) {
    pid_t const pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int const fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0 || ::flock(fd, op) != 0) ::_exit(2);
        ::raise(SIGSTOP);
        ::_exit(0);
    }
    int status = 0;
    while (::waitpid(pid, &status, WUNTRACED) < 0 && errno == EINTR) {}
    if (!WIFSTOPPED(status)) return -1;
    return pid;
}

void kill_and_reap(pid_t pid) {
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
}

} // namespace

TEST_CASE("mmap_mailbox locks: a stopped reader holding the publish lock makes a commit time out, publishing nothing") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{5}).has_value());
    mmap_mailbox w(dir, own("W", std::chrono::milliseconds{100}));
    REQUIRE(w.append("Subject: a\r\n\r\nx", mail_time{100}).has_value());
    mmap_mailbox r(dir, own("R", std::chrono::milliseconds{2000}));
    auto const before = r.status();
    REQUIRE(before.has_value());
    std::uint64_t const gen = w.generation();

    pid_t const holder = stopped_holder(dir + "/publish.lock", LOCK_SH);
    REQUIRE(holder > 0);
    auto const t0 = std::chrono::steady_clock::now();
    auto e = w.update_flags(one(1), modify_op::add, system_flag::flagged);
    auto const waited = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error_value().is(errc::temporary));
    CHECK(e.error_value().message.find("publish lock") != std::string::npos);
    CHECK(waited >= std::chrono::milliseconds{100}); // it waited for its deadline, no longer
    // Nothing was published: another reader (shared locks do not conflict) and a fresh
    // handle see the old state, and the writer's handle does too.
    auto during = r.status();
    REQUIRE(during.has_value());
    CHECK(during->highest_modseq == before->highest_modseq);
    mmap_mailbox fresh(dir, own("F", std::chrono::milliseconds{2000}));
    auto f = fresh.fetch(one(1), fetch_fields::flags);
    REQUIRE(f.has_value());
    REQUIRE(f->size() == 1);
    CHECK_FALSE((*f)[0].flags.contains(system_flag::flagged));
    CHECK(w.generation() == gen);

    kill_and_reap(holder); // the lock dies with its holder
    REQUIRE(w.update_flags(one(1), modify_op::add, system_flag::flagged).has_value());
    auto after = r.fetch(one(1), fetch_fields::flags);
    REQUIRE(after.has_value());
    REQUIRE(after->size() == 1);
    CHECK((*after)[0].flags.contains(system_flag::flagged));
    CHECK(w.generation() == gen + 1);
    // The bytes the timed-out commit wrote past the committed end were overwritten: the
    // file validates in full.
    mmap_mailbox check(dir, own("C", std::chrono::milliseconds{2000}));
    CHECK(check.open().has_value());
}

TEST_CASE("mmap_mailbox locks: a stopped writer holding the writer lock makes other writers time out, readers go on") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{5}).has_value());
    {
        mmap_mailbox w0(dir, own("W0", std::chrono::milliseconds{1000}));
        REQUIRE(w0.append("Subject: a\r\n\r\nx", mail_time{100}).has_value());
    }
    pid_t const holder = stopped_holder(dir + "/writer.lock", LOCK_EX);
    REQUIRE(holder > 0);
    mmap_mailbox w(dir, own("W", std::chrono::milliseconds{100}));
    auto e = w.append("Subject: b\r\n\r\ny", mail_time{200});
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error_value().is(errc::temporary));
    CHECK(e.error_value().message.find("writer.lock") != std::string::npos);
    auto c = w.compact();
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error_value().is(errc::temporary));
    mmap_mailbox r(dir, own("R", std::chrono::milliseconds{100}));
    auto st = r.status();
    REQUIRE(st.has_value()); // readers never need the writer lock
    CHECK(st->exists == 1);
    kill_and_reap(holder);
    auto ok = w.append("Subject: b\r\n\r\ny", mail_time{200});
    REQUIRE(ok.has_value());
    CHECK(value(*ok) == 2); // the UID the failed append did not consume
    auto st2 = r.status();
    REQUIRE(st2.has_value());
    CHECK(st2->exists == 2);
}

// mmap_mailbox (adapters/mmap/mmap_mailbox.hpp): one writer process and several reader
// processes at once (MAILBOX-FORMAT.md §5, §7, §11.5 "concurrency stress").
//
// The writer's operations are generated up front from a fixed seed and applied to a
// plain model (std::map), which yields the exact state after every commit, keyed by its
// HIGHESTMODSEQ (unique: every commit raises it; compaction does not change the state).
// The writer child then runs the same operations, with compactions in between, while the
// reader children loop. Every answer a reader gets must be *exactly* one committed state:
// the one whose HIGHESTMODSEQ the answer carries. A torn state, a state that was never
// committed, a step backwards, or an error (other than the documented transient one:
// `read_message` of a message expunged since the reader's snapshot is `not_found`) makes
// the child exit non-zero, which fails the test.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>

#include <doctest/doctest.h>
#include "support/temp_dir.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace vfolder;

namespace {

using vfolder_test::temp_dir;

// ------------------------------------------------------------------ the model
struct model_msg {
    std::uint8_t flags = 0;
    keyword_set kws;
    std::uint64_t size = 0;
    std::int64_t date = 0;
    std::uint64_t modseq = 0;
};

struct model_state {
    std::uint64_t hms = 1; // a new mmap mailbox starts at HIGHESTMODSEQ 1
    std::uint32_t uidnext = 1;
    std::map<std::uint32_t, model_msg> live;
    std::map<std::uint32_t, std::uint64_t> tombs; // uid -> modseq of its expunge
};

// The octets of message `u`: its size varies with the UID, its content names it.
std::string body_of(std::uint32_t u) {
    return "Subject: message " + std::to_string(u) + "\r\n\r\n" + std::string(u * 7 % 41, 'x') + "\r\n";
}

enum class op_kind { append, flags, keywords, expunge, compact };

struct op {
    op_kind kind = op_kind::append;
    uid_set uids;
    modify_op mop = modify_op::add;
    std::uint8_t flags = 0;
    keyword_set kws;
};

// A value in [0, n) from `rng` (mt19937's result_type is wider than 32 bits on LP64).
std::uint32_t pick(std::mt19937& rng, std::uint64_t n) { return static_cast<std::uint32_t>(rng() % n); }

keyword_set kw_subset(std::mt19937& rng) {
    static char const* const pool[] = {"Work", "$Label1", "Later", "$Junk"};
    keyword_set k;
    for (auto const* n : pool)
        if (pick(rng, 3) == 0) k.insert(n);
    return k;
}

// Applies `o` to `s` the way mmap_mailbox commits it: one commit per call, every changed
// message gets the next modseq in ascending UID order. Returns whether anything changed.
bool apply_op(model_state& s, op const& o) {
    std::uint64_t const before = s.hms;
    auto targets = [&] {
        std::vector<std::uint32_t> v;
        for (auto const& r : o.uids)
            for (auto it = s.live.lower_bound(r.first); it != s.live.end() && it->first <= r.last; ++it)
                v.push_back(it->first);
        return v;
    };
    switch (o.kind) {
    case op_kind::append: {
        model_msg m;
        std::uint32_t const u = s.uidnext++;
        m.flags = flag_set::from_bits(o.flags).storable().bits();
        m.kws = o.kws;
        m.size = body_of(u).size();
        m.date = std::int64_t{u} * 1000;
        m.modseq = ++s.hms;
        s.live.emplace(u, std::move(m));
        break;
    }
    case op_kind::flags:
        for (auto u : targets()) {
            auto& m = s.live[u];
            auto const nf = apply(flag_set::from_bits(m.flags), o.mop, flag_set::from_bits(o.flags)).storable();
            if (nf.bits() == m.flags) continue;
            m.flags = nf.bits();
            m.modseq = ++s.hms;
        }
        break;
    case op_kind::keywords:
        for (auto u : targets()) {
            auto& m = s.live[u];
            keyword_set nk = apply(m.kws, o.mop, o.kws);
            if (nk == m.kws) continue;
            m.kws = std::move(nk);
            m.modseq = ++s.hms;
        }
        break;
    case op_kind::expunge:
        for (auto u : targets()) {
            s.live.erase(u);
            s.tombs[u] = ++s.hms;
        }
        break;
    case op_kind::compact:
        break;
    }
    return s.hms != before;
}

// The writer's script and every committed state (states[0] is the empty mailbox).
struct script {
    std::vector<op> ops;
    std::vector<model_state> states;
    std::map<std::uint64_t, std::size_t> by_hms; // HIGHESTMODSEQ -> index in states
};

script make_script(std::uint32_t seed, int n_ops, int compact_every) {
    script sc;
    std::mt19937 rng(seed);
    model_state s;
    sc.states.push_back(s);
    sc.by_hms[s.hms] = 0;
    auto random_set = [&] {
        uid_set v;
        std::uint32_t const hi = s.uidnext + 1;
        for (std::uint32_t i = 0, n = 1 + pick(rng, 3); i < n; ++i) {
            std::uint32_t const a = 1 + pick(rng, hi);
            v.add_range(a, a + pick(rng, 4));
        }
        return v;
    };
    for (int i = 0; i < n_ops; ++i) {
        op o;
        std::uint32_t const r = pick(rng, 100);
        if (compact_every > 0 && i % compact_every == compact_every - 1) {
            o.kind = op_kind::compact;
        } else if (r < 40 || s.live.size() < 4) {
            o.kind = op_kind::append;
            o.flags = static_cast<std::uint8_t>(pick(rng, 32));
            o.kws = kw_subset(rng);
        } else if (r < 65) {
            o.kind = op_kind::flags;
            o.uids = random_set();
            o.mop = static_cast<modify_op>(pick(rng, 3));
            o.flags = static_cast<std::uint8_t>(pick(rng, 32));
        } else if (r < 80) {
            o.kind = op_kind::keywords;
            o.uids = random_set();
            o.mop = static_cast<modify_op>(pick(rng, 3));
            o.kws = kw_subset(rng);
        } else {
            o.kind = op_kind::expunge;
            std::uint32_t const a = 1 + pick(rng, s.uidnext);
            o.uids = uid_set{{a, a + pick(rng, 3)}};
        }
        if (apply_op(s, o)) {
            sc.by_hms[s.hms] = sc.states.size();
            sc.states.push_back(s);
        }
        sc.ops.push_back(std::move(o));
    }
    return sc;
}

// ------------------------------------------------------------------ children
[[noreturn]] void die(char const* who, int code, std::string const& why) {
    std::fprintf(stderr, "%s: %s\n", who, why.c_str());
    std::fflush(stderr);
    ::_exit(code);
}

uid_set live_set(model_state const& s) {
    uid_set v;
    for (auto const& [u, m] : s.live) v.add(u);
    return v;
}

std::vector<message_record> records_of(model_state const& s) {
    std::vector<message_record> out;
    for (auto const& [u, m] : s.live) {
        message_record r;
        r.id = uid{u};
        r.received = mail_time{m.date};
        r.flags = flag_set::from_bits(m.flags);
        r.keywords = m.kws;
        r.size = m.size;
        out.push_back(std::move(r));
    }
    return out;
}

std::string str(uid_set const& v) {
    std::string s;
    for (auto const& r : v) s += std::to_string(r.first) + ":" + std::to_string(r.last) + ",";
    return s;
}

// The writer: runs the script, checking after every operation that its own handle shows
// the model's state (HIGHESTMODSEQ), then closes the "running" pipe by exiting.
[[noreturn]] void writer_main(std::string const& dir, script const& sc) {
    char const* const who = "writer";
    mmap_mailbox w(dir, {"Conc"});
    if (auto r = w.open(); !r) die(who, 2, r.error_value().message);
    model_state s;
    for (std::size_t i = 0; i < sc.ops.size(); ++i) {
        op const& o = sc.ops[i];
        result<void> r;
        switch (o.kind) {
        case op_kind::append: {
            std::uint32_t const u = s.uidnext;
            auto a = w.append(body_of(u), mail_time{std::int64_t{u} * 1000}, flag_set::from_bits(o.flags), o.kws);
            if (!a) die(who, 3, a.error_value().message);
            if (value(*a) != u) die(who, 4, "append got uid " + std::to_string(value(*a)) + ", model " + std::to_string(u));
            break;
        }
        case op_kind::flags: r = w.update_flags(o.uids, o.mop, flag_set::from_bits(o.flags)); break;
        case op_kind::keywords: r = w.update_keywords(o.uids, o.mop, o.kws); break;
        case op_kind::expunge: r = w.expunge(o.uids); break;
        case op_kind::compact: r = w.compact(); break;
        }
        if (!r) die(who, 5, "op " + std::to_string(i) + ": " + r.error_value().message);
        apply_op(s, o);
        auto st = w.status();
        if (!st) die(who, 6, st.error_value().message);
        if (value(st->highest_modseq) != s.hms || st->exists != s.live.size())
            die(who, 7, "op " + std::to_string(i) + ": status disagrees with the model (highestmodseq " +
                            std::to_string(value(st->highest_modseq)) + ", model " + std::to_string(s.hms) + ")");
    }
    ::_exit(0);
}

struct reader_stats {
    std::uint64_t iterations = 0;
    std::uint64_t distinct_states = 0;
    std::uint64_t torn_retries = 0; // status before/after a fetch differed: retried
    std::uint64_t reopens = 0;
};

class reader {
public:
    reader(std::string dir, script const& sc, int id)
        : dir_(std::move(dir)), sc_(sc), id_(id), rng_(static_cast<std::uint32_t>(4242 + id)),
          who_("reader " + std::to_string(id)) {}

    // One round of checks through handle `h`.
    void round(mmap_mailbox& h) {
        ++stats_.iterations;
        // 1. changes_since(0) is one atomic answer: the live set and every expunge of the
        //    state its HIGHESTMODSEQ names.
        auto c = h.changes_since(modseq{0});
        if (!c) fail_err(10, "changes_since(0)", c.error_value());
        model_state const& s = expect(value(c->highest_modseq));
        if (!(c->changed == live_set(s)))
            fail(11, "changes_since(0).changed " + str(c->changed) + " != live " + str(live_set(s)) + " at " + hms_str(s));
        if (!c->expunged) fail(12, "changes_since(0): expunged unknown (no tombstone is ever pruned here)");
        uid_set tombs;
        for (auto const& [u, m] : s.tombs) tombs.add(u);
        if (!(*c->expunged == tombs)) fail(13, "changes_since(0).expunged " + str(*c->expunged) + " != " + str(tombs));
        // 2. changes_since(X) for an X seen earlier: exactly the messages changed and
        //    expunged after X in the state answered.
        std::uint64_t const x = (seen_.empty() ? 0 : seen_[pick(rng_, seen_.size())]) + pick(rng_, 2);
        auto d = h.changes_since(modseq{x});
        if (!d) fail_err(14, "changes_since(X)", d.error_value());
        check_changes(*d, x);
        // 3. status, fetch everything, status again: when both statuses name the same
        //    state, the fetch saw exactly that state (HIGHESTMODSEQ never repeats).
        for (int attempt = 0;; ++attempt) {
            auto s1 = h.status();
            if (!s1) fail_err(15, "status", s1.error_value());
            uid_set all;
            all.add_range(1, 0xFFFFFFFEU);
            auto f = h.fetch(all, fetch_fields::all);
            if (!f) fail_err(16, "fetch", f.error_value());
            auto srch = h.search(search_program::all());
            if (!srch) fail_err(17, "search", srch.error_value());
            auto s2 = h.status();
            if (!s2) fail_err(18, "status", s2.error_value());
            model_state const& m1 = expect(value(s1->highest_modseq));
            model_state const& m2 = expect(value(s2->highest_modseq));
            if (m1.hms != m2.hms) {
                ++stats_.torn_retries;
                if (attempt < 20) continue;
                break; // the writer is fast; the other checks still ran
            }
            check_status(*s1, m1);
            auto const want = records_of(m1);
            if (*f != want) fail(19, "fetch differs from the committed state at " + hms_str(m1));
            if (!(*srch == live_set(m1))) fail(20, "search ALL differs from the committed state at " + hms_str(m1));
            for (std::size_t i = 1; i < f->size(); ++i)
                if (value((*f)[i - 1].id) >= value((*f)[i].id)) fail(21, "fetch: UIDs not increasing");
            // 4. The octets of a live message: its own body, or `not_found` when it was
            //    expunged (and unlinked) since: then the next state must not have it.
            if (!f->empty()) {
                std::uint32_t const u = value((*f)[pick(rng_, f->size())].id);
                auto b = h.read_message(uid{u});
                if (b) {
                    if (*b != body_of(u)) fail(22, "message " + std::to_string(u) + " has the wrong octets");
                } else if (b.error_value().is(errc::not_found)) {
                    auto after = h.changes_since(modseq{0});
                    if (!after) fail_err(23, "changes_since(0)", after.error_value());
                    if (after->changed.contains(u))
                        fail(24, "message " + std::to_string(u) + " is live but its file is missing");
                } else {
                    fail_err(25, "read_message", b.error_value());
                }
            }
            break;
        }
    }

    // A handle kept open and refreshed by every call, closed and reopened now and then;
    // or (every other reader) a fresh handle per round: opens race with compaction.
    [[noreturn]] void run(int ready_fd, int running_fd, int stats_fd) {
        bool const fresh_each_round = id_ % 2 == 1;
        std::optional<mmap_mailbox> h;
        h.emplace(dir_, mmap_options{"Conc"});
        round(*h);
        char const one = 'r';
        if (::write(ready_fd, &one, 1) != 1) fail(30, "cannot signal ready");
        ::close(ready_fd);
        for (;;) {
            char buf = 0;
            ssize_t const n = ::read(running_fd, &buf, 1);
            if (n == 0) break; // the writer has exited (and the parent closed its end)
            if (n < 0 && errno != EAGAIN && errno != EINTR) fail(31, "read of the running pipe failed");
            if (fresh_each_round || pick(rng_, 16) == 0) {
                if (fresh_each_round) {
                    h.emplace(dir_, mmap_options{"Conc"});
                } else {
                    h->close();
                    if (auto r = h->open(); !r) fail_err(32, "reopen", r.error_value());
                }
                ++stats_.reopens;
            }
            round(*h);
        }
        // The writer is done: a fresh handle and the old one both show the final state.
        round(*h);
        std::uint64_t const last = last_;
        mmap_mailbox fresh(dir_);
        round(fresh);
        if (last_ != last || last_ != sc_.states.back().hms)
            fail(33, "after the writer: state " + std::to_string(last_) + ", final " + std::to_string(sc_.states.back().hms));
        stats_.distinct_states = distinct_;
        if (::write(stats_fd, &stats_, sizeof stats_) != static_cast<ssize_t>(sizeof stats_)) fail(34, "cannot report");
        ::_exit(0);
    }

private:
    [[noreturn]] void fail(int code, std::string const& why) { die(who_.c_str(), code, why); }

    [[noreturn]] void fail_err(int code, char const* what, error const& e) {
        fail(code, std::string(what) + ": " + e.message);
    }

    static std::string hms_str(model_state const& s) { return "highestmodseq " + std::to_string(s.hms); }

    // The committed state named by `hms`; records it as seen and checks that states never
    // go backwards for this reader.
    model_state const& expect(std::uint64_t hms) {
        auto it = sc_.by_hms.find(hms);
        if (it == sc_.by_hms.end()) fail(40, "highestmodseq " + std::to_string(hms) + " names no committed state");
        if (hms < last_) fail(41, "went back from highestmodseq " + std::to_string(last_) + " to " + std::to_string(hms));
        if (hms != last_ || distinct_ == 0) {
            ++distinct_;
            seen_.push_back(hms);
        }
        last_ = hms;
        return sc_.states[it->second];
    }

    void check_changes(change_set const& d, std::uint64_t x) {
        model_state const& s = expect(value(d.highest_modseq));
        uid_set ch, ex;
        for (auto const& [u, m] : s.live)
            if (m.modseq > x) ch.add(u);
        for (auto const& [u, m] : s.tombs)
            if (m > x) ex.add(u);
        if (!d.expunged) fail(50, "changes_since(X): expunged unknown");
        if (d.changed == ch && *d.expunged == ex) return;
        fail(51, "changes_since(" + std::to_string(x) + "): changed " + str(d.changed) + " expunged " + str(*d.expunged) +
                     " do not match the state at " + hms_str(s));
    }

    void check_status(mailbox_status const& st, model_state const& m) {
        if (st.exists != m.live.size() || value(st.uid_next) != m.uidnext || value(st.validity) != 99)
            fail(60, "status: exists " + std::to_string(st.exists) + " uidnext " + std::to_string(value(st.uid_next)) +
                                  " differ from the state at highestmodseq " + std::to_string(m.hms));
    }

    std::string dir_;
    script const& sc_;
    int id_;
    std::mt19937 rng_;
    std::string who_;
    reader_stats stats_;
    std::uint64_t last_ = 0;
    std::uint64_t distinct_ = 0;
    std::vector<std::uint64_t> seen_;
};

int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return status;
}

} // namespace

TEST_CASE("mmap_mailbox: readers in other processes see only whole committed states while a writer commits and compacts") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{99}).has_value());
    // ~120 commits (4 fsyncs each for an append) and 8 compactions: about a second here.
    script const sc = make_script(20261203, 132, 16);
    REQUIRE(sc.states.size() > 60);
    int constexpr n_readers = 3;

    int ready[2], running[2], stats[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(running) == 0);
    REQUIRE(::pipe(stats) == 0);
    REQUIRE(::fcntl(running[0], F_SETFL, O_NONBLOCK) == 0);
    std::fflush(nullptr);

    std::vector<pid_t> readers;
    for (int i = 0; i < n_readers; ++i) {
        pid_t const pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::alarm(120); // a hang fails the test (SIGALRM) instead of blocking CI
            ::close(ready[0]);
            ::close(running[1]);
            ::close(stats[0]);
            try {
                reader(dir, sc, i).run(ready[1], running[0], stats[1]);
            } catch (std::exception const& e) {
                die("reader", 98, e.what());
            } catch (...) {
                die("reader", 99, "unknown exception");
            }
        }
        readers.push_back(pid);
    }
    ::close(ready[1]);
    ::close(stats[1]);
    ::close(running[0]);
    // Every reader has checked the empty mailbox before the writer starts.
    for (int i = 0; i < n_readers; ++i) {
        char c = 0;
        REQUIRE(::read(ready[0], &c, 1) == 1);
    }
    ::close(ready[0]);

    pid_t const writer = ::fork();
    REQUIRE(writer >= 0);
    if (writer == 0) {
        ::alarm(120);
        ::close(stats[0]);
        // running[1] stays open in the writer: its exit closes the pipe for the readers.
        try {
            writer_main(dir, sc);
        } catch (std::exception const& e) {
            die("writer", 98, e.what());
        } catch (...) {
            die("writer", 99, "unknown exception");
        }
    }
    ::close(running[1]);

    int const ws = wait_for(writer);
    INFO("writer wait status ", ws);
    CHECK(WIFEXITED(ws));
    CHECK(WEXITSTATUS(ws) == 0);
    reader_stats total;
    for (int i = 0; i < n_readers; ++i) {
        int const rs = wait_for(readers[static_cast<std::size_t>(i)]);
        INFO("reader ", i, " wait status ", rs);
        CHECK(WIFEXITED(rs));
        CHECK(WEXITSTATUS(rs) == 0);
    }
    for (int i = 0; i < n_readers; ++i) {
        reader_stats s;
        if (::read(stats[0], &s, sizeof s) != static_cast<ssize_t>(sizeof s)) break;
        // The empty mailbox before the writer and the final state after it, at least.
        CHECK(s.distinct_states >= 2);
        total.iterations += s.iterations;
        total.distinct_states += s.distinct_states;
        total.torn_retries += s.torn_retries;
        total.reopens += s.reopens;
    }
    ::close(stats[0]);
    MESSAGE("readers: ", total.iterations, " rounds, ", total.distinct_states, " distinct states seen, ",
            total.torn_retries, " fetches retried, ", total.reopens, " reopens; ", sc.states.size(), " states committed");

    // The parent's own view: the final state, and the mailbox is still writable.
    mmap_mailbox m(dir);
    auto st = m.status();
    REQUIRE(st.has_value());
    CHECK(value(st->highest_modseq) == sc.states.back().hms);
    uid_set all;
    all.add_range(1, 0xFFFFFFFEU);
    auto f = m.fetch(all, fetch_fields::all);
    REQUIRE(f.has_value());
    CHECK(*f == records_of(sc.states.back()));
    CHECK(m.append("after", mail_time{1}).has_value());
}

TEST_CASE("concurrency test model: the script commits, compacts and expunges (the test is not vacuous)") {
    script const sc = make_script(20261203, 132, 16);
    int appends = 0, compacts = 0, expunged = 0, flag_changes = 0;
    for (auto const& o : sc.ops) {
        appends += o.kind == op_kind::append;
        compacts += o.kind == op_kind::compact;
    }
    expunged = static_cast<int>(sc.states.back().tombs.size());
    for (std::size_t i = 1; i < sc.states.size(); ++i)
        flag_changes += sc.states[i].uidnext == sc.states[i - 1].uidnext && sc.states[i].live.size() == sc.states[i - 1].live.size();
    CHECK(appends > 30);
    CHECK(compacts == 8);
    CHECK(expunged > 5);
    CHECK(flag_changes > 10);
    CHECK(sc.states.back().live.size() > 5);
    // Keys are unique and increasing with the state index.
    std::size_t prev = 0;
    for (auto const& [h, i] : sc.by_hms) {
        CHECK(sc.states[i].hms == h);
        if (h != 1) CHECK(i > prev);
        prev = i;
    }
}

namespace {
std::string slurp(std::string const& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
} // namespace

// Bug found by the stress test above (a reader opening a fresh handle per round), fixed:
// read_slots() took the file size (fstat) *before* it copied the two header slots under
// the shared publish lock and checked each slot's committed end against that stale size.
// A writer that committed twice in between (each commit grows the file, then publishes a
// slot) left both slots "beyond the file size", and a reader of a healthy mailbox got
// `corrupted ... tail_count: committed end beyond the file size`. Here the race is made
// deterministic: the test holds the publish lock, so the reader stops before its slot
// copy, while the test lands two commits' bytes. The size is now taken after the copy.
TEST_CASE("mmap_mailbox: a reader's slot check uses a file size taken after the slots were copied") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{7}).has_value());
    std::string const index = dir + "/index";
    std::string older, newer;
    std::uint64_t newer_hms = 0;
    {
        mmap_mailbox w(dir);
        REQUIRE(w.append("one", mail_time{1}).has_value());
        older = slurp(index);
        REQUIRE(w.update_flags(uid_set{{1, 1}}, modify_op::add, system_flag::seen).has_value()); // commit 1
        REQUIRE(w.append("two", mail_time{2}).has_value());                                     // commit 2
        newer = slurp(index);
        newer_hms = value(w.status()->highest_modseq);
    }
    REQUIRE(newer.size() > older.size());
    REQUIRE(newer.compare(8192, older.size() - 8192, older, 8192) == 0); // append-only past the slots
    { // back to the older generation (same inode)
        std::ofstream out(index, std::ios::binary | std::ios::trunc);
        out.write(older.data(), static_cast<std::streamsize>(older.size()));
    }
    mmap_mailbox r(dir);
    auto before = r.status();
    REQUIRE(before.has_value());
    REQUIRE(value(before->highest_modseq) < newer_hms);

    int const pl = ::open((dir + "/publish.lock").c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(pl >= 0);
    REQUIRE(::flock(pl, LOCK_EX) == 0);
    result<mailbox_status> seen = error{errc::temporary, "not run"};
    std::thread reader_thread([&] { seen = r.status(); }); // fstat, then waits for the lock
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // The two commits land as a writer lands them: entries past the end, then the slots.
    int const fd = ::open(index.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, newer.data(), newer.size(), 0) == static_cast<ssize_t>(newer.size()));
    ::close(fd);
    ::flock(pl, LOCK_UN);
    reader_thread.join();
    ::close(pl);
    std::string const why = seen.has_value() ? std::string("ok") : seen.error_value().message;
    INFO(why);
    REQUIRE(seen.has_value());
    CHECK(value(seen->highest_modseq) == newer_hms);
}

// §11.5 "randomized kill -9 ... including during compaction": a writer child appends
// and compacts in a loop (every other append is followed by a compaction) and reports
// each acknowledged UID; the parent SIGKILLs it at a random moment, with a reader child
// refreshing throughout. After each kill the mailbox must hold exactly the acknowledged
// appends plus at most the one in flight, open from a fresh handle, stay writable and
// compactable, and the reader must have seen only UIDs 1..n (no gap, nothing backwards).
TEST_CASE("mmap_mailbox: SIGKILL of a writer during appends and compactions, with a reader running") {
    temp_dir t;
    std::string const dir = t.path + "/box";
    REQUIRE(mmap_mailbox::create(dir, uid_validity{11}).has_value());
    std::mt19937 rng(9001);
    std::uint32_t expected = 0; // messages committed before this round
    for (int round = 0; round < 4; ++round) {
        INFO("round ", round);
        int acks[2], stop[2];
        REQUIRE(::pipe(acks) == 0);
        REQUIRE(::pipe(stop) == 0);
        std::fflush(nullptr);
        pid_t const rd = ::fork();
        REQUIRE(rd >= 0);
        if (rd == 0) {
            ::alarm(120);
            ::close(acks[0]);
            ::close(acks[1]);
            ::close(stop[1]);
            ::fcntl(stop[0], F_SETFL, O_NONBLOCK);
            mmap_mailbox r(dir);
            std::uint64_t last_hms = 0;
            for (;;) {
                char c = 0;
                ssize_t const n = ::read(stop[0], &c, 1);
                if (n == 0) break;
                auto ch = r.changes_since(modseq{0});
                if (!ch) {
                    die("reader", 2, ch.error_value().message);
                }
                std::uint64_t const h = value(ch->highest_modseq);
                if (h < last_hms) die("reader", 3, "highestmodseq went backwards");
                last_hms = h;
                // Only appends: the live set is 1..n, and n + 1 == highestmodseq.
                std::uint32_t const live = static_cast<std::uint32_t>(ch->changed.count());
                if (live + 1 != h || (live > 0 && !(ch->changed == uid_set{{1, live}})))
                    die("reader", 4, "live " + str(ch->changed) + " at highestmodseq " + std::to_string(h));
            }
            ::_exit(0);
        }
        ::close(stop[0]);
        pid_t const wr = ::fork();
        REQUIRE(wr >= 0);
        if (wr == 0) {
            ::close(acks[0]);
            ::close(stop[1]);
            mmap_mailbox w(dir);
            for (std::uint32_t i = 0;; ++i) {
                auto u = w.append("m", mail_time{std::int64_t{i}});
                if (!u) die("writer", 2, u.error_value().message);
                std::uint32_t const v = value(*u);
                if (::write(acks[1], &v, sizeof v) != static_cast<ssize_t>(sizeof v)) ::_exit(4);
                if (i % 2 == 1)
                    if (auto c = w.compact(); !c) die("writer", 3, c.error_value().message);
            }
        }
        ::close(acks[1]);
        std::vector<std::uint32_t> acked;
        std::uint32_t v = 0;
        if (::read(acks[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) acked.push_back(v);
        ::usleep(static_cast<useconds_t>(rng() % 300000));
        ::kill(wr, SIGKILL);
        int const ws = wait_for(wr);
        CHECK(WIFSIGNALED(ws));
        while (::read(acks[0], &v, sizeof v) == static_cast<ssize_t>(sizeof v)) acked.push_back(v);
        ::close(acks[0]);
        ::close(stop[1]); // the reader stops
        int const rs = wait_for(rd);
        INFO("reader wait status ", rs);
        CHECK(WIFEXITED(rs));
        CHECK(WEXITSTATUS(rs) == 0);
        REQUIRE(!acked.empty());
        for (std::size_t i = 0; i < acked.size(); ++i) CHECK(acked[i] == expected + 1 + i);
        mmap_mailbox m(dir);
        auto ch = m.changes_since(modseq{0});
        REQUIRE(ch.has_value());
        std::uint32_t const live = static_cast<std::uint32_t>(ch->changed.count());
        INFO("acknowledged up to ", expected + acked.size(), ", live ", str(ch->changed));
        CHECK((live == expected + acked.size() || live == expected + acked.size() + 1));
        CHECK(ch->changed == uid_set{{1, live}});
        for (std::uint32_t u = 1; u <= live; ++u) CHECK(m.read_message(uid{u}).has_value());
        REQUIRE(m.compact().has_value());
        auto u = m.append("after", mail_time{1});
        REQUIRE(u.has_value());
        CHECK(value(*u) == live + 1);
        MESSAGE("round ", round, ": ", acked.size(), " acknowledged appends, ", live - expected, " found");
        expected = live + 1;
    }
}

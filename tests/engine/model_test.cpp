// The model-checked randomized test of the sync engine (engine issue, section 5).
//
// Thousands of seeded random runs drive a folder over 1-4 memory backends with random
// operations: backend appends (random dates, ties included), flag and keyword changes,
// expunges, mailbox delete / re-create, UIDVALIDITY resets, expunge-log trims, view-side
// store_flags / store_keywords / expunge, syncs with and without expunge / reopen /
// refresh, folder close and re-open from the store, definition changes, store crashes
// (landing or not) and commit failures, injected backend faults, backends put back to an
// older copy (HIGHESTMODSEQ and UIDNEXT going down; the next sync must compare them in
// full), the parallel option and small open-backend limits.
//
// After every sync, successful or not, the folder is compared with a reference model that
// is computed from scratch from the backend contents and the previous view, with the
// documented rules only (SEMANTICS.md §3, §7 without Dovecot's bugs):
//  - per backend b, after a successful sync: view_b = matches_b ∪ (old view_b ∩ existing
//    messages of b), or just matches_b with expunge/reopen; old entries keep their vuids;
//    an identity change (UIDVALIDITY or guid) replaces all of b's entries with new ones;
//    a deleted backend has none (and is skipped until the next expansion);
//  - new entries get vuids from uid_next in the documented order (several backends: by
//    received date, real UID, backend id; one backend: ascending real UID), so the whole
//    view, vuids included, is predicted exactly; vuids never go down or get reused;
//  - view flags equal backend flags; pending removes are the view entries that do not
//    match (none after expunge/reopen); the sync report is the difference of the views;
//  - view-side changes reach the backends as IMAP STORE/EXPUNGE would (the backend
//    contents after each sync are predicted too);
//  - a failed sync changes nothing: status, view, pending removes and the store's raw
//    state are as before; a crashed commit leaves the folder as it was, and re-opening
//    shows the state before or after the sync, as the crash landed or not;
//  - UIDVALIDITY never changes once committed.
// On failure the seed, the step and the last operations are printed.
#include "conformance/backend_fixture.hpp" // the StringMaker of uid_set

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define VFOLDER_MODEL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VFOLDER_MODEL_SANITIZED 1
#endif
#endif
#ifndef VFOLDER_MODEL_SANITIZED
#define VFOLDER_MODEL_SANITIZED 0
#endif

namespace {

using namespace vfolder;
using folder_t = folder<memory_provider, memory_store>;

constexpr std::int64_t base_time = 1580515200; // 1-Feb-2020 00:00:00 UTC
constexpr std::int64_t one_day = 86400;
constexpr char const* store_name = "V";
constexpr char const* self_name = "Virtual/V";

std::string format_flags(flag_set flags, keyword_set const& kws) {
    std::string out = "(";
    bool first = true;
    for (auto const& k : kws) {
        out += first ? "" : " ";
        out += k;
        first = false;
    }
    for (auto f : all_system_flags)
        if (flags.contains(f)) {
            out += first ? "" : " ";
            out += flag_name(f);
            first = false;
        }
    return out + ")";
}

std::string set_text(uid_set const& s) { return doctest::StringMaker<uid_set>::convert(s).c_str(); }

struct identity {
    uid_validity validity{};
    mailbox_guid guid{};
    friend bool operator==(identity const&, identity const&) = default;
};

// A backend of the folder as the engine must have it.
struct mbox {
    std::string name;
    std::uint32_t id = 0;
    bool deleted = false;            // found gone: skipped until the next expansion drops it
    bool forget = false;             // not in the last expansion: dropped by the next sync
    std::optional<identity> ident;   // as of the last successful sync
};

// One message of the view.
struct vmsg {
    std::uint32_t box = 0; // mbox::id
    std::uint32_t real = 0;
    flag_set flags;
    keyword_set keywords;
    bool pending = false;  // did not match at the last sync
};

// The folder as the engine must have it: in memory, and as committed to the store.
struct state {
    std::vector<mbox> boxes; // ascending id
    std::uint32_t highest_box = 0;
    std::map<std::uint32_t, vmsg> view;
    std::uint32_t uid_next = 1;
    std::string def_text;
    uid_set orphans; // vuids of a former definition: expunged by the next sync
};

enum class change_kind { flags, keywords, expunge };
struct change {
    change_kind kind;
    uid_set vuids;
    modify_op op = modify_op::add;
    flag_set flags;
    keyword_set keywords;
};

struct run_config {
    bool parallel = false;
    std::size_t max_open = 64;
    bool refresh_on_sync = false;
    int backends = 1;
    int steps = 100;
};

class harness {
public:
    harness(std::uint64_t seed, run_config cfg) : rng_(seed), cfg_(cfg) {}

    std::uint64_t syncs() const noexcept { return syncs_; }
    std::string const& trail() const noexcept { return trail_; }
    int step() const noexcept { return step_; }

    // Runs the configured number of steps; returns "" or the first mismatch.
    std::string run() {
        setup();
        if (auto p = open_folder(); !p.empty()) return p;
        if (auto p = do_sync(sync_flags::reopen); !p.empty()) return p;
        for (step_ = 1; step_ <= cfg_.steps; ++step_) {
            if (auto p = random_step(); !p.empty()) return p;
        }
        // End in a clean state: an expunging sync applies everything.
        return do_sync(sync_flags::expunge);
    }

private:
    // ------------------------------------------------------------ randomness
    std::uint32_t pick(std::uint32_t n) { return static_cast<std::uint32_t>(rng_() % n); }
    bool chance(std::uint32_t percent) { return pick(100) < percent; }

    void note(std::string const& s) {
        trail_ += s;
        trail_ += '\n';
        if (trail_.size() > 4000) trail_.erase(0, trail_.find('\n', trail_.size() - 3000) + 1);
    }

    flag_set random_flags() {
        flag_set f;
        if (chance(40)) f |= system_flag::seen;
        if (chance(20)) f |= system_flag::flagged;
        if (chance(10)) f |= system_flag::deleted;
        if (chance(10)) f |= system_flag::answered;
        if (chance(5)) f |= system_flag::recent; // must never be stored or shown
        return f;
    }
    keyword_set random_keywords() {
        keyword_set k;
        if (chance(30)) k.insert("$X");
        if (chance(20)) k.insert("$Y");
        return k;
    }
    modify_op random_op() {
        switch (pick(3)) {
        case 0: return modify_op::add;
        case 1: return modify_op::remove;
        default: return modify_op::replace;
        }
    }
    mail_time random_date() {
        // Few distinct dates (ties), spread over days for since/before.
        std::int64_t const day = pick(8);
        return mail_time{base_time + one_day * day + pick(3)};
    }

    // ------------------------------------------------------------ the run
    void setup() {
        std::vector<std::string> pool = {"INBOX", "Work", "L/a", "L/b"};
        std::shuffle(pool.begin(), pool.end(), rng_);
        names_.assign(pool.begin(), pool.begin() + cfg_.backends);
        for (auto const& n : names_) {
            auto* b = *world_.create(n);
            int const k = static_cast<int>(pick(6));
            for (int i = 0; i < k; ++i) append(*b);
        }
        (void)world_.create("Other"); // never a backend (unless the pattern is "*")
        if (chance(30)) (void)world_.create(self_name); // a wildcard must skip it

        // Patterns: the names written explicitly, or wildcards.
        switch (pick(3)) {
        case 0:
            for (auto const& n : names_) patterns_.push_back(n);
            std::shuffle(patterns_.begin(), patterns_.end(), rng_);
            if (chance(30)) patterns_.push_back("Missing");
            break;
        case 1: {
            bool lists = false;
            for (auto const& n : names_) {
                if (n.rfind("L/", 0) == 0) lists = true;
                else patterns_.push_back(n);
            }
            if (lists) patterns_.push_back(chance(50) ? "L/*" : "L/%");
            std::shuffle(patterns_.begin(), patterns_.end(), rng_);
            break;
        }
        default:
            patterns_ = {"*", "-Other"};
            break;
        }
        programs_ = {"all", "unseen", "flagged", "or seen keyword $X", "since 3-Feb-2020 before 7-Feb-2020",
                     "not keyword $Y", "undeleted", "larger 100", "or flagged since 6-Feb-2020"};
        program_ = pick(static_cast<std::uint32_t>(programs_.size()));
        make_definition();

        opt_.self_name = self_name;
        opt_.parallel = cfg_.parallel;
        opt_.max_open_backends = cfg_.max_open;
        opt_.refresh_backends_on_sync = cfg_.refresh_on_sync;
        opt_.make_validity = [this](uid_validity) { return uid_validity{++validity_counter_}; };
    }

    void make_definition() {
        auto d = folder_definition::make(patterns_, programs_[program_]);
        REQUIRE(d.has_value());
        def_ = std::move(d).value();
        prog_ = def_.groups()[0].program;
        def_text_ = def_.to_text();
    }

    void append(memory_mailbox& b) {
        // One draw per statement: the same run with every compiler (argument order).
        message_flags f{random_flags(), random_keywords()};
        mail_time const date = random_date();
        std::uint64_t const size = 50 + pick(100);
        b.append(date, std::move(f), {}, size);
    }

    memory_mailbox* random_existing() {
        std::vector<memory_mailbox*> v;
        for (auto const& n : names_)
            if (auto* b = world_.find(n)) v.push_back(b);
        if (v.empty()) return nullptr;
        return v[pick(static_cast<std::uint32_t>(v.size()))];
    }

    uid_set random_vuids() {
        uid_set s;
        std::uint32_t const top = mem_.uid_next + 1;
        int const n = 1 + static_cast<int>(pick(chance(20) ? 8 : 2));
        for (int i = 0; i < n; ++i) s.add(1 + pick(top));
        return s;
    }

    std::string random_step() {
        std::uint32_t const r = pick(100);
        if (r < 16) {
            if (auto* b = random_existing(); b && b->size() < 40) {
                int const n = 1 + static_cast<int>(pick(3));
                for (int i = 0; i < n; ++i) append(*b);
                note("append " + std::to_string(n) + " to " + b->name());
            }
            return {};
        }
        if (r < 30) {
            if (auto* b = random_existing(); b && b->size() > 0) {
                auto const u = b->messages()[pick(static_cast<std::uint32_t>(b->size()))].id;
                if (chance(60)) {
                    auto const op = random_op();
                    b->modify_flags(u, op, random_flags());
                    note("host flags " + b->name() + " " + std::to_string(value(u)));
                } else {
                    auto const op = random_op();
                    b->modify_keywords(u, op, random_keywords());
                    note("host keywords " + b->name() + " " + std::to_string(value(u)));
                }
            }
            return {};
        }
        if (r < 36) {
            if (auto* b = random_existing(); b && b->size() > 0) {
                int const n = 1 + static_cast<int>(pick(b->size() > 30 ? 6 : 2));
                for (int i = 0; i < n && b->size() > 0; ++i)
                    b->expunge_one(b->messages()[pick(static_cast<std::uint32_t>(b->size()))].id);
                note("host expunge " + b->name());
            }
            return {};
        }
        if (r < 39) {
            auto const& n = names_[pick(static_cast<std::uint32_t>(names_.size()))];
            if (world_.find(n)) {
                REQUIRE(world_.remove(n).has_value());
                note("delete " + n);
            } else {
                auto* b = *world_.create(n);
                for (int i = 0, k = static_cast<int>(pick(4)); i < k; ++i) append(*b);
                note("create " + n);
            }
            return {};
        }
        if (r < 41) {
            if (auto* b = random_existing()) {
                if (chance(70)) {
                    switch (pick(3)) { // a new UIDVALIDITY, a new guid, or both
                    case 0: b->reset_validity(world_.fresh_validity()); break;
                    case 1: b->reset_validity(b->validity(), world_.fresh_guid()); break;
                    default: b->reset_validity(world_.fresh_validity(), world_.fresh_guid()); break;
                    }
                    note("reset_validity " + b->name());
                } else {
                    b->trim_expunge_log(b->highest_modseq());
                    note("trim_expunge_log " + b->name());
                }
            }
            return {};
        }
        if (r < 50) {
            change c{change_kind::flags, random_vuids(), random_op(), random_flags(), {}};
            f_->store_flags(c.vuids, c.op, c.flags);
            note("store_flags " + set_text(c.vuids) + " op " + std::to_string(static_cast<int>(c.op)) + " " +
                 format_flags(c.flags, {}));
            queue_.push_back(std::move(c));
            return {};
        }
        if (r < 54) {
            change c{change_kind::keywords, random_vuids(), random_op(), {}, random_keywords()};
            f_->store_keywords(c.vuids, c.op, c.keywords);
            note("store_keywords " + set_text(c.vuids) + " op " + std::to_string(static_cast<int>(c.op)) + " " +
                 format_flags({}, c.keywords));
            queue_.push_back(std::move(c));
            return {};
        }
        if (r < 56) {
            change c{change_kind::expunge, random_vuids(), {}, {}, {}};
            f_->expunge(c.vuids);
            note("view expunge " + set_text(c.vuids));
            queue_.push_back(std::move(c));
            return {};
        }
        if (r < 61) { // close and re-open from the store
            note("close and re-open");
            if (auto p = open_folder(); !p.empty()) return p;
            return do_sync(chance(80) ? sync_flags::reopen : sync_flags::none);
        }
        if (r < 62) { // a definition change
            program_ = (program_ + 1 + pick(static_cast<std::uint32_t>(programs_.size()) - 1)) %
                       static_cast<std::uint32_t>(programs_.size());
            make_definition();
            note("redefine: " + programs_[program_]);
            if (auto p = open_folder(); !p.empty()) return p;
            return do_sync(sync_flags::reopen);
        }
        if (r < 68) return inject_fault();
        if (r < 69) { // a backup of a mailbox, restored later
            if (auto* b = random_existing()) {
                backups_.insert_or_assign(b->name(), *b);
                note("backup " + b->name());
            }
            return {};
        }
        if (r < 70) { // an older state put back (an index restored from a copy), then a sync
            auto* b = random_existing();
            auto it = b ? backups_.find(b->name()) : backups_.end();
            if (it == backups_.end()) return {};
            // Immediately followed by the sync: changes made after a restore would reuse the
            // modseqs of the lost ones, which no backend can tell apart without saying
            // `inconsistent` (the mmap mailbox does; a memory mailbox cannot).
            *b = it->second;
            note("restore " + b->name() + " (HIGHESTMODSEQ " + std::to_string(value(b->highest_modseq())) + ")");
            return do_sync(random_sync_flags());
        }
        if (r < 72) { // a store commit that fails or crashes
            int const kind = static_cast<int>(pick(3));
            memory_store s(stores_, store_name);
            if (kind == 0) s.fail_next_commit(error{errc::io, "No space left on device"});
            else s.crash_next_commit(kind == 1);
            note(kind == 0 ? "fail_next_commit" : kind == 1 ? "crash_next_commit(lands)" : "crash_next_commit(lost)");
            return do_sync(random_sync_flags(), kind);
        }
        return do_sync(random_sync_flags());
    }

    sync_flags random_sync_flags() {
        std::uint32_t const r = pick(100);
        if (r < 60) return chance(10) ? sync_flags::fast : sync_flags::none;
        if (r < 78) return sync_flags::expunge;
        if (r < 92) return sync_flags::reopen;
        return sync_flags::refresh;
    }

    std::string inject_fault() {
        auto* b = random_existing();
        if (!b) return do_sync(random_sync_flags());
        sync_flags const fl = random_sync_flags();
        // A status fault only when nothing is to be written: the writes ask for status
        // too, and a partly written change would be rewritten by the next sync.
        bool const quiet = queue_.size() == pushed_ && !has(fl, sync_flags::expunge);
        backend_op const ops[] = {backend_op::search, backend_op::changes_since, backend_op::fetch, backend_op::status};
        backend_op const op = ops[pick(quiet ? 4 : 3)];
        b->fail_next(op, 1, error{errc::temporary, "lock timeout"});
        note("fault " + std::to_string(static_cast<int>(op)) + " on " + b->name());
        return do_sync(fl, -1, b->name(), op);
    }

    // ------------------------------------------------------------ the model
    // The definition expanded over the mailboxes that exist: new names are new boxes,
    // boxes not found are forgotten, deleted ones are dropped.
    void expand(state& s) {
        auto const exp = def_.expand(world_.list(), self_name);
        std::erase_if(s.boxes, [](mbox const& x) { return x.deleted; });
        for (auto& x : s.boxes) x.forget = true;
        for (auto const& e : exp) {
            auto it = std::find_if(s.boxes.begin(), s.boxes.end(), [&](mbox const& x) { return x.name == e.name; });
            if (it != s.boxes.end()) {
                it->forget = false;
            } else {
                mbox x;
                x.name = e.name;
                x.id = ++s.highest_box;
                s.boxes.push_back(std::move(x));
            }
        }
    }

    mbox const* box_of(state const& s, std::uint32_t id) const {
        for (auto const& x : s.boxes)
            if (x.id == id) return &x;
        return nullptr;
    }

    static std::optional<identity> identity_of(memory_mailbox const* b) {
        if (!b) return std::nullopt;
        return identity{b->validity(), b->guid()};
    }

    struct outcome {
        state next;
        uid_set expunged, added, flags_changed;
    };

    // What a successful sync of `s` must give, from the backends as they are now.
    outcome predict(state const& s, bool apply_pending) const {
        outcome o;
        state& n = o.next;
        n.highest_box = s.highest_box;
        n.uid_next = s.uid_next;
        n.def_text = s.def_text;
        struct add_item {
            std::int64_t received;
            std::uint32_t real;
            std::uint32_t box;
            flag_set flags;
            keyword_set keywords;
        };
        std::vector<add_item> adds;
        std::map<std::uint32_t, std::map<std::uint32_t, std::uint32_t>> old; // box -> real -> vuid
        for (auto const& [v, m] : s.view) old[m.box][m.real] = v;
        for (auto const& x0 : s.boxes) {
            mbox x = x0;
            if (x.forget) continue; // dropped with its messages
            if (x.deleted) {
                n.boxes.push_back(x);
                continue;
            }
            memory_mailbox const* mb = world_.find(x.name);
            if (!mb) { // deletion: all of its messages go at once
                x.deleted = true;
                x.ident.reset();
                n.boxes.push_back(x);
                continue;
            }
            identity const cur{mb->validity(), mb->guid()};
            bool const same = x.ident && *x.ident == cur;
            auto const& mine = old[x.id];
            for (auto const& m : mb->messages()) {
                bool const match = prog_.matches(memory_mailbox::meta(m));
                auto it = same ? mine.find(value(m.id)) : mine.end();
                if (it != mine.end()) {
                    if (match || !apply_pending) n.view[it->second] = {x.id, value(m.id), m.flags, m.keywords, !match};
                } else if (match) {
                    adds.push_back({value(m.received), value(m.id), x.id, m.flags, m.keywords});
                }
            }
            x.ident = cur;
            n.boxes.push_back(x);
        }
        bool const several = std::any_of(adds.begin(), adds.end(), [&](add_item const& a) { return a.box != adds[0].box; });
        if (several)
            std::sort(adds.begin(), adds.end(), [](add_item const& a, add_item const& b) {
                if (a.received != b.received) return a.received < b.received;
                if (a.real != b.real) return a.real < b.real;
                return a.box < b.box;
            });
        for (auto& a : adds) {
            o.added.add(n.uid_next);
            n.view[n.uid_next++] = {a.box, a.real, a.flags, std::move(a.keywords), false};
        }
        for (auto const& [v, m] : s.view) {
            auto it = n.view.find(v);
            if (it == n.view.end()) o.expunged.add(v);
            else if (it->second.flags != m.flags || it->second.keywords != m.keywords) o.flags_changed.add(v);
        }
        o.expunged.merge(s.orphans);
        return o;
    }

    // The backends after the sync's writes: each not yet written view-side change, applied
    // to the message the client saw (nothing if its backend was deleted or has another
    // identity now), then with expunge the messages \Deleted in the client's view.
    std::map<std::string, memory_mailbox> predict_writes(state const& s, bool expunge_deleted) const {
        std::map<std::string, memory_mailbox> w;
        for (auto const& n : world_.list()) w.emplace(n, *world_.find(n));
        auto const target = [&](std::uint32_t v) -> std::pair<memory_mailbox*, uid> {
            auto it = s.view.find(v);
            if (it == s.view.end()) return {nullptr, uid{}};
            mbox const* x = box_of(s, it->second.box);
            if (!x || x->deleted || x->forget) return {nullptr, uid{}};
            auto wb = w.find(x->name);
            if (wb == w.end() || identity_of(&wb->second) != x->ident) return {nullptr, uid{}};
            return {&wb->second, uid{it->second.real}};
        };
        for (std::size_t k = pushed_; k < queue_.size(); ++k) {
            auto const& c = queue_[k];
            c.vuids.for_each_value([&](std::uint32_t v) {
                auto [b, u] = target(v);
                if (!b) return;
                switch (c.kind) {
                case change_kind::flags: b->modify_flags(u, c.op, c.flags); break;
                case change_kind::keywords: b->modify_keywords(u, c.op, c.keywords); break;
                case change_kind::expunge: b->expunge_one(u); break;
                }
            });
        }
        if (expunge_deleted) {
            std::map<std::uint32_t, flag_set> client;
            for (auto const& [v, m] : s.view) client[v] = m.flags;
            for (auto const& c : queue_)
                if (c.kind == change_kind::flags)
                    c.vuids.for_each_value([&](std::uint32_t v) {
                        auto it = client.find(v);
                        if (it != client.end()) it->second = apply(it->second, c.op, c.flags).storable();
                    });
            for (auto const& [v, fl] : client) {
                if (!fl.contains(system_flag::deleted)) continue;
                auto [b, u] = target(v);
                if (b) b->expunge_one(u);
            }
        }
        return w;
    }

    std::string compare_backends(std::map<std::string, memory_mailbox> const& want) const {
        auto const names = world_.list();
        if (names.size() != want.size()) return "the set of mailboxes changed during a sync";
        for (auto const& n : names) {
            auto it = want.find(n);
            if (it == want.end()) return "mailbox " + n + " appeared during a sync";
            auto const have = world_.find(n)->messages();
            auto const exp = it->second.messages();
            std::string const what = "backend " + n + " after the view-side writes: ";
            if (have.size() != exp.size())
                return what + std::to_string(have.size()) + " messages, expected " + std::to_string(exp.size());
            for (std::size_t i = 0; i < have.size(); ++i) {
                if (have[i].id != exp[i].id)
                    return what + "uid " + std::to_string(value(have[i].id)) + ", expected " +
                           std::to_string(value(exp[i].id));
                if (have[i].flags != exp[i].flags || have[i].keywords != exp[i].keywords)
                    return what + "uid " + std::to_string(value(have[i].id)) + " has " +
                           format_flags(have[i].flags, have[i].keywords) + ", expected " +
                           format_flags(exp[i].flags, exp[i].keywords);
            }
        }
        return {};
    }

    std::string model_dump(state const& s) const {
        std::string out;
        for (auto const& [v, m] : s.view) {
            mbox const* x = box_of(s, m.box);
            out += std::to_string(v) + ' ' + (x ? x->name : std::string("?")) + ' ' + std::to_string(m.real) + ' ' +
                   format_flags(m.flags, m.keywords) + '\n';
        }
        return out;
    }

    std::string engine_dump() const {
        std::string out;
        f_->for_each([&](folder_message const& m) {
            out += std::to_string(value(m.vuid)) + ' ' + std::string(m.backend) + ' ' +
                   std::to_string(value(m.backend_uid)) + ' ' + format_flags(m.flags, *m.keywords) + '\n';
        });
        return out;
    }

    // The folder's visible state against `s`.
    // `view_only`: the messages, not the boxes (after a failed sync that followed a landed
    // crash, the object shows the client's old view over its current boxes).
    std::string compare_view(state const& s, char const* when, bool view_only = false) const {
        std::string const at = std::string(" (") + when + ")";
        auto const st = f_->status();
        if (validity_known_ && st.validity != validity_) return "UIDVALIDITY changed" + at;
        if (value(st.uid_next) != s.uid_next)
            return "uid_next " + std::to_string(value(st.uid_next)) + ", expected " + std::to_string(s.uid_next) + at;
        if (st.messages != s.view.size() || f_->size() != s.view.size())
            return "message count " + std::to_string(st.messages) + ", expected " + std::to_string(s.view.size()) + at;
        auto const have = engine_dump();
        auto const want = model_dump(s);
        if (have != want) return "view" + at + ":\n" + have + "expected:\n" + want;
        if (view_only) return {};
        std::vector<std::string> names;
        for (auto const& x : s.boxes) {
            if (x.deleted) continue;
            names.push_back(x.name);
            uid_set pending;
            for (auto const& [v, m] : s.view)
                if (m.box == x.id && m.pending) pending.add(m.real);
            if (f_->pending_removes(x.name) != pending)
                return "pending removes of " + x.name + ": " + set_text(f_->pending_removes(x.name)) + ", expected " +
                       set_text(pending) + at;
        }
        if (f_->backends() != names) {
            std::string got;
            for (auto const& n : f_->backends()) got += n + ' ';
            std::string exp;
            for (auto const& n : names) exp += n + ' ';
            return "backends() " + got + "expected " + exp + at;
        }
        // find agrees with the view; at(seqno) too, at a few places (it may be O(N)).
        std::uint32_t seq = 0;
        auto const n = static_cast<std::uint32_t>(s.view.size());
        for (auto const& [v, m] : s.view) {
            ++seq;
            auto byuid = f_->find(uid{v});
            if (!byuid || value(byuid->backend_uid) != m.real) return "find(" + std::to_string(v) + ") wrong" + at;
            if (seq == 1 || seq == n || seq == (n + 1) / 2) {
                auto byseq = f_->at(seqno{seq});
                if (!byseq || value(byseq->vuid) != v) return "at(" + std::to_string(seq) + ") wrong" + at;
            }
        }
        if (f_->at(seqno{n + 1}).has_value()) return "at(" + std::to_string(n + 1) + ") exists" + at;
        return {};
    }

    // What a client that saw `a` is told to reach `b`.
    static sync_report diff(state const& a, state const& b) {
        sync_report d;
        for (auto const& [v, m] : a.view) {
            auto it = b.view.find(v);
            if (it == b.view.end()) d.expunged.add(v);
            else if (it->second.flags != m.flags || it->second.keywords != m.keywords) d.flags_changed.add(v);
        }
        for (auto const& [v, m] : b.view)
            if (!a.view.count(v)) d.added.add(v);
        return d;
    }

    // Adopts a successful (or landed) sync's outcome.
    void adopt(state next) {
        mem_ = std::move(next);
        committed_ = mem_;
        std::erase_if(committed_.boxes, [](mbox const& x) { return x.deleted; });
        have_committed_ = true;
        if (!validity_known_) {
            validity_ = f_->status().validity;
            validity_known_ = true;
        }
    }

    // ------------------------------------------------------------ operations with checks
    std::string open_folder() {
        f_.reset(); // the old folder object goes, with its queue
        carry_ = {};
        shown_.reset();
        queue_.clear();
        pushed_ = 0;
        auto r = folder_t::open(def_, memory_provider(world_), memory_store(stores_, store_name), opt_);
        if (!r.has_value()) return "open failed: " + r.error_value().message;
        f_.emplace(std::move(r).value());
        if (!have_committed_) {
            mem_ = state{};
        } else if (committed_.def_text != def_text_) {
            mem_ = state{};
            mem_.highest_box = committed_.highest_box;
            mem_.uid_next = committed_.uid_next;
            for (auto const& [v, m] : committed_.view) mem_.orphans.add(v);
        } else {
            mem_ = committed_;
        }
        mem_.def_text = def_text_;
        expand(mem_);
        if (!validity_known_ && value(f_->status().validity) == 0) return "UIDVALIDITY 0 after open";
        return compare_view(mem_, "after open");
    }

    struct snapshot {
        folder_status status;
        std::string view;
        std::optional<view_state> raw;
        std::map<std::string, uid_set> pending;
    };
    snapshot take_snapshot() {
        snapshot s{f_->status(), engine_dump(), memory_store(stores_, store_name).raw(), {}};
        for (auto const& n : f_->backends()) s.pending[n] = f_->pending_removes(n);
        return s;
    }
    // After a failed sync: nothing changed (a reopen's expansion may list new backends,
    // which have nothing pending).
    std::string unchanged(snapshot const& a, char const* why) {
        auto const b = take_snapshot();
        std::string const at = std::string(" after ") + why;
        if (!(a.status == b.status)) return "status changed" + at;
        if (a.view != b.view) return "view changed" + at + ":\n" + b.view + "was:\n" + a.view;
        if (a.raw != b.raw) return "stored state changed" + at;
        for (auto const& [n, p] : b.pending) {
            auto it = a.pending.find(n);
            if (it == a.pending.end() ? !p.empty() : it->second != p) return "pending removes of " + n + " changed" + at;
        }
        return shown_ ? compare_view(*shown_, why, true) : compare_view(mem_, why);
    }

    // commit_hook: -1 none, 0 fail_next_commit, 1 crash landing, 2 crash lost.
    std::string do_sync(sync_flags fl, int commit_hook = -1, std::string const& fault_box = {},
                        backend_op fault_op = backend_op::status) {
        ++syncs_;
        note("sync " + std::to_string(static_cast<int>(fl)));
        if (has(fl, sync_flags::reopen) || has(fl, sync_flags::refresh) || cfg_.refresh_on_sync) expand(mem_);
        bool const expunge = has(fl, sync_flags::expunge);
        bool const apply_pending = expunge || has(fl, sync_flags::reopen);
        auto const writes = predict_writes(mem_, expunge);
        auto const before = take_snapshot();
        std::uint64_t fault_calls = 0;
        memory_mailbox* fb = fault_box.empty() ? nullptr : world_.find(fault_box);
        if (fb) fault_calls = fb->calls(fault_op);

        auto r = f_->sync(fl);

        bool const fired = fb && fb->calls(fault_op) > fault_calls;
        for (auto const& n : world_.list()) world_.find(n)->clear_faults();
        auto& slot = stores_.at(store_name);
        slot.fail_next.reset();
        slot.crash_next.reset();

        if (auto p = compare_backends(writes); !p.empty()) return p;
        pushed_ = queue_.size();

        if (r.has_value()) {
            if (fired) return "a backend fault fired but the sync succeeded";
            outcome o = predict(mem_, apply_pending);
            if (!o.added.empty() && o.added.front().first <= max_vuid_)
                return "a vuid was reused: " + set_text(o.added);
            if (!o.added.empty()) max_vuid_ = o.added.back().last;
            if (!carry_.empty()) { // a landed crash the client was not told about yet
                o.expunged.merge(carry_.expunged);
                carry_.added.remove_set(o.expunged);
                o.added.merge(carry_.added);
                carry_.flags_changed.remove_set(o.expunged);
                carry_.flags_changed.remove_set(o.added);
                o.flags_changed.merge(carry_.flags_changed);
                carry_ = {};
            }
            shown_.reset();
            auto const& rep = *r;
            if (rep.expunged != o.expunged)
                return "report.expunged " + set_text(rep.expunged) + ", expected " + set_text(o.expunged);
            if (rep.added != o.added) return "report.added " + set_text(rep.added) + ", expected " + set_text(o.added);
            if (rep.flags_changed != o.flags_changed)
                return "report.flags_changed " + set_text(rep.flags_changed) + ", expected " + set_text(o.flags_changed);
            if (auto p = compare_view(o.next, "after sync"); !p.empty()) return p;
            if (apply_pending)
                for (auto const& n : f_->backends())
                    if (!f_->pending_removes(n).empty()) return "pending removes left after expunge/reopen";
            adopt(std::move(o.next));
            queue_.clear();
            pushed_ = 0;
            return {};
        }

        // The sync failed: it must be one we caused, and it changed nothing.
        error const& e = r.error_value();
        bool const crashed = e.is(errc::io) && e.message.find("simulated crash") != std::string::npos;
        if (fired) {
            if (!e.is(errc::temporary) || e.message != "lock timeout (for backend mailbox " + fault_box + ")")
                return "unexpected error for a fault on " + fault_box + ": " + e.message;
        } else if (commit_hook == 0) {
            if (e.message != "No space left on device") return "unexpected error: " + e.message;
        } else if (!crashed || commit_hook < 1) {
            return "unexpected sync failure: " + e.message;
        }
        if (!crashed) return unchanged(before, "a failed sync");
        // A crash: the folder is as before; the process dies, and a new one re-opens the
        // store, which holds the state before or after the sync.
        auto const b = take_snapshot();
        if (!(before.status == b.status) || before.view != b.view) return "a crashed commit changed the view";
        bool const lives_on = rng_() % 2 == 0;
        if (commit_hook == 1) {
            outcome o = predict(mem_, apply_pending);
            if (!o.added.empty()) max_vuid_ = o.added.back().last;
            state const seen = mem_;
            adopt(std::move(o.next));
            if (lives_on) {
                // The error was reported, the process goes on with the same object: its
                // next sync reloads the landed state and reports what the client has not
                // seen (the view before the crash against the landed one).
                if (!shown_) shown_ = seen; // what the object shows until a sync succeeds
                carry_ = diff(*shown_, mem_);
                note("crash landed: the process lives on");
                return {};
            }
        } else if (before.raw != b.raw) {
            return "a crash that did not land changed the store";
        } else if (lives_on) {
            // The process goes on with the same object: its next sync reloads the store
            // (a failed commit may have landed), here to the same state.
            note("crash lost: the process lives on");
            return {};
        }
        note("crash: re-open");
        if (auto p = open_folder(); !p.empty()) return p;
        return {};
    }

    std::mt19937_64 rng_;
    run_config cfg_;
    memory_world world_{100};
    std::map<std::string, memory_mailbox> backups_; // by name: restored by "restore"
    memory_store_world stores_;
    std::uint32_t validity_counter_ = 3000;
    std::vector<std::string> names_;
    std::vector<std::string> patterns_;
    std::vector<std::string> programs_;
    std::uint32_t program_ = 0;
    folder_definition def_;
    search_program prog_;
    std::string def_text_;
    folder_options opt_;
    std::optional<folder_t> f_;
    state mem_, committed_;
    bool have_committed_ = false;
    uid_validity validity_{};
    bool validity_known_ = false;
    std::uint32_t max_vuid_ = 0;
    std::vector<change> queue_;
    std::size_t pushed_ = 0;
    sync_report carry_; // a landed crash's changes, reported by the next successful sync
    std::optional<state> shown_; // the view the object shows until then
    std::uint64_t syncs_ = 0;
    std::string trail_;
    int step_ = 0;
};

struct totals {
    std::uint64_t syncs = 0;
    int runs = 0;
};

void run_many(std::uint64_t first_seed, int runs, totals& t, run_config (*config_of)(std::mt19937_64&)) {
    for (int i = 0; i < runs; ++i) {
        std::uint64_t const seed = first_seed + static_cast<std::uint64_t>(i);
        std::mt19937_64 cr(seed * 7919u + 17u);
        run_config const cfg = config_of(cr);
        harness h(seed, cfg);
        std::string const problem = h.run();
        t.syncs += h.syncs();
        ++t.runs;
        if (!problem.empty()) {
            INFO("seed " << seed << ", step " << h.step() << " (backends " << cfg.backends << ", parallel "
                         << cfg.parallel << ", max_open " << cfg.max_open << ", refresh " << cfg.refresh_on_sync
                         << ")\nlast operations:\n"
                         << h.trail());
            FAIL(problem);
        }
    }
}

// Each run makes about 107 syncs (240 steps). Parallel runs cost threads (std::async per
// backend and sync): most runs are sequential.
#if VFOLDER_MODEL_SANITIZED
constexpr int sequential_runs = 375, parallel_runs = 125; // about 5*10^4 syncs (at least 2*10^4)
#else
constexpr int sequential_runs = 750, parallel_runs = 250; // >= 10^5 syncs
#endif

} // namespace

TEST_CASE("folder model: random runs agree with the reference model (sequential)") {
    totals t;
    auto const start = std::chrono::steady_clock::now();
    run_many(1, sequential_runs, t, [](std::mt19937_64& r) {
        run_config c;
        c.backends = 1 + static_cast<int>(r() % 4);
        c.max_open = r() % 4 == 0 ? 1 + r() % 2 : 64;
        c.refresh_on_sync = r() % 5 == 0;
        c.steps = 240;
        return c;
    });
    auto const ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    MESSAGE("sequential: " << t.runs << " runs, " << t.syncs << " syncs, " << ms.count() << " ms");
    CHECK(t.syncs >= static_cast<std::uint64_t>(sequential_runs) * 100);
}

TEST_CASE("folder model: random runs agree with the reference model (parallel, small open limits)") {
    totals t;
    auto const start = std::chrono::steady_clock::now();
    run_many(1000001, parallel_runs, t, [](std::mt19937_64& r) {
        run_config c;
        c.backends = 2 + static_cast<int>(r() % 3);
        c.parallel = true;
        c.max_open = r() % 2 == 0 ? 1 + r() % 3 : 64;
        c.refresh_on_sync = r() % 5 == 0;
        c.steps = 240;
        return c;
    });
    auto const ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    MESSAGE("parallel: " << t.runs << " runs, " << t.syncs << " syncs, " << ms.count() << " ms");
    CHECK(t.syncs >= static_cast<std::uint64_t>(parallel_runs) * 100);
}

// scenario_replay: runs a scenario (../shared/SCENARIOS.md) on vfolder's engine over
// memory or on-disk backends and prints the folders in canonical text, to compare with
// Dovecot.
//
//   scenario_replay [--backend=memory|mmap] [--dir=DIR] [-x] FILE|-
//
// --backend=mmap: mmap_mailbox backends under DIR/mail (an mmap_provider) and one
// mmap_store per folder under DIR/vindex; DIR is a fresh temporary directory, removed at
// exit, when --dir is not given (an existing DIR is used as it is: the run continues
// from its mailboxes and stored folders).
#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/adapters/mmap/mmap_provider.hpp>
#include <vfolder/adapters/mmap/mmap_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace vf = vfolder;
namespace {

std::vector<std::string> split_ws(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

std::vector<std::string> split_comma(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= s.size()) {
        auto j = s.find(',', i);
        if (j == std::string_view::npos) j = s.size();
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

struct command_error {
    std::string message;
};

std::optional<std::uint64_t> parse_number(std::string_view s) {
    if (s.empty() || s.size() > 19) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

// Flags and keywords from "\Seen,$Work" ("-" = none).
vf::message_flags parse_flag_list(std::string_view s) {
    vf::message_flags f;
    if (s == "-" || s.empty()) return f;
    for (auto const& name : split_comma(s)) {
        if (name.front() == '\\') {
            auto fl = vf::parse_flag(name);
            if (!fl) throw command_error{"Invalid system flag " + name};
            f.flags |= *fl;
        } else {
            f.keywords.insert(name);
        }
    }
    return f;
}

struct flag_change {
    vf::modify_op op;
    vf::message_flags what;
};

// "+\Seen", "-\Seen,$X", "=\Flagged", "=-".
flag_change parse_flag_change(std::string_view s) {
    if (s.empty()) throw command_error{"Missing flag change"};
    vf::modify_op op;
    switch (s.front()) {
    case '+': op = vf::modify_op::add; break;
    case '-': op = vf::modify_op::remove; break;
    case '=': op = vf::modify_op::replace; break;
    default: throw command_error{"Flag change must start with +, - or ="};
    }
    auto rest = s.substr(1);
    if (op == vf::modify_op::replace && rest == "-") return {op, {}};
    if (rest.empty()) throw command_error{"Missing flags"};
    return {op, parse_flag_list(rest)};
}

std::string format_flags(vf::flag_set flags, vf::keyword_set const& kws) {
    std::vector<std::string> all(kws.begin(), kws.end());
    for (auto f : vf::all_system_flags)
        if (f != vf::system_flag::recent && flags.contains(f)) all.emplace_back(vf::flag_name(f));
    std::sort(all.begin(), all.end());
    std::string out = "(";
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (i) out += ' ';
        out += all[i];
    }
    return out + ")";
}

// What `dump-backend` prints of a backend mailbox.
struct backend_row {
    std::uint32_t uid = 0;
    vf::flag_set flags;
    vf::keyword_set keywords;
    std::int64_t received = 0;
    std::string message_id;
};
struct backend_dump {
    std::uint32_t validity = 0;
    std::uint32_t uid_next = 1;
    std::vector<backend_row> rows; // ascending uid
};

// The message text the replay stores for MSGID (its size is what searches see).
std::string message_text(std::string const& msgid) { return "Message-ID: <" + msgid + ">\r\n\r\n"; }

void apply_flag_change(flag_change const& c, auto&& set_flags, auto&& set_keywords) {
    set_flags(c.op, c.what.flags);
    if (c.op == vf::modify_op::replace || !c.what.keywords.empty()) set_keywords(c.op, c.what.keywords);
}

// ------------------------------------------------------------------ memory world
// The in-memory mock mailboxes and stores.
class memory_env {
public:
    using provider_type = vf::memory_provider;
    using store_type = vf::memory_store;

    memory_env() { (void)world_.create("INBOX"); }

    void require(std::string const& name) { (void)mailbox(name); }
    void create(std::string const& name) {
        if (auto r = world_.create(name); !r) throw command_error{r.error_value().message};
    }
    void remove(std::string const& name) {
        if (auto r = world_.remove(name); !r) throw command_error{r.error_value().message};
    }
    void append(std::string const& name, std::int64_t t, vf::message_flags f, std::string const& msgid) {
        auto* b = mailbox(name);
        b->append(vf::mail_time{t}, std::move(f), msgid, message_text(msgid).size());
    }
    void flag(std::string const& name, vf::uid u, flag_change const& c) {
        auto* b = mailbox(name);
        if (!b->find(u)) throw command_error{"No such message"};
        apply_flag_change(
            c, [&](vf::modify_op op, vf::flag_set f) { b->modify_flags(u, op, f); },
            [&](vf::modify_op op, vf::keyword_set const& k) { b->modify_keywords(u, op, k); });
    }
    void expunge(std::string const& name, vf::uid u) {
        if (!mailbox(name)->expunge_one(u)) throw command_error{"No such message"};
    }
    backend_dump dump(std::string const& name) {
        auto const* b = mailbox(name);
        backend_dump d{vf::value(b->validity()), vf::value(b->next_uid()), {}};
        for (auto const& m : b->messages())
            d.rows.push_back({vf::value(m.id), m.flags, m.keywords, vf::value(m.received), m.message_id});
        return d;
    }

    provider_type provider() { return vf::memory_provider(world_); }
    store_type store(std::string const& folder) { return vf::memory_store(stores_, folder); }
    void wipe(std::string const& folder) { stores_.wipe(folder); }
    // Nothing outlives the sessions in memory: the mailboxes and stores are the disk.
    void restart() {}
    vf::uid_validity make_validity(vf::uid_validity) { return vf::uid_validity{++validity_counter_}; }

private:
    vf::memory_mailbox* mailbox(std::string const& name) {
        auto* b = world_.find(name);
        if (!b) throw command_error{"Mailbox doesn't exist: " + name};
        return b;
    }

    vf::memory_world world_;
    vf::memory_store_world stores_;
    std::uint32_t validity_counter_ = 1000;
};

// ------------------------------------------------------------------ on-disk world
// mmap_mailbox backends under DIR/mail, one mmap_store per folder under DIR/vindex.
class mmap_env {
public:
    // An mmap_store holds an exclusive lock on its directory while open, so the sessions
    // (independent users of the same stored folder, as with memory_store) share one.
    class store_type {
    public:
        explicit store_type(std::shared_ptr<vf::mmap_store> s) : s_(std::move(s)) {}
        vf::result<std::optional<vf::view_state>> load() { return s_->load(); }
        vf::result<void> commit(vf::view_delta const& d) { return s_->commit(d); }
        vf::result<void> reset() { return s_->reset(); }

    private:
        std::shared_ptr<vf::mmap_store> s_;
    };
    using provider_type = vf::mmap_provider;

    explicit mmap_env(std::string const& dir) : dir_(dir), provider_(dir + "/mail") {
        std::error_code ec;
        std::filesystem::create_directories(dir_ + "/mail", ec);
        if (!ec) std::filesystem::create_directories(dir_ + "/vindex", ec);
        if (ec) throw command_error{"cannot create " + dir_ + ": " + ec.message()};
        if (!provider_.exists("INBOX")) create("INBOX");
    }

    void require(std::string const& name) {
        if (!provider_.exists(name)) throw command_error{"Mailbox doesn't exist: " + name};
    }
    void create(std::string const& name) {
        if (auto r = provider_.create(name); !r) throw command_error{r.error_value().message};
    }
    void remove(std::string const& name) {
        if (auto r = provider_.remove(name); !r) throw command_error{r.error_value().message};
    }
    void append(std::string const& name, std::int64_t t, vf::message_flags f, std::string const& msgid) {
        auto b = mailbox(name);
        check(b.append(message_text(msgid), vf::mail_time{t}, f.flags, f.keywords));
    }
    void flag(std::string const& name, vf::uid u, flag_change const& c) {
        auto b = mailbox(name);
        vf::uid_set const one = existing(b, u);
        apply_flag_change(
            c, [&](vf::modify_op op, vf::flag_set f) { check(b.update_flags(one, op, f)); },
            [&](vf::modify_op op, vf::keyword_set const& k) { check(b.update_keywords(one, op, k)); });
    }
    void expunge(std::string const& name, vf::uid u) {
        auto b = mailbox(name);
        check(b.expunge(existing(b, u)));
    }
    backend_dump dump(std::string const& name) {
        auto b = mailbox(name);
        auto st = check(b.status());
        backend_dump d{vf::value(st.validity), vf::value(st.uid_next), {}};
        auto recs = check(b.fetch(vf::uid_set{{1, 0xFFFFFFFFu}}, vf::fetch_fields::all));
        for (auto& m : recs) {
            // mmap_mailbox keeps the octets, not the Message-ID: read it from the message.
            auto text = check(b.read_message(m.id));
            d.rows.push_back({vf::value(m.id), m.flags, std::move(m.keywords), vf::value(m.received),
                              message_id_of(text)});
        }
        return d;
    }

    provider_type provider() { return provider_; }
    store_type store(std::string const& folder) { return store_type(shared_store(folder)); }
    void wipe(std::string const& folder) { check(shared_store(folder)->reset()); }
    // The sessions are closed: close the stores too, so everything is read from disk again.
    void restart() { stores_.clear(); }
    vf::uid_validity make_validity(vf::uid_validity previous) {
        auto v = provider_.next_validity(previous);
        if (v) return *v;
        return vf::detail::default_validity(previous);
    }

private:
    template <class T>
    static T check(vf::result<T> r) {
        if (!r) throw command_error{r.error_value().message};
        return std::move(r).value();
    }
    static void check(vf::result<void> const& r) {
        if (!r) throw command_error{r.error_value().message};
    }

    vf::mmap_mailbox mailbox(std::string const& name) {
        auto b = provider_.make(name);
        if (!b) throw command_error{"Mailbox doesn't exist: " + name};
        return std::move(b).value();
    }

    // {u} if message u exists in b, else "No such message".
    static vf::uid_set existing(vf::mmap_mailbox& b, vf::uid u) {
        vf::uid_set one{{vf::value(u), vf::value(u)}};
        if (check(b.fetch(one, vf::fetch_fields::size)).empty()) throw command_error{"No such message"};
        return one;
    }

    static std::string message_id_of(std::string_view text) {
        constexpr std::string_view key = "Message-ID: <";
        auto const at = text.find(key);
        if (at == std::string_view::npos) return {};
        auto const from = at + key.size();
        auto const to = text.find(">\r\n", from);
        return std::string(text.substr(from, to == std::string_view::npos ? std::string_view::npos : to - from));
    }

    // The store directory of a folder: its name with '/', '%' and a leading '.' escaped.
    std::string store_dir(std::string const& folder) const {
        std::string out = dir_ + "/vindex/";
        for (std::size_t i = 0; i < folder.size(); ++i) {
            auto const c = static_cast<unsigned char>(folder[i]);
            if (c == '/' || c == '%' || c < 0x20 || (i == 0 && c == '.')) {
                char buf[4];
                std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned>(c));
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
        return out;
    }

    std::shared_ptr<vf::mmap_store> shared_store(std::string const& folder) {
        auto& slot = stores_[folder];
        if (!slot) {
            auto s = vf::mmap_store::open(store_dir(folder));
            if (!s) throw command_error{s.error_value().message};
            slot = std::make_shared<vf::mmap_store>(std::move(s).value());
        }
        return slot;
    }

    std::string dir_;
    vf::mmap_provider provider_;
    std::map<std::string, std::shared_ptr<vf::mmap_store>> stores_;
};

// ------------------------------------------------------------------ the replay
template <class Env>
class replay {
public:
    using folder_t = vf::folder<typename Env::provider_type, typename Env::store_type>;

    explicit replay(Env& env) : env_(env) {
        define("All", {"INBOX", "Work", "Lists*"}, "all");
        define("Unseen", {"INBOX", "Work", "Lists*"}, "unseen");
    }

    void run(std::istream& in, bool echo) {
        std::string line;
        while (std::getline(in, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            auto const first = line.find_first_not_of(" \t");
            if (first == std::string::npos || line[first] == '#') continue;
            if (echo) std::cout << "> " << line << '\n';
            try {
                execute(line);
            } catch (command_error const& e) {
                std::cout << "! " << line << " => " << e.message << '\n';
            }
        }
    }

private:
    void define(std::string const& name, std::vector<std::string> const& patterns, std::string const& program) {
        auto d = vf::folder_definition::make(patterns, program);
        if (!d) throw command_error{d.error_value().message};
        defs_[name] = std::move(*d);
    }

    void execute(std::string const& line) {
        auto words = split_ws(line);
        std::string session = "v";
        if (!words.empty() && words[0].size() > 1 && words[0][0] == '@') {
            session = words[0].substr(1);
            words.erase(words.begin());
        }
        if (words.empty()) throw command_error{"Missing command"};
        auto const& cmd = words[0];
        auto need = [&](std::size_t n) {
            if (words.size() != n + 1) throw command_error{"Wrong number of arguments"};
        };
        if (cmd == "vmailbox") {
            auto sep = std::find(words.begin(), words.end(), "--");
            if (words.size() < 2 || sep == words.end() || sep == words.begin() + 2 || sep + 1 == words.end())
                throw command_error{"Usage: vmailbox NAME PAT... -- SEARCH..."};
            std::vector<std::string> pats(words.begin() + 2, sep);
            std::string prog;
            for (auto it = sep + 1; it != words.end(); ++it) prog += (prog.empty() ? "" : " ") + *it;
            define(words[1], pats, prog);
        } else if (cmd == "mbox") {
            need(1);
            env_.create(words[1]);
        } else if (cmd == "rmbox") {
            need(1);
            env_.remove(words[1]);
        } else if (cmd == "append") {
            need(4);
            env_.require(words[1]);
            auto t = parse_number(words[2]);
            auto f = parse_flag_list(words[3]);
            if (!t || *t < 1) throw command_error{"Invalid received time " + words[2]};
            env_.append(words[1], static_cast<std::int64_t>(*t), std::move(f), words[4]);
        } else if (cmd == "flag") {
            need(3);
            env_.require(words[1]);
            auto u = parse_uid(words[2]);
            auto c = parse_flag_change(words[3]);
            env_.flag(words[1], u, c);
        } else if (cmd == "expunge") {
            need(2);
            env_.require(words[1]);
            env_.expunge(words[1], parse_uid(words[2]));
        } else if (cmd == "select") {
            need(1);
            select(session, words[1]);
        } else if (cmd == "sync") {
            need(1);
            if (!find_open(session, words[1])) select(session, words[1]);
            else check(open_folder(session, words[1]).sync());
        } else if (cmd == "check") {
            need(1);
            check(opened(session, words[1]).sync());
        } else if (cmd == "vflag") {
            need(3);
            auto& f = opened(session, words[1]);
            auto u = parse_uid(words[2]);
            if (!f.find(u)) throw command_error{"No such message"};
            auto c = parse_flag_change(words[3]);
            vf::uid_set one{{vf::value(u), vf::value(u)}};
            f.store_flags(one, c.op, c.what.flags);
            if (c.op == vf::modify_op::replace || !c.what.keywords.empty())
                f.store_keywords(one, c.op, c.what.keywords);
            check(f.sync());
        } else if (cmd == "expunge-virtual") {
            need(1);
            check(opened(session, words[1]).sync(vf::sync_flags::expunge));
        } else if (cmd == "close") {
            need(1);
            check(opened(session, words[1]).sync(vf::sync_flags::expunge));
            sessions_[session].erase(words[1]);
        } else if (cmd == "unselect") {
            need(1);
            sessions_[session].erase(words[1]);
        } else if (cmd == "dump") {
            need(1);
            dump(opened(session, words[1], false), words[1]);
        } else if (cmd == "dump-backend") {
            need(1);
            dump_backend(words[1]);
        } else if (cmd == "restart") {
            need(0);
            sessions_.clear();
            env_.restart();
        } else if (cmd == "wipe-vindex") {
            need(1);
            for (auto& [s, open] : sessions_) open.erase(words[1]);
            env_.wipe(words[1]);
        } else if (cmd == "sleep") {
            need(1);
            if (!parse_number(words[1])) throw command_error{"Invalid number " + words[1]};
            // Time plays no part in the engine's decisions: nothing to wait for.
        } else {
            throw command_error{"Unknown command " + cmd};
        }
    }

    static vf::uid parse_uid(std::string const& s) {
        auto n = parse_number(s);
        if (!n || *n == 0 || *n > 0xffffffffu) throw command_error{"Invalid UID " + s};
        return vf::uid{static_cast<std::uint32_t>(*n)};
    }

    static void check(vf::result<vf::sync_report> const& r) {
        if (!r) throw command_error{r.error_value().message};
    }

    folder_t* find_open(std::string const& session, std::string const& name) {
        auto& open = sessions_[session];
        auto it = open.find(name);
        return it == open.end() ? nullptr : it->second.get();
    }

    // Opens folder `name` in `session` from its stored state (no sync).
    folder_t& open_folder(std::string const& session, std::string const& name) {
        if (auto* f = find_open(session, name)) return *f;
        auto d = defs_.find(name);
        if (d == defs_.end()) throw command_error{"Mailbox doesn't exist: Virtual/" + name};
        vf::folder_options opt;
        opt.self_name = "Virtual/" + name;
        opt.make_validity = [this](vf::uid_validity previous) { return env_.make_validity(previous); };
        auto f = folder_t::open(d->second, env_.provider(), env_.store(name), opt);
        if (!f) throw command_error{f.error_value().message};
        auto& slot = sessions_[session][name];
        slot = std::make_unique<folder_t>(std::move(*f));
        return *slot;
    }

    // The folder open in the session; opened and synced like SELECT if it was not.
    folder_t& opened(std::string const& session, std::string const& name, bool sync_on_open = true) {
        if (auto* f = find_open(session, name)) return *f;
        auto& f = open_folder(session, name);
        if (sync_on_open) check(f.sync(vf::sync_flags::reopen));
        return f;
    }

    // SELECT: re-open from the stored state (re-reading the definition, re-expanding the
    // patterns) and sync with open semantics (pending removes applied).
    void select(std::string const& session, std::string const& name) {
        sessions_[session].erase(name);
        check(open_folder(session, name).sync(vf::sync_flags::reopen));
    }

    std::string label(std::string const& mailbox, std::uint32_t validity) {
        auto& seen = labels_[mailbox];
        auto it = std::find(seen.begin(), seen.end(), validity);
        if (it == seen.end()) {
            seen.push_back(validity);
            it = seen.end() - 1;
        }
        return "U" + std::to_string(it - seen.begin() + 1);
    }

    void dump(folder_t& f, std::string const& name) {
        auto const st = f.status();
        std::cout << "[dump Virtual/" << name << "] uidvalidity "
                  << label("Virtual/" + name, vf::value(st.validity)) << " uidnext " << vf::value(st.uid_next)
                  << " messages " << st.messages << '\n';
        f.for_each([](vf::folder_message const& m) {
            std::cout << vf::value(m.vuid) << ' ' << m.backend << ' ' << vf::value(m.backend_uid) << ' '
                      << format_flags(m.flags, *m.keywords) << '\n';
        });
    }

    void dump_backend(std::string const& name) {
        auto const d = env_.dump(name);
        std::cout << "[backend " << name << "] uidvalidity " << label(name, d.validity) << " uidnext "
                  << d.uid_next << " messages " << d.rows.size() << '\n';
        for (auto const& m : d.rows)
            std::cout << m.uid << ' ' << format_flags(m.flags, m.keywords) << " received=" << m.received
                      << " mid=" << m.message_id << '\n';
    }

    // Declared first: destroyed after the sessions' folders.
    Env& env_;
    std::map<std::string, vf::folder_definition> defs_;
    std::map<std::string, std::map<std::string, std::unique_ptr<folder_t>>> sessions_;
    std::map<std::string, std::vector<std::uint32_t>> labels_;
};

// A temporary directory, removed (with its content) on destruction.
class temp_dir {
public:
    temp_dir() {
        char const* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/scenario_replay.XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        if (::mkdtemp(buf.data()) == nullptr)
            throw command_error{"cannot create a temporary directory " + tmpl + ": " + std::strerror(errno)};
        path_ = buf.data();
    }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] std::string const& path() const noexcept { return path_; }

private:
    std::string path_;
};

template <class Env>
int run_scenario(Env& env, std::string const& file, bool echo) {
    replay<Env> r(env);
    if (file == "-") {
        r.run(std::cin, echo);
    } else {
        std::ifstream in(file);
        if (!in) {
            std::cerr << "scenario_replay: cannot open " << file << '\n';
            return 2;
        }
        r.run(in, echo);
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    constexpr char const* usage = "usage: scenario_replay [--backend=memory|mmap] [--dir=DIR] [-x] FILE|-\n";
    bool echo = false;
    bool on_disk = false;
    std::string file;
    std::string dir;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-x") {
            echo = true;
        } else if (a.rfind("--backend=", 0) == 0) {
            if (a == "--backend=memory") {
                on_disk = false;
            } else if (a == "--backend=mmap") {
                on_disk = true;
            } else {
                std::cerr << "scenario_replay: unknown backend " << a.substr(10) << " (memory or mmap)\n";
                return 2;
            }
        } else if (a.rfind("--dir=", 0) == 0) {
            dir = std::string(a.substr(6)); // used by the on-disk backend only
            if (dir.empty()) {
                std::cerr << usage;
                return 2;
            }
        } else if (file.empty()) {
            file = std::string(a);
        } else {
            std::cerr << usage;
            return 2;
        }
    }
    if (file.empty()) {
        std::cerr << usage;
        return 2;
    }
    if (!on_disk) {
        memory_env env;
        return run_scenario(env, file, echo);
    }
    try {
        std::optional<temp_dir> tmp;
        if (dir.empty()) dir = tmp.emplace().path();
        int rc = 0;
        {
            mmap_env env(dir);
            rc = run_scenario(env, file, echo);
        } // every file closed before the temporary directory goes
        return rc;
    } catch (command_error const& e) {
        std::cerr << "scenario_replay: " << e.message << '\n';
        return 2;
    } catch (std::exception const& e) { // caught, so the temporary directory is removed
        std::cerr << "scenario_replay: " << e.what() << '\n';
        return 2;
    }
}

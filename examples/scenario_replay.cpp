// scenario_replay: runs a scenario (../shared/SCENARIOS.md) on vfolder's engine over
// memory backends and prints the folders in canonical text, to compare with Dovecot.
//
//   scenario_replay [--backend=memory] [-x] FILE|-
#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
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
using folder_t = vf::folder<vf::memory_provider, vf::memory_store>;

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

class replay {
public:
    replay() {
        (void)world_.create("INBOX");
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
            if (auto r = world_.create(words[1]); !r) throw command_error{r.error_value().message};
        } else if (cmd == "rmbox") {
            need(1);
            if (auto r = world_.remove(words[1]); !r) throw command_error{r.error_value().message};
        } else if (cmd == "append") {
            need(4);
            auto* b = mailbox(words[1]);
            auto t = parse_number(words[2]);
            if (!t || *t < 1) throw command_error{"Invalid received time " + words[2]};
            auto f = parse_flag_list(words[3]);
            std::string const body = "Message-ID: <" + words[4] + ">\r\n\r\n";
            b->append(vf::mail_time{static_cast<std::int64_t>(*t)}, std::move(f), words[4], body.size());
        } else if (cmd == "flag") {
            need(3);
            auto* b = mailbox(words[1]);
            auto u = parse_uid(words[2]);
            auto c = parse_flag_change(words[3]);
            if (!b->find(u)) throw command_error{"No such message"};
            b->modify_flags(u, c.op, c.what.flags);
            if (c.op == vf::modify_op::replace || !c.what.keywords.empty())
                b->modify_keywords(u, c.op, c.what.keywords);
        } else if (cmd == "expunge") {
            need(2);
            auto* b = mailbox(words[1]);
            if (!b->expunge_one(parse_uid(words[2]))) throw command_error{"No such message"};
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
            dump_backend(*mailbox(words[1]));
        } else if (cmd == "restart") {
            need(0);
            sessions_.clear();
        } else if (cmd == "wipe-vindex") {
            need(1);
            for (auto& [s, open] : sessions_) open.erase(words[1]);
            stores_.wipe(words[1]);
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

    vf::memory_mailbox* mailbox(std::string const& name) {
        auto* b = world_.find(name);
        if (!b) throw command_error{"Mailbox doesn't exist: " + name};
        return b;
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
        opt.make_validity = [this](vf::uid_validity) { return vf::uid_validity{++validity_counter_}; };
        auto f = folder_t::open(d->second, vf::memory_provider(world_), vf::memory_store(stores_, name), opt);
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

    void dump_backend(vf::memory_mailbox const& b) {
        std::cout << "[backend " << b.name() << "] uidvalidity " << label(b.name(), vf::value(b.validity()))
                  << " uidnext " << vf::value(b.next_uid()) << " messages " << b.size() << '\n';
        for (auto const& m : b.messages())
            std::cout << vf::value(m.id) << ' ' << format_flags(m.flags, m.keywords)
                      << " received=" << vf::value(m.received) << " mid=" << m.message_id << '\n';
    }

    vf::memory_world world_;
    vf::memory_store_world stores_;
    std::map<std::string, vf::folder_definition> defs_;
    std::map<std::string, std::map<std::string, std::unique_ptr<folder_t>>> sessions_;
    std::map<std::string, std::vector<std::uint32_t>> labels_;
    std::uint32_t validity_counter_ = 1000;
};

} // namespace

int main(int argc, char** argv) {
    bool echo = false;
    std::string file;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-x") {
            echo = true;
        } else if (a.rfind("--backend=", 0) == 0) {
            if (a != "--backend=memory") {
                std::cerr << "scenario_replay: only --backend=memory is available in this build\n";
                return 2;
            }
        } else if (a.rfind("--dir=", 0) == 0) {
            // Used by the on-disk backend only.
        } else if (file.empty()) {
            file = std::string(a);
        } else {
            std::cerr << "usage: scenario_replay [--backend=memory] [-x] FILE|-\n";
            return 2;
        }
    }
    if (file.empty()) {
        std::cerr << "usage: scenario_replay [--backend=memory] [-x] FILE|-\n";
        return 2;
    }
    replay r;
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

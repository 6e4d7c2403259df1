// Tests of vfolder::folder_definition and mailbox_pattern: the dovecot-virtual file format
// (groups, comments, blank lines, tabs, CRLF, prefixes), every error with its line and
// column, pattern matching (`*` and `%` around `/`, literal names, case, a differential
// test against a backtracking matcher, the hostile `*a*a*...` case), expand() ordering and
// exclusion, the code API and the to_text() round trip.
#include <vfolder/mail/definition.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using vfolder::expanded_backend;
using vfolder::folder_definition;
using vfolder::mailbox_pattern;
using vfolder::search_program;

folder_definition def(std::string_view text) {
    auto r = folder_definition::parse(text);
    INFO("definition:\n", text);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error_value().message));
    CHECK(folder_definition::parse(r->to_text()).has_value());
    if (auto back = folder_definition::parse(r->to_text())) CHECK(*back == *r);
    return *r;
}

std::string err(std::string_view text) {
    auto r = folder_definition::parse(text);
    INFO("definition:\n", text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(vfolder::errc::invalid_argument));
    return r.error_value().message;
}

search_program prog(std::string_view text) {
    auto r = search_program::parse(text);
    REQUIRE(r.has_value());
    return *r;
}

mailbox_pattern pat(std::string_view text) {
    auto r = mailbox_pattern::parse(text);
    INFO("pattern: ", text);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error_value().message));
    return *r;
}

// "name:group:pattern:w" for each backend, space-separated, for compact expectations.
std::string show(std::vector<expanded_backend> const& v) {
    std::string s;
    for (auto const& e : v) {
        if (!s.empty()) s += ' ';
        s += e.name + ":" + std::to_string(e.group) + ":" + std::to_string(e.pattern) + (e.wildcard ? ":w" : "");
    }
    return s;
}

} // namespace

TEST_CASE("definition: one group with a program") {
    auto const d = def("INBOX\nWork\nLists*\n  unseen\n");
    REQUIRE(d.groups().size() == 1);
    auto const& g = d.groups()[0];
    REQUIRE(g.patterns.size() == 3);
    CHECK(g.patterns[0].pattern == "INBOX");
    CHECK(g.patterns[1].pattern == "Work");
    CHECK(g.patterns[2].pattern == "Lists*");
    CHECK(g.patterns[2].is_wildcard());
    CHECK_FALSE(g.patterns[0].is_wildcard());
    CHECK(g.program == prog("unseen"));
    CHECK(d.to_text() == "INBOX\nWork\nLists*\n  unseen\n");
    CHECK(d.save_target() == nullptr);
}

TEST_CASE("definition: several groups, comments, blank lines, tabs, CRLF") {
    auto const d = def("# virtual folder: work and lists\n"
                       "\n"
                       "Work\n"
                       "Work/%\n"
                       "\tflagged\n"
                       "\t  or seen\n"
                       "# between program lines\n"
                       "   \t \n"
                       "  keyword $Important\n"
                       "\n"
                       "Lists/*\r\n"
                       "-Lists/spam\r\n"
                       "  since 1-Jan-2020\r\n"
                       "INBOX  \n"
                       " all");
    REQUIRE(d.groups().size() == 3);
    CHECK(d.groups()[0].patterns.size() == 2);
    // Consecutive program lines are one program, joined with a space.
    CHECK(d.groups()[0].program == prog("flagged or seen keyword $Important"));
    CHECK(d.groups()[1].patterns.size() == 2);
    CHECK(d.groups()[1].patterns[1].exclude);
    CHECK(d.groups()[1].patterns[1].pattern == "Lists/spam");
    CHECK(d.groups()[1].program == prog("since 1-Jan-2020"));
    // Trailing whitespace of a pattern line is not part of the name.
    CHECK(d.groups()[2].patterns[0].pattern == "INBOX");
    CHECK(d.groups()[2].program.is_all());
    CHECK(d.to_text() ==
          "Work\nWork/%\n  flagged or seen keyword $Important\nLists/*\n-Lists/spam\n  since 1-Jan-2020\nINBOX\n  all\n");
}

TEST_CASE("definition: a program spanning lines keeps the structure") {
    auto const d = def("Work\n  or\n  seen\n  (flagged\n   draft)\n");
    CHECK(d.groups()[0].program == prog("or seen (flagged draft)"));
}

TEST_CASE("definition: prefixes -, +, ! are attributes") {
    auto const d = def("+INBOX\n!Drafts\n-Trash\n*\n  all\n");
    auto const& ps = d.groups()[0].patterns;
    REQUIRE(ps.size() == 4);
    CHECK(ps[0].pattern == "INBOX");
    CHECK(ps[0].clear_recent);
    CHECK_FALSE(ps[0].exclude);
    CHECK(ps[1].pattern == "Drafts");
    CHECK(ps[1].save_target);
    CHECK(ps[2].pattern == "Trash");
    CHECK(ps[2].exclude);
    CHECK_FALSE(ps[3].exclude);
    REQUIRE(d.save_target() != nullptr);
    CHECK(d.save_target()->pattern == "Drafts");
    CHECK(d.to_text() == "+INBOX\n!Drafts\n-Trash\n*\n  all\n");
    // Only the first character is a prefix (as in Dovecot).
    auto const p = pat("+-x");
    CHECK(p.clear_recent);
    CHECK_FALSE(p.exclude);
    CHECK(p.pattern == "-x");
    CHECK(p.to_text() == "+-x");
    CHECK(pat("--x").pattern == "-x");
    // The save mailbox is a literal name, even with wildcard characters.
    auto const s = pat("!Arch*");
    CHECK(s.save_target);
    CHECK_FALSE(s.is_wildcard());
    CHECK(s.matches("Arch*"));
    CHECK_FALSE(s.matches("Archive"));
}

TEST_CASE("definition: INBOX is case-insensitive, other names are not") {
    CHECK(pat("inbox").pattern == "INBOX");
    CHECK(pat("-InBoX").pattern == "INBOX");
    CHECK(pat("inbox/sub").pattern == "inbox/sub");
    CHECK(pat("Work").matches("Work"));
    CHECK_FALSE(pat("Work").matches("work"));
    CHECK_FALSE(pat("Work").matches("WORK"));
    CHECK_FALSE(pat("W*").matches("work"));
    CHECK(def("inbox\n  all\n").groups()[0].patterns[0].pattern == "INBOX");
}

TEST_CASE("definition: * and % around the hierarchy separator") {
    auto const star = pat("Lists*");
    CHECK(star.matches("Lists"));
    CHECK(star.matches("Lists/dev"));
    CHECK(star.matches("Lists/dev/old"));
    CHECK(star.matches("ListsX"));
    CHECK_FALSE(star.matches("List"));
    CHECK_FALSE(star.matches("lists"));
    CHECK_FALSE(star.matches("My/Lists"));

    auto const pct = pat("Lists/%");
    CHECK(pct.matches("Lists/dev"));
    CHECK(pct.matches("Lists/"));
    CHECK_FALSE(pct.matches("Lists/dev/old"));
    CHECK_FALSE(pct.matches("Lists"));

    CHECK(pat("%").matches("INBOX"));
    CHECK_FALSE(pat("%").matches("a/b"));
    CHECK(pat("%").matches(""));
    CHECK(pat("*").matches("a/b/c"));
    CHECK(pat("*").matches(""));
    CHECK(pat("%/%").matches("a/b"));
    CHECK_FALSE(pat("%/%").matches("a/b/c"));
    CHECK(pat("*/%").matches("a/b/c"));
    CHECK_FALSE(pat("*/%").matches("abc"));
    CHECK(pat("a%b").matches("axxb"));
    CHECK_FALSE(pat("a%b").matches("ax/xb"));
    CHECK(pat("a*b").matches("ax/xb"));
    CHECK(pat("%a*").matches("xa/y"));
    CHECK_FALSE(pat("%a*").matches("x/a"));
    CHECK(pat("*a%").matches("x/ab"));
    CHECK_FALSE(pat("*a%").matches("ab/x"));
    CHECK(pat("Work/*/Old").matches("Work/x/y/Old"));
    CHECK_FALSE(pat("Work/*/Old").matches("Work/Old"));
    // Literal names match only themselves.
    CHECK(pat("Lists/dev").matches("Lists/dev"));
    CHECK_FALSE(pat("Lists/dev").matches("Lists/dev/x"));
    CHECK_FALSE(pat("Lists/dev").matches("Lists/de"));
    // Non-ASCII names.
    CHECK(pat("Caf\xc3\xa9/%").matches("Caf\xc3\xa9/x"));
}

namespace {

// The textbook backtracking matcher: exponential at worst, obviously right.
bool naive_match(std::string_view p, std::string_view n) {
    if (p.empty()) return n.empty();
    if (p[0] == '*') {
        for (std::size_t k = 0; k <= n.size(); ++k)
            if (naive_match(p.substr(1), n.substr(k))) return true;
        return false;
    }
    if (p[0] == '%') {
        for (std::size_t k = 0; k <= n.size(); ++k) {
            if (naive_match(p.substr(1), n.substr(k))) return true;
            if (k < n.size() && n[k] == '/') break;
        }
        return false;
    }
    return !n.empty() && n[0] == p[0] && naive_match(p.substr(1), n.substr(1));
}

} // namespace

TEST_CASE("definition: pattern matching agrees with a backtracking matcher") {
    std::mt19937 rng(12345);
    auto const gen = [&](std::string_view alphabet, std::size_t max_len) {
        std::string s(std::uniform_int_distribution<std::size_t>(0, max_len)(rng), 'a');
        for (char& c : s) c = alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
        return s;
    };
    for (int i = 0; i < 20000; ++i) {
        std::string const p = gen("ab/*%", 7);
        std::string const n = gen("ab/", 9);
        INFO("pattern '", p, "' name '", n, "'");
        CHECK(vfolder::detail::glob_match(p, n) == naive_match(p, n));
    }
}

TEST_CASE("definition: hostile wildcard patterns run in polynomial time") {
    std::string p;
    for (int i = 0; i < 40; ++i) p += "*a";
    p += "*b";
    std::string const name(20000, 'a');
    auto const t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(pat(p).matches(name));
    CHECK(pat(p).matches(name + "b"));
    std::string q;
    for (int i = 0; i < 40; ++i) q += "%a";
    q += "%b";
    CHECK_FALSE(pat(q).matches(name));
    CHECK(pat(q).matches(name + "b"));
    CHECK_FALSE(pat(q).matches(name + "/b"));
    auto const ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    CHECK(ms.count() < 5000); // the backtracking matcher would not finish at all
}

TEST_CASE("definition: expand orders named backends first, then wildcard matches by name") {
    auto const d = def("Work\nINBOX\nLists*\n  all\n");
    std::vector<std::string> const names = {"Lists/b", "Other", "INBOX", "Lists/a", "Work", "Lists"};
    CHECK(show(d.expand(names)) == "Work:0:0 INBOX:0:1 Lists:0:2:w Lists/a:0:2:w Lists/b:0:2:w");
    // The World at start of SCENARIOS.md: INBOX Work Lists*.
    auto const world = folder_definition::make({"INBOX", "Work", "Lists*"}, "all");
    REQUIRE(world.has_value());
    CHECK(show(world->expand({"INBOX"})) == "INBOX:0:0");
    CHECK(show(world->expand({"Lists/dev", "Work", "INBOX"})) == "INBOX:0:0 Work:0:1 Lists/dev:0:2:w");
}

TEST_CASE("definition: expand skips missing names, duplicates and self") {
    auto const d = def("Work\nGone\nWork\n*\n  all\n");
    CHECK(show(d.expand({"b", "Work", "a", "a", "Work"})) == "Work:0:0 a:0:3:w b:0:3:w");
    CHECK(show(d.expand({"Virtual/All", "Work"}, "Virtual/All")) == "Work:0:0");
    CHECK(show(d.expand(std::vector<std::string>{})).empty());
    CHECK(folder_definition().expand({"a"}).empty());
}

TEST_CASE("definition: expand exclusions filter wildcard matches") {
    auto const d = def("Lists/*\n-Lists/spam\n-Lists/old/*\n  unseen\n");
    CHECK(show(d.expand({"Lists/spam", "Lists/dev", "Lists/old/x", "Lists/old", "Lists/spam/x"})) ==
          "Lists/dev:0:0:w Lists/old:0:0:w Lists/spam/x:0:0:w");
    // Excludes apply across groups, whatever their position.
    auto const d2 = def("-Trash\nINBOX\n  all\n*\n  seen\n");
    CHECK(show(d2.expand({"Trash", "INBOX", "Sent"})) == "INBOX:0:1 Sent:1:0:w");
    // As in Dovecot, a name written explicitly is kept even if an exclude matches it.
    auto const d3 = def("Work\n-Work\n*\n  all\n");
    CHECK(show(d3.expand({"Work", "Other"})) == "Work:0:0 Other:0:2:w");
    // Only excludes: nothing.
    CHECK(def("-*\n  all\n").expand({"a", "b"}).empty());
}

TEST_CASE("definition: expand attributes each backend to its group") {
    auto const d = def("INBOX\n  unseen\nLists/%\n  flagged\nLists/*\nWork\n  all\n");
    auto const v = d.expand({"Lists/a/b", "Lists/a", "Work", "INBOX", "INBOX"});
    CHECK(show(v) == "INBOX:0:0 Work:2:1 Lists/a:1:0:w Lists/a/b:2:0:w");
    REQUIRE(v.size() == 4);
    CHECK(d.groups()[v[2].group].program == prog("flagged"));
    CHECK(d.groups()[v[3].group].program.is_all());
    // A name both written and wildcard-matched keeps its written place and group.
    auto const d2 = def("*\n  seen\nWork\n  flagged\n");
    CHECK(show(d2.expand({"b", "Work", "a"})) == "Work:1:0 a:0:0:w b:0:0:w");
}

TEST_CASE("definition: malformed files name the line and column") {
    CHECK(err("") == "line 1, column 1: no mailboxes defined");
    CHECK(err("# only a comment\n\n") == "line 3, column 1: no mailboxes defined");
    CHECK(err("  all\nINBOX\n") == "line 1, column 3: search program line before any mailbox pattern");
    CHECK(err("# x\n\n\tall\n") == "line 3, column 2: search program line before any mailbox pattern");
    CHECK(err("INBOX\n") == "line 1, column 1: mailbox pattern without a search program "
                            "(expected an indented program line)");
    CHECK(err("INBOX\n  all\nWork\nLists*\n\n") ==
          "line 4, column 1: mailbox pattern without a search program (expected an indented program line)");
    CHECK(err("INBOX\n  seen foo\n") == "line 2, column 8: unknown search key 'foo'");
    CHECK(err("INBOX\n  seen\n\t  foo\n") == "line 3, column 4: unknown search key 'foo'");
    CHECK(err("INBOX\n  seen\n  bar\nWork\n  all\n") == "line 3, column 3: unknown search key 'bar'");
    CHECK(err("INBOX\n  (seen\n  flagged\n") == "line 2, column 3: unbalanced '('");
    CHECK(err("INBOX\n  seen\n  larger\n") == "line 3, column 3: missing argument of 'larger'");
    CHECK(err("INBOX\n  since 30-Feb-2020\n") == "line 2, column 9: invalid date '30-Feb-2020'");
    CHECK(err("INBOX\n  seen )\n") == "line 2, column 8: unexpected ')'");
    CHECK(err("INBOX\r\n  keyword \"a\r\n") == "line 2, column 11: unterminated quoted string");
    CHECK(err("-\n  all\n") == "line 1, column 2: empty mailbox pattern after '-'");
    CHECK(err("!\n  all\n") == "line 1, column 2: empty mailbox pattern after '!'");
    CHECK(err("- Work\n  all\n") == "line 1, column 2: mailbox pattern starts with whitespace");
    CHECK(err("INBOX\n/private/x:y\n  all\n") ==
          "line 2, column 1: metadata entries ('/...') are not supported");
    CHECK(err("-/x:y\n  all\n") == "line 1, column 2: metadata entries ('/...') are not supported");
    CHECK(err("!A\n  all\n!B\n  all\n") == "line 3, column 1: more than one save mailbox ('!')");
    CHECK(err("Caf\xe9\n  all\n") == "line 1, column 4: mailbox pattern is not valid UTF-8");
    CHECK(err("a\xc0\x80\n  all\n") == "line 1, column 2: mailbox pattern is not valid UTF-8");
    CHECK(err("a\xed\xa0\x80\n  all\n") == "line 1, column 2: mailbox pattern is not valid UTF-8");
    CHECK(err("Wo\trk\n  all\n") == "line 1, column 3: invalid character 0x09 in mailbox pattern");
    CHECK(err("Wo\rrk\n  all\n") == "line 1, column 3: invalid character 0x0D in mailbox pattern");
    // A nesting error deep in a file.
    CHECK(err("INBOX\n  " + std::string(300, '(') + "\n").rfind("line 2, column 260: search program nested too deeply", 0) == 0);
    // The first error in file order wins.
    CHECK(err("INBOX\n  foo\n-\n") == "line 2, column 3: unknown search key 'foo'");
}

TEST_CASE("definition: mailbox_pattern::parse errors") {
    auto const e = [](std::string_view t) {
        auto r = mailbox_pattern::parse(t);
        REQUIRE_FALSE(r.has_value());
        return r.error_value().message;
    };
    CHECK(e("") == "column 1: empty mailbox pattern");
    CHECK(e(" Work") == "column 1: mailbox pattern starts with whitespace");
    CHECK(e("Work ") == "column 5: mailbox pattern ends with whitespace");
    CHECK(e("#x") == "column 1: a mailbox pattern cannot start with '#' (a comment line)");
    CHECK(pat("+#x").pattern == "#x");
    CHECK(pat("Work ing").pattern == "Work ing");
}

TEST_CASE("definition: code API") {
    folder_definition d;
    CHECK(d.empty());
    REQUIRE(d.add_group({"INBOX", "-Spam", "Lists/*"}, "unseen").has_value());
    REQUIRE(d.add_group(std::vector<mailbox_pattern>{pat("!Sent")}, prog("all")).has_value());
    std::vector<std::string> const more = {"Work"};
    REQUIRE(d.add_group(more, "or flagged seen").has_value());
    CHECK(d.groups().size() == 3);
    CHECK(d.to_text() == "INBOX\n-Spam\nLists/*\n  unseen\n!Sent\n  all\nWork\n  or flagged seen\n");
    auto const back = folder_definition::parse(d.to_text());
    REQUIRE(back.has_value());
    CHECK(*back == d);

    auto const msg = [&](auto r) {
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error_value().is(vfolder::errc::invalid_argument));
        return r.error_value().message;
    };
    folder_definition const before = d;
    CHECK(msg(d.add_group(std::vector<mailbox_pattern>{}, prog("all"))) ==
          "a group needs at least one mailbox pattern");
    CHECK(msg(d.add_group({"!Drafts"}, "all")) == "pattern 1: more than one save mailbox ('!')");
    CHECK(msg(d.add_group({"ok", "-"}, "all")) == "pattern 2: column 2: empty mailbox pattern after '-'");
    CHECK(msg(d.add_group({"ok"}, "foo")) == "search program: unknown search key 'foo' at position 1");
    CHECK(msg(d.add_group(std::vector<mailbox_pattern>{{"-x", false, false, false}}, prog("all"))) ==
          "pattern 1: '-x' starts with a prefix character; set the attribute instead");
    CHECK(msg(d.add_group(std::vector<mailbox_pattern>{{"x", true, false, true}}, prog("all"))) ==
          "pattern 1: at most one of exclude, save_target, clear_recent can be set");
    CHECK(msg(d.add_group(std::vector<mailbox_pattern>{{"a\nb", false, false, false}}, prog("all"))) ==
          "pattern 1: column 2: invalid character 0x0A in mailbox pattern");
    CHECK(msg(d.add_group(std::vector<mailbox_pattern>{{"", false, false, false}}, prog("all"))) ==
          "pattern 1: column 1: empty mailbox pattern");
    CHECK(d == before); // failed adds change nothing

    // INBOX in any case is stored as INBOX.
    folder_definition i;
    REQUIRE(i.add_group(std::vector<mailbox_pattern>{{"inbox", false, false, false}}, prog("all")).has_value());
    CHECK(i.groups()[0].patterns[0].pattern == "INBOX");

    auto const m = folder_definition::make({"INBOX", "Work", "Lists*"}, "unseen");
    REQUIRE(m.has_value());
    CHECK(m->to_text() == "INBOX\nWork\nLists*\n  unseen\n");
    CHECK(msg(folder_definition::make({"INBOX"}, "")) == "search program: empty search program");
}

TEST_CASE("definition: to_text round trip keeps groups and programs") {
    auto const d = def("+INBOX\n!Drafts\n  or (seen flagged) (keyword \"$x\" since 01-feb-2020)\n"
                       "Lists/%\n-Lists/spam\n  NOT larger 100\n");
    CHECK(d.to_text() ==
          "+INBOX\n!Drafts\n  or (seen flagged) (keyword $x since 1-Feb-2020)\nLists/%\n-Lists/spam\n  not larger 100\n");
    CHECK(def(d.to_text()) == d);
    CHECK_FALSE(d == def("INBOX\n  all\n"));
}

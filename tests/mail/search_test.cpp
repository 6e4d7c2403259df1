// Tests of vfolder::search_program: every key and its negation, dates at the edges of UTC
// days, size boundaries, not/or/and/parentheses, case-insensitivity, the canonical text
// (fixed cases and a randomized round trip checked against a naive evaluator), every
// parse error with its position, the nesting limit, and the dependency queries.
#include <vfolder/mail/search.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using vfolder::flag_set;
using vfolder::keyword_set;
using vfolder::mail_time;
using vfolder::message_meta;
using vfolder::search_key;
using vfolder::search_program;
using vfolder::system_flag;

constexpr std::int64_t day_s = 86400;
// 2020-02-01T00:00:00Z, checked against Python's calendar.timegm.
constexpr std::int64_t feb1_2020 = 1580515200;

search_program prog(std::string_view text) {
    auto r = search_program::parse(text);
    INFO("program: ", text);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error_value().message));
    return *r;
}

std::string err(std::string_view text) {
    auto r = search_program::parse(text);
    INFO("program: ", text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error_value().is(vfolder::errc::invalid_argument));
    return r.error_value().message;
}

message_meta meta(flag_set f = {}, keyword_set const* k = nullptr, std::int64_t t = feb1_2020,
                  std::uint64_t size = 1000) {
    return message_meta{f, k, mail_time{t}, size};
}

bool match(std::string_view text, message_meta const& m) { return prog(text).matches(m); }

} // namespace

TEST_CASE("search: all matches everything") {
    CHECK(match("all", meta()));
    CHECK(match("ALL", meta(system_flag::seen | system_flag::deleted)));
    CHECK(search_program().matches(meta()));
    CHECK(search_program::all() == prog("all"));
    CHECK(search_program().to_string() == "all");
}

TEST_CASE("search: each flag key and its negation") {
    struct row {
        char const* key;
        char const* neg;
        system_flag flag;
    };
    row const rows[] = {{"seen", "unseen", system_flag::seen},
                        {"answered", "unanswered", system_flag::answered},
                        {"flagged", "unflagged", system_flag::flagged},
                        {"deleted", "undeleted", system_flag::deleted},
                        {"draft", "undraft", system_flag::draft}};
    for (auto const& r : rows) {
        INFO(r.key);
        flag_set const others = flag_set::from_bits(0x3f) - r.flag;
        CHECK(match(r.key, meta(r.flag)));
        CHECK(match(r.key, meta(flag_set::from_bits(0x3f))));
        CHECK_FALSE(match(r.key, meta()));
        CHECK_FALSE(match(r.key, meta(others)));
        CHECK_FALSE(match(r.neg, meta(r.flag)));
        CHECK(match(r.neg, meta()));
        CHECK(match(r.neg, meta(others)));
        CHECK(prog(r.key).depends_on_flags());
        CHECK(prog(r.neg).depends_on_flags());
        CHECK_FALSE(prog(r.key).depends_on_keywords());
    }
    // \Recent is not a key of the subset and is never looked at.
    CHECK_FALSE(match("seen", meta(system_flag::recent)));
    CHECK(err("recent") == "unknown search key 'recent' at position 1");
    CHECK(err("new") == "unknown search key 'new' at position 1");
}

TEST_CASE("search: keyword and unkeyword") {
    keyword_set const kws{"$Work", "Later"};
    keyword_set const none;
    CHECK(match("keyword $Work", meta({}, &kws)));
    CHECK(match("keyword Later", meta({}, &kws)));
    CHECK_FALSE(match("keyword $Other", meta({}, &kws)));
    CHECK_FALSE(match("keyword $Work", meta({}, &none)));
    CHECK_FALSE(match("keyword $Work", meta({}, nullptr))); // null = no keywords
    CHECK_FALSE(match("unkeyword $Work", meta({}, &kws)));
    CHECK(match("unkeyword $Other", meta({}, &kws)));
    CHECK(match("unkeyword $Work", meta({}, nullptr)));
    // Keyword names compare exactly; the key itself is case-insensitive.
    CHECK_FALSE(match("keyword $work", meta({}, &kws)));
    CHECK(match("KEYWORD $Work", meta({}, &kws)));
    CHECK(match("UnKeyword $work", meta({}, &kws)));
    // Quoted keyword names are accepted and print as atoms.
    CHECK(match("keyword \"$Work\"", meta({}, &kws)));
    CHECK(prog("keyword \"$Work\"") == prog("keyword $Work"));
    CHECK(prog("keyword \"$Work\"").to_string() == "keyword $Work");
    // A keyword that looks like a key is just a name.
    CHECK(prog("keyword seen").to_string() == "keyword seen");
    CHECK_FALSE(prog("keyword seen").depends_on_flags());
    CHECK(prog("keyword x").depends_on_keywords());
    CHECK(prog("unkeyword x").depends_on_keywords());
    CHECK_FALSE(prog("keyword x").depends_on_flags());
    CHECK(prog("keyword x").depends_on_flags_or_keywords());
    REQUIRE(prog("keyword a unkeyword b").keywords().size() == 2);
    CHECK(prog("keyword a unkeyword b").keywords()[1] == "b");
}

TEST_CASE("search: invalid keywords") {
    CHECK(err("keyword \\Seen") == "invalid keyword '\\Seen' at position 9");
    CHECK(err("keyword a*b") == "invalid keyword 'a*b' at position 9");
    CHECK(err("keyword a%") == "invalid keyword 'a%' at position 9");
    CHECK(err("keyword a]") == "invalid keyword 'a]' at position 9");
    CHECK(err("keyword a{3}") == "invalid keyword 'a{3}' at position 9");
    CHECK(err("keyword \"a b\"") == "invalid keyword 'a b' at position 9");
    CHECK(err("keyword \"\"") == "invalid keyword '' at position 9");
    CHECK(err("keyword caf\xc3\xa9") == "invalid keyword 'caf\xc3\xa9' at position 9");
    CHECK(err("keyword") == "missing argument of 'keyword' at position 1");
    CHECK(err("seen unkeyword") == "missing argument of 'unkeyword' at position 6");
    CHECK(err("(keyword)") == "missing argument of 'keyword' at position 2");
}

TEST_CASE("search: since, before, on at the edges of the UTC day") {
    std::int64_t const start = feb1_2020;          // 1-Feb-2020 00:00:00
    std::int64_t const last = feb1_2020 + day_s - 1; // 1-Feb-2020 23:59:59
    std::int64_t const prev = feb1_2020 - 1;        // 31-Jan-2020 23:59:59
    std::int64_t const next = feb1_2020 + day_s;    // 2-Feb-2020 00:00:00
    auto at = [](std::int64_t t) { return meta({}, nullptr, t); };

    CHECK(match("on 1-Feb-2020", at(start)));
    CHECK(match("on 1-Feb-2020", at(last)));
    CHECK_FALSE(match("on 1-Feb-2020", at(prev)));
    CHECK_FALSE(match("on 1-Feb-2020", at(next)));

    CHECK(match("since 1-Feb-2020", at(start)));
    CHECK(match("since 1-Feb-2020", at(last)));
    CHECK(match("since 1-Feb-2020", at(next)));
    CHECK_FALSE(match("since 1-Feb-2020", at(prev)));

    CHECK_FALSE(match("before 1-Feb-2020", at(start)));
    CHECK_FALSE(match("before 1-Feb-2020", at(last)));
    CHECK(match("before 1-Feb-2020", at(prev)));
    CHECK(match("before 2-Feb-2020", at(last)));
    CHECK_FALSE(match("before 2-Feb-2020", at(next)));

    // Times before the epoch cut to their day by floor division.
    CHECK(match("on 31-Dec-1969", at(-1)));
    CHECK(match("on 31-Dec-1969", at(-day_s)));
    CHECK_FALSE(match("on 31-Dec-1969", at(-day_s - 1)));
    CHECK(match("on 1-Jan-1970", at(0)));
    CHECK(match("before 1-Jan-1970", at(-1)));
    CHECK_FALSE(match("before 1-Jan-1970", at(0)));

    // Leap day and month ends.
    CHECK(match("on 29-Feb-2020", at(1582934400)));
    CHECK(match("on 1-Mar-2020", at(1583020800)));
    CHECK(match("on 1-Mar-2000", at(951868800)));
    CHECK_FALSE(prog("since 1-Feb-2020").depends_on_flags_or_keywords());
}

TEST_CASE("search: date forms") {
    CHECK(prog("on 01-Feb-2020") == prog("on 1-Feb-2020"));
    CHECK(prog("on 1-FEB-2020") == prog("on 1-feb-2020"));
    CHECK(prog("ON \"1-Feb-2020\"") == prog("on 1-Feb-2020"));
    CHECK(prog("on 01-fEb-2020").to_string() == "on 1-Feb-2020");
    CHECK(prog("since 31-Dec-2020").to_string() == "since 31-Dec-2020");
    CHECK(prog("before 9-Sep-0999").to_string() == "before 9-Sep-0999");
    CHECK(prog("on 29-Feb-2000").to_string() == "on 29-Feb-2000");
    char const* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int m = 0; m < 12; ++m) {
        std::string const t = std::string("on 1-") + months[m] + "-2021";
        CHECK(prog(t).to_string() == t);
        auto const expect = std::chrono::sys_days{std::chrono::year{2021} / (m + 1) / 1}.time_since_epoch().count();
        CHECK(prog(t).nodes()[0].day == expect);
    }
}

TEST_CASE("search: invalid dates") {
    CHECK(err("since 31-Foo-2020") == "invalid date '31-Foo-2020' at position 7");
    CHECK(err("since 30-Feb-2020") == "invalid date '30-Feb-2020' at position 7");
    CHECK(err("since 29-Feb-2021") == "invalid date '29-Feb-2021' at position 7");
    CHECK(err("since 29-Feb-1900") == "invalid date '29-Feb-1900' at position 7");
    CHECK(err("since 31-Apr-2020") == "invalid date '31-Apr-2020' at position 7");
    CHECK(err("since 0-Jan-2020") == "invalid date '0-Jan-2020' at position 7");
    CHECK(err("since 00-Jan-2020") == "invalid date '00-Jan-2020' at position 7");
    CHECK(err("since 32-Jan-2020") == "invalid date '32-Jan-2020' at position 7");
    CHECK(err("since 001-Jan-2020") == "invalid date '001-Jan-2020' at position 7");
    CHECK(err("since 1-Jan-20") == "invalid date '1-Jan-20' at position 7");
    CHECK(err("since 1-Jan-020") == "invalid date '1-Jan-020' at position 7");
    CHECK(err("since 1-Jan-20200") == "invalid date '1-Jan-20200' at position 7");
    CHECK(err("since 1-January-2020") == "invalid date '1-January-2020' at position 7");
    CHECK(err("since 1-Jan-2O20") == "invalid date '1-Jan-2O20' at position 7");
    CHECK(err("since 1/Jan/2020") == "invalid date '1/Jan/2020' at position 7");
    CHECK(err("since 2020-01-01") == "invalid date '2020-01-01' at position 7");
    CHECK(err("since -Jan-2020") == "invalid date '-Jan-2020' at position 7");
    CHECK(err("since \" 1-Jan-2020\"") == "invalid date ' 1-Jan-2020' at position 7");
    CHECK(err("since") == "missing argument of 'since' at position 1");
    CHECK(err("seen before") == "missing argument of 'before' at position 6");
    CHECK(err("not on )") == "missing argument of 'on' at position 5");
}

TEST_CASE("search: larger and smaller are strict") {
    auto sized = [](std::uint64_t s) { return meta({}, nullptr, feb1_2020, s); };
    CHECK(match("larger 100", sized(101)));
    CHECK_FALSE(match("larger 100", sized(100)));
    CHECK_FALSE(match("larger 100", sized(99)));
    CHECK(match("smaller 100", sized(99)));
    CHECK_FALSE(match("smaller 100", sized(100)));
    CHECK_FALSE(match("smaller 100", sized(101)));
    CHECK(match("larger 0", sized(1)));
    CHECK_FALSE(match("larger 0", sized(0)));
    CHECK_FALSE(match("smaller 0", sized(0)));
    CHECK(match("smaller 18446744073709551615", sized(18446744073709551614ull)));
    CHECK_FALSE(match("larger 18446744073709551615", sized(18446744073709551615ull)));
    CHECK(prog("larger 007").to_string() == "larger 7");
    CHECK(err("larger 18446744073709551616") == "invalid number '18446744073709551616' at position 8");
    CHECK(err("larger -1") == "invalid number '-1' at position 8");
    CHECK(err("larger 1k") == "invalid number '1k' at position 8");
    CHECK(err("smaller \"10\"") == "invalid number '\"10\"' at position 9");
    CHECK(err("unseen larger") == "missing argument of 'larger' at position 8");
    CHECK(err("smaller (seen)") == "missing argument of 'smaller' at position 1");
}

TEST_CASE("search: not, or, implicit and, parentheses") {
    auto const s = meta(system_flag::seen);
    auto const f = meta(system_flag::flagged);
    auto const sf = meta(system_flag::seen | system_flag::flagged);
    auto const none = meta();

    CHECK(match("not seen", f));
    CHECK_FALSE(match("not seen", s));
    CHECK(match("not not seen", s));

    CHECK(match("or seen flagged", s));
    CHECK(match("or seen flagged", f));
    CHECK_FALSE(match("or seen flagged", none));

    CHECK(match("seen flagged", sf));
    CHECK_FALSE(match("seen flagged", s));
    CHECK_FALSE(match("seen flagged", f));

    CHECK(match("not (seen flagged)", s));
    CHECK_FALSE(match("not (seen flagged)", sf));
    CHECK(match("not seen flagged", f)); // (not seen) and flagged
    CHECK_FALSE(match("not seen flagged", none));

    CHECK(match("or (seen flagged) draft", sf));
    CHECK_FALSE(match("or (seen flagged) draft", s));
    CHECK(match("or (seen flagged) draft", meta(system_flag::draft)));

    // or binds exactly two keys; the rest is ANDed.
    CHECK(match("or seen flagged draft", meta(system_flag::seen | system_flag::draft)));
    CHECK_FALSE(match("or seen flagged draft", s));
    CHECK(match("or seen or flagged draft", meta(system_flag::draft)));
    CHECK(match("or or seen flagged draft", f));

    CHECK(match("((seen))", s));
    CHECK(match("(seen) (flagged)", sf));
    CHECK_FALSE(match("(seen) (flagged)", s));
    CHECK(match("not (or seen flagged)", none));
    CHECK_FALSE(match("not (or seen flagged)", f));

    keyword_set const kws{"$a"};
    auto const mixed = meta(system_flag::answered, &kws, feb1_2020, 5000);
    CHECK(match("answered keyword $a since 1-Feb-2020 larger 4999 smaller 5001", mixed));
    CHECK_FALSE(match("answered keyword $a since 2-Feb-2020 larger 4999", mixed));
    CHECK(match("or (unanswered larger 1) (keyword $a not before 1-Feb-2020)", mixed));
}

TEST_CASE("search: keys are case-insensitive and whitespace is free") {
    CHECK(prog("SEEN") == prog("seen"));
    CHECK(prog("UnSeen") == prog("unseen"));
    CHECK(prog("OR Seen FLAGGED") == prog("or seen flagged"));
    CHECK(prog("NOT deleted") == prog("not deleted"));
    CHECK(prog("Since 1-Feb-2020 LARGER 3") == prog("since 1-Feb-2020 larger 3"));
    CHECK(prog("  seen\t\tflagged  ") == prog("seen flagged"));
    CHECK(prog("(seen)flagged") == prog("seen flagged"));
    CHECK(prog("( seen ( flagged ) )") == prog("seen flagged"));
    CHECK(prog("or(seen)(flagged)") == prog("or seen flagged"));
}

TEST_CASE("search: canonical text") {
    struct row {
        char const* in;
        char const* out;
    };
    row const rows[] = {
        {"seen", "seen"},
        {"(seen)", "seen"},
        {"((((seen))))", "seen"},
        {"SEEN  FLAGGED", "seen flagged"},
        {"seen (flagged (draft deleted))", "seen flagged draft deleted"},
        {"not (seen flagged)", "not (seen flagged)"},
        {"not ((seen) (flagged))", "not (seen flagged)"},
        {"not (seen)", "not seen"},
        {"or (seen) ((flagged draft))", "or seen (flagged draft)"},
        {"or seen or flagged draft", "or seen or flagged draft"},
        {"NOT NOT all", "not not all"},
        {"keyword $Work unkeyword \"Later\"", "keyword $Work unkeyword Later"},
        {"since 01-jan-2020 before \"2-FEB-2021\" on 3-Mar-2022", "since 1-Jan-2020 before 2-Feb-2021 on 3-Mar-2022"},
        {"larger 0010 smaller 20", "larger 10 smaller 20"},
        {"or (not seen larger 5) (keyword k)", "or (not seen larger 5) keyword k"},
    };
    for (auto const& r : rows) {
        INFO(r.in);
        auto const p = prog(r.in);
        CHECK(p.to_string() == r.out);
        CHECK(prog(p.to_string()) == p);
        CHECK(prog(p.to_string()).to_string() == r.out);
    }
}

TEST_CASE("search: tree shape (prefix order, subtree sizes, and-flattening)") {
    auto const p = prog("seen (flagged not draft) or deleted answered");
    auto const n = p.nodes();
    // and(seen, flagged, not(draft), or(deleted, answered))
    REQUIRE(n.size() == 8);
    CHECK(n[0].key == search_key::op_and);
    CHECK(n[0].subtree == 8);
    CHECK(n[1].key == search_key::seen);
    CHECK(n[2].key == search_key::flagged);
    CHECK(n[3].key == search_key::op_not);
    CHECK(n[3].subtree == 2);
    CHECK(n[4].key == search_key::draft);
    CHECK(n[5].key == search_key::op_or);
    CHECK(n[5].subtree == 3);
    CHECK(n[6].key == search_key::deleted);
    CHECK(n[7].key == search_key::answered);
    CHECK(prog("seen").nodes().size() == 1);
    CHECK(search_program().nodes().size() == 1);
    CHECK(search_program().nodes()[0].key == search_key::all);
    CHECK(vfolder::key_name(search_key::op_not) == "not");
    CHECK(vfolder::key_name(search_key::op_and).empty());
}

TEST_CASE("search: equality and copies") {
    auto const a = prog("seen flagged");
    auto const b = a; // shares the tree
    CHECK(a == b);
    CHECK(a == prog("SEEN (flagged)"));
    CHECK_FALSE(a == prog("flagged seen")); // structural, not semantic
    CHECK_FALSE(a == prog("seen"));
    CHECK_FALSE(prog("keyword a") == prog("keyword b"));
    CHECK_FALSE(prog("keyword a") == prog("unkeyword a"));
    CHECK_FALSE(prog("larger 1") == prog("larger 2"));
    CHECK_FALSE(prog("on 1-Jan-2020") == prog("on 2-Jan-2020"));
    CHECK_FALSE(prog("on 1-Jan-2020") == prog("since 1-Jan-2020"));
    CHECK_FALSE(prog("all") == prog("all all"));
    search_program c;
    c = a;
    CHECK(c == a);
    CHECK(c.matches(meta(system_flag::seen | system_flag::flagged)));
}

TEST_CASE("search: is_all") {
    CHECK(search_program().is_all());
    CHECK(prog("all").is_all());
    CHECK(prog("ALL all").is_all());
    CHECK(prog("(all) (all)").is_all());
    CHECK(prog("or all seen").is_all());
    CHECK(prog("or seen all").is_all());
    CHECK(prog("not not all").is_all());
    CHECK(prog("not (not all seen)").is_all());
    CHECK_FALSE(prog("not all").is_all());
    CHECK_FALSE(prog("seen").is_all());
    CHECK_FALSE(prog("all seen").is_all());
    CHECK_FALSE(prog("or seen unseen").is_all()); // a tautology, but not structurally
    CHECK_FALSE(prog("larger 0").is_all());
}

TEST_CASE("search: depends_on_flags and depends_on_keywords") {
    CHECK_FALSE(search_program().depends_on_flags());
    CHECK_FALSE(search_program().depends_on_keywords());
    CHECK_FALSE(prog("all").depends_on_flags());
    CHECK_FALSE(prog("since 1-Jan-2020 larger 10 smaller 20 not on 2-Jan-2020").depends_on_flags_or_keywords());
    CHECK(prog("not (larger 10 or all seen)").depends_on_flags());
    CHECK_FALSE(prog("not (larger 10 or all seen)").depends_on_keywords());
    CHECK(prog("or larger 10 (since 1-Jan-2020 keyword k)").depends_on_keywords());
    CHECK_FALSE(prog("or larger 10 (since 1-Jan-2020 keyword k)").depends_on_flags());
    CHECK(prog("undraft keyword k").depends_on_flags());
    CHECK(prog("undraft keyword k").depends_on_keywords());
}

TEST_CASE("search: malformed programs name the position") {
    CHECK(err("") == "empty search program");
    CHECK(err("   \t ") == "empty search program");
    CHECK(err("foo") == "unknown search key 'foo' at position 1");
    CHECK(err("seen  foo") == "unknown search key 'foo' at position 7");
    CHECK(err("seen\tfoo") == "unknown search key 'foo' at position 6");
    CHECK(err("seen ) flagged") == "unexpected ')' at position 6");
    CHECK(err("(seen))") == "unexpected ')' at position 7");
    CHECK(err(")") == "unexpected ')' at position 1");
    CHECK(err("(seen") == "unbalanced '(' at position 1");
    CHECK(err("seen (flagged (draft)") == "unbalanced '(' at position 6");
    CHECK(err("()") == "empty parenthesised list at position 1");
    CHECK(err("seen ( )") == "empty parenthesised list at position 6");
    CHECK(err("not") == "missing argument of 'not' at position 1");
    CHECK(err("seen not") == "missing argument of 'not' at position 6");
    CHECK(err("(not)") == "missing argument of 'not' at position 2");
    CHECK(err("or") == "missing argument of 'or' at position 1");
    CHECK(err("or seen") == "missing argument of 'or' at position 1");
    CHECK(err("(or seen) flagged") == "missing argument of 'or' at position 2");
    CHECK(err("\"seen\"") == "expected a search key, found a quoted string at position 1");
    CHECK(err("keyword \"abc") == "unterminated quoted string at position 9");
    CHECK(err("keyword \"a\\b\"") == "invalid escape in quoted string at position 11");
    CHECK(err("seen\nflagged") == "invalid character 0x0A at position 5");
    CHECK(err("keyword \"a\rb\"") == "invalid character 0x0D at position 11");
    CHECK(err("seen \x7f") == "invalid character 0x7F at position 6");
    CHECK(err("uid 1:*") == "unknown search key 'uid' at position 1");
    CHECK(err("subject hello") == "unknown search key 'subject' at position 1");
    // Long tokens are cut in messages.
    std::string const longkey(1000, 'x');
    CHECK(err(longkey) == "unknown search key '" + std::string(40, 'x') + "...' at position 1");
    // An escaped quote and backslash in a quoted string are fine (but not valid keywords).
    CHECK(err("keyword \"a\\\"b\"") == "invalid keyword 'a\"b' at position 9");
}

TEST_CASE("search: parse_detailed gives the position apart from the message") {
    vfolder::search_parse_failure f;
    CHECK_FALSE(search_program::parse_detailed("seen (foo)", f).has_value());
    CHECK(f.position == 7);
    CHECK(f.what == "unknown search key 'foo'");
    CHECK_FALSE(search_program::parse_detailed(" ", f).has_value());
    CHECK(f.position == 0);
    CHECK(f.what == "empty search program");
    auto const ok = search_program::parse_detailed("seen", f);
    REQUIRE(ok.has_value());
    CHECK(*ok == prog("seen"));
}

TEST_CASE("search: nesting depth is bounded") {
    auto nested = [](std::size_t n, std::string_view open, std::string_view close) {
        std::string s;
        for (std::size_t i = 0; i < n; ++i) s += open;
        s += "seen";
        for (std::size_t i = 0; i < n; ++i) s += close;
        return s;
    };
    CHECK(prog(nested(256, "(", ")")) == prog("seen"));
    CHECK(prog(nested(256, "not ", "")).nodes().size() == 257);
    CHECK(err(nested(257, "(", ")")) ==
          "search program nested too deeply (more than 256 levels) at position 258");
    CHECK(err(nested(257, "not ", "")).rfind("search program nested too deeply", 0) == 0);

    // Hostile input: no stack overflow, a clear error.
    CHECK(err(std::string(100000, '(')).rfind("search program nested too deeply (more than 256 levels)", 0) == 0);
    CHECK(err(nested(100000, "not ", "")).rfind("search program nested too deeply", 0) == 0);
    CHECK(err(nested(100000, "or seen ", "")).rfind("search program nested too deeply", 0) == 0);
    CHECK(err(nested(100000, "(not ", ")")).rfind("search program nested too deeply", 0) == 0);

    // Long flat programs are not nesting.
    std::string flat;
    for (int i = 0; i < 100000; ++i) flat += "seen ";
    auto const p = prog(flat);
    CHECK(p.nodes().size() == 100001);
    CHECK(p.matches(meta(system_flag::seen)));
    CHECK_FALSE(p.matches(meta()));
    CHECK(prog(p.to_string()) == p);
}

// --- Randomized round trip against a naive evaluator ---------------------------------

namespace {

// A reference tree, generated at random, printed in a random but valid spelling, and
// evaluated directly (dates through std::chrono, independent of the library's calendar).
struct ref_node {
    search_key key = search_key::all;
    std::vector<ref_node> kids;
    std::string keyword;
    int y = 2020;
    unsigned m = 1, d = 1;
    std::uint64_t number = 0;
};

struct ref_gen {
    std::mt19937_64 rng;
    explicit ref_gen(std::uint64_t seed) : rng(seed) {}

    std::uint64_t pick(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); }
    bool coin() { return pick(2) == 0; }

    ref_node make(int depth) {
        ref_node n;
        std::uint64_t const r = pick(depth > 4 ? 18 : 21);
        n.key = static_cast<search_key>(r);
        switch (n.key) {
        case search_key::keyword:
        case search_key::unkeyword: {
            static char const* const names[] = {"$a", "$b", "Work", "x!#$&'+,-./:;<=>?@^_`|~"};
            n.keyword = names[pick(4)];
            break;
        }
        case search_key::since:
        case search_key::before:
        case search_key::on:
            n.y = 2019 + static_cast<int>(pick(3));
            n.m = 1 + static_cast<unsigned>(pick(12));
            n.d = 1 + static_cast<unsigned>(pick(28));
            break;
        case search_key::larger:
        case search_key::smaller: n.number = 98 + pick(5); break;
        case search_key::op_not: n.kids.push_back(make(depth + 1)); break;
        case search_key::op_or:
            n.kids.push_back(make(depth + 1));
            n.kids.push_back(make(depth + 1));
            break;
        case search_key::op_and: {
            std::uint64_t const k = 1 + pick(4); // a list of one is legal text too
            for (std::uint64_t i = 0; i < k; ++i) n.kids.push_back(make(depth + 1));
            break;
        }
        default: break;
        }
        return n;
    }

    std::string cased(std::string_view s) {
        std::string out(s);
        if (pick(3) == 0)
            for (char& c : out)
                if (coin() && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        return out;
    }
    std::string space() { return pick(4) == 0 ? "\t " : " "; }

    std::string print(ref_node const& n) {
        static char const* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::string s;
        switch (n.key) {
        case search_key::keyword:
        case search_key::unkeyword:
            s = cased(vfolder::key_name(n.key)) + space() + (coin() ? n.keyword : "\"" + n.keyword + "\"");
            break;
        case search_key::since:
        case search_key::before:
        case search_key::on: {
            std::string date = (n.d < 10 && coin() ? "0" : "") + std::to_string(n.d) + "-" +
                               cased(months[n.m - 1]) + "-" + std::to_string(n.y);
            s = cased(vfolder::key_name(n.key)) + space() + (coin() ? date : "\"" + date + "\"");
            break;
        }
        case search_key::larger:
        case search_key::smaller:
            s = cased(vfolder::key_name(n.key)) + space() + (coin() ? "0" : "") + std::to_string(n.number);
            break;
        case search_key::op_not: s = cased("not") + space() + print(n.kids[0]); break;
        case search_key::op_or: s = cased("or") + space() + print(n.kids[0]) + space() + print(n.kids[1]); break;
        case search_key::op_and: {
            s = "(";
            for (auto const& k : n.kids) s += space() + print(k);
            s += ")";
            break;
        }
        default: s = cased(vfolder::key_name(n.key)); break;
        }
        if (pick(6) == 0) s = "(" + s + ")";
        return s;
    }
};

std::int64_t civil_day(int y, unsigned m, unsigned d) {
    return std::chrono::sys_days{std::chrono::year{y} / static_cast<int>(m) / static_cast<int>(d)}
        .time_since_epoch()
        .count();
}

bool ref_eval(ref_node const& n, message_meta const& m) {
    auto const has = [&](system_flag f) { return m.flags.contains(f); };
    auto const day = std::chrono::floor<std::chrono::days>(std::chrono::sys_seconds{std::chrono::seconds{
                                                                vfolder::value(m.received)}})
                         .time_since_epoch()
                         .count();
    auto const kw = [&] { return m.keywords != nullptr && m.keywords->count(n.keyword) != 0; };
    switch (n.key) {
    case search_key::all: return true;
    case search_key::seen: return has(system_flag::seen);
    case search_key::unseen: return !has(system_flag::seen);
    case search_key::answered: return has(system_flag::answered);
    case search_key::unanswered: return !has(system_flag::answered);
    case search_key::flagged: return has(system_flag::flagged);
    case search_key::unflagged: return !has(system_flag::flagged);
    case search_key::deleted: return has(system_flag::deleted);
    case search_key::undeleted: return !has(system_flag::deleted);
    case search_key::draft: return has(system_flag::draft);
    case search_key::undraft: return !has(system_flag::draft);
    case search_key::keyword: return kw();
    case search_key::unkeyword: return !kw();
    case search_key::since: return day >= civil_day(n.y, n.m, n.d);
    case search_key::before: return day < civil_day(n.y, n.m, n.d);
    case search_key::on: return day == civil_day(n.y, n.m, n.d);
    case search_key::larger: return m.size > n.number;
    case search_key::smaller: return m.size < n.number;
    case search_key::op_not: return !ref_eval(n.kids[0], m);
    case search_key::op_or: return ref_eval(n.kids[0], m) || ref_eval(n.kids[1], m);
    case search_key::op_and:
        for (auto const& k : n.kids)
            if (!ref_eval(k, m)) return false;
        return true;
    }
    return false;
}

bool ref_mentions(ref_node const& n, bool flags) {
    if (flags ? vfolder::is_flag_key(n.key) : (n.key == search_key::keyword || n.key == search_key::unkeyword))
        return true;
    for (auto const& k : n.kids)
        if (ref_mentions(k, flags)) return true;
    return false;
}

} // namespace

TEST_CASE("search: randomized round trip and evaluation against a naive model") {
    int outcomes[2] = {0, 0};
    std::vector<keyword_set> const kwsets = {{}, {"$a"}, {"$b", "Work"}, {"$a", "$b", "x!#$&'+,-./:;<=>?@^_`|~"}};
    for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        ref_gen g(seed);
        std::size_t const top = 1 + g.pick(4);
        std::vector<ref_node> keys;
        std::string text;
        for (std::size_t i = 0; i < top; ++i) {
            keys.push_back(g.make(0));
            if (i > 0) text += g.space();
            text += g.print(keys.back());
        }
        INFO("seed ", seed, " program ", text);
        auto const p = prog(text);
        std::string const canon = p.to_string();
        INFO("canonical ", canon);
        auto const back = prog(canon);
        CHECK(back == p);
        CHECK(back.to_string() == canon);
        bool flags = false, kws = false;
        for (auto const& k : keys) {
            flags = flags || ref_mentions(k, true);
            kws = kws || ref_mentions(k, false);
        }
        CHECK(p.depends_on_flags() == flags);
        CHECK(p.depends_on_keywords() == kws);
        for (int t = 0; t < 40; ++t) {
            // Received dates near day edges around the generated dates; sizes near 100.
            std::int64_t const base = civil_day(2019 + static_cast<int>(g.pick(3)),
                                                1 + static_cast<unsigned>(g.pick(12)),
                                                1 + static_cast<unsigned>(g.pick(28))) * day_s;
            std::int64_t const offs[] = {0, 1, -1, day_s - 1, day_s, 43200};
            message_meta const m = meta(flag_set::from_bits(static_cast<std::uint8_t>(g.pick(64))),
                                        &kwsets[g.pick(kwsets.size())], base + offs[g.pick(6)], 97 + g.pick(7));
            bool expect = true;
            for (auto const& k : keys) expect = expect && ref_eval(k, m);
            CHECK(p.matches(m) == expect);
            CHECK(back.matches(m) == expect);
            ++outcomes[expect ? 1 : 0];
        }
    }
    // The generated programs and messages exercise both outcomes.
    CHECK(outcomes[0] > 1000);
    CHECK(outcomes[1] > 1000);
}

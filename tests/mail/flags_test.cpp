#include <vfolder/mail/flags.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace vfolder;

TEST_CASE("flags: set operations") {
    flag_set f = system_flag::seen | system_flag::flagged;
    CHECK(f.contains(system_flag::seen));
    CHECK(f.contains(system_flag::flagged));
    CHECK_FALSE(f.contains(system_flag::deleted));
    CHECK((f - system_flag::seen) == flag_set(system_flag::flagged));
    CHECK((f & system_flag::seen) == flag_set(system_flag::seen));
    CHECK(flag_set{}.empty());
    CHECK(flag_set::from_bits(0xff).bits() == 0x3f); // unknown bits dropped
}

TEST_CASE("flags: \\Recent is never storable and never set by an update") {
    flag_set const f = system_flag::recent | system_flag::draft;
    CHECK(f.storable() == flag_set(system_flag::draft));
    CHECK(apply(flag_set{}, modify_op::add, system_flag::recent).empty());
    CHECK(apply(flag_set{}, modify_op::replace, system_flag::recent | system_flag::seen) ==
          flag_set(system_flag::seen));
    // Replace keeps the session's own \Recent: it is not the update's to change.
    CHECK(apply(flag_set(system_flag::recent), modify_op::replace, system_flag::seen) ==
          (system_flag::seen | system_flag::recent));
}

TEST_CASE("flags: apply add, remove, replace") {
    flag_set const cur = system_flag::seen | system_flag::answered;
    CHECK(apply(cur, modify_op::add, system_flag::deleted) ==
          (system_flag::seen | system_flag::answered | system_flag::deleted));
    CHECK(apply(cur, modify_op::remove, system_flag::seen) == flag_set(system_flag::answered));
    CHECK(apply(cur, modify_op::remove, system_flag::draft) == cur);
    CHECK(apply(cur, modify_op::replace, system_flag::draft) == flag_set(system_flag::draft));
    CHECK(apply(cur, modify_op::replace, flag_set{}).empty());
}

TEST_CASE("flags: names parse case-insensitively and print in IMAP form") {
    for (auto f : all_system_flags) {
        auto const name = std::string(flag_name(f));
        CHECK(parse_flag(name) == f);
        std::string upper = name;
        for (auto& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        CHECK(parse_flag(upper) == f);
    }
    CHECK(flag_name(system_flag::seen) == "\\Seen");
    CHECK_FALSE(parse_flag("Seen").has_value()); // the backslash is part of the name
    CHECK_FALSE(parse_flag("\\Seenx").has_value());
    CHECK_FALSE(parse_flag("").has_value());
}

TEST_CASE("flags: keyword sets are sorted bytewise and apply by name") {
    keyword_set k{"b", "$a", "B"};
    CHECK(std::string(*k.begin()) == "$a"); // '$' < 'B' < 'b'
    CHECK(k.size() == 3);
    CHECK(apply(k, modify_op::add, keyword_set{"c", "b"}).size() == 4);
    CHECK(apply(k, modify_op::remove, keyword_set{"b", "zz"}) == keyword_set{"$a", "B"});
    CHECK(apply(k, modify_op::replace, keyword_set{"x"}) == keyword_set{"x"});
    message_flags a{system_flag::seen, keyword_set{"x"}};
    message_flags b{system_flag::seen, keyword_set{"x"}};
    CHECK(a == b);
    b.keywords.insert("y");
    CHECK_FALSE(a == b);
}

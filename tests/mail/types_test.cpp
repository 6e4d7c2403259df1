#include <vfolder/mail/status.hpp>
#include <vfolder/mail/types.hpp>

#include <doctest/doctest.h>

#include <concepts>
#include <cstdint>
#include <limits>

using namespace vfolder;

// The point of the strong types: a sequence number is not a UID, and neither converts
// from a plain integer implicitly.
static_assert(!std::convertible_to<seqno, uid>);
static_assert(!std::convertible_to<uid, seqno>);
static_assert(!std::convertible_to<std::uint32_t, uid>);
static_assert(!std::convertible_to<uid, std::uint32_t>);
static_assert(!std::convertible_to<uid_validity, uid>);
static_assert(!std::convertible_to<modseq, std::uint64_t>);
static_assert(sizeof(uid) == 4 && sizeof(modseq) == 8 && sizeof(mail_time) == 8);
static_assert(std::same_as<decltype(value(uid{3})), std::uint32_t>);
static_assert(std::same_as<decltype(value(mail_time{3})), std::int64_t>);

TEST_CASE("types: value, next and prev round-trip") {
    CHECK(value(uid{41}) == 41u);
    CHECK(next(uid{41}) == uid{42});
    CHECK(prev(uid{42}) == uid{41});
    CHECK(next(modseq{std::numeric_limits<std::uint32_t>::max()}) ==
          modseq{std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1});
    CHECK(prev(mail_time{0}) == mail_time{-1});
    CHECK(next(seqno{1}) == seqno{2});
    CHECK(next(uid_validity{7}) == uid_validity{8});
}

TEST_CASE("types: strong values order like their integers") {
    CHECK(uid{1} < uid{2});
    CHECK(modseq{10} > modseq{9});
    CHECK(mail_time{-5} < mail_time{0});
}

TEST_CASE("types: mailbox_status defaults and equality") {
    mailbox_status a;
    CHECK(a.exists == 0);
    CHECK(a.uid_next == uid{1});
    CHECK(a.validity == uid_validity{0});
    CHECK_FALSE(a.guid.has_value());
    mailbox_status b = a;
    CHECK(a == b);
    b.guid = mailbox_guid{1};
    CHECK(a != b);
    b = a;
    b.highest_modseq = modseq{5};
    CHECK(a != b);
}

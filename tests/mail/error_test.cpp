#include <vfolder/mail/error.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <system_error>

using namespace vfolder;

TEST_CASE("error: the vfolder category names every code") {
    std::error_code const ec = errc::not_found; // is_error_code_enum
    CHECK(ec.category().name() == std::string("vfolder"));
    CHECK(ec.message() == "not found");
    CHECK(make_error_code(errc::corrupted).message() == "corrupted");
    CHECK(make_error_code(errc::permission) != make_error_code(errc::not_found));
    CHECK(make_error_code(errc::io) == errc::io);
    CHECK(error_category().message(999) == "unknown vfolder error");
    for (int c = 1; c <= static_cast<int>(errc::inconsistent); ++c)
        CHECK(error_category().message(c) != "unknown vfolder error");
}

TEST_CASE("error: messages name their context") {
    error e{errc::not_found, "Mailbox doesn't exist"};
    e.with_context("for backend mailbox Work");
    CHECK(e.message == "Mailbox doesn't exist (for backend mailbox Work)");
    CHECK(e.is(errc::not_found));
    CHECK_FALSE(e.is(errc::io));
    error const f = error{errc::io, "write failed"}.with_context("index.vfi");
    CHECK(f.message == "write failed (index.vfi)");
}

TEST_CASE("error: result holds a value or an error") {
    result<int> ok = 5;
    REQUIRE(ok.has_value());
    CHECK(*ok == 5);
    CHECK(static_cast<bool>(ok));
    result<int> bad = error{errc::temporary, "busy"};
    CHECK_FALSE(bad.has_value());
    CHECK(bad.error_value().is(errc::temporary));
    CHECK(bad.error_value().message == "busy");

    result<std::unique_ptr<int>> moved = std::make_unique<int>(7);
    std::unique_ptr<int> p = std::move(moved).value();
    CHECK(*p == 7);

    result<void> fine;
    CHECK(fine.has_value());
    result<void> failed = error{errc::corrupted, "bad crc"};
    CHECK_FALSE(failed.has_value());
    CHECK(failed.error_value().message == "bad crc");
}

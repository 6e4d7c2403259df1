// The POSIX/CRC layer shared by the on-disk adapters (adapters/mmap/detail/).
#include <vfolder/adapters/mmap/detail/crc32c.hpp>
#include <vfolder/adapters/mmap/detail/le.hpp>
#include <vfolder/adapters/mmap/detail/posix_file.hpp>

#include <doctest/doctest.h>
#include "support/temp_dir.hpp"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

using namespace vfolder;
using namespace vfolder::mmap_detail;

namespace {
std::span<std::byte const> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

using vfolder_test::temp_dir;

std::string read_all(std::string const& p) {
    auto fd = unique_fd::open(p, O_RDONLY);
    REQUIRE(fd);
    auto st = fd->stat();
    REQUIRE(st);
    std::string s(static_cast<std::size_t>(st->st_size), '\0');
    REQUIRE(fd->pread_all(std::as_writable_bytes(std::span(s.data(), s.size())), 0));
    return s;
}
} // namespace

TEST_CASE("crc32c: check value, running convention, seeds") {
    CHECK(crc32c_update(0, bytes("123456789")) == 0xE3069283U);
    CHECK(crc32c_update(0, bytes("")) == 0U);
    CHECK(crc32c_update(0x1234U, bytes("")) == 0x1234U);
    // update(update(c, a), b) == update(c, a‖b) for every split, also across the 8-byte loop.
    std::string const s = "The quick brown fox jumps over the lazy dog, twice over.";
    for (std::uint32_t seed : {0U, 0xDEADBEEFU}) {
        auto const whole = crc32c_update(seed, bytes(s));
        for (std::size_t i = 0; i <= s.size(); ++i)
            CHECK(crc32c_update(crc32c_update(seed, bytes(std::string_view(s).substr(0, i))),
                                bytes(std::string_view(s).substr(i))) == whole);
    }
    // 32 zero bytes: the iSCSI test vector (RFC 3720 B.4).
    std::array<std::byte, 32> zeros{};
    CHECK(crc32c_update(0, zeros) == 0x8A9136AAU);
}

TEST_CASE("le: round trip and byte order") {
    std::array<std::byte, 8> b{};
    store_le<std::uint32_t>(b.data(), 0x11223344U);
    CHECK(b[0] == std::byte{0x44});
    CHECK(b[3] == std::byte{0x11});
    CHECK(load_le<std::uint32_t>(b.data()) == 0x11223344U);
    store_le<std::int64_t>(b.data(), -2);
    CHECK(load_le<std::int64_t>(b.data()) == -2);
    CHECK(byte_swap<std::uint16_t>(0x1234) == 0x3412);
}

TEST_CASE("posix_file: atomic_replace writes durably and leaves no staging file") {
    temp_dir d;
    std::string const p = d.path + "/f", tmp = d.path + "/f.tmp";
    REQUIRE(atomic_replace(d.path, p, tmp, bytes("one")));
    CHECK(read_all(p) == "one");
    REQUIRE(atomic_replace(d.path, p, tmp, bytes("two two")));
    CHECK(read_all(p) == "two two");
    CHECK_FALSE(std::filesystem::exists(tmp));
}

TEST_CASE("posix_file: injected ENOSPC, short write and fsync failure leave the old file") {
    temp_dir d;
    std::string const p = d.path + "/f", tmp = d.path + "/f.tmp";
    REQUIRE(atomic_replace(d.path, p, tmp, bytes("old")));
    SUBCASE("ENOSPC") {
        io_hooks().write = [](std::string_view, std::uint64_t, std::size_t) { return write_decision{ENOSPC}; };
    }
    SUBCASE("short write") {
        io_hooks().write = [](std::string_view, std::uint64_t, std::size_t) { return write_decision{0, 2}; };
    }
    SUBCASE("fsync failure") {
        io_hooks().fsync = [](std::string_view) { return EIO; };
    }
    auto r = atomic_replace(d.path, p, tmp, bytes("new contents"));
    io_hooks() = {};
    REQUIRE_FALSE(r);
    CHECK(r.error_value().is(errc::io));
    CHECK(r.error_value().message.find("f.tmp") != std::string::npos);
    CHECK(read_all(p) == "old");
    CHECK_FALSE(std::filesystem::exists(tmp));
}

TEST_CASE("posix_file: errors name the file and map errno") {
    auto r = unique_fd::open("/nonexistent-vfolder-dir/x", O_RDONLY);
    REQUIRE_FALSE(r);
    CHECK(r.error_value().is(errc::not_found));
    CHECK(r.error_value().message.find("/nonexistent-vfolder-dir/x") != std::string::npos);

    temp_dir d;
    auto fd = unique_fd::open(d.path + "/short", O_RDWR | O_CREAT, 0600);
    REQUIRE(fd);
    REQUIRE(fd->pwrite_all(bytes("abc"), 0));
    std::array<std::byte, 8> buf{};
    auto rr = fd->pread_all(buf, 0);
    REQUIRE_FALSE(rr);
    CHECK(rr.error_value().is(errc::corrupted));
    CHECK(check_local_filesystem(d.path));
}

TEST_CASE("posix_file: flock excludes a second open file description and times out") {
    temp_dir d;
    std::string const p = d.path + "/lock";
    auto a = unique_fd::open(p, O_RDWR | O_CREAT, 0600);
    auto b = unique_fd::open(p, O_RDWR, 0600);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(lock_file(*a, LOCK_EX, std::chrono::milliseconds(0)));
    auto r = lock_file(*b, LOCK_EX, std::chrono::milliseconds(20));
    REQUIRE_FALSE(r);
    CHECK(r.error_value().is(errc::temporary));
    CHECK_FALSE(lock_file(*b, LOCK_SH, std::chrono::milliseconds(0)));
    unlock_file(*a);
    CHECK(lock_file(*b, LOCK_SH, std::chrono::milliseconds(0)));
    CHECK(lock_file(*a, LOCK_SH, std::chrono::milliseconds(0))); // shared with shared
}

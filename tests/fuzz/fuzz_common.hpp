// Shared by the fuzz targets (fuzz_mmap_index.cpp, fuzz_mmap_store.cpp) and the plain
// corpus driver (corpus_driver.cpp): a scratch directory per process, file writing, and
// the oracle's failure path (abort: a "crash" for libFuzzer, a failed ctest for the driver).
#pragma once

#include <vfolder/adapters/mmap/detail/posix_file.hpp>
#include <vfolder/mail/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

namespace vfolder_fuzz {

/// \brief Prints `what` and aborts: an oracle violation (never a rejected input).
[[noreturn]] inline void oracle_fail(std::string const& what) {
    std::fprintf(stderr, "fuzz oracle violated: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

/// \brief A scratch directory for this process, removed at exit. Prefers /dev/shm
/// (tmpfs: the fsyncs of the commit path cost nothing there), else the temp directory.
inline std::string const& scratch_dir() {
    static std::string const dir = [] {
        std::string base = "/dev/shm";
        if (::access(base.c_str(), W_OK) != 0) base = std::filesystem::temp_directory_path().string();
        std::string t = base + "/vfolder-fuzz-XXXXXX";
        if (::mkdtemp(t.data()) == nullptr) oracle_fail("cannot create a scratch directory in " + base);
        static std::string const keep = t;
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(keep, ec);
        });
        return t;
    }();
    return dir;
}

/// \brief Replaces the contents of `path` with `data` (same inode when it exists).
inline void put_file(std::string const& path, std::span<std::byte const> data) {
    int const fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) oracle_fail("cannot write " + path);
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t const r = ::write(fd, data.data() + done, data.size() - done);
        if (r <= 0) oracle_fail("cannot write " + path);
        done += static_cast<std::size_t>(r);
    }
    ::close(fd);
}

/// \brief Errors a hostile file may legitimately produce on open/load.
inline bool rejection_ok(vfolder::error const& e) {
    return e.is(vfolder::errc::corrupted) || e.is(vfolder::errc::unsupported) || e.is(vfolder::errc::not_possible);
}

} // namespace vfolder_fuzz

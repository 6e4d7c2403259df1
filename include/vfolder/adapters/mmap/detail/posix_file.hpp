/// \file
/// \brief The POSIX layer of the on-disk adapters (the only place, with the adapters
/// themselves, that includes POSIX headers): an RAII file descriptor, EINTR-safe full
/// reads and writes, fsync barriers, flock with a deadline, directory fsync, the
/// local-filesystem check, errno → `vfolder::error` and a durable atomic file replace.
///
/// Fault injection (tests only): `io_hooks().write` is consulted before every write made
/// through this layer; it may shorten the write (a short write), fail it with an errno
/// (ENOSPC, EIO), or let it through. `io_hooks().fsync` likewise for fsync/fdatasync, and
/// `io_hooks().read` for every `pread_all` (only its `error` is used).
/// Hooks are process-wide and not thread-safe; production code never sets them.
#pragma once

#include <vfolder/config.hpp>
#include <vfolder/mail/error.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>

VFOLDER_BEGIN_NAMESPACE
namespace mmap_detail {

/// \brief What a write hook decides for one write of `size` bytes at `offset` of `path`.
struct write_decision {
    int error = 0;               ///< non-zero: fail the write with this errno, nothing written
    std::size_t limit = SIZE_MAX; ///< write at most this many bytes, then fail with ENOSPC
};

struct io_hook_table {
    std::function<write_decision(std::string_view path, std::uint64_t offset, std::size_t size)> write;
    std::function<int(std::string_view path)> fsync; ///< non-zero errno: the fsync fails
    /// Consulted before every `pread_all`; a non-zero `error` fails the read with it.
    std::function<write_decision(std::string_view path, std::uint64_t offset, std::size_t size)> read;
    std::string note; ///< appended, in parentheses, to the message of every failure a write or read hook injects
};

/// \brief The process-wide test hooks (empty by default).
inline io_hook_table& io_hooks() noexcept {
    static io_hook_table h;
    return h;
}

/// \brief Maps an errno to the vfolder error code the engine branches on.
[[nodiscard]] inline errc errc_from_errno(int e) noexcept {
    switch (e) {
    case ENOENT: case ENOTDIR: return errc::not_found;
    case EACCES: case EPERM: case EROFS: return errc::permission;
    case EEXIST: return errc::already_exists;
    case EAGAIN: case EINTR: case EBUSY: return errc::temporary;
    case EINVAL: case ENAMETOOLONG: case ELOOP: return errc::invalid_argument;
    default: return errc::io;
    }
}

/// \brief An error for a failed system call: "<what> <path>: <strerror>".
[[nodiscard]] inline error sys_error(int e, std::string_view what, std::string_view path) {
    std::string m;
    m.append(what).append(" ").append(path).append(": ").append(std::strerror(e));
    return error{errc_from_errno(e), std::move(m)};
}

/// \brief `sys_error` for a failure injected by a hook, with `io_hooks().note` appended.
[[nodiscard]] inline error injected_error(int e, std::string_view what, std::string_view path) {
    error r = sys_error(e, what, path);
    if (auto const& note = io_hooks().note; !note.empty()) r.message.append(" (").append(note).append(")");
    return r;
}

/// \brief An owned file descriptor (closed on destruction), remembering its path for
/// error messages.
class unique_fd {
public:
    unique_fd() = default;
    unique_fd(int fd, std::string path) noexcept : fd_(fd), path_(std::move(path)) {}
    unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
            path_ = std::move(o.path_);
        }
        return *this;
    }
    unique_fd(unique_fd const&) = delete;
    unique_fd& operator=(unique_fd const&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] std::string const& path() const noexcept { return path_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    /// \brief open(2) with O_CLOEXEC added.
    [[nodiscard]] static result<unique_fd> open(std::string const& path, int flags, mode_t mode = 0600) {
        int fd;
        do fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) return sys_error(errno, "cannot open", path);
        return unique_fd(fd, path);
    }

    /// \brief fstat(2).
    [[nodiscard]] result<struct stat> stat() const {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return sys_error(errno, "cannot stat", path_);
        return st;
    }

    /// \brief Reads exactly `out.size()` bytes at `offset`; a short file is `errc::corrupted`.
    [[nodiscard]] result<void> pread_all(std::span<std::byte> out, std::uint64_t offset) const {
        if (auto const& h = io_hooks().read)
            if (write_decision const d = h(path_, offset, out.size()); d.error != 0) return injected_error(d.error, "cannot read", path_);
        std::size_t done = 0;
        while (done < out.size()) {
            ssize_t const r = ::pread(fd_, out.data() + done, out.size() - done,
                                      static_cast<off_t>(offset + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                return sys_error(errno, "cannot read", path_);
            }
            if (r == 0)
                return error{errc::corrupted, "unexpected end of file " + path_ + " at offset " +
                                                  std::to_string(offset + done)};
            done += static_cast<std::size_t>(r);
        }
        return {};
    }

    /// \brief Writes all of `data` at `offset` (retrying short writes and EINTR), through
    /// the test write hook.
    [[nodiscard]] result<void> pwrite_all(std::span<std::byte const> data, std::uint64_t offset) const {
        std::size_t limit = data.size();
        int inject = 0;
        if (auto const& h = io_hooks().write) {
            write_decision const d = h(path_, offset, data.size());
            if (d.error != 0) return injected_error(d.error, "cannot write", path_);
            if (d.limit < limit) {
                limit = d.limit;
                inject = ENOSPC;
            }
        }
        std::size_t done = 0;
        while (done < limit) {
            ssize_t const r = ::pwrite(fd_, data.data() + done, limit - done,
                                       static_cast<off_t>(offset + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                return sys_error(errno, "cannot write", path_);
            }
            done += static_cast<std::size_t>(r);
        }
        if (inject != 0) return injected_error(inject, "cannot write", path_);
        return {};
    }

    /// \brief fdatasync(2) (or fsync when `full`); a failure is reported, never retried
    /// (the caller must treat the handle as poisoned: fsyncgate).
    [[nodiscard]] result<void> sync(bool full = false) const {
        if (auto const& h = io_hooks().fsync)
            if (int const e = h(path_); e != 0) return sys_error(e, "cannot sync", path_);
        int const r = full ? ::fsync(fd_) : ::fdatasync(fd_);
        if (r != 0) return sys_error(errno, "cannot sync", path_);
        return {};
    }

    /// \brief ftruncate(2).
    [[nodiscard]] result<void> truncate(std::uint64_t size) const {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return sys_error(errno, "cannot truncate", path_);
        return {};
    }

private:
    int fd_ = -1;
    std::string path_;
};

/// \brief flock(2) `op` (LOCK_SH / LOCK_EX) on `fd`, polling with LOCK_NB and backoff until
/// `timeout`; a timeout is `errc::temporary`. A zero timeout tries once.
[[nodiscard]] inline result<void> lock_file(unique_fd const& fd, int op,
                                            std::chrono::milliseconds timeout) {
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::microseconds(50);
    for (;;) {
        if (::flock(fd.get(), op | LOCK_NB) == 0) return {};
        int const e = errno;
        if (e == EINTR) continue;
        if (e != EWOULDBLOCK) return sys_error(e, "cannot lock", fd.path());
        if (std::chrono::steady_clock::now() >= deadline)
            return error{errc::temporary, "timed out waiting for the lock " + fd.path()};
        std::this_thread::sleep_for(pause);
        if (pause < std::chrono::milliseconds(10)) pause *= 2;
    }
}

/// \brief Releases a flock taken with `lock_file`.
inline void unlock_file(unique_fd const& fd) noexcept { ::flock(fd.get(), LOCK_UN); }

/// \brief The first `max` bytes of the small advisory file `path` (a sidecar), or fewer;
/// empty when it is missing or unreadable. Reads through no hook: a sidecar's failure only
/// means less is known.
[[nodiscard]] inline std::string read_small_file(std::string const& path, std::size_t max) {
    std::string buf;
    auto fd = unique_fd::open(path, O_RDONLY | O_NOFOLLOW);
    if (!fd) return buf;
    buf.resize(max);
    std::size_t n = 0;
    while (n < max) {
        ssize_t const k = ::pread(fd->get(), buf.data() + n, max - n, static_cast<off_t>(n));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += static_cast<std::size_t>(k);
    }
    buf.resize(n);
    return buf;
}

/// \brief fsync of a directory, making renames and creations in it durable.
[[nodiscard]] inline result<void> sync_dir(std::string const& dir) {
    auto fd = unique_fd::open(dir, O_RDONLY | O_DIRECTORY);
    if (!fd) return std::move(fd).error_value();
    return fd->sync(true);
}

/// \brief Refuses NFS, CIFS/SMB, 9p and FUSE (MAILBOX-FORMAT.md §3): flock and mmap
/// coherence are not guaranteed there. `errc::not_possible` naming the filesystem.
[[nodiscard]] inline result<void> check_local_filesystem(std::string const& path) {
    struct statfs fs {};
    if (::statfs(path.c_str(), &fs) != 0) return sys_error(errno, "cannot statfs", path);
    auto const type = static_cast<unsigned long>(fs.f_type);
    char const* name = nullptr;
    switch (type) {
    case 0x6969UL: name = "NFS"; break;
    case 0xFF534D42UL: name = "CIFS"; break;
    case 0xFE534D42UL: name = "SMB2"; break;
    case 0x517BUL: name = "SMB"; break;
    case 0x01021997UL: name = "9p"; break;
    case 0x65735546UL: name = "FUSE"; break;
    default: break;
    }
    if (name != nullptr)
        return error{errc::not_possible, path + " is on a " + name +
                                             " filesystem; only local filesystems are supported"};
    return {};
}

/// \brief Durably replaces `path` with `data`: write `tmp_path` (O_EXCL after removing a
/// stale one), fsync it, rename over `path`, fsync `dir`. A crash leaves either the old or
/// the new file whole. On failure `path` is untouched and `tmp_path` removed.
[[nodiscard]] inline result<void> atomic_replace(std::string const& dir, std::string const& path,
                                                 std::string const& tmp_path,
                                                 std::span<std::byte const> data) {
    ::unlink(tmp_path.c_str());
    auto fd = unique_fd::open(tmp_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (!fd) return std::move(fd).error_value();
    auto fail = [&](error e) -> result<void> {
        fd->reset();
        ::unlink(tmp_path.c_str());
        return e;
    };
    if (auto r = fd->pwrite_all(data, 0); !r) return fail(std::move(r).error_value());
    if (auto r = fd->sync(true); !r) return fail(std::move(r).error_value());
    fd->reset();
    if (::rename(tmp_path.c_str(), path.c_str()) != 0) {
        int const e = errno;
        ::unlink(tmp_path.c_str());
        return sys_error(e, "cannot rename onto", path);
    }
    return sync_dir(dir);
}

} // namespace mmap_detail
VFOLDER_END_NAMESPACE

/// \file
/// \brief `mmap_provider`: a folder's `backend_provider` over a directory of `mmap_mailbox`
/// mailboxes with `/`-separated hierarchical names, and `add_mmap_scheme`, the `mmap:`
/// scheme of a `backend_registry` over such a directory.
///
/// Layout under the root directory: mailbox `A/B/C` is the mmap_mailbox directory
/// `ROOT/A/B/C/.mbox`; `ROOT/A` and `ROOT/A/B` are plain hierarchy directories (which may
/// hold a `.mbox` of their own: mailbox `A`, `A/B`). Keeping the mailbox's own files one
/// level down lets any name have children without colliding with them. Names are valid
/// when not empty, without empty levels, NUL, or a level starting with `.` (so `.`, `..`
/// and `.mbox` cannot be levels). `ROOT/.uidvalidity` holds the last UIDVALIDITY handed
/// out (under flock): a re-created mailbox always gets a new one, even within the second
/// and across processes.
///
/// Not included by <vfolder/vfolder.hpp>: include it explicitly.
#pragma once

#include <vfolder/adapters/mmap/detail/posix_file.hpp>
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/engine/folder.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/types.hpp>
#include <vfolder/registry.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

VFOLDER_BEGIN_NAMESPACE

/// \brief Lists, creates, deletes and makes `mmap_mailbox` backends under a root directory.
/// Copyable and cheap: it holds the root path and options only (no open files).
class mmap_provider {
public:
    /// \brief Mailboxes under `root` (which must exist). `opt.name` is ignored: each
    /// backend is named by its mailbox name.
    explicit mmap_provider(std::string root, mmap_options opt = {}) : root_(std::move(root)), opt_(std::move(opt)) {
        while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
    }

    [[nodiscard]] std::string const& root() const noexcept { return root_; }
    [[nodiscard]] mmap_options const& options() const noexcept { return opt_; }

    /// \brief Whether `name` is a valid mailbox name (see the file comment).
    [[nodiscard]] static bool valid_name(std::string_view name) noexcept {
        if (name.empty()) return false;
        std::size_t i = 0;
        while (i <= name.size()) {
            std::size_t j = name.find('/', i);
            if (j == std::string_view::npos) j = name.size();
            if (j == i || name[i] == '.') return false;
            if (name.substr(i, j - i).find('\0') != std::string_view::npos) return false;
            i = j + 1;
        }
        return true;
    }

    /// \brief The mmap_mailbox directory of mailbox `name` (which need not exist).
    [[nodiscard]] std::string directory_of(std::string_view name) const {
        return root_ + "/" + std::string(name) + "/.mbox";
    }

    /// \brief Whether mailbox `name` exists.
    [[nodiscard]] bool exists(std::string_view name) const {
        if (!valid_name(name)) return false;
        struct stat st {};
        return ::stat((directory_of(name) + "/index").c_str(), &st) == 0 && S_ISREG(st.st_mode);
    }

    /// \brief Names of all mailboxes, sorted bytewise. Directories that cannot be read are
    /// skipped; symbolic links are not followed.
    [[nodiscard]] std::vector<std::string> list() const {
        std::vector<std::string> out;
        walk(root_, std::string(), out, 0);
        std::sort(out.begin(), out.end());
        return out;
    }

    /// \brief A closed `mmap_mailbox` handle on mailbox `name` (`not_found` if it does
    /// not exist).
    [[nodiscard]] result<mmap_mailbox> make(std::string_view name) const {
        if (!exists(name)) return error{errc::not_found, "Mailbox doesn't exist: " + std::string(name)};
        mmap_options o = opt_;
        o.name = std::string(name);
        return mmap_mailbox(directory_of(name), std::move(o));
    }

    /// \brief Creates mailbox `name` with a fresh UIDVALIDITY (`next_validity`). Errors:
    /// `invalid_argument` for an invalid name, `already_exists` if it exists.
    result<void> create(std::string_view name) const {
        if (!valid_name(name)) return error{errc::invalid_argument, "Invalid mailbox name: " + std::string(name)};
        if (exists(name)) return error{errc::already_exists, "Mailbox already exists"};
        // The hierarchy directories, then the mailbox's own.
        std::string path = root_;
        std::size_t i = 0;
        while (i <= name.size()) {
            std::size_t j = name.find('/', i);
            if (j == std::string_view::npos) j = name.size();
            path += "/";
            path.append(name.substr(i, j - i));
            if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
                return mmap_detail::sys_error(errno, "cannot create", path);
            i = j + 1;
        }
        auto v = next_validity();
        if (!v) return std::move(v).error_value();
        std::string const dir = directory_of(name);
        if (auto r = mmap_mailbox::create(dir, *v); !r) {
            // A leftover of an interrupted create (no index): clear it and try once more.
            if (!r.error_value().is(errc::already_exists) || !remove_leftover(dir)) return r;
            if (auto again = mmap_mailbox::create(dir, *v); !again) return again;
        }
        return {};
    }

    /// \brief Deletes mailbox `name` (and the hierarchy directories left empty). Errors:
    /// `not_found` if it does not exist. Open handles then answer `not_found`.
    result<void> remove(std::string_view name) const {
        if (!exists(name)) return error{errc::not_found, "Mailbox doesn't exist: " + std::string(name)};
        if (auto r = mmap_mailbox::remove(directory_of(name)); !r) return r;
        std::string path = root_ + "/" + std::string(name);
        while (path.size() > root_.size() && ::rmdir(path.c_str()) == 0)
            path.erase(path.find_last_of('/'));
        return {};
    }

    /// \brief A UIDVALIDITY never handed out before under this root and not `previous`:
    /// the current time, or the last one handed out + 1 if that is not above it, persisted
    /// in `ROOT/.uidvalidity` under an exclusive flock.
    [[nodiscard]] result<uid_validity> next_validity(uid_validity previous = {}) const {
        std::string const path = root_ + "/.uidvalidity";
        auto fd = mmap_detail::unique_fd::open(path, O_RDWR | O_CREAT, 0600);
        if (!fd) return std::move(fd).error_value();
        if (auto r = mmap_detail::lock_file(*fd, LOCK_EX, opt_.lock_timeout); !r) return std::move(r).error_value();
        struct unlock {
            mmap_detail::unique_fd const& f;
            ~unlock() { mmap_detail::unlock_file(f); }
        } guard{*fd};
        char buf[32] = {};
        ssize_t n = 0;
        do n = ::pread(fd->get(), buf, sizeof buf - 1, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) return mmap_detail::sys_error(errno, "cannot read", path);
        std::uint64_t last = 0;
        for (ssize_t k = 0; k < n && buf[k] >= '0' && buf[k] <= '9' && last <= 0xFFFFFFFFu; ++k)
            last = last * 10 + static_cast<std::uint64_t>(buf[k] - '0');
        auto const now = static_cast<std::uint64_t>(std::max<std::int64_t>(1, static_cast<std::int64_t>(::time(nullptr))));
        std::uint64_t v = std::max({now, last + 1, std::uint64_t{value(previous)} + 1});
        if (v > 0xFFFFFFFFu) v = 1; // wrapped: start again (never equal to `previous` = 0xFFFFFFFF)
        std::string const text = std::to_string(v) + "\n";
        if (auto r = fd->pwrite_all(std::as_bytes(std::span(text.data(), text.size())), 0); !r)
            return std::move(r).error_value();
        if (::ftruncate(fd->get(), static_cast<off_t>(text.size())) != 0)
            return mmap_detail::sys_error(errno, "cannot truncate", path);
        if (auto r = fd->sync(); !r) return std::move(r).error_value();
        return uid_validity{static_cast<std::uint32_t>(v)};
    }

private:
    // Collects the mailboxes at and below `dir` (whose name is `prefix`, "" for the root).
    static void walk(std::string const& dir, std::string const& prefix, std::vector<std::string>& out, int depth) {
        if (depth > 64) return;
        DIR* dp = ::opendir(dir.c_str());
        if (dp == nullptr) return;
        std::vector<std::string> subdirs;
        bool is_mailbox = false;
        while (dirent* de = ::readdir(dp)) {
            std::string_view const n = de->d_name;
            if (n == ".mbox") {
                is_mailbox = true;
                continue;
            }
            if (n.empty() || n.front() == '.') continue;
            subdirs.emplace_back(n);
        }
        ::closedir(dp);
        if (is_mailbox && !prefix.empty()) {
            struct stat st {};
            if (::stat((dir + "/.mbox/index").c_str(), &st) == 0 && S_ISREG(st.st_mode)) out.push_back(prefix);
        }
        for (auto const& s : subdirs) {
            std::string const p = dir + "/" + s;
            struct stat st {};
            if (::lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            walk(p, prefix.empty() ? s : prefix + "/" + s, out, depth + 1);
        }
    }

    // Removes a mailbox directory without an index (an interrupted create).
    static bool remove_leftover(std::string const& dir) {
        for (char const* sub : {"/msg", "/tmp"}) {
            std::string const d = dir + sub;
            if (DIR* dp = ::opendir(d.c_str())) {
                std::vector<std::string> names;
                while (dirent* de = ::readdir(dp))
                    if (std::string_view(de->d_name) != "." && std::string_view(de->d_name) != "..")
                        names.emplace_back(de->d_name);
                ::closedir(dp);
                for (auto const& n : names) ::unlink((d + "/" + n).c_str());
            }
            ::rmdir(d.c_str());
        }
        ::unlink((dir + "/writer.lock").c_str());
        ::unlink((dir + "/publish.lock").c_str());
        return ::rmdir(dir.c_str()) == 0;
    }

    std::string root_;
    mmap_options opt_;
};

static_assert(backend_provider<mmap_provider>);

/// \brief Registers the scheme "mmap" in `reg`: `mmap:NAME` creates an `mmap_mailbox`
/// backend over mailbox NAME under `provider`'s root (the provider is copied). The mailbox
/// need not exist yet (its calls then answer `not_found`); an invalid name is
/// `invalid_argument`.
inline result<void> add_mmap_scheme(backend_registry& reg, mmap_provider provider) {
    std::string ns = "mmap:" + provider.root() + "/";
    return reg.add({"mmap", "on-disk mmap mailboxes (vfolder::mmap_mailbox) under " + provider.root(), std::move(ns)},
                   [p = std::move(provider)](std::string_view name) -> result<any_backend> {
                       if (!mmap_provider::valid_name(name))
                           return error{errc::invalid_argument, "Invalid mailbox name: " + std::string(name)};
                       mmap_options o = p.options();
                       o.name = std::string(name);
                       return any_backend(mmap_mailbox(p.directory_of(name), std::move(o)));
                   });
}

VFOLDER_END_NAMESPACE

/// \file
/// \brief `mmap_mailbox`: the reference on-disk mailbox (docs/mmap-format.md, after
/// MAILBOX-FORMAT.md): a directory with `index` (two header slots, an immutable base, an
/// append-only tail of 96-byte entries, all CRC-32C checked), `writer.lock`,
/// `publish.lock`, `msg/<uid>` and `tmp/`. Models `vfolder::backend` and
/// `openable_backend`.
///
/// Every handle is both reader and writer. A write takes `flock(writer.lock, LOCK_EX)` for
/// the transaction, catches up with the file, appends entries past the committed end,
/// fdatasyncs, publishes the other header slot under `flock(publish.lock, LOCK_EX)`,
/// fdatasyncs again and only then returns. Every call first refreshes: the slots are
/// copied under the shared publish lock and, when the generation moved, the new tail
/// entries are replayed (or the whole file reloaded when it was replaced).
///
/// v1 limits: the reader maps the committed range (PROT_READ, MAP_SHARED), validates it
/// and materialises the messages in memory (O(N) per open, O(k) per refresh); queries
/// then run on that copy. Not thread-safe: one handle per thread.
#pragma once

#include <vfolder/adapters/mmap/detail/crc32c.hpp>
#include <vfolder/adapters/mmap/detail/le.hpp>
#include <vfolder/adapters/mmap/detail/mailbox_format.hpp>
#include <vfolder/adapters/mmap/detail/posix_file.hpp>
#include <vfolder/concepts.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/message.hpp>
#include <vfolder/mail/search.hpp>
#include <vfolder/mail/status.hpp>
#include <vfolder/mail/types.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

VFOLDER_BEGIN_NAMESPACE

/// \brief Options of an `mmap_mailbox` handle.
struct mmap_options {
    std::string name;                                  ///< reported name (default: the directory)
    std::chrono::milliseconds lock_timeout{10000};     ///< writer and publish lock deadline
    bool allow_remote_fs = false;                      ///< skip the local-filesystem check
};

namespace mmap_detail {

/// \brief A read-only MAP_SHARED mapping of [0, size) of a file (RAII).
class mapping {
public:
    mapping() = default;
    mapping(mapping const&) = delete;
    mapping& operator=(mapping const&) = delete;
    ~mapping() {
        if (p_ != nullptr) ::munmap(p_, n_);
    }
    [[nodiscard]] static result<void> map(mapping& m, unique_fd const& fd, std::uint64_t size) {
        if (size == 0) return {};
        void* p = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_SHARED, fd.get(), 0);
        if (p == MAP_FAILED) return sys_error(errno, "cannot mmap", fd.path());
        m.p_ = p;
        m.n_ = static_cast<std::size_t>(size);
        return {};
    }
    [[nodiscard]] std::byte const* data() const noexcept { return static_cast<std::byte const*>(p_); }
    [[nodiscard]] std::size_t size() const noexcept { return n_; }

private:
    void* p_ = nullptr;
    std::size_t n_ = 0;
};

/// \brief A random non-zero u64 (file ids, staging names); reseeded after fork().
[[nodiscard]] inline std::uint64_t random_u64() {
    static thread_local std::mt19937_64 rng;
    static thread_local pid_t seeded_for = 0;
    if (seeded_for != ::getpid()) {
        seeded_for = ::getpid();
        std::random_device rd;
        std::uint64_t s = (std::uint64_t{rd()} << 32) ^ rd();
        s ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        s ^= static_cast<std::uint64_t>(seeded_for) << 17;
        rng.seed(s);
    }
    std::uint64_t v = 0;
    while (v == 0) v = rng();
    return v;
}

/// \brief One live message: its current image and its keyword names.
struct live_msg {
    msg_image img;
    keyword_set kws;
};

/// \brief The materialised state of one generation of an index file.
struct mailbox_state {
    slot_fields hdr;                                  // the slot in force
    std::uint64_t ino = 0;
    std::map<std::uint32_t, live_msg> live;           // uid -> message
    std::map<std::uint64_t, std::uint32_t> by_mod;    // modseq -> uid, one per live message
    std::vector<std::pair<std::uint64_t, std::uint32_t>> tombs; // (modseq, uid), ascending
    std::set<std::uint32_t> tomb_uids;
    std::vector<std::string> kw;                      // index -> name
    std::map<std::string, std::uint32_t, std::less<>> kw_index;
    // Tail replay state (§9.3).
    std::uint32_t tail_count = 0;
    std::uint32_t chain = 0;
    std::uint32_t running_next = 1;
    std::uint64_t last_tail_mod = 0;

    [[nodiscard]] keyword_set names_of(msg_image const& m) const {
        keyword_set k;
        for (std::uint32_t i = 0; i < kw.size(); ++i)
            if (m.has_kw(i)) k.insert(kw[i]);
        return k;
    }
};

/// \brief Validates the base (§9.2) of `s.hdr` in the mapped bytes `p` (at least
/// `committed_end` long) and fills `s`.
[[nodiscard]] inline result<void> load_base(mailbox_state& s, std::byte const* p, std::string const& file) {
    slot_fields const& h = s.hdr;
    std::uint32_t const seed = h.seed();
    if (crc32c_update(seed, std::span<std::byte const>(p + base_off, h.tail_off - base_off)) != h.base_crc)
        return corrupt(file, base_off, "base_crc", "checksum mismatch");
    // KW first: LIVE keyword bits are checked against base_kw_count.
    for (std::uint32_t i = 0; i < h.base_kw_count; ++i) {
        std::uint64_t const off = h.kw_off + entry_size * i;
        std::byte const* e = p + off;
        if (!entry_crc_ok(e, seed)) return corrupt(file, off + 92, "crc", "KW entry checksum mismatch");
        if (load_le<std::uint32_t>(e) != 0) return corrupt(file, off, "zero", "not zero");
        if (load_le<std::uint8_t>(e + 4) != kind_kwdef) return corrupt(file, off + 4, "kind", "not KWDEF");
        std::uint8_t const len = load_le<std::uint8_t>(e + 5);
        if (load_le<std::uint16_t>(e + 6) != i) return corrupt(file, off + 6, "kw_index", "not its position");
        if (load_le<std::uint64_t>(e + 8) > h.highestmodseq) return corrupt(file, off + 8, "defined_at", "above highestmodseq");
        if (len == 0 || len > 76) return corrupt(file, off + 5, "name_len", "not in 1..76");
        std::string name(reinterpret_cast<char const*>(e + 16), len);
        for (std::size_t j = 16 + std::size_t{len}; j < 92; ++j)
            if (e[j] != std::byte{0}) return corrupt(file, off + j, "name", "padding not zero");
        if (!valid_keyword_name(name)) return corrupt(file, off + 16, "name", "not a keyword atom");
        if (!s.kw_index.emplace(name, i).second) return corrupt(file, off + 16, "name", "duplicate keyword");
        s.kw.push_back(std::move(name));
    }
    std::uint32_t prev_uid = 0;
    for (std::uint32_t i = 0; i < h.live_count; ++i) {
        std::uint64_t const off = h.live_off + entry_size * i;
        std::byte const* e = p + off;
        if (!entry_crc_ok(e, seed)) return corrupt(file, off + 92, "crc", "LIVE entry checksum mismatch");
        msg_image m = decode_msg(e);
        if (auto [f, why] = check_msg_fields(m, h.base_kw_count); !f.empty()) return corrupt(file, off, f, why);
        if (m.state != 0) return corrupt(file, off + 6, "state", "not 0 in LIVE");
        if (m.uid <= prev_uid) return corrupt(file, off, "uid", "LIVE not strictly increasing");
        if (m.uid >= h.uidnext) return corrupt(file, off, "uid", "not below uidnext");
        if (m.modseq > h.base_modseq) return corrupt(file, off + 8, "modseq", "above base_modseq");
        prev_uid = m.uid;
        if (!s.by_mod.emplace(m.modseq, m.uid).second) return corrupt(file, off + 8, "modseq", "duplicate modseq");
        keyword_set k = s.names_of(m);
        s.live.emplace_hint(s.live.end(), m.uid, live_msg{m, std::move(k)});
    }
    // MPERM: a permutation of LIVE sorted by modseq.
    {
        std::vector<bool> seen(h.live_count, false);
        std::uint64_t prev_mod = 0;
        std::vector<std::uint32_t> uids_by_pos;
        uids_by_pos.reserve(h.live_count);
        for (auto const& [u, m] : s.live) uids_by_pos.push_back(u);
        for (std::uint32_t i = 0; i < h.live_count; ++i) {
            std::uint64_t const off = h.mperm_off + 4ULL * i;
            std::uint32_t const v = load_le<std::uint32_t>(p + off); // copied, then checked (§9.4)
            if (v >= h.live_count) return corrupt(file, off, "mperm", "index out of range");
            if (seen[v]) return corrupt(file, off, "mperm", "index repeated");
            seen[v] = true;
            std::uint64_t const mod = s.live.find(uids_by_pos[v])->second.img.modseq;
            if (mod <= prev_mod) return corrupt(file, off, "mperm", "modseqs not strictly increasing");
            prev_mod = mod;
        }
        for (std::uint64_t off = h.mperm_off + 4ULL * h.live_count; off < h.tomb_off; ++off)
            if (p[off] != std::byte{0}) return corrupt(file, off, "mperm", "padding not zero");
    }
    std::uint64_t prev_tmod = 0;
    std::uint32_t max_uid = prev_uid;
    for (std::uint32_t i = 0; i < h.tomb_count; ++i) {
        std::uint64_t const off = h.tomb_off + tomb_size * i;
        std::uint32_t const u = load_le<std::uint32_t>(p + off);
        std::uint64_t const mod = load_le<std::uint64_t>(p + off + 8);
        if (load_le<std::uint32_t>(p + off + 4) != 0) return corrupt(file, off + 4, "tomb zero", "not zero");
        if (u == 0 || u >= h.uidnext) return corrupt(file, off, "tomb uid", "not in [1, uidnext)");
        if (mod <= prev_tmod) return corrupt(file, off + 8, "tomb modseq", "not strictly increasing");
        if (mod <= h.vanished_floor || mod > h.base_modseq)
            return corrupt(file, off + 8, "tomb modseq", "not in (vanished_floor, base_modseq]");
        if (s.live.count(u) != 0) return corrupt(file, off, "tomb uid", "uid is live");
        if (!s.tomb_uids.insert(u).second) return corrupt(file, off, "tomb uid", "repeated");
        if (s.by_mod.count(mod) != 0) return corrupt(file, off + 8, "tomb modseq", "equals a live modseq");
        prev_tmod = mod;
        max_uid = std::max(max_uid, u);
        s.tombs.emplace_back(mod, u);
    }
    s.running_next = max_uid + 1; // max_uid < uidnext <= 2^32-1: no overflow
    s.last_tail_mod = h.base_modseq;
    s.chain = seed;
    s.tail_count = 0;
    return {};
}

/// \brief Validates and applies tail entries [s.tail_count, h.tail_count) (§9.3) in
/// place; `first` points at the bytes of entry `s.tail_count` (file offsets are used only
/// in error messages). On failure `s` is partly updated: the caller discards it.
[[nodiscard]] inline result<void> replay_tail(mailbox_state& s, slot_fields const& h, std::byte const* first,
                                              std::string const& file) {
    std::uint32_t const seed = h.seed();
    std::uint32_t const start = s.tail_count;
    for (std::uint32_t i = start; i < h.tail_count; ++i) {
        std::uint64_t const off = h.tail_off + entry_size * i;
        std::byte const* e = first + entry_size * (i - start);
        if (!entry_crc_ok(e, seed)) return corrupt(file, off + 92, "crc", "tail entry checksum mismatch");
        s.chain = crc32c_update(s.chain, std::span<std::byte const>(e, entry_size));
        std::uint8_t const kind = load_le<std::uint8_t>(e + 4);
        if (kind == kind_kwdef) {
            std::uint8_t const len = load_le<std::uint8_t>(e + 5);
            if (load_le<std::uint32_t>(e) != 0) return corrupt(file, off, "zero", "not zero");
            if (load_le<std::uint16_t>(e + 6) != s.kw.size()) return corrupt(file, off + 6, "kw_index", "not the running count");
            if (s.kw.size() >= h.kw_count) return corrupt(file, off + 6, "kw_index", "above kw_count");
            if (load_le<std::uint64_t>(e + 8) > h.highestmodseq) return corrupt(file, off + 8, "defined_at", "above highestmodseq");
            if (len == 0 || len > 76) return corrupt(file, off + 5, "name_len", "not in 1..76");
            std::string name(reinterpret_cast<char const*>(e + 16), len);
            for (std::size_t j = 16 + std::size_t{len}; j < 92; ++j)
                if (e[j] != std::byte{0}) return corrupt(file, off + j, "name", "padding not zero");
            if (!valid_keyword_name(name)) return corrupt(file, off + 16, "name", "not a keyword atom");
            if (!s.kw_index.emplace(name, static_cast<std::uint32_t>(s.kw.size())).second)
                return corrupt(file, off + 16, "name", "duplicate keyword");
            s.kw.push_back(std::move(name));
        } else if (kind == kind_msg) {
            msg_image m = decode_msg(e);
            if (auto [f, why] = check_msg_fields(m, static_cast<std::uint32_t>(s.kw.size())); !f.empty())
                return corrupt(file, off, f, why);
            if (m.modseq <= s.last_tail_mod) return corrupt(file, off + 8, "modseq", "not above the previous modseq");
            if (m.modseq > h.highestmodseq) return corrupt(file, off + 8, "modseq", "above highestmodseq");
            if (m.uid >= h.uidnext) return corrupt(file, off, "uid", "not below uidnext");
            bool const expunged = (m.state & state_expunged) != 0;
            auto it = s.live.find(m.uid);
            if (m.uid >= s.running_next) {
                if (expunged) return corrupt(file, off + 6, "state", "expunge of a never appended uid");
                if (m.created_modseq != m.modseq) return corrupt(file, off + 16, "created_modseq", "append with created_modseq != modseq");
                s.running_next = m.uid + 1;
                keyword_set k = s.names_of(m);
                s.live.emplace_hint(s.live.end(), m.uid, live_msg{m, std::move(k)});
                s.by_mod.emplace_hint(s.by_mod.end(), m.modseq, m.uid);
            } else if (it == s.live.end()) {
                return corrupt(file, off, "uid", "change to vanished uid");
            } else {
                if (!m.same_immutable(it->second.img)) return corrupt(file, off, "uid", "immutable fields changed");
                s.by_mod.erase(it->second.img.modseq);
                if (expunged) {
                    s.live.erase(it);
                    s.tombs.emplace_back(m.modseq, m.uid);
                    s.tomb_uids.insert(m.uid);
                } else {
                    it->second.kws = s.names_of(m);
                    it->second.img = m;
                    s.by_mod.emplace_hint(s.by_mod.end(), m.modseq, m.uid);
                }
            }
            s.last_tail_mod = m.modseq;
        } else {
            return corrupt(file, off + 4, "kind", "unknown entry kind");
        }
        s.tail_count = i + 1;
    }
    if (s.chain != h.tail_chain_crc) return corrupt(file, h.tail_off, "tail_chain_crc", "chain checksum mismatch");
    if (s.kw.size() != h.kw_count) return corrupt(file, 84, "kw_count", "does not match the keywords defined");
    if (s.live.size() != h.exists) return corrupt(file, 160, "exists", "does not match the live messages");
    s.hdr = h;
    return {};
}

/// \brief Encodes a complete index file for `s` (a new base with an empty tail) whose
/// slot holds generation `gen` (placed by parity) with file id `file_id`.
[[nodiscard]] inline std::vector<std::byte> build_index_file(mailbox_state const& s, slot_fields h,
                                                             std::uint64_t gen, std::uint64_t file_id) {
    h.generation = gen;
    h.file_id = file_id;
    h.flags = 0;
    h.live_count = static_cast<std::uint32_t>(s.live.size());
    h.tomb_count = static_cast<std::uint32_t>(s.tombs.size());
    h.kw_count = h.base_kw_count = static_cast<std::uint32_t>(s.kw.size());
    h.base_modseq = h.highestmodseq;
    h.tail_count = 0;
    h.exists = h.live_count;
    h.derive_offsets();
    std::uint32_t const seed = h.seed();
    std::vector<std::byte> f(h.tail_off, std::byte{0});
    std::uint32_t i = 0;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> perm;
    for (auto const& [u, m] : s.live) {
        encode_msg(f.data() + h.live_off + entry_size * i, m.img, seed);
        perm.emplace_back(m.img.modseq, i);
        ++i;
    }
    std::sort(perm.begin(), perm.end());
    for (std::size_t j = 0; j < perm.size(); ++j) store_le<std::uint32_t>(f.data() + h.mperm_off + 4 * j, perm[j].second);
    for (std::size_t j = 0; j < s.tombs.size(); ++j) {
        store_le<std::uint32_t>(f.data() + h.tomb_off + tomb_size * j, s.tombs[j].second);
        store_le<std::uint64_t>(f.data() + h.tomb_off + tomb_size * j + 8, s.tombs[j].first);
    }
    for (std::size_t j = 0; j < s.kw.size(); ++j)
        encode_kwdef(f.data() + h.kw_off + entry_size * j, static_cast<std::uint16_t>(j), h.highestmodseq, s.kw[j], seed);
    h.base_crc = crc32c_update(seed, std::span<std::byte const>(f.data() + base_off, h.tail_off - base_off));
    h.tail_chain_crc = seed;
    auto const slot = encode_slot(h);
    std::memcpy(f.data() + (gen % 2 == 0 ? 0 : slot_b_off), slot.data(), slot_size);
    return f;
}

[[nodiscard]] inline std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

} // namespace mmap_detail

/// \brief The reference on-disk mailbox (see the file comment).
class mmap_mailbox {
public:
    /// \brief A closed handle on the mailbox directory `dir` (`open()` before use; every
    /// backend call opens on demand).
    explicit mmap_mailbox(std::string dir, mmap_options opt = {})
        : dir_(std::move(dir)), opt_(std::move(opt)) {
        if (opt_.name.empty()) opt_.name = dir_;
    }

    /// \brief Creates the mailbox directory `dir` (its parent must exist) with an empty
    /// index of UIDVALIDITY `v` (0: the current time). `already_exists` if it exists.
    [[nodiscard]] static result<void> create(std::string const& dir, uid_validity v = {}) {
        using namespace mmap_detail;
        if (::mkdir(dir.c_str(), 0700) != 0) return sys_error(errno, "cannot create mailbox", dir);
        for (char const* sub : {"/msg", "/tmp"})
            if (::mkdir((dir + sub).c_str(), 0700) != 0) return sys_error(errno, "cannot create", dir + sub);
        for (char const* lk : {"/writer.lock", "/publish.lock"}) {
            auto fd = unique_fd::open(dir + lk, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (!fd) return std::move(fd).error_value();
            if (auto r = fd->sync(true); !r) return r;
        }
        mailbox_state s;
        std::uint32_t validity = value(v);
        if (validity == 0) validity = static_cast<std::uint32_t>(std::max<std::int64_t>(1, ::time(nullptr)));
        s.hdr.uidvalidity = validity;
        s.hdr.uidnext = 1;
        s.hdr.highestmodseq = 1;
        s.hdr.vanished_floor = 0;
        s.hdr.commit_time_ns = now_ns();
        auto const bytes = build_index_file(s, s.hdr, 1, random_u64());
        if (auto r = atomic_replace(dir, dir + "/index", dir + "/tmp/index.new", bytes); !r) return r;
        return sync_dir(dir + "/msg");
    }

    /// \brief Deletes the mailbox directory and everything in it. Open handles then answer
    /// `not_found`.
    [[nodiscard]] static result<void> remove(std::string const& dir) {
        using namespace mmap_detail;
        struct stat st {};
        if (::stat((dir + "/index").c_str(), &st) != 0) return sys_error(errno, "no mailbox at", dir);
        for (char const* sub : {"/msg", "/tmp"}) {
            std::string const d = dir + sub;
            if (DIR* dp = ::opendir(d.c_str())) {
                std::vector<std::string> names;
                while (dirent* de = ::readdir(dp))
                    if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) names.emplace_back(de->d_name);
                ::closedir(dp);
                for (auto const& n : names) ::unlink((d + "/" + n).c_str());
            }
            ::rmdir(d.c_str());
        }
        ::unlink((dir + "/index").c_str());
        ::unlink((dir + "/writer.lock").c_str());
        ::unlink((dir + "/publish.lock").c_str());
        if (::rmdir(dir.c_str()) != 0) return sys_error(errno, "cannot remove", dir);
        return {};
    }

    mmap_mailbox(mmap_mailbox&&) noexcept = default;
    mmap_mailbox& operator=(mmap_mailbox&&) noexcept = default;

    // ------------------------------------------------------------ openable_backend
    [[nodiscard]] std::string_view name() const noexcept { return opt_.name; }
    [[nodiscard]] std::string const& directory() const noexcept { return dir_; }

    result<void> open() {
        if (is_open()) return {};
        if (auto r = load_full(); !r) return ctx(std::move(r).error_value());
        return {};
    }
    void close() noexcept {
        fd_.reset();
        wlock_.reset();
        plock_.reset();
        st_ = {};
        poisoned_ = false;
        wlock_held_ = false;
    }
    [[nodiscard]] bool is_open() const noexcept { return static_cast<bool>(fd_); }

    // ------------------------------------------------------------ backend
    result<mailbox_status> status() {
        if (auto r = refresh(); !r) return std::move(r).error_value();
        mailbox_status s;
        s.exists = static_cast<std::uint32_t>(st_.live.size());
        s.validity = uid_validity{st_.hdr.uidvalidity};
        s.uid_next = uid{st_.hdr.uidnext};
        s.highest_modseq = modseq{st_.hdr.highestmodseq};
        s.guid = std::nullopt;
        return s;
    }

    result<uid_set> search(search_program const& p) {
        if (auto r = refresh(); !r) return std::move(r).error_value();
        uid_set out;
        for (auto const& [u, m] : st_.live)
            if (p.matches(meta(m))) out.add(u);
        return out;
    }

    result<uid_set> search(search_program const& p, uid_set const& within) {
        if (auto r = refresh(); !r) return std::move(r).error_value();
        uid_set out;
        visit(within, [&](std::uint32_t u, mmap_detail::live_msg const& m) {
            if (p.matches(meta(m))) out.add(u);
        });
        return out;
    }

    /// \brief Changed and expunged UIDs above `since` (§8.1/§8.2): O(log N + k) on the
    /// materialised modseq index; `expunged` is nullopt below `vanished_floor`.
    result<change_set> changes_since(modseq since) {
        if (auto r = refresh(); !r) return std::move(r).error_value();
        change_set c;
        c.highest_modseq = modseq{st_.hdr.highestmodseq};
        std::vector<std::uint32_t> changed;
        for (auto it = st_.by_mod.upper_bound(value(since)); it != st_.by_mod.end(); ++it) changed.push_back(it->second);
        c.changed.insert_unsorted(std::span<std::uint32_t>(changed));
        if (value(since) < st_.hdr.vanished_floor) {
            c.expunged = std::nullopt;
        } else {
            std::vector<std::uint32_t> v;
            auto it = std::upper_bound(st_.tombs.begin(), st_.tombs.end(), value(since),
                                       [](std::uint64_t x, auto const& e) { return x < e.first; });
            for (; it != st_.tombs.end(); ++it) v.push_back(it->second);
            uid_set ex;
            ex.insert_unsorted(std::span<std::uint32_t>(v));
            c.expunged = std::move(ex);
        }
        return c;
    }

    result<std::vector<message_record>> fetch(uid_set const& uids, fetch_fields fields) {
        if (auto r = refresh(); !r) return std::move(r).error_value();
        std::vector<message_record> out;
        visit(uids, [&](std::uint32_t u, mmap_detail::live_msg const& m) {
            message_record rec;
            rec.id = uid{u};
            if (has(fields, fetch_fields::received)) rec.received = mail_time{m.img.date};
            if (has(fields, fetch_fields::flags)) {
                rec.flags = flag_set::from_bits(m.img.sysflags);
                rec.keywords = m.kws;
            }
            if (has(fields, fetch_fields::size)) rec.size = m.img.size;
            out.push_back(std::move(rec));
        });
        return out;
    }

    result<void> update_flags(uid_set const& uids, modify_op op, flag_set f) {
        return transact([&](txn& t) -> result<void> {
            std::vector<std::uint32_t> targets;
            visit(uids, [&](std::uint32_t u, mmap_detail::live_msg const&) { targets.push_back(u); });
            for (auto u : targets) {
                auto const& m = st_.live.find(u)->second;
                auto const nf = apply(flag_set::from_bits(m.img.sysflags), op, f).storable();
                if (nf.bits() == m.img.sysflags) continue;
                mmap_detail::msg_image img = m.img;
                img.sysflags = nf.bits();
                t.add_msg(img);
            }
            return {};
        });
    }

    result<void> update_keywords(uid_set const& uids, modify_op op, keyword_set const& k) {
        return transact([&](txn& t) -> result<void> {
            std::vector<std::uint32_t> targets;
            visit(uids, [&](std::uint32_t u, mmap_detail::live_msg const&) { targets.push_back(u); });
            for (auto u : targets) {
                auto const& m = st_.live.find(u)->second;
                keyword_set nk = apply(m.kws, op, k);
                if (nk == m.kws) continue;
                mmap_detail::msg_image img = m.img;
                auto r = t.set_keywords(img, nk);
                if (!r) return r;
                t.add_msg(img);
            }
            return {};
        });
    }

    result<void> expunge(uid_set const& uids) {
        std::vector<std::uint32_t> gone;
        auto r = transact([&](txn& t) -> result<void> {
            visit(uids, [&](std::uint32_t u, mmap_detail::live_msg const& m) {
                mmap_detail::msg_image img = m.img;
                img.state = mmap_detail::state_expunged;
                t.add_msg(img);
                gone.push_back(u);
            });
            return {};
        });
        if (!r) return r;
        // W9 housekeeping: the tombstones are committed; the files may go.
        for (auto u : gone) ::unlink(msg_path(u).c_str());
        return {};
    }

    // ------------------------------------------------------------ host API
    /// \brief Appends a message (its octets, received date, flags, keywords) durably;
    /// returns its UID. The message file is written to tmp/, fsynced, renamed to
    /// msg/<uid> and the msg/ directory fsynced before the index commit (§6.1).
    result<uid> append(std::string_view bytes, mail_time received, flag_set flags = {}, keyword_set const& keywords = {}) {
        using namespace mmap_detail;
        if (value(received) < min_date || value(received) > max_date)
            return ctx(error{errc::invalid_argument, "received date out of range"});
        if (bytes.size() > max_message_size) return ctx(error{errc::invalid_argument, "message too large"});
        // 1. Stage outside any lock.
        if (auto r = ensure_open(); !r) return std::move(r).error_value();
        std::string tmp = dir_ + "/tmp/" + std::to_string(random_u64());
        {
            auto fd = unique_fd::open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
            for (int attempt = 0; !fd && fd.error_value().is(errc::already_exists) && attempt < 8; ++attempt) {
                tmp = dir_ + "/tmp/" + std::to_string(random_u64());
                fd = unique_fd::open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
            }
            if (!fd) return ctx(std::move(fd).error_value());
            auto const data = std::as_bytes(std::span(bytes.data(), bytes.size()));
            if (auto r = fd->pwrite_all(data, 0); !r) {
                ::unlink(tmp.c_str());
                return ctx(std::move(r).error_value());
            }
            if (auto r = fd->sync(true); !r) {
                ::unlink(tmp.c_str());
                return ctx(std::move(r).error_value());
            }
        }
        auto const digest = sha256(std::as_bytes(std::span(bytes.data(), bytes.size())));
        std::uint32_t assigned = 0;
        auto r = transact([&](txn& t) -> result<void> {
            if (st_.hdr.uidnext == 0xFFFFFFFFU) return error{errc::not_possible, "UIDs exhausted"};
            msg_image img;
            img.uid = st_.hdr.uidnext;
            img.sysflags = flags.storable().bits();
            img.date = value(received);
            img.size = bytes.size();
            std::copy_n(digest.begin(), 16, img.content_id.begin());
            if (auto k = t.set_keywords(img, keywords); !k) return k;
            if (::rename(tmp.c_str(), msg_path(img.uid).c_str()) != 0)
                return sys_error(errno, "cannot rename into", msg_path(img.uid));
            if (auto s = sync_dir(dir_ + "/msg"); !s) return s;
            t.add_msg(img, true);
            assigned = img.uid;
            return {};
        });
        if (!r) {
            ::unlink(tmp.c_str());
            return std::move(r).error_value();
        }
        return uid{assigned};
    }

    /// \brief The octets of live message `u` (`not_found` if it is not live).
    result<std::string> read_message(uid u) {
        using namespace mmap_detail;
        if (auto r = refresh(); !r) return std::move(r).error_value();
        if (st_.live.count(value(u)) == 0) return ctx(error{errc::not_found, "no message " + std::to_string(value(u))});
        auto fd = unique_fd::open(msg_path(value(u)), O_RDONLY);
        if (!fd) return ctx(std::move(fd).error_value());
        auto stt = fd->stat();
        if (!stt) return ctx(std::move(stt).error_value());
        std::string out(static_cast<std::size_t>(stt->st_size), '\0');
        if (auto r = fd->pread_all(std::as_writable_bytes(std::span(out.data(), out.size())), 0); !r)
            return ctx(std::move(r).error_value());
        return out;
    }

    /// \brief Compaction (§8.4): rewrites the index as a new base with an empty tail (new
    /// file_id, generation continued), fsync, rename over `index`, directory fsync; marks
    /// the old file RETIRED. Readers holding the old file notice the new inode. Then
    /// removes orphaned msg/ files (not live) while still holding the writer lock.
    result<void> compact() {
        using namespace mmap_detail;
        if (auto r = begin_write(); !r) return r;
        struct unlock_guard {
            mmap_mailbox* self;
            ~unlock_guard() { unlock_file(self->wlock_); }
        } guard{this};
        auto bytes = build_index_file(st_, st_.hdr, st_.hdr.generation + 1, random_u64());
        if (auto r = atomic_replace(dir_, dir_ + "/index", dir_ + "/tmp/index.new", bytes); !r)
            return ctx(std::move(r).error_value());
        // Advisory RETIRED mark in the old file's inactive slot (no fsync needed).
        slot_fields old = st_.hdr;
        old.generation += 1;
        old.flags |= flag_retired;
        auto const raw = encode_slot(old);
        if (lock_file(plock_, LOCK_EX, opt_.lock_timeout)) {
            (void)fd_.pwrite_all(raw, old.generation % 2 == 0 ? 0 : slot_b_off);
            unlock_file(plock_);
        }
        sweep_messages(); // before load_full, which reopens the lock files (releasing the lock)
        if (auto r = load_full(); !r) return ctx(std::move(r).error_value());
        return {};
    }

    /// \brief Tail entries committed in the current file (a compaction trigger input).
    [[nodiscard]] std::uint32_t tail_count() const noexcept { return st_.hdr.tail_count; }
    /// \brief The generation in force.
    [[nodiscard]] std::uint64_t generation() const noexcept { return st_.hdr.generation; }

private:
    // A transaction being built: entries appended to `bytes`, the header moving with them.
    struct txn {
        mmap_mailbox* self;
        mmap_detail::slot_fields h;
        std::vector<std::byte> bytes;
        std::vector<std::string> new_kw;

        void add_msg(mmap_detail::msg_image img, bool is_append = false) {
            h.highestmodseq += 1;
            img.modseq = h.highestmodseq;
            if (is_append) {
                img.created_modseq = img.modseq;
                h.uidnext = img.uid + 1;
                h.exists += 1;
            } else if ((img.state & mmap_detail::state_expunged) != 0) {
                h.exists -= 1;
            }
            std::size_t const at = bytes.size();
            bytes.resize(at + mmap_detail::entry_size);
            mmap_detail::encode_msg(bytes.data() + at, img, h.seed());
            h.tail_count += 1;
        }
        result<void> set_keywords(mmap_detail::msg_image& img, keyword_set const& k) {
            img.keywords = {};
            for (auto const& name : k) {
                std::uint32_t idx = 0;
                if (auto it = self->st_.kw_index.find(name); it != self->st_.kw_index.end()) {
                    idx = it->second;
                } else if (auto jt = std::find(new_kw.begin(), new_kw.end(), name); jt != new_kw.end()) {
                    idx = static_cast<std::uint32_t>(self->st_.kw.size() + static_cast<std::size_t>(jt - new_kw.begin()));
                } else {
                    if (!mmap_detail::valid_keyword_name(name))
                        return error{errc::invalid_argument, "invalid keyword name '" + name + "'"};
                    if (h.kw_count >= mmap_detail::max_keywords)
                        return error{errc::not_possible, "more than 128 keywords in the mailbox"};
                    idx = h.kw_count;
                    new_kw.push_back(name);
                    std::size_t const at = bytes.size();
                    bytes.resize(at + mmap_detail::entry_size);
                    mmap_detail::encode_kwdef(bytes.data() + at, static_cast<std::uint16_t>(idx), h.highestmodseq, name, h.seed());
                    h.kw_count += 1;
                    h.tail_count += 1;
                }
                img.set_kw(idx);
            }
            return {};
        }
    };

    // Orphan sweep (§8.3), under the writer lock: removes msg/<n> files that are not live
    // messages (a UID >= uidnext left by a writer killed before its commit, or an expunged
    // message whose unlink did not happen). tmp/ is not swept: appends stage there
    // outside the writer lock.
    void sweep_messages() {
        std::string const d = dir_ + "/msg";
        DIR* dp = ::opendir(d.c_str());
        if (dp == nullptr) return;
        std::vector<std::string> gone;
        while (dirent* de = ::readdir(dp)) {
            std::string_view const n = de->d_name;
            if (n.empty() || n.size() > 10 || n.find_first_not_of("0123456789") != std::string_view::npos) continue;
            std::uint64_t v = 0;
            for (char c : n) v = v * 10 + static_cast<std::uint64_t>(c - '0');
            if (v > 0xFFFFFFFFULL || st_.live.count(static_cast<std::uint32_t>(v)) == 0) gone.emplace_back(n);
        }
        ::closedir(dp);
        for (auto const& n : gone) ::unlink((d + "/" + n).c_str());
    }

    error ctx(error e) const { return std::move(e).with_context("for backend mailbox " + opt_.name); }

    [[nodiscard]] std::string index_path() const { return dir_ + "/index"; }
    [[nodiscard]] std::string msg_path(std::uint32_t u) const { return dir_ + "/msg/" + std::to_string(u); }

    static message_meta meta(mmap_detail::live_msg const& m) noexcept {
        return {flag_set::from_bits(m.img.sysflags), &m.kws, mail_time{m.img.date}, m.img.size};
    }

    template <class F>
    void visit(uid_set const& uids, F&& f) const {
        for (auto const& r : uids) {
            for (auto it = st_.live.lower_bound(r.first); it != st_.live.end() && it->first <= r.last; ++it)
                f(it->first, it->second);
            if (r.last == 0xFFFFFFFFU) break;
        }
    }

    result<void> ensure_open() {
        if (poisoned_) close();
        if (is_open()) return {};
        if (auto r = load_full(); !r) return ctx(std::move(r).error_value());
        return {};
    }

    // Opens (or reopens) the index and loads the newest valid generation (§7).
    result<void> load_full() {
        using namespace mmap_detail;
        struct stat dst {};
        if (::stat(dir_.c_str(), &dst) != 0) return error{errc::not_found, "Mailbox doesn't exist"};
        if (!opt_.allow_remote_fs)
            if (auto r = check_local_filesystem(dir_); !r) return r;
        auto fd = unique_fd::open(index_path(), O_RDWR | O_NOFOLLOW);
        if (!fd) {
            if (fd.error_value().is(errc::not_found)) return error{errc::not_found, "Mailbox doesn't exist"};
            return std::move(fd).error_value();
        }
        auto wl = unique_fd::open(dir_ + "/writer.lock", O_RDWR);
        if (!wl) return std::move(wl).error_value();
        auto pl = unique_fd::open(dir_ + "/publish.lock", O_RDWR);
        if (!pl) return std::move(pl).error_value();
        auto sr = fd->stat();
        if (!sr) return std::move(sr).error_value();
        mailbox_state s;
        s.ino = static_cast<std::uint64_t>(sr->st_ino);
        auto h = read_slots(*fd, *pl, opt_.lock_timeout);
        if (!h) return std::move(h).error_value();
        s.hdr = *h;
        if (auto r = load_generation(s, *fd, *h); !r) return r;
        fd_ = std::move(*fd);
        wlock_ = std::move(*wl);
        plock_ = std::move(*pl);
        st_ = std::move(s);
        poisoned_ = false;
        return {};
    }

    // Maps the committed range of `h` and loads base + tail into `s` (fresh).
    static result<void> load_generation(mmap_detail::mailbox_state& s, mmap_detail::unique_fd const& fd,
                                        mmap_detail::slot_fields const& h) {
        using namespace mmap_detail;
        mapping m;
        if (auto r = mapping::map(m, fd, h.committed_end()); !r) return r;
        if (auto r = load_base(s, m.data(), fd.path()); !r) return r;
        return replay_tail(s, h, m.data() + h.tail_off, fd.path());
    }

    // Copies both slots under the shared publish lock and returns the newest valid one.
    static result<mmap_detail::slot_fields> read_slots(mmap_detail::unique_fd const& fd, mmap_detail::unique_fd const& pl,
                                                       std::chrono::milliseconds timeout) {
        using namespace mmap_detail;
        auto st = fd.stat();
        if (!st) return std::move(st).error_value();
        auto const size = static_cast<std::uint64_t>(st->st_size);
        if (size < base_off) return corrupt(fd.path(), 0, "file size", "smaller than 8192 bytes");
        if (size > max_index_size) return corrupt(fd.path(), 0, "file size", "above the 4 GiB limit");
        std::array<std::byte, slot_size> a{}, b{};
        if (auto r = lock_file(pl, LOCK_SH, timeout); !r) return std::move(r).error_value();
        auto ra = fd.pread_all(a, 0);
        auto rb = fd.pread_all(b, slot_b_off);
        unlock_file(pl);
        if (!ra) return std::move(ra).error_value();
        if (!rb) return std::move(rb).error_value();
        slot_fields const sa = decode_slot(a), sb = decode_slot(b);
        auto ca = check_slot(sa, a, 0, size, fd.path());
        auto cb = check_slot(sb, b, slot_b_off, size, fd.path());
        if (!ca && !cb) return corrupt(fd.path(), 0, "header", "no valid header slot (" + ca.error_value().message + "; " + cb.error_value().message + ")");
        if (ca && (!cb || sa.generation > sb.generation)) return sa;
        return sb;
    }

    // Brings the in-memory state up to the newest committed generation.
    result<void> refresh() {
        using namespace mmap_detail;
        if (auto r = ensure_open(); !r) return r;
        struct stat st {};
        if (::stat(index_path().c_str(), &st) != 0) {
            int const e = errno;
            if (e == ENOENT || e == ENOTDIR) return ctx(error{errc::not_found, "Mailbox doesn't exist"});
            return ctx(sys_error(e, "cannot stat", index_path()));
        }
        auto own = fd_.stat();
        if (!own) return ctx(std::move(own).error_value());
        if (static_cast<std::uint64_t>(st.st_ino) != st_.ino || own->st_nlink == 0) {
            close();
            return ensure_open();
        }
        auto h = read_slots(fd_, plock_, opt_.lock_timeout);
        if (!h) return ctx(std::move(h).error_value());
        if (h->generation == st_.hdr.generation && h->file_id == st_.hdr.file_id) return {};
        bool const same_base = h->file_id == st_.hdr.file_id && h->base_crc == st_.hdr.base_crc &&
                               h->tail_off == st_.hdr.tail_off && h->generation > st_.hdr.generation &&
                               h->tail_count >= st_.hdr.tail_count && h->uidvalidity == st_.hdr.uidvalidity;
        if (same_base && (h->flags & flag_retired) == 0) {
            mailbox_state s = st_; // O(N) copy keeps a failed replay from leaving half a state
            mapping m;
            if (auto r = mapping::map(m, fd_, h->committed_end()); !r) return ctx(std::move(r).error_value());
            if (auto r = replay_tail(s, *h, m.data() + st_.hdr.committed_end(), fd_.path()); r) {
                st_ = std::move(s);
                return {};
            }
        }
        close();
        return ensure_open();
    }

    // Takes the writer lock, runs recovery (fdatasync, catch up). On success the writer
    // lock is held.
    result<void> begin_write() {
        using namespace mmap_detail;
        if (auto r = ensure_open(); !r) return r;
        if (st_.hdr.ro_compat != 0) return ctx(error{errc::unsupported, "index has read-only features"});
        if (auto r = lock_file(wlock_, LOCK_EX, opt_.lock_timeout); !r) return ctx(std::move(r).error_value());
        if (auto r = fd_.sync(); !r) {
            unlock_file(wlock_);
            poisoned_ = true;
            return ctx(std::move(r).error_value());
        }
        wlock_held_ = true;
        if (auto r = refresh(); !r) {
            if (wlock_) unlock_file(wlock_);
            wlock_held_ = false;
            return r;
        }
        // refresh may have reopened (new inode): the lock then belongs to the old fd,
        // which was closed (released); take it again on the new one.
        if (!wlock_held_) {
            if (auto r = lock_file(wlock_, LOCK_EX, opt_.lock_timeout); !r) return ctx(std::move(r).error_value());
            wlock_held_ = true;
            if (auto r = refresh(); !r) {
                unlock_file(wlock_);
                wlock_held_ = false;
                return r;
            }
        }
        return {};
    }

    // One transaction: writer lock, recovery, `build`, commit W1..W8.
    template <class F>
    result<void> transact(F&& build) {
        using namespace mmap_detail;
        if (auto r = begin_write(); !r) return r;
        struct guard_t {
            mmap_mailbox* self;
            ~guard_t() {
                if (self->wlock_) unlock_file(self->wlock_);
                self->wlock_held_ = false;
            }
        } guard{this};
        txn t{this, st_.hdr, {}, {}};
        if (auto r = build(t); !r) {
            auto e = std::move(r).error_value();
            return ctx(std::move(e));
        }
        if (t.bytes.empty()) return {}; // a no-op writes nothing (B5)
        if (auto r = commit(t); !r) return ctx(std::move(r).error_value());
        return {};
    }

    // W1..W8 of §6.2.
    result<void> commit(txn& t) {
        using namespace mmap_detail;
        slot_fields& h = t.h;
        if (h.highestmodseq > max_modseq) return error{errc::not_possible, "modseq space exhausted"};
        if (h.tail_count > max_tail_count) return error{errc::not_possible, "tail full; compact the mailbox"};
        std::uint64_t const end = st_.hdr.committed_end();
        // W1
        if (auto r = fd_.pwrite_all(t.bytes, end); !r) return r;
        // W2
        if (auto r = fd_.sync(); !r) {
            poisoned_ = true;
            return r;
        }
        // W3
        h.generation = st_.hdr.generation + 1;
        h.flags = 0;
        h.tail_chain_crc = crc32c_update(st_.chain, t.bytes);
        h.commit_time_ns = now_ns();
        auto const raw = encode_slot(h);
        std::uint64_t const at = h.generation % 2 == 0 ? 0 : slot_b_off;
        // W4
        if (auto r = lock_file(plock_, LOCK_EX, opt_.lock_timeout); !r)
            return error{errc::temporary, "publish lock held too long; see /proc/locks: " + r.error_value().message};
        std::array<std::byte, slot_size> const zero{};
        // W5
        if (auto r = fd_.pwrite_all(raw, at); !r) {
            (void)fd_.pwrite_all(zero, at);
            unlock_file(plock_);
            return r;
        }
        // W6
        if (auto r = fd_.sync(); !r) {
            (void)fd_.pwrite_all(zero, at);
            unlock_file(plock_);
            poisoned_ = true;
            auto e = std::move(r).error_value();
            e.message += " (commit outcome unknown: reopen and re-read the mailbox)";
            return e;
        }
        // W7
        unlock_file(plock_);
        // W8: apply our own entries (validated like any reader would).
        // On failure (a bug: we just built these entries) the half-applied state is never
        // used: the poisoned handle reloads from disk on the next call.
        if (auto r = replay_tail(st_, h, t.bytes.data(), fd_.path()); !r) {
            poisoned_ = true;
            return r;
        }
        return {};
    }

    std::string dir_;
    mmap_options opt_;
    mmap_detail::unique_fd fd_;
    mmap_detail::unique_fd wlock_;
    mmap_detail::unique_fd plock_;
    mmap_detail::mailbox_state st_;
    bool poisoned_ = false;
    bool wlock_held_ = false;
};

static_assert(backend<mmap_mailbox>);
static_assert(openable_backend<mmap_mailbox>);

VFOLDER_END_NAMESPACE

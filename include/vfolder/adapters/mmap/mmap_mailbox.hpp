/// \file
/// \brief `mmap_mailbox`: the reference on-disk mailbox (docs/mmap-format.md, after
/// MAILBOX-FORMAT.md): a directory with `index` (two header slots, an immutable base, an
/// append-only tail of 96-byte entries, all CRC-32C checked), `writer.lock`,
/// `publish.lock`, `msg/<uid>` and `tmp/`. Models `vfolder::backend`,
/// `openable_backend` and `closed_status_backend`.
///
/// Every handle is both reader and writer. A write takes `flock(writer.lock, LOCK_EX)` for
/// the transaction, catches up with the file, appends entries past the committed end,
/// fdatasyncs, publishes the other header slot under `flock(publish.lock, LOCK_EX)`,
/// fdatasyncs again and only then returns. Every call first refreshes (MAILBOX-FORMAT §7):
/// the slots are copied under the shared publish lock; an unchanged generation costs
/// nothing more; a grown tail of the same file is checked for monotonicity (else an
/// "inconsistent" error), and only its new entries are read, validated and applied; a
/// replaced file is reopened in full.
///
/// The reader holds a snapshot (§7): the base read in place from the committed bytes
/// (mapped, or read into a private buffer with `mmap_options::use_mmap = false`; shared
/// and reference-counted), plus an overlay built from the tail (O(T) memory). Queries
/// merge the two: lookups and changed-since are binary searches (O(log N + k)), never
/// a scan of the base. The base is validated in full at open by default, or entry by
/// entry on first use (`mmap_options::validate = lazy`).
///
/// The handles of one process on one directory share one reference-counted state (open
/// files, the snapshot, a mutex serialising the calls), keyed by the directory's
/// device and inode (`mmap_options::share_open`). The last one to close releases it,
/// compacting first when worthwhile (`mmap_options::auto_compact`).
#pragma once

#include <vfolder/adapters/mmap/detail/crc32c.hpp>
#include <vfolder/adapters/mmap/detail/hwm.hpp>
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
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
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
    /// Share one open state with the other handles of this process on the same directory
    /// (keyed by device and inode; §3 "one open object per path per process"). false: this
    /// handle has files and a state of its own, like a handle of another process.
    bool share_open = true;
    /// At `close()` of the last handle of the process: compact when worthwhile (§8.4), if
    /// the writer lock is free right now.
    bool auto_compact = true;
    /// Compaction is worthwhile when tail_count > max(this, live messages / 8), or the tail
    /// is larger than 8 MiB (§8.4).
    std::uint32_t compact_min_tail = 4096;
    /// Files in `tmp/` older than this are swept when a handle first writes (§8.3);
    /// younger ones may be another writer's staging.
    std::chrono::seconds stale_tmp_age{3600};
    /// A refresh that finds a writer publishing (the publish lock taken) keeps the
    /// snapshot it has instead of waiting (§7 Refresh step 1). Off by default: then a call
    /// that starts after another process acknowledged a commit always sees that commit.
    bool refresh_nowait = false;
    /// Tombstone retention at compaction (§8.4 step 1): the newest `tomb_keep_count`
    /// tombstones are always kept; older ones are pruned only when they are also known to
    /// be older than `tomb_keep_age`. The index holds no time per tombstone: a tombstone
    /// counts as that old once a compaction at least `tomb_keep_age` ago already had it
    /// (its modseq at or below that compaction's highestmodseq, recorded in the advisory
    /// sidecar `compact.times`; without it nothing is known to be old). Pruning raises
    /// `vanished_floor` to the largest pruned modseq.
    std::uint32_t tomb_keep_count = 100000;
    std::chrono::seconds tomb_keep_age{std::chrono::hours{24 * 90}};
    /// How an open checks the base (§7 step 5, §9.2). `full`: every LIVE, MPERM, TOMB and
    /// KW element and base_crc, O(N) (no per-message heap structure is built either way).
    /// `lazy`: only the O(1) structure (slot, KW entries, the last LIVE entry, the TOMB
    /// elements' ranges); each LIVE entry's CRC and fields are checked the first time a
    /// query touches it, which then fails with the same `corrupted` error. base_crc and
    /// the cross-entry rules (UID and MPERM order) are not checked in lazy mode.
    enum class validation { full, lazy };
    validation validate = validation::full;
    /// true: the committed range is mapped (PROT_READ, MAP_SHARED). false (no-mmap mode,
    /// §7): it is read with pread into a private buffer shared by the snapshots; an I/O
    /// error is then an error code, never a SIGBUS. Queries are identical.
    bool use_mmap = true;
    /// The `modseq.hwm` sidecar (§10 case 3) is rewritten (durably, before the commit that
    /// would pass it is published) with a mark between highestmodseq + step and
    /// highestmodseq + 2*step whenever a commit comes within step/2 of the mark: about once
    /// per `hwm_step` modseqs. Tests use a small step; at least 2.
    std::uint64_t hwm_step = mmap_detail::default_hwm_step;
};

/// \brief Counters of the reader's work on one open state (shared by the handles that
/// share it), to check costs: a refresh that finds no new generation reads only the two
/// header slots; one that finds a grown tail validates only the new entries.
struct mmap_reader_stats {
    std::uint64_t full_loads = 0;             ///< opens and reopens (each validates a whole file)
    std::uint64_t base_entries_validated = 0; ///< LIVE + TOMB + KW elements validated by full loads
    std::uint64_t tail_entries_validated = 0; ///< tail entries validated (loads, refreshes, own commits)
    std::uint64_t unchanged_refreshes = 0;    ///< refreshes that read only the header slots
    std::uint64_t incremental_refreshes = 0;  ///< refreshes that applied only new tail entries
    std::uint64_t busy_refreshes = 0;         ///< refreshes that kept the snapshot: a slot was being published
    std::uint64_t compactions = 0;            ///< compactions done through this state (explicit or automatic)
    std::uint64_t entries_touched = 0;        ///< base entries (LIVE, MPERM, TOMB) and overlay records read by queries and writes
    std::uint64_t lazy_entries_checked = 0;   ///< LIVE entries checked on first touch (lazy mode)
};

/// \brief What `mmap_mailbox::repair` found and did (§10).
struct mmap_repair_report {
    enum class action {
        none,     ///< the index validated: nothing was written
        salvaged, ///< case 2: the valid base and the valid tail prefix kept, msg/ reconciled
        rebuilt,  ///< case 3: no valid slot or no valid base: rebuilt from msg/ (new UIDVALIDITY)
    };
    action done = action::none;
    std::vector<std::string> problems;           ///< the validation errors that made repair necessary
    std::uint32_t base_live_kept = 0;            ///< LIVE records of the valid base kept
    std::uint32_t tail_entries_kept = 0;         ///< committed tail entries before the first bad one
    std::uint32_t tail_entries_dropped = 0;      ///< committed tail entries from the first bad one on
    std::vector<std::uint32_t> lost;             ///< live UIDs without a msg/ file: now tombstones
    std::vector<std::pair<std::uint32_t, std::uint32_t>> readded; ///< (old, new UID): files below uidnext without a record
    std::vector<std::uint32_t> recovered;        ///< files at or above uidnext: added with their own UID (case 3: every file)
    std::vector<std::uint32_t> removed;          ///< files of tombstones (case 2) or of readable expunges (case 3): deleted
    std::vector<std::string> skipped;            ///< msg/ files that could not be read or are too large (left in place)
    std::uint32_t old_uidvalidity = 0;           ///< 0: unknown (no valid slot)
    std::uint32_t new_uidvalidity = 0;
    std::uint64_t old_highestmodseq = 0;         ///< 0: unknown (no valid slot)
    std::uint64_t new_highestmodseq = 0;
    /// Whether UIDVALIDITY stayed: always for `salvaged` (the slot gives highestmodseq);
    /// for `rebuilt` only with a valid `modseq.hwm` sidecar of the mailbox's UIDVALIDITY
    /// (new modseqs then start above its mark, UIDs at or above its uidnext mark).
    bool uidvalidity_kept = false;
    std::string uidvalidity_why;                 ///< why it was kept or changed (human-readable)
    std::uint64_t hwm_modseq = 0;                ///< the valid sidecar's modseq mark used (0: none)
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

/// \brief A materialised mailbox state (every live message in a map): what `create` and
/// `repair` build a new file from, and what `check_built_file` compares such a file with.
/// The reader does not use it: it serves queries from a `snapshot`.
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

/// \brief The immutable committed bytes [0, n) of one index file, shared (reference
/// counted) by the snapshots that read them, so that an old snapshot outlives a reopen: a
/// MAP_SHARED mapping, a private pread copy (no-mmap mode), or bytes the caller owns
/// (validation of a buffer). Only ever read below `n`, which was checked against the file
/// size; the writer never shrinks a published file in place (no SIGBUS, §7 step 4).
struct region {
    mapping map;
    std::vector<std::byte> buf;
    std::byte const* p = nullptr;
    std::size_t n = 0;
};

/// \brief [0, size) of `fd`: mapped, or read into a private buffer when `!use_mmap`.
[[nodiscard]] inline result<std::shared_ptr<region const>> read_region(unique_fd const& fd, std::uint64_t size,
                                                                       bool use_mmap) {
    auto r = std::make_shared<region>();
    if (use_mmap) {
        if (auto m = mapping::map(r->map, fd, size); !m) return std::move(m).error_value();
        r->p = r->map.data();
    } else {
        r->buf.resize(static_cast<std::size_t>(size));
        if (auto m = fd.pread_all(r->buf, 0); !m) return std::move(m).error_value();
        r->p = r->buf.data();
    }
    r->n = static_cast<std::size_t>(size);
    return std::shared_ptr<region const>(std::move(r));
}

/// \brief A region over bytes owned by the caller (they must outlive its use).
[[nodiscard]] inline std::shared_ptr<region const> borrow_region(std::byte const* p, std::size_t n) {
    auto r = std::make_shared<region>();
    r->p = p;
    r->n = n;
    return r;
}

/// \brief The keyword names of images, cached per distinct keyword bitmask (a query
/// builds one name set per mask, not one per message).
class keyword_cache {
public:
    explicit keyword_cache(std::vector<std::string> const& kw) : kw_(kw) {}
    [[nodiscard]] keyword_set const& of(msg_image const& m) {
        auto it = cache_.find(m.keywords);
        if (it == cache_.end()) {
            keyword_set k;
            for (std::uint32_t i = 0; i < kw_.size(); ++i)
                if (m.has_kw(i)) k.insert(kw_[i]);
            it = cache_.emplace(m.keywords, std::move(k)).first;
        }
        return it->second;
    }

private:
    std::vector<std::string> const& kw_;
    std::map<std::array<std::uint8_t, 16>, keyword_set> cache_;
};

/// \brief What a reader holds of one generation (§7): the base read in place from the
/// committed bytes (`mem`), plus an overlay built from the tail: the latest tail image of
/// each UID the tail touched, the non-expunged tail images (`changes`, file order, so by
/// modseq), the tail tombstones, the UIDs the tail appended and the keyword table. Memory
/// O(T + K) besides the shared bytes (and one bit per LIVE entry in lazy mode).
///
/// Every value read from `mem` is copied first and then checked before use as an index
/// (§9.4). In lazy mode (`lazy`), a LIVE entry's §9.2 entry checks (CRC, fields) run the
/// first time it is touched (`verified`); TOMB elements and MPERM values are range-checked
/// at every use in both modes.
struct index_snapshot {
    slot_fields hdr;                                  // the slot in force
    std::uint64_t ino = 0;
    std::shared_ptr<region const> mem;                // the committed bytes (at least [0, tail_off))
    std::string file;                                 // for error messages
    bool lazy = false;
    mutable std::vector<std::uint64_t> verified;      // lazy: bit i = LIVE entry i checked
    std::vector<std::string> kw;                      // index -> name
    std::map<std::string, std::uint32_t, std::less<>> kw_index;
    std::unordered_map<std::uint32_t, msg_image> over;                 // uid -> latest tail image
    std::vector<std::pair<std::uint64_t, std::uint32_t>> changes;      // (modseq, uid): non-expunged tail images
    std::vector<std::pair<std::uint64_t, std::uint32_t>> tombs;        // (modseq, uid): tail expunges
    std::vector<std::uint32_t> appended;                               // UIDs appended by the tail, ascending
    // Tail replay state (§9.3).
    std::uint32_t tail_count = 0;
    std::uint32_t chain = 0;
    std::uint32_t running_next = 1;
    std::uint64_t last_tail_mod = 0;
    std::size_t live = 0;                             // live messages
    mutable std::uint64_t touched = 0;                // base entries and overlay records touched by queries
    mutable std::uint64_t lazily_checked = 0;         // LIVE entries checked on first touch (lazy mode)

    [[nodiscard]] keyword_set names_of(msg_image const& m) const {
        keyword_set k;
        for (std::uint32_t i = 0; i < kw.size(); ++i)
            if (m.has_kw(i)) k.insert(kw[i]);
        return k;
    }

    /// The §9.2 checks of one LIVE entry (at file offset `off`) that need no other entry.
    [[nodiscard]] result<msg_image> check_live_entry(std::byte const* e, std::uint64_t off) const {
        if (!entry_crc_ok(e, hdr.seed())) return corrupt(file, off + 92, "crc", "LIVE entry checksum mismatch");
        msg_image m = decode_msg(e);
        if (auto [f, why] = check_msg_fields(m, hdr.base_kw_count); !f.empty()) return corrupt(file, off, f, why);
        if (m.state != 0) return corrupt(file, off + 6, "state", "not 0 in LIVE");
        if (m.uid >= hdr.uidnext) return corrupt(file, off, "uid", "not below uidnext");
        if (m.modseq > hdr.base_modseq) return corrupt(file, off + 8, "modseq", "above base_modseq");
        return m;
    }

    /// LIVE entry `i`, copied out of the bytes (then checked on first touch in lazy mode).
    [[nodiscard]] result<msg_image> base_msg(std::uint32_t i) const {
        std::uint64_t const off = hdr.live_off + entry_size * i;
        if (i >= hdr.live_count || off + entry_size > mem->n) return corrupt(file, off, "live index", "out of range");
        ++touched;
        std::array<std::byte, entry_size> e{};
        std::memcpy(e.data(), mem->p + off, entry_size);
        if (lazy && ((verified[i / 64] >> (i % 64)) & 1U) == 0) {
            auto m = check_live_entry(e.data(), off);
            if (!m) return m;
            verified[i / 64] |= std::uint64_t{1} << (i % 64);
            ++lazily_checked;
            return m;
        }
        return decode_msg(e.data());
    }

    /// The UID of LIVE entry `i`.
    [[nodiscard]] result<std::uint32_t> base_uid(std::uint32_t i) const {
        if (lazy) {
            auto m = base_msg(i);
            if (!m) return std::move(m).error_value();
            return m->uid;
        }
        std::uint64_t const off = hdr.live_off + entry_size * i;
        if (i >= hdr.live_count || off + entry_size > mem->n) return corrupt(file, off, "live index", "out of range");
        ++touched;
        return load_le<std::uint32_t>(mem->p + off);
    }

    /// MPERM value `j`, checked to be a LIVE position.
    [[nodiscard]] result<std::uint32_t> mperm(std::uint32_t j) const {
        std::uint64_t const off = hdr.mperm_off + 4ULL * j;
        if (j >= hdr.live_count || off + 4 > mem->n) return corrupt(file, off, "mperm", "position out of range");
        ++touched;
        std::uint32_t const v = load_le<std::uint32_t>(mem->p + off);
        if (v >= hdr.live_count) return corrupt(file, off, "mperm", "index out of range");
        return v;
    }

    /// TOMB element `i` as (modseq, uid), range-checked.
    [[nodiscard]] result<std::pair<std::uint64_t, std::uint32_t>> base_tomb(std::uint32_t i) const {
        std::uint64_t const off = hdr.tomb_off + tomb_size * i;
        if (i >= hdr.tomb_count || off + tomb_size > mem->n) return corrupt(file, off, "tomb index", "out of range");
        ++touched;
        std::array<std::byte, tomb_size> t{};
        std::memcpy(t.data(), mem->p + off, tomb_size);
        std::uint32_t const u = load_le<std::uint32_t>(t.data());
        std::uint64_t const mod = load_le<std::uint64_t>(t.data() + 8);
        if (load_le<std::uint32_t>(t.data() + 4) != 0) return corrupt(file, off + 4, "tomb zero", "not zero");
        if (u == 0 || u >= hdr.uidnext) return corrupt(file, off, "tomb uid", "not in [1, uidnext)");
        if (mod <= hdr.vanished_floor || mod > hdr.base_modseq)
            return corrupt(file, off + 8, "tomb modseq", "not in (vanished_floor, base_modseq]");
        return std::pair<std::uint64_t, std::uint32_t>{mod, u};
    }

    /// The first LIVE position whose UID is >= u.
    [[nodiscard]] result<std::uint32_t> base_lower_bound(std::uint32_t u) const {
        std::uint32_t lo = 0, hi = hdr.live_count;
        while (lo < hi) {
            std::uint32_t const mid = lo + (hi - lo) / 2;
            auto x = base_uid(mid);
            if (!x) return std::move(x).error_value();
            if (*x < u) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// The current image of live message `u` (nullopt: not live): overlay, then LIVE.
    [[nodiscard]] result<std::optional<msg_image>> lookup(std::uint32_t u) const {
        if (auto it = over.find(u); it != over.end()) {
            ++touched;
            if ((it->second.state & state_expunged) != 0) return std::optional<msg_image>{};
            return std::optional<msg_image>(it->second);
        }
        if (hdr.live_count == 0 || (!appended.empty() && u >= appended.front())) return std::optional<msg_image>{};
        auto i = base_lower_bound(u);
        if (!i) return std::move(i).error_value();
        if (*i >= hdr.live_count) return std::optional<msg_image>{};
        auto m = base_msg(*i);
        if (!m) return std::move(m).error_value();
        if (m->uid != u) return std::optional<msg_image>{};
        return std::optional<msg_image>(*m);
    }

    /// A position in the live messages in UID order (LIVE, then the appended UIDs).
    struct cursor {
        std::uint32_t i = 0;
        std::size_t j = 0;
    };
    /// The cursor at the first live UID >= u.
    [[nodiscard]] result<cursor> seek(std::uint32_t u) const {
        cursor c;
        if (u > 1) {
            auto i = base_lower_bound(u);
            if (!i) return std::move(i).error_value();
            c.i = *i;
        }
        c.j = static_cast<std::size_t>(std::lower_bound(appended.begin(), appended.end(), u) - appended.begin());
        return c;
    }
    /// The next live message at `c` (nullopt: none left): base entries the overlay
    /// supersedes take their tail image, expunged ones are skipped.
    [[nodiscard]] result<std::optional<msg_image>> next(cursor& c) const {
        while (c.i < hdr.live_count) {
            auto m = base_msg(c.i++);
            if (!m) return std::move(m).error_value();
            if (!over.empty())
                if (auto o = over.find(m->uid); o != over.end()) {
                    if ((o->second.state & state_expunged) != 0) continue;
                    return std::optional<msg_image>(o->second);
                }
            return std::optional<msg_image>(*m);
        }
        while (c.j < appended.size()) {
            auto o = over.find(appended[c.j++]);
            ++touched;
            if (o == over.end() || (o->second.state & state_expunged) != 0) continue;
            return std::optional<msg_image>(o->second);
        }
        return std::optional<msg_image>{};
    }
    /// Calls f(image) for each live message with UID in [lo, hi], in UID order.
    template <class F>
    [[nodiscard]] result<void> for_each_live(std::uint32_t lo, std::uint32_t hi, F&& f) const {
        auto c = seek(lo);
        if (!c) return std::move(c).error_value();
        for (;;) {
            auto m = next(*c);
            if (!m) return std::move(m).error_value();
            if (!*m || (*m)->uid > hi) return {};
            f(**m);
        }
    }

    /// The first MPERM position whose message has a modseq above x.
    [[nodiscard]] result<std::uint32_t> mperm_upper_bound(std::uint64_t x) const {
        if (x >= hdr.base_modseq) return hdr.live_count; // every LIVE modseq is <= base_modseq
        std::uint32_t lo = 0, hi = hdr.live_count;
        while (lo < hi) {
            std::uint32_t const mid = lo + (hi - lo) / 2;
            auto v = mperm(mid);
            if (!v) return std::move(v).error_value();
            auto m = base_msg(*v);
            if (!m) return std::move(m).error_value();
            if (m->modseq <= x) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
    /// The first TOMB position with a modseq above x.
    [[nodiscard]] result<std::uint32_t> tomb_upper_bound(std::uint64_t x) const {
        if (x >= hdr.base_modseq) return hdr.tomb_count;
        std::uint32_t lo = 0, hi = hdr.tomb_count;
        while (lo < hi) {
            std::uint32_t const mid = lo + (hi - lo) / 2;
            auto t = base_tomb(mid);
            if (!t) return std::move(t).error_value();
            if (t->first <= x) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// UIDs of the live messages whose modseq is above x (§8.1), in modseq order.
    /// `limit`: at most that many; `mods` (if given) gets their modseqs.
    [[nodiscard]] result<std::vector<std::uint32_t>> changed_since(std::uint64_t x, std::size_t limit = SIZE_MAX,
                                                                   std::vector<std::uint64_t>* mods = nullptr) const {
        std::vector<std::uint32_t> out;
        auto j = mperm_upper_bound(x);
        if (!j) return std::move(j).error_value();
        for (std::uint32_t p = *j; p < hdr.live_count && out.size() < limit; ++p) {
            auto v = mperm(p);
            if (!v) return std::move(v).error_value();
            auto m = base_msg(*v);
            if (!m) return std::move(m).error_value();
            if (over.count(m->uid) != 0) continue; // the tail holds a newer image
            out.push_back(m->uid);
            if (mods != nullptr) mods->push_back(m->modseq);
        }
        auto it = std::upper_bound(changes.begin(), changes.end(), x,
                                   [](std::uint64_t y, auto const& e) { return y < e.first; });
        for (; it != changes.end() && out.size() < limit; ++it) {
            ++touched;
            auto o = over.find(it->second);
            if (o == over.end() || o->second.modseq != it->first) continue; // superseded later in the tail
            out.push_back(it->second);
            if (mods != nullptr) mods->push_back(it->first);
        }
        return out;
    }
    /// UIDs of the tombstones above x (§8.2; the caller checks the floor), in modseq order.
    [[nodiscard]] result<std::vector<std::uint32_t>> vanished_since(std::uint64_t x) const {
        std::vector<std::uint32_t> out;
        auto i = tomb_upper_bound(x);
        if (!i) return std::move(i).error_value();
        for (std::uint32_t p = *i; p < hdr.tomb_count; ++p) {
            auto t = base_tomb(p);
            if (!t) return std::move(t).error_value();
            out.push_back(t->second);
        }
        auto it = std::upper_bound(tombs.begin(), tombs.end(), x, [](std::uint64_t y, auto const& e) { return y < e.first; });
        for (; it != tombs.end(); ++it) {
            ++touched;
            out.push_back(it->second);
        }
        return out;
    }
    [[nodiscard]] std::size_t tomb_total() const noexcept { return std::size_t{hdr.tomb_count} + tombs.size(); }
    /// How many tombstones have a modseq at or below x.
    [[nodiscard]] result<std::size_t> tombs_at_or_below(std::uint64_t x) const {
        auto i = tomb_upper_bound(x);
        if (!i) return std::move(i).error_value();
        auto it = std::upper_bound(tombs.begin(), tombs.end(), x, [](std::uint64_t y, auto const& e) { return y < e.first; });
        return std::size_t{*i} + static_cast<std::size_t>(it - tombs.begin());
    }
    /// Every tombstone (base, then tail), ascending by modseq (O(E); for compaction).
    [[nodiscard]] result<std::vector<std::pair<std::uint64_t, std::uint32_t>>> all_tombs() const {
        std::vector<std::pair<std::uint64_t, std::uint32_t>> out;
        out.reserve(tomb_total());
        for (std::uint32_t i = 0; i < hdr.tomb_count; ++i) {
            auto t = base_tomb(i);
            if (!t) return std::move(t).error_value();
            out.push_back(*t);
        }
        out.insert(out.end(), tombs.begin(), tombs.end());
        return out;
    }
};

/// \brief Validates the base (§9.2) of `s.hdr` in `s.mem` (which covers at least
/// [0, tail_off)) and initialises the keyword table and the replay state of `s`. Full
/// (`!s.lazy`): base_crc, every LIVE, MPERM, TOMB and KW element, without per-message heap
/// structures (transient: one bit per LIVE entry, one set of tombstone UIDs). Lazy: the KW
/// entries (at most 128), the last LIVE entry and the TOMB elements' ranges (for the
/// running next UID); the other LIVE entries are checked when first touched.
[[nodiscard]] inline result<void> validate_base(index_snapshot& s) {
    slot_fields const& h = s.hdr;
    std::string const& file = s.file;
    if (s.mem == nullptr || s.mem->n < h.tail_off) return corrupt(file, 144, "tail_off", "beyond the bytes read");
    std::byte const* p = s.mem->p;
    std::uint32_t const seed = h.seed();
    s.kw.clear();
    s.kw_index.clear();
    s.verified.assign(s.lazy ? (std::size_t{h.live_count} + 63) / 64 : 0, 0);
    if (!s.lazy && crc32c_update(seed, std::span<std::byte const>(p + base_off, h.tail_off - base_off)) != h.base_crc)
        return corrupt(file, base_off, "base_crc", "checksum mismatch");
    // KW first: LIVE keyword bits are checked against base_kw_count.
    for (std::uint32_t i = 0; i < h.base_kw_count; ++i) {
        std::uint64_t const off = h.kw_off + entry_size * i;
        std::array<std::byte, entry_size> copy{};
        std::memcpy(copy.data(), p + off, entry_size);
        std::byte const* e = copy.data();
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
    for (std::uint64_t off = h.mperm_off + 4ULL * h.live_count; off < h.tomb_off; ++off)
        if (p[off] != std::byte{0}) return corrupt(file, off, "mperm", "padding not zero");
    std::uint32_t max_uid = 0;
    if (s.lazy) {
        if (h.live_count > 0) {
            auto last = s.base_msg(h.live_count - 1);
            if (!last) return std::move(last).error_value();
            max_uid = last->uid;
        }
        std::uint64_t prev_tmod = 0;
        for (std::uint32_t i = 0; i < h.tomb_count; ++i) {
            auto t = s.base_tomb(i);
            if (!t) return std::move(t).error_value();
            if (t->first <= prev_tmod) return corrupt(file, h.tomb_off + tomb_size * i + 8, "tomb modseq", "not strictly increasing");
            prev_tmod = t->first;
            max_uid = std::max(max_uid, t->second);
        }
    } else {
        std::uint32_t prev_uid = 0;
        for (std::uint32_t i = 0; i < h.live_count; ++i) {
            std::uint64_t const off = h.live_off + entry_size * i;
            std::array<std::byte, entry_size> copy{};
            std::memcpy(copy.data(), p + off, entry_size);
            auto m = s.check_live_entry(copy.data(), off);
            if (!m) return std::move(m).error_value();
            if (m->uid <= prev_uid) return corrupt(file, off, "uid", "LIVE not strictly increasing");
            prev_uid = m->uid;
        }
        max_uid = prev_uid;
        // MPERM: a permutation of LIVE sorted by modseq (so the LIVE modseqs are distinct).
        {
            std::vector<bool> seen(h.live_count, false);
            std::uint64_t prev_mod = 0;
            for (std::uint32_t i = 0; i < h.live_count; ++i) {
                std::uint64_t const off = h.mperm_off + 4ULL * i;
                std::uint32_t const v = load_le<std::uint32_t>(p + off); // copied, then checked (§9.4)
                if (v >= h.live_count) return corrupt(file, off, "mperm", "index out of range");
                if (seen[v]) return corrupt(file, off, "mperm", "index repeated");
                seen[v] = true;
                std::uint64_t const mod = load_le<std::uint64_t>(p + h.live_off + entry_size * v + 8);
                if (mod <= prev_mod) return corrupt(file, off, "mperm", "modseqs not strictly increasing");
                prev_mod = mod;
            }
        }
        std::uint64_t prev_tmod = 0;
        std::unordered_set<std::uint32_t> tomb_uids;
        tomb_uids.reserve(h.tomb_count);
        for (std::uint32_t i = 0; i < h.tomb_count; ++i) {
            std::uint64_t const off = h.tomb_off + tomb_size * i;
            auto t = s.base_tomb(i);
            if (!t) return std::move(t).error_value();
            auto const [mod, u] = *t;
            if (mod <= prev_tmod) return corrupt(file, off + 8, "tomb modseq", "not strictly increasing");
            auto at = s.base_lower_bound(u);
            if (!at) return std::move(at).error_value();
            if (*at < h.live_count) {
                auto lu = s.base_uid(*at);
                if (!lu) return std::move(lu).error_value();
                if (*lu == u) return corrupt(file, off, "tomb uid", "uid is live");
            }
            if (!tomb_uids.insert(u).second) return corrupt(file, off, "tomb uid", "repeated");
            auto mp = s.mperm_upper_bound(mod - 1); // mod >= 1
            if (!mp) return std::move(mp).error_value();
            if (*mp < h.live_count) {
                auto v = s.mperm(*mp);
                if (!v) return std::move(v).error_value();
                auto lm = s.base_msg(*v);
                if (!lm) return std::move(lm).error_value();
                if (lm->modseq == mod) return corrupt(file, off + 8, "tomb modseq", "equals a live modseq");
            }
            prev_tmod = mod;
            max_uid = std::max(max_uid, u);
        }
    }
    s.running_next = max_uid + 1; // max_uid < uidnext <= 2^32-1: no overflow
    s.last_tail_mod = h.base_modseq;
    s.chain = seed;
    s.tail_count = 0;
    s.live = h.live_count;
    s.over.clear();
    s.changes.clear();
    s.tombs.clear();
    s.appended.clear();
    s.touched = 0;
    return {};
}

/// \brief Validates the base (§9.2) of `s.hdr` in the bytes `p` (at least `tail_off`
/// long) and fills the materialised state `s` (repair).
[[nodiscard]] inline result<void> load_base(mailbox_state& s, std::byte const* p, std::string const& file) {
    index_snapshot v;
    v.hdr = s.hdr;
    v.file = file;
    v.mem = borrow_region(p, static_cast<std::size_t>(s.hdr.tail_off));
    if (auto r = validate_base(v); !r) return r;
    for (std::uint32_t i = 0; i < v.hdr.live_count; ++i) {
        msg_image const m = decode_msg(p + v.hdr.live_off + entry_size * i);
        s.by_mod.emplace(m.modseq, m.uid);
        s.live.emplace_hint(s.live.end(), m.uid, live_msg{m, v.names_of(m)});
    }
    auto t = v.all_tombs();
    if (!t) return std::move(t).error_value();
    s.tombs = std::move(*t);
    for (auto const& e : s.tombs) s.tomb_uids.insert(e.second);
    s.kw = std::move(v.kw);
    s.kw_index = std::move(v.kw_index);
    s.running_next = v.running_next;
    s.last_tail_mod = v.last_tail_mod;
    s.chain = v.chain;
    s.tail_count = 0;
    return {};
}

/// \brief New tail entries (§9.3), decoded and validated against a state but not yet
/// applied to it: `validate_tail` only reads the state, `apply_tail` changes it and cannot
/// fail. A refresh or a commit therefore never leaves half a state behind, and never has
/// to copy the state to protect it.
struct tail_batch {
    slot_fields hdr;                   // the slot the entries belong to
    std::vector<std::string> new_kw;   // KWDEF names, in index order
    std::vector<msg_image> msgs;       // MSG entries, in file order
    std::vector<std::uint32_t> appends; // UIDs appended, ascending
    std::size_t live = 0;              // live messages after the batch
    std::uint32_t chain = 0;
    std::uint32_t running_next = 1;
    std::uint64_t last_tail_mod = 0;
};

/// The current image of `u` in a state (nullopt: not live), for `validate_tail`.
[[nodiscard]] inline result<std::optional<msg_image>> current_image(mailbox_state const& s, std::uint32_t u) {
    if (auto it = s.live.find(u); it != s.live.end()) return std::optional<msg_image>(it->second.img);
    return std::optional<msg_image>{};
}
[[nodiscard]] inline result<std::optional<msg_image>> current_image(index_snapshot const& s, std::uint32_t u) {
    return s.lookup(u);
}
[[nodiscard]] inline std::size_t live_count_of(mailbox_state const& s) noexcept { return s.live.size(); }
[[nodiscard]] inline std::size_t live_count_of(index_snapshot const& s) noexcept { return s.live; }

/// \brief Validates tail entries [s.tail_count, h.tail_count) of the slot `h` against the
/// state `s` (§9.3); `first` points at the bytes of entry `s.tail_count` (file offsets are
/// used only in error messages). O(k log N) for k entries; `s` is not touched (a snapshot's
/// lazy checks of the base entries it looks up aside).
template <class State>
[[nodiscard]] inline result<tail_batch> validate_tail(State const& s, slot_fields const& h, std::byte const* first,
                                                      std::string const& file) {
    tail_batch b;
    b.hdr = h;
    b.chain = s.chain;
    b.running_next = s.running_next;
    b.last_tail_mod = s.last_tail_mod;
    std::uint32_t const seed = h.seed();
    std::uint32_t const start = s.tail_count;
    if (h.tail_count < start) return corrupt(file, 152, "tail_count", "below the entries already applied");
    // uid -> its image after the entries seen so far in this batch (nullopt: expunged).
    std::unordered_map<std::uint32_t, std::optional<msg_image>> touched;
    std::size_t live = live_count_of(s);
    for (std::uint32_t i = start; i < h.tail_count; ++i) {
        std::uint64_t const off = h.tail_off + entry_size * i;
        std::array<std::byte, entry_size> copy{};
        std::memcpy(copy.data(), first + entry_size * (i - start), entry_size);
        std::byte const* e = copy.data();
        if (!entry_crc_ok(e, seed)) return corrupt(file, off + 92, "crc", "tail entry checksum mismatch");
        b.chain = crc32c_update(b.chain, std::span<std::byte const>(e, entry_size));
        std::size_t const kw_now = s.kw.size() + b.new_kw.size();
        std::uint8_t const kind = load_le<std::uint8_t>(e + 4);
        if (kind == kind_kwdef) {
            std::uint8_t const len = load_le<std::uint8_t>(e + 5);
            if (load_le<std::uint32_t>(e) != 0) return corrupt(file, off, "zero", "not zero");
            if (load_le<std::uint16_t>(e + 6) != kw_now) return corrupt(file, off + 6, "kw_index", "not the running count");
            if (kw_now >= h.kw_count) return corrupt(file, off + 6, "kw_index", "above kw_count");
            if (load_le<std::uint64_t>(e + 8) > h.highestmodseq) return corrupt(file, off + 8, "defined_at", "above highestmodseq");
            if (len == 0 || len > 76) return corrupt(file, off + 5, "name_len", "not in 1..76");
            std::string name(reinterpret_cast<char const*>(e + 16), len);
            for (std::size_t j = 16 + std::size_t{len}; j < 92; ++j)
                if (e[j] != std::byte{0}) return corrupt(file, off + j, "name", "padding not zero");
            if (!valid_keyword_name(name)) return corrupt(file, off + 16, "name", "not a keyword atom");
            if (s.kw_index.count(name) != 0 || std::find(b.new_kw.begin(), b.new_kw.end(), name) != b.new_kw.end())
                return corrupt(file, off + 16, "name", "duplicate keyword");
            b.new_kw.push_back(std::move(name));
        } else if (kind == kind_msg) {
            msg_image m = decode_msg(e);
            if (auto [f, why] = check_msg_fields(m, static_cast<std::uint32_t>(kw_now)); !f.empty())
                return corrupt(file, off, f, why);
            if (m.modseq <= b.last_tail_mod) return corrupt(file, off + 8, "modseq", "not above the previous modseq");
            if (m.modseq > h.highestmodseq) return corrupt(file, off + 8, "modseq", "above highestmodseq");
            if (m.uid >= h.uidnext) return corrupt(file, off, "uid", "not below uidnext");
            bool const expunged = (m.state & state_expunged) != 0;
            if (m.uid >= b.running_next) {
                if (expunged) return corrupt(file, off + 6, "state", "expunge of a never appended uid");
                if (m.created_modseq != m.modseq) return corrupt(file, off + 16, "created_modseq", "append with created_modseq != modseq");
                b.running_next = m.uid + 1; // uid < uidnext <= 2^32-1
                touched[m.uid] = m;
                b.appends.push_back(m.uid);
                ++live;
            } else {
                std::optional<msg_image> cur;
                if (auto t = touched.find(m.uid); t != touched.end()) {
                    cur = t->second;
                } else {
                    auto c = current_image(s, m.uid);
                    if (!c) return std::move(c).error_value();
                    cur = *c;
                }
                if (!cur) return corrupt(file, off, "uid", "change to vanished uid");
                if (!m.same_immutable(*cur)) return corrupt(file, off, "uid", "immutable fields changed");
                if (expunged) {
                    touched[m.uid] = std::nullopt;
                    --live;
                } else {
                    touched[m.uid] = m;
                }
            }
            b.last_tail_mod = m.modseq;
            b.msgs.push_back(m);
        } else {
            return corrupt(file, off + 4, "kind", "unknown entry kind");
        }
    }
    if (b.chain != h.tail_chain_crc) return corrupt(file, h.tail_off, "tail_chain_crc", "chain checksum mismatch");
    if (s.kw.size() + b.new_kw.size() != h.kw_count) return corrupt(file, 84, "kw_count", "does not match the keywords defined");
    if (live != h.exists) return corrupt(file, 160, "exists", "does not match the live messages");
    b.live = live;
    return b;
}

/// \brief Applies a batch that `validate_tail` accepted for `s` (and nothing since): O(k log N).
inline void apply_tail(mailbox_state& s, tail_batch&& b) {
    for (auto& name : b.new_kw) {
        s.kw_index.emplace(name, static_cast<std::uint32_t>(s.kw.size()));
        s.kw.push_back(std::move(name));
    }
    for (auto const& m : b.msgs) {
        auto it = s.live.find(m.uid);
        if (it == s.live.end()) { // an append (validated: above every earlier uid)
            s.live.emplace_hint(s.live.end(), m.uid, live_msg{m, s.names_of(m)});
            s.by_mod.emplace_hint(s.by_mod.end(), m.modseq, m.uid);
            continue;
        }
        s.by_mod.erase(it->second.img.modseq);
        if ((m.state & state_expunged) != 0) {
            s.live.erase(it);
            s.tombs.emplace_back(m.modseq, m.uid);
            s.tomb_uids.insert(m.uid);
        } else {
            it->second.kws = s.names_of(m);
            it->second.img = m;
            s.by_mod.emplace_hint(s.by_mod.end(), m.modseq, m.uid);
        }
    }
    s.chain = b.chain;
    s.running_next = b.running_next;
    s.last_tail_mod = b.last_tail_mod;
    s.tail_count = b.hdr.tail_count;
    s.hdr = b.hdr;
}

/// \brief Applies a batch that `validate_tail` accepted for `s` (and nothing since) to the
/// overlay: O(k).
inline void apply_tail(index_snapshot& s, tail_batch&& b) {
    for (auto& name : b.new_kw) {
        s.kw_index.emplace(name, static_cast<std::uint32_t>(s.kw.size()));
        s.kw.push_back(std::move(name));
    }
    for (auto const& m : b.msgs) {
        s.over.insert_or_assign(m.uid, m);
        if ((m.state & state_expunged) != 0) s.tombs.emplace_back(m.modseq, m.uid);
        else s.changes.emplace_back(m.modseq, m.uid);
    }
    s.appended.insert(s.appended.end(), b.appends.begin(), b.appends.end());
    s.live = b.live;
    s.chain = b.chain;
    s.running_next = b.running_next;
    s.last_tail_mod = b.last_tail_mod;
    s.tail_count = b.hdr.tail_count;
    s.hdr = b.hdr;
}

/// \brief `validate_tail` then `apply_tail`; on failure `s` is unchanged.
template <class State>
[[nodiscard]] inline result<void> replay_tail(State& s, slot_fields const& h, std::byte const* first,
                                              std::string const& file) {
    auto b = validate_tail(s, h, first, file);
    if (!b) return std::move(b).error_value();
    apply_tail(s, std::move(*b));
    return {};
}

/// \brief What may change between two slots of one file (§7 Refresh step 4): the name of
/// the first field that broke the rule, or empty.
[[nodiscard]] inline std::string_view refresh_violation(slot_fields const& o, slot_fields const& n) noexcept {
    if (n.file_id != o.file_id) return "file_id";
    if (n.uidvalidity != o.uidvalidity) return "uidvalidity";
    if (n.base_crc != o.base_crc) return "base_crc";
    if (n.live_count != o.live_count) return "live_count";
    if (n.tomb_count != o.tomb_count) return "tomb_count";
    if (n.base_kw_count != o.base_kw_count) return "base_kw_count";
    if (n.base_modseq != o.base_modseq) return "base_modseq";
    if (n.vanished_floor != o.vanished_floor) return "vanished_floor";
    if (n.tail_off != o.tail_off) return "tail_off";
    if (n.generation < o.generation) return "generation";
    if (n.tail_count < o.tail_count) return "tail_count";
    if (n.highestmodseq < o.highestmodseq) return "highestmodseq";
    if (n.uidnext < o.uidnext) return "uidnext";
    if (n.kw_count < o.kw_count) return "kw_count";
    return {};
}

/// \brief The prefix of the message of an "inconsistent" error (`errc::inconsistent`: the
/// file changed in a way no honest writer produces while we held a snapshot; the handle
/// dropped its snapshot and the caller must resync in full).
inline constexpr std::string_view inconsistent_prefix = "inconsistent index ";

/// \brief Encodes a complete index file (a new base with an empty tail) whose slot holds
/// generation `gen` (placed by parity) with file id `file_id`, from `live_n` live
/// messages that `each(put)` passes to `put(image)` in UID order, the keyword table `kw`
/// and the tombstones `tombs`. `each` returns a result (a lazily checked snapshot may find
/// a bad entry); a count other than `live_n` is an error, never an overrun.
template <class EachLive>
[[nodiscard]] inline result<std::vector<std::byte>> encode_index_file(std::size_t live_n, std::vector<std::string> const& kw,
                                                                      slot_fields h, std::uint64_t gen, std::uint64_t file_id,
                                                                      std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs,
                                                                      EachLive&& each) {
    h.generation = gen;
    h.file_id = file_id;
    h.flags = 0;
    h.live_count = static_cast<std::uint32_t>(live_n);
    h.tomb_count = static_cast<std::uint32_t>(tombs.size());
    h.kw_count = h.base_kw_count = static_cast<std::uint32_t>(kw.size());
    h.base_modseq = h.highestmodseq;
    h.tail_count = 0;
    h.exists = h.live_count;
    h.derive_offsets();
    std::uint32_t const seed = h.seed();
    std::vector<std::byte> f(h.tail_off, std::byte{0});
    std::size_t i = 0;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> perm;
    perm.reserve(live_n);
    auto r = each([&](msg_image const& m) {
        if (i >= live_n) {
            ++i;
            return;
        }
        encode_msg(f.data() + h.live_off + entry_size * i, m, seed);
        perm.emplace_back(m.modseq, static_cast<std::uint32_t>(i));
        ++i;
    });
    if (!r) return std::move(r).error_value();
    if (i != live_n) return error{errc::corrupted, "live message count does not match while building an index"};
    std::sort(perm.begin(), perm.end());
    for (std::size_t j = 0; j < perm.size(); ++j) store_le<std::uint32_t>(f.data() + h.mperm_off + 4 * j, perm[j].second);
    for (std::size_t j = 0; j < tombs.size(); ++j) {
        store_le<std::uint32_t>(f.data() + h.tomb_off + tomb_size * j, tombs[j].second);
        store_le<std::uint64_t>(f.data() + h.tomb_off + tomb_size * j + 8, tombs[j].first);
    }
    for (std::size_t j = 0; j < kw.size(); ++j)
        encode_kwdef(f.data() + h.kw_off + entry_size * j, static_cast<std::uint16_t>(j), h.highestmodseq, kw[j], seed);
    h.base_crc = crc32c_update(seed, std::span<std::byte const>(f.data() + base_off, h.tail_off - base_off));
    h.tail_chain_crc = seed;
    auto const slot = encode_slot(h);
    std::memcpy(f.data() + (gen % 2 == 0 ? 0 : slot_b_off), slot.data(), slot_size);
    return f;
}

/// \brief Encodes a complete index file for `s` (a new base with an empty tail) whose
/// slot holds generation `gen` (placed by parity) with file id `file_id`.
/// The tombstones written are `tombs` (a suffix of `s.tombs` when compaction prunes;
/// `h.vanished_floor` must then be at least the largest pruned modseq).
[[nodiscard]] inline std::vector<std::byte> build_index_file(mailbox_state const& s, slot_fields h,
                                                             std::uint64_t gen, std::uint64_t file_id,
                                                             std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs) {
    auto f = encode_index_file(s.live.size(), s.kw, h, gen, file_id, tombs, [&](auto&& put) -> result<void> {
        for (auto const& [u, m] : s.live) put(m.img);
        return {};
    });
    return std::move(*f); // cannot fail: the map yields exactly live.size() images
}

/// \brief `build_index_file` keeping every tombstone of `s`.
[[nodiscard]] inline std::vector<std::byte> build_index_file(mailbox_state const& s, slot_fields h,
                                                             std::uint64_t gen, std::uint64_t file_id) {
    return build_index_file(s, h, gen, file_id, std::span<std::pair<std::uint64_t, std::uint32_t> const>(s.tombs));
}

/// \brief `build_index_file` from a snapshot: the merged live set (base entries the
/// overlay does not supersede or expunge, tail images, appended UIDs) in UID order.
[[nodiscard]] inline result<std::vector<std::byte>> build_index_file(index_snapshot const& s, slot_fields h, std::uint64_t gen,
                                                                     std::uint64_t file_id,
                                                                     std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs) {
    return encode_index_file(s.live, s.kw, h, gen, file_id, tombs,
                             [&](auto&& put) { return s.for_each_live(1, 0xFFFFFFFFU, put); });
}

/// \brief The union of the keyword bits of every live message of `s` (O(N); a lazily
/// checked snapshot may find a bad entry).
[[nodiscard]] inline result<std::array<std::uint8_t, 16>> used_keyword_bits(index_snapshot const& s) {
    std::array<std::uint8_t, 16> used{};
    auto r = s.for_each_live(1, 0xFFFFFFFFU, [&](msg_image const& m) {
        for (std::size_t i = 0; i < used.size(); ++i) used[i] = static_cast<std::uint8_t>(used[i] | m.keywords[i]);
    });
    if (!r) return std::move(r).error_value();
    return used;
}

/// \brief How many of the first `kw_count` keyword definitions `used` lacks.
[[nodiscard]] inline std::size_t unused_keywords(std::array<std::uint8_t, 16> const& used, std::size_t kw_count) noexcept {
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < kw_count && i < max_keywords; ++i)
        if ((used[i / 8] & (1U << (i % 8))) == 0) ++n;
    return n;
}

/// \brief `build_index_file` from a snapshot with keyword reclaim (§8.4 "KW, optionally
/// compacted"): the definitions no live message uses are dropped and the others renumbered
/// in their old order; each message's bits are remapped, so its keyword names stay the same.
[[nodiscard]] inline result<std::vector<std::byte>> build_index_file_reclaiming(
    index_snapshot const& s, slot_fields h, std::uint64_t gen, std::uint64_t file_id,
    std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs) {
    auto used = used_keyword_bits(s);
    if (!used) return std::move(used).error_value();
    if (unused_keywords(*used, s.kw.size()) == 0) return build_index_file(s, h, gen, file_id, tombs);
    std::array<std::int32_t, max_keywords> remap{};
    remap.fill(-1);
    std::vector<std::string> kw;
    for (std::uint32_t i = 0; i < s.kw.size() && i < max_keywords; ++i) {
        if (((*used)[i / 8] & (1U << (i % 8))) == 0) continue;
        remap[i] = static_cast<std::int32_t>(kw.size());
        kw.push_back(s.kw[i]);
    }
    return encode_index_file(s.live, kw, h, gen, file_id, tombs, [&](auto&& put) {
        return s.for_each_live(1, 0xFFFFFFFFU, [&](msg_image const& m) {
            msg_image x = m;
            x.keywords = {};
            for (std::uint32_t i = 0; i < max_keywords; ++i)
                if (m.has_kw(i) && remap[i] >= 0) x.set_kw(static_cast<std::uint32_t>(remap[i]));
            put(x);
        });
    });
}

/// \brief The slot in force of a file made by `build_index_file`.
[[nodiscard]] inline result<slot_fields> built_slot(std::vector<std::byte> const& bytes, std::string const& file) {
    if (bytes.size() < base_off) return corrupt(file, 0, "file size", "built file too small");
    std::span<std::byte const, slot_size> const a(bytes.data(), slot_size), b(bytes.data() + slot_b_off, slot_size);
    slot_fields const sa = decode_slot(a), sb = decode_slot(b);
    if (check_slot(sa, a, 0, bytes.size(), file)) return sa;
    if (auto r = check_slot(sb, b, slot_b_off, bytes.size(), file); !r) return std::move(r).error_value();
    return sb;
}

/// \brief Checks in memory that `bytes` (a file made by `build_index_file`, empty tail) is
/// a valid index holding exactly the live messages (images and keyword names) of `want`
/// and the tombstones `tombs` (§8.4 step 2: abort before the rename otherwise).
[[nodiscard]] inline result<void> check_built_file(std::vector<std::byte> const& bytes, mailbox_state const& want,
                                                   std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs,
                                                   std::string const& file) {
    auto h = built_slot(bytes, file);
    if (!h) return std::move(h).error_value();
    mailbox_state got;
    got.hdr = *h;
    if (auto r = load_base(got, bytes.data(), file); !r) return r;
    if (auto r = replay_tail(got, got.hdr, bytes.data() + got.hdr.tail_off, file); !r) return r;
    auto mismatch = [&](std::string_view what) {
        return error{errc::corrupted, "built index " + file + " differs from the state it was built from: " + std::string(what)};
    };
    if (got.live.size() != want.live.size()) return mismatch("live count");
    for (auto const& [u, m] : want.live) {
        auto it = got.live.find(u);
        if (it == got.live.end()) return mismatch("uid " + std::to_string(u) + " missing");
        msg_image const& g = it->second.img;
        if (!g.same_immutable(m.img) || g.modseq != m.img.modseq || g.sysflags != m.img.sysflags || it->second.kws != m.kws)
            return mismatch("uid " + std::to_string(u) + " differs");
    }
    if (!std::equal(got.tombs.begin(), got.tombs.end(), tombs.begin(), tombs.end())) return mismatch("tombstones");
    return {};
}

/// \brief `check_built_file` against a snapshot: the built LIVE entries and the merged
/// live set of `want` are compared side by side in UID order (no copy of either).
[[nodiscard]] inline result<void> check_built_file(std::vector<std::byte> const& bytes, index_snapshot const& want,
                                                   std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs,
                                                   std::string const& file) {
    auto h = built_slot(bytes, file);
    if (!h) return std::move(h).error_value();
    index_snapshot got;
    got.hdr = *h;
    got.file = file;
    got.mem = borrow_region(bytes.data(), bytes.size());
    if (auto r = validate_base(got); !r) return r;
    if (auto r = replay_tail(got, got.hdr, bytes.data() + got.hdr.tail_off, file); !r) return r;
    auto mismatch = [&](std::string_view what) {
        return error{errc::corrupted, "built index " + file + " differs from the state it was built from: " + std::string(what)};
    };
    if (got.live != want.live || got.tail_count != 0) return mismatch("live count");
    keyword_cache gk(got.kw), wk(want.kw);
    std::uint32_t i = 0;
    std::string bad;
    auto r = want.for_each_live(1, 0xFFFFFFFFU, [&](msg_image const& m) {
        if (!bad.empty()) return;
        auto g = got.base_msg(i++);
        if (!g) {
            bad = "uid " + std::to_string(m.uid) + " missing";
            return;
        }
        if (!g->same_immutable(m) || g->modseq != m.modseq || g->sysflags != m.sysflags || gk.of(*g) != wk.of(m))
            bad = "uid " + std::to_string(m.uid) + " differs";
    });
    if (!r) return r;
    if (!bad.empty()) return mismatch(bad);
    if (i != got.hdr.live_count) return mismatch("live count");
    auto gt = got.all_tombs();
    if (!gt) return std::move(gt).error_value();
    if (!std::equal(gt->begin(), gt->end(), tombs.begin(), tombs.end())) return mismatch("tombstones");
    return {};
}

/// \brief One line of the advisory sidecar `compact.times`: a compaction at Unix time
/// `time` had seen every change up to `modseq`.
struct compact_mark {
    std::uint64_t modseq = 0;
    std::int64_t time = 0;
};

/// \brief Reads `compact.times` ("<modseq> <unix seconds>" per line). Advisory: a missing,
/// unreadable or malformed file (or line) only means less is known to be old. Reads at
/// most 64 KiB.
[[nodiscard]] inline std::vector<compact_mark> read_compact_times(std::string const& path) {
    std::vector<compact_mark> out;
    std::string const bytes = read_small_file(path, 65536);
    std::string_view text(bytes);
    auto number = [](std::string_view d, std::uint64_t limit, std::uint64_t& v) {
        if (d.empty() || d.size() > 19 || d.find_first_not_of("0123456789") != std::string_view::npos) return false;
        v = 0;
        for (char ch : d) v = v * 10 + static_cast<std::uint64_t>(ch - '0');
        return v <= limit;
    };
    while (!text.empty()) {
        auto const nl = text.find('\n');
        if (nl == std::string_view::npos) break; // an unterminated last line is ignored
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        auto const sp = line.find(' ');
        if (sp == std::string_view::npos) continue;
        std::uint64_t m = 0, t = 0;
        if (!number(line.substr(0, sp), max_modseq, m) || !number(line.substr(sp + 1), std::uint64_t{max_date}, t)) continue;
        out.push_back({m, static_cast<std::int64_t>(t)});
    }
    return out;
}

/// \brief The largest modseq that a compaction at or before `cutoff` (Unix seconds) had
/// seen (0: none).
[[nodiscard]] inline std::uint64_t old_modseq_cutoff(std::vector<compact_mark> const& marks, std::int64_t cutoff) noexcept {
    std::uint64_t m = 0;
    for (auto const& k : marks)
        if (k.time <= cutoff) m = std::max(m, k.modseq);
    return m;
}

/// \brief The marks to keep after adding a compaction at `now`: every mark younger than
/// `cutoff`, the newest older one (the only one `old_modseq_cutoff` can still need), at
/// most 64 lines (dropping the oldest young ones; less known, never wrong).
[[nodiscard]] inline std::string next_compact_times(std::vector<compact_mark> marks, compact_mark now, std::int64_t cutoff) {
    marks.push_back(now);
    std::uint64_t const old = old_modseq_cutoff(marks, cutoff);
    std::vector<compact_mark> keep;
    bool old_kept = false;
    for (auto const& k : marks) {
        if (k.time > cutoff) {
            keep.push_back(k);
        } else if (k.modseq == old && !old_kept && old != 0) {
            keep.push_back(k);
            old_kept = true;
        }
    }
    std::sort(keep.begin(), keep.end(), [](compact_mark const& x, compact_mark const& y) { return x.time < y.time; });
    if (keep.size() > 64) keep.erase(keep.begin() + (old_kept ? 1 : 0), keep.end() - (old_kept ? 63 : 64));
    std::string out;
    for (auto const& k : keep) out.append(std::to_string(k.modseq)).append(" ").append(std::to_string(k.time)).append("\n");
    return out;
}

/// \brief How many of the oldest tombstones `tombs` (ascending by modseq) retention prunes:
/// never one of the newest `keep_count`, only those at or below `old_cutoff`.
[[nodiscard]] inline std::size_t tombs_to_prune(std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs,
                                                std::uint32_t keep_count, std::uint64_t old_cutoff) noexcept {
    if (tombs.size() <= keep_count) return 0;
    std::size_t const by_count = tombs.size() - keep_count;
    auto const by_age = static_cast<std::size_t>(
        std::upper_bound(tombs.begin(), tombs.end(), old_cutoff, [](std::uint64_t x, auto const& e) { return x < e.first; }) -
        tombs.begin());
    return std::min(by_count, by_age);
}

/// \brief An image read from a damaged index by `readable_entries`.
struct readable_image {
    msg_image img;
    keyword_set kws;
};

/// \brief Repair case 3 (§10: "any readable entries contribute flags"): from the committed
/// bytes of an index whose slot `h` is valid but whose base is not, the last image of each
/// UID among the LIVE and tail entries that pass their own checks (CRC with the file's
/// seed, the field rules), with the names of the keywords whose KWDEF entry is readable
/// too. Nothing here is trusted beyond one entry: the caller uses an image only when its
/// content id and size match the message file. Every offset is bounds-checked against
/// `bytes`.
[[nodiscard]] inline std::map<std::uint32_t, readable_image> readable_entries(std::vector<std::byte> const& bytes,
                                                                              slot_fields const& h) {
    std::uint32_t const seed = h.seed();
    std::array<std::optional<std::string>, max_keywords> names{};
    auto fits = [&](std::uint64_t off) { return off <= bytes.size() && bytes.size() - off >= entry_size; };
    auto kwdef = [&](std::byte const* e) {
        std::uint8_t const len = load_le<std::uint8_t>(e + 5);
        std::uint16_t const idx = load_le<std::uint16_t>(e + 6);
        if (idx >= max_keywords || len == 0 || len > 76) return;
        std::string name(reinterpret_cast<char const*>(e + 16), len);
        if (valid_keyword_name(name)) names[idx] = std::move(name);
    };
    std::vector<msg_image> imgs;
    auto entry = [&](std::uint64_t off) {
        if (!fits(off)) return;
        std::byte const* e = bytes.data() + off;
        if (!entry_crc_ok(e, seed)) return;
        std::uint8_t const kind = load_le<std::uint8_t>(e + 4);
        if (kind == kind_kwdef) {
            kwdef(e);
        } else if (kind == kind_msg) {
            msg_image const m = decode_msg(e);
            if (check_msg_fields(m, max_keywords).first.empty()) imgs.push_back(m);
        }
    };
    for (std::uint64_t i = 0; i < h.base_kw_count; ++i) entry(h.kw_off + entry_size * i);
    for (std::uint64_t i = 0; i < h.live_count; ++i) entry(h.live_off + entry_size * i);
    for (std::uint64_t i = 0; i < h.tail_count; ++i) entry(h.tail_off + entry_size * i);
    std::map<std::uint32_t, readable_image> out;
    for (auto const& m : imgs) { // file order: a tail image replaces a base one
        readable_image r{m, {}};
        for (std::uint32_t i = 0; i < max_keywords; ++i)
            if (m.has_kw(i) && names[i]) r.kws.insert(*names[i]);
        r.img.keywords = {};
        out.insert_or_assign(m.uid, std::move(r));
    }
    return out;
}

[[nodiscard]] inline std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

/// \brief What the `mmap_mailbox` handles of one process on one mailbox directory share
/// (§3: one open object per path per process, reference-counted): the open files, the
/// snapshot and a mutex that serialises every call on them. Released (files
/// closed) when the last handle closes.
struct mailbox_core {
    std::mutex mu;
    std::string dir;              // the path it was first opened by
    dev_t dev = 0;                // the directory's identity (the registry key)
    ino_t dir_ino = 0;
    pid_t pid = 0;                // never shared across fork(): flock needs separate opens
    unique_fd fd;
    unique_fd wlock;
    unique_fd plock;
    index_snapshot st;
    std::atomic<bool> loaded{false};
    bool poisoned = false;
    bool wlock_held = false;
    bool swept = false;           // the writer-open sweep ran on this file
    std::optional<hwm_mark> hwm;  // modseq.hwm as last written or read here (a lower bound of the file's)
    mmap_reader_stats stats;

    /// Drops the files and the state (the next call loads from disk).
    void reset() noexcept {
        stats.entries_touched += st.touched;
        stats.lazy_entries_checked += st.lazily_checked;
        fd.reset();
        wlock.reset();
        plock.reset();
        st = {};
        loaded = false;
        poisoned = false;
        wlock_held = false;
        swept = false;
    }
};

/// \brief The process-wide registry: (device, inode) of a mailbox directory -> its core.
struct core_registry {
    std::mutex mu;
    std::map<std::pair<dev_t, ino_t>, std::weak_ptr<mailbox_core>> cores;
};
[[nodiscard]] inline core_registry& registry() {
    static core_registry r;
    return r;
}

/// \brief The core of the mailbox directory `dir`: the one other handles of this process
/// hold (when `share`), else a new one. `not_found` if `dir` does not exist.
[[nodiscard]] inline result<std::shared_ptr<mailbox_core>> acquire_core(std::string const& dir, bool share) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        int const e = errno;
        if (e == ENOENT || e == ENOTDIR) return error{errc::not_found, "Mailbox doesn't exist"};
        return sys_error(e, "cannot stat", dir);
    }
    if (!S_ISDIR(st.st_mode)) return error{errc::not_found, "Mailbox doesn't exist"};
    auto fresh = [&] {
        auto c = std::make_shared<mailbox_core>();
        c->dir = dir;
        c->dev = st.st_dev;
        c->dir_ino = st.st_ino;
        c->pid = ::getpid();
        return c;
    };
    if (!share) return fresh();
    auto& reg = registry();
    std::lock_guard<std::mutex> lk(reg.mu);
    for (auto it = reg.cores.begin(); it != reg.cores.end();) it = it->second.expired() ? reg.cores.erase(it) : std::next(it);
    auto& slot = reg.cores[{st.st_dev, st.st_ino}];
    if (auto c = slot.lock(); c && c->pid == ::getpid()) {
        // The directory it was opened by must still be this one (not removed and the
        // inode number reused).
        struct stat again {};
        if (::stat(c->dir.c_str(), &again) == 0 && again.st_dev == st.st_dev && again.st_ino == st.st_ino) return c;
    }
    auto c = fresh();
    slot = c;
    return c;
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
        if (auto r = write_hwm(dir, next_hwm(validity, 1, 1, default_hwm_step)); !r) return r;
        if (auto r = atomic_replace(dir, dir + "/index", dir + "/tmp/index.new", bytes); !r) return r;
        return sync_dir(dir + "/msg");
    }

    /// \brief Deletes the mailbox directory and everything in it. The index goes first
    /// (under the writer lock, so no commit is half done), and the directory is fsynced:
    /// from then on the mailbox does not exist for anyone (open handles answer
    /// `not_found`), even if the process dies before the message files are gone. A
    /// directory left without an index by such a death is finished off by calling
    /// `remove` again.
    [[nodiscard]] static result<void> remove(std::string const& dir) {
        return remove(dir, std::chrono::milliseconds{10000});
    }
    /// \brief `remove(dir)` waiting at most `lock_timeout` for the writer lock.
    [[nodiscard]] static result<void> remove(std::string const& dir, std::chrono::milliseconds lock_timeout) {
        using namespace mmap_detail;
        struct stat st {};
        if (::stat((dir + "/index").c_str(), &st) == 0) {
            auto wl = unique_fd::open(dir + "/writer.lock", O_RDWR);
            if (wl)
                if (auto r = lock_file(*wl, LOCK_EX, lock_timeout); !r) return r;
            if (::unlink((dir + "/index").c_str()) != 0) return sys_error(errno, "cannot remove", dir + "/index");
            if (auto r = sync_dir(dir); !r) return r;
        } else {
            int const e = errno;
            if (e != ENOENT) return sys_error(e, "no mailbox at", dir);
            // No index: only a leftover of an interrupted remove is taken on.
            if (::stat((dir + "/writer.lock").c_str(), &st) != 0) return sys_error(e, "no mailbox at", dir);
        }
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
        ::unlink((dir + "/compact.times").c_str());
        ::unlink((dir + "/" + std::string(hwm_file_name)).c_str());
        ::unlink((dir + "/writer.lock").c_str());
        ::unlink((dir + "/publish.lock").c_str());
        if (::rmdir(dir.c_str()) != 0) return sys_error(errno, "cannot remove", dir);
        return {};
    }

    mmap_mailbox(mmap_mailbox&&) noexcept = default;
    mmap_mailbox& operator=(mmap_mailbox&& o) noexcept {
        if (this != &o) {
            close();
            dir_ = std::move(o.dir_);
            opt_ = std::move(o.opt_);
            core_ = std::move(o.core_);
        }
        return *this;
    }
    /// \brief `close()`s (so the last handle of the process may compact).
    ~mmap_mailbox() { close(); }

    // ------------------------------------------------------------ openable_backend
    [[nodiscard]] std::string_view name() const noexcept { return opt_.name; }
    [[nodiscard]] std::string const& directory() const noexcept { return dir_; }

    /// \brief Opens: joins the state other handles of this process hold on the same
    /// directory (`mmap_options::share_open`), loading it from disk if nobody has.
    result<void> open() {
        if (is_open()) return {};
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        // Joining a state another handle loaded: check (O(1) when nothing changed) that
        // the mailbox is still there.
        if (auto r = core_->loaded ? refresh() : ensure_loaded(); !r) {
            lk->unlock();
            core_.reset();
            return r;
        }
        return {};
    }
    /// \brief Leaves the shared state; the last handle of the process to leave closes the
    /// files, compacting first when worthwhile (`mmap_options::auto_compact`, §8.4) and
    /// the writer lock is free right now.
    void close() noexcept {
        if (!core_) return;
        {
            std::lock_guard<std::mutex> lk(core_->mu);
            if (opt_.auto_compact && core_.use_count() == 1 && core_->loaded && !core_->poisoned &&
                worthwhile_locked())
                (void)compact_locked(std::chrono::milliseconds{0});
        }
        core_.reset();
    }
    [[nodiscard]] bool is_open() const noexcept { return core_ && core_->loaded.load(); }

    // ------------------------------------------------------------ backend
    result<mailbox_status> status() {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        if (auto r = refresh(); !r) return std::move(r).error_value();
        auto const& st = core_->st;
        mailbox_status s;
        s.exists = static_cast<std::uint32_t>(st.live);
        s.validity = uid_validity{st.hdr.uidvalidity};
        s.uid_next = uid{st.hdr.uidnext};
        s.highest_modseq = modseq{st.hdr.highestmodseq};
        s.guid = std::nullopt;
        return s;
    }

    /// \brief `status()` without opening (rule O4, `closed_status_backend`): O(1), like a
    /// mailbox list index. On an open handle it is `status()`. On a closed one it opens
    /// `index` read-only, copies the header slots under the shared publish lock exactly as
    /// a refresh does (the file size taken after the copy), and derives the status from the
    /// newest valid slot (`exists`, `uidnext`, `highestmodseq`, `uidvalidity`; no guid,
    /// like `status()`); it loads nothing, joins no shared state and leaves the handle
    /// closed. A removed mailbox (no directory or no index) answers `not_found`. Only the
    /// slot's own checks run: damage in the base or the tail is found by the next `open()`
    /// (a header slot that fails its CRC or checks is skipped, as `open()` skips it).
    /// nullopt when the file was replaced (RETIRED) on every one of three attempts.
    result<std::optional<mailbox_status>> closed_status() {
        using namespace mmap_detail;
        if (is_open()) {
            auto s = status();
            if (!s) return std::move(s).error_value();
            return std::optional<mailbox_status>(*s);
        }
        struct stat dst {};
        if (::stat(dir_.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode))
            return ctx(error{errc::not_found, "Mailbox doesn't exist"});
        if (!opt_.allow_remote_fs)
            if (auto r = check_local_filesystem(dir_); !r) return ctx(std::move(r).error_value());
        for (int attempt = 0; attempt < 3; ++attempt) {
            auto fd = unique_fd::open(dir_ + "/index", O_RDONLY | O_NOFOLLOW);
            if (!fd) {
                if (fd.error_value().is(errc::not_found)) return ctx(error{errc::not_found, "Mailbox doesn't exist"});
                return ctx(std::move(fd).error_value());
            }
            auto pl = unique_fd::open(dir_ + "/publish.lock", O_RDONLY);
            if (!pl) return ctx(std::move(pl).error_value());
            auto h = read_slots(*fd, *pl, opt_.lock_timeout);
            if (!h) return ctx(std::move(h).error_value());
            if ((h->flags & flag_retired) != 0) continue; // compacted meanwhile: read the new file
            mailbox_status s;
            s.exists = h->exists;
            s.validity = uid_validity{h->uidvalidity};
            s.uid_next = uid{h->uidnext};
            s.highest_modseq = modseq{h->highestmodseq};
            s.guid = std::nullopt;
            return std::optional<mailbox_status>(s);
        }
        return std::optional<mailbox_status>{};
    }

    result<uid_set> search(search_program const& p) {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        if (auto r = refresh(); !r) return std::move(r).error_value();
        uid_set out;
        mmap_detail::keyword_cache names(core_->st.kw);
        auto r = core_->st.for_each_live(1, 0xFFFFFFFFU, [&](mmap_detail::msg_image const& m) {
            if (p.matches(meta(m, names))) out.add(m.uid);
        });
        if (!r) return ctx(std::move(r).error_value());
        return out;
    }

    result<uid_set> search(search_program const& p, uid_set const& within) {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        if (auto r = refresh(); !r) return std::move(r).error_value();
        uid_set out;
        mmap_detail::keyword_cache names(core_->st.kw);
        auto r = visit(within, [&](mmap_detail::msg_image const& m) {
            if (p.matches(meta(m, names))) out.add(m.uid);
        });
        if (!r) return ctx(std::move(r).error_value());
        return out;
    }

    /// \brief Changed and expunged UIDs above `since` (§8.1/§8.2): O(log N + k + T): a
    /// binary search in MPERM and in TOMB, then the overlay's changes and tombstones above
    /// `since` (base entries the tail superseded are skipped); `expunged` is nullopt below
    /// `vanished_floor`.
    result<change_set> changes_since(modseq since) {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        if (auto r = refresh(); !r) return std::move(r).error_value();
        auto const& st = core_->st;
        change_set c;
        c.highest_modseq = modseq{st.hdr.highestmodseq};
        auto changed = st.changed_since(value(since));
        if (!changed) return ctx(std::move(changed).error_value());
        c.changed.insert_unsorted(std::span<std::uint32_t>(*changed));
        if (value(since) < st.hdr.vanished_floor) {
            c.expunged = std::nullopt;
        } else {
            auto v = st.vanished_since(value(since));
            if (!v) return ctx(std::move(v).error_value());
            uid_set ex;
            ex.insert_unsorted(std::span<std::uint32_t>(*v));
            c.expunged = std::move(ex);
        }
        return c;
    }

    /// \brief One page of `changes_since(since, limit)` (§8.1).
    struct change_page {
        std::vector<uid> changed;   ///< live messages changed above `since`, in ascending modseq order
        modseq next{};              ///< the modseq of the last one (`since` if none): the next page's `since`
        bool more = false;          ///< whether messages above `next` remain
    };

    /// \brief Changed-since in pages (§8.1): at most `limit` (>= 1) live messages whose
    /// modseq is above `since`, in modseq order, and `next`, the modseq of the last one.
    /// `changes_since(next, limit)` continues exactly where the page stopped, nothing lost
    /// or repeated (every message has a modseq of its own; a message changed meanwhile
    /// moves above `next` and shows up again later, with its new modseq). Expunges are not
    /// paged: see `changes_since(since)`. O(log N + limit + s).
    result<change_page> changes_since(modseq since, std::size_t limit) {
        if (limit == 0) return ctx(error{errc::invalid_argument, "page limit must be at least 1"});
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        if (auto r = refresh(); !r) return std::move(r).error_value();
        std::vector<std::uint64_t> mods;
        std::size_t const ask = limit == SIZE_MAX ? limit : limit + 1;
        auto changed = core_->st.changed_since(value(since), ask, &mods);
        if (!changed) return ctx(std::move(changed).error_value());
        change_page p;
        p.more = changed->size() > limit;
        if (p.more) changed->resize(limit);
        p.changed.reserve(changed->size());
        for (auto u : *changed) p.changed.push_back(uid{u});
        p.next = changed->empty() ? since : modseq{mods[changed->size() - 1]};
        return p;
    }

    result<std::vector<message_record>> fetch(uid_set const& uids, fetch_fields fields) {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        if (auto r = refresh(); !r) return std::move(r).error_value();
        std::vector<message_record> out;
        mmap_detail::keyword_cache names(core_->st.kw);
        auto r = visit(uids, [&](mmap_detail::msg_image const& m) {
            message_record rec;
            rec.id = uid{m.uid};
            if (has(fields, fetch_fields::received)) rec.received = mail_time{m.date};
            if (has(fields, fetch_fields::flags)) {
                rec.flags = flag_set::from_bits(m.sysflags);
                rec.keywords = names.of(m);
            }
            if (has(fields, fetch_fields::size)) rec.size = m.size;
            out.push_back(std::move(rec));
        });
        if (!r) return ctx(std::move(r).error_value());
        return out;
    }

    result<void> update_flags(uid_set const& uids, modify_op op, flag_set f) {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        return transact([&](txn& t) -> result<void> {
            std::vector<mmap_detail::msg_image> targets;
            if (auto r = visit(uids, [&](mmap_detail::msg_image const& m) { targets.push_back(m); }); !r) return r;
            for (auto const& m : targets) {
                auto const nf = apply(flag_set::from_bits(m.sysflags), op, f).storable();
                if (nf.bits() == m.sysflags) continue;
                mmap_detail::msg_image img = m;
                img.sysflags = nf.bits();
                t.add_msg(img);
            }
            return {};
        });
    }

    result<void> update_keywords(uid_set const& uids, modify_op op, keyword_set const& k) {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        return transact([&](txn& t) -> result<void> {
            std::vector<mmap_detail::msg_image> targets;
            if (auto r = visit(uids, [&](mmap_detail::msg_image const& m) { targets.push_back(m); }); !r) return r;
            mmap_detail::keyword_cache names(core_->st.kw);
            for (auto const& m : targets) {
                keyword_set const& cur = names.of(m);
                keyword_set nk = apply(cur, op, k);
                if (nk == cur) continue;
                mmap_detail::msg_image img = m;
                auto r = t.set_keywords(img, nk);
                if (!r) return r;
                t.add_msg(img);
            }
            return {};
        });
    }

    result<void> expunge(uid_set const& uids) {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        std::vector<std::uint32_t> gone;
        auto r = transact([&](txn& t) -> result<void> {
            return visit(uids, [&](mmap_detail::msg_image const& m) {
                mmap_detail::msg_image img = m;
                img.state = mmap_detail::state_expunged;
                t.add_msg(img);
                gone.push_back(m.uid);
            });
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
    /// `append_batch` of one message.
    result<uid> append(std::string_view bytes, mail_time received, flag_set flags = {}, keyword_set const& keywords = {}) {
        new_message const one[1] = {{bytes, received, flags, keywords}};
        auto r = append_batch(one);
        if (!r) return std::move(r).error_value();
        return r->front();
    }

    /// \brief One message of `append_batch`: its octets (not copied; they must outlive
    /// the call), received date, flags (`\Recent` is not stored) and keywords.
    struct new_message {
        std::string_view bytes;
        mail_time received{};
        flag_set flags{};
        keyword_set keywords{};
    };

    /// \brief Appends `msgs` durably in ONE index commit; returns their UIDs, consecutive
    /// and in the order of `msgs` (empty for an empty span, which writes nothing).
    ///
    /// Every message is validated first (date range, size, keyword names: nothing is
    /// written for an invalid batch), then written to tmp/ and fsynced, outside the writer
    /// lock. Under the writer lock the files are renamed to msg/<uid>, the msg/ directory
    /// is fsynced once for the whole batch (§6.1), and one transaction appends all the
    /// entries (KWDEFs for new keywords, then the MSG entries) and publishes one slot.
    /// All or nothing: a batch that fails before its commit leaves no message visible
    /// (its files are removed while the writer lock is still held); a failed commit
    /// leaves at most files above uidnext, which no reader sees and the next writer-open
    /// sweep (or the next append, renaming over them) removes.
    result<std::vector<uid>> append_batch(std::span<new_message const> msgs) {
        using namespace mmap_detail;
        auto const where = [&](std::size_t i, std::string what) {
            if (msgs.size() > 1) what += " (message " + std::to_string(i) + " of the batch)";
            return what;
        };
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            auto const& m = msgs[i];
            if (value(m.received) < min_date || value(m.received) > max_date)
                return ctx(error{errc::invalid_argument, where(i, "received date out of range")});
            if (m.bytes.size() > max_message_size) return ctx(error{errc::invalid_argument, where(i, "message too large")});
            for (auto const& k : m.keywords)
                if (!valid_keyword_name(k))
                    return ctx(error{errc::invalid_argument, where(i, "invalid keyword name '" + k + "'")});
        }
        std::vector<uid> out;
        if (msgs.empty()) return out;
        if (msgs.size() > max_tail_count) return ctx(error{errc::invalid_argument, "batch larger than the tail limit"});
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        // 1. Stage outside the writer lock.
        if (auto r = ensure_loaded(); !r) return std::move(r).error_value();
        std::vector<std::string> tmp;
        tmp.reserve(msgs.size());
        std::vector<std::array<std::uint8_t, 16>> ids(msgs.size());
        struct staging_guard {
            std::vector<std::string>& files;
            ~staging_guard() {
                for (auto const& f : files)
                    if (!f.empty()) ::unlink(f.c_str());
            }
        } staged{tmp};
        // In chunks of at most 128 open files: write every file of the chunk and start its
        // writeback (sync_file_range, a hint), then fsync each. The first fsync of a chunk
        // then commits the filesystem journal for all of them, and the others find their
        // data already on its way: a batch does not pay one journal commit per message.
        constexpr std::size_t chunk = 128;
        for (std::size_t from = 0; from < msgs.size(); from += chunk) {
            std::size_t const to = std::min(msgs.size(), from + chunk);
            std::vector<unique_fd> fds;
            fds.reserve(to - from);
            for (std::size_t i = from; i < to; ++i) {
                std::string p = core_->dir + "/tmp/" + std::to_string(random_u64());
                auto fd = unique_fd::open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
                for (int attempt = 0; !fd && fd.error_value().is(errc::already_exists) && attempt < 8; ++attempt) {
                    p = core_->dir + "/tmp/" + std::to_string(random_u64());
                    fd = unique_fd::open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
                }
                if (!fd) return ctx(std::move(fd).error_value());
                tmp.push_back(p);
                auto const data = std::as_bytes(std::span(msgs[i].bytes.data(), msgs[i].bytes.size()));
                if (auto r = fd->pwrite_all(data, 0); !r) return ctx(std::move(r).error_value());
                if (to - from > 1) (void)::sync_file_range(fd->get(), 0, 0, SYNC_FILE_RANGE_WRITE);
                auto const digest = sha256(data);
                std::copy_n(digest.begin(), 16, ids[i].begin());
                fds.push_back(std::move(*fd));
            }
            for (auto const& fd : fds)
                if (auto r = fd.sync(true); !r) return ctx(std::move(r).error_value());
        }
        // 2. Under the writer lock: rename, one directory fsync, one commit.
        std::vector<std::string> renamed; // msg/ files of this batch, while not committed
        auto r = transact([&](txn& t) -> result<void> {
            auto undo = [&](error e) -> result<void> {
                // Still under the writer lock: nobody else can have used these UIDs.
                for (auto const& f : renamed) ::unlink(f.c_str());
                renamed.clear();
                return e;
            };
            if (std::uint64_t{t.h.uidnext} + msgs.size() > 0xFFFFFFFFULL)
                return error{errc::not_possible, "UIDs exhausted"};
            std::vector<msg_image> imgs(msgs.size());
            for (std::size_t i = 0; i < msgs.size(); ++i) {
                msg_image& img = imgs[i];
                img.uid = t.h.uidnext + static_cast<std::uint32_t>(i);
                img.sysflags = msgs[i].flags.storable().bits();
                img.date = value(msgs[i].received);
                img.size = msgs[i].bytes.size();
                img.content_id = ids[i];
                if (auto k = t.set_keywords(img, msgs[i].keywords); !k) return undo(std::move(k).error_value());
            }
            for (std::size_t i = 0; i < msgs.size(); ++i) {
                std::string const dst = msg_path(imgs[i].uid);
                if (::rename(tmp[i].c_str(), dst.c_str()) != 0) return undo(sys_error(errno, "cannot rename into", dst));
                tmp[i].clear();
                renamed.push_back(dst);
            }
            if (auto s = sync_dir(core_->dir + "/msg"); !s) return undo(std::move(s).error_value());
            for (auto const& img : imgs) t.add_msg(img, true);
            renamed.clear(); // from here a failure is the commit's: the files stay (see above)
            for (auto const& img : imgs) out.push_back(uid{img.uid});
            return {};
        });
        if (!r) {
            out.clear();
            return std::move(r).error_value();
        }
        return out;
    }

    /// \brief The octets of live message `u` (`not_found` if it is not live).
    result<std::string> read_message(uid u) {
        using namespace mmap_detail;
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        if (auto r = refresh(); !r) return std::move(r).error_value();
        auto cur = core_->st.lookup(value(u));
        if (!cur) return ctx(std::move(cur).error_value());
        if (!*cur) return ctx(error{errc::not_found, "no message " + std::to_string(value(u))});
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
    /// Keyword definitions that no live message uses are dropped and the others
    /// renumbered (names unchanged), so a mailbox at 128 keywords can define new ones.
    result<void> compact() {
        auto lk = lock_core();
        if (!lk) return std::move(lk).error_value();
        return compact_locked(opt_.lock_timeout);
    }

    /// \brief Whether compaction is worthwhile now (§8.4: tail_count > max(
    /// `compact_min_tail`, live/8), or a tail above 8 MiB, or more than that many
    /// tombstones prunable by retention, or more than 96 keywords defined and one of them
    /// unused), as of the last refresh.
    [[nodiscard]] bool compaction_worthwhile() const {
        if (!core_) return false;
        std::lock_guard<std::mutex> lk(core_->mu);
        return worthwhile_locked();
    }

    /// \brief Tail entries committed in the current file (a compaction trigger input).
    [[nodiscard]] std::uint32_t tail_count() const {
        if (!core_) return 0;
        std::lock_guard<std::mutex> lk(core_->mu);
        return core_->st.hdr.tail_count;
    }
    /// \brief The generation in force.
    [[nodiscard]] std::uint64_t generation() const {
        if (!core_) return 0;
        std::lock_guard<std::mutex> lk(core_->mu);
        return core_->st.hdr.generation;
    }
    /// \brief The reader's work counters of the state this handle uses (zero when closed).
    [[nodiscard]] mmap_reader_stats reader_stats() const {
        if (!core_) return {};
        std::lock_guard<std::mutex> lk(core_->mu);
        mmap_reader_stats s = core_->stats;
        s.entries_touched += core_->st.touched;
        s.lazy_entries_checked += core_->st.lazily_checked;
        return s;
    }
    /// \brief How many open handles of this process share this handle's state (0 when
    /// closed).
    [[nodiscard]] long shared_handles() const noexcept { return core_ ? core_.use_count() : 0; }

    /// \brief Whether `e` is the "inconsistent" error of a refresh (§7 step 4): the file
    /// kept its identity but changed in a way no honest writer produces (a base field, the
    /// file_id, or a count going backwards). The handle has dropped its snapshot (the next
    /// call reloads and revalidates everything) and the caller must resync in full (the
    /// engine does: it compares the box in full). Its code is `errc::inconsistent`.
    [[nodiscard]] static bool is_inconsistent(error const& e) noexcept {
        return e.is(errc::inconsistent);
    }

    using repair_report = mmap_repair_report;

    /// \brief Explicit repair of the mailbox directory `dir` (§10); never done by a normal
    /// open, which keeps reporting `corrupted`. Under the writer lock:
    /// * the index validates: nothing is written (`action::none`);
    /// * case 2, a valid slot and base but a bad committed tail entry: the base and the
    ///   tail prefix before the first bad entry are kept and compared with msg/: a live UID
    ///   without a file becomes a tombstone, a file below uidnext without a record is
    ///   renamed to a new UID and added, a file at or above uidnext keeps its UID, the file
    ///   of a tombstone is deleted. Every live message and new tombstone gets a modseq above
    ///   the old highestmodseq, `vanished_floor` becomes the old highestmodseq, UIDVALIDITY
    ///   stays (`action::salvaged`);
    /// * case 3, no valid slot or an invalid base: every msg/ file is added with its own
    ///   UID (`action::rebuilt`). With a valid `modseq.hwm` sidecar (of the slot's
    ///   UIDVALIDITY when a slot survived) the UIDVALIDITY is kept: every new modseq is
    ///   above the sidecar's mark (`vanished_floor` = the mark) and uidnext at least its
    ///   uidnext mark, so nothing published before is reused. Without one (missing,
    ///   garbled, or of another UIDVALIDITY) the UIDVALIDITY changes to a new, larger one,
    ///   since modseq reuse cannot be ruled out (`uidvalidity_kept`, `uidvalidity_why`).
    ///   With a valid slot, the entries
    ///   that still pass their own checks give the flags, keywords and INTERNALDATE of the
    ///   files whose octets they describe (content id and size), and a readable expunge
    ///   drops its file.
    /// Added messages get their size and content id from the file and their INTERNALDATE
    /// from its mtime. The sidecar is rewritten to cover the new state first (a failure
    /// fails the repair, the old index in place). The new index is written like a
    /// compaction (new file, fsync, rename, directory fsync), and validated in memory
    /// before the rename. `not_found` without an index file.
    [[nodiscard]] static result<repair_report> repair(std::string const& dir, mmap_options const& opt = {}) {
        using namespace mmap_detail;
        struct stat dst {};
        if (::stat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode)) return error{errc::not_found, "Mailbox doesn't exist"};
        if (!opt.allow_remote_fs)
            if (auto r = check_local_filesystem(dir); !r) return std::move(r).error_value();
        std::string const index = dir + "/index";
        auto fd = unique_fd::open(index, O_RDONLY | O_NOFOLLOW);
        if (!fd) {
            if (fd.error_value().is(errc::not_found)) return error{errc::not_found, "Mailbox doesn't exist"};
            return std::move(fd).error_value();
        }
        auto wl = unique_fd::open(dir + "/writer.lock", O_RDWR);
        if (!wl) return std::move(wl).error_value();
        auto pl = unique_fd::open(dir + "/publish.lock", O_RDWR);
        if (!pl) return std::move(pl).error_value();
        if (auto r = lock_file(*wl, LOCK_EX, opt.lock_timeout); !r) return std::move(r).error_value();
        struct unlock_t {
            unique_fd const& f;
            ~unlock_t() { unlock_file(f); }
        } unlock{*wl};
        // The index in place (after the writer lock: no commit is half done).
        auto again = unique_fd::open(index, O_RDONLY | O_NOFOLLOW);
        if (!again) return std::move(again).error_value();
        fd = std::move(again);

        repair_report rep;
        mailbox_state s;
        std::optional<slot_fields> slot;
        std::vector<std::byte> bytes; // the committed range of the slot in force
        bool base_ok = false;
        if (auto h = read_slots(*fd, *pl, opt.lock_timeout); !h) {
            if (!h.error_value().is(errc::corrupted)) return std::move(h).error_value();
            rep.problems.push_back(h.error_value().message);
        } else {
            slot = *h;
            rep.old_uidvalidity = h->uidvalidity;
            rep.old_highestmodseq = h->highestmodseq;
            bytes.resize(static_cast<std::size_t>(h->committed_end()));
            if (auto r = fd->pread_all(bytes, 0); !r) return std::move(r).error_value();
            s.hdr = *h;
            if (auto r = load_base(s, bytes.data(), index); !r) {
                rep.problems.push_back(r.error_value().message);
            } else {
                base_ok = true;
                rep.base_live_kept = static_cast<std::uint32_t>(s.live.size());
                auto whole = validate_tail(s, *h, bytes.data() + h->tail_off, index);
                if (whole) {
                    rep.tail_entries_kept = h->tail_count;
                    // Case 1: a damaged other slot needs no repair (the next commit
                    // overwrites it); reported as a warning. An all-zero slot is normal.
                    for (std::uint64_t at : {std::uint64_t{0}, slot_b_off}) {
                        std::span<std::byte const, slot_size> const raw(bytes.data() + at, slot_size);
                        if (std::all_of(raw.begin(), raw.end(), [](std::byte x) { return x == std::byte{0}; })) continue;
                        if (auto c = check_slot(decode_slot(raw), raw, at, bytes.size(), index); !c)
                            rep.problems.push_back("warning (no repair needed, the next commit overwrites it): " +
                                                   c.error_value().message);
                    }
                    return rep; // valid: nothing to repair
                }
                rep.problems.push_back(whole.error_value().message);
                // The longest valid prefix, one entry at a time, each checked as if it
                // were the last one committed.
                for (std::uint32_t i = 0; i < h->tail_count; ++i) {
                    std::byte const* e = bytes.data() + h->tail_off + entry_size * i;
                    slot_fields hh = *h;
                    hh.tail_count = i + 1;
                    hh.tail_chain_crc = crc32c_update(s.chain, std::span<std::byte const>(e, entry_size));
                    std::uint8_t const kind = load_le<std::uint8_t>(e + 4);
                    hh.kw_count = static_cast<std::uint32_t>(s.kw.size()) + (kind == kind_kwdef ? 1U : 0U);
                    std::size_t live = s.live.size();
                    if (kind == kind_msg) {
                        msg_image const m = decode_msg(e);
                        bool const ex = (m.state & state_expunged) != 0;
                        if (m.uid >= s.running_next && !ex) ++live;
                        else if (ex && s.live.count(m.uid) != 0) --live;
                    }
                    hh.exists = static_cast<std::uint32_t>(live);
                    auto b = validate_tail(s, hh, e, index);
                    if (!b) break;
                    apply_tail(s, std::move(*b));
                    ++rep.tail_entries_kept;
                }
                rep.tail_entries_dropped = h->tail_count - rep.tail_entries_kept;
            }
        }

        // The message files (decimal UIDs 1..2^32-2; anything else is not ours).
        std::map<std::uint32_t, std::string> files;
        {
            std::string const d = dir + "/msg";
            DIR* dp = ::opendir(d.c_str());
            if (dp == nullptr) return sys_error(errno, "cannot open", d);
            while (dirent* de = ::readdir(dp)) {
                std::string_view const n = de->d_name;
                if (n.empty() || n.size() > 10 || n.front() == '0' || n.find_first_not_of("0123456789") != std::string_view::npos) continue;
                std::uint64_t v = 0;
                for (char ch : n) v = v * 10 + static_cast<std::uint64_t>(ch - '0');
                if (v >= 1 && v <= 0xFFFFFFFEULL) files.emplace(static_cast<std::uint32_t>(v), d + "/" + std::string(n));
            }
            ::closedir(dp);
        }
        // A message image from a file (size, content id, mtime); nullopt if unusable.
        auto from_file = [&](std::uint32_t u, std::string const& path) -> std::optional<msg_image> {
            auto f = unique_fd::open(path, O_RDONLY | O_NOFOLLOW);
            if (!f) return std::nullopt;
            auto st = f->stat();
            if (!st || !S_ISREG(st->st_mode) || static_cast<std::uint64_t>(st->st_size) > max_message_size) return std::nullopt;
            std::vector<std::byte> data(static_cast<std::size_t>(st->st_size));
            if (auto r = f->pread_all(data, 0); !r) return std::nullopt;
            auto const digest = sha256(data);
            msg_image img;
            img.uid = u;
            img.size = data.size();
            img.date = std::clamp<std::int64_t>(static_cast<std::int64_t>(st->st_mtime), min_date, max_date);
            std::copy_n(digest.begin(), 16, img.content_id.begin());
            return img;
        };

        mailbox_state ns;
        slot_fields nh;
        std::uint64_t next_mod = 0;
        auto take_mod = [&]() -> result<std::uint64_t> {
            if (next_mod >= max_modseq) return error{errc::not_possible, "modseq space exhausted"};
            return ++next_mod;
        };
        std::vector<std::string> unlink_after;
        if (slot && base_ok) {
            // Case 2.
            rep.done = repair_report::action::salvaged;
            nh = s.hdr;
            nh.uidnext = slot->uidnext;
            nh.highestmodseq = slot->highestmodseq;
            std::uint64_t const old_hms = slot->highestmodseq;
            next_mod = old_hms;
            ns.kw = s.kw;
            ns.kw_index = s.kw_index;
            std::vector<std::uint32_t> lost_uids, readd_old;
            std::uint32_t next_uid = slot->uidnext;
            for (auto const& [u, m] : s.live)
                if (files.count(u) == 0) lost_uids.push_back(u);
            for (auto const& [u, path] : files) {
                if (s.live.count(u) != 0) continue;
                if (u >= slot->uidnext) {
                    next_uid = std::max(next_uid, u + 1); // u <= 2^32-2
                } else if (s.tomb_uids.count(u) != 0) {
                    unlink_after.push_back(path);
                    rep.removed.push_back(u);
                } else {
                    readd_old.push_back(u);
                }
            }
            // Live records, then recovered files, then re-added ones (new UIDs, ascending).
            std::map<std::uint32_t, live_msg> live;
            for (auto const& [u, m] : s.live)
                if (files.count(u) != 0) live.emplace(u, m);
            for (auto const& [u, path] : files) {
                if (u < slot->uidnext || s.live.count(u) != 0) continue;
                auto img = from_file(u, path);
                if (!img) {
                    rep.skipped.push_back(path);
                    continue;
                }
                live.emplace(u, live_msg{*img, {}});
                rep.recovered.push_back(u);
            }
            for (std::uint32_t old_uid : readd_old) {
                std::string const& path = files.find(old_uid)->second;
                if (next_uid > 0xFFFFFFFEU) return error{errc::not_possible, "UIDs exhausted: cannot re-add " + path};
                auto img = from_file(next_uid, path);
                if (!img) {
                    rep.skipped.push_back(path);
                    continue;
                }
                std::string const to = dir + "/msg/" + std::to_string(next_uid);
                if (::rename(path.c_str(), to.c_str()) != 0) return sys_error(errno, "cannot rename onto", to);
                live.emplace(next_uid, live_msg{*img, {}});
                rep.readded.emplace_back(old_uid, next_uid);
                ++next_uid;
            }
            if (!rep.readded.empty())
                if (auto r = sync_dir(dir + "/msg"); !r) return std::move(r).error_value();
            // Bump instead of reuse: every live record and new tombstone above the old
            // highestmodseq; the old tombstones are all at or below the new floor.
            for (auto& [u, m] : live) {
                auto mod = take_mod();
                if (!mod) return std::move(mod).error_value();
                m.img.modseq = *mod;
                if (m.img.created_modseq == 0) m.img.created_modseq = *mod; // an added file
                ns.by_mod.emplace(*mod, u);
            }
            ns.live = std::move(live);
            std::vector<std::uint32_t> gone = lost_uids;
            for (auto const& [o, n] : rep.readded) gone.push_back(o);
            std::sort(gone.begin(), gone.end());
            for (std::uint32_t u : gone) {
                auto mod = take_mod();
                if (!mod) return std::move(mod).error_value();
                ns.tombs.emplace_back(*mod, u);
                ns.tomb_uids.insert(u);
            }
            rep.lost = std::move(lost_uids);
            nh.uidnext = next_uid;
            nh.vanished_floor = old_hms;
            nh.generation = slot->generation;
        } else {
            // Case 3.
            rep.done = repair_report::action::rebuilt;
            std::uint32_t next_uid = slot ? slot->uidnext : 1;
            next_mod = slot ? slot->highestmodseq : 0;
            auto const side = rebuild_hwm(dir, slot, rep);
            if (side) {
                next_mod = std::max(next_mod, side->modseq);
                next_uid = static_cast<std::uint32_t>(std::max<std::uint64_t>(next_uid, side->uidnext));
            }
            std::map<std::uint32_t, readable_image> readable;
            if (slot) readable = readable_entries(bytes, *slot);
            for (auto const& [u, path] : files) {
                auto img = from_file(u, path);
                if (!img) {
                    rep.skipped.push_back(path);
                    continue;
                }
                keyword_set k;
                // A readable entry for the same octets gives the flags, keywords and
                // INTERNALDATE; one that expunged them drops the file.
                if (auto it = readable.find(u); it != readable.end() && it->second.img.content_id == img->content_id &&
                                                it->second.img.size == img->size) {
                    msg_image const& e = it->second.img;
                    if ((e.state & state_expunged) != 0) {
                        unlink_after.push_back(path);
                        rep.removed.push_back(u);
                        continue;
                    }
                    img->sysflags = e.sysflags;
                    img->date = e.date;
                    img->tz = e.tz;
                    img->nsec = e.nsec;
                    k = it->second.kws;
                    for (auto const& name : k) {
                        auto [kt, added] = ns.kw_index.emplace(name, static_cast<std::uint32_t>(ns.kw.size()));
                        if (added) ns.kw.push_back(name);
                        img->set_kw(kt->second);
                    }
                }
                auto mod = take_mod();
                if (!mod) return std::move(mod).error_value();
                img->modseq = img->created_modseq = *mod;
                ns.live.emplace(u, live_msg{*img, std::move(k)});
                ns.by_mod.emplace(*mod, u);
                rep.recovered.push_back(u);
                next_uid = std::max(next_uid, u + 1);
            }
            std::uint32_t v = static_cast<std::uint32_t>(std::clamp<std::int64_t>(::time(nullptr), 1, 0xFFFFFFFFLL));
            if (slot && v <= slot->uidvalidity) {
                if (slot->uidvalidity == 0xFFFFFFFFU) return error{errc::not_possible, "UIDVALIDITY space exhausted"};
                v = slot->uidvalidity + 1;
            }
            nh.uidvalidity = side ? side->uidvalidity : v;
            nh.uidnext = next_uid;
            nh.vanished_floor = std::max(slot ? slot->highestmodseq : 0, side ? side->modseq : 0);
            nh.generation = slot ? slot->generation : 0;
        }
        nh.highestmodseq = std::max(next_mod, nh.vanished_floor + 1);
        if (nh.highestmodseq > max_modseq) return error{errc::not_possible, "modseq space exhausted"};
        nh.flags = 0;
        nh.state_digest = 0;
        nh.commit_time_ns = now_ns();
        rep.new_uidvalidity = nh.uidvalidity;
        rep.new_highestmodseq = nh.highestmodseq;
        if (rep.done == repair_report::action::salvaged) {
            rep.uidvalidity_kept = true;
            rep.uidvalidity_why = "salvaged: the valid slot gives the old highestmodseq";
        }
        // The sidecar covers the new state before it is published.
        if (auto r = persist_hwm(dir, nh.uidvalidity, nh.highestmodseq, nh.uidnext, opt.hwm_step); !r)
            return std::move(r).error_value();
        auto built = build_index_file(ns, nh, nh.generation + 1, random_u64());
        if (auto r = check_built_file(built, ns, ns.tombs, dir + "/tmp/index.new"); !r) return std::move(r).error_value();
        if (auto r = atomic_replace(dir, index, dir + "/tmp/index.new", built); !r) return std::move(r).error_value();
        for (auto const& p : unlink_after) ::unlink(p.c_str());
        // The compaction marks name modseqs of another epoch after a rebuild.
        if (rep.done == repair_report::action::rebuilt) ::unlink((dir + "/compact.times").c_str());
        return rep;
    }

private:
    // Repair case 3: the modseq.hwm sidecar that lets a rebuild keep UIDVALIDITY (§10), or
    // nullopt (UIDVALIDITY changes); fills the report's reason. A sidecar is only trusted
    // when it is valid and, if a slot survived, of the slot's UIDVALIDITY.
    static std::optional<mmap_detail::hwm_mark> rebuild_hwm(std::string const& dir,
                                                            std::optional<mmap_detail::slot_fields> const& slot,
                                                            mmap_repair_report& rep) {
        using namespace mmap_detail;
        auto side = read_hwm(dir + "/" + std::string(hwm_file_name));
        if (!side) {
            rep.uidvalidity_why = "rebuilt: no valid modseq.hwm sidecar (missing or garbled): modseq reuse cannot be "
                                  "ruled out, so UIDVALIDITY changes";
            return std::nullopt;
        }
        if (slot && slot->uidvalidity != side->uidvalidity) {
            rep.uidvalidity_why = "rebuilt: the modseq.hwm sidecar is of UIDVALIDITY " + std::to_string(side->uidvalidity) +
                                  ", the slot of " + std::to_string(slot->uidvalidity) + ": UIDVALIDITY changes";
            return std::nullopt;
        }
        rep.uidvalidity_kept = true;
        rep.hwm_modseq = side->modseq;
        rep.uidvalidity_why = "rebuilt: the modseq.hwm sidecar (UIDVALIDITY " + std::to_string(side->uidvalidity) +
                              ", modseq mark " + std::to_string(side->modseq) + ", uidnext mark " +
                              std::to_string(side->uidnext) + ") bounds everything published: UIDVALIDITY kept";
        return side;
    }

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
            auto const& st = self->core_->st;
            img.keywords = {};
            for (auto const& name : k) {
                std::uint32_t idx = 0;
                if (auto it = st.kw_index.find(name); it != st.kw_index.end()) {
                    idx = it->second;
                } else if (auto jt = std::find(new_kw.begin(), new_kw.end(), name); jt != new_kw.end()) {
                    idx = static_cast<std::uint32_t>(st.kw.size() + static_cast<std::size_t>(jt - new_kw.begin()));
                } else {
                    if (!mmap_detail::valid_keyword_name(name))
                        return error{errc::invalid_argument, "invalid keyword name '" + name + "'"};
                    if (h.kw_count >= mmap_detail::max_keywords)
                        return error{errc::not_possible,
                                     "more than 128 keywords in the mailbox (compact() drops the ones no message uses)"};
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

    // Takes the core's mutex, joining (or re-joining) the shared core first. A core that
    // is not loaded (never opened, or dropped after a removal or a failure) is left and
    // looked up again, so a re-created directory gets the state of its own inode.
    // A handle carried into a fork()ed child leaves its parent's state too: sharing the
    // parent's open files would make their flocks one lock.
    result<std::unique_lock<std::mutex>> lock_core() {
        if (core_ && (!core_->loaded.load() || core_->pid != ::getpid())) core_.reset();
        if (!core_) {
            auto c = mmap_detail::acquire_core(dir_, opt_.share_open);
            if (!c) return ctx(std::move(c).error_value());
            core_ = std::move(*c);
        }
        return std::unique_lock<std::mutex>(core_->mu);
    }

    bool worthwhile_locked() const noexcept {
        auto const& st = core_->st;
        if (!core_->loaded) return false;
        std::uint64_t const t = st.hdr.tail_count;
        return t > std::max<std::uint64_t>(opt_.compact_min_tail, st.live / 8) ||
               t * mmap_detail::entry_size > (std::uint64_t{8} << 20) || prunable_worthwhile_locked() ||
               keywords_to_reclaim_locked();
    }

    // Tombstones beyond retention (§8.4 trigger), with the same hysteresis as the tail:
    // more than max(compact_min_tail, live/8) of them prunable now. Reads compact.times
    // (at most 64 lines) only when there are more tombstones than the count kept.
    bool prunable_worthwhile_locked() const noexcept {
        using namespace mmap_detail;
        auto const& st = core_->st;
        if (st.tomb_total() <= opt_.tomb_keep_count) return false;
        try {
            auto marks = read_compact_times(core_->dir + "/compact.times");
            std::erase_if(marks, [&](compact_mark const& k) { return k.modseq > st.hdr.highestmodseq; });
            std::int64_t const cutoff = ::time(nullptr) - static_cast<std::int64_t>(opt_.tomb_keep_age.count());
            // tombs_to_prune without a copy of the tombstones: min(by count, by age).
            auto old = st.tombs_at_or_below(old_modseq_cutoff(marks, cutoff));
            if (!old) return false;
            std::size_t const n = std::min(st.tomb_total() - opt_.tomb_keep_count, *old);
            return n > std::max<std::uint64_t>(opt_.compact_min_tail, st.live / 8);
        } catch (...) {
            return false;
        }
    }

    // Keywords to reclaim (§8.4 trigger): more than `kw_reclaim_above` (96) of the 128
    // keyword definitions made and at least one unused by every live message. O(N), only
    // when that many are defined.
    bool keywords_to_reclaim_locked() const noexcept {
        auto const& st = core_->st;
        if (st.kw.size() <= kw_reclaim_above) return false;
        try {
            auto used = mmap_detail::used_keyword_bits(st);
            return used && mmap_detail::unused_keywords(*used, st.kw.size()) > 0;
        } catch (...) {
            return false;
        }
    }
    static constexpr std::size_t kw_reclaim_above = 96;

    // Compaction under the core mutex; `timeout` for the writer lock (0: only if free now).
    result<void> compact_locked(std::chrono::milliseconds timeout) {
        using namespace mmap_detail;
        auto& c = *core_;
        if (auto r = begin_write(timeout); !r) return r;
        struct unlock_guard {
            mailbox_core& c;
            ~unlock_guard() {
                if (c.wlock) unlock_file(c.wlock);
                c.wlock_held = false;
            }
        } guard{c};
        // Tombstone retention (§8.4 step 1).
        auto marks = read_compact_times(c.dir + "/compact.times");
        // A mark above our highestmodseq cannot be ours (a copied or stale sidecar).
        std::erase_if(marks, [&](compact_mark const& k) { return k.modseq > c.st.hdr.highestmodseq; });
        std::int64_t const now = ::time(nullptr);
        std::int64_t const cutoff = now - static_cast<std::int64_t>(opt_.tomb_keep_age.count());
        auto all_tombs = c.st.all_tombs();
        if (!all_tombs) return ctx(std::move(all_tombs).error_value());
        std::span<std::pair<std::uint64_t, std::uint32_t> const> tombs(*all_tombs);
        std::size_t const pruned = tombs_to_prune(tombs, opt_.tomb_keep_count, old_modseq_cutoff(marks, cutoff));
        slot_fields h = c.st.hdr;
        if (pruned > 0) h.vanished_floor = std::max(h.vanished_floor, tombs[pruned - 1].first);
        tombs = tombs.subspan(pruned);
        // §8.4: keyword definitions no live message uses are dropped, the others renumbered.
        auto built = build_index_file_reclaiming(c.st, h, c.st.hdr.generation + 1, random_u64(), tombs);
        if (!built) return ctx(std::move(built).error_value());
        auto const& bytes = *built;
        // Checked against the state itself: the same live messages with the same keyword NAMES.
        if (auto r = check_built_file(bytes, c.st, tombs, c.dir + "/tmp/index.new"); !r) return ctx(std::move(r).error_value());
        if (auto r = atomic_replace(c.dir, index_path(), c.dir + "/tmp/index.new", bytes); !r)
            return ctx(std::move(r).error_value());
        {   // Advisory: a failure only means fewer tombstones known to be old later.
            std::string const times = next_compact_times(marks, {c.st.hdr.highestmodseq, now}, cutoff);
            (void)atomic_replace(c.dir, c.dir + "/compact.times", c.dir + "/tmp/compact.times.new",
                                 std::as_bytes(std::span(times.data(), times.size())));
        }
        // Advisory RETIRED mark in the old file's inactive slot (no fsync needed).
        slot_fields old = c.st.hdr;
        old.generation += 1;
        old.flags |= flag_retired;
        auto const raw = encode_slot(old);
        if (lock_file(c.plock, LOCK_EX, opt_.lock_timeout)) {
            (void)c.fd.pwrite_all(raw, old.generation % 2 == 0 ? 0 : slot_b_off);
            unlock_file(c.plock);
        }
        ++c.stats.compactions;
        sweep_messages(false); // before the reload, which reopens the lock files (releasing the lock)
        c.reset();
        if (auto r = load_full(); !r) return ctx(std::move(r).error_value());
        return {};
    }

    // Orphan sweep (§8.3), under the writer lock: removes msg/<n> files that are not live
    // messages. `only_above_uidnext`: only UIDs >= uidnext (left by a writer killed before
    // its commit; no reader ever saw them); else also expunged messages whose unlink did
    // not happen (compaction).
    void sweep_messages(bool only_above_uidnext) {
        auto const& st = core_->st;
        std::string const d = core_->dir + "/msg";
        DIR* dp = ::opendir(d.c_str());
        if (dp == nullptr) return;
        std::vector<std::string> gone;
        while (dirent* de = ::readdir(dp)) {
            std::string_view const n = de->d_name;
            if (n.empty() || n.size() > 10 || n.find_first_not_of("0123456789") != std::string_view::npos) continue;
            std::uint64_t v = 0;
            for (char ch : n) v = v * 10 + static_cast<std::uint64_t>(ch - '0');
            bool orphan = false;
            if (only_above_uidnext) {
                orphan = v >= st.hdr.uidnext;
            } else if (v > 0xFFFFFFFFULL) {
                orphan = true;
            } else {
                auto cur = st.lookup(static_cast<std::uint32_t>(v));
                orphan = cur && !*cur; // a lookup that fails keeps the file
            }
            if (orphan) gone.emplace_back(n);
        }
        ::closedir(dp);
        for (auto const& n : gone) ::unlink((d + "/" + n).c_str());
    }

    // Writer-open sweep (§8.3), once per loaded file, under the writer lock: tmp/index.new
    // (only written under the writer lock, so stale), tmp/ staging files older than
    // `stale_tmp_age` (younger ones may be an appender's, which stages outside the lock),
    // and msg/<uid> with uid >= uidnext.
    void sweep_at_writer_open() {
        std::string const d = core_->dir + "/tmp";
        if (DIR* dp = ::opendir(d.c_str())) {
            std::vector<std::string> gone;
            auto const now = ::time(nullptr);
            while (dirent* de = ::readdir(dp)) {
                std::string_view const n = de->d_name;
                if (n == "." || n == "..") continue;
                std::string const p = d + "/" + std::string(n);
                struct stat st {};
                if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
                if (n == "index.new" || now - st.st_mtime > opt_.stale_tmp_age.count()) gone.push_back(p);
            }
            ::closedir(dp);
            for (auto const& p : gone) ::unlink(p.c_str());
        }
        sweep_messages(true);
    }

    error ctx(error e) const { return std::move(e).with_context("for backend mailbox " + opt_.name); }

    [[nodiscard]] std::string index_path() const { return core_->dir + "/index"; }
    [[nodiscard]] std::string msg_path(std::uint32_t u) const { return core_->dir + "/msg/" + std::to_string(u); }

    static message_meta meta(mmap_detail::msg_image const& m, mmap_detail::keyword_cache& names) {
        return {flag_set::from_bits(m.sysflags), &names.of(m), mail_time{m.date}, m.size};
    }

    // f(image) for each live message in `uids`, in UID order.
    template <class F>
    result<void> visit(uid_set const& uids, F&& f) const {
        for (auto const& r : uids) {
            if (auto v = core_->st.for_each_live(r.first, r.last, f); !v) return v;
            if (r.last == 0xFFFFFFFFU) break;
        }
        return {};
    }

    // Under the core mutex: a loaded, unpoisoned state (a poisoned one is reloaded).
    result<void> ensure_loaded() {
        auto& c = *core_;
        if (c.poisoned) c.reset();
        if (c.loaded) return {};
        if (auto r = load_full(); !r) return ctx(std::move(r).error_value());
        return {};
    }

    // Opens (or reopens) the index and loads the newest valid generation (§7).
    result<void> load_full() {
        using namespace mmap_detail;
        auto& c = *core_;
        struct stat dst {};
        if (::stat(c.dir.c_str(), &dst) != 0) return error{errc::not_found, "Mailbox doesn't exist"};
        if (!opt_.allow_remote_fs)
            if (auto r = check_local_filesystem(c.dir); !r) return r;
        auto fd = unique_fd::open(index_path(), O_RDWR | O_NOFOLLOW);
        if (!fd) {
            if (fd.error_value().is(errc::not_found)) return error{errc::not_found, "Mailbox doesn't exist"};
            return std::move(fd).error_value();
        }
        auto wl = unique_fd::open(c.dir + "/writer.lock", O_RDWR);
        if (!wl) return std::move(wl).error_value();
        auto pl = unique_fd::open(c.dir + "/publish.lock", O_RDWR);
        if (!pl) return std::move(pl).error_value();
        auto sr = fd->stat();
        if (!sr) return std::move(sr).error_value();
        index_snapshot s;
        s.ino = static_cast<std::uint64_t>(sr->st_ino);
        auto h = read_slots(*fd, *pl, opt_.lock_timeout);
        if (!h) return std::move(h).error_value();
        s.hdr = *h;
        s.lazy = opt_.validate == mmap_options::validation::lazy;
        if (auto r = load_generation(s, *fd, *h, opt_.use_mmap); !r) return r;
        c.fd = std::move(*fd);
        c.wlock = std::move(*wl);
        c.plock = std::move(*pl);
        c.st = std::move(s);
        c.poisoned = false;
        c.wlock_held = false;
        c.swept = false;
        c.loaded = true;
        ++c.stats.full_loads;
        c.stats.base_entries_validated += c.st.lazy ? std::uint64_t{h->base_kw_count} + h->tomb_count + (h->live_count > 0 ? 1 : 0)
                                                    : std::uint64_t{h->live_count} + h->tomb_count + h->base_kw_count;
        c.stats.tail_entries_validated += h->tail_count;
        return {};
    }

    // Maps (or, without `use_mmap`, reads) the committed range of `h`, which read_slots
    // checked against the file size, validates the base in place and replays the tail
    // into the overlay of `s` (fresh).
    static result<void> load_generation(mmap_detail::index_snapshot& s, mmap_detail::unique_fd const& fd,
                                        mmap_detail::slot_fields const& h, bool use_mmap) {
        using namespace mmap_detail;
        auto mem = read_region(fd, h.committed_end(), use_mmap);
        if (!mem) return std::move(mem).error_value();
        s.mem = std::move(*mem);
        s.file = fd.path();
        if (auto r = validate_base(s); !r) return r;
        return replay_tail(s, h, s.mem->p + h.tail_off, fd.path());
    }

    // Copies both slots under the shared publish lock and returns the newest valid one.
    // With `busy`, a lock that is not free within `timeout` sets *busy (a writer is
    // publishing) instead of being only an error.
    static result<mmap_detail::slot_fields> read_slots(mmap_detail::unique_fd const& fd, mmap_detail::unique_fd const& pl,
                                                       std::chrono::milliseconds timeout, bool* busy = nullptr) {
        using namespace mmap_detail;
        std::array<std::byte, slot_size> a{}, b{};
        if (auto r = lock_file(pl, LOCK_SH, timeout); !r) {
            if (busy != nullptr && r.error_value().is(errc::temporary)) *busy = true;
            return std::move(r).error_value();
        }
        auto ra = fd.pread_all(a, 0);
        auto rb = fd.pread_all(b, slot_b_off);
        // The size is taken after the slots are copied: a slot is published (W5) only
        // after the bytes it covers were written (W1), and the file never shrinks in
        // place, so this size covers both slots. A size taken before the copy could miss
        // the growth of commits published in between (a healthy file reported corrupt).
        auto st = fd.stat();
        unlock_file(pl);
        if (!st) return std::move(st).error_value();
        auto const size = static_cast<std::uint64_t>(st->st_size);
        if (size < base_off) return corrupt(fd.path(), 0, "file size", "smaller than 8192 bytes");
        if (size > max_index_size) return corrupt(fd.path(), 0, "file size", "above the 4 GiB limit");
        if (!ra) return std::move(ra).error_value();
        if (!rb) return std::move(rb).error_value();
        slot_fields const sa = decode_slot(a), sb = decode_slot(b);
        auto ca = check_slot(sa, a, 0, size, fd.path());
        auto cb = check_slot(sb, b, slot_b_off, size, fd.path());
        if (!ca && !cb) return corrupt(fd.path(), 0, "header", "no valid header slot (" + ca.error_value().message + "; " + cb.error_value().message + ")");
        if (ca && (!cb || sa.generation > sb.generation)) return sa;
        return sb;
    }

    // Brings the state up to the newest committed generation (§7 Refresh):
    //  * the index was replaced (other inode, unlinked, RETIRED): full reopen;
    //  * the publish lock is busy, `wait` is false and `refresh_nowait` set: keep the
    //    snapshot ("no change yet"); else wait for it (up to the deadline);
    //  * the generation is unchanged: done, O(1) (a stat, an fstat, two 256-byte preads);
    //  * the same file moved on: the monotonicity rules of step 4 (else "inconsistent",
    //    and the snapshot is dropped), then only the new tail entries are read (pread,
    //    never mapped: no SIGBUS exposure), validated, and applied: O(k log N). A new entry
    //    that fails validation is `corrupted` and the snapshot stays as it was.
    result<void> refresh(bool wait = false) {
        using namespace mmap_detail;
        if (auto r = ensure_loaded(); !r) return r;
        auto& c = *core_;
        struct stat st {};
        if (::stat(index_path().c_str(), &st) != 0) {
            int const e = errno;
            c.reset();
            if (e == ENOENT || e == ENOTDIR) return ctx(error{errc::not_found, "Mailbox doesn't exist"});
            return ctx(sys_error(e, "cannot stat", index_path()));
        }
        auto own = c.fd.stat();
        if (!own) return ctx(std::move(own).error_value());
        if (static_cast<std::uint64_t>(st.st_ino) != c.st.ino || st.st_dev != own->st_dev || own->st_nlink == 0) return reopen();
        bool busy = false;
        bool const nowait = !wait && opt_.refresh_nowait;
        auto h = read_slots(c.fd, c.plock, nowait ? std::chrono::milliseconds{0} : opt_.lock_timeout, &busy);
        if (!h) {
            if (busy && nowait) {
                ++c.stats.busy_refreshes;
                return {};
            }
            return ctx(std::move(h).error_value());
        }
        slot_fields const& cur = c.st.hdr;
        if (h->generation == cur.generation && h->file_id == cur.file_id) {
            ++c.stats.unchanged_refreshes;
            return {};
        }
        if ((h->flags & flag_retired) != 0) return reopen();
        if (auto f = refresh_violation(cur, *h); !f.empty()) {
            std::string m(inconsistent_prefix);
            m.append(c.fd.path()).append(": ").append(f).append(" changed from generation ")
                .append(std::to_string(cur.generation)).append(" to ").append(std::to_string(h->generation))
                .append(" of the same file; snapshot dropped, resync in full");
            c.reset();
            return ctx(error{errc::inconsistent, std::move(m)});
        }
        std::uint64_t const from = cur.committed_end();
        std::vector<std::byte> buf(static_cast<std::size_t>(h->committed_end() - from));
        if (auto r = c.fd.pread_all(buf, from); !r) return ctx(std::move(r).error_value());
        auto b = validate_tail(c.st, *h, buf.data(), c.fd.path());
        if (!b) return ctx(std::move(b).error_value());
        c.stats.tail_entries_validated += h->tail_count - c.st.tail_count;
        ++c.stats.incremental_refreshes;
        apply_tail(c.st, std::move(*b));
        return {};
    }

    // Full open of a replacement file, then the continuity check of §7 step 3: with the
    // same uidvalidity, highestmodseq and uidnext must not go down (an older copy of the
    // index put back, say), and every UID live before must be live or a tombstone now
    // (O(N log N), like the reload itself). A violation is reported once as
    // "inconsistent"; the new state stays loaded.
    result<void> reopen() {
        auto& c = *core_;
        bool const had = c.loaded;
        mmap_detail::index_snapshot old = std::move(c.st); // keeps the old bytes alive (shared)
        c.reset();
        if (auto r = ensure_loaded(); !r) return r;
        if (!had || old.hdr.uidvalidity != c.st.hdr.uidvalidity) return {};
        std::string what;
        if (c.st.hdr.highestmodseq < old.hdr.highestmodseq) {
            what = "highestmodseq went down";
        } else if (c.st.hdr.uidnext < old.hdr.uidnext) {
            what = "uidnext went down";
        } else {
            // A tombstone pruned by retention (or dropped by repair) is at or below the
            // new floor, and so is the last image of its message we knew. The old and new
            // live sets are merged in UID order; the old UIDs missing from the new one are
            // then looked for among the new tombstones.
            auto gone = vanished_uids(old, c.st);
            if (!gone) return ctx(std::move(gone).error_value());
            if (*gone) what = "uid " + std::to_string(**gone) + " vanished without a tombstone";
        }
        if (what.empty()) return {};
        std::string m(mmap_detail::inconsistent_prefix);
        m.append(c.fd.path()).append(": ").append(what).append(" in the replacement file (generation ")
            .append(std::to_string(old.hdr.generation)).append(" -> ").append(std::to_string(c.st.hdr.generation))
            .append("); resync in full");
        return ctx(error{errc::inconsistent, std::move(m)});
    }

    // The first UID live in `old` (with a modseq above the new floor) that is neither live
    // nor a tombstone in `now`, if any. O(N_old + N_new + E), memory O(missing).
    static result<std::optional<std::uint32_t>> vanished_uids(mmap_detail::index_snapshot const& old,
                                                              mmap_detail::index_snapshot const& now) {
        using namespace mmap_detail;
        std::vector<std::uint32_t> missing;
        auto nc = now.seek(1);
        if (!nc) return std::move(nc).error_value();
        std::optional<msg_image> cur;
        bool started = false;
        std::optional<error> bad;
        auto r = old.for_each_live(1, 0xFFFFFFFFU, [&](msg_image const& m) {
            if (bad || m.modseq <= now.hdr.vanished_floor) return;
            while (!started || (cur && cur->uid < m.uid)) {
                started = true;
                auto n = now.next(*nc);
                if (!n) {
                    bad = std::move(n).error_value();
                    return;
                }
                cur = *n;
            }
            if (!cur || cur->uid != m.uid) missing.push_back(m.uid);
        });
        if (!r) return std::move(r).error_value();
        if (bad) return std::move(*bad);
        if (missing.empty()) return std::optional<std::uint32_t>{};
        std::vector<bool> found(missing.size(), false);
        auto mark = [&](std::uint32_t u) {
            auto it = std::lower_bound(missing.begin(), missing.end(), u);
            if (it != missing.end() && *it == u) found[static_cast<std::size_t>(it - missing.begin())] = true;
        };
        for (std::uint32_t i = 0; i < now.hdr.tomb_count; ++i) {
            auto t = now.base_tomb(i);
            if (!t) return std::move(t).error_value();
            mark(t->second);
        }
        for (auto const& t : now.tombs) mark(t.second);
        for (std::size_t i = 0; i < missing.size(); ++i)
            if (!found[i]) return std::optional<std::uint32_t>(missing[i]);
        return std::optional<std::uint32_t>{};
    }

    // Takes the writer lock (within `timeout`), runs recovery (fdatasync, catch up) and,
    // once per loaded file, the writer-open sweep. On success the writer lock is held.
    result<void> begin_write(std::chrono::milliseconds timeout) {
        using namespace mmap_detail;
        if (auto r = ensure_loaded(); !r) return r;
        auto& c = *core_;
        if (c.st.hdr.ro_compat != 0) return ctx(error{errc::unsupported, "index has read-only features"});
        if (auto r = lock_file(c.wlock, LOCK_EX, timeout); !r) return ctx(std::move(r).error_value());
        if (auto r = c.fd.sync(); !r) {
            unlock_file(c.wlock);
            c.poisoned = true;
            return ctx(std::move(r).error_value());
        }
        c.wlock_held = true;
        if (auto r = refresh(true); !r) {
            if (c.wlock) unlock_file(c.wlock);
            c.wlock_held = false;
            return r;
        }
        // refresh may have reopened (new inode): the lock then belonged to the old fd,
        // which was closed (released); take it again on the new one.
        if (!c.wlock_held) {
            if (auto r = lock_file(c.wlock, LOCK_EX, timeout); !r) return ctx(std::move(r).error_value());
            c.wlock_held = true;
            if (auto r = refresh(true); !r) {
                if (c.wlock) unlock_file(c.wlock);
                c.wlock_held = false;
                return r;
            }
            if (!c.wlock_held) { // replaced again under our feet: give up for now
                return ctx(error{errc::temporary, "index replaced twice while taking the writer lock"});
            }
        }
        if (!c.swept) {
            sweep_at_writer_open();
            c.swept = true;
        }
        return {};
    }

    // One transaction: writer lock, recovery, `build`, commit W1..W8.
    template <class F>
    result<void> transact(F&& build) {
        using namespace mmap_detail;
        if (auto r = begin_write(opt_.lock_timeout); !r) return r;
        struct guard_t {
            mailbox_core& c;
            ~guard_t() {
                if (c.wlock) unlock_file(c.wlock);
                c.wlock_held = false;
            }
        } guard{*core_};
        txn t{this, core_->st.hdr, {}, {}};
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
        auto& c = *core_;
        slot_fields& h = t.h;
        if (h.highestmodseq > max_modseq) return error{errc::not_possible, "modseq space exhausted"};
        if (h.tail_count > max_tail_count) return error{errc::not_possible, "tail full; compact the mailbox"};
        std::uint64_t const end = c.st.hdr.committed_end();
        if (auto r = ensure_hwm_locked(h); !r) return r; // §10 case 3: the mark first
        // W1
        if (auto r = c.fd.pwrite_all(t.bytes, end); !r) return r;
        // W2
        if (auto r = c.fd.sync(); !r) {
            c.poisoned = true;
            return r;
        }
        // W3
        h.generation = c.st.hdr.generation + 1;
        h.flags = 0;
        h.tail_chain_crc = crc32c_update(c.st.chain, t.bytes);
        h.commit_time_ns = now_ns();
        auto const raw = encode_slot(h);
        std::uint64_t const at = h.generation % 2 == 0 ? 0 : slot_b_off;
        // W4
        if (auto r = lock_file(c.plock, LOCK_EX, opt_.lock_timeout); !r)
            return error{errc::temporary, "publish lock held too long; see /proc/locks: " + r.error_value().message};
        std::array<std::byte, slot_size> const zero{};
        // W5
        if (auto r = c.fd.pwrite_all(raw, at); !r) {
            (void)c.fd.pwrite_all(zero, at);
            unlock_file(c.plock);
            return r;
        }
        // W6
        if (auto r = c.fd.sync(); !r) {
            (void)c.fd.pwrite_all(zero, at);
            unlock_file(c.plock);
            c.poisoned = true;
            auto e = std::move(r).error_value();
            e.message += " (commit outcome unknown: reopen and re-read the mailbox)";
            return e;
        }
        // W7
        unlock_file(c.plock);
        // W8: apply our own entries, validated like any reader would. On failure (a bug:
        // we just built these entries) the state is untouched but behind the file: the
        // poisoned handle reloads from disk on the next call.
        auto b = validate_tail(c.st, h, t.bytes.data(), c.fd.path());
        if (!b) {
            c.poisoned = true;
            return std::move(b).error_value();
        }
        c.stats.tail_entries_validated += h.tail_count - c.st.tail_count;
        apply_tail(c.st, std::move(*b));
        return {};
    }

    // Under the writer lock, before publishing `h`: the modseq.hwm sidecar must cover its
    // highestmodseq and uidnext (§10 case 3). Rewritten durably when needed; a failure
    // fails the commit before anything is written to the index.
    result<void> ensure_hwm_locked(mmap_detail::slot_fields const& h) {
        using namespace mmap_detail;
        auto& c = *core_;
        if (c.hwm && c.hwm->uidvalidity != h.uidvalidity) c.hwm.reset();
        if (!c.hwm) c.hwm = read_hwm(c.dir + "/" + std::string(hwm_file_name));
        if (!hwm_rewrite_needed(c.hwm, h.uidvalidity, h.highestmodseq, h.uidnext, opt_.hwm_step)) return {};
        auto m = persist_hwm(c.dir, h.uidvalidity, h.highestmodseq, h.uidnext, opt_.hwm_step);
        if (!m) {
            c.hwm.reset();
            return std::move(m).error_value();
        }
        c.hwm = *m;
        return {};
    }

    std::string dir_;
    mmap_options opt_;
    std::shared_ptr<mmap_detail::mailbox_core> core_;
};

static_assert(backend<mmap_mailbox>);
static_assert(openable_backend<mmap_mailbox>);
static_assert(closed_status_backend<mmap_mailbox>);

VFOLDER_END_NAMESPACE

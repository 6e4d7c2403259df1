/// \file
/// \brief `mmap_store`: a `view_store` on disk. One directory per virtual folder holds a
/// checkpoint (the full state) and an append-only log of deltas; a commit appends one
/// framed record and fdatasyncs it, so it costs O(size of the delta), not O(N).
///
/// Files in the folder's directory (docs/mmap-store.md has the full description):
///
///     lock            empty; flock(LOCK_EX) held while an mmap_store object is open
///     checkpoint      the full state, replaced atomically (tmp + fsync + rename + dir fsync)
///     log             the deltas committed since that checkpoint
///     *.tmp           leftovers of an interrupted replace (ignored, overwritten)
///
/// Every integer is little-endian (le.hpp). CRCs are CRC-32C (crc32c.hpp) seeded with
/// `lo32(id) ^ hi32(id)` of the file's random 64-bit id, so a record copied from another
/// file, or left over from an earlier instance, fails its check.
///
///     checkpoint: header (32 bytes), then `payload_len` bytes of state payload; the file
///       size is exactly 32 + payload_len.
///       0 u32 magic "VFSC"   4 u32 version = 1   8 u64 checkpoint_id (random, != 0)
///       16 u64 payload_len   24 u32 payload_crc  28 u32 header_crc (over [0, 28))
///     log: header (32 bytes), then records back to back.
///       0 u32 magic "VFSL"   4 u32 version = 1   8 u64 log_id (random, != 0)
///       16 u64 base_checkpoint_id (the checkpoint this log continues; else stale, ignored)
///       24 u32 reserved = 0  28 u32 header_crc (over [0, 28))
///     record: 0 u32 magic "VFSR"  4 u32 payload_len  8 u64 seq (1, 2, ... in the log)
///       16 u32 payload_crc  20 u32 header_crc (over [0, 20)); then the delta payload.
///     state payload: u8 present (0/1), header, u32 n + n backend records, u32 m + m messages
///     delta payload: u8 bits (1 replace_all, 2 has header), [header], uid set expunged,
///       u32 n + appended messages, u32 n + updated messages, u32 n + backend records,
///       u32 n + n u32 removed mailbox ids
///     header: u32 uidvalidity, u32 next_uid, u32 highest_box, u64 definition_id
///     message: u32 vuid, u32 box, u32 real_uid, u8 flag bits, u32 k + k strings (ascending)
///     backend: u32 box, string name, u32 uidvalidity, u8 has_guid [+16 bytes guid],
///       u32 uid_next, u64 highest_modseq, uid set pending_removes
///     string: u32 length + bytes;  uid set: u32 n + n × (u32 first, u32 last), canonical
///
/// Commit protocol: check the delta against the state (the error cases of `apply`); encode
/// one record; `pwrite_all` it at the committed end of the log; `fdatasync`; success. A
/// failed write or fdatasync is reported (never retried): the log is truncated back to
/// its committed end (and that truncation synced); if even that fails, the object is
/// *poisoned*: the next call re-reads the directory, where the torn record is dropped.
/// When the log grows past the state (and `checkpoint_min_bytes`), the state is written
/// as a new checkpoint and a fresh, empty log replaces the old one; that happens after the
/// commit is durable, and its failure only poisons the object (the commit succeeded).
///
/// Loading: a missing checkpoint is "nothing committed" (any log is then ignored). The
/// checkpoint must verify entirely; a missing log is fine only after a checkpoint of an
/// absent state (else corrupted); the log's header must verify; a log whose base id is
/// not the checkpoint's is stale (a crash between a checkpoint and the log reset) and is
/// ignored. Records replay in order; a bad record (bad magic, header CRC, length past the
/// end of file, payload CRC) with no valid record header after it is a torn last commit and
/// is truncated away; with a valid record header after it, or with any other defect, the
/// state is `errc::corrupted`, naming the file, the offset and the field. `reset()`
/// removes the files whatever their content.
#pragma once

#include <vfolder/adapters/mmap/detail/crc32c.hpp>
#include <vfolder/adapters/mmap/detail/le.hpp>
#include <vfolder/adapters/mmap/detail/posix_file.hpp>
#include <vfolder/concepts.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/view_state.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

VFOLDER_BEGIN_NAMESPACE

namespace mmap_store_detail {

inline constexpr std::uint32_t checkpoint_magic = 0x43534656U; // "VFSC"
inline constexpr std::uint32_t log_magic = 0x4C534656U;        // "VFSL"
inline constexpr std::uint32_t record_magic = 0x52534656U;     // "VFSR"
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::size_t file_header_size = 32;
inline constexpr std::size_t record_header_size = 24;

[[nodiscard]] inline std::uint32_t seed_of(std::uint64_t id) noexcept {
    return static_cast<std::uint32_t>(id) ^ static_cast<std::uint32_t>(id >> 32);
}

[[nodiscard]] inline std::uint32_t crc(std::uint32_t seed, std::byte const* p, std::size_t n) noexcept {
    return mmap_detail::crc32c_update(seed, std::span<std::byte const>(p, n));
}

[[nodiscard]] inline std::uint64_t random_id() {
    std::random_device rd; // fresh each time: a forked child must not repeat its parent's ids
    std::uint64_t v = 0;
    while (v == 0) v = static_cast<std::uint64_t>(rd()) << 32 | static_cast<std::uint64_t>(rd());
    return v;
}

/// \brief Appends little-endian values to a byte buffer.
struct writer {
    std::vector<std::byte> out;
    void u8(std::uint8_t v) { out.push_back(static_cast<std::byte>(v)); }
    void u32(std::uint32_t v) {
        std::size_t const at = out.size();
        out.resize(at + 4);
        mmap_detail::store_le(out.data() + at, v);
    }
    void u64(std::uint64_t v) {
        std::size_t const at = out.size();
        out.resize(at + 8);
        mmap_detail::store_le(out.data() + at, v);
    }
    void str(std::string_view s) {
        u32(static_cast<std::uint32_t>(s.size()));
        auto const b = std::as_bytes(std::span<char const>(s.data(), s.size()));
        out.insert(out.end(), b.begin(), b.end());
    }
};

/// \brief Reads little-endian values from a byte buffer, bound-checking every read. The
/// first failure is kept (as `errc::corrupted` naming file, offset and field); later
/// reads return zeros.
struct reader {
    std::span<std::byte const> buf;
    std::size_t pos = 0;
    std::uint64_t base = 0; // file offset of buf[0]
    std::string const* path = nullptr;
    std::optional<error> err;

    [[nodiscard]] bool ok() const noexcept { return !err; }
    [[nodiscard]] std::size_t remaining() const noexcept { return buf.size() - pos; }
    void fail(std::string_view field, std::string_view what) { fail_at(base + pos, field, what); }
    void fail_at(std::uint64_t offset, std::string_view field, std::string_view what) {
        if (err) return;
        std::string m = "corrupted mmap_store file ";
        m.append(*path).append(" at offset ").append(std::to_string(offset)).append(": ");
        m.append(field).append(": ").append(what);
        err = error{errc::corrupted, std::move(m)};
    }
    bool need(std::size_t n, std::string_view field) {
        if (err) return false;
        if (remaining() < n) {
            fail(field, "runs past the end of the data");
            return false;
        }
        return true;
    }
    std::uint8_t u8(std::string_view field) {
        if (!need(1, field)) return 0;
        return static_cast<std::uint8_t>(buf[pos++]);
    }
    std::uint32_t u32(std::string_view field) {
        if (!need(4, field)) return 0;
        auto const v = mmap_detail::load_le<std::uint32_t>(buf.data() + pos);
        pos += 4;
        return v;
    }
    std::uint64_t u64(std::string_view field) {
        if (!need(8, field)) return 0;
        auto const v = mmap_detail::load_le<std::uint64_t>(buf.data() + pos);
        pos += 8;
        return v;
    }
    /// A count of elements each at least `min_size` bytes: capped by the bytes left.
    std::uint32_t count(std::string_view field, std::size_t min_size) {
        std::uint64_t const at = base + pos;
        std::uint32_t const n = u32(field);
        if (err) return 0;
        if (n > remaining() / min_size) {
            fail_at(at, field, "count " + std::to_string(n) + " exceeds the remaining " +
                                   std::to_string(remaining()) + " bytes");
            return 0;
        }
        return n;
    }
    std::string str(std::string_view field) {
        std::uint32_t const n = count(field, 1);
        if (err) return {};
        std::string s(reinterpret_cast<char const*>(buf.data() + pos), n);
        pos += n;
        return s;
    }
};

// ------------------------------------------------------------------ encoding

inline void put(writer& w, view_header const& h) {
    w.u32(value(h.validity));
    w.u32(value(h.next_uid));
    w.u32(h.highest_box);
    w.u64(h.definition_id);
}
inline void put(writer& w, uid_set const& s) {
    w.u32(static_cast<std::uint32_t>(s.range_count()));
    for (auto const& r : s) {
        w.u32(r.first);
        w.u32(r.last);
    }
}
inline void put(writer& w, view_message const& m) {
    w.u32(value(m.vuid));
    w.u32(m.box);
    w.u32(value(m.real_uid));
    w.u8(m.flags.bits());
    w.u32(static_cast<std::uint32_t>(m.keywords.size()));
    for (auto const& k : m.keywords) w.str(k);
}
inline void put(writer& w, backend_sync_record const& b) {
    w.u32(b.box);
    w.str(b.name);
    w.u32(value(b.validity));
    w.u8(b.guid ? 1 : 0);
    if (b.guid)
        for (auto byte : *b.guid) w.u8(byte);
    w.u32(value(b.uid_next));
    w.u64(value(b.highest_modseq));
    put(w, b.pending_removes);
}

inline constexpr std::size_t header_size = 20;
inline constexpr std::size_t message_min = 17;
inline constexpr std::size_t backend_min = 29;

[[nodiscard]] inline std::uint64_t encoded_size(view_message const& m) noexcept {
    std::uint64_t n = message_min;
    for (auto const& k : m.keywords) n += 4 + k.size();
    return n;
}
[[nodiscard]] inline std::uint64_t encoded_size(backend_sync_record const& b) noexcept {
    return backend_min + b.name.size() + (b.guid ? 16 : 0) + 8 * b.pending_removes.range_count();
}
/// The bytes of a state payload without backends and messages.
inline constexpr std::uint64_t state_base_size = 1 + header_size + 4 + 4;

// ------------------------------------------------------------------ decoding

inline view_header get_header(reader& r) {
    view_header h;
    h.validity = uid_validity{r.u32("header.uidvalidity")};
    h.next_uid = uid{r.u32("header.next_uid")};
    h.highest_box = r.u32("header.highest_box");
    h.definition_id = r.u64("header.definition_id");
    return h;
}
inline uid_set get_uid_set(reader& r, std::string_view field) {
    uid_set s;
    std::uint32_t const n = r.count(field, 8);
    std::optional<std::uint32_t> prev_last;
    for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
        std::uint64_t const at = r.base + r.pos;
        std::uint32_t const first = r.u32(field);
        std::uint32_t const last = r.u32(field);
        if (!r.ok()) break;
        if (first > last) {
            r.fail_at(at, field, "range first > last");
        } else if (prev_last && (first <= *prev_last || first - *prev_last < 2)) {
            r.fail_at(at, field, "ranges not ascending, disjoint and non-adjacent");
        } else if (first == 0 && last == std::numeric_limits<std::uint32_t>::max()) {
            r.fail_at(at, field, "range is the whole domain");
        } else {
            s.add_range(first, last);
            prev_last = last;
        }
    }
    return s;
}
inline view_message get_message(reader& r) {
    view_message m;
    m.vuid = uid{r.u32("message.vuid")};
    m.box = r.u32("message.box");
    m.real_uid = uid{r.u32("message.real_uid")};
    std::uint64_t const at = r.base + r.pos;
    std::uint8_t const bits = r.u8("message.flags");
    if (r.ok() && flag_set::from_bits(bits).bits() != bits) r.fail_at(at, "message.flags", "unknown flag bits");
    m.flags = flag_set::from_bits(bits);
    std::uint32_t const n = r.count("message.keyword_count", 4);
    for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
        std::uint64_t const kat = r.base + r.pos;
        std::string k = r.str("message.keyword");
        if (!r.ok()) break;
        if (!m.keywords.empty() && !(*std::prev(m.keywords.end()) < k)) {
            r.fail_at(kat, "message.keyword", "keywords not strictly ascending");
            break;
        }
        m.keywords.insert(m.keywords.end(), std::move(k));
    }
    return m;
}
inline backend_sync_record get_backend(reader& r) {
    backend_sync_record b;
    b.box = r.u32("backend.box");
    b.name = r.str("backend.name");
    b.validity = uid_validity{r.u32("backend.uidvalidity")};
    std::uint64_t const at = r.base + r.pos;
    std::uint8_t const has_guid = r.u8("backend.has_guid");
    if (r.ok() && has_guid > 1) r.fail_at(at, "backend.has_guid", "not 0 or 1");
    if (has_guid == 1 && r.need(16, "backend.guid")) {
        mailbox_guid g{};
        for (auto& byte : g) byte = r.u8("backend.guid");
        b.guid = g;
    }
    b.uid_next = uid{r.u32("backend.uid_next")};
    b.highest_modseq = modseq{r.u64("backend.highest_modseq")};
    b.pending_removes = get_uid_set(r, "backend.pending_removes");
    return b;
}

/// \brief The delta payload of a log record.
inline std::vector<std::byte> encode_delta(view_delta const& d) {
    writer w;
    w.u8(static_cast<std::uint8_t>((d.replace_all ? 1 : 0) | (d.header ? 2 : 0)));
    if (d.header) put(w, *d.header);
    put(w, d.expunged);
    w.u32(static_cast<std::uint32_t>(d.appended.size()));
    for (auto const& m : d.appended) put(w, m);
    w.u32(static_cast<std::uint32_t>(d.updated.size()));
    for (auto const& m : d.updated) put(w, m);
    w.u32(static_cast<std::uint32_t>(d.backends.size()));
    for (auto const& b : d.backends) put(w, b);
    w.u32(static_cast<std::uint32_t>(d.backends_removed.size()));
    for (auto id : d.backends_removed) w.u32(id);
    return std::move(w.out);
}

inline view_delta decode_delta(reader& r) {
    view_delta d;
    std::uint64_t const at = r.base + r.pos;
    std::uint8_t const bits = r.u8("delta.bits");
    if (r.ok() && (bits & ~3U) != 0) r.fail_at(at, "delta.bits", "unknown bits");
    d.replace_all = (bits & 1U) != 0;
    if ((bits & 2U) != 0) d.header = get_header(r);
    d.expunged = get_uid_set(r, "delta.expunged");
    std::uint32_t n = r.count("delta.appended_count", message_min);
    for (std::uint32_t i = 0; i < n && r.ok(); ++i) d.appended.push_back(get_message(r));
    n = r.count("delta.updated_count", message_min);
    for (std::uint32_t i = 0; i < n && r.ok(); ++i) d.updated.push_back(get_message(r));
    n = r.count("delta.backend_count", backend_min);
    for (std::uint32_t i = 0; i < n && r.ok(); ++i) d.backends.push_back(get_backend(r));
    n = r.count("delta.removed_count", 4);
    for (std::uint32_t i = 0; i < n && r.ok(); ++i) d.backends_removed.push_back(r.u32("delta.removed"));
    if (r.ok() && r.remaining() != 0) r.fail("delta", "trailing bytes after the delta");
    return d;
}

/// \brief The state in memory, indexed so that a delta of k changes applies in
/// O(k log N); keeps the encoded size of its state payload.
struct indexed_state {
    bool present = false;
    view_header header;
    std::map<std::uint32_t, view_message> messages;     // by vuid
    std::map<mailbox_id, backend_sync_record> backends; // by id
    std::uint64_t bytes = state_base_size;

    void clear() { *this = indexed_state{}; }

    [[nodiscard]] view_state state() const {
        view_state s{header, {}, {}};
        s.messages.reserve(messages.size());
        for (auto const& [v, m] : messages) s.messages.push_back(m);
        s.backends.reserve(backends.size());
        for (auto const& [id, b] : backends) s.backends.push_back(b);
        return s;
    }

    /// Whether `d` fits (the error cases of `apply`), changing nothing.
    [[nodiscard]] result<void> check(view_delta const& d) const {
        for (auto const& u : d.updated) {
            bool const exists = !d.replace_all && messages.count(value(u.vuid)) != 0 &&
                                !d.expunged.contains(value(u.vuid));
            if (!exists) return error{errc::invalid_argument, "delta updates a message that does not exist"};
        }
        std::optional<std::uint32_t> top; // the highest vuid that stays
        if (!d.replace_all) {
            for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
                if (!d.expunged.contains(it->first)) {
                    top = it->first;
                    break;
                }
            }
        }
        for (auto const& a : d.appended) {
            if (top && value(a.vuid) <= *top)
                return error{errc::invalid_argument, "delta appends a vuid that is not above the others"};
            top = value(a.vuid);
        }
        return {};
    }

    /// Applies a delta that passed `check`.
    void land(view_delta const& d) {
        if (d.replace_all) {
            messages.clear();
            backends.clear();
            bytes = state_base_size;
        }
        present = true;
        if (d.header) header = *d.header;
        for (auto const& r : d.expunged) {
            auto it = messages.lower_bound(r.first);
            while (it != messages.end() && it->first <= r.last) {
                bytes -= encoded_size(it->second);
                it = messages.erase(it);
            }
        }
        for (auto const& u : d.updated) {
            auto& m = messages.at(value(u.vuid));
            bytes -= encoded_size(m);
            m.flags = u.flags;
            m.keywords = u.keywords;
            bytes += encoded_size(m);
        }
        for (auto const& a : d.appended) {
            messages.emplace_hint(messages.end(), value(a.vuid), a);
            bytes += encoded_size(a);
        }
        for (auto id : d.backends_removed) {
            auto it = backends.find(id);
            if (it == backends.end()) continue;
            bytes -= encoded_size(it->second);
            backends.erase(it);
        }
        for (auto const& b : d.backends) {
            auto it = backends.find(b.box);
            if (it != backends.end()) {
                bytes -= encoded_size(it->second);
                it->second = b;
            } else {
                backends.emplace(b.box, b);
            }
            bytes += encoded_size(b);
        }
    }
};

/// \brief The state payload of a checkpoint (raw: entries in the order given).
inline std::vector<std::byte> encode_state(bool present, view_state const& s) {
    writer w;
    w.u8(present ? 1 : 0);
    put(w, s.header);
    w.u32(static_cast<std::uint32_t>(s.backends.size()));
    for (auto const& b : s.backends) put(w, b);
    w.u32(static_cast<std::uint32_t>(s.messages.size()));
    for (auto const& m : s.messages) put(w, m);
    return std::move(w.out);
}

/// \brief A whole file: header + payload, with its CRCs.
inline std::vector<std::byte> frame_checkpoint(std::uint64_t id, std::span<std::byte const> payload) {
    std::vector<std::byte> f(file_header_size + payload.size());
    std::uint32_t const seed = seed_of(id);
    mmap_detail::store_le(f.data(), checkpoint_magic);
    mmap_detail::store_le(f.data() + 4, format_version);
    mmap_detail::store_le(f.data() + 8, id);
    mmap_detail::store_le(f.data() + 16, static_cast<std::uint64_t>(payload.size()));
    mmap_detail::store_le(f.data() + 24, crc(seed, payload.data(), payload.size()));
    mmap_detail::store_le(f.data() + 28, crc(seed, f.data(), 28));
    std::copy(payload.begin(), payload.end(), f.begin() + static_cast<std::ptrdiff_t>(file_header_size));
    return f;
}

inline std::vector<std::byte> frame_log_header(std::uint64_t log_id, std::uint64_t base_id) {
    std::vector<std::byte> f(file_header_size);
    mmap_detail::store_le(f.data(), log_magic);
    mmap_detail::store_le(f.data() + 4, format_version);
    mmap_detail::store_le(f.data() + 8, log_id);
    mmap_detail::store_le(f.data() + 16, base_id);
    mmap_detail::store_le(f.data() + 24, std::uint32_t{0});
    mmap_detail::store_le(f.data() + 28, crc(seed_of(log_id), f.data(), 28));
    return f;
}

inline std::vector<std::byte> frame_record(std::uint64_t log_id, std::uint64_t seq,
                                           std::span<std::byte const> payload) {
    std::vector<std::byte> f(record_header_size + payload.size());
    std::uint32_t const seed = seed_of(log_id);
    mmap_detail::store_le(f.data(), record_magic);
    mmap_detail::store_le(f.data() + 4, static_cast<std::uint32_t>(payload.size()));
    mmap_detail::store_le(f.data() + 8, seq);
    mmap_detail::store_le(f.data() + 16, crc(seed, payload.data(), payload.size()));
    mmap_detail::store_le(f.data() + 20, crc(seed, f.data(), 20));
    std::copy(payload.begin(), payload.end(), f.begin() + static_cast<std::ptrdiff_t>(record_header_size));
    return f;
}

/// Whether a valid record header (magic and header CRC) starts at `off`.
[[nodiscard]] inline bool record_header_at(std::span<std::byte const> file, std::size_t off,
                                           std::uint32_t seed) noexcept {
    if (off > file.size() || file.size() - off < record_header_size) return false;
    std::byte const* p = file.data() + off;
    return mmap_detail::load_le<std::uint32_t>(p) == record_magic &&
           mmap_detail::load_le<std::uint32_t>(p + 20) == crc(seed, p, 20);
}

} // namespace mmap_store_detail

/// \brief A `view_store` in a directory of its own (see the file comment for the format).
///
/// One object per directory at a time (an exclusive flock, waited for up to
/// `options::lock_timeout`). Costs: `commit` O(|d| log N) plus one write and one
/// fdatasync, with an O(N) checkpoint amortized over at least N bytes of log; `load`
/// O(N log N) (validation), reading the files only on the first call after open (or after
/// a poisoning failure); open O(1).
class mmap_store {
public:
    struct options {
        std::chrono::milliseconds lock_timeout{10000}; ///< waiting for another object's lock
        std::uint64_t checkpoint_min_bytes = 64 * 1024; ///< no checkpoint while the log is smaller
        std::uint64_t max_file_bytes = std::uint64_t{1} << 32; ///< larger files are corrupted
    };

    /// \brief Opens (creating it if missing, parent must exist) the store directory `dir`.
    /// Refuses non-local filesystems (`errc::not_possible`); a held lock is
    /// `errc::temporary` after the timeout. Reads nothing yet.
    [[nodiscard]] static result<mmap_store> open(std::string dir, options opt) {
        if (::mkdir(dir.c_str(), 0700) == 0) {
            // The new directory's entry must be durable before anything in it counts.
            auto const slash = dir.find_last_of('/');
            std::string const parent = slash == std::string::npos ? std::string(".")
                                       : slash == 0                ? std::string("/")
                                                                   : dir.substr(0, slash);
            if (auto r = mmap_detail::sync_dir(parent); !r) return std::move(r).error_value();
        } else if (errno != EEXIST) {
            return mmap_detail::sys_error(errno, "cannot create directory", dir);
        }
        if (auto r = mmap_detail::check_local_filesystem(dir); !r) return std::move(r).error_value();
        auto lock = mmap_detail::unique_fd::open(dir + "/lock", O_RDWR | O_CREAT, 0600);
        if (!lock) return std::move(lock).error_value();
        if (auto r = mmap_detail::lock_file(*lock, LOCK_EX, opt.lock_timeout); !r)
            return std::move(r).error_value();
        mmap_store s;
        s.dir_ = std::move(dir);
        s.opt_ = opt;
        s.lock_ = std::move(*lock);
        return s;
    }
    [[nodiscard]] static result<mmap_store> open(std::string dir) { return open(std::move(dir), options{}); }

    mmap_store(mmap_store&&) noexcept = default;
    mmap_store& operator=(mmap_store&&) noexcept = default;
    mmap_store(mmap_store const&) = delete;
    mmap_store& operator=(mmap_store const&) = delete;
    ~mmap_store() = default;

    [[nodiscard]] std::string const& dir() const noexcept { return dir_; }
    [[nodiscard]] std::string checkpoint_path() const { return dir_ + "/checkpoint"; }
    [[nodiscard]] std::string log_path() const { return dir_ + "/log"; }

    /// \brief S1/S2: the committed state, nullopt if none, `errc::corrupted` if a file or
    /// the state fails validation.
    result<std::optional<view_state>> load() {
        if (auto r = ensure_loaded(); !r) return std::move(r).error_value();
        if (corrupted_) return *corrupted_;
        if (!mem_.present) return std::optional<view_state>{};
        view_state st = mem_.state();
        if (auto v = validate(st); !v) return std::move(v).error_value().with_context("in mmap_store " + dir_);
        return std::optional<view_state>{std::move(st)};
    }

    /// \brief S3/S4: appends `d` to the log durably (see the file comment). On failure
    /// nothing observable changes. A store whose files are corrupted refuses every commit
    /// with that error until `reset()`.
    result<void> commit(view_delta const& d) {
        if (fail_next_) {
            error e = std::move(*fail_next_);
            fail_next_.reset();
            return e;
        }
        if (auto r = ensure_loaded(); !r) return r;
        if (corrupted_) return *corrupted_;
        if (auto r = mem_.check(d); !r) return r;
        if (!log_) {
            // No log continuing the checkpoint (nothing committed yet, or a stale log):
            // checkpoint the current state (absent or not: unobservable) with a fresh log.
            if (auto r = write_checkpoint(mem_.present, mem_.state()); !r) {
                poison();
                return r;
            }
        }
        std::vector<std::byte> const payload = mmap_store_detail::encode_delta(d);
        if (payload.size() > std::numeric_limits<std::uint32_t>::max())
            return error{errc::not_possible, "delta too large for one log record (in mmap_store " + dir_ + ")"};
        std::vector<std::byte> const rec = mmap_store_detail::frame_record(log_id_, next_seq_, payload);
        if (crash_next_) {
            bool const lands = *crash_next_;
            crash_next_.reset();
            std::span<std::byte const> part(rec);
            if (!lands) part = part.first(rec.size() / 2);
            (void)log_.pwrite_all(part, log_end_);
            if (lands) (void)log_.sync();
            poison();
            return error{errc::io, "simulated crash during commit (in mmap_store " + dir_ + ")"};
        }
        auto w = log_.pwrite_all(rec, log_end_);
        if (w) w = log_.sync();
        if (!w) {
            // Not retried (fsyncgate): drop the record, or poison if even that fails.
            if (!log_.truncate(log_end_) || !log_.sync()) poison();
            return w;
        }
        log_end_ += rec.size();
        ++next_seq_;
        mem_.land(d);
        std::uint64_t const log_bytes = log_end_ - mmap_store_detail::file_header_size;
        if (log_bytes > opt_.checkpoint_min_bytes && log_bytes > mem_.bytes) {
            // The commit is durable already; a failed checkpoint only poisons.
            if (!write_checkpoint(true, mem_.state())) poison();
        }
        return {};
    }

    /// \brief S5: removes the checkpoint (first: without it any log is ignored), then the
    /// log, whatever their content.
    result<void> reset() {
        log_.reset();
        for (auto const& p : {checkpoint_path(), log_path()}) {
            if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
                poison();
                return mmap_detail::sys_error(errno, "cannot remove", p);
            }
            if (auto r = mmap_detail::sync_dir(dir_); !r) {
                poison();
                return r;
            }
        }
        mem_.clear();
        corrupted_.reset();
        loaded_ = true;
        return {};
    }

    // ------------------------------------------------------------ test hooks
    /// \brief The next commit fails with `e`, touching nothing.
    void fail_next_commit(error e) { fail_next_ = std::move(e); }
    /// \brief The next commit "crashes": it writes its whole record and syncs it (lands)
    /// or half of it (not), returns `errc::io` and poisons the object.
    void crash_next_commit(bool lands) { crash_next_ = lands; }
    /// \brief Writes `s` as the stored state without any check (a new checkpoint, empty log).
    result<void> plant(view_state const& s) {
        log_.reset();
        auto r = write_checkpoint(true, s);
        poison(); // read it back as any other state
        return r;
    }
    /// \brief Bytes of records in the log (0 right after a checkpoint).
    [[nodiscard]] std::uint64_t log_bytes() const noexcept {
        return log_end_ > mmap_store_detail::file_header_size ? log_end_ - mmap_store_detail::file_header_size : 0;
    }

private:
    mmap_store() = default;

    void poison() noexcept {
        loaded_ = false;
        log_.reset();
    }

    // Reads a whole file (ENOENT → nullopt).
    result<std::optional<std::vector<std::byte>>> read_file(std::string const& path, int flags,
                                                           mmap_detail::unique_fd* keep) const {
        auto fd = mmap_detail::unique_fd::open(path, flags);
        if (!fd) {
            if (fd.error_value().is(errc::not_found)) return std::optional<std::vector<std::byte>>{};
            return std::move(fd).error_value();
        }
        auto st = fd->stat();
        if (!st) return std::move(st).error_value();
        if (st->st_size < 0 || static_cast<std::uint64_t>(st->st_size) > opt_.max_file_bytes)
            return error{errc::corrupted, "mmap_store file " + path + " is too large (" +
                                              std::to_string(st->st_size) + " bytes)"};
        std::vector<std::byte> data(static_cast<std::size_t>(st->st_size));
        if (auto r = fd->pread_all(data, 0); !r) return std::move(r).error_value();
        if (keep != nullptr) *keep = std::move(*fd);
        return std::optional<std::vector<std::byte>>{std::move(data)};
    }

    result<void> ensure_loaded() {
        if (loaded_) return {};
        return read_disk();
    }

    // Reads checkpoint and log into mem_; file-level corruption goes to corrupted_.
    result<void> read_disk() {
        using namespace mmap_store_detail;
        mem_.clear();
        corrupted_.reset();
        log_.reset();
        std::string const cpath = checkpoint_path();
        auto cp = read_file(cpath, O_RDONLY, nullptr);
        if (!cp) {
            if (!cp.error_value().is(errc::corrupted)) return std::move(cp).error_value();
            corrupted_ = std::move(cp).error_value();
            loaded_ = true;
            return {};
        }
        if (!*cp) { // nothing committed; a log without a checkpoint is ignored
            loaded_ = true;
            return {};
        }
        if (auto e = parse_checkpoint(**cp, cpath)) {
            corrupted_ = std::move(*e);
            mem_.clear();
            loaded_ = true;
            return {};
        }
        std::string const lpath = log_path();
        mmap_detail::unique_fd fd;
        auto lg = read_file(lpath, O_RDWR, &fd);
        if (!lg) {
            if (!lg.error_value().is(errc::corrupted)) return std::move(lg).error_value();
            corrupted_ = std::move(lg).error_value();
            mem_.clear();
            loaded_ = true;
            return {};
        }
        if (!*lg && mem_.present) {
            // Logs are only ever replaced by rename, and the first checkpoint of a state
            // (written before its log) is of an absent one: this log was lost.
            corrupted_ = error{errc::corrupted, "corrupted mmap_store " + dir_ + ": the log is missing"};
            mem_.clear();
        } else if (*lg) {
            auto r = parse_log(**lg, lpath, fd);
            if (!r) return std::move(r).error_value();
            if (auto& e = *r) {
                corrupted_ = std::move(*e);
                mem_.clear();
                log_.reset();
            }
        }
        loaded_ = true;
        return {};
    }

    std::optional<error> parse_checkpoint(std::span<std::byte const> file, std::string const& path) {
        using namespace mmap_store_detail;
        reader r{file, 0, 0, &path, std::nullopt};
        std::uint32_t const magic = r.u32("checkpoint.magic");
        if (r.ok() && magic != checkpoint_magic) r.fail_at(0, "checkpoint.magic", "not an mmap_store checkpoint");
        std::uint32_t const version = r.u32("checkpoint.version");
        if (r.ok() && version != format_version)
            r.fail_at(4, "checkpoint.version", "unsupported version " + std::to_string(version));
        std::uint64_t const id = r.u64("checkpoint.id");
        std::uint64_t const len = r.u64("checkpoint.payload_len");
        std::uint32_t const pcrc = r.u32("checkpoint.payload_crc");
        std::uint32_t const hcrc = r.u32("checkpoint.header_crc");
        if (!r.ok()) return r.err;
        std::uint32_t const seed = seed_of(id);
        if (hcrc != crc(seed, file.data(), 28)) r.fail_at(28, "checkpoint.header_crc", "mismatch");
        else if (id == 0) r.fail_at(8, "checkpoint.id", "is 0");
        else if (len != file.size() - file_header_size)
            r.fail_at(16, "checkpoint.payload_len",
                      std::to_string(len) + " but the file holds " + std::to_string(file.size() - file_header_size));
        else if (pcrc != crc(seed, file.data() + file_header_size, file.size() - file_header_size))
            r.fail_at(24, "checkpoint.payload_crc", "mismatch");
        if (!r.ok()) return r.err;
        std::uint64_t const pat = r.pos;
        std::uint8_t const present = r.u8("state.present");
        if (r.ok() && present > 1) r.fail_at(pat, "state.present", "not 0 or 1");
        mem_.present = present == 1;
        mem_.header = get_header(r);
        std::uint32_t const nb = r.count("state.backend_count", backend_min);
        for (std::uint32_t i = 0; i < nb && r.ok(); ++i) {
            backend_sync_record b = get_backend(r);
            if (!r.ok()) break;
            // The map would sort and merge silently: the order is checked here.
            if (!mem_.backends.empty() && std::prev(mem_.backends.end())->first >= b.box) {
                r.fail("state.backends", "mailbox ids not strictly increasing");
                break;
            }
            mem_.bytes += encoded_size(b);
            mem_.backends.emplace_hint(mem_.backends.end(), b.box, std::move(b));
        }
        std::uint32_t const nm = r.count("state.message_count", message_min);
        std::optional<std::uint32_t> prev;
        for (std::uint32_t i = 0; i < nm && r.ok(); ++i) {
            std::uint64_t const at = r.base + r.pos;
            view_message m = get_message(r);
            if (!r.ok()) break;
            if (prev && value(m.vuid) <= *prev) {
                r.fail_at(at, "state.messages", "vuids not strictly increasing");
                break;
            }
            prev = value(m.vuid);
            mem_.bytes += encoded_size(m);
            mem_.messages.emplace_hint(mem_.messages.end(), value(m.vuid), std::move(m));
        }
        if (r.ok() && r.remaining() != 0) r.fail("state", "trailing bytes after the state");
        if (r.ok() && !mem_.present && (!mem_.messages.empty() || !mem_.backends.empty() || mem_.header != view_header{}))
            r.fail_at(pat, "state.present", "0 but the state is not empty");
        if (!r.ok()) return r.err;
        checkpoint_id_ = id;
        return std::nullopt;
    }

    // Replays the log onto mem_. The outer error is an I/O failure; the inner one corruption.
    result<std::optional<error>> parse_log(std::span<std::byte const> file, std::string const& path,
                                           mmap_detail::unique_fd& fd) {
        using namespace mmap_store_detail;
        reader r{file, 0, 0, &path, std::nullopt};
        std::uint32_t const magic = r.u32("log.magic");
        if (r.ok() && magic != log_magic) r.fail_at(0, "log.magic", "not an mmap_store log");
        std::uint32_t const version = r.u32("log.version");
        if (r.ok() && version != format_version)
            r.fail_at(4, "log.version", "unsupported version " + std::to_string(version));
        std::uint64_t const id = r.u64("log.id");
        std::uint64_t const base_id = r.u64("log.base_checkpoint_id");
        std::uint32_t const reserved = r.u32("log.reserved");
        std::uint32_t const hcrc = r.u32("log.header_crc");
        if (!r.ok()) return r.err;
        std::uint32_t const seed = seed_of(id);
        if (hcrc != crc(seed, file.data(), 28)) r.fail_at(28, "log.header_crc", "mismatch");
        else if (id == 0) r.fail_at(8, "log.id", "is 0");
        else if (reserved != 0) r.fail_at(24, "log.reserved", "not 0");
        if (!r.ok()) return r.err;
        if (base_id != checkpoint_id_) return std::optional<error>{}; // stale: ignored, replaced at the next commit

        std::size_t off = file_header_size;
        std::uint64_t seq = 1;
        while (off < file.size()) {
            std::size_t const left = file.size() - off;
            std::byte const* p = file.data() + off;
            char const* problem = nullptr;
            std::uint32_t len = 0;
            if (left < record_header_size) problem = "record header runs past the end of the file";
            else if (mmap_detail::load_le<std::uint32_t>(p) != record_magic) problem = "record.magic mismatch";
            else if (mmap_detail::load_le<std::uint32_t>(p + 20) != crc(seed, p, 20)) problem = "record.header_crc mismatch";
            else if ((len = mmap_detail::load_le<std::uint32_t>(p + 4)) > left - record_header_size)
                problem = "record.payload_len runs past the end of the file";
            else if (mmap_detail::load_le<std::uint32_t>(p + 16) != crc(seed, p + record_header_size, len))
                problem = "record.payload_crc mismatch";
            if (problem != nullptr) {
                for (std::size_t y = off + 1; y + record_header_size <= file.size(); ++y) {
                    if (record_header_at(file, y, seed)) {
                        r.fail_at(off, problem, "followed by a valid record at offset " + std::to_string(y));
                        return r.err;
                    }
                }
                // A torn last record: its commit never returned success. Drop it.
                if (auto t = fd.truncate(off); !t) return std::move(t).error_value();
                if (auto t = fd.sync(); !t) return std::move(t).error_value();
                break;
            }
            std::uint64_t const rseq = mmap_detail::load_le<std::uint64_t>(p + 8);
            if (rseq != seq) {
                r.fail_at(off + 8, "record.seq", std::to_string(rseq) + ", expected " + std::to_string(seq));
                return r.err;
            }
            reader pr{file.subspan(off + record_header_size, len), 0, off + record_header_size, &path, std::nullopt};
            view_delta const d = decode_delta(pr);
            if (!pr.ok()) return pr.err;
            if (auto c = mem_.check(d); !c) {
                r.fail_at(off, "record", "does not apply: " + c.error_value().message);
                return r.err;
            }
            mem_.land(d);
            off += record_header_size + len;
            ++seq;
        }
        log_ = std::move(fd);
        log_id_ = id;
        log_end_ = off;
        next_seq_ = seq;
        return std::optional<error>{};
    }

    // A new checkpoint of `s` (present or not), then a fresh empty log continuing it; on
    // success log_ is open on the new log. Durable when it returns success.
    result<void> write_checkpoint(bool present, view_state const& s) {
        using namespace mmap_store_detail;
        log_.reset();
        std::uint64_t const cid = random_id();
        std::vector<std::byte> const file = frame_checkpoint(cid, encode_state(present, s));
        if (auto r = mmap_detail::atomic_replace(dir_, checkpoint_path(), checkpoint_path() + ".tmp", file); !r)
            return r;
        std::uint64_t const lid = random_id();
        if (auto r = mmap_detail::atomic_replace(dir_, log_path(), log_path() + ".tmp", frame_log_header(lid, cid)); !r)
            return r;
        auto fd = mmap_detail::unique_fd::open(log_path(), O_RDWR);
        if (!fd) return std::move(fd).error_value();
        checkpoint_id_ = cid;
        log_ = std::move(*fd);
        log_id_ = lid;
        log_end_ = file_header_size;
        next_seq_ = 1;
        return {};
    }

    std::string dir_;
    options opt_;
    mmap_detail::unique_fd lock_;
    mmap_detail::unique_fd log_; // open on the log continuing checkpoint_id_, or closed
    bool loaded_ = false;        // mem_/corrupted_ reflect the files (false: poisoned / not read)
    mmap_store_detail::indexed_state mem_;
    std::optional<error> corrupted_;
    std::uint64_t checkpoint_id_ = 0;
    std::uint64_t log_id_ = 0;
    std::uint64_t log_end_ = 0; // committed end of the log
    std::uint64_t next_seq_ = 1;
    std::optional<error> fail_next_;
    std::optional<bool> crash_next_;
};

static_assert(view_store<mmap_store>);

VFOLDER_END_NAMESPACE

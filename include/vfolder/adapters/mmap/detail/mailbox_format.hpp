/// \file
/// \brief The byte layout of the mailbox `index` file (docs/mmap-format.md, after
/// MAILBOX-FORMAT.md §4): header slot, MSG and KWDEF entries, TOMB elements, their
/// encoders/decoders and field checks; plus a portable SHA-256 for content ids.
#pragma once

#include <vfolder/adapters/mmap/detail/crc32c.hpp>
#include <vfolder/adapters/mmap/detail/le.hpp>
#include <vfolder/mail/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

VFOLDER_BEGIN_NAMESPACE
namespace mmap_detail {

inline constexpr std::array<std::uint8_t, 8> index_magic{0x89, 0x4D, 0x42, 0x58, 0x0D, 0x0A, 0x1A, 0x0A};
inline constexpr std::uint64_t slot_size = 256;
inline constexpr std::uint64_t slot_b_off = 4096;
inline constexpr std::uint64_t base_off = 8192;
inline constexpr std::uint64_t entry_size = 96;
inline constexpr std::uint64_t tomb_size = 16;
inline constexpr std::uint32_t max_keywords = 128;
inline constexpr std::uint32_t max_tail_count = 1U << 24;
inline constexpr std::uint64_t max_modseq = (std::uint64_t{1} << 63) - 1;
inline constexpr std::uint64_t max_message_size = std::uint64_t{1} << 40;
inline constexpr std::uint64_t max_index_size = std::uint64_t{4} << 30;
inline constexpr std::int64_t min_date = -62135596800LL;
inline constexpr std::int64_t max_date = 253402300799LL;
inline constexpr std::uint8_t kind_msg = 1;
inline constexpr std::uint8_t kind_kwdef = 2;
inline constexpr std::uint16_t state_expunged = 1;
inline constexpr std::uint32_t flag_retired = 1;
inline constexpr std::uint32_t flag_deleted = 2;

/// \brief The decoded fields of a header slot (§4.2).
struct slot_fields {
    std::uint16_t format_major = 1;
    std::uint16_t format_minor = 0;
    std::uint32_t slot_size_field = 256;
    std::uint64_t generation = 0;
    std::uint64_t file_id = 0;
    std::uint32_t uidvalidity = 0;
    std::uint32_t uidnext = 1;
    std::uint64_t highestmodseq = 1;
    std::uint64_t base_modseq = 1;
    std::uint64_t vanished_floor = 0;
    std::uint32_t record_size = 96;
    std::uint32_t flags = 0;
    std::uint32_t incompat = 0;
    std::uint32_t ro_compat = 0;
    std::uint32_t compat = 0;
    std::uint32_t kw_count = 0;
    std::uint64_t base_off_field = base_off;
    std::uint32_t live_count = 0;
    std::uint32_t tomb_count = 0;
    std::uint32_t base_kw_count = 0;
    std::uint32_t base_crc = 0;
    std::uint64_t live_off = 0;
    std::uint64_t mperm_off = 0;
    std::uint64_t tomb_off = 0;
    std::uint64_t kw_off = 0;
    std::uint64_t tail_off = 0;
    std::uint32_t tail_count = 0;
    std::uint32_t tail_chain_crc = 0;
    std::uint32_t exists = 0;
    std::uint64_t state_digest = 0;
    std::uint64_t commit_time_ns = 0;
    bool reserved_zero = true; ///< decoded: were all reserved bytes zero
    std::uint32_t slot_crc = 0;
    bool magic_ok = true;

    [[nodiscard]] std::uint32_t seed() const noexcept {
        return static_cast<std::uint32_t>(file_id) ^ static_cast<std::uint32_t>(file_id >> 32);
    }
    [[nodiscard]] std::uint64_t committed_end() const noexcept { return tail_off + entry_size * tail_count; }
    /// Fills the section offsets from the counts (§4.1).
    void derive_offsets() noexcept {
        live_off = base_off;
        mperm_off = live_off + entry_size * live_count;
        tomb_off = (mperm_off + 4ULL * live_count + 7) & ~std::uint64_t{7};
        kw_off = tomb_off + tomb_size * tomb_count;
        tail_off = kw_off + entry_size * base_kw_count;
    }
};

/// \brief Encodes a slot; the slot CRC is computed (unseeded) over [0, 252).
[[nodiscard]] inline std::array<std::byte, slot_size> encode_slot(slot_fields const& s) noexcept {
    std::array<std::byte, slot_size> b{};
    std::byte* p = b.data();
    for (std::size_t i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(index_magic[i]);
    store_le<std::uint16_t>(p + 8, s.format_major);
    store_le<std::uint16_t>(p + 10, s.format_minor);
    store_le<std::uint32_t>(p + 12, s.slot_size_field);
    store_le<std::uint64_t>(p + 16, s.generation);
    store_le<std::uint64_t>(p + 24, s.file_id);
    store_le<std::uint32_t>(p + 32, s.uidvalidity);
    store_le<std::uint32_t>(p + 36, s.uidnext);
    store_le<std::uint64_t>(p + 40, s.highestmodseq);
    store_le<std::uint64_t>(p + 48, s.base_modseq);
    store_le<std::uint64_t>(p + 56, s.vanished_floor);
    store_le<std::uint32_t>(p + 64, s.record_size);
    store_le<std::uint32_t>(p + 68, s.flags);
    store_le<std::uint32_t>(p + 72, s.incompat);
    store_le<std::uint32_t>(p + 76, s.ro_compat);
    store_le<std::uint32_t>(p + 80, s.compat);
    store_le<std::uint32_t>(p + 84, s.kw_count);
    store_le<std::uint64_t>(p + 88, s.base_off_field);
    store_le<std::uint32_t>(p + 96, s.live_count);
    store_le<std::uint32_t>(p + 100, s.tomb_count);
    store_le<std::uint32_t>(p + 104, s.base_kw_count);
    store_le<std::uint32_t>(p + 108, s.base_crc);
    store_le<std::uint64_t>(p + 112, s.live_off);
    store_le<std::uint64_t>(p + 120, s.mperm_off);
    store_le<std::uint64_t>(p + 128, s.tomb_off);
    store_le<std::uint64_t>(p + 136, s.kw_off);
    store_le<std::uint64_t>(p + 144, s.tail_off);
    store_le<std::uint32_t>(p + 152, s.tail_count);
    store_le<std::uint32_t>(p + 156, s.tail_chain_crc);
    store_le<std::uint32_t>(p + 160, s.exists);
    store_le<std::uint64_t>(p + 168, s.state_digest);
    store_le<std::uint64_t>(p + 176, s.commit_time_ns);
    store_le<std::uint32_t>(p + 252, crc32c_update(0, std::span<std::byte const>(p, 252)));
    return b;
}

/// \brief Decodes a slot without judging it (see `check_slot`).
[[nodiscard]] inline slot_fields decode_slot(std::span<std::byte const, slot_size> b) noexcept {
    slot_fields s;
    std::byte const* p = b.data();
    for (std::size_t i = 0; i < 8; ++i)
        if (p[i] != static_cast<std::byte>(index_magic[i])) s.magic_ok = false;
    s.format_major = load_le<std::uint16_t>(p + 8);
    s.format_minor = load_le<std::uint16_t>(p + 10);
    s.slot_size_field = load_le<std::uint32_t>(p + 12);
    s.generation = load_le<std::uint64_t>(p + 16);
    s.file_id = load_le<std::uint64_t>(p + 24);
    s.uidvalidity = load_le<std::uint32_t>(p + 32);
    s.uidnext = load_le<std::uint32_t>(p + 36);
    s.highestmodseq = load_le<std::uint64_t>(p + 40);
    s.base_modseq = load_le<std::uint64_t>(p + 48);
    s.vanished_floor = load_le<std::uint64_t>(p + 56);
    s.record_size = load_le<std::uint32_t>(p + 64);
    s.flags = load_le<std::uint32_t>(p + 68);
    s.incompat = load_le<std::uint32_t>(p + 72);
    s.ro_compat = load_le<std::uint32_t>(p + 76);
    s.compat = load_le<std::uint32_t>(p + 80);
    s.kw_count = load_le<std::uint32_t>(p + 84);
    s.base_off_field = load_le<std::uint64_t>(p + 88);
    s.live_count = load_le<std::uint32_t>(p + 96);
    s.tomb_count = load_le<std::uint32_t>(p + 100);
    s.base_kw_count = load_le<std::uint32_t>(p + 104);
    s.base_crc = load_le<std::uint32_t>(p + 108);
    s.live_off = load_le<std::uint64_t>(p + 112);
    s.mperm_off = load_le<std::uint64_t>(p + 120);
    s.tomb_off = load_le<std::uint64_t>(p + 128);
    s.kw_off = load_le<std::uint64_t>(p + 136);
    s.tail_off = load_le<std::uint64_t>(p + 144);
    s.tail_count = load_le<std::uint32_t>(p + 152);
    s.tail_chain_crc = load_le<std::uint32_t>(p + 156);
    s.exists = load_le<std::uint32_t>(p + 160);
    s.state_digest = load_le<std::uint64_t>(p + 168);
    s.commit_time_ns = load_le<std::uint64_t>(p + 176);
    s.slot_crc = load_le<std::uint32_t>(p + 252);
    for (std::size_t i = 164; i < 168; ++i)
        if (p[i] != std::byte{0}) s.reserved_zero = false;
    for (std::size_t i = 184; i < 252; ++i)
        if (p[i] != std::byte{0}) s.reserved_zero = false;
    return s;
}

/// \brief "corrupted index FILE at offset N: FIELD: detail" (errc::corrupted).
[[nodiscard]] inline error corrupt(std::string_view file, std::uint64_t offset, std::string_view field,
                                   std::string_view detail) {
    std::string m = "corrupted index ";
    m.append(file).append(" at offset ").append(std::to_string(offset)).append(": ").append(field);
    m.append(": ").append(detail);
    return error{errc::corrupted, std::move(m)};
}

/// \brief Checks one slot (§9.1) read at `at` against the file size. Overflow-safe: every
/// derived offset is computed only after its inputs are bounded.
[[nodiscard]] inline result<void> check_slot(slot_fields const& s, std::span<std::byte const, slot_size> raw,
                                             std::uint64_t at, std::uint64_t file_size, std::string_view file) {
    auto bad = [&](std::uint64_t off, std::string_view field, std::string_view detail) {
        return corrupt(file, at + off, field, detail);
    };
    if (!s.magic_ok) return bad(0, "magic", "wrong magic");
    if (crc32c_update(0, raw.first(252)) != s.slot_crc) return bad(252, "slot_crc", "checksum mismatch");
    if (s.format_major != 1) return bad(8, "format_major", "unsupported format " + std::to_string(s.format_major));
    if (s.slot_size_field != slot_size) return bad(12, "slot_size", "must be 256");
    if (s.generation == 0) return bad(16, "generation", "must be >= 1");
    if ((s.generation % 2 == 0) != (at == 0)) return bad(16, "generation", "parity does not match the slot");
    if (s.file_id == 0) return bad(24, "file_id", "must not be 0");
    if (s.uidvalidity == 0) return bad(32, "uidvalidity", "must not be 0");
    if (s.uidnext == 0) return bad(36, "uidnext", "must be >= 1");
    if (s.highestmodseq == 0 || s.highestmodseq > max_modseq) return bad(40, "highestmodseq", "out of range");
    if (s.base_modseq > s.highestmodseq) return bad(48, "base_modseq", "above highestmodseq");
    if (s.vanished_floor > s.base_modseq) return bad(56, "vanished_floor", "above base_modseq");
    if (s.record_size != entry_size) return bad(64, "record_size", "must be 96");
    if ((s.flags & ~(flag_retired | flag_deleted)) != 0) return bad(68, "flags", "unknown bits");
    if (s.incompat != 0) return bad(72, "incompat_features", "unknown incompatible features");
    if (s.kw_count > max_keywords) return bad(84, "kw_count", "above 128");
    if (s.base_off_field != base_off) return bad(88, "base_off", "must be 8192");
    if (s.base_kw_count > s.kw_count) return bad(104, "base_kw_count", "above kw_count");
    if (s.tail_count > max_tail_count) return bad(152, "tail_count", "above 2^24");
    if (!s.reserved_zero) return bad(164, "reserved", "reserved bytes not zero");
    std::uint64_t const ids = std::uint64_t{s.uidnext} - 1;
    if (std::uint64_t{s.live_count} + s.tomb_count > ids) return bad(96, "live_count", "live + tombstones exceed uidnext-1");
    if (s.exists > ids) return bad(160, "exists", "above uidnext-1");
    // All counts are < 2^32 and entry sizes small: the derivations below fit in u64.
    slot_fields d = s;
    d.derive_offsets();
    if (s.live_off != d.live_off) return bad(112, "live_off", "not the derived offset");
    if (s.mperm_off != d.mperm_off) return bad(120, "mperm_off", "not the derived offset");
    if (s.tomb_off != d.tomb_off) return bad(128, "tomb_off", "not the derived offset");
    if (s.kw_off != d.kw_off) return bad(136, "kw_off", "not the derived offset");
    if (s.tail_off != d.tail_off) return bad(144, "tail_off", "not the derived offset");
    if (d.committed_end() > file_size) return bad(152, "tail_count", "committed end beyond the file size");
    return {};
}

/// \brief One MSG entry (§4.3), decoded.
struct msg_image {
    std::uint32_t uid = 0;
    std::uint8_t kind = kind_msg;
    std::uint8_t sysflags = 0;
    std::uint16_t state = 0;
    std::uint64_t modseq = 0;
    std::uint64_t created_modseq = 0;
    std::int64_t date = 0;
    std::uint64_t size = 0;
    std::int16_t tz = 0;
    std::uint32_t nsec = 0;
    std::array<std::uint8_t, 16> keywords{};
    std::array<std::uint8_t, 16> content_id{};
    bool reserved_zero = true;

    [[nodiscard]] bool same_immutable(msg_image const& o) const noexcept {
        return uid == o.uid && created_modseq == o.created_modseq && date == o.date && size == o.size &&
               tz == o.tz && nsec == o.nsec && content_id == o.content_id;
    }
    [[nodiscard]] bool has_kw(std::uint32_t i) const noexcept {
        return (keywords[i / 8] & (1U << (i % 8))) != 0;
    }
    void set_kw(std::uint32_t i) noexcept { keywords[i / 8] = static_cast<std::uint8_t>(keywords[i / 8] | (1U << (i % 8))); }
};

/// \brief Seals the 96-byte entry at `p`: CRC-32C(seed) over [0, 92) at 92.
inline void seal_entry(std::byte* p, std::uint32_t seed) noexcept {
    store_le<std::uint32_t>(p + 92, crc32c_update(seed, std::span<std::byte const>(p, 92)));
}
[[nodiscard]] inline bool entry_crc_ok(std::byte const* p, std::uint32_t seed) noexcept {
    return load_le<std::uint32_t>(p + 92) == crc32c_update(seed, std::span<std::byte const>(p, 92));
}

inline void encode_msg(std::byte* p, msg_image const& m, std::uint32_t seed) noexcept {
    for (std::size_t i = 0; i < entry_size; ++i) p[i] = std::byte{0};
    store_le<std::uint32_t>(p, m.uid);
    store_le<std::uint8_t>(p + 4, kind_msg);
    store_le<std::uint8_t>(p + 5, m.sysflags);
    store_le<std::uint16_t>(p + 6, m.state);
    store_le<std::uint64_t>(p + 8, m.modseq);
    store_le<std::uint64_t>(p + 16, m.created_modseq);
    store_le<std::int64_t>(p + 24, m.date);
    store_le<std::uint64_t>(p + 32, m.size);
    store_le<std::int16_t>(p + 40, m.tz);
    store_le<std::uint32_t>(p + 44, m.nsec);
    for (std::size_t i = 0; i < 16; ++i) p[48 + i] = static_cast<std::byte>(m.keywords[i]);
    for (std::size_t i = 0; i < 16; ++i) p[64 + i] = static_cast<std::byte>(m.content_id[i]);
    seal_entry(p, seed);
}

[[nodiscard]] inline msg_image decode_msg(std::byte const* p) noexcept {
    msg_image m;
    m.uid = load_le<std::uint32_t>(p);
    m.kind = load_le<std::uint8_t>(p + 4);
    m.sysflags = load_le<std::uint8_t>(p + 5);
    m.state = load_le<std::uint16_t>(p + 6);
    m.modseq = load_le<std::uint64_t>(p + 8);
    m.created_modseq = load_le<std::uint64_t>(p + 16);
    m.date = load_le<std::int64_t>(p + 24);
    m.size = load_le<std::uint64_t>(p + 32);
    m.tz = load_le<std::int16_t>(p + 40);
    m.nsec = load_le<std::uint32_t>(p + 44);
    for (std::size_t i = 0; i < 16; ++i) m.keywords[i] = static_cast<std::uint8_t>(p[48 + i]);
    for (std::size_t i = 0; i < 16; ++i) m.content_id[i] = static_cast<std::uint8_t>(p[64 + i]);
    m.reserved_zero = load_le<std::uint16_t>(p + 42) == 0;
    for (std::size_t i = 80; i < 92; ++i)
        if (p[i] != std::byte{0}) m.reserved_zero = false;
    return m;
}

/// \brief Field checks of one MSG image that need no context (§9.2/§9.3): returns the name
/// of the first bad field and why, or an empty string.
[[nodiscard]] inline std::pair<std::string_view, std::string_view> check_msg_fields(msg_image const& m,
                                                                                   std::uint32_t kw_limit) noexcept {
    if (m.kind != kind_msg) return {"kind", "not a MSG entry"};
    if (m.uid == 0) return {"uid", "must be >= 1"};
    if ((m.sysflags & 0xE0U) != 0) return {"sysflags", "reserved bits set"};
    if ((m.state & ~state_expunged) != 0) return {"state", "unknown bits"};
    if (m.modseq == 0 || m.modseq > max_modseq) return {"modseq", "out of range"};
    if (m.created_modseq == 0 || m.created_modseq > m.modseq) return {"created_modseq", "not in [1, modseq]"};
    if (m.date < min_date || m.date > max_date) return {"internaldate_sec", "out of range"};
    if (m.size > max_message_size) return {"size", "above the maximum"};
    if (m.tz < -1439 || m.tz > 1439) return {"tz_offset_min", "out of range"};
    if (m.nsec >= 1000000000U) return {"internaldate_nsec", "out of range"};
    if (!m.reserved_zero) return {"reserved", "reserved bytes not zero"};
    for (std::uint32_t i = kw_limit; i < 128; ++i)
        if (m.has_kw(i)) return {"keywords", "bit of an undefined keyword"};
    return {};
}

/// \brief Whether `name` is an IMAP flag-keyword atom of 1..76 bytes (§4.4).
[[nodiscard]] constexpr bool valid_keyword_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 76 || name.front() == '\\') return false;
    for (char c : name) {
        auto const u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F) return false;
        switch (c) {
        case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']': return false;
        default: break;
        }
    }
    return true;
}

inline void encode_kwdef(std::byte* p, std::uint16_t index, std::uint64_t defined_at, std::string_view name,
                         std::uint32_t seed) noexcept {
    for (std::size_t i = 0; i < entry_size; ++i) p[i] = std::byte{0};
    store_le<std::uint8_t>(p + 4, kind_kwdef);
    store_le<std::uint8_t>(p + 5, static_cast<std::uint8_t>(name.size()));
    store_le<std::uint16_t>(p + 6, index);
    store_le<std::uint64_t>(p + 8, defined_at);
    for (std::size_t i = 0; i < name.size() && i < 76; ++i) p[16 + i] = static_cast<std::byte>(name[i]);
    seal_entry(p, seed);
}

// ------------------------------------------------------------------ SHA-256 (FIPS 180-4)
[[nodiscard]] inline std::array<std::uint8_t, 32> sha256(std::span<std::byte const> data) noexcept {
    static constexpr std::uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                          0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    auto rotr = [](std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
    auto block = [&](std::uint8_t const* b) {
        std::uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = static_cast<std::uint32_t>(b[4 * i]) << 24 | static_cast<std::uint32_t>(b[4 * i + 1]) << 16 |
                   static_cast<std::uint32_t>(b[4 * i + 2]) << 8 | static_cast<std::uint32_t>(b[4 * i + 3]);
        for (int i = 16; i < 64; ++i) {
            std::uint32_t const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            std::uint32_t const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        std::uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            std::uint32_t const t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            std::uint32_t const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = bb; bb = a; a = t1 + t2;
        }
        h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    };
    std::size_t const n = data.size();
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) block(reinterpret_cast<std::uint8_t const*>(data.data() + i));
    std::uint8_t last[128] = {};
    std::size_t const rest = n - i;
    for (std::size_t j = 0; j < rest; ++j) last[j] = static_cast<std::uint8_t>(data[i + j]);
    last[rest] = 0x80;
    std::size_t const total = rest + 9 <= 64 ? 64 : 128;
    std::uint64_t const bits = static_cast<std::uint64_t>(n) * 8;
    for (std::size_t j = 0; j < 8; ++j) last[total - 1 - j] = static_cast<std::uint8_t>(bits >> (8 * j));
    block(last);
    if (total == 128) block(last + 64);
    std::array<std::uint8_t, 32> out{};
    for (std::size_t j = 0; j < 8; ++j)
        for (std::size_t b = 0; b < 4; ++b) out[4 * j + b] = static_cast<std::uint8_t>(h[j] >> (24 - 8 * b));
    return out;
}

} // namespace mmap_detail
VFOLDER_END_NAMESPACE

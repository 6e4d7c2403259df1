/// \file
/// \brief The `modseq.hwm` sidecar of `mmap_mailbox` (MAILBOX-FORMAT.md §10 case 3): a
/// durable high-water mark that no published HIGHESTMODSEQ (and no published UIDNEXT) of
/// the mailbox's current UIDVALIDITY ever exceeds, so that a rebuild that lost both header
/// slots can start its modseqs (and UIDs) above anything ever published and KEEP the
/// UIDVALIDITY.
///
/// The file is one line of text:
///
///     vfolder-hwm 1 <uidvalidity> <modseq mark> <uidnext mark> <crc32c hex>\n
///
/// where the CRC-32C (8 lowercase hex digits) covers every byte before the space that
/// precedes it. Anything else (missing, garbled, wrong CRC, a zero field, trailing
/// bytes) means "unknown".
#pragma once

#include <vfolder/adapters/mmap/detail/crc32c.hpp>
#include <vfolder/adapters/mmap/detail/posix_file.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>

VFOLDER_BEGIN_NAMESPACE
namespace mmap_detail {

/// \brief The content of `modseq.hwm`: while the mailbox has UIDVALIDITY `uidvalidity`,
/// no published highestmodseq exceeds `modseq` and no published uidnext exceeds `uidnext`.
struct hwm_mark {
    std::uint32_t uidvalidity = 0;
    std::uint64_t modseq = 0;
    std::uint64_t uidnext = 0; // at most 2^32-1
    friend bool operator==(hwm_mark const&, hwm_mark const&) = default;
};

inline constexpr std::uint64_t default_hwm_step = std::uint64_t{1} << 16;
inline constexpr std::string_view hwm_file_name = "modseq.hwm";

/// \brief The file content for `m`.
[[nodiscard]] inline std::string encode_hwm(hwm_mark const& m) {
    std::string body = "vfolder-hwm 1 " + std::to_string(m.uidvalidity) + " " + std::to_string(m.modseq) + " " +
                       std::to_string(m.uidnext);
    std::uint32_t const crc = crc32c_update(0, std::as_bytes(std::span(body.data(), body.size())));
    std::array<char, 9> hex{};
    std::snprintf(hex.data(), hex.size(), "%08x", static_cast<unsigned>(crc));
    return body + " " + hex.data() + "\n";
}

/// \brief Parses a file content; nullopt unless it is exactly what `encode_hwm` writes
/// for a mark with non-zero fields (uidnext at most 2^32-1, modseq at most 2^63-1).
[[nodiscard]] inline std::optional<hwm_mark> parse_hwm(std::string_view text) {
    if (text.size() < 2 || text.size() > 120 || text.back() != '\n') return std::nullopt;
    text.remove_suffix(1);
    auto const sp = text.rfind(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    std::string_view const body = text.substr(0, sp), hex = text.substr(sp + 1);
    if (hex.size() != 8 || hex.find_first_not_of("0123456789abcdef") != std::string_view::npos) return std::nullopt;
    std::uint32_t want = 0;
    for (char ch : hex) want = want * 16 + static_cast<std::uint32_t>(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    if (crc32c_update(0, std::as_bytes(std::span(body.data(), body.size()))) != want) return std::nullopt;
    std::string_view rest = body;
    auto word = [&]() -> std::string_view {
        auto const e = rest.find(' ');
        std::string_view w = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e + 1);
        return w;
    };
    auto number = [](std::string_view d, std::uint64_t limit) -> std::optional<std::uint64_t> {
        if (d.empty() || d.size() > 19 || d.front() == '0' || d.find_first_not_of("0123456789") != std::string_view::npos)
            return std::nullopt;
        std::uint64_t v = 0;
        for (char ch : d) v = v * 10 + static_cast<std::uint64_t>(ch - '0');
        if (v > limit) return std::nullopt;
        return v;
    };
    if (word() != "vfolder-hwm" || word() != "1") return std::nullopt;
    auto const v = number(word(), 0xFFFFFFFFULL);
    auto const m = number(word(), (std::uint64_t{1} << 63) - 1);
    auto const u = number(word(), 0xFFFFFFFFULL);
    if (!v || !m || !u || !rest.empty()) return std::nullopt;
    return hwm_mark{static_cast<std::uint32_t>(*v), *m, *u};
}

/// \brief Reads the sidecar at `path`; nullopt when missing, unreadable or garbled.
[[nodiscard]] inline std::optional<hwm_mark> read_hwm(std::string const& path) {
    return parse_hwm(read_small_file(path, 128));
}

/// \brief The mark to persist before publishing `highestmodseq` and `uidnext`: the modseq
/// mark is `highestmodseq + step` rounded up to a multiple of `step` (so between
/// `highestmodseq + step` and `highestmodseq + 2*step`); the uidnext mark is `uidnext`
/// plus the same distance (every new UID takes a new modseq, so uidnext cannot outrun it
/// before the modseq mark is reached). Both clamped to their ranges.
[[nodiscard]] inline hwm_mark next_hwm(std::uint32_t uidvalidity, std::uint64_t highestmodseq, std::uint64_t uidnext,
                                       std::uint64_t step) noexcept {
    constexpr std::uint64_t top = (std::uint64_t{1} << 63) - 1;
    step = std::max<std::uint64_t>(step, 2);
    std::uint64_t m = top;
    if (highestmodseq < top - 2 * step) m = (highestmodseq / step + 2) * step;
    std::uint64_t const u = std::min<std::uint64_t>(0xFFFFFFFFULL, uidnext + (m - highestmodseq));
    return {uidvalidity, m, u};
}

/// \brief Whether `mark` (the persisted one, if known) must be rewritten before a commit
/// publishes `highestmodseq` and `uidnext` under `uidvalidity`: unknown, of another
/// UIDVALIDITY, or within `step / 2` of being passed.
[[nodiscard]] inline bool hwm_rewrite_needed(std::optional<hwm_mark> const& mark, std::uint32_t uidvalidity,
                                             std::uint64_t highestmodseq, std::uint64_t uidnext,
                                             std::uint64_t step) noexcept {
    if (!mark || mark->uidvalidity != uidvalidity) return true;
    std::uint64_t const margin = std::max<std::uint64_t>(step, 2) / 2;
    if (mark->modseq >= (std::uint64_t{1} << 63) - 1 && highestmodseq <= mark->modseq) return false; // at the top
    return highestmodseq + margin > mark->modseq || uidnext + margin > mark->uidnext;
}

/// \brief Durably writes `m` as `<dir>/modseq.hwm` (tmp/modseq.hwm.new, fsync, rename,
/// directory fsync).
[[nodiscard]] inline result<void> write_hwm(std::string const& dir, hwm_mark const& m) {
    std::string const text = encode_hwm(m);
    return atomic_replace(dir, dir + "/" + std::string(hwm_file_name), dir + "/tmp/modseq.hwm.new",
                          std::as_bytes(std::span(text.data(), text.size())));
}

/// \brief Makes the sidecar of `dir` cover `highestmodseq` and `uidnext` under
/// `uidvalidity` (call under the writer lock, before publishing them): writes
/// `next_hwm(...)`, raised to the file's current mark when that one is valid, of the same
/// UIDVALIDITY and higher (so the file never goes down: another handle may have written a
/// higher mark than the one this caller knows). Returns the mark written.
[[nodiscard]] inline result<hwm_mark> persist_hwm(std::string const& dir, std::uint32_t uidvalidity,
                                                  std::uint64_t highestmodseq, std::uint64_t uidnext,
                                                  std::uint64_t step) {
    hwm_mark m = next_hwm(uidvalidity, highestmodseq, uidnext, step);
    if (auto cur = read_hwm(dir + "/" + std::string(hwm_file_name)); cur && cur->uidvalidity == uidvalidity) {
        m.modseq = std::max(m.modseq, cur->modseq);
        m.uidnext = std::max(m.uidnext, cur->uidnext);
    }
    if (auto r = write_hwm(dir, m); !r) return std::move(r).error_value();
    return m;
}

} // namespace mmap_detail
VFOLDER_END_NAMESPACE

/// \file
/// \brief What backends report about messages: `message_record` (the metadata the engine
/// fetches), `fetch_fields`, and `change_set` (the answer of `changes_since`).
#pragma once

#include <vfolder/core/seq_range_set.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/types.hpp>

#include <cstdint>
#include <optional>

VFOLDER_BEGIN_NAMESPACE

/// \brief A set of UIDs (the values are `value(uid)`), as bulk operations take them.
using uid_set = seq_range_set<std::uint32_t>;

/// \brief Which fields `fetch` must fill (others may be left default).
enum class fetch_fields : std::uint8_t {
    received = 1u << 0,
    flags = 1u << 1, ///< system flags and keywords
    size = 1u << 2,
    all = 0x7,
};
[[nodiscard]] constexpr fetch_fields operator|(fetch_fields a, fetch_fields b) noexcept {
    return static_cast<fetch_fields>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
[[nodiscard]] constexpr bool has(fetch_fields set, fetch_fields f) noexcept {
    return (static_cast<std::uint8_t>(set) & static_cast<std::uint8_t>(f)) != 0;
}

/// \brief The metadata of one message, as `fetch` returns it.
struct message_record {
    uid id{};
    mail_time received{};
    flag_set flags;
    keyword_set keywords;
    std::uint64_t size = 0;
    friend bool operator==(message_record const&, message_record const&) = default;
};

/// \brief What changed in a mailbox since a modseq.
struct change_set {
    /// UIDs of existing messages whose modseq is above the one asked (new ones included).
    uid_set changed;
    /// UIDs expunged since then, or nullopt when the backend cannot tell ("unknown": the
    /// engine then compares UID sets).
    std::optional<uid_set> expunged;
    /// The mailbox's HIGHESTMODSEQ at the time of the answer.
    modseq highest_modseq{};
};

VFOLDER_END_NAMESPACE

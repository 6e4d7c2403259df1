/// \file
/// \brief Strong value types of mail: UIDs, sequence numbers, modseqs, UIDVALIDITY,
/// received time.
///
/// Each is a scoped enum over its integer, so the compiler rejects the classic IMAP bug of
/// passing a sequence number where a UID is expected. `value(x)` gives the integer back;
/// `next(x)` / `prev(x)` step without arithmetic on the enum.
#pragma once

#include <vfolder/version.hpp>

#include <compare>
#include <cstdint>
#include <type_traits>

VFOLDER_BEGIN_NAMESPACE

/// \brief A message UID within one mailbox (1-based; 0 = "none").
enum class uid : std::uint32_t {};
/// \brief A message sequence number (1-based position in a mailbox).
enum class seqno : std::uint32_t {};
/// \brief A CONDSTORE modification sequence (0 = "none / not tracked").
enum class modseq : std::uint64_t {};
/// \brief A mailbox's UIDVALIDITY (non-zero when valid).
enum class uid_validity : std::uint32_t {};
/// \brief A received date (IMAP INTERNALDATE) in seconds since the Unix epoch, UTC.
enum class mail_time : std::int64_t {};

/// \brief Whether `T` is one of vfolder's strong mail value types.
template <class T>
inline constexpr bool is_mail_value_v =
    std::is_same_v<T, uid> || std::is_same_v<T, seqno> || std::is_same_v<T, modseq> ||
    std::is_same_v<T, uid_validity> || std::is_same_v<T, mail_time>;

/// \brief The underlying integer of a strong mail value.
template <class T>
    requires is_mail_value_v<T>
[[nodiscard]] constexpr std::underlying_type_t<T> value(T x) noexcept {
    return static_cast<std::underlying_type_t<T>>(x);
}

/// \brief The next value (`x + 1`). Precondition: `x` is not the maximum.
template <class T>
    requires is_mail_value_v<T>
[[nodiscard]] constexpr T next(T x) noexcept {
    return static_cast<T>(value(x) + 1);
}

/// \brief The previous value (`x - 1`). Precondition: `x` is not the minimum.
template <class T>
    requires is_mail_value_v<T>
[[nodiscard]] constexpr T prev(T x) noexcept {
    return static_cast<T>(value(x) - 1);
}

VFOLDER_END_NAMESPACE

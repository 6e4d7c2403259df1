/// \file
/// \brief IMAP system flags and keyword sets.
///
/// `flag_set` is a bitmask of the system flags `\Seen \Answered \Flagged \Deleted \Draft`
/// and the session flag `\Recent`, which is never stored or propagated (`storable()`
/// strips it). `keyword_set` is a sorted set of keyword names (`$Label1`, `Work`),
/// compared case-sensitively as stored.
#pragma once

#include <vfolder/version.hpp>

#include <boost/container/flat_set.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

VFOLDER_BEGIN_NAMESPACE

/// \brief One system flag; the values are the bits of `flag_set`.
enum class system_flag : std::uint8_t {
    seen = 1u << 0,
    answered = 1u << 1,
    flagged = 1u << 2,
    deleted = 1u << 3,
    draft = 1u << 4,
    recent = 1u << 5, ///< session state: never stored, never propagated
};

/// \brief A set of system flags (a bitmask).
class flag_set {
public:
    constexpr flag_set() noexcept = default;
    constexpr flag_set(system_flag f) noexcept : bits_(static_cast<std::uint8_t>(f)) {} // NOLINT
    [[nodiscard]] static constexpr flag_set from_bits(std::uint8_t b) noexcept {
        flag_set s;
        s.bits_ = static_cast<std::uint8_t>(b & all_bits);
        return s;
    }
    [[nodiscard]] constexpr std::uint8_t bits() const noexcept { return bits_; }
    [[nodiscard]] constexpr bool empty() const noexcept { return bits_ == 0; }
    [[nodiscard]] constexpr bool contains(system_flag f) const noexcept {
        return (bits_ & static_cast<std::uint8_t>(f)) != 0;
    }
    /// \brief The flags that are stored and propagated: all but `\Recent`.
    [[nodiscard]] constexpr flag_set storable() const noexcept {
        return from_bits(static_cast<std::uint8_t>(bits_ & ~static_cast<std::uint8_t>(system_flag::recent)));
    }
    constexpr flag_set& operator|=(flag_set o) noexcept { bits_ = static_cast<std::uint8_t>(bits_ | o.bits_); return *this; }
    constexpr flag_set& operator&=(flag_set o) noexcept { bits_ = static_cast<std::uint8_t>(bits_ & o.bits_); return *this; }
    /// \brief Removes the flags of `o`.
    constexpr flag_set& operator-=(flag_set o) noexcept { bits_ = static_cast<std::uint8_t>(bits_ & ~o.bits_); return *this; }
    friend constexpr flag_set operator|(flag_set a, flag_set b) noexcept { return a |= b; }
    friend constexpr flag_set operator&(flag_set a, flag_set b) noexcept { return a &= b; }
    friend constexpr flag_set operator-(flag_set a, flag_set b) noexcept { return a -= b; }
    friend constexpr bool operator==(flag_set, flag_set) noexcept = default;

private:
    static constexpr std::uint8_t all_bits = 0x3f;
    std::uint8_t bits_ = 0;
};

constexpr flag_set operator|(system_flag a, system_flag b) noexcept { return flag_set(a) | b; }

/// \brief The IMAP name of a flag, e.g. `\Seen`.
[[nodiscard]] constexpr std::string_view flag_name(system_flag f) noexcept {
    switch (f) {
    case system_flag::seen: return "\\Seen";
    case system_flag::answered: return "\\Answered";
    case system_flag::flagged: return "\\Flagged";
    case system_flag::deleted: return "\\Deleted";
    case system_flag::draft: return "\\Draft";
    case system_flag::recent: return "\\Recent";
    }
    return {};
}

/// \brief The system flags in IMAP order.
inline constexpr system_flag all_system_flags[] = {system_flag::seen, system_flag::answered,
                                                   system_flag::flagged, system_flag::deleted,
                                                   system_flag::draft, system_flag::recent};

/// \brief The flag named `name` (case-insensitive, with the backslash), or nullopt.
[[nodiscard]] constexpr std::optional<system_flag> parse_flag(std::string_view name) noexcept {
    auto const eq = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   auto const lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
                   return lower(x) == lower(y);
               });
    };
    for (auto f : all_system_flags)
        if (eq(name, flag_name(f))) return f;
    return std::nullopt;
}

/// \brief A set of keywords (user flags), sorted bytewise.
using keyword_set = boost::container::flat_set<std::string, std::less<>>;

/// \brief Flags and keywords of a message together.
struct message_flags {
    flag_set flags;
    keyword_set keywords;
    friend bool operator==(message_flags const&, message_flags const&) = default;
};

/// \brief How a flag or keyword update applies: add, remove, or replace the whole set.
enum class modify_op : std::uint8_t { add, remove, replace };

/// \brief Applies `op` with `f` to `current`; `\Recent` is never set by an update.
[[nodiscard]] constexpr flag_set apply(flag_set current, modify_op op, flag_set f) noexcept {
    f = f.storable();
    switch (op) {
    case modify_op::add: return current | f;
    case modify_op::remove: return current - f;
    case modify_op::replace: return f | (current & system_flag::recent);
    }
    return current;
}

/// \brief Applies `op` with `k` to `current`.
inline keyword_set apply(keyword_set current, modify_op op, keyword_set const& k) {
    switch (op) {
    case modify_op::add: current.insert(k.begin(), k.end()); break;
    case modify_op::remove:
        for (auto const& name : k) current.erase(name);
        break;
    case modify_op::replace: current = k; break;
    }
    return current;
}

VFOLDER_END_NAMESPACE

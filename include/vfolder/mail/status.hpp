/// \file
/// \brief `mailbox_status`: what a backend reports about itself, and `mailbox_guid`.
#pragma once

#include <vfolder/mail/types.hpp>

#include <array>
#include <cstdint>
#include <optional>

VFOLDER_BEGIN_NAMESPACE

/// \brief A 128-bit globally unique mailbox id (changes when a mailbox is re-created).
using mailbox_guid = std::array<std::uint8_t, 16>;

/// \brief The status of a mailbox, as the engine compares it between syncs.
struct mailbox_status {
    std::uint32_t exists = 0;               ///< number of messages
    uid_validity validity{};                ///< UIDVALIDITY
    uid uid_next{1};                        ///< the UID the next message will get
    modseq highest_modseq{};                ///< HIGHESTMODSEQ (0 = not tracked)
    std::optional<mailbox_guid> guid;       ///< identity beyond UIDVALIDITY, if known
    friend bool operator==(mailbox_status const&, mailbox_status const&) = default;
};

VFOLDER_END_NAMESPACE

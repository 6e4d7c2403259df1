/// \file
/// \brief Umbrella header: every portable public header of vfolder.
#pragma once

#include <vfolder/config.hpp>
#include <vfolder/fwd.hpp>
#include <vfolder/version.hpp>

#include <vfolder/core/seq_range.hpp>
#include <vfolder/core/seq_range_set.hpp>
#include <vfolder/core/uid_map.hpp>

#include <vfolder/mail/definition.hpp>
#include <vfolder/mail/error.hpp>
#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/message.hpp>
#include <vfolder/mail/search.hpp>
#include <vfolder/mail/status.hpp>
#include <vfolder/mail/types.hpp>
#include <vfolder/mail/view_state.hpp>

#include <vfolder/any_backend.hpp>
#include <vfolder/concepts.hpp>
#include <vfolder/registry.hpp>

#include <vfolder/engine/folder.hpp>
#include <vfolder/engine/registry_provider.hpp>

#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>

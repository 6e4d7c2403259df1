/// \file
/// \brief Umbrella header: every portable public header of vfolder.
#pragma once

#include <vfolder/config.hpp>
#include <vfolder/fwd.hpp>
#include <vfolder/version.hpp>

#include <vfolder/core/seq_range.hpp>
#include <vfolder/core/seq_range_set.hpp>
#include <vfolder/core/uid_map.hpp>

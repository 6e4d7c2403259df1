/// \file
/// \brief Forward declarations of vfolder's public class templates.
#pragma once

#include <vfolder/version.hpp>

#include <boost/container/container_fwd.hpp>

#include <concepts>
#include <cstdint>

VFOLDER_BEGIN_NAMESPACE

template <std::unsigned_integral T>
struct seq_range;
template <std::unsigned_integral Uid>
struct uid_map_entry;
template <std::unsigned_integral T, class Storage>
class seq_range_set;
template <std::unsigned_integral Uid, class Storage>
class uid_map;

VFOLDER_END_NAMESPACE

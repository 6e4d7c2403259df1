// Explicit instantiation of every class template with unusual parameters: compiles the
// members that no test calls (Boost.Container's explicit_inst_* idea).
#include <vfolder/vfolder.hpp>

#include <boost/container/small_vector.hpp>

#include <cstdint>
#include <vector>

template class vfolder::seq_range_set<std::uint32_t>;
template class vfolder::seq_range_set<std::uint8_t>;
template class vfolder::seq_range_set<std::uint16_t,
    boost::container::small_vector<vfolder::seq_range<std::uint16_t>, 4>>;
template class vfolder::seq_range_set<std::uint64_t, std::vector<vfolder::seq_range<std::uint64_t>>>;
template class vfolder::uid_map<std::uint32_t>;
template class vfolder::uid_map<std::uint64_t>;
template class vfolder::uid_map<std::uint32_t,
    boost::container::small_vector<vfolder::uid_map_entry<std::uint32_t>, 8>>;
template class vfolder::uid_map<std::uint32_t, std::vector<vfolder::uid_map_entry<std::uint32_t>>>;

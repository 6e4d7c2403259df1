// The example of README.md, compiled and run as a test.
#include <vfolder/core/seq_range_set.hpp>
#include <vfolder/core/uid_map.hpp>

#include <cstdint>
#include <vector>

int main() {
    // [readme-begin]
    vfolder::seq_range_set<> uids;               // UIDs as closed ranges
    uids.add_range(1, 10);
    uids.remove(4);                               // {1:3, 5:10}
    auto matching = vfolder::seq_range_set<>::from_values(std::vector<std::uint32_t>{9, 2, 3, 8});
    uids.intersect(matching);                     // one linear pass: {2:3, 8:9}

    vfolder::uid_map<> map;                       // real UID -> virtual UID
    map.insert(uids);                             // one-pass bulk insert, vuids 0 = unassigned
    map.assign(2, 100);
    vfolder::seq_range_set<> dropped;
    map.erase(vfolder::seq_range_set<>{{2, 2}}, dropped);   // dropped == {100}
    // [readme-end]
    bool const ok = uids == vfolder::seq_range_set<>{{2, 3}, {8, 9}} && map.size() == 3 &&
                    dropped == vfolder::seq_range_set<>{{100, 100}};
    return ok ? 0 : 1;
}

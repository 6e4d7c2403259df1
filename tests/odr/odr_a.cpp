// ODR link test, part 1: includes every public header (see odr_b.cpp).
#include <vfolder/vfolder.hpp>

unsigned odr_b_count();

int main() {
    vfolder::seq_range_set<> s{{1, 3}, {5, 5}};
    vfolder::uid_map<> m;
    m.insert(s);
    return (s.count() == 4 && m.size() == 4 && odr_b_count() == 3) ? 0 : 1;
}

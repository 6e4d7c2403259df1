// ODR link test, part 2: the same headers in a second translation unit. A non-inline
// function defined in a header makes the link fail with "multiple definition".
#include <vfolder/vfolder.hpp>

unsigned odr_b_count() {
    vfolder::seq_range_set<> s;
    s.add_range(10, 12);
    return s.count();
}

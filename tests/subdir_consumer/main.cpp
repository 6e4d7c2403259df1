#include <vfolder/vfolder.hpp>

int main() {
    vfolder::seq_range_set<> s;
    s.add_range(1, 10);
    s.remove(5);
    return s.count() == 9 && s.range_count() == 2 ? 0 : 1;
}

// The core containers at work: the bookkeeping of one backend mailbox of a virtual
// folder. docs/core.md quotes this file.
#include <vfolder/core/seq_range_set.hpp>
#include <vfolder/core/uid_map.hpp>

#include <cstdint>
#include <cstdio>

using uid_set = vfolder::seq_range_set<std::uint32_t>;

static void print(char const* what, uid_set const& s) {
    std::printf("%-28s", what);
    for (auto const& r : s) {
        if (r.first == r.last)
            std::printf(" %u", r.first);
        else
            std::printf(" %u:%u", r.first, r.last);
    }
    std::printf("   (%u UIDs in %zu ranges)\n", s.count(), s.range_count());
}

int main() {
    // [demo-begin]
    // A backend mailbox holds UIDs 1..10; messages 4 and 7 were expunged.
    uid_set existing;
    existing.add_range(1, 10);
    existing.remove(4);
    existing.remove(7);
    print("backend UIDs:", existing);

    // The search program matched these (unsorted, with a duplicate): bulk insert.
    uid_set matching = uid_set::from_values(std::initializer_list<std::uint32_t>{9, 2, 3, 8, 2, 10});
    print("matching UIDs:", matching);

    // The view's UID map: real UID -> virtual UID, bulk-inserted in one pass.
    vfolder::uid_map<std::uint32_t> map;
    map.insert(matching);
    std::uint32_t next_vuid = 1;
    for (std::size_t i = 0; i < map.size(); ++i) map.assign_at(i, next_vuid++);

    // Message 9 is expunged in the backend: erase it, learn which virtual UID went away.
    uid_set gone{{9, 9}};
    uid_set dropped;
    map.erase(gone, dropped);
    print("virtual UIDs to expunge:", dropped);

    // Translate backend UIDs 1..5 to virtual UIDs (set form, and 1:1 with 0 = unmapped).
    uid_set asked{{1, 5}};
    print("virtual UIDs of 1:5:", map.translate(asked));
    std::printf("%-28s", "1:1 translation of 1:5:");
    for (auto v : map.translate_each(asked)) std::printf(" %u", v);
    std::printf("\n");

    // Set algebra is linear: which existing messages did not match?
    uid_set unmatched = existing;
    unmatched.remove_set(matching);
    print("existing but not matching:", unmatched);
    // [demo-end]
    return unmatched.count() == 3 && dropped.count() == 1 ? 0 : 1;
}

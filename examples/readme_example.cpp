// The examples of README.md, compiled and run as a test.
#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/core/seq_range_set.hpp>
#include <vfolder/core/uid_map.hpp>
#include <vfolder/engine/folder.hpp>

#include <cstdint>
#include <vector>

static bool folder_example() {
    // [readme-folder-begin]
    vfolder::memory_world mail;                 // backends: any type modelling vfolder::backend
    vfolder::memory_store_world stores;         // where folder state persists
    auto def = vfolder::folder_definition::make({"INBOX", "Work", "Lists/*"}, "unseen");
    auto f = vfolder::folder<vfolder::memory_provider, vfolder::memory_store>::open(
        *def, vfolder::memory_provider(mail), vfolder::memory_store(stores, "Unseen"));
    auto opened = f->sync(vfolder::sync_flags::reopen); // SELECT: search, order by date, number
    f->store_flags(vfolder::uid_set{{2, 2}}, vfolder::modify_op::add, vfolder::system_flag::flagged);
    auto report = f->sync();                    // the flag reaches the backend, backend changes
                                                // reach the view; report: expunged/added/changed vuids
    // [readme-folder-end]
    return opened.has_value() && report.has_value() && f->size() == 0; // no mailboxes: empty
}

int main() {
    if (!folder_example()) return 1;
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

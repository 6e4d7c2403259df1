// The README demo: a virtual folder over three mailboxes, kept in sync.
#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/engine/folder.hpp>

#include "print_folder.hpp"

#include <cstdio>
#include <string>

namespace vf = vfolder;
using folder_t = vf::folder<vf::memory_provider, vf::memory_store>;

int main() {
    vf::memory_world mail;
    vf::memory_store_world stores;
    auto* inbox = *mail.create("INBOX");
    auto* work = *mail.create("Work");
    auto* dev = *mail.create("Lists/dev");
    inbox->append(vf::mail_time{1700000300}, {vf::system_flag::seen, {}});
    work->append(vf::mail_time{1700000100});
    dev->append(vf::mail_time{1700000200});
    inbox->append(vf::mail_time{1700000400});

    // "Unseen" = the unseen messages of INBOX, Work and every Lists/ mailbox.
    auto def = vf::folder_definition::make({"INBOX", "Work", "Lists/*"}, "unseen");
    auto f = folder_t::open(*def, vf::memory_provider(mail), vf::memory_store(stores, "Unseen"));
    if (!f || !f->sync(vf::sync_flags::reopen)) return 1;
    print_folder("Unseen after SELECT (received-date order)", *f);

    work->modify_flags(vf::uid{1}, vf::modify_op::add, vf::system_flag::seen);  // read elsewhere
    f->store_flags(vf::uid_set{{2, 2}}, vf::modify_op::add, vf::system_flag::flagged);  // via the view
    dev->append(vf::mail_time{1700000500});
    auto r = f->sync();
    if (!r) return 1;
    print_folder("after a normal sync (the read message stays until EXPUNGE)", *f);
    std::printf("  Lists/dev message 1 is now %s in its backend\n",
                dev->find(vf::uid{1})->flags.contains(vf::system_flag::flagged) ? "\\Flagged" : "unflagged");

    if (!f->sync(vf::sync_flags::expunge)) return 1;
    print_folder("after EXPUNGE", *f);
    return f->size() == 3 ? 0 : 1;
}

// The README demo, on disk: the same virtual folder over three mmap_mailbox backends in a
// directory, its state in an mmap_store; then the process "restarts" (every object is
// closed) and the folder continues from the files. Usage: demo_disk [DIR] (default: a fresh
// temporary directory, removed at exit).
#include <vfolder/adapters/mmap/mmap_provider.hpp>
#include <vfolder/adapters/mmap/mmap_store.hpp>
#include <vfolder/engine/folder.hpp>

#include "print_folder.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace vf = vfolder;
using folder_t = vf::folder<vf::mmap_provider, vf::mmap_store>;

static int fail(char const* what, vf::error const& e) {
    std::fprintf(stderr, "demo_disk: %s: %s\n", what, e.message.c_str());
    return 1;
}

static std::string message(char const* id) {
    return std::string("Message-ID: <") + id + "@example.org>\r\nSubject: " + id + "\r\n\r\nHello.\r\n";
}

static int run(std::string const& root) {
    std::filesystem::create_directories(root + "/mail");
    std::filesystem::create_directories(root + "/vindex");
    vf::mmap_provider mail(root + "/mail");
    auto def = vf::folder_definition::make({"INBOX", "Work", "Lists/*"}, "unseen");
    if (!def) return fail("definition", def.error_value());
    {
        for (char const* name : {"INBOX", "Work", "Lists/dev"})
            if (auto r = mail.create(name); !r) return fail("create", r.error_value());
        auto inbox = mail.make("INBOX"), work = mail.make("Work"), dev = mail.make("Lists/dev");
        if (!inbox || !work || !dev) return 1;
        // Each append is durable (message file, then index commit) when it returns.
        if (!inbox->append(message("a"), vf::mail_time{1700000300}, vf::flag_set{vf::system_flag::seen}) ||
            !work->append(message("b"), vf::mail_time{1700000100}) ||
            !dev->append(message("c"), vf::mail_time{1700000200}) ||
            !inbox->append(message("d"), vf::mail_time{1700000400}))
            return 1;
    }
    {
        auto store = vf::mmap_store::open(root + "/vindex/Unseen");
        if (!store) return fail("store", store.error_value());
        auto f = folder_t::open(*def, mail, std::move(*store));
        if (!f) return fail("open", f.error_value());
        if (auto r = f->sync(vf::sync_flags::reopen); !r) return fail("sync", r.error_value());
        print_folder("Unseen after SELECT (received-date order)", *f);
        f->store_flags(vf::uid_set{{2, 2}}, vf::modify_op::add, vf::system_flag::flagged);
        if (auto r = f->sync(); !r) return fail("sync", r.error_value());
    } // the folder, its store and its backends are closed: a restart
    auto dev = mail.make("Lists/dev");
    if (!dev || !dev->append(message("e"), vf::mail_time{1700000500})) return 1;
    auto store = vf::mmap_store::open(root + "/vindex/Unseen");
    if (!store) return fail("store", store.error_value());
    auto f = folder_t::open(*def, mail, std::move(*store));
    if (!f) return fail("open", f.error_value());
    if (auto r = f->sync(vf::sync_flags::reopen); !r) return fail("sync", r.error_value());
    print_folder("after a restart and a new message (state read back from disk)", *f);
    auto flagged = f->find(vf::uid{2});
    return f->size() == 4 && flagged && flagged->flags.contains(vf::system_flag::flagged) ? 0 : 1;
}

int main(int argc, char** argv) {
    if (argc > 1) return run(argv[1]);
    std::string tmp = (std::filesystem::temp_directory_path() / "vfolder-demo-XXXXXX").string();
    if (::mkdtemp(tmp.data()) == nullptr) return 1;
    int const rc = run(tmp);
    std::filesystem::remove_all(tmp);
    return rc;
}

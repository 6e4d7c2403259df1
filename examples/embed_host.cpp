// Embedding vfolder in a host application: a tiny IMAP-like session that keeps its own
// sequence-number view of a virtual folder and turns each sync report into the untagged
// responses an IMAP server would send (EXPUNGE, EXISTS, FETCH FLAGS).
#include <vfolder/adapters/memory/memory_mailbox.hpp>
#include <vfolder/adapters/memory/memory_store.hpp>
#include <vfolder/engine/folder.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace vf = vfolder;
using folder_t = vf::folder<vf::memory_provider, vf::memory_store>;

// [embed-begin]
/// What a host keeps per selected folder: the vuids in the order the client knows them.
class imap_session {
public:
    explicit imap_session(folder_t& f) : folder_(f) {}

    /// Runs a sync and reports the changes as untagged responses.
    bool sync(vf::sync_flags flags = vf::sync_flags::none) {
        auto report = folder_.sync(flags);
        if (!report) {
            std::printf("NO %s\n", report.error_value().message.c_str());
            return false;
        }
        // EXPUNGE: highest sequence number first, so the numbers stay valid while sent.
        for (std::size_t i = seen_.size(); i-- > 0;) {
            if (report->expunged.contains(seen_[i])) {
                std::printf("* %zu EXPUNGE\n", i + 1);
                seen_.erase(seen_.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
        report->added.for_each_value([&](std::uint32_t v) { seen_.push_back(v); });
        if (!report->added.empty()) std::printf("* %zu EXISTS\n", seen_.size());
        report->flags_changed.for_each_value([&](std::uint32_t v) {
            auto it = std::lower_bound(seen_.begin(), seen_.end(), v);
            auto m = folder_.find(vf::uid{v});
            if (it == seen_.end() || *it != v || !m) return;
            std::printf("* %td FETCH (UID %u FLAGS %s)\n", it - seen_.begin() + 1, v,
                        flags_text(*m).c_str());
        });
        return true;
    }

    /// STORE through the folder; the backends get it at the next sync.
    void store(std::uint32_t vuid, vf::modify_op op, vf::flag_set flags) {
        folder_.store_flags(vf::uid_set{{vuid, vuid}}, op, flags);
    }

private:
    static std::string flags_text(vf::folder_message const& m) {
        std::string s = "(";
        for (auto f : vf::all_system_flags)
            if (m.flags.contains(f)) s += (s.size() > 1 ? " " : "") + std::string(vf::flag_name(f));
        for (auto const& k : *m.keywords) s += (s.size() > 1 ? " " : "") + k;
        return s + ")";
    }

    folder_t& folder_;
    std::vector<std::uint32_t> seen_; // ascending vuids: vuids only grow
};
// [embed-end]

int main() {
    vf::memory_world mail;
    vf::memory_store_world stores;
    auto* inbox = *mail.create("INBOX");
    auto* lists = *mail.create("Lists/dev");
    inbox->append(vf::mail_time{1000});
    lists->append(vf::mail_time{900});
    inbox->append(vf::mail_time{1100});

    auto def = vf::folder_definition::make({"INBOX", "Lists/*"}, "unseen");
    auto f = folder_t::open(*def, vf::memory_provider(mail), vf::memory_store(stores, "Unseen"));
    if (!f) return 1;
    imap_session session(*f);

    std::printf("-- SELECT\n");
    session.sync(vf::sync_flags::reopen);
    std::printf("-- new mail, and a message read elsewhere\n");
    lists->append(vf::mail_time{1200});
    inbox->modify_flags(vf::uid{1}, vf::modify_op::add, vf::system_flag::seen);
    session.sync(); // still shown (pending remove) with its new flags
    std::printf("-- the client flags message 1\n");
    session.store(1, vf::modify_op::add, vf::system_flag::flagged);
    session.sync();
    std::printf("-- EXPUNGE\n");
    session.sync(vf::sync_flags::expunge); // the read message leaves now
    return f->size() == 3 ? 0 : 1;
}

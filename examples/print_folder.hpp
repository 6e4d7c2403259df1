// Shared by the demos: prints a folder's status and its messages in vuid order.
#pragma once

#include <vfolder/mail/flags.hpp>
#include <vfolder/mail/types.hpp>

#include <cstdio>
#include <string>

template <class Folder>
void print_folder(char const* title, Folder const& f) {
    auto const st = f.status();
    std::printf("%s: %u messages, uidnext %u\n", title, st.messages, vfolder::value(st.uid_next));
    f.for_each([](auto const& m) {
        std::string flags;
        for (auto fl : vfolder::all_system_flags)
            if (m.flags.contains(fl)) flags += std::string(flags.empty() ? "" : " ") + std::string(vfolder::flag_name(fl));
        std::printf("  vuid %-2u %-10.*s uid %u  (%s)\n", vfolder::value(m.vuid), static_cast<int>(m.backend.size()),
                    m.backend.data(), vfolder::value(m.backend_uid), flags.c_str());
    });
}

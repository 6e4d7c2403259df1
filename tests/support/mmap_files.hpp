// Helpers shared by the mmap tests: whole-file reads and writes, the newest valid header
// slot of an index file, and the options of a handle that behaves like one in another
// process.
#pragma once

#include <vfolder/adapters/mmap/mmap_mailbox.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

namespace vfolder_test {

inline std::vector<std::byte> read_file(std::string const& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(v.size());
    if (!v.empty()) std::memcpy(out.data(), v.data(), v.size());
    return out;
}

inline void write_file(std::string const& p, std::vector<std::byte> const& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<char const*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(out.good());
}

/// The newest header slot of the index file `index` that passes its checks.
inline vfolder::mmap_detail::slot_fields newest_slot(std::string const& index) {
    using namespace vfolder::mmap_detail;
    auto f = read_file(index);
    REQUIRE(f.size() >= base_off);
    slot_fields const a = decode_slot(std::span<std::byte const, slot_size>(f.data(), slot_size));
    slot_fields const b = decode_slot(std::span<std::byte const, slot_size>(f.data() + slot_b_off, slot_size));
    bool const a_ok = check_slot(a, std::span<std::byte const, slot_size>(f.data(), slot_size), 0, f.size(), index).has_value();
    bool const b_ok =
        check_slot(b, std::span<std::byte const, slot_size>(f.data() + slot_b_off, slot_size), slot_b_off, f.size(), index)
            .has_value();
    REQUIRE((a_ok || b_ok));
    return a_ok && (!b_ok || a.generation > b.generation) ? a : b;
}

/// Options of a handle with files and a state of its own (like a handle in another
/// process), which never compacts on its own.
inline vfolder::mmap_options own_options(std::string name) {
    vfolder::mmap_options o;
    o.name = std::move(name);
    o.share_open = false;
    o.auto_compact = false;
    return o;
}

} // namespace vfolder_test

// The mmap_store fuzz target: the input describes a store directory's two files.
//
//   byte 0      mode: bit0 no checkpoint file, bit1 no log file, bit2 CRC fix-up
//   bytes 1..4  u32 LE n: the checkpoint's length (clamped to what is left)
//   then        n bytes of checkpoint, then the rest: the log
//
// With the fix-up, the checkpoint's payload_len, payload_crc and header_crc, the log's
// base_checkpoint_id (set to the checkpoint's id) and header_crc, and every record's
// payload_len (clamped), payload_crc and header_crc are recomputed, so mutations reach the
// decoders and `apply` instead of the checksums.
//
// Oracle: open succeeds (the directory exists); load() either fails with `corrupted` or
// returns a state; a loaded state survives a no-op commit and a reopen unchanged.
#pragma once

#include "fuzz_common.hpp"

#include <vfolder/adapters/mmap/mmap_store.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vfolder_fuzz {

namespace store_detail {

using namespace vfolder;
namespace md = vfolder::mmap_detail;
namespace sd = vfolder::mmap_store_detail;

inline void fix_checkpoint(std::vector<std::byte>& cp) {
    if (cp.size() < sd::file_header_size) return;
    std::uint32_t const seed = sd::seed_of(md::load_le<std::uint64_t>(cp.data() + 8));
    md::store_le<std::uint64_t>(cp.data() + 16, cp.size() - sd::file_header_size);
    md::store_le<std::uint32_t>(cp.data() + 24, sd::crc(seed, cp.data() + sd::file_header_size, cp.size() - sd::file_header_size));
    md::store_le<std::uint32_t>(cp.data() + 28, sd::crc(seed, cp.data(), 28));
}

inline void fix_log(std::vector<std::byte>& log, std::vector<std::byte> const& cp) {
    if (log.size() < sd::file_header_size) return;
    if (cp.size() >= 16) std::copy_n(cp.data() + 8, 8, log.data() + 16); // continues that checkpoint
    std::uint32_t const seed = sd::seed_of(md::load_le<std::uint64_t>(log.data() + 8));
    md::store_le<std::uint32_t>(log.data() + 28, sd::crc(seed, log.data(), 28));
    std::size_t off = sd::file_header_size;
    while (off + sd::record_header_size <= log.size()) {
        std::byte* p = log.data() + off;
        std::size_t const left = log.size() - off - sd::record_header_size;
        std::uint32_t len = md::load_le<std::uint32_t>(p + 4);
        if (len > left) len = static_cast<std::uint32_t>(left);
        md::store_le<std::uint32_t>(p + 4, len);
        md::store_le<std::uint32_t>(p + 16, sd::crc(seed, p + sd::record_header_size, len));
        md::store_le<std::uint32_t>(p + 20, sd::crc(seed, p, 20));
        off += sd::record_header_size + len;
    }
}

inline result<std::optional<view_state>> load_fresh(std::string const& dir) {
    mmap_store::options opt;
    opt.lock_timeout = std::chrono::milliseconds(1000);
    opt.checkpoint_min_bytes = 256; // small: the no-op commit may checkpoint
    auto s = mmap_store::open(dir, opt);
    if (!s) oracle_fail("mmap_store::open: " + s.error_value().message);
    return s->load();
}

} // namespace store_detail

/// \brief One fuzz input: see the file comment.
inline int mmap_store_one(std::uint8_t const* data, std::size_t size) {
    using namespace store_detail;
    static std::string const dir = scratch_dir() + "/store";
    if (size < 5) return 0;
    std::uint8_t const mode = data[0];
    std::uint32_t n = static_cast<std::uint32_t>(data[1]) | static_cast<std::uint32_t>(data[2]) << 8 |
                      static_cast<std::uint32_t>(data[3]) << 16 | static_cast<std::uint32_t>(data[4]) << 24;
    auto const* p = reinterpret_cast<std::byte const*>(data) + 5;
    std::size_t const left = size - 5;
    n = static_cast<std::uint32_t>(std::min<std::size_t>(n, left));
    std::vector<std::byte> cp(p, p + n), log(p + n, p + left);
    if ((mode & 4) != 0) {
        fix_checkpoint(cp);
        fix_log(log, cp);
    }
    {
        // Fresh directory contents (the lock file stays).
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        for (char const* f : {"/checkpoint", "/log", "/checkpoint.tmp", "/log.tmp"}) ::unlink((dir + f).c_str());
        if ((mode & 1) == 0) put_file(dir + "/checkpoint", cp);
        if ((mode & 2) == 0) put_file(dir + "/log", log);
    }
    std::optional<view_state> first;
    bool committed_on_corrupt = false;
    {
        mmap_store::options opt;
        opt.lock_timeout = std::chrono::milliseconds(1000);
        opt.checkpoint_min_bytes = 256;
        auto s = mmap_store::open(dir, opt);
        if (!s) oracle_fail("mmap_store::open: " + s.error_value().message);
        auto l = s->load();
        if (!l) {
            if (!l.error_value().is(vfolder::errc::corrupted)) oracle_fail("load: unexpected error kind: " + l.error_value().message);
            // Corrupted files refuse every commit; a state that decodes but fails
            // validation may take a no-op commit, and stays corrupted.
            auto c = s->commit(vfolder::view_delta{});
            if (c) {
                committed_on_corrupt = true;
            } else {
                if (!c.error_value().is(vfolder::errc::corrupted))
                    oracle_fail("commit on a corrupted store: unexpected error kind: " + c.error_value().message);
                return 0;
            }
        } else {
            first = std::move(*l);
            if (!first) return 0;
            if (auto c = s->commit(vfolder::view_delta{}); !c) oracle_fail("no-op commit on a loaded state: " + c.error_value().message);
            auto again = s->load();
            if (!again || *again != first) oracle_fail("a no-op commit changed the loaded state");
        }
    }
    auto l = load_fresh(dir);
    if (committed_on_corrupt) {
        if (l) oracle_fail("a no-op commit turned a corrupted state into a valid one");
        return 0;
    }
    if (!l) oracle_fail("reload after a no-op commit: " + l.error_value().message);
    if (*l != first) oracle_fail("reload after a no-op commit shows another state");
    return 0;
}

} // namespace vfolder_fuzz

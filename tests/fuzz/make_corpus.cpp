// Writes the seed corpora of the fuzz targets (committed under tests/fuzz/corpus/):
// valid files made by the library itself, and a few interesting corrupt ones.
//   fuzz_make_corpus <out-dir>      (writes <out-dir>/mmap_index/*, <out-dir>/mmap_store/*)
// Built on request only (target fuzz_make_corpus); rerun it when the formats change.
#include <vfolder/adapters/mmap/mmap_mailbox.hpp>
#include <vfolder/adapters/mmap/mmap_store.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

using namespace vfolder;
namespace md = vfolder::mmap_detail;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void die(std::string const& why) {
    std::fprintf(stderr, "make_corpus: %s\n", why.c_str());
    std::exit(1);
}
template <class T>
T ok(result<T> r, char const* what) {
    if (!r) die(std::string(what) + ": " + r.error_value().message);
    return std::move(*r);
}
void ok(result<void> r, char const* what) {
    if (!r) die(std::string(what) + ": " + r.error_value().message);
}

std::vector<std::byte> slurp(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<std::byte>(v[i]);
    return out;
}
void dump(fs::path const& p, std::vector<std::byte> const& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<char const*>(b.data()), static_cast<std::streamsize>(b.size()));
    std::printf("%s (%zu bytes)\n", p.c_str(), b.size());
}

keyword_set kws(std::initializer_list<char const*> names) {
    keyword_set k;
    for (auto const* n : names) k.insert(n);
    return k;
}

// The slot holding the newest generation, for patching with the slot CRC recomputed.
std::size_t newest_slot(std::vector<std::byte> const& f) {
    auto gen = [&](std::size_t at) { return md::load_le<std::uint64_t>(f.data() + at + 16); };
    return gen(md::slot_b_off) > gen(0) ? md::slot_b_off : 0;
}
template <class T>
std::vector<std::byte> patched(std::vector<std::byte> f, std::size_t field, T v) {
    std::size_t const at = newest_slot(f);
    md::store_le<T>(f.data() + at + field, v);
    md::store_le<std::uint32_t>(f.data() + at + 252, md::crc32c_update(0, std::span<std::byte const>(f.data() + at, 252)));
    return f;
}

void index_corpus(fs::path const& out, fs::path const& work) {
    fs::create_directories(out);
    std::string const dir = (work / "box").string();
    ok(mmap_mailbox::create(dir, uid_validity{1234}), "create");
    std::string const index = dir + "/index";
    dump(out / "valid-empty", slurp(index));
    mmap_mailbox m(dir);
    ok(m.append("Subject: a\r\n\r\nA\r\n", mail_time{1700000000}, system_flag::seen, kws({"Work"})), "append");
    dump(out / "valid-one-message", slurp(index));
    for (int i = 0; i < 5; ++i)
        ok(m.append(std::string(static_cast<std::size_t>(10 + i), 'x'), mail_time{1700000000 + i},
                    flag_set::from_bits(static_cast<std::uint8_t>(i)), i % 2 == 0 ? kws({"$Label1"}) : kws({"Later", "Work"})),
           "append");
    ok(m.update_flags(uid_set{{2, 4}}, modify_op::add, system_flag::flagged), "flags");
    ok(m.update_keywords(uid_set{{1, 6}}, modify_op::replace, kws({"$Junk"})), "keywords");
    ok(m.expunge(uid_set{{3, 3}, {5, 5}}), "expunge");
    auto const tail_mix = slurp(index);
    dump(out / "valid-tail-kwdef-update-expunge", tail_mix);
    // Keep the old inode reachable: compaction marks it RETIRED.
    fs::path const keep = work / "retired";
    if (::link(index.c_str(), keep.c_str()) != 0) die("link");
    ok(m.compact(), "compact");
    dump(out / "valid-retired", slurp(keep));
    auto const compacted = slurp(index);
    dump(out / "valid-compacted-base-tombs-kw", compacted);
    ok(m.append("late", mail_time{-62135596800}, system_flag::draft, kws({"Late"})), "append");
    ok(m.update_flags(uid_set{{1, 1}}, modify_op::replace, {}), "flags");
    ok(m.expunge(uid_set{{2, 2}}), "expunge");
    auto const base_tail = slurp(index);
    dump(out / "valid-base-plus-tail", base_tail);

    // Corrupt ones (the target also runs each with every CRC recomputed).
    dump(out / "bad-truncated-last-entry", std::vector<std::byte>(base_tail.begin(), base_tail.end() - 50));
    {
        auto f = tail_mix;
        f[newest_slot(f) + 40] ^= std::byte{1}; // newest slot damaged: the other one wins
        dump(out / "bad-newest-slot-crc", f);
    }
    dump(out / "bad-short", std::vector<std::byte>(base_tail.begin(), base_tail.begin() + 300));
    dump(out / "bad-tail-count-huge", patched<std::uint32_t>(base_tail, 152, 0x00FFFFFFU));
    dump(out / "bad-live-count-huge", patched<std::uint32_t>(compacted, 96, 0xFFFFFFF0U));
    dump(out / "odd-ro-compat-feature", patched<std::uint32_t>(base_tail, 76, 1));
    dump(out / "odd-deleted-flag", patched<std::uint32_t>(base_tail, 68, md::flag_deleted));
    {
        // MPERM with a repeated index (the fix-up makes base_crc match).
        auto f = compacted;
        std::size_t const at = newest_slot(f);
        auto const mperm = md::load_le<std::uint64_t>(f.data() + at + 120);
        md::store_le<std::uint32_t>(f.data() + mperm + 4, md::load_le<std::uint32_t>(f.data() + mperm));
        dump(out / "bad-mperm-repeated", f);
    }
    // Semantic defects deep in the tail and the base; the target's fix-up recomputes the
    // checksums, so these reach the checks named.
    auto tail_entry = [](std::vector<std::byte>& f, std::uint64_t i) {
        return f.data() + md::load_le<std::uint64_t>(f.data() + newest_slot(f) + 144) + md::entry_size * i;
    };
    {
        std::string const d2 = (work / "box2").string();
        ok(mmap_mailbox::create(d2, uid_validity{5}), "create");
        mmap_mailbox b(d2);
        ok(b.append("a", mail_time{1}, {}, kws({"Aa", "Bb"})), "append"); // KWDEF Aa, KWDEF Bb, MSG 1
        auto f = slurp(d2 + "/index");
        tail_entry(f, 1)[16] = static_cast<std::byte>('A'); // "Ab"
        tail_entry(f, 1)[17] = static_cast<std::byte>('a'); // "Aa" again
        dump(out / "bad-duplicate-tail-keyword", f);
        f = slurp(d2 + "/index");
        tail_entry(f, 2)[4] = std::byte{3};
        dump(out / "bad-unknown-entry-kind", f);
        ok(b.append("b", mail_time{2}), "append");                             // MSG 2
        ok(b.expunge(uid_set{{1, 1}}), "expunge");                             // EXP 1
        ok(b.update_flags(uid_set{{2, 2}}, modify_op::add, system_flag::seen), "flags"); // UPD 2
        f = slurp(d2 + "/index");
        md::store_le<std::uint32_t>(tail_entry(f, 5), 1); // the update now names expunged UID 1
        dump(out / "bad-change-to-vanished-uid", f);
    }
    {
        // A base tombstone above base_modseq.
        auto f = compacted;
        std::size_t const at = newest_slot(f);
        auto const tomb = md::load_le<std::uint64_t>(f.data() + at + 128);
        if (md::load_le<std::uint32_t>(f.data() + at + 100) == 0) die("no tombstone in the compacted file");
        md::store_le<std::uint64_t>(f.data() + tomb + 8, md::load_le<std::uint64_t>(f.data() + at + 48) + 1);
        dump(out / "bad-tomb-above-base-modseq", f);
    }
}

view_message vmsg(std::uint32_t vuid, mailbox_id box, std::uint32_t real, flag_set flags = {}, keyword_set k = {}) {
    return {uid{vuid}, box, uid{real}, flags, std::move(k)};
}

// A store input: mode byte, u32 checkpoint length, checkpoint, log.
std::vector<std::byte> store_input(std::uint8_t mode, std::vector<std::byte> const& cp, std::vector<std::byte> const& log) {
    std::vector<std::byte> v;
    v.push_back(static_cast<std::byte>(mode));
    auto const n = static_cast<std::uint32_t>(cp.size());
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<std::byte>(n >> (8 * i)));
    v.insert(v.end(), cp.begin(), cp.end());
    v.insert(v.end(), log.begin(), log.end());
    return v;
}

void store_corpus(fs::path const& out, fs::path const& work) {
    fs::create_directories(out);
    std::string const dir = (work / "store").string();
    mmap_store::options opt;
    opt.checkpoint_min_bytes = 1U << 30; // keep the deltas in the log
    auto s = ok(mmap_store::open(dir, opt), "store open");
    view_delta d;
    d.replace_all = true;
    d.header = view_header{uid_validity{7}, uid{10}, 2, 42};
    backend_sync_record b;
    b.box = 1;
    b.name = "INBOX";
    b.validity = uid_validity{1001};
    b.uid_next = uid{30};
    b.highest_modseq = modseq{11};
    b.pending_removes = uid_set{{25, 26}};
    backend_sync_record w = b;
    w.box = 2;
    w.name = "Work";
    w.guid = mailbox_guid{1, 2, 3};
    d.backends = {b, w};
    d.appended = {vmsg(2, 1, 10, system_flag::seen), vmsg(5, 2, 1, {}, kws({"Work", "$Label1"})), vmsg(9, 1, 12)};
    ok(s.commit(d), "commit");
    auto const cp1 = slurp(dir + "/checkpoint");
    auto const log1 = slurp(dir + "/log");
    view_delta u;
    u.expunged = uid_set{{5, 5}};
    u.updated = {vmsg(2, 1, 10, system_flag::seen | system_flag::flagged)};
    u.appended = {vmsg(12, 2, 4, system_flag::draft)};
    u.header = view_header{uid_validity{7}, uid{13}, 2, 42};
    ok(s.commit(u), "commit");
    auto const cp2 = slurp(dir + "/checkpoint");
    auto const log2 = slurp(dir + "/log");
    dump(out / "valid-checkpoint-and-log", store_input(0, cp1, log1));
    dump(out / "valid-two-records", store_input(0, cp2, log2));
    dump(out / "valid-two-records-fixup", store_input(4, cp2, log2));
    dump(out / "valid-no-log", store_input(2, cp2, {}));
    dump(out / "valid-nothing", store_input(3, {}, {}));
    dump(out / "bad-torn-last-record", store_input(0, cp2, std::vector<std::byte>(log2.begin(), log2.end() - 7)));
    {
        auto l = log2;
        l[40] ^= std::byte{0x10}; // a bad record followed by a valid one
        dump(out / "bad-record-then-valid", store_input(0, cp2, l));
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) die("usage: fuzz_make_corpus <out-dir>");
    fs::path const out = argv[1];
    std::string t = (fs::temp_directory_path() / "vfolder-corpus-XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) die("mkdtemp");
    index_corpus(out / "mmap_index", t);
    store_corpus(out / "mmap_store", t);
    fs::remove_all(t);
    return 0;
}

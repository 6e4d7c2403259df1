// Runs every file of the committed fuzz corpora through the fuzz targets' entry points,
// without libFuzzer (any compiler; a plain ctest). An oracle violation aborts.
//   fuzz_corpus_driver index|store <file-or-directory>...
#include "mmap_index_target.hpp"
#include "mmap_store_target.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s index|store <file-or-directory>...\n", argv[0]);
        return 2;
    }
    std::string_view const target = argv[1];
    int (*one)(std::uint8_t const*, std::size_t) = nullptr;
    if (target == "index") one = vfolder_fuzz::mmap_index_one;
    else if (target == "store") one = vfolder_fuzz::mmap_store_one;
    else {
        std::fprintf(stderr, "unknown target %s\n", argv[1]);
        return 2;
    }
    std::vector<std::filesystem::path> files;
    for (int i = 2; i < argc; ++i) {
        std::filesystem::path const p = argv[i];
        if (std::filesystem::is_directory(p)) {
            for (auto const& e : std::filesystem::recursive_directory_iterator(p))
                if (e.is_regular_file()) files.push_back(e.path());
        } else if (std::filesystem::is_regular_file(p)) {
            files.push_back(p);
        } else {
            std::fprintf(stderr, "no such file or directory: %s\n", argv[i]);
            return 2;
        }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::fprintf(stderr, "no corpus files\n");
        return 2;
    }
    std::size_t bytes = 0;
    for (auto const& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::vector<char> const data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::fprintf(stderr, "%s (%zu bytes)\n", f.c_str(), data.size());
        one(reinterpret_cast<std::uint8_t const*>(data.data()), data.size());
        bytes += data.size();
    }
    std::printf("%s: %zu corpus files, %zu bytes, no oracle violation\n", argv[1], files.size(), bytes);
    return 0;
}

// libFuzzer entry point: mmap_mailbox's index reader (see mmap_index_target.hpp).
//   build/fuzz/tests/fuzz/fuzz_mmap_index -dict=tests/fuzz/mmap_index.dict \
//       -max_total_time=600 corpus-work tests/fuzz/corpus/mmap_index
#include "mmap_index_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    return vfolder_fuzz::mmap_index_one(data, size);
}

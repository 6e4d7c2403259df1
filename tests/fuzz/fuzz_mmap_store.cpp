// libFuzzer entry point: mmap_store's checkpoint and log reader (see mmap_store_target.hpp).
#include "mmap_store_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    return vfolder_fuzz::mmap_store_one(data, size);
}

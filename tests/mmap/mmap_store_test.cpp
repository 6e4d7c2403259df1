// mmap_store: the on-disk view_store (adapters/mmap/mmap_store.hpp). Tests land with it.
#include <doctest/doctest.h>

// boost::container::vector, the default storage of the core containers.
#pragma once

// GCC 12 reports a false -Wstringop-overflow in boost::container::vector's reallocation
// path when it is inlined into a push_back on a vector it believes empty; the warning is
// attributed to the boost header, so it is silenced for that header only.
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#include <boost/container/vector.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

/// \file
/// \brief Configuration macros of vfolder: the precondition check.
///
/// `VFOLDER_ASSERT(cond, msg)` checks a caller precondition. By default it is active
/// unless `NDEBUG` is defined, and on failure prints the condition, the message and the
/// location to stderr and calls `std::abort()`. Define `VFOLDER_ASSERT` yourself before
/// including any vfolder header to route violations elsewhere (throw, log, count). Define
/// `VFOLDER_ENABLE_ASSERTS` to keep the default checks in release builds.
///
/// Release behaviour: every operation that checks a precondition also has a documented,
/// memory-safe fallback when the check is compiled out (typically "the call changes
/// nothing and returns 0"); see each function's "Precondition" line.
#pragma once

#include <vfolder/version.hpp>

#ifndef VFOLDER_ASSERT
#  if !defined(NDEBUG) || defined(VFOLDER_ENABLE_ASSERTS)
#    include <cstdio>
#    include <cstdlib>
VFOLDER_BEGIN_NAMESPACE
namespace detail {
[[noreturn]] inline void assertion_failed(char const* cond, char const* msg, char const* file,
                                          int line) noexcept {
    std::fprintf(stderr, "%s:%d: vfolder precondition failed: %s (%s)\n", file, line, msg,
                 cond);
    std::abort();
}
} // namespace detail
VFOLDER_END_NAMESPACE
#    define VFOLDER_ASSERT(cond, msg)                                                    \
        ((cond) ? static_cast<void>(0)                                                   \
                : ::vfolder::detail::assertion_failed(#cond, msg, __FILE__, __LINE__))
#  else
#    define VFOLDER_ASSERT(cond, msg) static_cast<void>(0)
#  endif
#endif

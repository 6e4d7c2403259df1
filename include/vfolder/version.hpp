/// \file
/// \brief Version macros and the versioned inline namespace of vfolder.
#pragma once

#define VFOLDER_VERSION_MAJOR 0
#define VFOLDER_VERSION_MINOR 1
#define VFOLDER_VERSION_PATCH 0
#define VFOLDER_VERSION                                                                  \
    (VFOLDER_VERSION_MAJOR * 10000 + VFOLDER_VERSION_MINOR * 100 + VFOLDER_VERSION_PATCH)

// Every public entity lives in vfolder::v0. Two copies of the library with different
// major versions in one program then cannot silently collide (ODR).
#define VFOLDER_BEGIN_NAMESPACE                                                          \
    namespace vfolder {                                                                  \
    inline namespace v0 {
#define VFOLDER_END_NAMESPACE                                                            \
    }                                                                                    \
    }

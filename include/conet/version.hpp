// conet/version.hpp - the library's version. This is the one place it is written:
// CMakeLists.txt reads CONET_VERSION_STRING from here for the CMake and pkg-config packages.
#pragma once

#define CONET_VERSION_STRING "0.1.0"

namespace conet {

/// The library's version, e.g. "0.1.0".
inline constexpr const char* version = CONET_VERSION_STRING;

} // namespace conet

// conet/version.hpp - the library's version (kept in step with CMakeLists.txt's project()).
#pragma once

#define CONET_VERSION_MAJOR 0
#define CONET_VERSION_MINOR 1
#define CONET_VERSION_PATCH 0
#define CONET_VERSION_STRING "0.1.0"

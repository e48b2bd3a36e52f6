// tests/catch.hpp - the one include shim between Catch2 3 and Debian's Catch2 2.
#pragma once

#if CONET_CATCH2_MAJOR >= 3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <iostream>

// Says that a test case is skipped (the machine lacks what it needs), in words ctest reads:
// tests/CMakeLists.txt marks a test whose output has "conet test skipped: " as skipped, not
// passed, with Catch2 2 too, which has no SKIP. The caller then returns (or co_returns).
#define CONET_REPORT_SKIP(message)                                                                 \
    do {                                                                                           \
        std::cout << "conet test skipped: " << message << std::endl;                               \
        WARN("skipped: " << message);                                                              \
    } while (false)

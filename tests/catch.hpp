// tests/catch.hpp - the one include shim between Catch2 3 and Debian's Catch2 2.
#pragma once

#if CONET_CATCH2_MAJOR >= 3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

// The test runner's main() for Catch2 2 (Catch2 3 brings its own through Catch2WithMain).
#define CATCH_CONFIG_MAIN
#include "catch.hpp"

// The second translation unit of the two-unit link test (see test_two_units_a.cpp).
#include <conet/conet.hpp>

int conet_test_unit_b_echo(int value) {
    // A reactor and a task built in this unit too, running on the caller's thread only when
    // no other reactor is running there: here it is called from inside one, so just parse.
    return value + static_cast<int>(conet::endpoint::parse("127.0.0.1:0").port());
}

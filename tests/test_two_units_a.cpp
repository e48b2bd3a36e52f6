// Two translation units include conet/conet.hpp and link into one binary: every function in
// the headers must be inline (no multiple definitions) and behave the same from both.
#include <conet/conet.hpp>

#include "catch.hpp"

int conet_test_unit_b_echo(int value); // defined in test_two_units_b.cpp

TEST_CASE("two translation units include conet.hpp and link together", "[headers]") {
    conet::reactor r;
    auto body = []() -> conet::task<int> { co_return conet_test_unit_b_echo(21) * 2; };
    CHECK(r.run(body()) == 42);
}

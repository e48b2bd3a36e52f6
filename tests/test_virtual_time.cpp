// Tests for the reactor's virtual clock (reactor(conet::clock_kind)): time stands still while
// coroutines run and jumps to the next deadline when only timers can make progress, so that
// timeouts of seconds are tested in milliseconds, in the same order every run; advance() by
// hand; and the timer heap's order for equal deadlines, on either clock.
#include <conet/conet.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using conet::steady_clock;

TEST_CASE("equal deadlines expire in the order they were set", "[time][virtual]") {
    conet::reactor r;
    watchdog guard(r);
    std::vector<int> order;
    const auto at = steady_clock::now() + 20ms;
    for (int i = 0; i < 20; ++i)
        r.spawn([](int id, steady_clock::time_point when, std::vector<int>& out) -> conet::task<> {
            co_await conet::sleep_until(when);
            out.push_back(id);
        }(i, at, order));
    r.run();
    std::vector<int> expected;
    for (int i = 0; i < 20; ++i)
        expected.push_back(i);
    CHECK(order == expected);
}

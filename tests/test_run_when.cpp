// reactor::run takes what when_all and when_any return, as it takes a task: a program's
// main() can run two coroutines side by side without writing a task to await them.
#include <conet/conet.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <variant>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

namespace {

conet::task<int> value_after(int value, std::chrono::milliseconds delay) {
    co_await conet::sleep_for(delay);
    co_return value;
}

conet::task<> nothing_after(std::chrono::milliseconds delay) {
    co_await conet::sleep_for(delay);
}

conet::task<std::string> fail_after(std::chrono::milliseconds delay) {
    co_await conet::sleep_for(delay);
    throw std::runtime_error("branch failed");
}

} // namespace

TEST_CASE("reactor::run runs when_all and yields its tuple", "[when][reactor]") {
    conet::reactor r;
    watchdog guard(r);
    auto [a, b, c] =
        r.run(conet::when_all(value_after(1, 20ms), nothing_after(10ms), value_after(3, 0ms)));
    CHECK(a == 1);
    static_assert(std::is_same_v<decltype(b), std::monostate>);
    CHECK(c == 3);
}

TEST_CASE("reactor::run runs when_any and yields its variant", "[when][reactor]") {
    conet::reactor r;
    watchdog guard(r);
    // The sleeper of an hour loses and is cancelled: run() returns at once with the winner.
    const auto result = r.run(conet::when_any(value_after(7, 1h), nothing_after(0ms)));
    static_assert(
        std::is_same_v<std::remove_const_t<decltype(result)>, std::variant<int, std::monostate>>);
    CHECK(result.index() == 1);
    // The same reactor runs the next one: the run left nothing behind.
    const auto second = r.run(conet::when_any(value_after(8, 0ms), value_after(9, 1h)));
    REQUIRE(second.index() == 0);
    CHECK(std::get<0>(second) == 8);
}

TEST_CASE("reactor::run rethrows the failure of when_all", "[when][reactor]") {
    conet::reactor r;
    watchdog guard(r);
    CHECK_THROWS_WITH(r.run(conet::when_all(fail_after(0ms), value_after(1, 1h))), "branch failed");
}

// Tests for conet/when.hpp: when_all and when_any with values, void and exceptions, the
// promise that losers are cancelled and awaited before the combinator returns, and
// reactor::run taking what they return as it takes a task.
#include <conet/conet.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
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

// Sleeps "forever"; records whether it was cancelled and finished its cleanup.
conet::task<int> sleeper(bool& cleaned_up) {
    try {
        co_await conet::sleep_for(1h);
    } catch (const std::system_error& e) {
        cleaned_up = e.code() == std::errc::operation_canceled;
        throw;
    }
    co_return -1;
}

} // namespace

TEST_CASE("when_all yields every result, void as monostate", "[when]") {
    auto body = []() -> conet::task<> {
        // Concurrent, not sequential, by order rather than by time (a duration bound fails on
        // a loaded machine): every branch has started before the first one ends.
        int started = 0;
        int started_when_first_ended = -1;
        auto branch = [](int value, std::chrono::milliseconds d, int& started,
                         int& seen) -> conet::task<int> {
            ++started;
            co_await conet::sleep_for(d);
            if (seen < 0) seen = started;
            co_return value;
        };
        auto [a, b, c] = co_await conet::when_all(
            branch(1, 30ms, started, started_when_first_ended), nothing_after(20ms),
            branch(3, 10ms, started, started_when_first_ended));
        CHECK(a == 1);
        CHECK(c == 3);
        CHECK(std::is_same_v<decltype(b), std::monostate>);
        CHECK(started_when_first_ended == 2);
        // Tasks that finish without waiting.
        auto [x, y] = co_await conet::when_all(value_after(4, 0ms), value_after(5, 0ms));
        CHECK(x + y == 9);
    };
    run_bounded(body());
}

TEST_CASE("when_all: the first exception wins after the others are cancelled", "[when]") {
    auto body = []() -> conet::task<> {
        // Two branches fail, in an order set by turns: the branches start in one turn in
        // argument order, and each yield resumes its branch in the next. The second argument
        // fails in the second turn; the first fails in the third, and also when the second's
        // failure cancels it: its yield ignores the cancellation (yield(ec)), so that it throws
        // its own exception after the other's, never operation_canceled.
        auto fails_later = [](bool& threw) -> conet::task<std::string> {
            std::error_code ignored;
            co_await conet::yield(ignored);
            co_await conet::yield(ignored);
            threw = true;
            throw std::runtime_error("second failure");
        };
        auto fails_first = []() -> conet::task<int> {
            co_await conet::yield();
            throw std::runtime_error("first failure");
        };
        bool later_threw = false;
        bool cleaned_up = false;
        std::string message;
        try {
            co_await conet::when_all(fails_later(later_threw), fails_first(), sleeper(cleaned_up));
        } catch (const std::runtime_error& e) {
            message = e.what();
        }
        CHECK(later_threw); // both failed
        CHECK(message == "first failure");
        CHECK(cleaned_up);
    };
    run_bounded(body());
}

TEST_CASE("when_any: the first to finish wins, the rest are cancelled and awaited", "[when]") {
    auto body = []() -> conet::task<> {
        bool cleaned_up = false;
        auto result = co_await conet::when_any(sleeper(cleaned_up), value_after(42, 5ms));
        CHECK(result.index() == 1);
        CHECK(std::get<1>(result) == 42);
        CHECK(cleaned_up);

        auto v = co_await conet::when_any(nothing_after(1ms), value_after(1, 1h));
        CHECK(v.index() == 0);

        bool second_cleaned_up = false;
        std::string message;
        try {
            co_await conet::when_any(fail_after(1ms), sleeper(second_cleaned_up));
        } catch (const std::runtime_error& e) {
            message = e.what();
        }
        CHECK(message == "branch failed");
        CHECK(second_cleaned_up);
    };
    run_bounded(body());
}

TEST_CASE("cancelling a task cancels the branches it awaits", "[when][cancel]") {
    conet::reactor r;
    bool a_cleaned = false;
    bool b_cleaned = false;
    bool parent_saw_cancel = false;
    auto handle = r.spawn([](bool& a, bool& b, bool& parent) -> conet::task<> {
        try {
            co_await conet::when_all(sleeper(a), sleeper(b));
        } catch (const std::system_error& e) {
            parent = e.code() == std::errc::operation_canceled;
        }
    }(a_cleaned, b_cleaned, parent_saw_cancel));
    r.post([&] { handle.cancel(); });
    watchdog guard(r);
    r.run();
    CHECK(a_cleaned);
    CHECK(b_cleaned);
    CHECK(parent_saw_cancel);
}

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

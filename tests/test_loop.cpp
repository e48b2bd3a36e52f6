// Tests for the loop surviving its users (design invariants 5 and 11): an exception leaving a
// posted function loses no event and no other posted function, a stale stop() does not
// cancel the next run, and destroying a reactor detaches the descriptors it does not own.
#include <conet/conet.hpp>

#include <fcntl.h>

#include <chrono>
#include <coroutine>
#include <exception>
#include <stdexcept>
#include <string>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

TEST_CASE("a throwing posted function loses no I/O event and no posted function", "[loop]") {
    conet::reactor r;
    stream_pair pair = run_bounded(r, connected_pair());
    char got = 0;
    auto reader = [](conet::tcp_stream& s, char& out) -> conet::task<> {
        char c;
        co_await s.recv({&c, 1});
        out = c;
    };
    bool behind_ran = false;
    auto trigger = [&]() -> conet::task<> {
        co_await conet::yield(); // the reader now waits for its byte
        // One turn's batch: the wake-up (with the throwing function), then the reader's event.
        r.post([] { throw std::runtime_error("posted failure"); });
        r.post([&behind_ran] { behind_ran = true; });
        co_await pair.client.send_all("x");
        co_await conet::sleep_for(20ms);
    };
    r.spawn(reader(pair.server, got));
    CHECK_THROWS_WITH(run_bounded(r, trigger()), "posted failure");
    // Run again: the byte's event and the function posted behind the throwing one survive.
    watchdog guard(r, 5s);
    r.run();
    CHECK(got == 'x');
    CHECK(behind_ran);
}

namespace {

// A coroutine type of the user's own, started at once and owned by nobody: the reactor
// does not count it as work, only its pending operation.
struct eager {
    struct promise_type {
        eager get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        void unhandled_exception() const noexcept { std::terminate(); }
    };
};

eager read_one(conet::tcp_stream& s, char& out) {
    char c;
    co_await s.recv({&c, 1});
    out = c;
}

} // namespace

TEST_CASE("run() again handles the rest of a batch a throwing posted function left", "[loop]") {
    conet::reactor r;
    stream_pair pair = run_bounded(r, connected_pair());
    char got = 0;
    run_bounded(r, [](conet::tcp_stream& s, char& out) -> conet::task<> {
        read_one(s, out);               // waits for its byte: no task of the reactor's
        co_await conet::sleep_for(1ms); // a turn of epoll: its socket's first edge is seen
    }(pair.server, got));
    auto trigger = [&]() -> conet::task<> {
        r.post([] { throw std::runtime_error("posted failure"); });
        co_await pair.client.send_all("x");
        co_await conet::sleep_for(20ms); // the wake-up and the byte come in one batch
    };
    CHECK_THROWS_WITH(run_bounded(r, trigger()), "posted failure");
    watchdog guard(r, 5s);
    r.run(); // nothing counts as work but the batch's unhandled event
    CHECK(got == 'x');
}

TEST_CASE("a stop() made while nothing runs does not cancel the next run", "[loop]") {
    conet::reactor r;
    r.stop();
    CHECK(run_bounded(r, []() -> conet::task<int> { co_return 7; }()) == 7);
}

TEST_CASE("destroying a reactor detaches a listener that outlives it", "[loop]") {
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    const auto where = listener.local_endpoint();
    {
        conet::reactor r;
        run_bounded(r, [](conet::tcp_listener& l) -> conet::task<> {
            std::error_code ec;
            co_await conet::with_timeout(l.accept(ec), 10ms); // registers l with r
            CHECK(ec == std::errc::timed_out);
        }(listener));
    }
    REQUIRE(listener.is_open());
    CHECK(::fcntl(listener.native_handle(), F_GETFD) >= 0);
    // Still a working listener, on a new reactor.
    conet::reactor again;
    run_bounded(again, [](conet::tcp_listener& l, conet::endpoint to) -> conet::task<> {
        auto client = co_await conet::tcp_stream::connect(to);
        auto [conn, peer] = co_await conet::with_timeout(l.accept(), 2s);
        CHECK(conn.is_open());
        (void)peer;
    }(listener, where));
}

TEST_CASE("awaiting an empty task is a clear error", "[loop]") {
    auto body = []() -> conet::task<> {
        conet::task<int> empty;
        CHECK_THROWS_AS(co_await empty, std::invalid_argument);
        conet::task<int> moved_from = []() -> conet::task<int> { co_return 1; }();
        auto taken = std::move(moved_from);
        CHECK_THROWS_AS(co_await moved_from, std::invalid_argument);
        const int value = co_await taken;
        CHECK(value == 1);
    };
    run_bounded(body());
}

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

namespace {

using conet::clock_kind;

// Whole milliseconds from `from` to `to`.
long long ms_between(steady_clock::time_point from, steady_clock::time_point to) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// The echo server the idle test drives: echoes what a client sends, and drops a client that
// sent nothing for 30 s (its recv's with_timeout).
conet::task<> echo_until_idle(conet::tcp_stream conn) {
    char buf[256];
    for (;;) {
        std::error_code ec;
        const std::size_t n = co_await conet::with_timeout(conn.recv(buf, ec), 30s);
        if (ec || n == 0) co_return; // timed out (or the peer left): the stream closes
        co_await conn.send_all(conet::const_buffer(buf, n));
    }
}

conet::task<> echo_server(conet::tcp_listener& listener, int clients) {
    conet::task_group connections;
    for (int i = 0; i < clients; ++i) {
        auto [conn, peer] = co_await listener.accept();
        connections.spawn(echo_until_idle(std::move(conn)));
    }
    co_await connections.join();
}

// Waits until the server closes the stream; yields when, since `start`, in milliseconds.
conet::task<long long> closed_after(conet::tcp_stream& s, steady_clock::time_point start) {
    char buf[16];
    while (co_await s.recv(buf) != 0) {
    }
    co_return ms_between(start, conet::now());
}

} // namespace

TEST_CASE("virtual time: an idle client is dropped after 30 s, tested in milliseconds",
          "[time][virtual]") {
    conet::reactor r(clock_kind::virtual_auto);
    watchdog guard(r);
    const auto wall_start = std::chrono::steady_clock::now();
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    auto clients = [](conet::endpoint to) -> conet::task<std::pair<long long, long long>> {
        const auto start = conet::now();
        // One client talks at 0 s and 20 s, then is silent; the other never says a word.
        auto a = co_await conet::tcp_stream::connect(to);
        auto b = co_await conet::tcp_stream::connect(to);
        char reply[8];
        co_await a.send_all("hi");
        co_await a.recv_exact(conet::mutable_buffer(reply, 2)); // (throws if it ends first)
        co_await conet::sleep_for(20s);
        co_await a.send_all("hi");
        co_await a.recv_exact(conet::mutable_buffer(reply, 2));
        auto [x, y] = co_await conet::when_all(closed_after(a, start), closed_after(b, start));
        co_return std::pair{x, y};
    };
    auto [served, times] =
        r.run(conet::when_all(echo_server(listener, 2), clients(listener.local_endpoint())));
    (void)served;
    const auto [chatty, silent] = times;
    const auto wall = std::chrono::steady_clock::now() - wall_start;
    CHECK(chatty == 50'000); // 30 s after its last message, at 20 s
    CHECK(silent == 30'000);
    CHECK(wall < 1500ms); // (a generous bound: it takes a few milliseconds)
}

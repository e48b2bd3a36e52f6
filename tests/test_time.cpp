// Tests for conet/time.hpp and cancellation: sleep ordering and resolution, many sleepers,
// timeouts on socket operations (including a timeout racing a ready read), task timeouts,
// cancelling tasks blocked in accept/recv/sleep, and destruction with timers pending.
#include <conet/conet.hpp>

#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using conet::steady_clock;

namespace {

// Milliseconds elapsed since `start`.
long long ms_since(steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - start)
        .count();
}

} // namespace

TEST_CASE("sleepers wake in deadline order, never early", "[time]") {
    conet::reactor r;
    std::vector<int> order;
    const auto start = steady_clock::now();
    std::vector<long long> woke_after(3);
    for (int ms : {30, 10, 20}) {
        r.spawn([](int delay, std::vector<int>& out, std::vector<long long>& when,
                   steady_clock::time_point t0) -> conet::task<> {
            co_await conet::sleep_for(std::chrono::milliseconds(delay));
            when[static_cast<std::size_t>(delay / 10 - 1)] = ms_since(t0);
            out.push_back(delay);
        }(ms, order, woke_after, start));
    }
    watchdog guard(r);
    r.run();
    CHECK(order == std::vector<int>{10, 20, 30});
    for (std::size_t i = 0; i < 3; ++i) {
        INFO("sleeper " << (i + 1) * 10 << " ms woke after " << woke_after[i] << " ms");
        CHECK(woke_after[i] >= static_cast<long long>((i + 1) * 10));
        CHECK(woke_after[i] < static_cast<long long>((i + 1) * 10 + 500)); // generous: CI load
    }
}

TEST_CASE("sleep_until a past deadline does not wait, and sleeping outside a reactor is an error",
          "[time]") {
    auto body = []() -> conet::task<> { co_await conet::sleep_until(steady_clock::now()); };
    run_bounded(body());
    std::error_code ec;
    auto op = conet::sleep_for(std::chrono::seconds(1), ec);
    REQUIRE_FALSE(op.await_ready());
    CHECK_FALSE(op.await_suspend(std::noop_coroutine()));
    op.await_resume();
    CHECK(ec == conet::error::no_reactor);
}

TEST_CASE("ten thousand concurrent sleepers all wake, each after its own delay", "[time]") {
    conet::reactor r;
    int woke = 0;
    int early = 0;
    std::mt19937 random(12345);
    std::uniform_int_distribution<int> delay_ms(1, 50);
    for (int i = 0; i < 10'000; ++i) {
        r.spawn([](int delay, int& count, int& too_early) -> conet::task<> {
            const auto start = steady_clock::now();
            co_await conet::sleep_for(std::chrono::milliseconds(delay));
            if (steady_clock::now() - start < std::chrono::milliseconds(delay)) ++too_early;
            ++count;
        }(delay_ms(random), woke, early));
    }
    watchdog guard(r, 20s);
    r.run();
    CHECK(woke == 10'000);
    CHECK(early == 0);
}

TEST_CASE("a timeout fires on a silent peer and the socket stays usable", "[time]") {
    auto body = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        char buf[16];
        const auto start = steady_clock::now();
        std::string message;
        try {
            co_await conet::with_timeout(server.recv(buf), std::chrono::milliseconds(50));
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::timed_out);
            message = e.what();
        }
        CHECK(message == "recv: Connection timed out");
        CHECK(ms_since(start) >= 50);

        // Non-throwing form.
        std::error_code ec;
        const auto n0 =
            co_await conet::with_timeout(server.recv(buf, ec), std::chrono::milliseconds(10));
        CHECK(ec == std::errc::timed_out);
        CHECK(n0 == 0);

        // Still usable: data sent now is received, with a timeout that does not fire.
        co_await client.send_all("still here");
        const auto n = co_await conet::with_timeout(server.recv(buf), std::chrono::seconds(5));
        CHECK(std::string(buf, n) == "still here");
    };
    run_bounded(body());
}

TEST_CASE("a timeout racing a ready read resumes exactly once, and loses no data", "[time]") {
    auto body = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        int resumes = 0;
        std::error_code seen;
        std::size_t got = 0;
        char buf[16];
        conet::reactor::current()->spawn([](conet::tcp_stream& s, char* b, int& count,
                                            std::error_code& ec, std::size_t& n) -> conet::task<> {
            n = co_await conet::with_timeout(s.recv({b, 16}, ec), std::chrono::milliseconds(5));
            ++count;
        }(server, buf, resumes, seen, got));
        co_await conet::yield(); // the reader waits, its 5 ms deadline armed
        // Send the data, then hold the reactor's thread past the deadline: the next turn finds
        // the readable socket and the expired timer in the same batch.
        co_await client.send_all("x");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        for (int i = 0; i < 5; ++i)
            co_await conet::yield();
        co_await conet::sleep_for(std::chrono::milliseconds(20)); // a late second resume would show
        CHECK(resumes == 1);
        if (seen) {
            // The deadline won: the byte must still be there for the next read.
            CHECK(seen == std::errc::timed_out);
            const auto n = co_await conet::with_timeout(server.recv(buf), std::chrono::seconds(5));
            CHECK(n == 1);
        } else {
            CHECK(got == 1);
        }
        CHECK(buf[0] == 'x');
    };
    for (int round = 0; round < 5; ++round)
        run_bounded(body());
}

TEST_CASE("send_all with a timeout reports what went out when the peer stops reading", "[time]") {
    auto body = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        std::vector<char> big(64u << 20, 'b'); // far more than the socket buffers hold
        std::error_code ec;
        const auto sent =
            co_await conet::with_timeout(client.send_all(big, ec), std::chrono::milliseconds(100));
        CHECK(ec == std::errc::timed_out);
        CHECK(sent > 0);
        CHECK(sent < big.size());
    };
    // Virtual time: the 100 ms pass as soon as the socket buffers are full (the peer is on
    // this reactor, so nothing else can make progress), without waiting for them.
    conet::reactor r(conet::clock_kind::virtual_auto);
    run_bounded(r, body());
}

TEST_CASE("with_timeout on a task: the result when in time, timed_out otherwise", "[time]") {
    auto quick = []() -> conet::task<int> {
        co_await conet::sleep_for(std::chrono::milliseconds(1));
        co_return 7;
    };
    bool slow_cleaned_up = false;
    auto slow = [](bool& cleaned) -> conet::task<int> {
        try {
            co_await conet::sleep_for(std::chrono::hours(1));
        } catch (const std::system_error& e) {
            cleaned = e.code() == std::errc::operation_canceled;
            throw;
        }
        co_return 0;
    };
    auto body = [&]() -> conet::task<> {
        const int v = co_await conet::with_timeout(quick(), std::chrono::seconds(5));
        CHECK(v == 7);
        std::string message;
        try {
            co_await conet::with_timeout(slow(slow_cleaned_up), std::chrono::milliseconds(20));
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::timed_out);
            message = e.what();
        }
        CHECK(message == "with_timeout: Connection timed out");
        CHECK(slow_cleaned_up); // cancelled and awaited before with_timeout returned
    };
    run_bounded(body());
}

TEST_CASE("cancelling a task blocked in accept, recv or sleep", "[time][cancel]") {
    auto body = []() -> conet::task<> {
        auto* r = conet::reactor::current();
        auto listener = conet::tcp_listener::bind(any_loopback_port());
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        std::vector<std::string> outcomes;
        auto record = [](std::vector<std::string>& out, auto op) -> conet::task<> {
            try {
                co_await op();
                out.push_back("finished");
            } catch (const std::system_error& e) {
                out.push_back(e.what());
            }
        };
        auto in_accept =
            r->spawn(record(outcomes, [&]() -> conet::task<> { co_await listener.accept(); }));
        auto in_recv = r->spawn(record(outcomes, [&]() -> conet::task<> {
            char b;
            co_await server.recv({&b, 1});
        }));
        auto in_sleep = r->spawn(record(
            outcomes, []() -> conet::task<> { co_await conet::sleep_for(std::chrono::hours(1)); }));
        co_await conet::yield(); // all three are now waiting
        CHECK_FALSE(in_accept.done());
        in_accept.cancel();
        in_recv.cancel();
        in_sleep.cancel();
        co_await conet::yield();
        co_await conet::yield();
        CHECK(in_accept.done());
        CHECK(in_recv.done());
        CHECK(in_sleep.done());
        CHECK(outcomes == std::vector<std::string>{"accept: Operation canceled",
                                                   "recv: Operation canceled",
                                                   "sleep: Operation canceled"});
        // The sockets are still fine for others.
        co_await client.send_all("ok");
        char b[2];
        co_await server.recv_exact(b);
        CHECK(std::string(b, 2) == "ok");
        in_recv.cancel(); // harmless once finished
    };
    run_bounded(body());
}

TEST_CASE("a cancelled task cannot start a new wait", "[time][cancel]") {
    conet::reactor r;
    int waits_failed = 0;
    auto handle = r.spawn([](int& failed) -> conet::task<> {
        for (int i = 0; i < 3; ++i) {
            std::error_code ec;
            co_await conet::sleep_for(std::chrono::hours(1), ec);
            if (ec == std::errc::operation_canceled) ++failed;
        }
    }(waits_failed));
    r.post([&] { handle.cancel(); });
    watchdog guard(r);
    r.run();
    CHECK(waits_failed == 3);
    CHECK(handle.done());
}

TEST_CASE("destroying the reactor with timers pending frees everything", "[time]") {
    int destroyed = 0;
    struct count_on_destroy {
        int* count;
        ~count_on_destroy() { ++*count; }
    };
    {
        conet::reactor r;
        for (int i = 0; i < 100; ++i)
            r.spawn([](int* count, int i) -> conet::task<> {
                count_on_destroy guard{count};
                auto owned = std::make_unique<int>(i); // LSan reports it if a frame leaks
                co_await conet::sleep_for(std::chrono::hours(1) + std::chrono::milliseconds(i));
            }(&destroyed, i));
        r.post([&r] { r.stop(); });
        watchdog guard(r);
        r.run();
        CHECK(destroyed == 0);
    }
    CHECK(destroyed == 100);
}

TEST_CASE("a NaN duration sleeps no time, without undefined behaviour", "[time]") {
    const auto d = conet::detail::bounded_duration(std::chrono::duration<double>(std::nan("")));
    CHECK(d.count() == 0);
}

namespace {
conet::task<> long_sleep() {
    co_await conet::sleep_for(std::chrono::hours(1));
}
conet::task<> await_it(conet::task<>& t) {
    co_await t;
}
} // namespace

TEST_CASE("a sleeping task that outlives the task that awaited it can be destroyed", "[time]") {
    conet::task<> inner = long_sleep(); // owned here
    {
        conet::reactor r;
        // Stopped from the reactor's own thread while the run is in progress (a stop from
        // another thread made before run() starts would be dropped, and the run would hang).
        r.spawn([](conet::reactor& r) -> conet::task<> {
            co_await conet::sleep_for(20ms);
            r.stop();
        }(r));
        watchdog guard(r, 5s);
        CHECK_THROWS(r.run(await_it(inner))); // the awaiting frame (and its chain) goes
    }
    // inner's sleep still names the destroyed chain: destroying it must not touch it (ASan).
    inner = conet::task<>();
    CHECK(!inner.valid());
}

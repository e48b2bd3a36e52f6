// Tests for the reactor's virtual clock (reactor(conet::clock_kind)): time stands still while
// coroutines run and jumps to the next deadline when only timers can make progress, so that
// timeouts of seconds are tested in milliseconds, in the same order every run; advance() by
// hand; and the timer heap's order for equal deadlines, on either clock.
#include <conet/channel.hpp>
#include <conet/conet.hpp>
#include <conet/virtual_time.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <tuple>
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

TEST_CASE("virtual time: a backoff of 10 retries, checked to the millisecond", "[time][virtual]") {
    conet::reactor r(clock_kind::virtual_auto);
    watchdog guard(r);
    refused_port nobody; // every connect is refused: a real failure, reported by epoll
    const auto wall_start = std::chrono::steady_clock::now();
    const auto tries = r.run([](conet::endpoint to) -> conet::task<std::vector<long long>> {
        const auto start = conet::now();
        std::vector<long long> at;
        auto delay = 1s;
        for (int attempt = 0; attempt < 10; ++attempt) {
            std::error_code ec;
            co_await conet::tcp_stream::connect(to, ec);
            at.push_back(ms_between(start, conet::now()));
            if (!ec) break;
            co_await conet::sleep_for(delay);
            delay *= 2;
        }
        at.push_back(ms_between(start, conet::now()));
        co_return at;
    }(nobody.endpoint()));
    // Tries at 0, 1, 3, 7, ... s: each after the sum of the delays before it (2^k - 1 s), and
    // the loop ends 1023 s in, after its tenth delay.
    std::vector<long long> expected;
    for (int k = 0; k < 10; ++k)
        expected.push_back(((1LL << k) - 1) * 1000);
    expected.push_back(1023 * 1000);
    CHECK(tries == expected);
    CHECK(std::chrono::steady_clock::now() - wall_start < 1500ms);
}

TEST_CASE("virtual time: with_timeout races real loopback data", "[time][virtual]") {
    conet::reactor r(clock_kind::virtual_auto);
    watchdog guard(r);
    struct outcome {
        std::string got;
        long long at_ms;
        bool timed_out;
    };
    // The writer sends after `send_after`; the reader waits at most 5 s for it.
    auto race = [](std::chrono::milliseconds send_after) -> conet::task<outcome> {
        auto [client, server] = co_await connected_pair();
        const auto start = conet::now();
        auto writer = [](conet::tcp_stream& s, std::chrono::milliseconds after) -> conet::task<> {
            co_await conet::sleep_for(after);
            co_await s.send_all("data");
        };
        auto reader = [](conet::tcp_stream& s,
                         steady_clock::time_point t0) -> conet::task<outcome> {
            char buf[16];
            std::error_code ec;
            const std::size_t n = co_await conet::with_timeout(s.recv(buf, ec), 5s);
            outcome o{std::string(buf, ec ? 0 : n), ms_between(t0, conet::now()),
                      ec == std::errc::timed_out};
            if (o.timed_out) { // the data still comes, when it was sent
                const std::size_t m = co_await s.recv(buf);
                o.got.assign(buf, m);
                o.at_ms = ms_between(t0, conet::now());
            }
            co_return o;
        };
        auto [w, o] = co_await conet::when_all(writer(client, send_after), reader(server, start));
        (void)w;
        co_return o;
    };
    auto early = r.run(race(4999ms));
    CHECK_FALSE(early.timed_out);
    CHECK(early.got == "data");
    CHECK(early.at_ms == 4999);
    auto late = r.run(race(5001ms));
    CHECK(late.timed_out);
    CHECK(late.got == "data");
    CHECK(late.at_ms == 5001);
    // Equal deadlines expire together, before any of their coroutines resumes: the timeout
    // ends the recv even though the writer's sleep, set first, resumes first and sends.
    auto tie = r.run(race(5000ms));
    CHECK(tie.timed_out);
    CHECK(tie.at_ms == 5000);
}

TEST_CASE("virtual time: advance by hand runs what falls due, in deadline order",
          "[time][virtual]") {
    conet::reactor r(clock_kind::virtual_manual);
    watchdog guard(r);
    const auto t0 = r.now();
    std::vector<std::string> log;
    auto sleeper = [](std::string name, std::chrono::milliseconds d,
                      std::vector<std::string>& out) -> conet::task<> {
        const auto from = conet::now();
        co_await conet::sleep_for(d);
        out.push_back(name + "@" + std::to_string(ms_between(from, conet::now())));
    };
    r.spawn(sleeper("c", 2000ms, log));
    r.spawn(sleeper("a", 1000ms, log));
    r.spawn(sleeper("d", 2000ms, log)); // same deadline as c, set after it
    r.spawn(sleeper("e", 3000ms, log));
    // One that re-arms inside the window: resumed at 1 s, due again at 1.5 s.
    r.spawn([](std::vector<std::string>& out) -> conet::task<> {
        co_await conet::sleep_for(1s);
        co_await conet::sleep_for(500ms);
        out.push_back("b@" + std::to_string(ms_between(conet::now() - 1500ms, conet::now())));
    }(log));
    CHECK(r.advance(2s) == t0 + 2s);
    CHECK(log == std::vector<std::string>{"a@1000", "b@1500", "c@2000", "d@2000"});
    CHECK(r.now() == t0 + 2s);
    r.advance(500ms); // nothing falls due: the clock moves all the same
    CHECK(r.now() == t0 + 2500ms);
    CHECK(log.size() == 4);
    r.advance(1s);
    CHECK(log.back() == "e@3000");
    CHECK(r.now() == t0 + 3500ms);
    r.run(); // nothing left

    // From a coroutine: the awaitable form waits until the clock has got there.
    const auto t1 = r.now();
    r.spawn(sleeper("f", 10s, log));
    const auto seen = r.run([]() -> conet::task<long long> {
        const auto from = conet::now();
        co_await conet::advance(15s);
        co_return ms_between(from, conet::now());
    }());
    CHECK(seen == 15'000);
    CHECK(log.back() == "f@10000");
    CHECK(r.now() == t1 + 15s);

    conet::reactor real;
    CHECK_THROWS_AS(real.advance(1s), std::logic_error);
}

TEST_CASE("virtual time: manual time does not move by itself", "[time][virtual]") {
    conet::reactor r(clock_kind::virtual_manual);
    watchdog guard(r, 300ms); // a sleep nobody advances to never ends: the watchdog stops it
    const auto t0 = r.now();
    CHECK_THROWS_AS(r.run([]() -> conet::task<> { co_await conet::sleep_for(1s); }()),
                    std::system_error);
    CHECK(r.now() == t0);
}

namespace {

// A small program whose order the determinism test records: three clients send to an echo
// server after pseudo-random pauses (fixed seed), one of them too late for the server's
// 3 s timeout, and every resumption that matters notes the time and who it was.
conet::task<> recorded_program(std::vector<std::string>& log) {
    const auto start = conet::now();
    auto note = [&log, start](const std::string& what) {
        log.push_back(std::to_string(ms_between(start, conet::now())) + " " + what);
    };
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    auto serve = [](conet::tcp_listener& l, auto& note) -> conet::task<> {
        conet::task_group conns;
        for (int i = 0; i < 3; ++i) {
            auto [conn, peer] = co_await l.accept();
            conns.spawn([](conet::tcp_stream c, int id, auto& note) -> conet::task<> {
                char buf[64];
                for (;;) {
                    std::error_code ec;
                    const std::size_t n = co_await conet::with_timeout(c.recv(buf, ec), 3s);
                    if (ec || n == 0) {
                        note("server " + std::to_string(id) + (ec ? " times out" : " sees end"));
                        co_return;
                    }
                    note("server " + std::to_string(id) + " got " + std::string(buf, n));
                    co_await c.send_all(conet::const_buffer(buf, n));
                }
            }(std::move(conn), i, note));
        }
        co_await conns.join();
    };
    auto client = [](conet::endpoint to, int id, std::vector<int> pauses_ms,
                     auto& note) -> conet::task<> {
        auto s = co_await conet::tcp_stream::connect(to);
        char buf[64];
        for (int p : pauses_ms) {
            co_await conet::sleep_for(std::chrono::milliseconds(p));
            const std::string msg = std::to_string(id) + ":" + std::to_string(p);
            co_await s.send_all(msg);
            std::error_code ec;
            const std::size_t n = co_await s.recv(buf, ec);
            note("client " + std::to_string(id) +
                 (n ? " echoed " + std::string(buf, n) : " ended"));
            if (n == 0) co_return;
        }
    };
    std::minstd_rand random(29);
    std::vector<std::vector<int>> pauses(3);
    for (auto& p : pauses)
        for (int k = 0; k < 4; ++k)
            p.push_back(static_cast<int>(random() % 2500));
    pauses[2].push_back(4000); // past the server's timeout: client 2 is dropped
    auto [a, b, c, d] = co_await conet::when_all(
        serve(listener, note), client(listener.local_endpoint(), 0, pauses[0], note),
        client(listener.local_endpoint(), 1, pauses[1], note),
        client(listener.local_endpoint(), 2, pauses[2], note));
    (void)a, (void)b, (void)c, (void)d;
}

std::vector<std::string> record_run() {
    conet::reactor r(clock_kind::virtual_auto);
    watchdog guard(r);
    std::vector<std::string> log;
    r.run(recorded_program(log));
    return log;
}

} // namespace

TEST_CASE("virtual time: two runs resume coroutines in the same order", "[time][virtual]") {
    const auto first = record_run();
    const auto second = record_run();
    REQUIRE(first.size() > 20);
    CHECK(first == second);
    // The late client is dropped by the server's timeout, 3 s after its last message.
    CHECK(std::count_if(first.begin(), first.end(), [](const std::string& line) {
              return line.find("times out") != std::string::npos;
          }) == 1);
    INFO(first.front() + " ... " + first.back());
    CHECK(first.back().find(" ended") != std::string::npos);
}

TEST_CASE("virtual time: when_any, when_all, task timeouts, channels, task groups",
          "[time][virtual]") {
    conet::reactor r(clock_kind::virtual_auto);
    watchdog guard(r);
    auto sleeps = [](std::chrono::milliseconds d) -> conet::task<long long> {
        const auto from = conet::now();
        co_await conet::sleep_for(d);
        co_return ms_between(from, conet::now());
    };
    const auto t0 = r.now();
    auto first = r.run(conet::when_any(sleeps(5s), sleeps(2s)));
    CHECK(first.index() == 1);
    CHECK(r.now() - t0 == 2s);
    auto all = r.run(conet::when_all(sleeps(1s), sleeps(3s)));
    CHECK(all == std::tuple<long long, long long>{1000, 3000});
    CHECK(r.now() - t0 == 5s);

    // A task bounded by with_timeout is cancelled at exactly its limit.
    const auto t1 = r.now();
    CHECK_THROWS_AS(r.run(conet::with_timeout(sleeps(1h), 10s)), std::system_error);
    CHECK(r.now() - t1 == 10s);

    // A producer sending every second, a consumer noting when each value came.
    const auto got = r.run([]() -> conet::task<std::vector<long long>> {
        conet::channel<int> values(1);
        const auto from = conet::now();
        conet::task_group producers;
        producers.spawn([](conet::channel<int>& ch) -> conet::task<> {
            for (int i = 0; i < 3; ++i) {
                co_await conet::sleep_for(1s);
                co_await ch.send(i);
            }
            ch.close();
        }(values));
        std::vector<long long> at;
        while (auto v = co_await values.recv())
            at.push_back(ms_between(from, conet::now()) + *v);
        co_await producers.join();
        co_return at;
    }());
    CHECK(got == std::vector<long long>{1000, 2001, 3002});
}

TEST_CASE("virtual time: a work guard keeps the clock still for another thread's data",
          "[time][virtual]") {
    conet::reactor r(clock_kind::virtual_auto);
    watchdog guard(r);
    const auto [got, elapsed] =
        r.run([](conet::reactor& loop) -> conet::task<std::pair<std::string, long long>> {
            auto [client, server] = co_await connected_pair();
            const auto from = conet::now();
            // The peer thread sends 50 ms (real) later. Without the guard the loop would find
            // nothing to do, jump 1 s and time the recv out.
            std::thread peer(
                [fd = client.native_handle(), g = conet::reactor::work_guard(loop)]() mutable {
                    std::this_thread::sleep_for(50ms);
                    const ssize_t sent = ::send(fd, "late", 4, MSG_NOSIGNAL);
                    (void)sent;
                    g.reset(); // done: the clock may move again
                });
            char buf[16];
            std::error_code ec;
            const std::size_t n = co_await conet::with_timeout(server.recv(buf, ec), 1s);
            peer.join();
            co_return std::pair{std::string(buf, ec ? 0 : n), ms_between(from, conet::now())};
        }(r));
    CHECK(got == "late");
    CHECK(elapsed == 0);
}

TEST_CASE("virtual time: the clock stands still while coroutines are ready, after an idle poll "
          "that found the last deadline's data",
          "[time][virtual]") {
    // B's recv, bounded by the only deadline, gets its data in a poll made because nothing
    // else could happen; the deadline goes with the recv. Later, coroutines that are always
    // ready share the loop with a 5 s sleep: the clock must not move while they run.
    conet::reactor r(conet::clock_kind::virtual_auto);
    std::vector<long long> moved; // ms the clock moved at each of B's turns
    auto b_side = [](conet::tcp_stream& s, std::vector<long long>& moved) -> conet::task<> {
        std::array<char, 16> buf{};
        co_await conet::with_timeout(s.recv(buf), 10s);
        co_await conet::yield();
        const auto start = conet::now();
        conet::task_group sleepers;
        sleepers.spawn([]() -> conet::task<> { co_await conet::sleep_for(5s); }());
        for (int i = 0; i < 5; ++i) {
            co_await conet::yield(); // always ready: time must stand still
            moved.push_back((conet::now() - start) / 1ms);
        }
        sleepers.cancel();
        co_await sleepers.join();
    };
    auto body = [&]() -> conet::task<> {
        auto pair = co_await connected_pair();
        co_await conet::when_all(
            b_side(pair.server, moved),
            [](conet::tcp_stream& c) -> conet::task<> { co_await c.send_all("x"); }(pair.client));
    };
    run_bounded(r, body(), 5s);
    CHECK(moved == std::vector<long long>(5, 0));
}

TEST_CASE("virtual time: deadlines at the end of time saturate instead of overflowing",
          "[time][virtual]") {
    // The virtual clock reaches any deadline, time_point::max() too; counting on from there
    // overflowed (UBSan: signed overflow in sleep_for, with_timeout and advance).
    conet::reactor r(conet::clock_kind::virtual_auto);
    auto body = []() -> conet::task<> {
        co_await conet::sleep_until(steady_clock::time_point::max());
        CHECK(conet::now() == steady_clock::time_point::max());
        co_await conet::sleep_for(std::chrono::hours::max());
        co_await conet::sleep_for(1s);
        auto pair = co_await connected_pair();
        std::array<char, 4> buf{};
        std::error_code ec;
        co_await conet::with_timeout(pair.server.recv(buf, ec), 1s);
        CHECK(ec == std::errc::timed_out);
        CHECK(conet::now() == steady_clock::time_point::max());
    };
    run_bounded(r, body(), 5s);
    CHECK(r.advance(std::chrono::nanoseconds::max()) == steady_clock::time_point::max());
}

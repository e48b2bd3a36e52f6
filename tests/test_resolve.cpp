// Tests for conet/resolve.hpp: lookups on a helper thread that never block the reactor, their
// cancellation (the helper's late answer must touch nothing that has gone), and connecting by
// name. Every lookup stays on this machine: localhost, numeric addresses, names under
// "invalid" (RFC 6761), which conet fails without asking anyone.
#include <conet/conet.hpp>

#include <chrono>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using conet::endpoint;
using conet_test::run_bounded;

namespace {

// Waits (bounded) until every helper thread has finished, so that none outlives its test
// (the descriptor check would see its files, and a crash would be blamed on the next test).
bool helpers_finished(std::chrono::milliseconds limit = 10s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (conet::detail::resolve_helpers_running.load() != 0) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Makes every helper wait `ms` before its lookup, for as long as it lives.
struct slow_lookups {
    explicit slow_lookups(int ms) { conet::detail::resolve_test_delay_ms.store(ms); }
    ~slow_lookups() { conet::detail::resolve_test_delay_ms.store(0); }
    slow_lookups(const slow_lookups&) = delete;
    slow_lookups& operator=(const slow_lookups&) = delete;
};

} // namespace

TEST_CASE("async_resolve finds localhost and numeric addresses", "[resolve]") {
    auto found = run_bounded([]() -> conet::task<std::vector<endpoint>> {
        co_return co_await conet::async_resolve("localhost", "8888");
    }());
    REQUIRE_FALSE(found.empty());
    for (const auto& e : found) {
        CHECK(e.port() == 8888);
        CHECK(e.address().is_loopback());
    }
    found = run_bounded([]() -> conet::task<std::vector<endpoint>> {
        co_return co_await conet::async_resolve("127.0.0.1", "http", conet::resolve_family::v4);
    }());
    REQUIRE(found.size() == 1);
    CHECK(found.front() == endpoint::parse("127.0.0.1:80"));
    CHECK(helpers_finished());
}

TEST_CASE("async_resolve reports failures like resolve", "[resolve]") {
    CHECK_THROWS_WITH(run_bounded(conet::async_resolve("nothing.invalid", "80")),
                      "resolve nothing.invalid: Name or service not known");
    CHECK_THROWS_WITH(run_bounded(conet::async_resolve("localhost", "no-such-service")),
                      "resolve localhost: service \"no-such-service\": Unknown service name");
    std::error_code ec;
    auto found = run_bounded(
        conet::async_resolve("::1", "80", conet::resolve_family::v4, ec)); // no IPv4 for ::1
    CHECK(found.empty());
    CHECK(ec);
    found = run_bounded(conet::async_resolve("localhost", "80", conet::resolve_family::any, ec));
    CHECK_FALSE(ec);
    CHECK_FALSE(found.empty());
    CHECK(helpers_finished());
}

TEST_CASE("the reactor runs other coroutines while a lookup waits", "[resolve]") {
    slow_lookups slow(100);
    int ticks = 0;
    auto ticker = [](int& n) -> conet::task<> {
        for (;;) {
            co_await conet::sleep_for(5ms);
            ++n;
        }
    };
    auto lookup = [](conet::task<> t) -> conet::task<std::vector<endpoint>> {
        auto result =
            co_await conet::when_any(conet::async_resolve("localhost", "80"), std::move(t));
        co_return std::get<0>(std::move(result));
    };
    const auto found = run_bounded(lookup(ticker(ticks)));
    CHECK_FALSE(found.empty());
    CHECK(ticks >= 5); // the loop went on for the lookup's 100 ms
    CHECK(helpers_finished());
}

TEST_CASE("a cancelled lookup ends at once, and the helper's late answer is dropped", "[resolve]") {
    slow_lookups slow(500);
    SECTION("with_timeout of 1 ms") {
        const auto start = std::chrono::steady_clock::now();
        CHECK_THROWS_WITH(
            run_bounded(conet::with_timeout(conet::async_resolve("localhost", "80"), 1ms)),
            Catch::Contains("timed out"));
        CHECK(std::chrono::steady_clock::now() - start < 400ms);   // did not wait for the helper
        CHECK(conet::detail::resolve_helpers_running.load() == 1); // still looking up
    }
    SECTION("with_timeout of 0") {
        CHECK_THROWS_WITH(
            run_bounded(conet::with_timeout(conet::async_resolve("localhost", "80"), 0ms)),
            Catch::Contains("timed out"));
    }
    SECTION("cancelled through its handle, non-throwing form") {
        std::error_code ec = conet::error::closed;
        conet::reactor r;
        auto lookup = [](std::error_code& out) -> conet::task<> {
            co_await conet::async_resolve("localhost", "80", conet::resolve_family::any, out);
        };
        auto handle = r.spawn(lookup(ec));
        run_bounded(r, [](conet::task_handle h) -> conet::task<> {
            co_await conet::sleep_for(10ms);
            h.cancel();
            co_await conet::yield();
        }(handle));
        CHECK(handle.done());
        CHECK(ec == std::errc::operation_canceled);
    }
    SECTION("cancelled between two runs of the reactor") {
        conet::reactor r;
        auto handle = r.spawn(conet::async_resolve("localhost", "80"));
        run_bounded(r, []() -> conet::task<> { co_await conet::sleep_for(10ms); }());
        handle.cancel(); // no run in progress: the lookup's end waits for the next
        CHECK_FALSE(handle.done());
        run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
        CHECK(handle.done());
    }
    SECTION("a task cancelled before it awaits starts no helper") {
        conet::reactor r;
        bool reached = false;
        auto lookup = [](bool& flag) -> conet::task<> {
            flag = true;
            co_await conet::async_resolve("localhost", "80");
        };
        auto handle = r.spawn(lookup(reached));
        handle.cancel();
        run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
        CHECK(conet::detail::resolve_helpers_running.load() == 0);
    }
    SECTION("the reactor is destroyed while the lookup runs") {
        {
            conet::reactor r;
            r.spawn(conet::async_resolve("localhost", "80"));
            run_bounded(r, []() -> conet::task<> { co_await conet::sleep_for(10ms); }());
            CHECK(conet::detail::resolve_helpers_running.load() == 1);
        } // the frame awaiting the lookup goes with the reactor
    }
    // The helpers finish after their awaiters, frames and reactors have gone: under ASan and
    // TSan this is where a helper touching any of them would be caught.
    CHECK(helpers_finished());
}

TEST_CASE("many lookups at once, some cancelled, some answered", "[resolve]") {
    slow_lookups slow(20);
    auto some = []() -> conet::task<int> {
        conet::task_group group;
        int answered = 0;
        auto one = [](int& n) -> conet::task<> {
            std::error_code ec;
            auto found =
                co_await conet::async_resolve("localhost", "80", conet::resolve_family::any, ec);
            if (!ec && !found.empty()) ++n;
        };
        auto cancelled = []() -> conet::task<> {
            co_await conet::with_timeout(conet::async_resolve("localhost", "80"), 1ms);
        };
        for (int i = 0; i < 8; ++i) {
            group.spawn(one(answered));
            group.spawn(cancelled());
        }
        group.set_failure_handler([](std::exception_ptr) {}); // the timeouts
        co_await group.join();
        co_return answered;
    };
    CHECK(run_bounded(some()) == 8);
    CHECK(helpers_finished());
}

TEST_CASE("connect by name tries each address until one accepts", "[resolve]") {
    auto listener = conet::tcp_listener::bind(conet_test::any_loopback_port());
    const std::string port = std::to_string(listener.local_endpoint().port());
    auto talk = [](conet::tcp_listener& l, std::string p) -> conet::task<std::string> {
        auto accepted = [](conet::tcp_listener& l) -> conet::task<conet::tcp_stream> {
            auto [conn, peer] = co_await l.accept();
            co_return std::move(conn);
        };
        auto [client, server] =
            co_await conet::when_all(conet::connect("localhost", p), accepted(l));
        co_await client.send_all("hi");
        char buf[2];
        co_await server.recv_exact(buf);
        co_return std::string(buf, 2);
    };
    CHECK(run_bounded(talk(listener, port)) == "hi");
    CHECK(helpers_finished());
}

TEST_CASE("connect by name names the host and every address it tried", "[resolve]") {
    conet_test::refused_port refused;
    const std::string port = std::to_string(refused.port());
    CHECK_THROWS_WITH(run_bounded(conet::connect("127.0.0.1", port)),
                      "connect 127.0.0.1:" + port + " (tried 127.0.0.1:" + port +
                          ": Connection refused): Connection refused");
    CHECK_THROWS_WITH(run_bounded(conet::connect("nothing.invalid", "80")),
                      "resolve nothing.invalid: Name or service not known");
    CHECK_THROWS_WITH(run_bounded(conet::connect("localhost", "no-such-service")),
                      Catch::Contains("service \"no-such-service\": Unknown service name"));
    std::error_code ec;
    auto conn = run_bounded(conet::connect("127.0.0.1", port, conet::resolve_family::v4, ec));
    CHECK(ec == std::errc::connection_refused);
    CHECK_FALSE(conn.is_open());
    CHECK(helpers_finished());
}

namespace {
conet::task<> lookup_localhost(bool& finished) {
    co_await conet::async_resolve("localhost", "80");
    finished = true;
}
conet::task<> await_lvalue(conet::task<>& t) {
    co_await t;
}
} // namespace

TEST_CASE("a lookup whose frame outlives its reactor never posts to the destroyed reactor",
          "[resolve]") {
    slow_lookups slow(200); // the helper is still looking up when the reactor goes
    bool finished = false;
    conet::task<> inner = lookup_localhost(finished); // owned here, not by the reactor
    {
        conet::reactor r;
        std::thread stopper([&] {
            std::this_thread::sleep_for(20ms);
            r.stop();
        });
        CHECK_THROWS(r.run(await_lvalue(inner))); // stopped: its task destroyed, inner not
        stopper.join();
    } // the reactor goes while the helper runs (ASan: it must not post into it)
    CHECK(helpers_finished());
    CHECK(!finished); // never resumed
}

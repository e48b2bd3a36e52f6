// Step 18 of docs/tutorial.md: a Catch2 test of a 30-second timeout that runs in
// milliseconds, on a reactor whose clock is virtual. Built into conet_tests (tests/CMakeLists.txt),
// and doc_snippets checks that the tutorial shows it as it is.
#include <conet/conet.hpp>
#include <conet/virtual_time.hpp>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp> // Catch2 3
#else
#include <catch2/catch.hpp> // Catch2 2
#endif

#include <chrono>
#include <string_view>

using namespace std::chrono_literals;

namespace {

// The code under test: answers each message with "ok", and hangs up on a client that has
// said nothing for 30 seconds.
conet::task<> serve_one(conet::tcp_listener& listener) {
    auto [conn, addr] = co_await listener.accept();
    char data[1024];
    for (;;) {
        std::error_code ec;
        const std::size_t size = co_await conet::with_timeout(conn.recv(data, ec), 30s);
        if (ec || size == 0) co_return; // quiet for 30 s (or gone): conn closes
        co_await conn.send_all("ok");
    }
}

// The test: a client that speaks once and then waits to be hung up on.
conet::task<std::chrono::nanoseconds> quiet_client(conet::endpoint server) {
    auto conn = co_await conet::tcp_stream::connect(server);
    const auto start = conet::now(); // the reactor's clock, not steady_clock
    co_await conn.send_all("hello");
    char reply[2];
    co_await conn.recv_exact(reply);
    char more[16];
    const std::size_t size = co_await conn.recv(more); // 0: the server hung up
    CHECK(size == 0);
    co_return conet::now() - start;
}

} // namespace

TEST_CASE("the server hangs up after 30 s of silence") {
    conet::reactor r(conet::clock_kind::virtual_auto);
    auto listener = conet::tcp_listener::bind({conet::ip_address::loopback(), 0});
    const auto wall_start = std::chrono::steady_clock::now();

    auto [served, waited] =
        r.run(conet::when_all(serve_one(listener), quiet_client(listener.local_endpoint())));

    CHECK(waited == 30s); // exactly: the virtual clock moved straight to the deadline
    CHECK(std::chrono::steady_clock::now() - wall_start < 1s); // and nobody waited for it
}

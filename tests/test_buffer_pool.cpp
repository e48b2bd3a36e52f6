// Tests for buffers lent while there is data (buffer_pool, recv(pool)) and for the
// readiness-only awaitables (wait_readable, wait_writable).
#include <conet/conet.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

// (The connected pairs are unpacked by reference, not with a structured binding: Clang 14
// cannot capture a binding in a lambda.)
using namespace std::chrono_literals;

TEST_CASE("a buffer pool lends, takes back and keeps at most max_free", "[pool_buffers]") {
    conet::buffer_pool pool(1000, 2);
    {
        auto a = pool.borrow();
        auto b = pool.borrow();
        auto c = pool.borrow();
        CHECK(a.capacity() == 1000);
        CHECK(a.empty());
        CHECK(pool.lent_count() == 3);
        CHECK(pool.free_count() == 0);
        auto moved = std::move(b);
        CHECK(b.capacity() == 0); // NOLINT(bugprone-use-after-move): moved-from is empty
        CHECK(pool.lent_count() == 3);
    }
    CHECK(pool.lent_count() == 0);
    CHECK(pool.free_count() == 2); // the third was freed
    auto again = pool.borrow();    // from the free list
    CHECK(pool.free_count() == 1);
    again.release();
    CHECK(pool.free_count() == 2);
    CHECK(again.capacity() == 0);
}

TEST_CASE("recv(pool) holds no buffer while it waits, and one while data is held",
          "[pool_buffers]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        conet::buffer_pool pool(64);
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        std::string got;
        auto reader = [&]() -> conet::task<> {
            auto data = co_await server.recv(pool);
            got.assign(data.data(), data.size());
        };
        conet::task_group group;
        group.spawn(reader());
        co_await conet::sleep_for(20ms); // the reader waits: the socket holds nothing
        CHECK(pool.lent_count() == 0);
        co_await client.send_all(conet::const_buffer("hello"));
        co_await group.join();
        CHECK(got == "hello");
        CHECK(pool.lent_count() == 0); // given back with the reader's buffer
        // Larger than a buffer: it comes in pieces, every byte kept.
        std::string big(1000, 'x');
        for (std::size_t i = 0; i < big.size(); ++i)
            big[i] = pattern_byte(i);
        co_await client.send_all(big);
        client.shutdown();
        std::string all;
        for (;;) {
            auto data = co_await server.recv(pool);
            CHECK(pool.lent_count() == (data.empty() ? 0u : 1u));
            if (data.empty()) break; // end of stream: an empty buffer, none lent
            CHECK(data.size() <= 64);
            all.append(data.begin(), data.end());
        }
        CHECK(all == big);
    }());
}

TEST_CASE("with_timeout bounds recv(pool), and a timed-out receive holds no buffer",
          "[pool_buffers]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        conet::buffer_pool pool(64);
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        std::error_code ec;
        auto none = co_await conet::with_timeout(server.recv(pool, ec), 20ms); // nothing sent
        CHECK(ec == std::errc::timed_out);
        CHECK(none.empty());
        CHECK(pool.lent_count() == 0);
        co_await client.send_all(conet::const_buffer("ping"));
        auto data = co_await conet::with_timeout(server.recv(pool), 2s); // the throwing form
        CHECK(std::string(data.begin(), data.end()) == "ping");
        CHECK(pool.lent_count() == 1);
    }());
}

TEST_CASE("wait_readable ends when data comes, and at once when it is there", "[pool_buffers]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        std::error_code ec;
        co_await conet::with_timeout(server.wait_readable(ec), 20ms); // nothing sent yet
        CHECK(ec == std::errc::timed_out);
        co_await client.send_all(conet::const_buffer("abc"));
        co_await conet::with_timeout(server.wait_readable(ec), 2s);
        REQUIRE(!ec);
        co_await conet::with_timeout(server.wait_readable(ec), 2s); // still unread: at once
        REQUIRE(!ec);
        char buf[16];
        const std::size_t n = co_await server.recv(buf); // short: drained
        CHECK(n == 3);
        co_await conet::with_timeout(server.wait_readable(ec), 20ms); // drained: waits
        CHECK(ec == std::errc::timed_out);
        client.shutdown();
        co_await conet::with_timeout(server.wait_readable(ec), 2s); // end of stream
        CHECK(!ec);
    }());
}

TEST_CASE("wait_readable on a socket read by other code waits for the next edge",
          "[pool_buffers]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        // A library's socket: conet waits, the library reads with its own calls.
        const int fd = ::dup(server.native_handle());
        conet::tcp_stream library_socket(fd);
        std::size_t total = 0;
        int wakeups = 0;
        auto library = [&]() -> conet::task<> {
            char buf[100];
            while (total < 6) {
                co_await library_socket.wait_readable();
                ++wakeups;
                for (;;) { // its own reads, until EAGAIN
                    const auto n = ::read(fd, buf, sizeof buf);
                    if (n <= 0) break;
                    total += static_cast<std::size_t>(n);
                }
            }
        };
        conet::task_group group;
        group.spawn(library());
        co_await client.send_all(conet::const_buffer("abc"));
        co_await conet::sleep_for(20ms);
        co_await client.send_all(conet::const_buffer("def"));
        co_await conet::with_timeout(group.join(), 5s);
        CHECK(total == 6);
        CHECK(wakeups <= 3); // an edge each, not a loop that spins on a stale readiness
    }());
}

TEST_CASE("wait_readable and wait_writable after the caller's own reads and sends wait for "
          "the next edge",
          "[pool_buffers]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        const int fd = server.native_handle();
        std::error_code ec;
        co_await client.send_all(conet::const_buffer("hello"));
        co_await conet::with_timeout(server.wait_readable(ec), 2s); // the loop sees the edge
        REQUIRE(!ec);
        int returned_at_once = 0;
        for (int i = 0; i < 3; ++i) {
            char buf[64];
            while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) { // our own reads, to EAGAIN
            }
            co_await conet::with_timeout(server.wait_readable(ec), 30ms); // nothing came
            if (!ec) ++returned_at_once;
        }
        CHECK(returned_at_once == 0);
        co_await client.send_all(conet::const_buffer("more"));
        co_await conet::with_timeout(server.wait_readable(ec), 2s); // the next edge ends it
        CHECK(!ec);

        co_await conet::with_timeout(server.wait_writable(ec), 2s); // room: the loop knows
        REQUIRE(!ec);
        std::vector<char> chunk(1 << 16);
        returned_at_once = 0;
        for (int i = 0; i < 3; ++i) {
            while (::send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
            } // our own sends, until the queue is full
            co_await conet::with_timeout(server.wait_writable(ec), 30ms); // nobody reads
            if (!ec) ++returned_at_once;
        }
        CHECK(returned_at_once == 0);
    }());
}

TEST_CASE("wait_writable waits for room in a full send queue", "[pool_buffers]") {
    conet::reactor r;
    watchdog dog(r, 20s);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        std::vector<char> chunk(1 << 16);
        std::error_code ec;
        std::size_t queued = 0;
        for (int i = 0; i < 10000; ++i) { // until the queue is full
            const std::size_t n = co_await conet::with_timeout(client.send(chunk, ec), 50ms);
            queued += n;
            if (ec || n < chunk.size()) break;
        }
        REQUIRE((!ec || ec == std::errc::timed_out));
        co_await conet::with_timeout(client.wait_writable(ec), 20ms); // nobody reads: full
        CHECK(ec == std::errc::timed_out);
        std::vector<char> sink(1 << 20);
        for (std::size_t drained = 0; drained < queued;) // the peer reads everything
            drained += co_await server.recv(sink);
        co_await conet::with_timeout(client.wait_writable(ec), 5s);
        CHECK(!ec);
    }());
}

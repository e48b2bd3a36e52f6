// Tests for readiness tracking (docs/design.md, "Readiness"): after a stream socket's short
// read, the next recv waits for the edge without a read that would meet EAGAIN, and no edge
// is ever missed: random message sizes and split points, many connections, half-close,
// reset, a reader and a writer on one socket, timeouts and cancellation in between, every
// byte verified.
#include <conet/conet.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

// (The connected pairs are unpacked by reference, not with a structured binding: Clang 14
// cannot capture a binding in a lambda.)
using namespace std::chrono_literals;

namespace {

// Sends back what arrives until the peer closes; counts what it echoed.
conet::task<> echo_back(conet::tcp_stream conn, std::size_t& echoed) {
    char buf[4096];
    for (;;) {
        const std::size_t n = co_await conn.recv(buf);
        if (n == 0) co_return;
        co_await conn.send_all({buf, n});
        echoed += n;
    }
}

// A deterministic byte for position `i` of stream `id`: what the receiver checks.
char pattern(std::size_t id, std::size_t i) {
    return static_cast<char>((i * 131 + id * 7 + (i >> 9)) & 0xff);
}

} // namespace

TEST_CASE("an echo round trip makes no read that meets EAGAIN", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    constexpr int round_trips = 1000;
    const auto stats = r.run([&]() -> conet::task<conet::reactor_stats> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        std::size_t echoed = 0;
        conet::task_group echoes;
        echoes.spawn(echo_back(std::move(server), echoed));
        char message[64] = {};
        // The reply is read into a larger buffer, so that each read is short: a read that
        // fills its buffer (as recv_exact's last does) cannot tell whether more is queued.
        char reply[4096];
        auto round_trip = [&]() -> conet::task<> {
            co_await client.send_all(message);
            for (std::size_t got = 0; got < sizeof message;)
                got += co_await client.recv(reply);
        };
        for (int i = 0; i < 10; ++i) // warm up: every socket registered with the loop
            co_await round_trip();
        const auto before = r.stats();
        for (int i = 0; i < round_trips; ++i)
            co_await round_trip();
        auto after = r.stats();
        after.syscalls -= before.syscalls;
        after.epoll_waits -= before.epoll_waits;
        after.completed_after_wait -= before.completed_after_wait;
        client.close();
        co_await echoes.join();
        co_return after;
    }());
    // Per round trip: the client's send and read, the server's read and send, and a share
    // of epoll_wait. Trying each recv before waiting would add two reads that fail.
    const auto others = stats.syscalls - stats.epoll_waits;
    INFO("syscalls " << stats.syscalls << ", of which epoll_wait " << stats.epoll_waits);
    CHECK(others <= round_trips * 4 + 20);
    CHECK(stats.completed_after_wait >= round_trips * 2); // both reads waited for their edge
}

TEST_CASE("a line reader with lines buffered returns them without waiting", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        conet::line_reader lines(server);
        co_await client.send_all(conet::const_buffer("one\ntwo\nthr"));
        auto first = co_await lines.read_line(); // one short read takes all three
        REQUIRE(first == "one");
        auto second = co_await lines.read_line(); // buffered: the socket is drained
        REQUIRE(second == "two");
        co_await client.send_all(conet::const_buffer("ee\n"));
        auto third = co_await lines.read_line(); // the rest came with a new edge
        REQUIRE(third == "three");
    }());
}

TEST_CASE("end of stream after a short read is seen, not waited for", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        char buf[100];
        // Data and FIN arrive before the reader looks: one edge reports both.
        co_await client.send_all(conet::const_buffer("tail"));
        client.shutdown();
        co_await conet::sleep_for(20ms);
        const std::size_t n = co_await server.recv(buf); // short: the queue is empty now
        CHECK(n == 4);
        const std::size_t end = co_await server.recv(buf); // the FIN needs no new edge
        CHECK(end == 0);
        const std::size_t again = co_await server.recv(buf); // and stays
        CHECK(again == 0);
    }());
}

TEST_CASE("a reset after a short read is reported, not waited for", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        char buf[100];
        co_await client.send_all(conet::const_buffer("x"));
        const std::size_t first = co_await server.recv(buf); // short: drained
        CHECK(first == 1);
        reset(client);
        co_await conet::sleep_for(20ms);
        std::error_code ec;
        const std::size_t n = co_await server.recv(buf, ec);
        CHECK(n == 0);
        CHECK(ec == std::errc::connection_reset); // a reset, not a plain end of stream
    }());
}

TEST_CASE("a recv that timed out on a drained socket still gets what comes later", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        char buf[100];
        co_await client.send_all(conet::const_buffer("a"));
        const std::size_t first = co_await server.recv(buf); // drained
        CHECK(first == 1);
        std::error_code ec;
        co_await conet::with_timeout(server.recv(buf, ec), 10ms);
        CHECK(ec == std::errc::timed_out);
        // The edge arrives while nobody waits: it must be remembered.
        co_await client.send_all(conet::const_buffer("b"));
        co_await conet::sleep_for(20ms); // the loop sees the edge with no reader
        const std::size_t n = co_await server.recv(buf);
        REQUIRE(n == 1);
        CHECK(buf[0] == 'b');
    }());
}

TEST_CASE("a full send queue waits for room, and every byte arrives", "[readiness]") {
    conet::reactor r;
    watchdog dog(r, 20s);
    std::size_t short_sends = 0;
    r.run([&]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        std::string big(16 << 20, '\0');
        for (std::size_t i = 0; i < big.size(); ++i)
            big[i] = pattern(1, i);
        // The writer meets a full queue over and over (short sends); a reader drains slowly.
        auto writer = [&]() -> conet::task<> {
            for (std::size_t sent = 0; sent < big.size();) {
                const std::size_t offered = big.size() - sent;
                const std::size_t n = co_await client.send({big.data() + sent, offered});
                if (n < offered) ++short_sends;
                sent += n;
            }
            client.shutdown();
        };
        auto reader = [&]() -> conet::task<std::string> {
            std::string got;
            std::vector<char> buf(64 * 1024);
            for (int i = 1;; ++i) {
                const std::size_t n = co_await server.recv(buf);
                if (n == 0) break;
                got.append(buf.data(), n);
                if (i % 16 == 0) co_await conet::sleep_for(1ms);
            }
            co_return got;
        };
        auto [ignored, got] = co_await conet::when_all(writer(), reader());
        (void)ignored;
        CHECK(got.size() == big.size());
        CHECK(got == big);
    }());
    CHECK(short_sends > 1); // the queue was full: each of these had to wait for its edge
}

TEST_CASE("many connections, random sizes and splits, cancellation in between: no byte lost",
          "[readiness]") {
    conet::reactor r;
    watchdog dog(r, 30s);
    constexpr std::size_t connections = 64;
    constexpr std::size_t per_connection = 64 * 1024;
    std::size_t verified = 0;
    r.run([&]() -> conet::task<> {
        auto listener = conet::tcp_listener::bind(any_loopback_port());
        const auto where = listener.local_endpoint();
        conet::task_group servers;
        std::vector<std::size_t> echoed(connections);
        auto acceptor = [&]() -> conet::task<> {
            for (std::size_t i = 0; i < connections; ++i) {
                auto [conn, peer] = co_await listener.accept();
                servers.spawn(echo_back(std::move(conn), echoed[i]));
            }
        };
        // Each client writes random-sized pieces and reads the echo back in random-sized
        // reads; some reads are bounded by a timeout that may fire, some are raced against
        // a sleep in a when_any (the loser is cancelled): nothing may be lost either way.
        auto client = [&](std::size_t id) -> conet::task<> {
            std::mt19937 rng(static_cast<std::uint32_t>(id * 7919 + 1));
            auto conn = co_await conet::tcp_stream::connect(where);
            std::string out(per_connection, '\0');
            for (std::size_t i = 0; i < out.size(); ++i)
                out[i] = pattern(id, i);
            std::size_t sent = 0, received = 0;
            std::vector<char> buf(8192);
            while (received < out.size()) {
                if (sent < out.size()) {
                    const std::size_t piece =
                        std::min<std::size_t>(out.size() - sent, 1 + rng() % 3000);
                    co_await conn.send_all({out.data() + sent, piece});
                    sent += piece;
                }
                const std::size_t want = 1 + rng() % buf.size();
                std::size_t n = 0;
                std::error_code ec;
                switch (rng() % 4) {
                case 0:
                    n = co_await conet::with_timeout(conn.recv({buf.data(), want}, ec), 1ms);
                    if (ec == std::errc::timed_out)
                        n = 0;
                    else if (ec)
                        throw std::system_error(ec, "recv");
                    break;
                case 1: {
                    auto recv_task = [&]() -> conet::task<std::size_t> {
                        co_return co_await conn.recv({buf.data(), want});
                    };
                    auto outcome =
                        co_await conet::when_any(recv_task(), conet::detail::sleep_task(1ms));
                    if (outcome.index() == 0) n = std::get<0>(outcome);
                    break;
                }
                default:
                    if (sent == out.size() || rng() % 2) n = co_await conn.recv({buf.data(), want});
                    break;
                }
                for (std::size_t k = 0; k < n; ++k)
                    if (buf[k] != out[received + k])
                        throw std::runtime_error("byte " + std::to_string(received + k) +
                                                 " of stream " + std::to_string(id) + " differs");
                received += n;
            }
            conn.shutdown();
            char end[1];
            if (co_await conn.recv(end) != 0) throw std::runtime_error("data after the echo");
            verified += received;
        };
        conet::task_group clients;

        for (std::size_t id = 0; id < connections; ++id)
            clients.spawn(client(id));
        co_await acceptor();
        co_await clients.join();
        co_await servers.join();
    }());
    CHECK(verified == connections * per_connection);
}

TEST_CASE("an empty buffer is decided at once on a drained socket", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        char buf[16];
        std::error_code ec;
        co_await client.send_all(conet::const_buffer("a"));
        const std::size_t first = co_await server.recv(buf); // short: drained
        CHECK(first == 1);
        // A length-prefixed message with an empty payload: nothing to wait for.
        const std::size_t none = co_await conet::with_timeout(server.recv_exact({buf, 0}, ec), 2s);
        CHECK(none == 0);
        CHECK(!ec);
        co_await conet::with_timeout(server.recv({buf, 0}, ec), 2s);
        CHECK(ec == std::errc::invalid_argument);
        // The same for a send on a full queue.
        std::vector<char> chunk(1 << 16);
        for (int i = 0; i < 10000; ++i) { // until short, or EAGAIN (a wait that times out)
            const std::size_t offered = chunk.size();
            const std::size_t n = co_await conet::with_timeout(client.send(chunk, ec), 50ms);
            if (ec || n < offered) break; // the queue is full now
        }
        REQUIRE((!ec || ec == std::errc::timed_out));
        const std::size_t sent = co_await conet::with_timeout(client.send_all({buf, 0}, ec), 2s);
        CHECK(sent == 0);
        CHECK(!ec);
    }());
}

TEST_CASE("urgent data stops a read short without draining the queue", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        char buf[16];
        std::error_code ec;
        co_await conet::with_timeout(server.recv(buf, ec), 10ms); // registered with the loop
        REQUIRE(ec == std::errc::timed_out);
        // A read stops at the urgent mark: "abc" is short although "def" is queued.
        ::send(client.native_handle(), "abc", 3, 0);
        ::send(client.native_handle(), "X", 1, MSG_OOB);
        ::send(client.native_handle(), "def", 3, 0);
        co_await conet::sleep_for(20ms);
        std::string got;
        for (int i = 0; i < 4 && got.size() < 6; ++i) {
            const std::size_t n = co_await conet::with_timeout(server.recv(buf, ec), 2s);
            REQUIRE(!ec);
            got.append(buf, n);
        }
        CHECK(got == "abcdef");
    }());
}

TEST_CASE("a socket whose file comes back under the same number can wait", "[readiness]") {
    conet::reactor r;
    watchdog dog(r);
    r.run([]() -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        char buf[16];
        std::error_code ec;
        co_await conet::with_timeout(server.recv(buf, ec), 10ms); // registered with the loop
        REQUIRE(ec == std::errc::timed_out);
        const int number = server.native_handle();
        const int keep = ::dup(number);
        server.close(); // the file lives on through `keep`
        const int again = ::dup(keep);
        ::close(keep);
        REQUIRE(again == number); // the lowest free number: the same again
        conet::tcp_stream same(again);
        co_await conet::with_timeout(same.recv(buf, ec), 10ms); // must wait (and can)
        CHECK(ec == std::errc::timed_out);
        co_await client.send_all(conet::const_buffer("hi"));
        const std::size_t n = co_await conet::with_timeout(same.recv(buf, ec), 2s);
        CHECK(!ec);
        CHECK(n == 2);
    }());
}

TEST_CASE("CONET_TRACE=1 shows each wait, the wake-up that ends it, timers and cancellations",
          "[readiness][trace]") {
    // stderr goes to a file while a reactor made with CONET_TRACE=1 runs.
    char path[] = "/tmp/conet_trace_XXXXXX";
    const int file = ::mkstemp(path);
    REQUIRE(file >= 0);
    const int saved_stderr = ::dup(2);
    ::setenv("CONET_TRACE", "1", 1);
    {
        conet::reactor r;
        ::unsetenv("CONET_TRACE"); // read once, when the reactor was made
        ::dup2(file, 2);
        watchdog dog(r);
        r.run([]() -> conet::task<> {
            auto pair =
                co_await connected_pair(); // (named: Clang 14 lambdas cannot capture bindings)
            auto& client = pair.client;
            auto& server = pair.server;
            auto reader = [&]() -> conet::task<> {
                char buf[16];
                co_await server.recv(buf);
            };
            auto sender = [&]() -> conet::task<> {
                co_await conet::sleep_for(5ms);
                co_await client.send_all(conet::const_buffer("x"));
            };
            co_await conet::when_all(reader(), sender());
            auto waits_in_vain = [&]() -> conet::task<> {
                char buf[16];
                co_await server.recv(buf); // nothing comes: the timer wins, this is cancelled
            };
            co_await conet::when_any(waits_in_vain(), conet::detail::sleep_task(5ms));
        }());
        ::dup2(saved_stderr, 2);
    }
    ::close(saved_stderr);
    std::string text(1 << 16, '\0');
    const auto n = ::pread(file, text.data(), text.size(), 0);
    ::close(file);
    ::unlink(path);
    REQUIRE(n > 0);
    text.resize(static_cast<std::size_t>(n));
    INFO(text);
    CHECK(text.find("conet: recv waits: fd ") != std::string::npos);
    CHECK(text.find("conet: sleep: the coroutine suspends") != std::string::npos);
    CHECK(text.find("conet: timer expired") != std::string::npos);
    CHECK(text.find(" is readable: its coroutine resumes") != std::string::npos);
    CHECK(text.find("conet: epoll_wait returns") != std::string::npos);
    CHECK(text.find("conet: cancelled: the wait on fd ") != std::string::npos);
    // A reactor made without the variable prints nothing.
    char second_path[] = "/tmp/conet_trace_XXXXXX";
    const int second = ::mkstemp(second_path);
    REQUIRE(second >= 0);
    const int saved = ::dup(2);
    {
        conet::reactor quiet;
        ::dup2(second, 2);
        quiet.run([]() -> conet::task<> { co_await conet::sleep_for(1ms); }());
        ::dup2(saved, 2);
    }
    ::close(saved);
    char any[1];
    CHECK(::pread(second, any, 1, 0) == 0);
    ::close(second);
    ::unlink(second_path);
}

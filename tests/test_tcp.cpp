// Tests for conet/tcp.hpp over real loopback sockets: accept/connect/echo, large transfers
// byte for byte, end of stream, refused connections, resets, and concurrent waiters.
#include <conet/line_reader.hpp>
#include <conet/tcp.hpp>
#include <conet/time.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

TEST_CASE("accept, connect and echo over loopback", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto listener = conet::tcp_listener::bind(any_loopback_port());
        conet::endpoint seen_peer;
        bool served = false;
        conet::reactor::current()->spawn(
            [](conet::tcp_listener& l, conet::endpoint& peer_out, bool& done) -> conet::task<> {
                auto [conn, peer] = co_await l.accept();
                peer_out = peer;
                char buf[64];
                for (;;) {
                    const auto n = co_await conn.recv(buf);
                    if (n == 0) break;
                    co_await conn.send_all({buf, n});
                }
                done = true;
            }(listener, seen_peer, served));

        auto client = co_await conet::tcp_stream::connect(listener.local_endpoint());
        CHECK(client.peer_endpoint() == listener.local_endpoint());
        const std::string message = "hello, conet";
        co_await client.send_all(message);
        std::string echoed(message.size(), '\0');
        co_await client.recv_exact(echoed);
        CHECK(echoed == message);
        client.shutdown(); // the server's recv sees end of stream and finishes
        char byte;
        const auto at_end = co_await client.recv({&byte, 1});
        CHECK(at_end == 0);
        CHECK(served);
        CHECK(seen_peer == client.local_endpoint());
    };
    run_bounded(test());
}

TEST_CASE("a listener's wait_readable ends at once while connections are pending", "[tcp]") {
    auto body = []() -> conet::task<> {
        auto listener = conet::tcp_listener::bind(any_loopback_port());
        auto first = co_await conet::tcp_stream::connect(listener.local_endpoint());
        auto second = co_await conet::tcp_stream::connect(listener.local_endpoint());
        std::error_code ec;
        co_await conet::with_timeout(listener.wait_readable(ec), 2s);
        REQUIRE(!ec);
        co_await listener.accept(); // the second connection is still pending
        co_await conet::with_timeout(listener.wait_readable(ec), 500ms);
        CHECK(!ec); // not timed_out: it needs no new edge
        co_await conet::with_timeout(listener.accept(ec), 2s);
        CHECK(!ec);
    };
    run_bounded(body());
}

TEST_CASE("IPv6 loopback echo", "[tcp]") {
    auto test = []() -> conet::task<> {
        std::error_code ec;
        auto listener =
            conet::tcp_listener::bind({conet::ip_address::loopback(conet::ip_family::v6), 0}, ec);
        if (ec) {
            CONET_REPORT_SKIP("no IPv6 loopback here: " << ec.message());
            co_return;
        }
        auto client = co_await conet::tcp_stream::connect(listener.local_endpoint());
        auto [server, peer] = co_await listener.accept();
        CHECK(peer.address().is_v6());
        CHECK(peer == client.local_endpoint());
        co_await client.send_all("six\n");
        char buf[4];
        co_await server.recv_exact(buf);
        CHECK(std::string(buf, 4) == "six\n");
    };
    run_bounded(test());
}

TEST_CASE("send_all delivers 16 MiB byte for byte through partial writes", "[tcp]") {
    static constexpr std::size_t size = 16u << 20;
    auto test = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        std::vector<char> out(size);
        for (std::size_t i = 0; i < size; ++i)
            out[i] = pattern_byte(i);

        std::vector<char> in;
        in.reserve(size);
        conet::reactor::current()->spawn(
            [](conet::tcp_stream& s, std::vector<char>& sink) -> conet::task<> {
                std::vector<char> chunk(100'000); // odd size: reads straddle the writer's chunks
                for (;;) {
                    const auto n = co_await s.recv(chunk);
                    if (n == 0) break;
                    sink.insert(sink.end(), chunk.begin(), chunk.begin() + static_cast<long>(n));
                }
            }(server, in));

        const auto sent = co_await client.send_all(out);
        CHECK(sent == size);
        client.shutdown();
        // Let the reader drain what is still in flight (bounded: the watchdog stops a hang).
        while (in.size() < size)
            co_await conet::yield();
        REQUIRE(in.size() == size);
        std::size_t first_bad = size;
        for (std::size_t i = 0; i < size; ++i)
            if (in[i] != pattern_byte(i)) {
                first_bad = i;
                break;
            }
        CHECK(first_bad == size);
    };
    run_bounded(test(), 30s);
}

TEST_CASE("recv yields 0 at end of stream, recv_exact reports end_of_stream", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        co_await client.send_all("abc");
        client.close();
        char buf[8];
        std::error_code ec;
        const auto n = co_await server.recv_exact(buf, ec);
        CHECK(ec == conet::error::end_of_stream);
        CHECK(n == 3);
        const auto at_end = co_await server.recv(buf);
        CHECK(at_end == 0);
    };
    run_bounded(test());
}

TEST_CASE("a char array is sent whole, a string literal without its terminator", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        // A binary record whose last byte is 0, received and echoed back as it came.
        const char record[8] = {'r', 'e', 'c', 0, 1, 2, 3, 0};
        co_await client.send_all(conet::const_buffer(record, sizeof record));
        char rec[8];
        co_await server.recv_exact(rec);
        const auto echoed = co_await server.send_all(rec);
        CHECK(echoed == 8);
        char back[8];
        co_await client.recv_exact(back);
        CHECK(std::string(back, 8) == std::string(record, 8));

        // A literal goes without its '\0': the peer reads "hi" and then the next send.
        const auto literal = co_await client.send_all("hi");
        CHECK(literal == 2);
        const auto one = co_await client.send("!");
        CHECK(one == 1);
        char text[3];
        co_await server.recv_exact(text);
        CHECK(std::string(text, 3) == "hi!");
    };
    run_bounded(test());
}

TEST_CASE("recv into an empty buffer is invalid_argument, never a false end of stream", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        // Nothing has arrived: the call must neither wait nor pass for the end of stream.
        // (No co_await inside CHECK: GCC evaluates it even where Catch's macro does not.)
        std::error_code ec;
        const auto none = co_await server.recv(conet::mutable_buffer{}, ec);
        CHECK(none == 0);
        CHECK(ec == std::errc::invalid_argument);
        std::string message;
        try {
            co_await server.recv(std::string{}); // a std::string with nothing to fill
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::invalid_argument);
            message = e.what();
        }
        CHECK(message == "recv: Invalid argument");
        // Checked before any syscall: a closed stream reports the empty buffer, not EBADF.
        conet::tcp_stream closed;
        co_await closed.recv(conet::mutable_buffer{}, ec);
        CHECK(ec == std::errc::invalid_argument);

        // recv_exact of 0 bytes asks for nothing, so it is complete at once and succeeds,
        // touching nothing: the bytes in flight are still there for the next recv.
        co_await client.send_all("data");
        ec = conet::error::end_of_stream;
        const auto nothing = co_await server.recv_exact(conet::mutable_buffer{}, ec);
        CHECK(nothing == 0);
        CHECK_FALSE(ec);
        const auto nothing_closed = co_await closed.recv_exact(conet::mutable_buffer{}, ec);
        CHECK(nothing_closed == 0);
        CHECK_FALSE(ec);
        char buf[4];
        co_await server.recv_exact(buf);
        CHECK(std::string(buf, 4) == "data");
    };
    run_bounded(test());
}

TEST_CASE("connection refused is a clear error naming the endpoint", "[tcp]") {
    const refused_port refusing;
    const auto where = refusing.endpoint();
    auto throwing = [](conet::endpoint to) -> conet::task<std::string> {
        try {
            co_await conet::tcp_stream::connect(to);
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::connection_refused);
            co_return e.what();
        }
        co_return "connected";
    };
    const std::string message = run_bounded(throwing(where));
    CHECK(message == "connect " + where.to_string() + ": Connection refused");

    auto quiet = [](conet::endpoint to) -> conet::task<bool> {
        std::error_code ec;
        auto s = co_await conet::tcp_stream::connect(to, ec);
        CHECK_FALSE(s.is_open());
        co_return ec == std::errc::connection_refused;
    };
    CHECK(run_bounded(quiet(where)));
}

TEST_CASE("a refused port stays reserved while the test uses it", "[tcp]") {
    // What keeps the refused-connection tests stable beside others under ctest -j: nobody
    // can take the port between the test's choice of it and its connect.
    const refused_port tcp;
    std::error_code ec;
    auto taker = conet::tcp_listener::bind(tcp.endpoint(), ec);
    CHECK(ec == std::errc::address_in_use);
    const refused_port udp(refused_port::protocol::udp);
    auto udp_taker = conet::udp_socket::bind(udp.endpoint(), ec);
    CHECK(ec == std::errc::address_in_use);
}

TEST_CASE("a peer reset surfaces as connection_reset", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        // The server waits in recv when the reset arrives.
        conet::reactor::current()->spawn([](conet::tcp_stream& c) -> conet::task<> {
            co_await c.send_all("partial messa");
            reset(c);
        }(client));
        char buf[64];
        std::error_code ec;
        std::size_t total = 0;
        for (int i = 0; i < 100 && !ec; ++i) {
            const auto n = co_await server.recv(buf, ec);
            if (n == 0 && !ec) break;
            total += n;
        }
        CHECK(ec == std::errc::connection_reset);
        CHECK(total <= 13);
        try {
            co_await server.recv(buf);
        } catch (const std::system_error& e) {
            // After the reset the socket is at end of stream or still failing: never a crash.
            CHECK(std::string(e.what()).rfind("recv: ", 0) == 0);
        }
    };
    run_bounded(test());
}

TEST_CASE("sending to a vanished peer is an error, never SIGPIPE", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        reset(server);
        std::vector<char> data(1 << 20, 'x');
        std::error_code ec;
        for (int i = 0; i < 50 && !ec; ++i)
            co_await client.send_all(data, ec);
        CHECK((ec == std::errc::broken_pipe || ec == std::errc::connection_reset));
    };
    run_bounded(test());
}

TEST_CASE("a reader and a writer wait on one socket at once", "[tcp]") {
    static constexpr std::size_t size = 4u << 20; // more than the socket buffers: the writer waits
    auto test = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        // `a` writes a lot and reads a little at the same time; `b` echoes what it reads.
        conet::reactor::current()->spawn([](conet::tcp_stream& s) -> conet::task<> {
            std::vector<char> buf(65536);
            for (;;) {
                const auto n = co_await s.recv(buf);
                if (n == 0) break;
                co_await s.send_all({buf.data(), n});
            }
            s.shutdown();
        }(b));
        std::vector<char> echoed;
        bool reader_done = false;
        conet::reactor::current()->spawn(
            [](conet::tcp_stream& s, std::vector<char>& sink, bool& done) -> conet::task<> {
                std::vector<char> buf(65536);
                for (;;) {
                    const auto n = co_await s.recv(buf);
                    if (n == 0) break;
                    sink.insert(sink.end(), buf.begin(), buf.begin() + static_cast<long>(n));
                }
                done = true;
            }(a, echoed, reader_done));
        std::vector<char> out(size);
        for (std::size_t i = 0; i < size; ++i)
            out[i] = pattern_byte(i);
        co_await a.send_all(out);
        a.shutdown();
        while (!reader_done)
            co_await conet::yield();
        CHECK(echoed == out);
    };
    run_bounded(test(), 30s);
}

TEST_CASE("a second concurrent reader is a clear error", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        conet::reactor::current()->spawn([](conet::tcp_stream& s) -> conet::task<> {
            char byte;
            co_await s.recv({&byte, 1}); // the first reader, waiting
        }(a));
        co_await conet::yield(); // the spawned reader starts, finds nothing and waits
        std::error_code ec;
        char byte;
        co_await a.recv({&byte, 1}, ec);
        CHECK(ec == conet::error::already_waiting);
        CHECK(std::string(std::system_error(ec, "recv").what()).find("already waiting") !=
              std::string::npos);
        a.close(); // releases the first reader with error::closed
    };
    run_bounded(test());
}

TEST_CASE("closing a socket resumes its waiter with the closed error", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        std::error_code seen;
        bool resumed = false;
        conet::reactor::current()->spawn(
            [](conet::tcp_stream& s, std::error_code& out, bool& done) -> conet::task<> {
                char byte;
                co_await s.recv({&byte, 1}, out);
                done = true;
            }(a, seen, resumed));
        co_await conet::yield(); // the reader starts and waits
        CHECK_FALSE(resumed);
        a.close();
        co_await conet::yield(); // its cancellation is delivered at the next turn
        CHECK(resumed);
        CHECK(seen == conet::error::closed); // closed by another task, not cancelled
        CHECK(seen != std::errc::operation_canceled);
    };
    run_bounded(test());
}

TEST_CASE("socket options and endpoints", "[tcp]") {
    auto test = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        a.set_nodelay(true);
        CHECK(a.local_endpoint() == b.peer_endpoint());
        CHECK(a.peer_endpoint() == b.local_endpoint());
        a.close();
        std::error_code ec;
        a.peer_endpoint(ec);
        CHECK(ec == std::errc::bad_file_descriptor);
        char byte;
        co_await a.recv({&byte, 1}, ec);
        CHECK(ec == std::errc::bad_file_descriptor);
        std::string message;
        try {
            co_await a.send_all("x");
        } catch (const std::system_error& e) {
            message = e.what();
        }
        CHECK(message == "send_all: Bad file descriptor");
    };
    run_bounded(test());
}

TEST_CASE("binding a port in use fails with a clear message", "[tcp]") {
    auto first = conet::tcp_listener::bind(any_loopback_port());
    const auto where = first.local_endpoint();
    CHECK_THROWS_WITH(conet::tcp_listener::bind(where),
                      "bind " + where.to_string() + ": Address already in use");
    std::error_code ec;
    auto second = conet::tcp_listener::bind(where, ec);
    CHECK(ec == std::errc::address_in_use);
    CHECK_FALSE(second.is_open());
}

namespace {
// A connected TCP socket made without conet, blocking (as one inherited from another program
// would be), and the listener's end of it.
struct blocking_pair {
    int fd = -1;
    conet::tcp_stream server;
};

conet::task<blocking_pair> blocking_connection() {
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    const auto where = listener.local_endpoint();
    blocking_pair out;
    out.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); // no SOCK_NONBLOCK
    REQUIRE(out.fd >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(where.port());
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(out.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0);
    auto [conn, peer] = co_await listener.accept();
    out.server = std::move(conn);
    co_return out;
}

bool non_blocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK) != 0;
}
} // namespace

TEST_CASE("a blocking descriptor given to tcp_stream is made non-blocking", "[tcp]") {
    // A blocking socket would freeze the reactor in its first recv: no timer would fire.
    auto test = [](bool through_adopt) -> conet::task<> {
        auto pair = co_await blocking_connection();
        REQUIRE_FALSE(non_blocking(pair.fd));
        conet::tcp_stream adopted =
            through_adopt ? conet::tcp_stream::adopt(pair.fd) : conet::tcp_stream(pair.fd);
        REQUIRE(non_blocking(adopted.native_handle())); // checked first: else the recv hangs
        CHECK((::fcntl(adopted.native_handle(), F_GETFD) & FD_CLOEXEC) != 0);
        char buf[16];
        std::error_code ec;
        co_await conet::with_timeout(adopted.recv(buf, ec), std::chrono::milliseconds(20));
        CHECK(ec == std::errc::timed_out);
        co_await pair.server.send_all(conet::const_buffer("hi"));
        const std::size_t n = co_await adopted.recv(buf);
        CHECK(std::string(buf, n) == "hi");
    };
    SECTION("tcp_stream::adopt") {
        run_bounded(test(true));
    }
    SECTION("the constructor") {
        run_bounded(test(false));
    }
}

TEST_CASE("tcp_stream::adopt refuses what is not a connected TCP socket", "[tcp]") {
    std::error_code ec;
    const int datagram = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto a = conet::tcp_stream::adopt(datagram, ec);
    CHECK(ec == std::errc::wrong_protocol_type);
    CHECK_FALSE(a.is_open());
    int pipe_ends[2];
    REQUIRE(::pipe2(pipe_ends, O_CLOEXEC) == 0);
    auto b = conet::tcp_stream::adopt(pipe_ends[0], ec);
    CHECK(ec == std::errc::not_a_socket);
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    auto c = conet::tcp_stream::adopt(listener.native_handle(), ec); // listens: not a stream
    CHECK(ec == std::errc::invalid_argument);
    CHECK_FALSE(c.is_open());
    CHECK_THROWS_WITH(conet::tcp_stream::adopt(datagram),
                      Catch::Matchers::StartsWith("tcp_stream::adopt: "));
    // The constructor checks too (it also takes a Unix stream socket).
    CHECK_THROWS_AS(conet::tcp_stream(pipe_ends[0]), std::system_error);
    CHECK_THROWS_AS(conet::tcp_stream(datagram), std::system_error);
    // A refused descriptor stays open and belongs to the caller.
    CHECK(::fcntl(datagram, F_GETFD) >= 0);
    CHECK(::fcntl(pipe_ends[0], F_GETFD) >= 0);
    ::close(datagram);
    ::close(pipe_ends[0]);
    ::close(pipe_ends[1]);
}

// Tests for conet/socket_option.hpp and the options of tcp_listener::bind / udp_socket::bind:
// SO_REUSEPORT shared by two listeners, SO_REUSEADDR on and off, IPV6_V6ONLY, adopting a
// descriptor, and the typed set_option/get_option with their errors.
#include <conet/conet.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

namespace {

// Accepts on `listener` until `total` connections have been accepted by it and `other`
// together (counted in `accepted_here` and `accepted_total`).
conet::task<> count_accepts(conet::tcp_listener& listener, std::size_t& accepted_here,
                            std::size_t& accepted_total, std::size_t total) {
    while (accepted_total < total) {
        std::error_code ec;
        auto accepted = co_await conet::with_timeout(listener.accept(ec), 100ms);
        if (ec == std::errc::timed_out) continue; // the rest went to the other listener
        REQUIRE_FALSE(ec);
        ++accepted_here;
        ++accepted_total;
    }
}

} // namespace

TEST_CASE("two listeners share a port with reuse_port, and both get connections", "[option]") {
    auto body = []() -> conet::task<> {
        auto first = conet::tcp_listener::bind(any_loopback_port(), {.reuse_port = true});
        const auto where = first.local_endpoint();
        auto second = conet::tcp_listener::bind(where, {.reuse_port = true});
        CHECK(second.local_endpoint() == where);
        CHECK(first.get_option<conet::option::reuse_port>().value);

        // Without the option on the newcomer the port is taken.
        std::error_code ec;
        auto third = conet::tcp_listener::bind(where, conet::listen_options{}, ec);
        CHECK(ec == std::errc::address_in_use);
        CHECK_FALSE(third.is_open());

        // The kernel spreads connections by their source port: out of 64, each listener
        // gets some (all 64 on one would happen with probability 2^-63).
        constexpr std::size_t clients = 64;
        std::vector<conet::tcp_stream> connections;
        for (std::size_t i = 0; i < clients; ++i)
            connections.push_back(co_await conet::tcp_stream::connect(where));
        std::size_t on_first = 0, on_second = 0, total = 0;
        co_await conet::when_all(count_accepts(first, on_first, total, clients),
                                 count_accepts(second, on_second, total, clients));
        CHECK(on_first + on_second == clients);
        CHECK(on_first > 0);
        CHECK(on_second > 0);
    };
    run_bounded(body());
}

TEST_CASE("reuse_address is on by default for listeners and can be turned off", "[option]") {
    auto on = conet::tcp_listener::bind(any_loopback_port());
    CHECK(on.get_option<conet::option::reuse_address>().value);
    auto off = conet::tcp_listener::bind(any_loopback_port(), {.reuse_address = false});
    CHECK_FALSE(off.get_option<conet::option::reuse_address>().value);
    auto small_queue = conet::tcp_listener::bind(any_loopback_port(), {.backlog = 1});
    CHECK(small_queue.is_open());
}

TEST_CASE("v6_only decides whether a listener on :: takes IPv4 clients", "[option]") {
    std::error_code ec;
    auto dual = conet::tcp_listener::bind({conet::ip_address::any(conet::ip_family::v6), 0},
                                          {.v6_only = false}, ec);
    if (ec) {
        CONET_REPORT_SKIP("no IPv6 on this machine: " << ec.message());
        return;
    }
    auto only = conet::tcp_listener::bind({conet::ip_address::any(conet::ip_family::v6), 0},
                                          {.v6_only = true});
    CHECK_FALSE(dual.get_option<conet::option::v6_only>().value);
    CHECK(only.get_option<conet::option::v6_only>().value);

    auto body = [](conet::tcp_listener& dual_stack,
                   conet::tcp_listener& v6_only_listener) -> conet::task<> {
        const conet::endpoint to_dual{conet::ip_address::loopback(),
                                      dual_stack.local_endpoint().port()};
        auto conn = co_await conet::tcp_stream::connect(to_dual);
        auto [server_side, peer] = co_await dual_stack.accept();
        CHECK(peer.address().is_v6()); // ::ffff:127.0.0.1, an IPv4 client on an IPv6 socket

        const conet::endpoint to_only{conet::ip_address::loopback(),
                                      v6_only_listener.local_endpoint().port()};
        std::error_code refused;
        auto nothing = co_await conet::tcp_stream::connect(to_only, refused);
        CHECK(refused == std::errc::connection_refused);
        CHECK_FALSE(nothing.is_open());
    };
    run_bounded(body(dual, only));
}

TEST_CASE("a listening descriptor made elsewhere is adopted and made non-blocking", "[option]") {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); // blocking, as inherited
    REQUIRE(fd >= 0);
    const conet::detail::sockaddr_any address(any_loopback_port());
    REQUIRE(::bind(fd, address.get(), address.length) == 0);
    REQUIRE(::listen(fd, 8) == 0);

    auto listener = conet::tcp_listener::adopt(fd);
    CHECK(listener.native_handle() == fd);
    CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);

    auto body = [](conet::tcp_listener& l) -> conet::task<> {
        auto client = co_await conet::tcp_stream::connect(l.local_endpoint());
        auto [server_side, peer] = co_await l.accept();
        CHECK(peer == client.local_endpoint());
        // Non-blocking: with nobody connecting, accept waits on the reactor, and times out.
        std::error_code ec;
        co_await conet::with_timeout(l.accept(ec), 20ms);
        CHECK(ec == std::errc::timed_out);
    };
    run_bounded(body(listener));
}

TEST_CASE("adopting what is not the right kind of socket is a clear error", "[option]") {
    const int not_listening = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int datagram = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int pipe_ends[2];
    REQUIRE(::pipe2(pipe_ends, O_CLOEXEC) == 0);
    REQUIRE(not_listening >= 0);
    REQUIRE(datagram >= 0);

    std::error_code ec;
    auto a = conet::tcp_listener::adopt(not_listening, ec);
    CHECK(ec == std::errc::invalid_argument);
    CHECK_FALSE(a.is_open());
    auto b = conet::tcp_listener::adopt(datagram, ec);
    CHECK(ec == std::errc::wrong_protocol_type);
    auto c = conet::udp_socket::adopt(pipe_ends[0], ec);
    CHECK(ec == std::errc::not_a_socket);
    int unix_pair[2]; // stream sockets, but not IP ones
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, unix_pair) == 0);
    const int unix_listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sa_family_t family = AF_UNIX; // a bind with only the family: an abstract address
    REQUIRE(::bind(unix_listener, reinterpret_cast<const sockaddr*>(&family), sizeof family) == 0);
    REQUIRE(::listen(unix_listener, 1) == 0);
    auto d = conet::tcp_listener::adopt(unix_listener, ec);
    CHECK(ec == std::errc::address_family_not_supported);
    CHECK_FALSE(d.is_open());
    CHECK_THROWS_WITH(conet::tcp_listener::adopt(datagram),
                      Catch::Matchers::StartsWith("tcp_listener::adopt: "));

    // A refused descriptor stays open and belongs to the caller.
    for (int fd : {not_listening, datagram, pipe_ends[0], pipe_ends[1], unix_pair[0], unix_pair[1],
                   unix_listener}) {
        CHECK(::fcntl(fd, F_GETFD) >= 0);
        ::close(fd);
    }

    const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(udp >= 0);
    auto adopted = conet::udp_socket::adopt(udp);
    CHECK((::fcntl(udp, F_GETFL) & O_NONBLOCK) != 0);
}

TEST_CASE("two UDP receivers share a port, and a client binds before it connects", "[option]") {
    auto body = []() -> conet::task<> {
        auto first = conet::udp_socket::bind(any_loopback_port(), {.reuse_port = true});
        const auto where = first.local_endpoint();
        auto second = conet::udp_socket::bind(where, {.reuse_port = true});
        CHECK(second.local_endpoint() == where);
        std::error_code ec;
        auto third = conet::udp_socket::bind(where, ec);
        CHECK(ec == std::errc::address_in_use);

        // The client fixes its own address and port first, then its peer.
        auto client = conet::udp_socket::bind(any_loopback_port(), {.broadcast = true});
        CHECK(client.get_option<conet::option::broadcast>().value);
        const auto client_address = client.local_endpoint();
        client.connect(where);
        CHECK(client.local_endpoint() == client_address);
        co_await client.send("hello");

        // One of the two receivers gets it, from the address the client bound.
        char buf[16];
        auto from_first = co_await conet::with_timeout(first.recv_from(buf, ec), 50ms);
        if (ec == std::errc::timed_out)
            from_first = co_await conet::with_timeout(second.recv_from(buf), 1s);
        else
            REQUIRE_FALSE(ec);
        CHECK(std::string(buf, from_first.size) == "hello");
        CHECK(from_first.from == client_address);
    };
    run_bounded(body());
}

TEST_CASE("set_option and get_option are typed and report errors with the option's name",
          "[option]") {
    auto body = []() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        client.set_option(conet::option::keep_alive{true});
        CHECK(client.get_option<conet::option::keep_alive>().value);
        client.set_nodelay(true);
        CHECK(client.get_option<conet::option::no_delay>().value);
        client.set_option(conet::option::receive_buffer_size{64 * 1024});
        CHECK(client.get_option<conet::option::receive_buffer_size>().value >= 64 * 1024);
        client.set_option(conet::option::send_buffer_size{64 * 1024});
        CHECK(client.get_option<conet::option::send_buffer_size>().value >= 64 * 1024);

        client.close();
        CHECK_THROWS_WITH(client.set_option(conet::option::keep_alive{true}),
                          Catch::Matchers::StartsWith("setsockopt(SO_KEEPALIVE): "));
        std::error_code ec;
        auto value = client.get_option<conet::option::receive_buffer_size>(ec);
        CHECK(ec == std::errc::bad_file_descriptor);
        CHECK(value.value == 0);
        CHECK_THROWS_WITH(client.get_option<conet::option::reuse_port>(),
                          Catch::Matchers::StartsWith("getsockopt(SO_REUSEPORT): "));
    };
    run_bounded(body());
}

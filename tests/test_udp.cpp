// Tests for conet/udp.hpp over loopback: send_to/recv_from, waiting receivers, truncation,
// and connected sockets.
#include <conet/time.hpp>
#include <conet/udp.hpp>
#include <conet/when.hpp>

#include <chrono>
#include <string>
#include <system_error>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

TEST_CASE("send_to and recv_from round trip with the sender's endpoint", "[udp]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::bind(any_loopback_port());
        const auto to = receiver.local_endpoint();

        // The receiver waits first; the datagram arrives while it is suspended.
        std::string got;
        conet::endpoint from;
        conet::reactor::current()->spawn(
            [](conet::udp_socket& s, std::string& text, conet::endpoint& who) -> conet::task<> {
                char buf[64];
                auto [size, sender_ep] = co_await s.recv_from(buf);
                text.assign(buf, size);
                who = sender_ep;
                co_await s.send_to("ack", sender_ep);
            }(receiver, got, from));
        co_await conet::yield();

        const auto sent = co_await sender.send_to("hello udp", to);
        CHECK(sent == 9);
        char reply[16];
        auto [n, replier] = co_await sender.recv_from(reply);
        CHECK(std::string(reply, n) == "ack");
        CHECK(replier == to);
        CHECK(got == "hello udp");
        CHECK(from == sender.local_endpoint());
    };
    run_bounded(body());
}

TEST_CASE("a datagram larger than the buffer is reported, not silently cut", "[udp]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        const std::string big(100, 'z');
        co_await sender.send_to(big, receiver.local_endpoint());
        co_await sender.send_to(big, receiver.local_endpoint());
        char small[10];
        try {
            co_await receiver.recv_from(small);
            FAIL("truncation not reported");
        } catch (const std::system_error& e) {
            CHECK(e.code() == conet::error::datagram_truncated);
            CHECK(std::string(e.what()) == "recv_from: Datagram larger than the receive buffer");
        }
        std::error_code ec;
        auto [size, from] = co_await receiver.recv_from(small, ec);
        CHECK(ec == conet::error::datagram_truncated);
        CHECK(size == sizeof small); // what fitted is still delivered
        CHECK(std::string(small, size) == std::string(10, 'z'));
        CHECK(from.address().is_loopback());
    };
    run_bounded(body());
}

TEST_CASE("connected UDP sockets send and recv, and see refusals", "[udp]") {
    auto body = []() -> conet::task<> {
        auto a = conet::udp_socket::bind(any_loopback_port());
        auto b = conet::udp_socket::bind(any_loopback_port());
        a.connect(b.local_endpoint());
        b.connect(a.local_endpoint());
        co_await a.send("ping");
        char buf[8];
        const auto n = co_await b.recv(buf);
        CHECK(std::string(buf, n) == "ping");

        // Nobody listens at the port: the ICMP error comes back on the connected socket.
        const refused_port dead(refused_port::protocol::udp);
        auto c = conet::udp_socket::open();
        c.connect(dead.endpoint());
        co_await c.send("anyone?");
        std::error_code ec;
        co_await c.recv(buf, ec);
        CHECK(ec == std::errc::connection_refused);
    };
    run_bounded(body());
}

TEST_CASE("after a refusal is reported, a connected UDP socket waits for data again", "[udp]") {
    using namespace std::chrono_literals;
    auto body = []() -> conet::task<> {
        const refused_port dead(refused_port::protocol::udp);
        auto c = conet::udp_socket::open();
        c.connect(dead.endpoint());
        // The receive waits (registered with the reactor) when the ICMP error comes back.
        std::error_code recv_ec;
        char buf[8];
        auto receive = [&]() -> conet::task<> {
            co_await conet::with_timeout(c.recv(buf, recv_ec), 2s);
        };
        auto send_later = [&]() -> conet::task<> {
            co_await conet::sleep_for(10ms);
            co_await c.send("anyone?");
        };
        co_await conet::when_all(receive(), send_later());
        CHECK(recv_ec == std::errc::connection_refused);
        // The error was read: nothing is pending, so a wait for data waits.
        std::error_code ec;
        int returned_at_once = 0;
        for (int i = 0; i < 3; ++i) {
            co_await conet::with_timeout(c.wait_readable(ec), 30ms);
            if (!ec) ++returned_at_once;
        }
        CHECK(returned_at_once == 0);
    };
    run_bounded(body());
}

TEST_CASE("wait_readable ends at once while datagrams are queued, wait_writable each time",
          "[udp]") {
    using namespace std::chrono_literals;
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::bind(any_loopback_port());
        co_await sender.send_to("one", receiver.local_endpoint());
        co_await sender.send_to("two", receiver.local_endpoint());
        std::error_code ec;
        char buf[8];
        co_await conet::with_timeout(receiver.wait_readable(ec), 2s);
        REQUIRE(!ec);
        co_await receiver.recv_from(buf); // "one": "two" is still queued
        co_await conet::with_timeout(receiver.wait_readable(ec), 500ms);
        CHECK(!ec); // not timed_out: the queued datagram needs no new edge
        const auto [size, from] = co_await receiver.recv_from(buf);
        CHECK(std::string(buf, size) == "two");
        for (int i = 0; i < 3; ++i) { // a UDP socket always has room
            co_await conet::with_timeout(sender.wait_writable(ec), 500ms);
            CHECK(!ec);
        }
    };
    run_bounded(body());
}

TEST_CASE("an empty buffer receives one datagram, which fits only if it is empty", "[udp]") {
    // UDP has no end of stream: a size of 0 is an empty datagram, so an empty buffer is
    // allowed and waits for the next datagram like any other.
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::bind(any_loopback_port());
        co_await sender.send_to(conet::const_buffer{}, receiver.local_endpoint());
        co_await sender.send_to("x", receiver.local_endpoint());
        auto [size, from] = co_await receiver.recv_from(conet::mutable_buffer{});
        CHECK(size == 0);
        CHECK(from == sender.local_endpoint());
        std::error_code ec;
        auto [cut, who] = co_await receiver.recv_from(conet::mutable_buffer{}, ec);
        CHECK(ec == conet::error::datagram_truncated);
        CHECK(cut == 0);
        CHECK(who == sender.local_endpoint());

        // The connected form behaves the same.
        receiver.connect(sender.local_endpoint());
        co_await sender.send_to(conet::const_buffer{}, receiver.local_endpoint());
        const auto empty = co_await receiver.recv(conet::mutable_buffer{});
        CHECK(empty == 0);
    };
    run_bounded(body());
}

TEST_CASE("a connected UDP socket knows its peer", "[udp]") {
    auto a = conet::udp_socket::bind(any_loopback_port());
    auto b = conet::udp_socket::bind(any_loopback_port());
    std::error_code ec;
    a.peer_endpoint(ec);
    CHECK(ec == std::errc::not_connected);
    CHECK_THROWS_WITH(a.peer_endpoint(), "getpeername: Transport endpoint is not connected");
    a.connect(b.local_endpoint());
    CHECK(a.peer_endpoint() == b.local_endpoint());
    CHECK(a.peer_endpoint(ec) == b.local_endpoint());
    CHECK_FALSE(ec);
}

TEST_CASE("UDP over IPv6 loopback", "[udp]") {
    auto body = []() -> conet::task<> {
        std::error_code ec;
        auto receiver =
            conet::udp_socket::bind({conet::ip_address::loopback(conet::ip_family::v6), 0}, ec);
        if (ec) {
            CONET_REPORT_SKIP("no IPv6 loopback here: " << ec.message());
            co_return;
        }
        auto sender = conet::udp_socket::open(conet::ip_family::v6);
        co_await sender.send_to("v6", receiver.local_endpoint());
        char buf[4];
        auto [n, from] = co_await receiver.recv_from(buf);
        CHECK(std::string(buf, n) == "v6");
        CHECK(from.address().is_v6());
    };
    run_bounded(body());
}

TEST_CASE("broadcast needs SO_BROADCAST, and reaches every receiver on the port", "[udp]") {
    // Only to loopback's own broadcast address, 127.255.255.255: nothing leaves the machine.
    // The receivers bind 0.0.0.0, as a broadcast receiver must (a socket bound to 127.0.0.1
    // is not given broadcasts), with SO_REUSEADDR so that two of them share one port.
    auto body = []() -> conet::task<> {
        auto first =
            conet::udp_socket::bind({conet::ip_address::any(), 0}, {.reuse_address = true});
        const std::uint16_t port = first.local_endpoint().port();
        auto second =
            conet::udp_socket::bind({conet::ip_address::any(), port}, {.reuse_address = true});
        const conet::endpoint everyone{conet::ip_address::parse("127.255.255.255"), port};

        auto sender = conet::udp_socket::open();
        CHECK_FALSE(sender.get_option<conet::option::broadcast>().value);
        std::error_code ec;
        co_await sender.send_to("nobody hears this", everyone, ec);
        CHECK(ec == std::errc::permission_denied); // EACCES: broadcasting was not asked for

        sender.set_broadcast(true);
        CHECK(sender.get_option<conet::option::broadcast>().value);
        co_await sender.send_to("to all", everyone);
        for (conet::udp_socket* receiver : {&first, &second}) {
            char buf[64];
            auto [size, from] =
                co_await conet::with_timeout(receiver->recv_from(buf), std::chrono::seconds(2));
            CHECK(std::string(buf, size) == "to all");
            CHECK(from.address().is_loopback());
        }
        // Both got the one datagram, and nothing else came.
        char buf[64];
        co_await conet::with_timeout(first.recv_from(buf, ec), std::chrono::milliseconds(20));
        CHECK(ec == std::errc::timed_out);
    };
    run_bounded(body());
}

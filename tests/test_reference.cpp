// Rows of the README's reference table (tests/readme_reference.cpp compiles each one) that no
// other test ran: each is run here and its claim checked.
#include <conet/conet.hpp>
#include <conet/reactor_pool.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

namespace {

int int_option(int fd, int level, int name) {
    int value = -1;
    socklen_t length = sizeof value;
    if (::getsockopt(fd, level, name, &value, &length) < 0) return -1;
    return value;
}

// Reads until the peer's end of stream; what came.
conet::task<std::string> read_all(conet::tcp_stream& s) {
    std::string got;
    char buf[256];
    while (const std::size_t n = co_await s.recv(buf))
        got.append(buf, n);
    co_return got;
}

// The server's recv waits (the send comes a turn later); the byte it got.
conet::task<char> receive_before_send(conet::tcp_stream& client, conet::tcp_stream& server) {
    auto receive = [](conet::tcp_stream& s) -> conet::task<char> {
        char byte = 0;
        co_await s.recv({&byte, 1});
        co_return byte;
    };
    auto send_later = [](conet::tcp_stream& s) -> conet::task<> {
        co_await conet::yield();
        co_await s.send_all(std::string("x"));
    };
    auto [got, sent] = co_await conet::when_all(receive(server), send_later(client));
    co_return got;
}

} // namespace

TEST_CASE("leave_reactor with an operation waiting reports already_waiting", "[reference]") {
    auto body = []() -> conet::task<> {
        auto pair = co_await connected_pair();
        conet::task_group group;
        group.spawn([](conet::tcp_stream& s) -> conet::task<> {
            char byte;
            std::error_code ignored;
            co_await s.recv({&byte, 1}, ignored); // waits until the send below
        }(pair.server));
        co_await conet::yield(); // the recv is waiting now
        std::error_code ec;
        pair.server.leave_reactor(ec);
        CHECK(ec == conet::error::already_waiting);
        CHECK_THROWS_AS(pair.server.leave_reactor(), std::system_error);
        co_await pair.client.send_all(std::string("x"));
        co_await group.join();
        pair.server.leave_reactor(ec); // nothing waits any more
        CHECK_FALSE(ec);
    };
    run_bounded(body());
}

TEST_CASE("leave_reactor on another reactor's thread reports wrong_reactor", "[reference]") {
    conet::reactor first;
    auto pair = run_bounded(first, connected_pair());
    // A wait registers the stream with the first reactor: the recv starts before the send.
    CHECK(run_bounded(first, receive_before_send(pair.client, pair.server)) == 'x');
    conet::reactor second;
    const auto code = run_bounded(second, [](conet::tcp_stream& s) -> conet::task<std::error_code> {
        std::error_code ec;
        s.leave_reactor(ec);
        co_return ec;
    }(pair.server));
    CHECK(code == conet::error::wrong_reactor);
    // On its own reactor's thread (with none running) it may leave, and the other take it.
    pair.server.leave_reactor();
    pair.client.leave_reactor();
    const auto got = run_bounded(
        second, [](conet::tcp_stream& client, conet::tcp_stream& server) -> conet::task<char> {
            co_await client.send_all(std::string("y"));
            char byte = 0;
            co_await server.recv({&byte, 1});
            co_return byte;
        }(pair.client, pair.server));
    CHECK(got == 'y');
}

TEST_CASE("a UDP socket leaves one reactor and waits on another", "[reference]") {
    auto receiver = conet::udp_socket::bind(any_loopback_port());
    auto sender = conet::udp_socket::bind(any_loopback_port());
    // The receive waits (the datagram is sent a turn later): it registers `to` with the
    // reactor running the exchange.
    auto exchange = [](conet::udp_socket& from, conet::udp_socket& to,
                       std::string text) -> conet::task<std::string> {
        auto receive = [](conet::udp_socket& s) -> conet::task<std::string> {
            char buf[64];
            const auto got = co_await s.recv_from(buf);
            co_return std::string(buf, got.size);
        };
        auto send_later = [](conet::udp_socket& s, conet::endpoint to,
                             std::string text) -> conet::task<> {
            co_await conet::yield();
            co_await s.send_to(text, to);
        };
        auto [got, sent] =
            co_await conet::when_all(receive(to), send_later(from, to.local_endpoint(), text));
        co_return got;
    };
    conet::reactor first;
    CHECK(run_bounded(first, exchange(sender, receiver, "one")) == "one");
    receiver.leave_reactor();
    sender.leave_reactor();
    conet::reactor second;
    CHECK(run_bounded(second, exchange(sender, receiver, "two")) == "two");
}

TEST_CASE("shutdown ends each direction as asked", "[reference]") {
    auto body = []() -> conet::task<> {
        {
            // send: the peer reads to the end; this end still receives.
            auto pair = co_await connected_pair();
            co_await pair.client.send_all(std::string("last words"));
            pair.client.shutdown(conet::shutdown_type::send);
            const auto got = co_await read_all(pair.server);
            CHECK(got == "last words");
            co_await pair.server.send_all(std::string("reply"));
            pair.server.shutdown(); // send is the default
            const auto reply = co_await read_all(pair.client);
            CHECK(reply == "reply");
        }
        {
            // receive: this end's reads end at once; the peer's writes are not refused.
            auto pair = co_await connected_pair();
            pair.server.shutdown(conet::shutdown_type::receive);
            char buf[8];
            const std::size_t n = co_await pair.server.recv(buf);
            CHECK(n == 0);
            co_await pair.server.send_all(std::string("still sends"));
            pair.server.shutdown(conet::shutdown_type::send);
            const auto got = co_await read_all(pair.client);
            CHECK(got == "still sends");
        }
        {
            // both: the peer reads to the end and this end's reads end at once.
            auto pair = co_await connected_pair();
            pair.client.shutdown(conet::shutdown_type::both);
            char buf[8];
            const std::size_t n = co_await pair.client.recv(buf);
            CHECK(n == 0);
            const auto got = co_await read_all(pair.server);
            CHECK(got.empty());
            std::error_code ec;
            co_await pair.client.send(std::string("no"), ec);
            CHECK(ec == std::errc::broken_pipe);
        }
    };
    run_bounded(body());
}

TEST_CASE("recv_exact cut short throws transfer_error with the bytes it moved", "[reference]") {
    auto body = []() -> conet::task<> {
        auto pair = co_await connected_pair();
        co_await pair.client.send_all(std::string("abc"));
        pair.client.close();
        std::array<char, 8> buf{};
        try {
            co_await pair.server.recv_exact(buf);
            FAIL("recv_exact returned");
        } catch (const conet::transfer_error& e) {
            CHECK(e.code() == conet::error::end_of_stream);
            CHECK(e.transferred() == 3);
            CHECK(std::string(buf.data(), 3) == "abc");
        }
    };
    run_bounded(body());
}

TEST_CASE("ip_address::v6 from bytes, and the error category", "[reference]") {
    const auto a =
        conet::ip_address::v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a});
    CHECK(a.to_string() == "2001:db8::2a");
    CHECK(a == conet::ip_address::parse("2001:db8::2a"));
    CHECK(a.bytes().size() == 16);
    CHECK(a.bytes()[15] == 0x2a);
    CHECK(conet::ip_address::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}) ==
          conet::ip_address::loopback(conet::ip_family::v6));

    const std::error_code ec = conet::error::line_too_long;
    CHECK(&ec.category() == &conet::error_category());
    CHECK(std::string(conet::error_category().name()) == "conet");
    CHECK(ec.message() == "Line longer than the reader's limit");
    CHECK(ec != std::make_error_code(std::errc::message_size)); // not a generic code
}

TEST_CASE("tcp_listener::bind(endpoint, backlog) reuses the address and listens", "[reference]") {
    auto body = []() -> conet::task<> {
        auto listener = conet::tcp_listener::bind(any_loopback_port(), 1);
        CHECK(int_option(listener.native_handle(), SOL_SOCKET, SO_REUSEADDR) == 1);
        CHECK(int_option(listener.native_handle(), SOL_SOCKET, SO_ACCEPTCONN) == 1);
        auto client = co_await conet::tcp_stream::connect(listener.local_endpoint());
        auto [server, peer] = co_await listener.accept();
        CHECK(peer == client.local_endpoint());
    };
    run_bounded(body());
}

TEST_CASE("udp_options.v6_only decides whether a socket on :: takes the IPv4 port too",
          "[reference]") {
    std::error_code ec;
    auto only = conet::udp_socket::bind({conet::ip_address::any(conet::ip_family::v6), 0},
                                        {.v6_only = true}, ec);
    if (ec) {
        CONET_REPORT_SKIP("no IPv6 here: " << ec.message());
        return;
    }
    CHECK(only.get_option<conet::option::v6_only>().value);
    // The same port on IPv4 is free: a v6-only socket does not hold it.
    const std::uint16_t port = only.local_endpoint().port();
    auto v4 = conet::udp_socket::bind({conet::ip_address::any(), port}, ec);
    CHECK_FALSE(ec);

    auto dual = conet::udp_socket::bind({conet::ip_address::any(conet::ip_family::v6), 0},
                                        {.v6_only = false});
    CHECK_FALSE(dual.get_option<conet::option::v6_only>().value);
    auto taken =
        conet::udp_socket::bind({conet::ip_address::any(), dual.local_endpoint().port()}, ec);
    CHECK(ec == std::errc::address_in_use);
}

TEST_CASE("reactor_pool's default size is one reactor per hardware thread", "[reference]") {
    const unsigned hardware = std::thread::hardware_concurrency();
    conet::reactor_pool pool;
    CHECK(pool.size() == (hardware == 0 ? 1 : hardware));
    std::atomic<std::size_t> ran{0};
    pool.run([&ran](std::size_t) -> conet::task<> {
        ran.fetch_add(1);
        co_return;
    });
    CHECK(ran.load() == pool.size());
}

TEST_CASE("the default failure handler prints the failure on stderr", "[reference]") {
    // Standard error goes to a file for the run.
    char path[] = "/tmp/conet-stderr-XXXXXX";
    const int file = ::mkstemp(path);
    REQUIRE(file >= 0);
    ::unlink(path);
    std::fflush(stderr);
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(file, STDERR_FILENO);
    {
        conet::reactor r;
        r.spawn([]() -> conet::task<> {
            throw std::runtime_error("the disk is full");
            co_return;
        }());
        watchdog guard(r);
        r.run();
    }
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string text(256, '\0');
    const auto n = ::pread(file, text.data(), text.size(), 0);
    ::close(file);
    REQUIRE(n >= 0);
    text.resize(static_cast<std::size_t>(n));
    CHECK(text == "conet: a task failed: the disk is full\n");
}

namespace {

std::atomic<bool> helper_blocks_all{false};
std::atomic<bool> helper_ran{false};

// The lookup helper's own signal mask, recorded in place of a lookup.
bool record_signal_mask(const std::string&, std::vector<conet::endpoint>& found,
                        std::error_code& ec) {
    sigset_t blocked;
    sigemptyset(&blocked);
    pthread_sigmask(SIG_BLOCK, nullptr, &blocked);
    bool all = true;
    for (int s = 1; s < NSIG; ++s)
        if (s != SIGKILL && s != SIGSTOP && (s < 32 || s >= SIGRTMIN)) // (glibc's own are free)
            all = all && sigismember(&blocked, s) == 1;
    helper_blocks_all = all;
    helper_ran = true;
    found = {conet::endpoint(conet::ip_address::loopback(), 1)};
    ec.clear();
    return true;
}

} // namespace

TEST_CASE("the lookup helper thread runs with every signal blocked", "[reference]") {
    conet::detail::resolve_test_hook.store(&record_signal_mask);
    auto body = []() -> conet::task<std::vector<conet::endpoint>> {
        co_return co_await conet::async_resolve("signals.test", "1");
    };
    std::vector<conet::endpoint> found;
    try {
        found = run_bounded(body());
    } catch (...) {
        conet::detail::resolve_test_hook.store(nullptr);
        throw;
    }
    conet::detail::resolve_test_hook.store(nullptr);
    CHECK(found.size() == 1);
    CHECK(helper_ran);
    CHECK(helper_blocks_all);
}

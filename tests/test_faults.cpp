// Misbehaving peers: resets mid-message, half-closes, peers that stop reading, never send,
// or send one byte at a time; the reactor destroyed mid-transfer. Each test checks the exact
// error the user sees, and (through the runner's descriptor check) that nothing leaks.
#include <conet/conet.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "catch.hpp"
#include "descriptor_check.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

TEST_CASE("the descriptor check sees a socket left open, and its closing", "[faults]") {
    const auto before = open_descriptors();
    conet::tcp_listener listener = conet::tcp_listener::bind(any_loopback_port());
    const std::string leaked = new_descriptors(before, open_descriptors());
    CHECK(leaked.find("socket:[") != std::string::npos);
    listener.close();
    CHECK(new_descriptors(before, open_descriptors()).empty());
}

TEST_CASE("a peer that resets in the middle of a line: read_line fails with connection_reset",
          "[faults]") {
    auto test = []() -> conet::task<std::error_code> {
        auto pair = co_await connected_pair();
        co_await pair.client.send_all("the first line\nhalf a li");
        conet::line_reader lines{pair.server};
        auto first = co_await lines.read_line();
        if (first != "the first line") throw std::runtime_error("lost the complete line");
        reset(pair.client);
        std::error_code ec;
        auto rest = co_await lines.read_line(ec);
        if (rest) throw std::runtime_error("a partial line was returned as a line");
        co_return ec;
    };
    CHECK(run_bounded(test()) == std::errc::connection_reset);
}

TEST_CASE("a peer that resets mid-message: recv_exact fails with connection_reset", "[faults]") {
    auto test = []() -> conet::task<std::error_code> {
        auto pair = co_await connected_pair();
        co_await pair.client.send_all("ten bytes!");
        std::array<char, 100> message{};
        std::error_code ec;
        // Waits for the other 90 bytes; the reset ends the wait.
        auto reader = [](conet::tcp_stream& s, std::array<char, 100>& buf,
                         std::error_code& out) -> conet::task<> {
            co_await s.recv_exact(buf, out);
        };
        auto resetter = [](conet::tcp_stream& s) -> conet::task<> {
            co_await conet::sleep_for(20ms);
            reset(s);
        };
        co_await conet::when_all(reader(pair.server, message, ec), resetter(pair.client));
        co_return ec;
    };
    CHECK(run_bounded(test()) == std::errc::connection_reset);
}

TEST_CASE("a half-closed peer: its last line, then end of stream, and it still hears us",
          "[faults]") {
    auto test = []() -> conet::task<std::vector<std::string>> {
        auto pair = co_await connected_pair();
        co_await pair.client.send_all("last words\n");
        pair.client.shutdown(); // no more from the client; it can still read
        std::vector<std::string> seen;
        conet::line_reader lines{pair.server};
        while (auto line = co_await lines.read_line())
            seen.push_back(*line);
        seen.push_back("<end>");
        co_await pair.server.send_all("goodbye\n");
        pair.server.close();
        conet::line_reader answers{pair.client};
        while (auto line = co_await answers.read_line())
            seen.push_back(*line);
        co_return seen;
    };
    CHECK(run_bounded(test()) == std::vector<std::string>{"last words", "<end>", "goodbye"});
}

TEST_CASE("a peer that stops reading: send_all waits, then finishes once it drains", "[faults]") {
    constexpr std::size_t total = 8 * 1024 * 1024; // far beyond both socket buffers
    auto test = []() -> conet::task<std::size_t> {
        auto pair = co_await connected_pair();
        std::string data(total, '\0');
        for (std::size_t i = 0; i < total; ++i)
            data[i] = pattern_byte(i);
        bool sent = false;
        auto sender = [](conet::tcp_stream& s, const std::string& d, bool& done) -> conet::task<> {
            co_await s.send_all(d);
            done = true;
        };
        auto slow_reader = [](conet::tcp_stream& s, const bool& done) -> conet::task<std::size_t> {
            // The sender fills the buffers and must wait; this coroutine still runs meanwhile.
            co_await conet::sleep_for(200ms);
            if (done) throw std::runtime_error("send_all finished although nobody read");
            std::vector<char> buf(64 * 1024);
            std::size_t verified = 0;
            while (verified < total) {
                const std::size_t n = co_await s.recv(buf);
                if (n == 0) break;
                for (std::size_t i = 0; i < n; ++i)
                    if (buf[i] != pattern_byte(verified + i)) co_return verified + i;
                verified += n;
            }
            co_return verified;
        };
        auto [nothing, received] = co_await conet::when_all(sender(pair.server, data, sent),
                                                            slow_reader(pair.client, sent));
        if (!sent) throw std::runtime_error("send_all did not finish");
        co_return received;
    };
    CHECK(run_bounded(test(), 20s) == total);
}

TEST_CASE("a peer that connects and never sends: the timeout ends the wait, the server goes on",
          "[faults]") {
    auto test = []() -> conet::task<std::vector<std::string>> {
        auto listener = conet::tcp_listener::bind(any_loopback_port());
        std::vector<std::string> log;
        auto silent = co_await conet::tcp_stream::connect(listener.local_endpoint());
        {
            auto [conn, peer] = co_await listener.accept();
            conet::line_reader lines{conn};
            std::error_code ec;
            auto line = co_await conet::with_timeout(lines.read_line(ec), 100ms);
            log.push_back(line ? "line" : ec == std::errc::timed_out ? "timed out" : ec.message());
        } // the server drops the silent client
        auto chatty = co_await conet::tcp_stream::connect(listener.local_endpoint());
        co_await chatty.send_all("hello\n");
        auto [conn, peer] = co_await listener.accept();
        conet::line_reader lines{conn};
        auto line = co_await conet::with_timeout(lines.read_line(), 5s);
        log.push_back(line.value_or("<end>"));
        // The silent client sees that the server hung up.
        char byte;
        log.push_back(co_await silent.recv({&byte, 1}) == 0 ? "silent client: end" : "data?");
        co_return log;
    };
    CHECK(run_bounded(test()) ==
          std::vector<std::string>{"timed out", "hello", "silent client: end"});
}

TEST_CASE("a peer that sends one byte at a time: every line arrives whole", "[faults]") {
    const std::string text = "hello world\r\nsecond line\n\nlast, unterminated";
    auto test = [](std::string all) -> conet::task<std::vector<std::string>> {
        auto pair = co_await connected_pair();
        pair.client.set_nodelay(true);
        auto trickle = [](conet::tcp_stream& s, const std::string& bytes) -> conet::task<> {
            for (char c : bytes) {
                co_await s.send_all({&c, 1});
                co_await conet::sleep_for(1ms); // one segment each: the reader sees them apart
            }
            s.shutdown();
        };
        auto collect = [](conet::tcp_stream& s) -> conet::task<std::vector<std::string>> {
            std::vector<std::string> lines_seen;
            conet::line_reader lines{s};
            while (auto line = co_await lines.read_line())
                lines_seen.push_back(*line);
            co_return lines_seen;
        };
        auto [nothing, lines] =
            co_await conet::when_all(trickle(pair.client, all), collect(pair.server));
        co_return lines;
    };
    CHECK(run_bounded(test(text)) ==
          std::vector<std::string>{"hello world", "second line", "", "last, unterminated"});
}

TEST_CASE("destroying the reactor mid-transfer frees the frames, and the peer sees the end",
          "[faults]") {
    constexpr std::size_t total = 8 * 1024 * 1024;
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    // The receiver is a plain blocking socket that belongs to no reactor, so it outlives the
    // one the transfer runs on. The listen backlog completes its connect.
    const int receiver = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(receiver >= 0);
    const conet::detail::sockaddr_any to(listener.local_endpoint());
    REQUIRE(::connect(receiver, to.get(), to.length) == 0);
    timeval limit{5, 0}; // a bound on each recv below, should the end never come
    ::setsockopt(receiver, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);

    bool sender_destroyed = false;
    {
        conet::reactor r;
        auto sender = [](conet::tcp_listener& l, bool* flag) -> conet::task<> {
            destroy_flag f{flag};
            auto [conn, peer] = co_await l.accept();
            const std::string data(total, 'x');
            co_await conn.send_all(data); // nobody reads yet: this waits
        };
        r.spawn(sender(listener, &sender_destroyed));
        r.spawn([]() -> conet::task<> {
            co_await conet::sleep_for(100ms); // long enough to fill the socket buffers
            conet::reactor::current()->stop();
        }());
        watchdog guard(r, 5s);
        r.run(); // until stop()
        CHECK_FALSE(sender_destroyed);
    } // the reactor goes, with the suspended sender and the connection it owned
    CHECK(sender_destroyed);

    // What was sent arrives, then the end of the stream: nothing is stuck half-open.
    std::vector<char> buf(64 * 1024);
    std::size_t received = 0;
    long n;
    while ((n = ::recv(receiver, buf.data(), buf.size(), 0)) > 0)
        received += static_cast<std::size_t>(n);
    CHECK(n == 0);
    CHECK(received > 0);
    CHECK(received < total);
    ::close(receiver);
}

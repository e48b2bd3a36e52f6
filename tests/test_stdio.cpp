// Tests for conet/stdio.hpp: standard input read on the reactor, from a pipe (waited for,
// while other coroutines run) and from a regular file (read directly).
#include <conet/conet.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

namespace {

// Puts `fd` on descriptor 0 for the scope, then restores the real standard input.
class stdin_replaced {
public:
    explicit stdin_replaced(int fd) : saved_(::dup(STDIN_FILENO)) {
        REQUIRE(::dup2(fd, STDIN_FILENO) == STDIN_FILENO);
        ::close(fd);
    }
    ~stdin_replaced() {
        ::dup2(saved_, STDIN_FILENO);
        ::close(saved_);
    }
    stdin_replaced(const stdin_replaced&) = delete;
    stdin_replaced& operator=(const stdin_replaced&) = delete;

private:
    int saved_;
};

} // namespace

TEST_CASE("standard input from a pipe is waited for on the reactor", "[stdio]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    stdin_replaced replaced(fds[0]);
    const int writer = fds[1];
    // The user types only once the reactor has ticked five times with standard input silent:
    // a read that blocked the thread would keep the ticks from coming, and the line with them.
    std::promise<void> ticked;
    ssize_t written = -1; // checked after join: Catch2 assertions are for the main thread only
    std::thread typist([writer, &written, told = ticked.get_future()] {
        if (told.wait_for(10s) == std::future_status::ready) {
            const std::string text = "first line\nsecond\n";
            written = ::write(writer, text.data(), text.size());
        }
        ::close(writer); // else: the reader sees end of stream, and the test fails
    });
    auto body = [](std::promise<void>& ticked) -> conet::task<std::vector<std::string>> {
        int ticks = 0;
        conet::reactor::current()->spawn([](int& t, std::promise<void>& done) -> conet::task<> {
            for (int i = 0; i < 5; ++i) {
                co_await conet::sleep_for(std::chrono::milliseconds(1));
                ++t;
            }
            done.set_value();
        }(ticks, ticked));
        conet::standard_input input;
        conet::line_reader lines{input};
        std::vector<std::string> got;
        while (auto line = co_await lines.read_line()) {
            CHECK(ticks == 5); // nothing came before the ticks: the reactor ran meanwhile
            got.push_back(*line);
        }
        co_return got;
    };
    const auto got = run_bounded(body(ticked));
    typist.join();
    CHECK(written == 18);
    CHECK(got == std::vector<std::string>{"first line", "second"});
    CHECK((::fcntl(STDIN_FILENO, F_GETFL) & O_NONBLOCK) == 0); // mode restored
}

TEST_CASE("standard input from a regular file is read directly", "[stdio]") {
    char path[] = "/tmp/conet-stdin-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    const std::string text = "alpha\nbeta";
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::lseek(fd, 0, SEEK_SET);
    stdin_replaced replaced(fd);
    auto body = []() -> conet::task<std::vector<std::string>> {
        conet::standard_input input;
        conet::line_reader lines{input};
        std::vector<std::string> got;
        while (auto line = co_await lines.read_line())
            got.push_back(*line);
        co_return got;
    };
    CHECK(run_bounded(body()) == std::vector<std::string>{"alpha", "beta"});
}

TEST_CASE("a read_line of standard input that loses a when_any keeps what was typed",
          "[stdio][line_reader]") {
    // A program that waits for the keyboard or a socket (chat_server) cancels the keyboard's
    // read_line whenever the socket comes first: neither a half-typed line nor a line typed
    // in full may be lost to it.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    stdin_replaced replaced(fds[0]);
    const int typist = fds[1];
    auto body = [](int writer) -> conet::task<std::vector<std::string>> {
        conet::standard_input input;
        conet::line_reader lines{input};
        std::error_code lost_ec;
        auto read = [](conet::line_reader& from,
                       std::error_code& ec) -> conet::task<std::optional<std::string>> {
            co_return co_await from.read_line(ec);
        };
        auto pause = [](std::chrono::milliseconds d) -> conet::task<> {
            co_await conet::sleep_for(d);
        };
        auto at_once = []() -> conet::task<> { co_return; };
        std::vector<std::string> got;

        // Half a line typed: the read waits for the rest, and loses to a timer.
        CHECK(::write(writer, "half ", 5) == 5);
        auto first = co_await conet::when_any(read(lines, lost_ec), pause(50ms));
        CHECK(first.index() == 1);
        CHECK(lost_ec == std::errc::operation_canceled);
        CHECK(lines.buffered() == "half "); // it was read, and kept

        // The rest comes, with a whole line behind it.
        CHECK(::write(writer, "line\nnext\n", 10) == 10);
        if (auto line = co_await lines.read_line()) got.push_back(*line);
        CHECK(lines.buffered() == "next\n");

        // A read that starts after its when_any is decided does not take the buffered line.
        lost_ec = {};
        const auto second = co_await conet::when_any(at_once(), read(lines, lost_ec));
        CHECK(second.index() == 0);
        CHECK(lost_ec == std::errc::operation_canceled);
        CHECK(lines.buffered() == "next\n");

        ::close(writer);
        while (auto line = co_await lines.read_line())
            got.push_back(*line);
        co_return got;
    };
    CHECK(run_bounded(body(typist)) == std::vector<std::string>{"half line", "next"});
}

// Tests for conet/line_reader.hpp over loopback TCP: lines split across reads, CRLF, a last
// line without newline, the length limit, and both result forms.
#include <conet/line_reader.hpp>
#include <conet/tcp.hpp>
#include <conet/time.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

namespace {

// Sends `pieces` from a plain blocking thread with pauses between them, so the reader really
// sees the lines arrive split across several reads; then closes its end.
class slow_peer {
public:
    slow_peer(conet::tcp_stream& s, std::vector<std::string> pieces)
        : thread_([fd = s.native_handle(), pieces = std::move(pieces)] {
              for (const auto& piece : pieces) {
                  std::size_t done = 0;
                  while (done < piece.size()) {
                      const auto n =
                          ::send(fd, piece.data() + done, piece.size() - done, MSG_NOSIGNAL);
                      if (n <= 0) {
                          if (errno == EAGAIN) continue; // the descriptor is non-blocking
                          return;
                      }
                      done += static_cast<std::size_t>(n);
                  }
                  std::this_thread::sleep_for(5ms);
              }
              ::shutdown(fd, SHUT_WR);
          }) {}
    ~slow_peer() { thread_.join(); }
    slow_peer(const slow_peer&) = delete;
    slow_peer& operator=(const slow_peer&) = delete;

private:
    std::thread thread_;
};

// Reads every line from a peer that sends `pieces`.
std::vector<std::string>
read_all_lines(std::vector<std::string> pieces,
               std::size_t max_line = conet::line_reader::default_max_line_length) {
    auto body = [](std::vector<std::string> p,
                   std::size_t limit) -> conet::task<std::vector<std::string>> {
        auto [writer, reader] = co_await connected_pair();
        slow_peer peer(writer, std::move(p));
        conet::line_reader lines(reader, limit);
        std::vector<std::string> got;
        while (auto line = co_await lines.read_line())
            got.push_back(*line);
        // End of stream is sticky.
        const auto after_end = co_await lines.read_line();
        CHECK_FALSE(after_end.has_value());
        co_return got;
    };
    return run_bounded(body(std::move(pieces), max_line));
}

using lines = std::vector<std::string>;

// Sends `text` in pieces of `piece` bytes, letting the reader run after each one, so that a
// long line reaches it through many reads; then ends the stream.
conet::task<> send_in_pieces(conet::tcp_stream& s, std::string text, std::size_t piece) {
    for (std::size_t at = 0; at < text.size(); at += piece) {
        co_await s.send_all(std::string_view(text).substr(at, piece));
        co_await conet::yield();
    }
    s.shutdown();
}

} // namespace

TEST_CASE("lines split across reads are joined", "[line_reader]") {
    CHECK(read_all_lines({"hel", "lo\nwor", "ld\n", "\n", "x", "y", "z\n"}) ==
          lines{"hello", "world", "", "xyz"});
}

TEST_CASE("CRLF terminators are stripped, even when split between reads", "[line_reader]") {
    CHECK(read_all_lines({"one\r\ntwo\r", "\nthree\n"}) == lines{"one", "two", "three"});
    CHECK(read_all_lines({"a\rb\n"}) == lines{"a\rb"}); // a lone CR is data
}

TEST_CASE("a last line without newline is returned at end of stream", "[line_reader]") {
    CHECK(read_all_lines({"first\nlast"}) == lines{"first", "last"});
    CHECK(read_all_lines({}) == lines{});
    CHECK(read_all_lines({"first\r\nlast\r"}) == lines{"first", "last\r"}); // no '\n': data
}

TEST_CASE("a line at the limit passes, a longer one is line_too_long", "[line_reader]") {
    const std::string at_limit(100, 'a');
    CHECK(read_all_lines({at_limit + "\r\n", "ok\n"}, 100) == lines{at_limit, "ok"});

    auto body = []() -> conet::task<> {
        auto [writer, reader] = co_await connected_pair();
        // 1 MiB without a newline, against a 64 KiB limit: must fail, not buffer it all.
        slow_peer peer(writer, {"short\n", std::string(1 << 20, 'x')});
        conet::line_reader lines(reader);
        const auto first = co_await lines.read_line();
        CHECK(first == "short");
        try {
            co_await lines.read_line();
            FAIL("an oversize line was accepted");
        } catch (const std::system_error& e) {
            CHECK(e.code() == conet::error::line_too_long);
            CHECK(std::string(e.what()) == "read_line: Line longer than the reader's limit");
        }
        reader.close(); // what a server does with such a peer (unblocks the sender too)
    };
    run_bounded(body());

    auto exact = []() -> conet::task<> {
        auto [writer, reader] = co_await connected_pair();
        slow_peer peer(writer, {std::string(11, 'y') + "\n"});
        conet::line_reader lines(reader, 10);
        std::error_code ec;
        auto line = co_await lines.read_line(ec);
        CHECK_FALSE(line.has_value());
        CHECK(ec == conet::error::line_too_long);
    };
    run_bounded(exact());
}

TEST_CASE("after line_too_long every read fails the same way, never with the line's tail",
          "[line_reader]") {
    auto body = []() -> conet::task<> {
        auto [writer, reader] = co_await connected_pair();
        co_await writer.send_all(conet::const_buffer("AAAAAAAAAAQUIT\nnext\n"));
        writer.shutdown();
        conet::line_reader lines(reader, 8);
        for (int i = 0; i < 3; ++i) {
            std::error_code ec;
            const auto line = co_await lines.read_line(ec);
            CHECK_FALSE(line.has_value());
            CHECK(ec == conet::error::line_too_long);
        }
    };
    run_bounded(body());
}

TEST_CASE("a connection reset mid-line fails every later read: the half line is never a line",
          "[line_reader]") {
    auto body = []() -> conet::task<> {
        auto [writer, reader] = co_await connected_pair();
        co_await writer.send_all(conet::const_buffer("GET /adm"));
        conet::line_reader lines(reader);
        std::error_code ec;
        auto line = co_await conet::with_timeout(lines.read_line(ec), 50ms); // half a line
        CHECK(ec == std::errc::timed_out);
        reset(writer);
        for (int i = 0; i < 3; ++i) {
            line = co_await lines.read_line(ec);
            CHECK_FALSE(line.has_value());
            CHECK(ec == std::errc::connection_reset);
        }
    };
    run_bounded(body());
}

TEST_CASE("read_line into a caller's string reuses it", "[line_reader]") {
    auto body = []() -> conet::task<> {
        auto [writer, reader] = co_await connected_pair();
        slow_peer peer(writer, {"alpha\nbeta\n"});
        conet::line_reader lines(reader);
        std::string line;
        bool got = co_await lines.read_line(line);
        CHECK(got);
        CHECK(line == "alpha");
        const auto* storage = line.data();
        got = co_await lines.read_line(line);
        CHECK(got);
        CHECK(line == "beta");
        CHECK(line.data() == storage); // same buffer: nothing reallocated
        got = co_await lines.read_line(line);
        CHECK_FALSE(got);
        CHECK(lines.buffered().empty());
    };
    run_bounded(body());
}

TEST_CASE("many lines in one read are served from the buffer", "[line_reader]") {
    std::string text;
    lines expected;
    for (int i = 0; i < 5000; ++i) {
        expected.push_back("line " + std::to_string(i));
        text += expected.back() + '\n';
    }
    CHECK(read_all_lines({text}) == expected);
}

TEST_CASE("a limit of SIZE_MAX means no limit", "[line_reader]") {
    constexpr auto no_limit = SIZE_MAX;
    CHECK(read_all_lines({"a\n", "bb\r", "\n", std::string(100'000, 'c') + "\nlast"}, no_limit) ==
          lines{"a", "bb", std::string(100'000, 'c'), "last"});
    CHECK(read_all_lines({"a\n", "bb\r\nccc"}, no_limit - 1) == lines{"a", "bb", "ccc"});
}

TEST_CASE("long lines in many small pieces: each byte scanned once, lines intact",
          "[line_reader]") {
    // The reader scans only the bytes each read adds; a newline, a '\r' before it, the limit
    // and the lines behind a long one must come out as when the whole text arrives at once.
    constexpr std::size_t limit = 256 * 1024;
    std::string text = std::string(limit, 'a') + "\r\n"; // exactly at the limit, CRLF
    text += "short\n\nx\r\n";                            // several lines in one piece
    text += std::string(limit - 1, 'b') + "\n";
    text += std::string(limit / 2, 'c') + "\ntail"; // no newline at the end
    const lines expected{std::string(limit, 'a'),     "short", "", "x", std::string(limit - 1, 'b'),
                         std::string(limit / 2, 'c'), "tail"};
    auto body = [](std::string all, std::size_t piece, std::size_t max) -> conet::task<lines> {
        auto [writer, reader] = co_await connected_pair();
        conet::line_reader lines(reader, max);
        auto read_all = [](conet::line_reader& from) -> conet::task<std::vector<std::string>> {
            std::vector<std::string> got;
            std::error_code ec;
            while (auto line = co_await from.read_line(ec))
                got.push_back(*line);
            if (ec) got.push_back("<" + ec.message() + ">");
            co_return got;
        };
        auto [sent, got] = co_await conet::when_all(send_in_pieces(writer, std::move(all), piece),
                                                    read_all(lines));
        co_return got;
    };
    for (std::size_t piece : {4096u, 4097u, 1000u, 61u}) {
        INFO("pieces of " << piece << " bytes");
        const auto scanned_before = conet::detail::line_bytes_scanned;
        CHECK(run_bounded(body(text, piece, limit), 30s) == expected);
        // Each byte searched for the '\n' once: a reader that searched its whole partial
        // line again after each read would count about a hundred times as many.
        CHECK(conet::detail::line_bytes_scanned - scanned_before == text.size());
    }
    // One byte over the limit is still caught when it arrives a few bytes at a time.
    CHECK(run_bounded(body(std::string(1001, 'z') + "\n", 10, 1000)) ==
          lines{"<Line longer than the reader's limit>"});
}

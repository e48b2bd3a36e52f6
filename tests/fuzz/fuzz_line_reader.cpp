// libFuzzer harness: line_reader fed an arbitrary byte stream, split at arbitrary points.
//
// Input layout: the first byte picks the longest line accepted (1..64); the rest is a list
// of chunks, each a length byte followed by up to that many bytes. One coroutine sends the
// chunks one at a time over a socket pair, yielding between them so that the reader sees
// each arrive on its own; the other reads lines. What it reads must equal what a simple
// reference splitter makes of the whole stream, including where line_too_long happens.
#include <conet/conet.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

[[noreturn]] void fail() {
    __builtin_trap(); // libFuzzer reports the crash and keeps the input
}

struct lines_and_error {
    std::vector<std::string> lines;
    bool too_long = false;
};

// The reference: split on '\n', drop one '\r' before it, keep a last unterminated line as it is;
// the first line longer than `max` ends everything with line_too_long.
lines_and_error reference_split(std::string_view stream, std::size_t max) {
    lines_and_error out;
    while (!stream.empty()) {
        const auto newline = stream.find('\n');
        std::string_view line = stream.substr(0, newline);
        stream.remove_prefix(newline == stream.npos ? stream.size() : newline + 1);
        if (newline != stream.npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > max) {
            out.too_long = true;
            break;
        }
        out.lines.emplace_back(line);
    }
    return out;
}

conet::task<> send_chunks(conet::tcp_stream& s, const std::vector<std::string_view>& chunks) {
    std::error_code ec; // the reader may hang up first, after line_too_long
    for (std::string_view chunk : chunks) {
        co_await s.send_all(chunk, ec);
        if (ec) co_return;
        co_await conet::yield(); // let the reader take this chunk alone
    }
    s.shutdown();
}

conet::task<lines_and_error> read_lines(conet::tcp_stream& s, std::size_t max) {
    lines_and_error out;
    conet::line_reader lines(s, max);
    std::string line;
    std::error_code ec;
    while (co_await lines.read_line(line, ec))
        out.lines.push_back(line);
    if (ec) {
        if (ec != conet::error::line_too_long) fail();
        out.too_long = true;
    }
    s.close();
    co_return out;
}

conet::task<lines_and_error> run(const std::vector<std::string_view>& chunks, std::size_t max) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) fail();
    conet::tcp_stream writer(fds[0]), reader(fds[1]);
    auto [sent, read] =
        co_await conet::when_all(send_chunks(writer, chunks), read_lines(reader, max));
    co_return read;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t max = 1 + data[0] % 64;
    std::vector<std::string_view> chunks;
    std::string stream;
    for (std::size_t i = 1; i < size;) {
        const std::size_t length = std::min<std::size_t>(data[i], size - i - 1);
        chunks.emplace_back(reinterpret_cast<const char*>(data + i + 1), length);
        stream.append(chunks.back());
        i += 1 + length;
    }
    static conet::reactor reactor; // one for every input: the harness runs thousands a second
    const lines_and_error got = reactor.run(run(chunks, max));
    const lines_and_error expected = reference_split(stream, max);
    if (got.too_long != expected.too_long || got.lines != expected.lines) fail();
    return 0;
}

// Scatter/gather: send and send_all over several buffers in one call (sendmsg with an iovec
// per buffer), on TCP and UNIX streams; every byte in order through partial writes, the
// kernel's limit of 1,024 buffers per call, empty buffers, and a send that times out; recv
// into several buffers (readv, recvmsg on a UNIX stream).
#include <conet/conet.hpp>
#include <conet/unix.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

namespace {

// `count` buffers of sizes 0 to 499 (every 50th empty) cut from one patterned message.
struct pieces {
    std::string whole;
    std::vector<conet::const_buffer> buffers;

    explicit pieces(std::size_t count) {
        std::vector<std::size_t> sizes;
        for (std::size_t i = 0; i < count; ++i)
            sizes.push_back(i % 50 == 0 ? 0 : (i * 37) % 500);
        std::size_t total = 0;
        for (const std::size_t s : sizes)
            total += s;
        whole.resize(total);
        for (std::size_t i = 0; i < total; ++i)
            whole[i] = pattern_byte(i);
        std::size_t at = 0;
        for (const std::size_t s : sizes) {
            buffers.emplace_back(whole.data() + at, s);
            at += s;
        }
    }
};

// Reads until end of stream, slowly when `slow` (1 ms between reads of 4 KiB, so that the
// sender's queue fills and its sends stop part way through a buffer).
template <class Stream>
conet::task<> read_all(Stream& s, std::string& into, bool slow) {
    char chunk[4096];
    while (const std::size_t n = co_await s.recv(chunk)) {
        into.append(chunk, n);
        if (slow) co_await conet::sleep_for(1ms);
    }
}

template <class Stream>
conet::task<> send_and_check(Stream& sender, Stream& receiver, std::size_t count, bool slow) {
    pieces message(count);
    std::string got;
    conet::task_group reader;
    reader.spawn(read_all(receiver, got, slow));
    const std::size_t sent = co_await sender.send_all(message.buffers);
    CHECK(sent == message.whole.size());
    sender.shutdown(conet::shutdown_type::send);
    co_await reader.join();
    CHECK(got.size() == message.whole.size());
    CHECK(got == message.whole); // every byte, once, in order
}

} // namespace

TEST_CASE("gathered send_all of 1,000 small buffers reaches a slow reader whole and in order",
          "[gather][tcp]") {
    run_bounded(
        []() -> conet::task<> {
            auto [client, server] = co_await connected_pair();
            co_await send_and_check(client, server, 1000, true);
        }(),
        30s);
}

TEST_CASE("gathered send_all of 5,000 buffers goes 1,024 at a time, through partial writes",
          "[gather][tcp]") {
    // 5,000 buffers, about 1.2 MiB: more than one sendmsg may take, and more than the
    // socket's buffers hold, so sends stop part way through a buffer and go on there.
    run_bounded(
        []() -> conet::task<> {
            auto [client, server] = co_await connected_pair();
            const auto before = conet::reactor::current()->stats().syscalls;
            co_await send_and_check(client, server, 5000, false);
            // At least 5 sendmsg calls (1,024 buffers each at most); far fewer system calls
            // in all than one send per buffer would make.
            CHECK(conet::reactor::current()->stats().syscalls - before < 2500);
        }(),
        30s);
}

TEST_CASE("gathered send_all on a UNIX stream, shared with TCP", "[gather][unix]") {
    run_bounded(
        []() -> conet::task<> {
            auto [a, b] = conet::unix_stream::pair();
            co_await send_and_check(a, b, 1000, true);
        }(),
        30s);
}

TEST_CASE("gathered send sends at least a byte, in order, and empty buffers send nothing",
          "[gather][tcp]") {
    run_bounded([]() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        const std::string header = "HEAD", body = "body of the message";
        const conet::const_buffer parts[] = {{}, header, {}, body, {}};
        const std::size_t n = co_await client.send(parts);
        REQUIRE(n >= 1);
        REQUIRE(n <= header.size() + body.size());
        std::string got(n, '\0');
        co_await server.recv_exact(got);
        CHECK(got == (header + body).substr(0, n));

        const conet::const_buffer nothing[] = {{}, {}};
        // (co_await outside CHECK: GCC 12 evaluates a co_await in Catch's macros twice)
        const std::size_t none_sent = co_await client.send_all(nothing);
        CHECK(none_sent == 0);
        const std::size_t zero_sent =
            co_await client.send_all(std::span<const conet::const_buffer>{});
        CHECK(zero_sent == 0);
    }());
}

TEST_CASE("gathered send_all that times out reports what went out, and nothing more arrives",
          "[gather][tcp]") {
    conet::reactor r(conet::clock_kind::virtual_auto); // the 100 ms pass without waiting
    run_bounded(
        r,
        []() -> conet::task<> {
            auto [client, server] = co_await connected_pair();
            pieces message(40'000); // about 9.5 MiB: more than loopback's buffers hold
            std::error_code ec;
            const std::size_t sent =
                co_await conet::with_timeout(client.send_all(message.buffers, ec), 100ms);
            CHECK(ec == std::errc::timed_out);
            REQUIRE(sent > 0);
            REQUIRE(sent < message.whole.size());
            client.close(); // the peer reads exactly what went out, then the end
            std::string got;
            co_await read_all(server, got, false);
            CHECK(got.size() == sent);
            CHECK(got == message.whole.substr(0, sent));
        }(),
        30s);
}

namespace {

// Sends "HEADER01" and a body in one piece, then receives it into a header buffer of 8
// bytes and a body buffer: both filled in order by one recv.
template <class Stream>
conet::task<> scatter_check(Stream& sender, Stream& receiver) {
    const std::string body = "the body, in a buffer of its own";
    co_await sender.send_all("HEADER01" + body);
    char header[8];
    std::string into(64, '.');
    const conet::mutable_buffer parts[] = {header, {}, conet::mutable_buffer(into.data(), 64)};
    const std::size_t n = co_await receiver.recv(parts);
    CHECK(n == 8 + body.size());
    CHECK(std::string(header, 8) == "HEADER01");
    CHECK(into.substr(0, body.size()) == body);
    CHECK(into.substr(body.size()) == std::string(64 - body.size(), '.')); // nothing more

    // No room at all: invalid_argument at once (its 0 would pass for the end of the
    // stream), though nothing is there to read.
    const conet::mutable_buffer none[] = {{}, {}};
    std::error_code ec;
    const std::size_t no_room = co_await receiver.recv(none, ec);
    CHECK(no_room == 0);
    CHECK(ec == std::errc::invalid_argument);

    // At the end of the stream: 0, no error.
    sender.shutdown(conet::shutdown_type::send);
    const std::size_t at_end = co_await receiver.recv(parts, ec);
    CHECK(at_end == 0);
    CHECK(!ec);
}

} // namespace

TEST_CASE("recv into several buffers fills them in order, on TCP and UNIX streams",
          "[gather][tcp][unix]") {
    run_bounded([]() -> conet::task<> {
        auto [client, server] = co_await connected_pair();
        co_await scatter_check(client, server);
        auto [a, b] = conet::unix_stream::pair();
        co_await scatter_check(a, b);
    }());
}

namespace {

// A temporary file holding `size` patterned bytes; removed when it goes.
class temp_file {
public:
    explicit temp_file(std::size_t size) {
        char name[] = "/tmp/conet_send_file_XXXXXX";
        fd_ = ::mkstemp(name);
        REQUIRE(fd_ >= 0);
        ::unlink(name); // gone with its descriptor
        std::string block(1 << 20, '\0');
        for (std::size_t at = 0; at < size; at += block.size()) {
            const std::size_t n = std::min(block.size(), size - at);
            for (std::size_t i = 0; i < n; ++i)
                block[i] = pattern_byte(at + i);
            REQUIRE(::write(fd_, block.data(), n) == static_cast<ssize_t>(n));
        }
    }
    ~temp_file() { ::close(fd_); }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

// Reads everything until the end and checks it against the pattern from `offset`; returns
// how many bytes came (and how many of them were wrong, in `wrong`).
template <class Stream>
conet::task<> read_checked(Stream& s, std::size_t offset, std::size_t& got, std::size_t& wrong,
                           bool slow) {
    std::vector<char> chunk(100'000);
    while (const std::size_t n = co_await s.recv(chunk)) {
        for (std::size_t i = 0; i < n; ++i)
            wrong += chunk[i] != pattern_byte(offset + got + i);
        got += n;
        if (slow) co_await conet::sleep_for(1ms);
    }
}

} // namespace

TEST_CASE("send_file sends 64 MiB of a file to a slow reader, every byte in order",
          "[gather][send_file][tcp]") {
    static constexpr std::size_t size = 64u << 20;
    temp_file file(size);
    run_bounded(
        [](int fd) -> conet::task<> {
            auto [client, server] = co_await connected_pair();
            std::size_t got = 0, wrong = 0;
            conet::task_group reader;
            reader.spawn(read_checked(server, 4096, got, wrong, true));
            // From an offset, to the end: the file's own offset is left alone.
            const std::size_t sent = co_await client.send_file(fd, 4096, size - 4096);
            CHECK(sent == size - 4096);
            CHECK(::lseek(fd, 0, SEEK_CUR) == static_cast<off_t>(size));
            client.shutdown(conet::shutdown_type::send);
            co_await reader.join();
            CHECK(got == size - 4096);
            CHECK(wrong == 0);
        }(file.fd()),
        60s);
}

TEST_CASE("send_file of a range past the file's end sends what there is, then file_ended",
          "[gather][send_file][unix]") {
    temp_file file(10'000);
    run_bounded([](int fd) -> conet::task<> {
        auto [a, b] = conet::unix_stream::pair();
        std::error_code ec;
        const std::size_t sent = co_await a.send_file(fd, 1000, 20'000, ec);
        CHECK(ec == conet::error::file_ended);
        CHECK(sent == 9000);
        a.close();
        std::size_t got = 0, wrong = 0;
        co_await read_checked(b, 1000, got, wrong, false);
        CHECK(got == 9000);
        CHECK(wrong == 0);

        // The throwing form: a transfer_error carrying the count.
        auto [c, d] = conet::unix_stream::pair();
        std::size_t counted = 0;
        try {
            co_await c.send_file(fd, 9990, 100);
        } catch (const conet::transfer_error& e) {
            counted = e.transferred();
            CHECK(e.code() == conet::error::file_ended);
        }
        CHECK(counted == 10);
    }(file.fd()));
}

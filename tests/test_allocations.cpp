// Invariant: no heap allocation per operation in steady state. This test binary replaces the
// global operator new with a counting one and runs echo round trips (recv, send_all,
// recv_exact, read_line into a reused string, with timeouts) between coroutines over
// loopback, counting the allocations made after a warm-up.
#include <conet/channel.hpp>
#include <conet/conet.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "catch.hpp"
#include "support.hpp"

namespace {
std::atomic<long> allocation_count{0};
} // namespace

// Every plain form of new and delete is replaced, so that they all pair up (sanitizers check).
void* operator new(std::size_t size) {
    allocation_count.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
    return ::operator new(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    allocation_count.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
    return ::operator new(size, tag);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

using namespace conet_test;

namespace {

constexpr int warm_up = 100;
constexpr int measured = 10'000;

// Answers each 64-byte message with the same bytes.
conet::task<> echo_bytes(conet::tcp_stream& s) {
    char buf[64];
    for (;;) {
        const auto n = co_await conet::with_timeout(s.recv(buf), std::chrono::seconds(5));
        if (n == 0) co_return;
        co_await s.send_all({buf, n});
    }
}

// Answers each line with the same line.
conet::task<> echo_lines(conet::tcp_stream& s) {
    conet::line_reader lines{s};
    std::string line;
    line.reserve(128);
    while (co_await lines.read_line(line)) {
        line += '\n';
        co_await s.send_all(line);
    }
}

// Answers with what arrives, in buffers borrowed from a pool only while they hold data.
conet::task<> echo_pooled(conet::tcp_stream& s, conet::buffer_pool& pool) {
    for (;;) {
        co_await s.wait_readable();
        auto data = co_await s.recv(pool);
        if (data.empty()) co_return;
        co_await s.send_all(data);
    }
}

// Sends and checks the round trips; returns the allocations made after the warm-ups.
conet::task<long> client_side(conet::tcp_stream& bytes, conet::tcp_stream& lines,
                              conet::tcp_stream& pooled) {
    char out[64];
    for (std::size_t i = 0; i < sizeof out; ++i)
        out[i] = pattern_byte(i);
    char in[64];
    long before = 0;
    for (int i = 0; i < warm_up + measured; ++i) {
        if (i == warm_up) before = allocation_count.load();
        co_await bytes.send_all(out);
        co_await bytes.recv_exact(in);
        if (std::memcmp(in, out, sizeof in) != 0) throw std::runtime_error("corrupt echo");
    }
    long counted = allocation_count.load() - before;
    for (int i = 0; i < warm_up + measured; ++i) {
        if (i == warm_up) before = allocation_count.load();
        co_await pooled.send_all(out);
        co_await pooled.recv_exact(in);
        if (std::memcmp(in, out, sizeof in) != 0) throw std::runtime_error("corrupt echo");
    }
    counted += allocation_count.load() - before;

    const char text[] = "a line of text\n";
    char back[sizeof text - 1];
    for (int i = 0; i < warm_up + measured; ++i) {
        if (i == warm_up) before = allocation_count.load();
        co_await lines.send_all(text);
        co_await conet::with_timeout(lines.recv_exact(back), std::chrono::seconds(5));
    }
    co_return counted + allocation_count.load() - before;
}

} // namespace

TEST_CASE("steady-state operations allocate nothing", "[allocations]") {
    conet::reactor r;
    auto for_bytes = run_bounded(r, connected_pair());
    auto for_lines = run_bounded(r, connected_pair());
    auto for_pooled = run_bounded(r, connected_pair());
    conet::buffer_pool pool(4096);
    r.spawn(echo_bytes(for_bytes.server));
    r.spawn(echo_lines(for_lines.server));
    r.spawn(echo_pooled(for_pooled.server, pool));
    const long allocations =
        run_bounded(r, client_side(for_bytes.client, for_lines.client, for_pooled.client),
                    std::chrono::seconds(30));
    INFO("allocations during " << 3 * measured << " round trips: " << allocations);
    CHECK(allocations == 0);
}

namespace {

// Receives until the channel ends; returns the allocations made after the warm-up.
conet::task<long> drain(conet::channel<long>& ch, long& sum, long& count) {
    long before = 0;
    while (auto v = co_await ch.recv()) {
        if (count == warm_up) before = allocation_count.load();
        sum += *v;
        ++count;
    }
    co_return allocation_count.load() - before;
}

} // namespace

TEST_CASE("a million values through a capacity-1 channel allocate nothing",
          "[allocations][channel]") {
    constexpr long values = 1'000'000;
    conet::reactor r;
    conet::channel<long> ch(1); // its one allocation, before counting starts
    r.spawn([](conet::channel<long>& ch) -> conet::task<> {
        for (long i = 0; i < values; ++i)
            co_await ch.send(long(i));
        ch.close();
    }(ch));
    long sum = 0;
    long count = 0;
    const long allocations = run_bounded(r, drain(ch, sum, count), std::chrono::seconds(60));
    CHECK(count == values);
    CHECK(sum == values * (values - 1) / 2);
    INFO("allocations while " << values - warm_up << " values went through: " << allocations);
    CHECK(allocations == 0);
}

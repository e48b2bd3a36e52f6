// timer_cost - what a timeout costs on conet's reactor.
//
//   timer_cost [ROUND_TRIPS]          (default 50000)
//
// 1. End to end: two coroutines play ping-pong with one byte over a loopback TCP connection,
//    with plain recv, then with every recv bounded by with_timeout, alternately, five times
//    each. Each bounded round trip arms and cancels two timeouts (the data always wins), so
//    the difference is what a timeout adds to an operation that really waits: the heap, the
//    clock reads, and the kernel's timer for an epoll_wait that now has a deadline.
//    Repeated with 10,000 sleepers pending, to show the cost of a deeper heap.
// 2. The heap alone: arming and disarming 1,000,000 deadlines on the reactor's timer heap
//    (the path with_timeout and sleep_for take), with 0 and with 10,000 others pending.
#include <conet/conet.hpp>
#include <conet/detail/timer_heap.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

double nanoseconds_since(clock_type::time_point start) {
    return std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
}

struct connection_pair {
    conet::tcp_stream a, b;
};

conet::task<connection_pair> connect_pair() {
    auto listener = conet::tcp_listener::bind({conet::ip_address::loopback(), 0});
    auto a = co_await conet::tcp_stream::connect(listener.local_endpoint());
    auto [b, peer] = co_await listener.accept();
    a.set_nodelay(true);
    b.set_nodelay(true);
    co_return connection_pair{std::move(a), std::move(b)};
}

// Receives one byte, bounded by a timeout when `bounded`; the data always comes first.
conet::task<> receive_byte(conet::tcp_stream& s, bool bounded) {
    std::array<char, 1> byte{};
    const std::size_t n =
        bounded ? co_await conet::with_timeout(s.recv(byte), 10s) : co_await s.recv(byte);
    if (n != 1) throw std::runtime_error("lost a byte");
}

conet::task<> bounce(conet::tcp_stream& s, long round_trips, bool bounded) {
    for (long i = 0; i < round_trips; ++i) {
        co_await receive_byte(s, bounded);
        co_await s.send_all("x");
    }
}

conet::task<> serve(conet::tcp_stream& s, long round_trips, bool bounded) {
    for (long i = 0; i < round_trips; ++i) {
        co_await s.send_all("x");
        co_await receive_byte(s, bounded);
    }
}

conet::task<> sleep_long() {
    std::error_code ec; // cancelled when the run ends
    co_await conet::sleep_for(1h, ec);
}

// Nanoseconds per round trip of the ping-pong, with `pending` sleepers on the heap.
double ping_pong(long round_trips, bool bounded, int pending) {
    conet::reactor reactor;
    auto pair = reactor.run(connect_pair());
    std::vector<conet::spawn_handle> sleepers;
    for (int i = 0; i < pending; ++i)
        sleepers.push_back(reactor.spawn(sleep_long()));
    reactor.spawn(bounce(pair.b, round_trips, bounded));
    const auto start = clock_type::now();
    reactor.run(serve(pair.a, round_trips, bounded));
    const double elapsed = nanoseconds_since(start);
    for (auto& s : sleepers)
        s.cancel();
    return elapsed / static_cast<double>(round_trips);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Medians of `runs` ping-pong runs without and with timeouts, alternating so that both see
// the same machine.
std::pair<double, double> compare(long round_trips, int pending, int runs) {
    std::vector<double> plain, bounded;
    for (int i = 0; i < runs; ++i) {
        plain.push_back(ping_pong(round_trips, false, 0));
        bounded.push_back(ping_pong(round_trips, true, pending));
    }
    return {median(plain), median(bounded)};
}

// Nanoseconds per arm + disarm of one deadline, with `pending` others on the heap.
double heap_cost(int operations, int pending) {
    conet::detail::timer_heap heap;
    const auto now = conet::detail::timer_entry::clock::now();
    std::vector<conet::detail::timer_entry> others(static_cast<std::size_t>(pending));
    for (std::size_t i = 0; i < others.size(); ++i)
        heap.push(others[i], now + std::chrono::seconds(1 + i % 1000));
    conet::detail::timer_entry e;
    const auto start = clock_type::now();
    for (int i = 0; i < operations; ++i) {
        heap.push(e, now + std::chrono::milliseconds(500 + i % 1000));
        heap.remove(e);
    }
    const double elapsed = nanoseconds_since(start);
    heap.clear();
    return elapsed / operations;
}

} // namespace

int main(int argc, char** argv) {
    const long round_trips = argc > 1 ? std::atol(argv[1]) : 50000;
    if (round_trips <= 0) {
        std::fprintf(stderr, "usage: timer_cost [ROUND_TRIPS]\n");
        return 2;
    }
    ping_pong(round_trips / 10, true, 0); // warm-up

    const auto [plain, bounded] = compare(round_trips, 0, 5);
    const auto [plain_again, bounded_deep] = compare(round_trips, 10000, 5);
    const double shallow = heap_cost(1000000, 0);
    const double deep = heap_cost(1000000, 10000);
    const double added = (bounded - plain) / 2; // two timeouts per round trip
    const double added_deep = (bounded_deep - plain_again) / 2;
    std::printf("| measurement | ns |\n|---|---:|\n");
    std::printf("| ping-pong round trip, plain recv | %.0f |\n", plain);
    std::printf("| ping-pong round trip, both recvs with_timeout | %.0f |\n", bounded);
    std::printf("| added per timeout armed and cancelled | %.0f |\n", added);
    std::printf("| the same with 10,000 sleepers pending | %.0f |\n", added_deep);
    std::printf("| timer heap alone: arm + disarm | %.1f |\n", shallow);
    std::printf("| timer heap alone, 10,000 pending | %.1f |\n", deep);
    std::printf("\nMedians of 5 runs of %ld round trips. Arming and cancelling 1,000,000 "
                "timeouts: %.0f ms end to end (%.0f ms with 10,000 pending), %.1f ms of it on "
                "the heap (%.1f ms with 10,000 pending).\n",
                round_trips, added, added_deep, shallow, deep);
    return 0;
}

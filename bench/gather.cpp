// gather - a message of 8 pieces (a 16-byte header and seven 64-byte fields) sent as 8 sends
// or as one gathered send_all, in a ping-pong over loopback TCP: the server reads the whole
// message and answers one byte, and the client sends the next message once it has the byte.
//
//   gather pieces|gathered SECONDS [split]
//
// Prints "mode=M round_trips=N rt_per_s=X syscalls_per_rt=Y" (the system calls of both
// ends, which share the process's one reactor, counted by reactor::stats()). With `split`,
// the server runs on a thread of its own with its own reactor, pinned to CPU 1, and the
// client on CPU 0 (when there are two): a wake-up then crosses cores, as between two
// processes, and the line adds each end's system calls per round trip ("client_syscalls_per_rt=
// C server_syscalls_per_rt=S").
#include <conet/conet.hpp>

#include <pthread.h>
#include <sched.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "bench_support.hpp"

namespace {

using bench_support::pin;

constexpr std::size_t header_size = 16, field_size = 64, fields = 7;
constexpr std::size_t message_size = header_size + field_size * fields;

conet::task<> server(conet::tcp_listener& listener) {
    auto [conn, peer] = co_await listener.accept();
    conn.set_nodelay(true);
    std::array<char, message_size> message;
    for (;;) {
        std::error_code ec;
        co_await conn.recv_exact(message, ec);
        if (ec) co_return; // the client is done
        co_await conn.send_all("k");
    }
}

conet::task<> client(conet::endpoint where, bool gathered, double seconds, long& round_trips) {
    auto conn = co_await conet::tcp_stream::connect(where);
    conn.set_nodelay(true); // else the 8 small sends wait for each other's acknowledgements
    std::array<std::string, fields + 1> pieces;
    pieces[0] = std::string(header_size, 'h');
    for (std::size_t i = 1; i <= fields; ++i)
        pieces[i] = std::string(field_size, static_cast<char>('a' + i));
    std::array<conet::const_buffer, fields + 1> buffers;
    for (std::size_t i = 0; i <= fields; ++i)
        buffers[i] = pieces[i];

    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    char answer;
    while (std::chrono::steady_clock::now() < end) {
        if (gathered) {
            co_await conn.send_all(buffers);
        } else {
            for (const conet::const_buffer& b : buffers)
                co_await conn.send_all(b);
        }
        co_await conn.recv_exact(conet::mutable_buffer(&answer, 1));
        ++round_trips;
    }
}

conet::task<> run(bool gathered, double seconds, long& round_trips) {
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"));
    conet::task_group both;
    both.spawn(server(listener));
    both.spawn(client(listener.local_endpoint(), gathered, seconds, round_trips));
    co_await both.join();
}

conet::task<> serve_on(std::promise<conet::endpoint>& where) {
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"));
    where.set_value(listener.local_endpoint());
    co_await server(listener);
}

// The two ends on two threads, two reactors, two CPUs.
int run_split(const char* mode, bool gathered, double seconds) {
    std::promise<conet::endpoint> where;
    conet::reactor_stats served{};
    std::thread server_thread([&] {
        pin(1);
        conet::reactor r;
        r.run(serve_on(where));
        served = r.stats();
    });
    pin(0);
    long round_trips = 0;
    conet::reactor reactor;
    const auto to = where.get_future().get();
    const auto began = std::chrono::steady_clock::now();
    reactor.run(client(to, gathered, seconds, round_trips));
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    server_thread.join(); // its recv_exact ended with the client's close
    const double rt = double(round_trips);
    std::printf("mode=%s round_trips=%ld rt_per_s=%.0f syscalls_per_rt=%.2f "
                "client_syscalls_per_rt=%.2f server_syscalls_per_rt=%.2f\n",
                mode, round_trips, rt / elapsed,
                (double(reactor.stats().syscalls) + double(served.syscalls)) / rt,
                double(reactor.stats().syscalls) / rt, double(served.syscalls) / rt);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3 || argc > 4 ||
        (std::strcmp(argv[1], "pieces") != 0 && std::strcmp(argv[1], "gathered") != 0) ||
        (argc == 4 && std::strcmp(argv[3], "split") != 0)) {
        std::fprintf(stderr, "usage: gather pieces|gathered SECONDS [split]\n");
        return 2;
    }
    const bool gathered = std::strcmp(argv[1], "gathered") == 0;
    if (argc == 4) return run_split(argv[1], gathered, std::atof(argv[2]));
    long round_trips = 0;
    conet::reactor reactor;
    const auto began = std::chrono::steady_clock::now();
    reactor.run(run(gathered, std::atof(argv[2]), round_trips));
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    std::printf("mode=%s round_trips=%ld rt_per_s=%.0f syscalls_per_rt=%.2f\n", argv[1],
                round_trips, round_trips / elapsed,
                double(reactor.stats().syscalls) / double(round_trips));
}

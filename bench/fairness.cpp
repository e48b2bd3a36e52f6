// bench/fairness - what the reactor's budget (design invariant 9) buys and costs.
//
// One reactor serves a reader whose peer (a thread with a blocking socket) always has more
// data, and a ping-pong between two coroutines on a second connection. For each budget it
// reports the ping's round-trip latency (what the flood costs the other connections) and
// the flooded reader's throughput (what fairness costs the busy one). Loopback only.
//
//   fairness [SECONDS_PER_BUDGET]      (default 1)
#include <conet/conet.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Sends to `port` from its own thread as fast as the socket takes it, until `stop`.
void flood(std::uint16_t port, const std::atomic<bool>& stop) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{0, 50'000}; // a blocked send looks at `stop` every 50 ms
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
        static char chunk[64 * 1024] = {};
        while (!stop.load())
            ::send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
    }
    ::close(fd);
}

struct result {
    double ping_p50_us = 0;
    double ping_p99_us = 0;
    double flood_mb_s = 0;
    std::size_t pings = 0;
};

conet::task<> pong(conet::tcp_stream& s, const bool& done) {
    char byte;
    while (!done) {
        std::error_code ec;
        if (co_await s.recv({&byte, 1}, ec) == 0 || ec) co_return;
        co_await s.send_all({&byte, 1}, ec);
        if (ec) co_return;
    }
}

conet::task<result> measure(std::chrono::milliseconds length) {
    auto listener = conet::tcp_listener::bind({conet::ip_address::loopback(), 0});
    std::atomic<bool> stop{false};
    std::thread flooder(flood, listener.local_endpoint().port(), std::cref(stop));
    auto [flooded, who] = co_await listener.accept();
    (void)who;
    auto ping_client = co_await conet::tcp_stream::connect(listener.local_endpoint());
    auto [ping_server, peer] = co_await listener.accept();
    (void)peer;
    co_await conet::sleep_for(20ms); // a backlog builds up

    bool done = false;
    std::size_t flooded_bytes = 0;
    auto reader = [](conet::tcp_stream& s, std::size_t& total,
                     const bool& finished) -> conet::task<> {
        char small[512]; // slower than the flooder: the socket never drains
        while (!finished) {
            std::error_code ec;
            const auto n = co_await s.recv(small, ec);
            if (ec || n == 0) co_return;
            total += n;
        }
    };
    conet::task_group group;
    group.spawn(reader(flooded, flooded_bytes, done));
    group.spawn(pong(ping_server, done));

    std::vector<double> rtts;
    const auto start = clock_type::now();
    while (clock_type::now() - start < length) {
        const auto t0 = clock_type::now();
        char byte = 'p';
        co_await ping_client.send_all({&byte, 1});
        co_await ping_client.recv_exact({&byte, 1});
        rtts.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    done = true;
    stop = true;
    ping_client.shutdown();
    group.cancel();
    co_await group.join();
    flooder.join();

    std::sort(rtts.begin(), rtts.end());
    result r;
    r.pings = rtts.size();
    if (!rtts.empty()) {
        r.ping_p50_us = rtts[rtts.size() / 2];
        r.ping_p99_us = rtts[rtts.size() * 99 / 100];
    }
    r.flood_mb_s = static_cast<double>(flooded_bytes) / seconds / 1e6;
    co_return r;
}

} // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
    const auto length = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    std::printf("| budget | pings | ping p50 (µs) | ping p99 (µs) | flooded reader (MB/s) |\n");
    std::printf("|---:|---:|---:|---:|---:|\n");
    for (std::uint32_t budget : {16u, 64u, 128u, 512u, 4096u, 1u << 20}) {
        conet::reactor r;
        r.set_budget(budget);
        const result res = r.run(measure(length));
        std::printf("| %u | %zu | %.0f | %.0f | %.0f |\n", budget, res.pings, res.ping_p50_us,
                    res.ping_p99_us, res.flood_mb_s);
    }
}

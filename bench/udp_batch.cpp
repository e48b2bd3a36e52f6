// udp_batch - receiving 64-byte UDP datagrams on loopback: conet's recv_batch against its
// recv_from loop, a hand-written recvmmsg loop, a hand-written recvfrom loop and Asio, each
// fed the same way by a sender thread (sendmmsg), in rounds that alternate the receivers.
//
//   udp_batch [SECONDS] [ROUNDS] [RATE] [BURST]
//
// RATE 0 (the default) is a flood: the sender sends as fast as it can, so the receiver falls
// behind, a queue builds up, and a batch finds many datagrams waiting. RATE > 0 offers that
// many datagrams per second in bursts of BURST (one sendmmsg each), paced by the clock.
// For each receiver and round it prints the datagrams received per second and the receiver
// thread's CPU per datagram (user + system, CLOCK_THREAD_CPUTIME_ID), then the medians, and
// each receiver's CPU per datagram as a ratio to Asio's within each round.
#include <conet/conet.hpp>

#ifdef CONET_BENCH_ASIO
#include <asio.hpp>
#endif

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t payload = 64;
constexpr std::size_t batch_slots = 32;
constexpr char stop_mark = '!'; // a 1-byte datagram that ends a receiver

struct tally {
    long received = 0;
    double cpu_seconds = 0;
    std::chrono::steady_clock::time_point first, last;
    long batches = 0;  // system calls that returned datagrams
    long syscalls = 0; // every system call of the receiver's thread (-1: not counted)

    // Counts `n` datagrams received now.
    void add(long n) {
        const auto now = std::chrono::steady_clock::now();
        if (received == 0) first = now;
        last = now;
        received += n;
        ++batches;
    }
};

double thread_cpu() {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

/// A UDP socket on 127.0.0.1 with a large receive queue, so that a flood builds a queue
/// instead of dropping at once. Blocking unless `nonblocking`.
int bound_socket(std::uint16_t& port) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int size = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    socklen_t length = sizeof sin;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &length);
    port = ntohs(sin.sin_port);
    return fd;
}

// --- the receivers: each runs on its own thread until the stop mark arrives -------------

conet::task<> conet_batch_loop(conet::udp_socket& s, tally& t) {
    std::vector<std::array<char, 2048>> storage(batch_slots);
    std::vector<conet::datagram_slot> slots(batch_slots);
    for (std::size_t i = 0; i < batch_slots; ++i)
        slots[i].buffer = storage[i];
    for (;;) {
        const std::size_t n = co_await s.recv_batch(slots);
        for (std::size_t i = 0; i < n; ++i)
            if (slots[i].size == 1 && storage[i][0] == stop_mark) {
                if (i > 0) t.add(static_cast<long>(i));
                co_return;
            }
        t.add(static_cast<long>(n));
    }
}

conet::task<> conet_one_loop(conet::udp_socket& s, tally& t) {
    std::array<char, 2048> buf;
    for (;;) {
        auto [size, from] = co_await s.recv_from(buf);
        if (size == 1 && buf[0] == stop_mark) co_return;
        t.add(1);
    }
}

void run_conet(int fd, tally& t, bool batch) {
    conet::reactor r;
    auto s = conet::udp_socket::adopt(fd);
    const double c0 = thread_cpu();
    r.run(batch ? conet_batch_loop(s, t) : conet_one_loop(s, t));
    t.cpu_seconds = thread_cpu() - c0;
    t.syscalls = static_cast<long>(r.stats().syscalls);
}

// What a C programmer writes: a blocking socket, recvmmsg waiting for the first datagram
// only (MSG_WAITFORONE), then taking what is queued.
void run_recvmmsg(int fd, tally& t) {
    std::vector<std::array<char, 2048>> storage(batch_slots);
    std::array<mmsghdr, batch_slots> messages{};
    std::array<iovec, batch_slots> parts{};
    std::array<sockaddr_in6, batch_slots> senders{};
    const double c0 = thread_cpu();
    for (;;) {
        for (std::size_t i = 0; i < batch_slots; ++i) {
            parts[i] = {storage[i].data(), storage[i].size()};
            messages[i].msg_hdr = {};
            messages[i].msg_hdr.msg_name = &senders[i];
            messages[i].msg_hdr.msg_namelen = sizeof senders[i];
            messages[i].msg_hdr.msg_iov = &parts[i];
            messages[i].msg_hdr.msg_iovlen = 1;
        }
        const int n = ::recvmmsg(fd, messages.data(), batch_slots, MSG_WAITFORONE, nullptr);
        ++t.syscalls;
        if (n <= 0) continue;
        for (int i = 0; i < n; ++i)
            if (messages[static_cast<std::size_t>(i)].msg_len == 1 &&
                storage[static_cast<std::size_t>(i)][0] == stop_mark) {
                if (i > 0) t.add(i);
                t.cpu_seconds = thread_cpu() - c0;
                return;
            }
        t.add(n);
    }
}

// A blocking recvfrom loop.
void run_recvfrom(int fd, tally& t) {
    std::array<char, 2048> buf;
    const double c0 = thread_cpu();
    for (;;) {
        sockaddr_in6 from{};
        socklen_t length = sizeof from;
        const auto n =
            ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
        ++t.syscalls;
        if (n == 1 && buf[0] == stop_mark) break;
        if (n >= 0) t.add(1);
    }
    t.cpu_seconds = thread_cpu() - c0;
}

#ifdef CONET_BENCH_ASIO
asio::awaitable<void> asio_loop(asio::ip::udp::socket& s, tally& t) {
    std::array<char, 2048> buf;
    asio::ip::udp::endpoint from;
    for (;;) {
        const std::size_t n =
            co_await s.async_receive_from(asio::buffer(buf), from, asio::use_awaitable);
        if (n == 1 && buf[0] == stop_mark) co_return;
        t.add(1);
    }
}

void run_asio(int fd, tally& t) {
    asio::io_context context(1);
    asio::ip::udp::socket s(context, asio::ip::udp::v4(), fd);
    const double c0 = thread_cpu();
    t.syscalls = -1;
    asio::co_spawn(context, asio_loop(s, t), asio::detached);
    context.run();
    t.cpu_seconds = thread_cpu() - c0;
}
#endif

// --- the sender ------------------------------------------------------------------------

/// Sends 64-byte datagrams to `port` for `seconds`: as fast as it can (rate 0) or `rate` per
/// second in bursts of `burst`; then, once the receiver has had time to drain, the stop mark.
long send_for(std::uint16_t port, double seconds, double rate, std::size_t burst) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
    std::array<char, payload> data;
    data.fill('d');
    std::vector<mmsghdr> messages(burst);
    std::vector<iovec> parts(burst);
    for (std::size_t i = 0; i < burst; ++i) {
        parts[i] = {data.data(), data.size()};
        messages[i].msg_hdr = {};
        messages[i].msg_hdr.msg_iov = &parts[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    long sent = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    auto next = start;
    const auto gap = rate > 0 ? std::chrono::duration<double>(static_cast<double>(burst) / rate)
                              : std::chrono::duration<double>(0);
    while (std::chrono::steady_clock::now() < end) {
        if (rate > 0) {
            next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(gap);
            std::this_thread::sleep_until(next);
        }
        const int n = ::sendmmsg(fd, messages.data(), static_cast<unsigned>(burst), 0);
        if (n > 0) sent += n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // the receiver drains
    for (int i = 0; i < 20; ++i) { // (repeated: a full queue would drop a single one)
        ::send(fd, &stop_mark, 1, 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::close(fd);
    return sent;
}

struct outcome {
    double per_second = 0; // datagrams received per second, while they arrived
    double cpu_ns = 0;     // receiver CPU per datagram
    double per_batch = 0;  // datagrams per receiving system call
    double received = 0;   // share of those sent that arrived
    double syscalls = -1;  // receiver system calls per datagram (-1: not counted)
};

outcome run_one(const std::string& mode, double seconds, double rate, std::size_t burst) {
    std::uint16_t port = 0;
    const int fd = bound_socket(port);
    tally t;
    std::thread receiver([&] {
        if (mode == "conet_batch")
            run_conet(fd, t, true);
        else if (mode == "conet_one")
            run_conet(fd, t, false);
        else if (mode == "recvmmsg")
            run_recvmmsg(fd, t);
        else if (mode == "recvfrom")
            run_recvfrom(fd, t);
#ifdef CONET_BENCH_ASIO
        else if (mode == "asio")
            run_asio(fd, t);
#endif
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20)); // it waits for the first
    const long sent = send_for(port, seconds, rate, burst);
    receiver.join();
    if (mode == "recvmmsg" || mode == "recvfrom") ::close(fd); // (conet and Asio own theirs)
    outcome o;
    const double span = std::chrono::duration<double>(t.last - t.first).count();
    o.per_second = span > 0 ? static_cast<double>(t.received) / span : 0;
    o.cpu_ns = t.received ? t.cpu_seconds * 1e9 / static_cast<double>(t.received) : 0;
    o.per_batch = t.batches ? static_cast<double>(t.received) / static_cast<double>(t.batches) : 0;
    o.received = sent ? static_cast<double>(t.received) / static_cast<double>(sent) : 0;
    if (t.syscalls >= 0 && t.received)
        o.syscalls = static_cast<double>(t.syscalls) / static_cast<double>(t.received);
    return o;
}

std::string load_average() {
    std::ifstream file("/proc/loadavg");
    std::string a, b, c;
    file >> a >> b >> c;
    return a + " " + b + " " + c;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    const double rate = argc > 3 ? std::atof(argv[3]) : 0;
    const auto burst = static_cast<std::size_t>(argc > 4 ? std::atoi(argv[4]) : 32);
    std::vector<std::string> modes{"conet_batch", "conet_one", "recvmmsg", "recvfrom"};
#ifdef CONET_BENCH_ASIO
    modes.push_back("asio");
#endif
    std::printf("udp_batch: %g s per run, %d rounds, %s, bursts of %zu, %zu-byte datagrams, "
                "batches of %zu; load average %s\n",
                seconds, rounds,
                rate > 0 ? (std::to_string(rate) + " datagrams/s").c_str() : "flood", burst,
                payload, batch_slots, load_average().c_str());
    std::map<std::string, std::vector<double>> rates, cpu, per_batch, arrived, ratio, syscalls,
        to_one;
    for (int round = 0; round < rounds; ++round) {
        std::map<std::string, outcome> got;
        // Each round starts with another receiver, so that none always runs first or last.
        for (std::size_t k = 0; k < modes.size(); ++k) {
            const std::string& mode = modes[(k + static_cast<std::size_t>(round)) % modes.size()];
            got[mode] = run_one(mode, seconds, rate, burst);
            const outcome& o = got[mode];
            std::printf("round %d %-12s %9.0f datagrams/s %7.0f ns CPU/datagram %5.1f per call "
                        "%5.2f syscalls/datagram %5.1f%% arrived\n",
                        round + 1, mode.c_str(), o.per_second, o.cpu_ns, o.per_batch, o.syscalls,
                        o.received * 100);
            std::fflush(stdout);
            rates[mode].push_back(o.per_second);
            cpu[mode].push_back(o.cpu_ns);
            per_batch[mode].push_back(o.per_batch);
            arrived[mode].push_back(o.received * 100);
            syscalls[mode].push_back(o.syscalls);
        }
        const std::string base = got.count("asio") ? "asio" : "conet_one";
        for (const auto& mode : modes) {
            ratio[mode].push_back(got[mode].cpu_ns / got[base].cpu_ns);
            to_one[mode].push_back(got[mode].cpu_ns / got["conet_one"].cpu_ns);
        }
    }
    const std::string base = rates.count("asio") ? "asio" : "conet_one";
    std::printf("\n| receiver | datagrams/s | CPU ns/datagram | CPU / %s's (same round) | "
                "CPU / conet_one's (same round) | datagrams per call | system calls per datagram "
                "| arrived |\n|---|---|---|---|---|---|---|---|\n",
                base.c_str());
    for (const auto& mode : modes)
        std::printf("| %s | %.0f | %.0f | %.2f | %.2f | %.1f | %s | %.1f%% |\n", mode.c_str(),
                    median(rates[mode]), median(cpu[mode]), median(ratio[mode]),
                    median(to_one[mode]), median(per_batch[mode]),
                    median(syscalls[mode]) < 0
                        ? "-"
                        : std::to_string(median(syscalls[mode])).substr(0, 4).c_str(),
                    median(arrived[mode]));
    std::printf("load average after: %s\n", load_average().c_str());
}

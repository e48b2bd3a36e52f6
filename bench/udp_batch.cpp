// udp_batch - receiving 64-byte UDP datagrams on loopback: conet's recv_batch against its
// recv_from loop, a hand-written recvmmsg loop, a hand-written recvfrom loop and Asio, each
// fed the same way by a sender thread (sendmmsg), in rounds that alternate the receivers.
//
//   udp_batch backlog [ROUNDS] [CYCLES] [QUEUED]   (the default)
//   udp_batch flood [SECONDS] [ROUNDS]
//   udp_batch paced [SECONDS] [ROUNDS] [RATE] [BURST]
//
// backlog: before each drain the sender queues QUEUED datagrams (and a stop mark) while the
// receiver sleeps, then the receiver takes them: a receiver that fell behind, where a batch
// finds many datagrams waiting. flood: the sender sends as fast as it can while the receiver
// takes them (on a loaded machine the sender, sharing cores, may be the slower). paced: RATE
// datagrams per second in bursts of BURST (one sendmmsg each): at low rates batches are of
// one or two. For each receiver and round it prints the datagrams received per second, the
// receiver thread's CPU per datagram (user + system, CLOCK_THREAD_CPUTIME_ID, only while it
// receives), datagrams per receiving call and system calls per datagram; then the medians,
// with each receiver's CPU as a ratio to Asio's and to conet_one's within each round.
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
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"

namespace {

using bench_support::load_average;
using bench_support::median;

constexpr std::size_t payload = 64;
constexpr std::size_t batch_slots = 32;
constexpr char stop_mark = '!'; // a 1-byte datagram that ends a receiver

struct tally {
    long received = 0;
    double cpu_seconds = 0;
    std::chrono::steady_clock::time_point first, last;
    long batches = 0;        // system calls that returned datagrams
    long syscalls = 0;       // every system call of the receiver's thread (-1: not counted)
    double wall_seconds = 0; // the drains' time (backlog), else 0

    // Counts `n` datagrams received now.
    void add(long n) {
        const auto now = std::chrono::steady_clock::now();
        if (received == 0) first = now;
        last = now;
        received += n;
        ++batches;
    }
};

/// Starts the receiver's drains one at a time: each runs until the stop mark, between them
/// the receiver thread waits here (its CPU counts only while it drains).
struct gate {
    std::mutex m;
    std::condition_variable cv;
    int go = 0, taken = 0, done = 0;
    bool over = false;

    bool next() { // (receiver) waits for the next drain: false when there is none
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return go > taken || over; });
        if (go == taken) return false;
        ++taken;
        return true;
    }
    void finished() { // (receiver)
        std::lock_guard lock(m);
        ++done;
        cv.notify_all();
    }
    void start() {
        std::lock_guard lock(m);
        ++go;
        cv.notify_all();
    }
    bool wait_done(int n, std::chrono::milliseconds limit) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, limit, [&] { return done >= n; });
    }
    void end() {
        std::lock_guard lock(m);
        over = true;
        cv.notify_all();
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

void run_conet(int fd, tally& t, bool batch, gate& g) {
    conet::reactor r;
    auto s = conet::udp_socket::adopt(fd);
    while (g.next()) {
        const double c0 = thread_cpu();
        r.run(batch ? conet_batch_loop(s, t) : conet_one_loop(s, t));
        t.cpu_seconds += thread_cpu() - c0;
        g.finished();
    }
    t.syscalls = static_cast<long>(r.stats().syscalls);
}

// What a C programmer writes: a blocking socket, recvmmsg waiting for the first datagram
// only (MSG_WAITFORONE), then taking what is queued.
void recvmmsg_loop(int fd, tally& t) {
    std::vector<std::array<char, 2048>> storage(batch_slots);
    std::array<mmsghdr, batch_slots> messages{};
    std::array<iovec, batch_slots> parts{};
    std::array<sockaddr_in6, batch_slots> senders{};
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
                return;
            }
        t.add(n);
    }
}

// A blocking recvfrom loop.
void recvfrom_loop(int fd, tally& t) {
    std::array<char, 2048> buf;
    for (;;) {
        sockaddr_in6 from{};
        socklen_t length = sizeof from;
        const auto n =
            ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
        ++t.syscalls;
        if (n == 1 && buf[0] == stop_mark) break;
        if (n >= 0) t.add(1);
    }
}

void run_plain(int fd, tally& t, void (*loop)(int, tally&), gate& g) {
    while (g.next()) {
        const double c0 = thread_cpu();
        loop(fd, t);
        t.cpu_seconds += thread_cpu() - c0;
        g.finished();
    }
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

void run_asio(int fd, tally& t, gate& g) {
    asio::io_context context(1);
    asio::ip::udp::socket s(context, asio::ip::udp::v4(), fd);
    t.syscalls = -1;
    while (g.next()) {
        const double c0 = thread_cpu();
        asio::co_spawn(context, asio_loop(s, t), asio::detached);
        context.run();
        context.restart();
        t.cpu_seconds += thread_cpu() - c0;
        g.finished();
    }
}
#endif

// --- the sender ------------------------------------------------------------------------

/// 64-byte datagrams to the receiver's port, `burst` per sendmmsg, from a connected socket.
class sender {
public:
    sender(std::uint16_t port, std::size_t burst) : messages_(burst), parts_(burst) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        to.sin_port = htons(port);
        ::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to);
        data_.fill('d');
        for (std::size_t i = 0; i < burst; ++i) {
            parts_[i] = {data_.data(), data_.size()};
            messages_[i].msg_hdr = {};
            messages_[i].msg_hdr.msg_iov = &parts_[i];
            messages_[i].msg_hdr.msg_iovlen = 1;
        }
    }
    ~sender() { ::close(fd_); }

    long burst() {
        const int n = ::sendmmsg(fd_, messages_.data(), static_cast<unsigned>(messages_.size()), 0);
        return n > 0 ? n : 0;
    }
    void stop() { ::send(fd_, &stop_mark, 1, 0); }

private:
    int fd_ = -1;
    std::array<char, payload> data_;
    std::vector<mmsghdr> messages_;
    std::vector<iovec> parts_;
};

/// Sends for `seconds`: as fast as it can (rate 0) or `rate` datagrams per second in bursts,
/// paced by the clock. Yields how many went.
long send_for(sender& out, double seconds, double rate, std::size_t burst) {
    long sent = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    auto next = start;
    const auto gap = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(rate > 0 ? static_cast<double>(burst) / rate : 0));
    while (std::chrono::steady_clock::now() < end) {
        if (rate > 0) {
            next += gap;
            std::this_thread::sleep_until(next);
        }
        sent += out.burst();
    }
    return sent;
}

struct scenario {
    bool backlog = false; // queue built first, then drained (else sent while received)
    double seconds = 1;   // flood / paced: how long the sender sends
    double rate = 0;      // paced: datagrams per second (0: flood)
    std::size_t burst = 32;
    int cycles = 200;         // backlog: drains per run
    std::size_t queued = 256; // backlog: datagrams queued before each drain
};

struct outcome {
    double per_second = 0; // datagrams received per second, while they arrived
    double cpu_ns = 0;     // receiver CPU per datagram
    double per_batch = 0;  // datagrams per receiving system call
    double received = 0;   // share of those sent that arrived
    double syscalls = -1;  // receiver system calls per datagram (-1: not counted)
};

outcome run_one(const std::string& mode, const scenario& sc) {
    std::uint16_t port = 0;
    const int fd = bound_socket(port);
    tally t;
    gate g;
    std::thread receiver([&] {
        if (mode == "conet_batch")
            run_conet(fd, t, true, g);
        else if (mode == "conet_one")
            run_conet(fd, t, false, g);
        else if (mode == "recvmmsg")
            run_plain(fd, t, recvmmsg_loop, g);
        else if (mode == "recvfrom")
            run_plain(fd, t, recvfrom_loop, g);
#ifdef CONET_BENCH_ASIO
        else if (mode == "asio")
            run_asio(fd, t, g);
#endif
    });
    sender out(port, sc.burst);
    long sent = 0;
    // Until the receiver has seen the stop mark: resent, in case a full queue dropped it.
    auto stop = [&](int drains) {
        out.stop();
        while (!g.wait_done(drains, std::chrono::milliseconds(100)))
            out.stop();
    };
    if (sc.backlog) {
        for (int c = 0; c < sc.cycles; ++c) {
            for (std::size_t queued = 0; queued < sc.queued; queued += sc.burst)
                sent += out.burst();
            std::this_thread::sleep_for(std::chrono::milliseconds(1)); // all delivered
            out.stop();
            const auto w0 = std::chrono::steady_clock::now();
            g.start();
            while (!g.wait_done(c + 1, std::chrono::milliseconds(200)))
                out.stop();
            t.wall_seconds +=
                std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
        }
    } else {
        g.start();
        std::this_thread::sleep_for(std::chrono::milliseconds(20)); // it waits for the first
        sent = send_for(out, sc.seconds, sc.rate, sc.burst);
        std::this_thread::sleep_for(std::chrono::milliseconds(300)); // the receiver drains
        stop(1);
    }
    g.end();
    receiver.join();
    if (mode == "recvmmsg" || mode == "recvfrom") ::close(fd); // (conet and Asio own theirs)
    outcome o;
    const double span =
        sc.backlog ? t.wall_seconds : std::chrono::duration<double>(t.last - t.first).count();
    o.per_second = span > 0 ? static_cast<double>(t.received) / span : 0;
    o.cpu_ns = t.received ? t.cpu_seconds * 1e9 / static_cast<double>(t.received) : 0;
    o.per_batch = t.batches ? static_cast<double>(t.received) / static_cast<double>(t.batches) : 0;
    o.received = sent ? static_cast<double>(t.received) / static_cast<double>(sent) : 0;
    if (t.syscalls >= 0 && t.received)
        o.syscalls = static_cast<double>(t.syscalls) / static_cast<double>(t.received);
    return o;
}

} // namespace

int main(int argc, char** argv) {
    const std::string kind = argc > 1 ? argv[1] : "backlog";
    auto number = [&](int i, double otherwise) {
        return argc > i ? std::atof(argv[i]) : otherwise;
    };
    scenario sc;
    int rounds = 3;
    if (kind == "backlog") {
        sc.backlog = true;
        rounds = static_cast<int>(number(2, 3));
        sc.cycles = static_cast<int>(number(3, 200));
        sc.queued = static_cast<std::size_t>(number(4, 256));
    } else if (kind == "flood" || kind == "paced") {
        sc.seconds = number(2, 1);
        rounds = static_cast<int>(number(3, 3));
        sc.rate = kind == "paced" ? number(4, 20000) : 0;
        sc.burst = static_cast<std::size_t>(number(5, kind == "paced" ? 1 : 32));
    } else {
        std::fprintf(stderr, "usage: udp_batch backlog [ROUNDS] [CYCLES] [QUEUED]\n"
                             "       udp_batch flood [SECONDS] [ROUNDS]\n"
                             "       udp_batch paced [SECONDS] [ROUNDS] [RATE] [BURST]\n");
        return 2;
    }
    std::vector<std::string> modes{"conet_batch", "conet_one", "recvmmsg", "recvfrom"};
#ifdef CONET_BENCH_ASIO
    modes.push_back("asio");
#endif
    if (sc.backlog)
        std::printf("udp_batch backlog: %d rounds of %d drains of %zu queued datagrams", rounds,
                    sc.cycles, sc.queued);
    else if (sc.rate > 0)
        std::printf("udp_batch paced: %d rounds of %g s at %.0f datagrams/s in bursts of %zu",
                    rounds, sc.seconds, sc.rate, sc.burst);
    else
        std::printf("udp_batch flood: %d rounds of %g s, bursts of %zu", rounds, sc.seconds,
                    sc.burst);
    std::printf("; %zu-byte datagrams, batches of %zu; load average %s\n", payload, batch_slots,
                load_average().c_str());
    std::map<std::string, std::vector<double>> rates, cpu, per_batch, arrived, ratio, syscalls,
        to_one;
    for (int round = 0; round < rounds; ++round) {
        std::map<std::string, outcome> got;
        // Each round starts with another receiver, so that none always runs first or last.
        for (std::size_t k = 0; k < modes.size(); ++k) {
            const std::string& mode = modes[(k + static_cast<std::size_t>(round)) % modes.size()];
            got[mode] = run_one(mode, sc);
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

// send_file - a file sent over loopback TCP three ways, in rounds that alternate them:
// conet's send_file (sendfile(2)), conet's read() + send_all of 64 KiB chunks, and a
// hand-written loop (non-blocking socket, sendfile until EAGAIN, epoll_wait). The same
// receiver takes every byte each time (a blocking recv into 256 KiB, counting).
//
//   send_file [MIB] [ROUNDS]   (defaults: 1024 MiB, 3 rounds)
//
// The file (MIB MiB) is written to a temporary file in $TMPDIR (else /tmp), unlinked at once
// (gone when the program ends, however it ends) and in the page cache when the rounds start.
// The sender runs on CPU 0 and the receiver on CPU 1 when there are two. For each sender and
// round it prints MB/s (MiB of the file per second of the transfer), the sender thread's CPU
// per MiB (user + system, CLOCK_THREAD_CPUTIME_ID) and its system calls per MiB (conet's by
// reactor::stats() plus the read()s, the hand-written loop's counted by hand); then the
// medians, with MB/s and CPU as ratios to the hand-written loop's within each round.
#include <conet/conet.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"

namespace {

using bench_support::load_average;
using bench_support::median;
using bench_support::pin;

constexpr std::size_t mib = 1 << 20;
constexpr std::size_t chunk = 64 * 1024; // read() + send_all's buffer

[[noreturn]] void die(const char* what) {
    std::perror(what);
    std::exit(1);
}

double thread_cpu() {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// A temporary file of `size` bytes, already unlinked: only the descriptor names it.
int make_file(std::size_t size) {
    const char* dir = std::getenv("TMPDIR");
    std::string name = std::string(dir && *dir ? dir : "/tmp") + "/conet_send_file_XXXXXX";
    const int fd = ::mkstemp(name.data());
    if (fd < 0) die("send_file: mkstemp");
    ::unlink(name.c_str());
    std::vector<char> block(mib);
    for (std::size_t written = 0; written < size; written += block.size()) {
        for (std::size_t i = 0; i < block.size(); ++i)
            block[i] = static_cast<char>((written + i) * 7 / 5);
        if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()))
            die("send_file: writing the file (is the disk full? pass a smaller MIB)");
    }
    return fd;
}

struct outcome {
    double seconds = 0;     // of the transfer, from the sender's first call to its last
    double cpu_seconds = 0; // the sender thread's
    long syscalls = 0;      // the sender thread's, during the transfer
};

conet::task<> conet_sender(conet::endpoint to, int file, std::size_t size, bool use_sendfile,
                           conet::reactor& r, outcome& o) {
    auto conn = co_await conet::tcp_stream::connect(to);
    const auto s0 = r.stats().syscalls;
    long reads = 0;
    const auto w0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu();
    if (use_sendfile) {
        co_await conn.send_file(file, 0, size);
    } else {
        std::vector<char> buf(chunk);
        for (off_t at = 0; static_cast<std::size_t>(at) < size;) {
            const auto n = ::pread(file, buf.data(), buf.size(), at);
            ++reads;
            if (n <= 0) die("send_file: pread");
            co_await conn.send_all(conet::const_buffer(buf.data(), static_cast<std::size_t>(n)));
            at += n;
        }
    }
    o.cpu_seconds = thread_cpu() - c0;
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    o.syscalls = static_cast<long>(r.stats().syscalls - s0) + reads;
}

// What a C programmer writes: sendfile until EAGAIN, then wait for room.
void hand_sender(std::uint16_t port, int file, std::size_t size, outcome& o) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) < 0) die("connect");
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    const auto w0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu();
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLET;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    o.syscalls += 2;
    off_t at = 0;
    while (static_cast<std::size_t>(at) < size) {
        const auto n = ::sendfile(fd, file, &at, size - static_cast<std::size_t>(at));
        ++o.syscalls;
        if (n > 0) continue;
        if (n < 0 && errno == EAGAIN) {
            ::epoll_wait(ep, &ev, 1, -1);
            ++o.syscalls;
            continue;
        }
        die("send_file: sendfile");
    }
    o.cpu_seconds = thread_cpu() - c0;
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    ::close(ep);
    ::close(fd);
}

// One transfer of the whole file by `mode`; exits if the receiver did not get every byte.
outcome run_one(const std::string& mode, int file, std::size_t size) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof sin;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&sin), sizeof sin) < 0 ||
        ::listen(listener, 1) < 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&sin), &length) < 0)
        die("send_file: listener");
    std::size_t received = 0;
    std::thread receiver([&] {
        pin(1);
        const int fd = ::accept(listener, nullptr, nullptr);
        std::vector<char> buf(256 * 1024);
        for (;;) {
            const auto n = ::recv(fd, buf.data(), buf.size(), 0);
            if (n <= 0) break;
            received += static_cast<std::size_t>(n);
        }
        ::close(fd);
    });
    outcome o;
    std::thread sender([&] {
        pin(0);
        if (mode == "hand_sendfile") {
            hand_sender(ntohs(sin.sin_port), file, size, o);
            return;
        }
        conet::reactor r;
        const auto to = conet::endpoint::parse("127.0.0.1:" + std::to_string(ntohs(sin.sin_port)));
        r.run(conet_sender(to, file, size, mode == "conet_send_file", r, o));
    });
    sender.join();
    receiver.join();
    ::close(listener);
    if (received != size) {
        std::fprintf(stderr, "send_file: %s: %zu bytes received of %zu\n", mode.c_str(), received,
                     size);
        std::exit(1);
    }
    return o;
}

} // namespace

int main(int argc, char** argv) {
    const long size_mib = argc > 1 ? std::atol(argv[1]) : 1024;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    if (size_mib <= 0 || rounds <= 0) {
        std::fprintf(stderr, "usage: send_file [MIB] [ROUNDS]\n");
        return 2;
    }
    const std::size_t size = static_cast<std::size_t>(size_mib) * mib;
    const int file = make_file(size);
    const std::vector<std::string> modes{"conet_send_file", "conet_read_send", "hand_sendfile"};
    std::printf("send_file: %ld MiB, %d rounds; load average %s\n", size_mib, rounds,
                load_average().c_str());
    std::map<std::string, std::vector<double>> rate, cpu, calls, rate_ratio, cpu_ratio;
    for (int round = 0; round < rounds; ++round) {
        std::map<std::string, outcome> got;
        for (std::size_t k = 0; k < modes.size(); ++k) { // each round starts with another
            const std::string& mode = modes[(k + static_cast<std::size_t>(round)) % modes.size()];
            const outcome o = got[mode] = run_one(mode, file, size);
            const double mibs = static_cast<double>(size_mib);
            rate[mode].push_back(mibs / o.seconds);
            cpu[mode].push_back(o.cpu_seconds * 1e6 / mibs);
            calls[mode].push_back(static_cast<double>(o.syscalls) / mibs);
            std::printf("round %d %-16s %7.0f MB/s %7.0f µs CPU/MiB %7.2f syscalls/MiB\n",
                        round + 1, mode.c_str(), rate[mode].back(), cpu[mode].back(),
                        calls[mode].back());
            std::fflush(stdout);
        }
        const outcome& base = got["hand_sendfile"];
        for (const auto& mode : modes) {
            rate_ratio[mode].push_back(base.seconds / got[mode].seconds);
            cpu_ratio[mode].push_back(got[mode].cpu_seconds / base.cpu_seconds);
        }
    }
    std::printf(
        "\n| sender | MB/s | vs hand-written sendfile (same round) | sender CPU µs/MiB | vs "
        "hand-written sendfile (same round) | sender system calls/MiB |\n"
        "|---|---:|---:|---:|---:|---:|\n");
    for (const auto& mode : modes)
        std::printf("| %s | %.0f | %.2f | %.0f | %.2f | %.2f |\n", mode.c_str(), median(rate[mode]),
                    median(rate_ratio[mode]), median(cpu[mode]), median(cpu_ratio[mode]),
                    median(calls[mode]));
    std::printf("load average after: %s\n", load_average().c_str());
    ::close(file);
}

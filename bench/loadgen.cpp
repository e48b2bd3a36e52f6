// loadgen - the load generator for the echo benchmarks. Its own epoll loop (not conet), so it
// measures the server, not the library under test.
//
//   loadgen HOST:PORT --connections N --size S --seconds T
//       N connections, each sending an S-byte message and waiting for the whole echo before
//       sending the next (ping-pong), for T seconds. Every echoed byte is checked. Prints
//       "round_trips=R seconds=T rt_per_s=X errors=E" and exits non-zero on any error.
//   loadgen ... --think-us U
//       the same, but after each batch of echoes the generator waits U microseconds before
//       sending the next messages: a server slowed down by valgrind then still finds its
//       sockets empty after each message, as it does at full speed (see bench/run).
//   loadgen HOST:PORT --hold N
//       opens N idle connections, prints "holding N", and keeps them until its standard
//       input closes (for measuring the server's memory per idle connection).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct options {
    sockaddr_in server{};
    int connections = 1;
    std::size_t size = 64;
    double seconds = 5;
    int hold = 0;
    long think_us = 0;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "loadgen: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

options parse(int argc, char** argv) {
    options o;
    if (argc < 2) {
        std::fprintf(stderr, "usage: loadgen HOST:PORT [--connections N] [--size S] "
                             "[--seconds T] [--think-us U] | [--hold N]\n");
        std::exit(2);
    }
    const std::string target = argv[1];
    const auto colon = target.rfind(':');
    o.server.sin_family = AF_INET;
    o.server.sin_port = htons(static_cast<uint16_t>(std::atoi(target.c_str() + colon + 1)));
    if (colon == std::string::npos ||
        inet_pton(AF_INET, target.substr(0, colon).c_str(), &o.server.sin_addr) != 1) {
        std::fprintf(stderr, "loadgen: bad target %s (want IPv4:PORT)\n", target.c_str());
        std::exit(2);
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const char* value = argv[i + 1];
        if (flag == "--connections")
            o.connections = std::atoi(value);
        else if (flag == "--size")
            o.size = static_cast<std::size_t>(std::atol(value));
        else if (flag == "--seconds")
            o.seconds = std::atof(value);
        else if (flag == "--hold")
            o.hold = std::atoi(value);
        else if (flag == "--think-us")
            o.think_us = std::atol(value);
        else {
            std::fprintf(stderr, "loadgen: unknown option %s\n", flag.c_str());
            std::exit(2);
        }
    }
    return o;
}

int connect_to(const sockaddr_in& server) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) < 0)
        die("connect");
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

// The byte at offset i of message number n of a connection: every byte is checkable.
char expected(std::size_t n, std::size_t i) {
    return static_cast<char>((n * 31 + i * 7) & 0xff);
}

struct connection {
    int fd = -1;
    std::size_t message = 0; // how many round trips completed
    std::size_t sent = 0;    // bytes of the current message sent
    std::size_t received = 0;
    std::vector<char> out;
};

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);

    if (o.hold > 0) {
        std::vector<int> fds;
        fds.reserve(static_cast<std::size_t>(o.hold));
        for (int i = 0; i < o.hold; ++i)
            fds.push_back(connect_to(o.server));
        std::printf("holding %d\n", o.hold);
        std::fflush(stdout);
        char c;
        while (::read(STDIN_FILENO, &c, 1) > 0) {
        }
        for (int fd : fds)
            ::close(fd);
        return 0;
    }

    const int ep = ::epoll_create1(0);
    std::vector<connection> conns(static_cast<std::size_t>(o.connections));
    for (std::size_t k = 0; k < conns.size(); ++k) {
        auto& c = conns[k];
        c.fd = connect_to(o.server);
        c.out.resize(o.size);
        for (std::size_t i = 0; i < o.size; ++i)
            c.out[i] = expected(0, i);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
        ev.data.u64 = k;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) < 0) die("epoll_ctl");
    }

    std::vector<char> in(o.size);
    std::vector<epoll_event> events(1024);
    long long errors = 0;
    std::vector<connection*> thinking; // round trip done, next message after the pause
    std::vector<connection*> waking;   // those whose pause is over (kept: no allocation)
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::duration<double>(o.seconds);
    auto progress = [&](connection& c) {
        for (;;) {
            if (c.sent < o.size) {
                const auto n = ::send(c.fd, c.out.data() + c.sent, o.size - c.sent, MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno == EAGAIN) return;
                    die("send");
                }
                c.sent += static_cast<std::size_t>(n);
                continue;
            }
            const auto n = ::recv(c.fd, in.data(), o.size - c.received, 0);
            if (n == 0) {
                errno = ECONNRESET;
                die("server closed a connection");
            }
            if (n < 0) {
                if (errno == EAGAIN) return;
                die("recv");
            }
            for (long i = 0; i < n; ++i)
                if (in[static_cast<std::size_t>(i)] !=
                    c.out[c.received + static_cast<std::size_t>(i)])
                    ++errors;
            c.received += static_cast<std::size_t>(n);
            if (c.received < o.size) continue;
            // A full round trip: next message, with different bytes.
            ++c.message;
            c.sent = c.received = 0;
            for (std::size_t i = 0; i < o.size; ++i)
                c.out[i] = expected(c.message, i);
            if (std::chrono::steady_clock::now() >= end) return;
            if (o.think_us > 0) {
                thinking.push_back(&c);
                return;
            }
        }
    };
    for (auto& c : conns)
        progress(c);
    while (std::chrono::steady_clock::now() < end) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
        for (int i = 0; i < n; ++i)
            progress(conns[events[static_cast<std::size_t>(i)].data.u64]);
        if (!thinking.empty()) {
            ::usleep(static_cast<useconds_t>(o.think_us));
            waking.swap(thinking); // progress() may add to thinking again
            for (connection* c : waking)
                progress(*c);
            waking.clear();
        }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    long long round_trips = 0;
    for (auto& c : conns) {
        round_trips += static_cast<long long>(c.message);
        ::close(c.fd);
    }
    std::printf("round_trips=%lld seconds=%.3f rt_per_s=%.0f errors=%lld\n", round_trips, seconds,
                static_cast<double>(round_trips) / seconds, errors);
    return errors == 0 ? 0 : 1;
}

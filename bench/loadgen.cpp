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
//   loadgen ... --latency 1
//       also times every round trip (from the message's first send to its echo's last byte)
//       and appends "p50_us=A p99_us=B p999_us=C" to the line.
//   loadgen ... --flood 1
//       adds one more connection that writes 64 KiB blocks as fast as the server takes them
//       and throws away what comes back (an upload, a misbehaving peer): the N ping-pong
//       connections measure what the flood costs them. Appends "flood_mb_s=F". Not counted
//       in round_trips.
//   loadgen ... --short 1
//       short connections: each of the N connects, sends one S-byte message, reads its echo
//       and closes, then connects again. Prints "connections=C seconds=T conn_per_s=X ...".
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

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
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
    bool latency = false;
    bool flood = false;
    bool short_connections = false;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "loadgen: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

options parse(int argc, char** argv) {
    options o;
    if (argc < 2) {
        std::fprintf(stderr, "usage: loadgen HOST:PORT [--connections N] [--size S] "
                             "[--seconds T] [--think-us U] [--latency 1] [--flood 1] [--short 1] "
                             "| [--hold N]\n");
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
        else if (flag == "--latency")
            o.latency = std::atoi(value) != 0;
        else if (flag == "--flood")
            o.flood = std::atoi(value) != 0;
        else if (flag == "--short")
            o.short_connections = std::atoi(value) != 0;
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
    while (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) < 0)
        if (errno != EINTR) die("connect");
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
    std::chrono::steady_clock::time_point started; // of the current message (--latency)
};

using clock_type = std::chrono::steady_clock;

// The p-th quantile (0..1) of sorted `v`, in microseconds.
double quantile_us(const std::vector<std::int64_t>& v, double p) {
    if (v.empty()) return 0;
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
}

void print_latency(std::vector<std::int64_t>& ns) {
    std::sort(ns.begin(), ns.end());
    std::printf(" p50_us=%.1f p99_us=%.1f p999_us=%.1f", quantile_us(ns, 0.5),
                quantile_us(ns, 0.99), quantile_us(ns, 0.999));
}

// --short: every connection connects, sends one message, reads its echo, closes, again.
// Blocking sockets, one thread per connection slot would measure the threads; instead the
// slots are served round-robin by one epoll loop, connecting without blocking.
int run_short(const options& o) {
    struct slot {
        int fd = -1;
        std::size_t sent = 0, received = 0;
        bool connecting = false;
    };
    const int ep = ::epoll_create1(0);
    std::vector<slot> slots(static_cast<std::size_t>(o.connections));
    std::vector<char> out(o.size, 'x'), in(o.size);
    long long done = 0, errors = 0;
    auto open = [&](std::size_t k) {
        auto& s = slots[k];
        s = slot{};
        s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (s.fd < 0) die("socket");
        int one = 1;
        ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&o.server), sizeof o.server) < 0 &&
            errno != EINPROGRESS)
            die("connect");
        s.connecting = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
        ev.data.u64 = k;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev) < 0) die("epoll_ctl");
    };
    // Returns true when the slot's connection is finished (echo received).
    auto progress = [&](std::size_t k) {
        auto& s = slots[k];
        for (;;) {
            if (s.sent < o.size) {
                const auto n = ::send(s.fd, out.data() + s.sent, o.size - s.sent, MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno == EAGAIN || errno == EINPROGRESS || errno == ENOTCONN) return false;
                    die("send");
                }
                s.sent += static_cast<std::size_t>(n);
                continue;
            }
            const auto n = ::recv(s.fd, in.data(), o.size - s.received, 0);
            if (n < 0) {
                if (errno == EAGAIN) return false;
                die("recv");
            }
            if (n == 0) {
                ++errors;
                return true;
            }
            s.received += static_cast<std::size_t>(n);
            if (s.received == o.size) return true;
        }
    };
    const auto start = clock_type::now();
    const auto end = start + std::chrono::duration<double>(o.seconds);
    for (std::size_t k = 0; k < slots.size(); ++k)
        open(k);
    std::vector<epoll_event> events(1024);
    while (clock_type::now() < end) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
        for (int i = 0; i < n; ++i) {
            const auto k = events[static_cast<std::size_t>(i)].data.u64;
            if (!progress(k)) continue;
            ::close(slots[k].fd); // the server sees the end of stream and closes its side
            ++done;
            open(k);
        }
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    std::printf("connections=%lld seconds=%.3f conn_per_s=%.0f errors=%lld\n", done, seconds,
                static_cast<double>(done) / seconds, errors);
    return errors == 0 ? 0 : 1;
}

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

    if (o.short_connections) return run_short(o);

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

    // The flooder: its epoll key is conns.size(), past the ping-pong connections.
    int flood_fd = -1;
    std::uint64_t flooded = 0;
    std::vector<char> block(64 * 1024, 'f'), sink(64 * 1024);
    if (o.flood) {
        flood_fd = connect_to(o.server);
        epoll_event ev{};               // level-triggered: one block each way per poll, so that the
        ev.events = EPOLLIN | EPOLLOUT; // generator serves its ping-pongs between blocks
        ev.data.u64 = conns.size();
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, flood_fd, &ev) < 0) die("epoll_ctl");
    }
    auto flood = [&] {
        const auto w = ::send(flood_fd, block.data(), block.size(), MSG_NOSIGNAL);
        if (w > 0)
            flooded += static_cast<std::uint64_t>(w);
        else if (w < 0 && errno != EAGAIN)
            die("flood send");
        const auto r = ::recv(flood_fd, sink.data(), sink.size(), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) die("flood recv");
    };
    std::vector<std::int64_t> latencies;
    if (o.latency) latencies.reserve(1 << 20);

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
                if (n >= 0) {
                    c.sent += static_cast<std::size_t>(n);
                    continue;
                }
                if (errno != EAGAIN) die("send");
                // The send queue is full: read the echo that has come back so far. A message
                // larger than the sockets' buffers (1 MiB) is echoed while it is being sent,
                // and the server cannot take more of it until its echo is read.
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
            if (std::memcmp(in.data(), c.out.data() + c.received, static_cast<std::size_t>(n)) != 0)
                for (long i = 0; i < n; ++i)
                    if (in[static_cast<std::size_t>(i)] !=
                        c.out[c.received + static_cast<std::size_t>(i)])
                        ++errors;
            c.received += static_cast<std::size_t>(n);
            if (c.received < o.size) continue;
            // A full round trip: next message, with different bytes.
            if (o.latency) {
                const auto now = clock_type::now();
                latencies.push_back(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.started).count());
                c.started = now;
            }
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
    for (auto& c : conns) {
        c.started = clock_type::now();
        progress(c);
    }
    if (o.flood) flood();
    while (std::chrono::steady_clock::now() < end) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
        for (int i = 0; i < n; ++i) {
            const auto k = events[static_cast<std::size_t>(i)].data.u64;
            if (k == conns.size())
                flood();
            else
                progress(conns[k]);
        }
        if (!thinking.empty()) {
            ::usleep(static_cast<useconds_t>(o.think_us));
            waking.swap(thinking); // progress() may add to thinking again
            for (connection* c : waking) {
                c->started = clock_type::now();
                progress(*c);
            }
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
    std::printf("round_trips=%lld seconds=%.3f rt_per_s=%.0f errors=%lld", round_trips, seconds,
                static_cast<double>(round_trips) / seconds, errors);
    if (o.latency) print_latency(latencies);
    if (o.flood) {
        std::printf(" flood_mb_s=%.0f", static_cast<double>(flooded) / seconds / 1e6);
        ::close(flood_fd);
    }
    std::printf("\n");
    return errors == 0 ? 0 : 1;
}

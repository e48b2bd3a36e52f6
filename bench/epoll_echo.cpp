// epoll_echo - the floor: a hand-written echo server, edge-triggered epoll, reading until
// EAGAIN, 16 KiB buffer, as little as an echo server can do. With THREADS > 1, one such loop
// per thread, each with its own SO_REUSEPORT listener on the port (the shard model, by hand).
//
//   epoll_echo [PORT] [THREADS]   (prints "Listening on 127.0.0.1:PORT")
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

struct client {
    std::vector<char> pending; // echo bytes the socket would not take yet
};

constexpr std::size_t buffer_size = 16 * 1024;

// Sends what `c` still owes; false if the connection failed.
bool flush(int fd, client& c) {
    std::size_t done = 0;
    while (done < c.pending.size()) {
        const auto n = ::send(fd, c.pending.data() + done, c.pending.size() - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) break;
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<long>(done));
    return true;
}

// A listening socket on `port` (0: any), SO_REUSEPORT so that each thread can have one.
int open_listener(int port) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
        ::listen(listener, SOMAXCONN) < 0) {
        std::perror("epoll_echo: bind");
        std::exit(1);
    }
    return listener;
}

// One thread's loop: accepts on `listener`, echoes its clients, for ever.
void serve(int listener) {
    const int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    std::vector<client> clients;
    std::vector<epoll_event> events(1024);
    char buffer[buffer_size];
    for (;;) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
        for (int i = 0; i < n; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == listener) {
                for (;;) {
                    const int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
                    if (c < 0) break;
                    if (static_cast<std::size_t>(c) >= clients.size()) clients.resize(c + 1);
                    clients[static_cast<std::size_t>(c)] = {};
                    epoll_event cev{};
                    cev.events = EPOLLIN | EPOLLOUT | EPOLLET;
                    cev.data.fd = c;
                    ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            client& c = clients[static_cast<std::size_t>(fd)];
            bool alive = flush(fd, c);
            while (alive && c.pending.empty()) { // read until EAGAIN
                const auto r = ::recv(fd, buffer, sizeof buffer, 0);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) {
                    alive = false;
                    break;
                }
                c.pending.assign(buffer, buffer + r);
                alive = flush(fd, c);
            }
            if (!alive) ::close(fd); // closing also removes it from the epoll set
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    const int port = argc > 1 ? std::atoi(argv[1]) : 0;
    const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1;
    std::vector<int> listeners{open_listener(port)};
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    ::getsockname(listeners[0], reinterpret_cast<sockaddr*>(&addr), &len);
    for (int i = 1; i < threads; ++i)
        listeners.push_back(open_listener(ntohs(addr.sin_port)));
    std::printf("Listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    std::fflush(stdout);
    std::vector<std::thread> others;
    for (int i = 1; i < threads; ++i)
        others.emplace_back(serve, listeners[static_cast<std::size_t>(i)]);
    serve(listeners[0]);
}

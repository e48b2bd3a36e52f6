// tests/support.hpp - helpers shared by the tests: a watchdog that bounds every run, loopback
// endpoints, a connected pair of TCP streams, and a port where nothing answers.
#pragma once

#include <conet/conet.hpp>

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace conet_test {

using namespace std::chrono_literals;

/// 127.0.0.1 with port 0: "any free port on loopback".
inline conet::endpoint any_loopback_port() {
    return {conet::ip_address::loopback(), 0};
}

/// A loopback port where nothing answers, reserved for as long as this object lives. For TCP
/// it holds a socket bound to the port but never listening, so a connect is refused; for UDP
/// a socket bound to the port and connected to itself, so a datagram from any other socket
/// draws "port unreachable" (connection_refused on a connected sender). Binding a port and
/// closing it again instead frees it: a test running beside (ctest -j) may take it, or a
/// client may connect to itself from it (TCP self-connect in the ephemeral range). The
/// socket sets no SO_REUSEADDR, so nobody else can bind the port while it is held.
class refused_port {
public:
    enum class protocol { tcp, udp };

    explicit refused_port(protocol p = protocol::tcp) {
        const int fd = ::socket(
            AF_INET, (p == protocol::tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
            0);
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
        holder_ = conet::detail::descriptor(fd);
        const conet::detail::sockaddr_any any(any_loopback_port());
        if (::bind(fd, any.get(), any.length) < 0)
            throw std::system_error(errno, std::generic_category(), "bind");
        std::error_code ec;
        where_ = conet::detail::local_endpoint(fd, ec);
        if (ec) throw std::system_error(ec, "getsockname");
        const conet::detail::sockaddr_any self(where_);
        if (p == protocol::udp && ::connect(fd, self.get(), self.length) < 0)
            throw std::system_error(errno, std::generic_category(), "connect");
    }

    conet::endpoint endpoint() const { return where_; }
    std::uint16_t port() const { return where_.port(); }

private:
    conet::detail::descriptor holder_;
    conet::endpoint where_;
};

/// Stops `r` from another thread if the scope lasts longer than `limit`, so that a test that
/// would hang fails instead (reactor::run then throws operation_canceled).
class watchdog {
public:
    explicit watchdog(conet::reactor& r, std::chrono::milliseconds limit = 10s)
        : thread_([this, &r, limit] {
              std::unique_lock lock(mutex_);
              if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) r.stop();
          }) {}
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        done_cv_.notify_one();
        thread_.join();
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;

private:
    std::mutex mutex_;
    std::condition_variable done_cv_;
    bool done_ = false;
    std::thread thread_; // last: starts once the members it uses exist
};

/// The calling thread's kernel id (for in_epoll_wait).
inline pid_t this_thread_id() {
    return static_cast<pid_t>(::syscall(SYS_gettid));
}

/// True while thread `tid` of this process is blocked in epoll_wait (or epoll_pwait): read
/// from /proc/self/task/<tid>/syscall, which names the system call a blocked thread is in.
/// How a test knows that a reactor sleeps, where a sleep of a few milliseconds only makes it
/// likely.
inline bool in_epoll_wait(pid_t tid) {
    std::ifstream file("/proc/self/task/" + std::to_string(tid) + "/syscall");
    long number = -1;
    if (!(file >> number)) return false; // "running", or no such thread
    return false
#ifdef SYS_epoll_wait
           || number == SYS_epoll_wait
#endif
#ifdef SYS_epoll_pwait
           || number == SYS_epoll_pwait
#endif
#ifdef SYS_epoll_pwait2
           || number == SYS_epoll_pwait2
#endif
        ;
}

/// Waits (up to `limit`) for the child process `pid` to end and returns its wait status. A
/// child still running then is killed (SIGKILL): the status says so, and the test fails.
inline int wait_for_child(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    int status = -1;
    const auto until = std::chrono::steady_clock::now() + limit;
    while (::waitpid(pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (status == -1) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
    return status;
}

/// Waits (up to `limit`) until `holds()` is true; false if it never was.
template <class F>
bool holds_within(F holds, std::chrono::milliseconds limit = 5s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!holds()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

/// Runs `t` on `r` under a watchdog and returns its result.
template <class T>
T run_bounded(conet::reactor& r, conet::task<T> t, std::chrono::milliseconds limit = 10s) {
    watchdog guard(r, limit);
    return r.run(std::move(t));
}

/// Runs `t` on a fresh reactor under a watchdog.
template <class T>
T run_bounded(conet::task<T> t, std::chrono::milliseconds limit = 10s) {
    conet::reactor r;
    return run_bounded(r, std::move(t), limit);
}

/// Two ends of one loopback TCP connection.
struct stream_pair {
    conet::tcp_stream client;
    conet::tcp_stream server;
};

/// Connects a client to a fresh loopback listener and accepts it.
inline conet::task<stream_pair> connected_pair(conet::ip_family family = conet::ip_family::v4) {
    auto listener = conet::tcp_listener::bind({conet::ip_address::loopback(family), 0});
    auto client = co_await conet::tcp_stream::connect(listener.local_endpoint());
    auto [server, peer] = co_await listener.accept();
    co_return stream_pair{std::move(client), std::move(server)};
}

/// Aborts a connection with RST (SO_LINGER 0, then close), as a crashing peer would.
inline void reset(conet::tcp_stream& s) {
    linger l{1, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    s.close();
}

/// Sets `*flag` when destroyed: put one in a coroutine to see when its frame goes.
struct destroy_flag {
    bool* flag;
    ~destroy_flag() { *flag = true; }
};

/// A deterministic byte pattern, so that corruption at any offset is detected.
inline char pattern_byte(std::size_t i) {
    return static_cast<char>((i * 131u + (i >> 12) * 7u + 17u) & 0xffu);
}

} // namespace conet_test

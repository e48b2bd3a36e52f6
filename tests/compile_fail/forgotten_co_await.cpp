// Every awaitable conet returns is [[nodiscard]]: a forgotten co_await is a compile error
// under -Werror, not a silent no-op (the peer would receive 0 bytes). Compiled, never run
// (tests/compile_fail/check.cmake): with -DCONET_FORGET=N the N-th awaitable below loses its
// co_await, with -1 every one does, and the compile must fail with conet's message on exactly
// the lines that lost it; with 0 every one is awaited and the file must compile, so each
// error is the missing co_await alone. (Preprocessor blocks, not `if constexpr`, whose
// discarded branch Clang still checks.)
#include <conet/channel.hpp>
#include <conet/conet.hpp>
#include <conet/event.hpp>
#include <conet/handoff.hpp>
#include <conet/mutex.hpp>
#include <conet/semaphore.hpp>
#include <conet/shared_channel.hpp>
#include <conet/unix.hpp>
#include <conet/watched_fd.hpp>

#include <chrono>
#include <csignal>
#include <string>

#ifndef CONET_FORGET
#error "define CONET_FORGET: 0 awaits everything, N forgets the N-th co_await, -1 every one"
#endif

using namespace std::chrono_literals;

// Not in an anonymous namespace, so that no warning calls them unused: nothing runs them.
conet::task<int> answer() {
    co_return 42;
}

conet::task<> body(conet::tcp_listener& listener, conet::tcp_stream& conn, conet::udp_socket& udp,
                   conet::reactor& other, conet::unix_listener& unix_listener,
                   conet::unix_stream& unix_conn) {
    char buf[16];
    std::error_code ec;
    const auto to = conet::endpoint::parse("127.0.0.1:9");
    conet::buffer_pool pool(64);
    conet::line_reader lines{conn};
    conet::watched_fd watched{0};
    conet::standard_input in;
    conet::signal_set signals{SIGUSR1};
    conet::task_group group;
    conet::channel<int> channel(1);
    conet::shared_channel<int> shared(1);
    conet::mutex mutex;
    conet::semaphore semaphore(1);
    conet::event event;
    const int one = 1;
#if CONET_FORGET == 1 || CONET_FORGET == -1
    conn.send_all("hello");
#else
    co_await conn.send_all("hello");
#endif
#if CONET_FORGET == 2 || CONET_FORGET == -1
    conn.send(buf);
#else
    co_await conn.send(buf);
#endif
#if CONET_FORGET == 3 || CONET_FORGET == -1
    conn.recv(buf);
#else
    co_await conn.recv(buf);
#endif
#if CONET_FORGET == 4 || CONET_FORGET == -1
    conn.recv_exact(buf, ec);
#else
    co_await conn.recv_exact(buf, ec);
#endif
#if CONET_FORGET == 5 || CONET_FORGET == -1
    conn.recv(pool);
#else
    co_await conn.recv(pool);
#endif
#if CONET_FORGET == 6 || CONET_FORGET == -1
    conn.wait_readable();
#else
    co_await conn.wait_readable();
#endif
#if CONET_FORGET == 7 || CONET_FORGET == -1
    listener.accept();
#else
    co_await listener.accept();
#endif
#if CONET_FORGET == 8 || CONET_FORGET == -1
    conet::tcp_stream::connect(to);
#else
    co_await conet::tcp_stream::connect(to);
#endif
#if CONET_FORGET == 9 || CONET_FORGET == -1
    udp.send_to(buf, to);
#else
    co_await udp.send_to(buf, to);
#endif
#if CONET_FORGET == 10 || CONET_FORGET == -1
    udp.recv_from(buf);
#else
    co_await udp.recv_from(buf);
#endif
#if CONET_FORGET == 11 || CONET_FORGET == -1
    udp.recv(buf);
#else
    co_await udp.recv(buf);
#endif
#if CONET_FORGET == 12 || CONET_FORGET == -1
    lines.read_line();
#else
    co_await lines.read_line();
#endif
#if CONET_FORGET == 13 || CONET_FORGET == -1
    watched.wait_readable();
#else
    co_await watched.wait_readable();
#endif
#if CONET_FORGET == 14 || CONET_FORGET == -1
    in.read_some(buf);
#else
    co_await in.read_some(buf);
#endif
#if CONET_FORGET == 15 || CONET_FORGET == -1
    conet::sleep_for(1ms);
#else
    co_await conet::sleep_for(1ms);
#endif
#if CONET_FORGET == 16 || CONET_FORGET == -1
    conet::sleep_until(std::chrono::steady_clock::now());
#else
    co_await conet::sleep_until(std::chrono::steady_clock::now());
#endif
#if CONET_FORGET == 17 || CONET_FORGET == -1
    conet::with_timeout(conn.recv(buf), 1s);
#else
    co_await conet::with_timeout(conn.recv(buf), 1s);
#endif
#if CONET_FORGET == 18 || CONET_FORGET == -1
    conet::with_timeout(answer(), 1s);
#else
    co_await conet::with_timeout(answer(), 1s);
#endif
#if CONET_FORGET == 19 || CONET_FORGET == -1
    conet::when_all(answer(), answer());
#else
    co_await conet::when_all(answer(), answer());
#endif
#if CONET_FORGET == 20 || CONET_FORGET == -1
    conet::when_any(answer(), answer());
#else
    co_await conet::when_any(answer(), answer());
#endif
#if CONET_FORGET == 21 || CONET_FORGET == -1
    group.join();
#else
    co_await group.join();
#endif
#if CONET_FORGET == 22 || CONET_FORGET == -1
    conet::async_resolve("localhost", "http");
#else
    co_await conet::async_resolve("localhost", "http");
#endif
#if CONET_FORGET == 23 || CONET_FORGET == -1
    conet::connect("localhost", "http");
#else
    co_await conet::connect("localhost", "http");
#endif
#if CONET_FORGET == 24 || CONET_FORGET == -1
    conet::yield();
#else
    co_await conet::yield();
#endif
#if CONET_FORGET == 25 || CONET_FORGET == -1
    signals.wait();
#else
    co_await signals.wait();
#endif
#if CONET_FORGET == 26 || CONET_FORGET == -1
    conet::resume_on(other);
#else
    co_await conet::resume_on(other);
#endif
#if CONET_FORGET == 27 || CONET_FORGET == -1
    conet::shield(answer());
#else
    co_await conet::shield(answer());
#endif
#if CONET_FORGET == 28 || CONET_FORGET == -1
    conet::current_cancel_token();
#else
    co_await conet::current_cancel_token();
#endif
#if CONET_FORGET == 29 || CONET_FORGET == -1
    answer();
#else
    co_await answer();
#endif
#if CONET_FORGET == 30 || CONET_FORGET == -1
    channel.send(1);
#else
    co_await channel.send(1);
#endif
#if CONET_FORGET == 31 || CONET_FORGET == -1
    channel.send(one);
#else
    co_await channel.send(one);
#endif
#if CONET_FORGET == 32 || CONET_FORGET == -1
    channel.recv();
#else
    co_await channel.recv();
#endif
#if CONET_FORGET == 33 || CONET_FORGET == -1
    shared.send(1);
#else
    co_await shared.send(1);
#endif
#if CONET_FORGET == 34 || CONET_FORGET == -1
    shared.recv();
#else
    co_await shared.recv();
#endif
#if CONET_FORGET == 35 || CONET_FORGET == -1
    mutex.lock();
#else
    auto held = co_await mutex.lock();
#endif
#if CONET_FORGET == 36 || CONET_FORGET == -1
    semaphore.acquire();
#else
    co_await semaphore.acquire();
#endif
#if CONET_FORGET == 37 || CONET_FORGET == -1
    event.wait();
#else
    co_await event.wait();
#endif
#if CONET_FORGET == 38 || CONET_FORGET == -1
    conet::unix_stream::connect("/run/x.sock");
#else
    co_await conet::unix_stream::connect("/run/x.sock");
#endif
#if CONET_FORGET == 39 || CONET_FORGET == -1
    unix_listener.accept();
#else
    co_await unix_listener.accept();
#endif
#if CONET_FORGET == 40 || CONET_FORGET == -1
    unix_conn.recv(buf);
#else
    co_await unix_conn.recv(buf);
#endif
#if CONET_FORGET == 41 || CONET_FORGET == -1
    unix_conn.send_fds(buf, {});
#else
    co_await unix_conn.send_fds(buf, {});
#endif
#if CONET_FORGET == 42 || CONET_FORGET == -1
    unix_conn.recv_fds(buf);
#else
    co_await unix_conn.recv_fds(buf);
#endif
    co_return; // a coroutine still when every co_await is forgotten
}

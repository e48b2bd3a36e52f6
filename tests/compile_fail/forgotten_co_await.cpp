// Every awaitable conet returns is [[nodiscard]]: a forgotten co_await is a compile error
// under -Werror, not a silent no-op (the peer would receive 0 bytes). Compiled, never run:
// with -DCONET_FORGET=N the N-th awaitable below (preprocessor blocks, not `if constexpr`,
// whose discarded branch Clang still checks) loses its co_await and the compile must fail
// with conet's message (tests/CMakeLists.txt, one test per kind); with CONET_FORGET=0 every
// one is awaited and the file must compile, so each failure is the missing co_await alone.
#include <conet/conet.hpp>

#include <chrono>
#include <csignal>
#include <string>

#ifndef CONET_FORGET
#error "define CONET_FORGET: 0 awaits everything, N forgets the N-th co_await"
#endif

using namespace std::chrono_literals;

// Not in an anonymous namespace, so that no warning calls them unused: nothing runs them.
conet::task<int> answer() {
    co_return 42;
}

conet::task<> body(conet::tcp_listener& listener, conet::tcp_stream& conn, conet::udp_socket& udp,
                   conet::reactor& other) {
    char buf[16];
    std::error_code ec;
    const auto to = conet::endpoint::parse("127.0.0.1:9");
    conet::buffer_pool pool(64);
    conet::line_reader lines{conn};
    conet::watched_fd watched{0};
    conet::standard_input in;
    conet::signal_set signals{SIGUSR1};
    conet::task_group group;
#if CONET_FORGET == 1
    conn.send_all("hello");
#else
    co_await conn.send_all("hello");
#endif
#if CONET_FORGET == 2
    conn.send(buf);
#else
    co_await conn.send(buf);
#endif
#if CONET_FORGET == 3
    conn.recv(buf);
#else
    co_await conn.recv(buf);
#endif
#if CONET_FORGET == 4
    conn.recv_exact(buf, ec);
#else
    co_await conn.recv_exact(buf, ec);
#endif
#if CONET_FORGET == 5
    conn.recv(pool);
#else
    co_await conn.recv(pool);
#endif
#if CONET_FORGET == 6
    conn.wait_readable();
#else
    co_await conn.wait_readable();
#endif
#if CONET_FORGET == 7
    listener.accept();
#else
    co_await listener.accept();
#endif
#if CONET_FORGET == 8
    conet::tcp_stream::connect(to);
#else
    co_await conet::tcp_stream::connect(to);
#endif
#if CONET_FORGET == 9
    udp.send_to(buf, to);
#else
    co_await udp.send_to(buf, to);
#endif
#if CONET_FORGET == 10
    udp.recv_from(buf);
#else
    co_await udp.recv_from(buf);
#endif
#if CONET_FORGET == 11
    udp.recv(buf);
#else
    co_await udp.recv(buf);
#endif
#if CONET_FORGET == 12
    lines.read_line();
#else
    co_await lines.read_line();
#endif
#if CONET_FORGET == 13
    watched.wait_readable();
#else
    co_await watched.wait_readable();
#endif
#if CONET_FORGET == 14
    in.read_some(buf);
#else
    co_await in.read_some(buf);
#endif
#if CONET_FORGET == 15
    conet::sleep_for(1ms);
#else
    co_await conet::sleep_for(1ms);
#endif
#if CONET_FORGET == 16
    conet::sleep_until(std::chrono::steady_clock::now());
#else
    co_await conet::sleep_until(std::chrono::steady_clock::now());
#endif
#if CONET_FORGET == 17
    conet::with_timeout(conn.recv(buf), 1s);
#else
    co_await conet::with_timeout(conn.recv(buf), 1s);
#endif
#if CONET_FORGET == 18
    conet::with_timeout(answer(), 1s);
#else
    co_await conet::with_timeout(answer(), 1s);
#endif
#if CONET_FORGET == 19
    conet::when_all(answer(), answer());
#else
    co_await conet::when_all(answer(), answer());
#endif
#if CONET_FORGET == 20
    conet::when_any(answer(), answer());
#else
    co_await conet::when_any(answer(), answer());
#endif
#if CONET_FORGET == 21
    group.join();
#else
    co_await group.join();
#endif
#if CONET_FORGET == 22
    conet::async_resolve("localhost", "http");
#else
    co_await conet::async_resolve("localhost", "http");
#endif
#if CONET_FORGET == 23
    conet::connect("localhost", "http");
#else
    co_await conet::connect("localhost", "http");
#endif
#if CONET_FORGET == 24
    conet::yield();
#else
    co_await conet::yield();
#endif
#if CONET_FORGET == 25
    signals.wait();
#else
    co_await signals.wait();
#endif
#if CONET_FORGET == 26
    conet::resume_on(other);
#else
    co_await conet::resume_on(other);
#endif
#if CONET_FORGET == 27
    conet::shield(answer());
#else
    co_await conet::shield(answer());
#endif
#if CONET_FORGET == 28
    conet::current_cancel_token();
#else
    co_await conet::current_cancel_token();
#endif
#if CONET_FORGET == 29
    answer();
#else
    co_await answer();
#endif
}

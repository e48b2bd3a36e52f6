// echo_server - the concurrent counterpart of chat_server: every client gets its own
// coroutine, so any number of them are served at once, on one thread. Each one's bytes are
// sent straight back until it closes its side. Nothing is logged per message: this is also
// the server the benchmarks drive.
//
//   ./echo_server [PORT] [--host ADDRESS]         (defaults: 8888, 0.0.0.0)
#include <conet/conet.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <iostream>

#include "command_line.hpp"

// Sends back everything one client sends. It owns its connection: spawn() moves the
// argument into the coroutine's frame, which lives as long as the coroutine does. When the
// server shuts down, its recv fails with operation_canceled and it returns, closing the
// connection.
conet::task<> echo(conet::tcp_stream conn) {
    std::array<char, 16 * 1024> buffer;
    std::error_code ec;
    for (;;) {
        const std::size_t n = co_await conn.recv(buffer, ec);
        if (ec || n == 0) co_return; // the client left (or reset), or we shut down: close
        co_await conn.send_all({buffer.data(), n}, ec);
        if (ec) co_return;
    }
}

// Accepts clients for ever, starting one echo coroutine for each in `clients`.
conet::task<> serve(conet::tcp_listener& listener, conet::task_group& clients) {
    for (;;) {
        std::error_code ec;
        auto [conn, peer] = co_await listener.accept(ec);
        if (ec == std::errc::too_many_files_open ||
            ec == std::errc::too_many_files_open_in_system) {
            // Out of descriptors: the client waits in the queue until some are freed.
            co_await conet::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        if (ec) throw std::system_error(ec, "accept");
        clients.spawn(echo(std::move(conn))); // runs concurrently with this loop
    }
}

conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

// Serves until SIGINT or SIGTERM, then lets every client's coroutine finish.
conet::task<> run_until_signal(conet::tcp_listener& listener, conet::signal_set& signals) {
    // The clients' coroutines. If one of them failed, the group would report it on stderr
    // and the others, and the accept loop, would go on.
    conet::task_group clients;
    // The first of the two to finish cancels the other.
    co_await conet::when_any(serve(listener, clients), next_signal(signals));
    // Shutting down: cancel every client's coroutine, and wait until all have closed.
    clients.cancel();
    co_await conet::with_timeout(clients.join(), std::chrono::seconds(5));
}

int main(int argc, char** argv) {
    const conet::endpoint where = example::server_endpoint(argc, argv);
    conet::signal_set signals{SIGINT, SIGTERM};
    try {
        auto listener = conet::tcp_listener::bind(where);
        std::cout << "Listening on " << listener.local_endpoint() << std::endl;
        conet::reactor reactor;
        reactor.run(run_until_signal(listener, signals));
    } catch (const std::system_error& e) {
        std::cerr << "echo_server: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

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

// Sends back everything one client sends. It owns its connection: spawn() copies the
// argument into the coroutine's frame, which lives as long as the coroutine does.
conet::task<> echo(conet::tcp_stream conn) {
    std::array<char, 16 * 1024> buffer;
    std::error_code ec;
    for (;;) {
        const std::size_t n = co_await conn.recv(buffer, ec);
        if (ec || n == 0) co_return; // the client left (or reset): just close
        co_await conn.send_all({buffer.data(), n}, ec);
        if (ec) co_return;
    }
}

// Accepts clients for ever, starting one echo coroutine for each.
conet::task<> serve(conet::tcp_listener& listener) {
    auto& reactor = *conet::reactor::current();
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
        reactor.spawn(echo(std::move(conn))); // runs concurrently with this loop
    }
}

conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

// Serves until SIGINT or SIGTERM: the first to finish cancels the other.
conet::task<> run_until_signal(conet::tcp_listener& listener, conet::signal_set& signals) {
    co_await conet::when_any(serve(listener), next_signal(signals));
}

int main(int argc, char** argv) {
    const conet::endpoint where = example::server_endpoint(argc, argv);
    conet::signal_set signals{SIGINT, SIGTERM};
    try {
        auto listener = conet::tcp_listener::bind(where);
        std::cout << "Listening on " << listener.local_endpoint() << std::endl;
        conet::reactor reactor;
        reactor.run(run_until_signal(listener, signals));
        // Leaving this scope destroys the reactor: every echo coroutine still running is
        // destroyed and its connection closed.
    } catch (const std::system_error& e) {
        std::cerr << "echo_server: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

// echo_server - the concurrent counterpart of chat_server: every client gets its own
// coroutine, so any number of them are served at once. Each one's bytes are sent straight
// back until it closes its side. Nothing is logged per message: this is also the server the
// benchmarks drive.
//
//   ./echo_server [PORT] [--host HOST] [--threads N] [--stats]
//                                                  (defaults: 8888, 0.0.0.0, 1)
//
// With --threads N it runs N reactors, one per thread, each accepting on its own listener:
// the N listeners share the port (SO_REUSEPORT) and the kernel spreads the clients among
// them. A client stays on the reactor that accepted it, so nothing is shared between
// threads. SIGINT or SIGTERM stops every reactor; the server then exits with status 0 (with
// --stats, after printing each reactor's counters: what bench/run reads).
//
// With CONET_DUMP_SIGNAL=SIGUSR1 in its environment, `kill -USR1 <pid>` makes it print on
// stderr what each of its coroutines is doing (conet/task_dump.hpp).
#include <conet/conet.hpp>
#include <conet/reactor_pool.hpp> // --threads N: one reactor per thread
#include <conet/task_dump.hpp>    // CONET_DUMP_SIGNAL

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "command_line.hpp"

// Sends back everything one client sends. It owns its connection: spawn() moves the
// argument into the coroutine's frame, which lives as long as the coroutine does. When the
// server shuts down, its recv fails with operation_canceled and it returns, closing the
// connection.
//
// The receive buffer is borrowed from the reactor's pool only once data has arrived, and
// given back when it has been sent: an idle client costs its small coroutine frame, not 16
// KiB of buffer (with 10,000 idle clients, that is the difference between a few MiB and
// 160 MiB).
conet::task<> echo(conet::tcp_stream conn, conet::buffer_pool& buffers) {
    std::error_code ec;
    for (;;) {
        auto data = co_await conn.recv(buffers, ec); // waits holding no buffer
        if (ec || data.empty()) co_return; // the client left (or reset), or we shut down: close
        co_await conn.send_all(data, ec);
        if (ec) co_return;
    } // data's buffer goes back to the pool at the end of each turn of the loop
}

// One reactor's server: accepts clients on `listener` until the server stops, starting one
// echo coroutine for each. The clients live in a scope: it returns only once every one of
// them has ended, so nothing is left running behind the server's back. When the server
// stops (a signal cancels this task), the scope cancels every client, and each closes.
conet::task<> serve(conet::tcp_listener& listener, std::size_t index, bool print_stats) {
    conet::buffer_pool buffers(16 * 1024); // this reactor's receive buffers, lent per message
    // failure_policy::report: if one client's coroutine failed, the scope would report it on
    // stderr and the others, and the accept loop, would go on.
    co_await conet::scope(
        conet::failure_policy::report, [&](conet::task_group& clients) -> conet::task<> {
            bool out_of_descriptors = false;
            for (;;) {
                std::error_code ec;
                auto [conn, peer] = co_await listener.accept(ec);
                if (ec == std::errc::too_many_files_open ||
                    ec == std::errc::too_many_files_open_in_system) {
                    // Out of descriptors: the client waits in the queue until some are freed.
                    // Said once each time it happens, with how many clients are being served.
                    if (!std::exchange(out_of_descriptors, true))
                        std::cerr << "echo_server: out of descriptors with " << clients.size() - 1
                                  << " clients; new ones wait" << std::endl;
                    co_await conet::sleep_for(std::chrono::milliseconds(50), ec);
                    if (ec) co_return; // operation_canceled: the server stops
                    continue;
                }
                if (ec == std::errc::operation_canceled) co_return; // a signal: the server stops
                if (ec) throw std::system_error(ec, "accept");
                out_of_descriptors = false;
                clients.spawn(echo(std::move(conn), buffers)); // runs concurrently with this loop
            }
        });
    if (print_stats) { // one line, so that the reactors' lines do not interleave
        const conet::reactor_stats s = conet::reactor::current()->stats();
        std::cout << ("stats: reactor " + std::to_string(index) + " completed_at_once " +
                      std::to_string(s.completed_at_once) + " completed_after_wait " +
                      std::to_string(s.completed_after_wait) + " epoll_waits " +
                      std::to_string(s.epoll_waits) + " syscalls " + std::to_string(s.syscalls) +
                      "\n")
                  << std::flush;
    }
}

// True if `flag` is among the arguments, which it is then taken out of.
bool take_flag(int& argc, char** argv, std::string_view flag) {
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) != flag) continue;
        for (int j = i; j + 1 <= argc; ++j)
            argv[j] = argv[j + 1];
        --argc;
        return true;
    }
    return false;
}

constexpr std::string_view usage =
    "[PORT] [--host HOST] [--threads N] [--stats]   (defaults: 8888, 0.0.0.0, 1)";

// --threads N, taken out of the arguments; the rest is the usual [PORT] [--host HOST].
std::size_t take_threads(int& argc, char** argv) {
    std::size_t threads = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) != "--threads") continue;
        const char* text = i + 1 < argc ? argv[i + 1] : "";
        char* end = nullptr;
        const long n = std::strtol(text, &end, 10);
        if (*text == '\0' || *end != '\0' || n < 1 || n > 1024)
            example::usage_error(argv[0], usage, "--threads needs a number from 1 to 1024");
        threads = static_cast<std::size_t>(n);
        for (int j = i; j + 2 <= argc; ++j) // remove the two arguments
            argv[j] = argv[j + 2];
        argc -= 2;
        break;
    }
    return threads;
}

int main(int argc, char** argv) {
    const bool print_stats = take_flag(argc, argv, "--stats");
    const std::size_t threads = take_threads(argc, argv);
    conet::endpoint where = example::server_endpoint(argc, argv, "tcp", usage);
    try {
        // One listener per reactor, all on one port. The first one picks the port (when 0
        // was asked for); the others bind the port it got.
        std::vector<conet::tcp_listener> listeners;
        for (std::size_t i = 0; i < threads; ++i) {
            listeners.push_back(conet::tcp_listener::bind(where, {.reuse_port = threads > 1}));
            where = listeners.front().local_endpoint();
        }
        std::cout << "Listening on " << where << std::endl;

        conet::reactor_pool reactors(threads); // reactor 0 runs on this thread
        reactors.stop_on({SIGINT, SIGTERM});   // a signal stops them all
        reactors.run([&](std::size_t i) { return serve(listeners[i], i, print_stats); });
    } catch (const std::system_error& e) {
        std::cerr << "echo_server: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

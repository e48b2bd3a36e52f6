// 06_every_core - one reactor per core, each accepting on its own SO_REUSEPORT listener: the
// README's "Using every core" program.
#include <conet/conet.hpp>
#include <conet/reactor_pool.hpp> // reactor_pool: one reactor per core
#include <csignal>
#include <iostream>
#include <vector>

// Echoes one client; runs on the reactor that accepted it.
conet::task<> echo(conet::tcp_stream conn) {
    char buf[4096];
    std::error_code ec;
    while (const std::size_t n = co_await conn.recv(buf, ec)) { // 0: it left (or an error)
        co_await conn.send_all({buf, n}, ec);
        if (ec) break;
    }
}

// Each reactor's task: accept on its own listener until the pool stops.
conet::task<> serve(conet::tcp_listener& listener) {
    conet::task_group clients;
    for (;;) {
        std::error_code ec;
        auto [conn, peer] = co_await listener.accept(ec);
        if (ec) break; // operation_canceled: the pool is stopping
        clients.spawn(echo(std::move(conn)));
    }
    clients.cancel();
    co_await conet::shield(conet::with_timeout(clients.join(), std::chrono::seconds(5)));
}

int main() {
    conet::reactor_pool pool; // one reactor per hardware thread
    std::vector<conet::tcp_listener> listeners;
    for (std::size_t i = 0; i < pool.size(); ++i) // all on port 8888
        listeners.push_back(conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:8888"),
                                                      {.reuse_port = true}));
    std::cout << "Listening on " << listeners.front().local_endpoint() << " with " << pool.size()
              << " reactors" << std::endl;
    pool.stop_on({SIGINT, SIGTERM});
    pool.run([&](std::size_t i) { return serve(listeners[i]); });
}

// line_echo: the smallest conet server. It accepts one client at a time and sends back every
// line the client types, until the client sends "##" or disconnects; Ctrl-C or SIGTERM stops
// it (exit status 0). This is the program shown at the top of the README.
//
//   ./line_echo [HOST:PORT]   (default 127.0.0.1:8888)   then, in another terminal:
//   nc 127.0.0.1 8888
#include <conet/conet.hpp>
#include <csignal>
#include <iostream>

conet::task<> serve(conet::endpoint where) {
    auto listener = conet::tcp_listener::bind(where); // socket + bind + listen
    std::cout << "Listening on " << listener.local_endpoint() << std::endl;
    for (;;) {
        auto [conn, peer] = co_await listener.accept(); // waits without blocking the thread
        std::cout << "Connect from " << peer << std::endl;
        conet::line_reader lines{conn};
        while (auto line = co_await lines.read_line()) { // std::nullopt at end of stream
            if (*line == "##") break;
            co_await conn.send_all(*line + '\n');
        }
    } // conn closes here (RAII), and the loop goes back to accept the next client
}

conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

int main(int argc, char** argv) {
    conet::signal_set signals{SIGINT, SIGTERM}; // Ctrl-C becomes an event: a clean exit, status 0
    conet::reactor reactor;
    const auto where = conet::resolve(argc > 1 ? argv[1] : "127.0.0.1:8888").front(); // or a name
    // Serves until a signal: the first task to finish cancels the other.
    reactor.run(conet::when_any(serve(where), next_signal(signals)));
}

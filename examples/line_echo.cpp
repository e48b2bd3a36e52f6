// line_echo: the smallest conet server. It accepts one client at a time and sends back every
// line the client types, until the client sends "##" or disconnects. This is the program
// shown at the top of the README.
//
//   ./line_echo            then, in another terminal:   nc 127.0.0.1 8888
#include <conet/conet.hpp>
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

int main() {
    conet::reactor reactor;
    reactor.run(serve(conet::endpoint::parse("127.0.0.1:8888")));
}

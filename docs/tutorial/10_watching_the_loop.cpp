// docs/tutorial/10_watching_the_loop.cpp - the chat server's first client, reduced to its
// calls, to run with CONET_TRACE=1 and watch the loop at work.
#include <conet/conet.hpp>
#include <iostream>
#include <string_view>

conet::task<> serve_one(conet::tcp_listener& listener) {
    // conn, addr = s.accept()
    auto [conn, addr] = co_await listener.accept();
    std::cout << "Connect from " << addr.unmapped() << std::endl;
    char data[1024];
    // data = conn.recv(1024)
    const std::size_t size = co_await conn.recv(data);
    std::cout << "client: " << std::string_view(data, size) << std::endl;
    // conn.send(b'hi there')
    co_await conn.send_all("hi there");
}

int main() {
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:8888"));
    conet::reactor reactor; // reads CONET_TRACE once, here
    reactor.run(serve_one(listener));
}

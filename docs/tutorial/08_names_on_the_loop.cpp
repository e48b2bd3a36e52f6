// docs/tutorial/08_names_on_the_loop.cpp - looking names up while the reactor goes on, and
// connecting by name.
#include <chrono>
#include <conet/conet.hpp>
#include <iostream>
#include <string>

using namespace std::chrono_literals;

conet::task<> demo() {
    // socket.getaddrinfo('localhost', 'http')   -- on a helper thread: the reactor goes on
    for (const auto& e : co_await conet::async_resolve("localhost", "http"))
        std::cout << "localhost http: " << e << '\n';

    // Only IPv4, and at most one second for the answer.
    auto v4 = co_await conet::with_timeout(
        conet::async_resolve("localhost", "8888", conet::resolve_family::v4), 1s);
    std::cout << "IPv4 only: " << v4.front() << '\n';

    // socket.create_connection(('localhost', port))   -- each address in turn until one accepts
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"));
    const std::string port = std::to_string(listener.local_endpoint().port());
    auto conn = co_await conet::connect("localhost", port);
    std::cout << "connected to " << conn.peer_endpoint() << '\n';

    // A name that does not exist is an error naming it.
    try {
        co_await conet::connect("no-such-host.invalid", port);
    } catch (const std::system_error& e) {
        std::cout << e.what() << '\n';
    }
}

int main() {
    conet::reactor reactor;
    reactor.run(demo());
}

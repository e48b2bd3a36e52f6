// docs/tutorial/05_message_boundaries.cpp - TCP is a byte stream: one send is not one recv.
// Both ends of one loopback connection, in one program.
#include <chrono>
#include <conet/conet.hpp>
#include <iostream>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

conet::task<> demo() {
    // One connection, both of its ends here: sender -> receiver
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"));
    auto sender = co_await conet::tcp_stream::connect(listener.local_endpoint());
    auto [receiver, addr] = co_await listener.accept();
    char data[1024];

    // Two messages, two sends; the receiver is busy for a moment, as under load.
    co_await sender.send_all("hello");
    co_await sender.send_all("world");
    co_await conet::sleep_for(100ms);
    std::size_t size = co_await receiver.recv(data); // data = connfd.recv(1024)
    std::cout << "1 recv: " << std::string_view(data, size) << '\n';

    // One message, one send, longer than the receiver's buffer.
    co_await sender.send_all(std::string(1500, 'x'));
    co_await conet::sleep_for(100ms);
    size = co_await receiver.recv(data);
    std::cout << "1 send of 1500 bytes, 1st recv: " << size << " bytes\n";
    size = co_await receiver.recv(data);
    std::cout << "                      2nd recv: " << size << " bytes\n";

    // Framed: each message ends with '\n', and the receiver reads up to it.
    co_await sender.send_all("hello\nwor");
    co_await sender.send_all("ld\n");
    conet::line_reader lines{receiver};
    auto first = co_await lines.read_line();
    auto second = co_await lines.read_line();
    std::cout << "line: " << *first << "\nline: " << *second << '\n';
}

int main() {
    conet::reactor reactor;
    reactor.run(demo());
}

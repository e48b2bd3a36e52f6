// docs/tutorial/03_udp.cpp - UDP's sendto/recvfrom: a receiver and a sender in one program.
#include <conet/conet.hpp>
#include <iostream>
#include <string_view>

conet::task<> receiver(conet::udp_socket& sock) {
    char data[1024];
    // data, addr = sockfd.recvfrom(1024)
    auto [size, addr] = co_await sock.recv_from(data);
    std::cout << addr << " sent: " << std::string_view(data, size) << std::endl;
    // sockfd.sendto(b'Thanks', addr)
    co_await sock.send_to("Thanks", addr);
}

conet::task<> sender(conet::endpoint to) {
    // sockfd = socket(AF_INET, SOCK_DGRAM)   -- no bind, no connect
    auto sock = conet::udp_socket::open();
    co_await sock.send_to("Hello, UDP", to);
    char reply[1024];
    auto [size, addr] = co_await sock.recv_from(reply);
    std::cout << addr << " replied: " << std::string_view(reply, size) << std::endl;
}

int main() {
    // sockfd = socket(AF_INET, SOCK_DGRAM); sockfd.bind(('127.0.0.1', 0))
    auto sock = conet::udp_socket::bind(conet::endpoint::parse("127.0.0.1:0"));
    conet::reactor reactor;
    reactor.spawn(receiver(sock)); // both run at once, on one thread
    reactor.run(sender(sock.local_endpoint()));
}

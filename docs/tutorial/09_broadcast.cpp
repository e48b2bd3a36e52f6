// docs/tutorial/09_broadcast.cpp - a UDP broadcast, sent and received in one program on
// loopback's broadcast address (nothing leaves the machine).
#include <conet/conet.hpp>
#include <iostream>
#include <string_view>

conet::task<> receiver(conet::udp_socket& sock) {
    char data[1024];
    // data, addr = s.recvfrom(1024)
    auto [size, addr] = co_await sock.recv_from(data);
    std::cout << addr << " broadcast: " << std::string_view(data, size) << std::endl;
}

conet::task<> sender(conet::endpoint everyone) {
    // s = socket(AF_INET, SOCK_DGRAM); s.setsockopt(SOL_SOCKET, SO_BROADCAST, 1)
    auto sock = conet::udp_socket::open();
    sock.set_broadcast(true);
    // s.sendto(b'Hello, everyone', ('127.255.255.255', port))
    co_await sock.send_to("Hello, everyone", everyone);
}

int main() {
    // s = socket(AF_INET, SOCK_DGRAM); s.bind(('0.0.0.0', 0))   -- every interface: a socket
    // bound to one unicast address is not given broadcasts
    auto sock = conet::udp_socket::bind(conet::endpoint::parse("0.0.0.0:0"));
    const conet::endpoint everyone{conet::ip_address::parse("127.255.255.255"),
                                   sock.local_endpoint().port()};
    conet::reactor reactor;
    reactor.spawn(receiver(sock));
    reactor.run(sender(everyone));
    reactor.run(); // until the receiver has its datagram
}

// docs/tutorial/07_byte_order.cpp - network byte order: how numbers travel, and a message
// framed by its length sent first.
#include <conet/conet.hpp>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>

conet::task<> demo() {
    // socket.htons(8888), socket.htonl(1)   -- host order to network order (big-endian)
    std::cout << std::hex << "htons(0x22b8) = 0x" << conet::host_to_network(std::uint16_t{8888})
              << ", htonl(1) = 0x" << conet::host_to_network(std::uint32_t{1}) << std::dec << '\n';

    // One connection, both of its ends here.
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"));
    auto sender = co_await conet::tcp_stream::connect(listener.local_endpoint());
    auto [receiver, addr] = co_await listener.accept();

    // sock.send(struct.pack('!I', len(data)) + data)   -- '!' is network order
    const std::string data = "hello, network order";
    const std::uint32_t length = conet::host_to_network(std::uint32_t(data.size()));
    char header[4];
    std::memcpy(header, &length, 4);
    co_await sender.send_all(header);
    co_await sender.send_all(data);

    // n, = struct.unpack('!I', sock.recv(4)); data = sock.recv(n)
    char got[4];
    co_await receiver.recv_exact(got);
    std::uint32_t n;
    std::memcpy(&n, got, 4);
    std::string message(conet::network_to_host(n), '\0');
    co_await receiver.recv_exact(message);
    std::cout << "bytes on the wire: " << int(got[0]) << ' ' << int(got[1]) << ' ' << int(got[2])
              << ' ' << int(got[3]) << "; message: " << message << '\n';
}

int main() {
    conet::reactor reactor;
    reactor.run(demo());
}

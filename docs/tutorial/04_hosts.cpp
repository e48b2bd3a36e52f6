// docs/tutorial/04_hosts.cpp - the course's host and address helpers (section 4), in conet.
#include <conet/conet.hpp>
#include <iostream>

int main() {
    // socket.gethostname()
    std::cout << "host name: " << conet::host_name() << '\n';

    // socket.gethostbyname('localhost')   -- every address the name has, with a port
    for (const auto& e : conet::resolve("localhost", 8888))
        std::cout << "localhost: " << e << '\n';

    // socket.gethostbyaddr('127.0.0.1')   -- and back, from an address to its name
    std::cout << "127.0.0.1 is " << conet::host_name(conet::ip_address::parse("127.0.0.1")) << '\n';

    // socket.inet_aton('192.168.1.2')   -- text to bytes in network order
    const auto a = conet::ip_address::parse("192.168.1.2");
    for (auto byte : a.bytes())
        std::cout << int(byte) << ' ';
    std::cout << "= 0x" << std::hex << a.to_host_order() << std::dec << '\n';

    // socket.inet_ntoa(b'\xc0\xa8\x01\x02')   -- bytes back to text
    std::cout << conet::ip_address::v4({0xc0, 0xa8, 0x01, 0x02}) << '\n';
    std::cout << conet::ip_address::from_host_order(0xc0a80102) << '\n';

    // socket.getservbyname('mysql')   -- a service's port, from /etc/services
    std::cout << "mysql: " << conet::service_port("mysql") << '\n';

    // An address and a port together: what bind, connect and sendto take. A port may be
    // given by its service's name.
    const auto where = conet::endpoint::parse("[::1]:http");
    std::cout << where.address() << " port " << where.port() << '\n';
}

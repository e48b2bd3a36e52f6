// docs/tutorial/02_tcp_client.cpp - the course's TCP client (section 8), in conet.
#include <conet/conet.hpp>
#include <iostream>
#include <string>
#include <string_view>

conet::task<> client() {
    // sockfd = socket(); sockfd.connect(('127.0.0.1', 8888))
    auto server_addr = conet::endpoint::parse("127.0.0.1:8888");
    auto sockfd = co_await conet::tcp_stream::connect(server_addr);

    // data = input('>>你好'); sockfd.send(data.encode())
    std::string data;
    std::cout << ">>你好" << std::flush;
    std::getline(std::cin, data); // a plain blocking read: fine in a one-connection client
    co_await sockfd.send_all(data);

    // data = sockfd.recv(1024); print('From server:', data.decode())
    char reply[1024];
    const std::size_t size = co_await sockfd.recv(reply);
    std::cout << "From server: " << std::string_view(reply, size) << std::endl;
} // sockfd.close(): the destructor closes the socket

int main() {
    conet::reactor reactor;
    reactor.run(client());
}

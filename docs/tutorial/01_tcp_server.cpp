// docs/tutorial/01_tcp_server.cpp - the course's first TCP server (section 7), in conet.
#include <conet/conet.hpp>
#include <iostream>
#include <string_view>

conet::task<> server() {
    // sockfd = socket(AF_INET, SOCK_STREAM); sockfd.bind(('0.0.0.0', 8888)); sockfd.listen(5)
    auto sockfd = conet::tcp_listener::bind(conet::endpoint::parse("0.0.0.0:8888"), 5);

    std::cout << "Waiting for connect..." << std::endl;
    // connfd, addr = sockfd.accept()   -- the coroutine waits here, the thread does not
    auto [connfd, addr] = co_await sockfd.accept();
    std::cout << "Connect from " << addr << std::endl;

    // data = connfd.recv(1024)
    char data[1024];
    const std::size_t size = co_await connfd.recv(data);
    std::cout << "Receive message: " << std::string_view(data, size) << std::endl;

    // n = connfd.send('Receive your message'.encode())
    const std::size_t n = co_await connfd.send("Receive your message");
    std::cout << "Send " << n << " bytes" << std::endl;

    // connfd.close(); sockfd.close()   -- also done by their destructors
    connfd.close();
    sockfd.close();
}

int main() {
    conet::reactor reactor; // the event loop that runs coroutines
    reactor.run(server());  // runs server() until it returns
}

// udp_receiver - the course's UDP server: no connection, no accept; datagrams simply arrive,
// each with its sender's address, and the answer goes back to that address.
//
//   ./udp_receiver [PORT] [--host HOST]           (defaults: 8888, 0.0.0.0)
//   then:   ./udp_sender 127.0.0.1 8888
#include <conet/conet.hpp>

#include <array>
#include <csignal>
#include <iostream>
#include <string_view>

#include "command_line.hpp"

conet::task<> receive(conet::udp_socket& sock) {
    std::array<char, 65536> buffer; // the largest datagram UDP can carry fits
    for (;;) {
        // recvfrom(): one whole datagram, and who sent it.
        auto [size, sender] = co_await sock.recv_from(buffer);
        std::cout << sender.unmapped() << ": " << std::string_view(buffer.data(), size)
                  << std::endl;
        // sendto(): the acknowledgement goes back to that sender. It may be lost: UDP does
        // not promise delivery, and the sender must cope.
        co_await sock.send_to("ack: received " + std::to_string(size) + " bytes", sender);
    }
}

conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

// Receives until SIGINT or SIGTERM: the first to finish cancels the other.
conet::task<> run_until_signal(conet::udp_socket& sock, conet::signal_set& signals) {
    co_await conet::when_any(receive(sock), next_signal(signals));
}

int main(int argc, char** argv) {
    const conet::endpoint where = example::server_endpoint(argc, argv, "udp");
    conet::signal_set signals{SIGINT, SIGTERM};
    try {
        auto sock = conet::udp_socket::bind(where); // socket(AF_INET, SOCK_DGRAM) + bind()
        std::cout << "Listening on " << sock.local_endpoint() << std::endl;
        conet::reactor reactor;
        reactor.run(run_until_signal(sock, signals));
    } catch (const std::system_error& e) {
        std::cerr << "udp_receiver: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

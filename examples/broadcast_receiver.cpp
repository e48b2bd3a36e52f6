// broadcast_receiver - hears UDP broadcasts: every datagram sent to the broadcast address of
// a network, on this port, reaches every receiver listening on it. The course names broadcast
// among UDP's uses; this is its receiving side.
//
//   ./broadcast_receiver [PORT]                  (default: 9999)
//   then:   ./broadcast_sender 255.255.255.255 9999      (or your network's x.y.z.255)
//
// It binds 0.0.0.0, every interface: a socket bound to one unicast address (127.0.0.1, say)
// does not receive broadcasts. With SO_REUSEADDR, several receivers on one machine share the
// port, and each of them gets every broadcast.
#include <conet/conet.hpp>

#include <array>
#include <csignal>
#include <iostream>
#include <string_view>

#include "command_line.hpp"

conet::task<> receive(conet::udp_socket& sock) {
    std::array<char, 65536> buffer;
    for (;;) {
        // data, addr = sockfd.recvfrom(1024): broadcast or not, a datagram is a datagram
        auto [size, sender] = co_await sock.recv_from(buffer);
        std::cout << sender.unmapped() << ": " << std::string_view(buffer.data(), size)
                  << std::endl;
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
    const std::string_view program = argv[0];
    const std::string_view usage = "[PORT]   (default: 9999)";
    if (argc > 2) example::usage_error(program, usage, "too many arguments");
    const std::uint16_t port =
        argc > 1 ? example::port_or_exit(argv[1], program, usage, "udp") : 9999;
    conet::signal_set signals{SIGINT, SIGTERM};
    try {
        // sockfd = socket(AF_INET, SOCK_DGRAM)
        // sockfd.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1); sockfd.bind(('0.0.0.0', 9999))
        auto sock = conet::udp_socket::bind({conet::ip_address::any(), port},
                                            {.reuse_address = true, .broadcast = true});
        std::cout << "Listening on " << sock.local_endpoint() << std::endl;
        conet::reactor reactor;
        reactor.run(run_until_signal(sock, signals));
    } catch (const std::system_error& e) {
        std::cerr << "broadcast_receiver: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

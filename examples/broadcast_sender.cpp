// broadcast_sender - sends each line of standard input as one UDP broadcast: one datagram,
// addressed to a network's broadcast address, which every host on that network receives
// (every broadcast_receiver on the port hears it). No answer is waited for: a broadcast has
// many receivers, or none.
//
//   ./broadcast_sender [ADDRESS] [PORT]          (defaults: 255.255.255.255 9999)
//
// It sends until its standard input ends; Ctrl-C or SIGTERM stops it too (exit status 0).
// ADDRESS is a broadcast address: 255.255.255.255 for the local network, 192.168.1.255 for
// the network 192.168.1.0/24 of the course's notes, 127.255.255.255 for loopback only (or a
// name, for its IPv4 address). A socket may send to one only once SO_BROADCAST is set;
// without it, sendto fails with "Permission denied" (EACCES), so that no program broadcasts
// by mistake.
#include <conet/conet.hpp>

#include <csignal>
#include <iostream>
#include <string>
#include <string_view>

#include "command_line.hpp"

conet::task<> broadcast_lines(conet::endpoint destination) {
    // sockfd = socket(AF_INET, SOCK_DGRAM); sockfd.setsockopt(SOL_SOCKET, SO_BROADCAST, 1)
    auto sock = conet::udp_socket::open(destination.family());
    sock.set_broadcast(true);
    conet::standard_input input;
    conet::line_reader lines{input};
    while (auto line = co_await lines.read_line()) {
        co_await sock.send_to(*line, destination); // sockfd.sendto(data, ('<broadcast>', 9999))
        std::cout << "sent " << line->size() << " bytes to " << destination << std::endl;
    }
}

conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

int main(int argc, char** argv) {
    const std::string_view program = argv[0];
    const std::string_view usage = "[ADDRESS] [PORT]   (defaults: 255.255.255.255 9999)";
    if (argc > 3) example::usage_error(program, usage, "too many arguments");
    const std::string_view text = argc > 1 ? argv[1] : "255.255.255.255";
    const auto address = example::host_or_exit(text, program, usage, conet::resolve_family::v4);
    if (!address.is_v4()) // IPv6 has no broadcast: it has multicast instead
        example::usage_error(program, usage,
                             "not an IPv4 broadcast address: \"" + std::string(text) + '"');
    const std::uint16_t port =
        argc > 2 ? example::port_or_exit(argv[2], program, usage, "udp") : 9999;
    conet::signal_set signals{SIGINT, SIGTERM}; // Ctrl-C: a clean exit, status 0
    try {
        conet::reactor reactor;
        // Sends until the input ends or a signal comes: the first to finish cancels the other.
        reactor.run(conet::when_any(broadcast_lines({address, port}), next_signal(signals)));
    } catch (const std::system_error& e) {
        std::cerr << "broadcast_sender: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

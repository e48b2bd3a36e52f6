// udp_sender - the course's UDP client: each line of standard input goes out as one datagram,
// then the sender waits a little for the receiver's acknowledgement. UDP promises nothing: the
// datagram or the answer may be lost, or nobody may be listening at all, so the wait has a
// time limit and the program says when nothing came back. It sends until its standard input
// ends; Ctrl-C or SIGTERM stops it too (exit status 0). HOST may be a name ("localhost").
//
//   ./udp_sender [HOST] [PORT] [--timeout SECONDS]   (defaults: 127.0.0.1 8888, 1 s)
#include <conet/conet.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "command_line.hpp"

conet::task<> send_lines(conet::endpoint receiver, std::chrono::milliseconds timeout) {
    auto sock = conet::udp_socket::open(receiver.family()); // socket(AF_INET, SOCK_DGRAM)
    conet::standard_input input;
    conet::line_reader lines{input};
    std::array<char, 65536> buffer;
    while (auto line = co_await lines.read_line()) {
        co_await sock.send_to(*line, receiver); // sendto(): one line, one datagram

        // Wait for the answer, but not for ever. Datagrams from anyone else are ignored.
        for (;;) {
            std::error_code ec;
            auto [size, from] = co_await conet::with_timeout(sock.recv_from(buffer, ec), timeout);
            if (ec == std::errc::timed_out) {
                std::cout << "no reply within " << timeout.count() << " ms" << std::endl;
                break;
            }
            if (ec) throw std::system_error(ec, "recv_from");
            if (from != receiver) continue;
            std::cout << "reply from " << from << ": " << std::string_view(buffer.data(), size)
                      << std::endl;
            break;
        }
    }
}

conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

// A decimal number of seconds ("2", "0.5", ".25", "1e-3"), or std::nullopt for anything else
// (a sign, spaces, hexadecimal, "inf", a number out of double's range). Not std::from_chars:
// libc++ 16 has no floating-point one. The text is checked here, then std::strtod reads it,
// in the "C" locale (this program never sets another), so the point is always '.'.
std::optional<double> parse_seconds(const char* text) {
    const char* p = text;
    const auto digits = [&p] {
        const char* first = p;
        while (*p >= '0' && *p <= '9')
            ++p;
        return p != first;
    };
    const bool whole = digits();
    bool fraction = false;
    if (*p == '.') {
        ++p;
        fraction = digits();
    }
    if (!whole && !fraction) return std::nullopt;
    if (*p == 'e' || *p == 'E') {
        ++p;
        if (*p == '+' || *p == '-') ++p;
        if (!digits()) return std::nullopt;
    }
    if (*p != '\0') return std::nullopt;
    errno = 0;
    char* end = nullptr;
    const double value = std::strtod(text, &end);
    if (end != p || errno == ERANGE) return std::nullopt; // 1e999, or 1e-999 read as 0
    return value;
}

int main(int argc, char** argv) {
    const std::string_view program = argv[0];
    const std::string_view usage =
        "[HOST] [PORT] [--timeout SECONDS]   (defaults: 127.0.0.1 8888, 1)";
    std::vector<std::string_view> positional;
    double timeout_seconds = 1.0;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--timeout") {
            if (i + 1 == argc) example::usage_error(program, usage, "--timeout needs a value");
            const auto seconds = parse_seconds(argv[++i]);
            if (!seconds || !(*seconds > 0) || *seconds > 3600)
                example::usage_error(program, usage,
                                     "--timeout wants seconds, more than 0 and at most 3600");
            timeout_seconds = *seconds;
        } else {
            positional.push_back(arg);
        }
    }
    if (positional.size() > 2) example::usage_error(program, usage, "too many arguments");
    const std::string host(positional.size() > 0 ? positional[0] : "127.0.0.1");
    const std::uint16_t port =
        positional.size() > 1 ? example::port_or_exit(positional[1], program, usage, "udp") : 8888;
    const auto timeout = std::chrono::milliseconds(static_cast<long>(timeout_seconds * 1000));

    conet::signal_set signals{SIGINT, SIGTERM}; // Ctrl-C: a clean exit, status 0
    try {
        const auto receiver = conet::resolve(host, port).front();
        conet::reactor reactor;
        // Sends until the input ends or a signal comes: the first to finish cancels the other.
        reactor.run(conet::when_any(send_lines(receiver, timeout), next_signal(signals)));
    } catch (const std::system_error& e) {
        std::cerr << "udp_sender: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

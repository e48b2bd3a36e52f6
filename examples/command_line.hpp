// command_line.hpp - the argument handling the example servers share, kept out of their way:
//
//     PROGRAM [PORT] [--host HOST]
//
// PORT (a number or a service name) defaults to 8888, HOST (an address, or a name such as
// "localhost") to 0.0.0.0 (every interface). A bad argument prints the usage on stderr and exits
// with status 2.
#pragma once

#include <conet/address.hpp>

#include <cstdlib>
#include <iostream>
#include <string_view>
#include <system_error>

namespace example {

/// Prints `problem` and the usage line on stderr, then exits with status 2.
[[noreturn]] inline void usage_error(std::string_view program, std::string_view usage,
                                     std::string_view problem) {
    std::cerr << program << ": " << problem << "\nusage: " << program << ' ' << usage << '\n';
    std::exit(2);
}

/// Parses a port number (0 to 65535) or a service name ("http", from /etc/services, for
/// `protocol`), or exits with the usage.
inline std::uint16_t port_or_exit(std::string_view text, std::string_view program,
                                  std::string_view usage, std::string_view protocol = "tcp") {
    std::error_code ec;
    const std::uint16_t port = conet::service_port(text, protocol, ec);
    if (!ec) return port;
    usage_error(program, usage,
                "not a port number (0 to 65535) or a service name: \"" + std::string(text) + '"');
}

/// The usage line of a server that takes only server_endpoint's arguments.
inline constexpr std::string_view server_usage = "[PORT] [--host HOST]   (defaults: 8888, 0.0.0.0)";

/// The address of `text`, an IP address or a host name (looked up: the first address of
/// `family` the system prefers, so "localhost" may be ::1), or exits with the usage.
inline conet::ip_address host_or_exit(std::string_view text, std::string_view program,
                                      std::string_view usage,
                                      conet::resolve_family family = conet::resolve_family::any) {
    if (auto address = conet::ip_address::try_parse(text)) return *address;
    std::error_code ec;
    const auto found = conet::resolve(text, 0, family, ec);
    if (ec || found.empty())
        usage_error(program, usage,
                    "cannot resolve host \"" + std::string(text) + "\": " + ec.message());
    return found.front().address();
}

/// The endpoint a server listens on, from `[PORT] [--host HOST]`; PORT may be a service
/// name of `protocol`. `usage` is what a bad argument prints.
inline conet::endpoint server_endpoint(int argc, char** argv, std::string_view protocol = "tcp",
                                       std::string_view usage = server_usage) {
    const std::string_view program = argc > 0 ? argv[0] : "server";
    conet::ip_address host = conet::ip_address::any();
    std::uint16_t port = 8888;
    bool have_port = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--host") {
            if (i + 1 == argc) usage_error(program, usage, "--host needs a name or an address");
            host = host_or_exit(argv[++i], program, usage);
        } else if (arg == "-h" || arg == "--help") {
            std::cout << "usage: " << program << ' ' << usage << '\n';
            std::exit(0);
        } else if (!have_port) {
            port = port_or_exit(arg, program, usage, protocol);
            have_port = true;
        } else {
            usage_error(program, usage, "unexpected argument \"" + std::string(arg) + '"');
        }
    }
    return {host, port};
}

} // namespace example

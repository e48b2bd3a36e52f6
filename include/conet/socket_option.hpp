// conet/socket_option.hpp - socket options, typed: the course's setsockopt/getsockopt.
//
//     conn.set_option(conet::option::keep_alive{true});
//     int size = conn.get_option<conet::option::receive_buffer_size>().value;
//
// Every conet socket has set_option and get_option (throwing, or with a trailing
// std::error_code&). Each option below is a small struct naming its level and number, so a
// wrong pairing of option and value does not compile. The options a socket needs before it
// is bound (SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY) are also fields of listen_options and
// udp_options, which tcp_listener::bind and udp_socket::bind apply in the right order.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <concepts>

namespace conet {

/// What set_option/get_option accept: a struct with a `value` (bool or int) and the
/// option's `level`, `name` and `text` (for error messages), as below.
template <class Option>
concept socket_option = requires(Option o) {
    { Option::level } -> std::convertible_to<int>;
    { Option::name } -> std::convertible_to<int>;
    { Option::text } -> std::convertible_to<const char*>;
    requires std::same_as<decltype(o.value), bool> || std::same_as<decltype(o.value), int>;
};

namespace option {

/// SO_REUSEADDR: bind a port whose old connections are still in TIME_WAIT.
struct reuse_address {
    bool value = false;
    static constexpr int level = SOL_SOCKET, name = SO_REUSEADDR;
    static constexpr const char* text = "SO_REUSEADDR";
};
/// SO_REUSEPORT: several sockets (one per reactor, say) bind the same port; the kernel
/// spreads incoming connections or datagrams among them.
struct reuse_port {
    bool value = false;
    static constexpr int level = SOL_SOCKET, name = SO_REUSEPORT;
    static constexpr const char* text = "SO_REUSEPORT";
};
/// SO_BROADCAST: allow sending datagrams to a broadcast address.
struct broadcast {
    bool value = false;
    static constexpr int level = SOL_SOCKET, name = SO_BROADCAST;
    static constexpr const char* text = "SO_BROADCAST";
};
/// SO_KEEPALIVE: probe an idle TCP connection, so that a vanished peer is noticed.
struct keep_alive {
    bool value = false;
    static constexpr int level = SOL_SOCKET, name = SO_KEEPALIVE;
    static constexpr const char* text = "SO_KEEPALIVE";
};
/// SO_RCVBUF: the kernel's receive buffer, in bytes (Linux reports twice what was asked).
struct receive_buffer_size {
    int value = 0;
    static constexpr int level = SOL_SOCKET, name = SO_RCVBUF;
    static constexpr const char* text = "SO_RCVBUF";
};
/// SO_SNDBUF: the kernel's send buffer, in bytes (Linux reports twice what was asked).
struct send_buffer_size {
    int value = 0;
    static constexpr int level = SOL_SOCKET, name = SO_SNDBUF;
    static constexpr const char* text = "SO_SNDBUF";
};
/// IPV6_V6ONLY: an IPv6 socket bound to "::" takes IPv6 only (true), or IPv4 too (false).
struct v6_only {
    bool value = false;
    static constexpr int level = IPPROTO_IPV6, name = IPV6_V6ONLY;
    static constexpr const char* text = "IPV6_V6ONLY";
};
/// TCP_NODELAY: turn Nagle's algorithm off, so that small writes go out at once.
struct no_delay {
    bool value = false;
    static constexpr int level = IPPROTO_TCP, name = TCP_NODELAY;
    static constexpr const char* text = "TCP_NODELAY";
};

} // namespace option
} // namespace conet

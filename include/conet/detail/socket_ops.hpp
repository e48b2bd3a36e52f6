// conet/detail/socket_ops.hpp - syscall helpers and operations shared by TCP, UDP and UNIX
// sockets.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>

#include "../address.hpp"
#include "../buffer.hpp"
#include "../error.hpp"
#include "../socket_option.hpp"
#include "descriptor.hpp"
#include "stream_ops.hpp"

namespace conet::detail {

/// A new non-blocking, close-on-exec socket, or -1 with `ec` set.
inline int open_socket(ip_family family, int type, std::error_code& ec) noexcept {
    const int fd = counted(::socket(to_af(family), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd < 0) ec = errno_code(errno);
    return fd;
}

/// getsockname/getpeername as an endpoint.
template <auto Query>
endpoint query_endpoint(int fd, std::error_code& ec) noexcept {
    sockaddr_any sa;
    sa.length = sizeof sa.storage;
    if (Query(fd, sa.get(), &sa.length) < 0) {
        ec = errno_code(errno);
        return {};
    }
    ec.clear();
    return sa.to_endpoint();
}

inline endpoint local_endpoint(int fd, std::error_code& ec) noexcept {
    return query_endpoint<::getsockname>(fd, ec);
}
inline endpoint peer_endpoint(int fd, std::error_code& ec) noexcept {
    return query_endpoint<::getpeername>(fd, ec);
}

/// setsockopt for an int-valued option.
inline std::error_code set_int_option(int fd, int level, int name, int value) noexcept {
    if (::setsockopt(fd, level, name, &value, sizeof value) < 0) return errno_code(errno);
    return {};
}

/// Throws for `ec` (when set) with `what` as the message prefix.
inline void throw_if(const std::error_code& ec, const char* what) {
    if (ec) throw_error(ec, what);
}

/// setsockopt for a typed option.
template <socket_option Option>
std::error_code set_option(int fd, const Option& o) noexcept {
    return set_int_option(fd, Option::level, Option::name, static_cast<int>(o.value));
}

/// Sets the options a socket needs before it is bound; an unset `v6_only` (or an IPv4
/// socket) keeps the system's default.
inline std::error_code set_bind_options(int fd, ip_family family, bool reuse_address,
                                        bool reuse_port, std::optional<bool> v6_only) noexcept {
    if (reuse_address)
        if (auto ec = set_option(fd, option::reuse_address{true})) return ec;
    if (reuse_port)
        if (auto ec = set_option(fd, option::reuse_port{true})) return ec;
    if (v6_only && family == ip_family::v6)
        if (auto ec = set_option(fd, option::v6_only{*v6_only})) return ec;
    return {};
}

/// A new socket of `type` with the bind options set, bound to `where`; -1 with `ec` set on
/// failure (nothing is left open).
inline int open_bound_socket(const endpoint& where, int type, bool reuse_address, bool reuse_port,
                             std::optional<bool> v6_only, std::error_code& ec) noexcept {
    const int fd = open_socket(where.family(), type, ec);
    if (fd < 0) return -1;
    const sockaddr_any sa(where);
    ec = set_bind_options(fd, where.family(), reuse_address, reuse_port, v6_only);
    if (!ec && ::bind(fd, sa.get(), sa.length) < 0) ec = errno_code(errno);
    if (ec) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Checks that `fd` is an open socket of `type` (SOCK_STREAM, SOCK_DGRAM), listening if
/// `listening`, and makes it non-blocking and close-on-exec, as conet's own sockets are.
inline std::error_code prepare_adopted(int fd, int type, bool listening) noexcept {
    int actual = 0;
    socklen_t length = sizeof actual;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &actual, &length) < 0) return errno_code(errno);
    if (actual != type) return std::make_error_code(std::errc::wrong_protocol_type);
    int domain = 0;
    length = sizeof domain;
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) < 0) return errno_code(errno);
    if (domain != AF_INET && domain != AF_INET6) // a Unix socket, say: not an IP socket
        return std::make_error_code(std::errc::address_family_not_supported);
    if (listening) {
        int accepting = 0;
        length = sizeof accepting;
        if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) < 0)
            return errno_code(errno);
        if (!accepting) return std::make_error_code(std::errc::invalid_argument);
    }
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        ::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return errno_code(errno);
    return {};
}

/// accept4() failed with `err` because the connection died before it was taken (or, per
/// accept(2), a network error was already pending on it): it is gone, so take the next one.
/// Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is reported instead: the
/// listener stays usable, and the connection waits in the backlog until some are freed.
inline bool accept_skips(int err) noexcept {
    return err == EINTR || err == ECONNABORTED || err == EPROTO || err == ENETDOWN ||
           err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH ||
           err == ENETUNREACH;
}

/// What every socket has, whatever its address family: a descriptor, waits for readiness
/// and socket options. (socket_base adds the IP addresses; unix.hpp's sockets, UNIX ones.)
class any_socket : public descriptor {
public:
    using descriptor::descriptor;

    /// Waits until the socket is readable, transferring nothing (Asio's async_wait): for a
    /// library that reads the socket itself, or to take a buffer only once data is there.
    /// Ends at once if it is readable now (the reactor saw it readable, and the kernel says
    /// it still is); after reading with your own calls until EAGAIN, wait again.
    readiness_op<direction::read> wait_readable() noexcept { return {*this, nullptr}; }
    readiness_op<direction::read> wait_readable(std::error_code& ec) noexcept {
        return {*this, &ec};
    }
    /// Waits until the socket is writable (room in its send queue), transferring nothing.
    readiness_op<direction::write> wait_writable() noexcept { return {*this, nullptr}; }
    readiness_op<direction::write> wait_writable(std::error_code& ec) noexcept {
        return {*this, &ec};
    }

    /// Sets a socket option: `s.set_option(conet::option::reuse_port{true})`. Throws
    /// std::system_error ("setsockopt(SO_REUSEPORT): ...").
    template <socket_option Option>
    void set_option(const Option& o) {
        std::error_code ec;
        set_option(o, ec);
        if (ec) throw_error(ec, std::string("setsockopt(") + Option::text + ")");
    }
    template <socket_option Option>
    void set_option(const Option& o, std::error_code& ec) noexcept {
        ec = detail::set_option(native_handle(), o);
    }

    /// Reads a socket option: `s.get_option<conet::option::receive_buffer_size>().value`.
    template <socket_option Option>
    Option get_option() const {
        std::error_code ec;
        Option o = get_option<Option>(ec);
        if (ec) throw_error(ec, std::string("getsockopt(") + Option::text + ")");
        return o;
    }
    template <socket_option Option>
    Option get_option(std::error_code& ec) const noexcept {
        int value = 0;
        socklen_t length = sizeof value;
        Option o{};
        if (::getsockopt(native_handle(), Option::level, Option::name, &value, &length) < 0) {
            ec = errno_code(errno);
            return o;
        }
        ec.clear();
        o.value = static_cast<decltype(o.value)>(value);
        return o;
    }
};

/// An IP socket: a descriptor, and the address it is bound to.
class socket_base : public any_socket {
public:
    using any_socket::any_socket;

    /// This side's address and port (for a listener, the port actually bound).
    endpoint local_endpoint() const {
        std::error_code ec;
        auto e = local_endpoint(ec);
        throw_if(ec, "getsockname");
        return e;
    }
    endpoint local_endpoint(std::error_code& ec) const noexcept {
        return detail::local_endpoint(native_handle(), ec);
    }

protected:
    // The peer's address and port: published by the sockets that have a peer (a TCP stream,
    // a connected UDP socket), not by a listener.
    endpoint peer_endpoint() const {
        std::error_code ec;
        auto e = peer_endpoint(ec);
        throw_if(ec, "getpeername");
        return e;
    }
    endpoint peer_endpoint(std::error_code& ec) const noexcept {
        return detail::peer_endpoint(native_handle(), ec);
    }
};

} // namespace conet::detail

// conet/detail/socket_ops.hpp - syscall helpers and operations shared by TCP and UDP sockets.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <system_error>

#include "../address.hpp"
#include "../buffer.hpp"
#include "../error.hpp"
#include "../reactor.hpp"
#include "io_awaiter.hpp"

namespace conet::detail {

/// A new non-blocking, close-on-exec socket, or -1 with `ec` set.
inline int open_socket(ip_family family, int type, std::error_code& ec) noexcept {
    const int fd = ::socket(to_af(family), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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

/// What every socket has: a descriptor, and the address it is bound to.
class socket_base : public descriptor {
public:
    using descriptor::descriptor;

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

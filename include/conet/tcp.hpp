// conet/tcp.hpp - TCP: tcp_listener (socket + bind + listen + accept) and tcp_stream
// (connect, recv, send, close).
//
// Every operation that can wait is awaited (`co_await`) and comes in two forms: without an
// error_code argument it throws std::system_error ("connect 127.0.0.1:9: Connection
// refused"); with a trailing `std::error_code&` it reports through it and does not throw.
// An operation tries its syscall at once and only waits on the reactor when the socket is not
// ready. One coroutine may wait to read while another waits to write on the same stream; a
// second concurrent reader (or writer) fails with conet::error::already_waiting.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "address.hpp"
#include "buffer.hpp"
#include "buffer_pool.hpp"
#include "detail/io_awaiter.hpp"
#include "detail/socket_ops.hpp"
#include "detail/stream_ops.hpp"
#include "detail/stream_socket.hpp"
#include "error.hpp"
#include "reactor.hpp"

namespace conet {

class tcp_stream;
struct accepted;
class tcp_listener;

namespace detail {
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] connect_op;

// Checks that `fd` is a connected (not listening) stream socket, of an IP family if
// `ip_only`, and makes it non-blocking and close-on-exec. Changes nothing if it is refused.
inline std::error_code prepare_adopted_stream(int fd, bool ip_only) noexcept {
    int type = 0;
    socklen_t length = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0) return errno_code(errno);
    if (type != SOCK_STREAM) return std::make_error_code(std::errc::wrong_protocol_type);
    int listening = 0;
    length = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) < 0)
        return errno_code(errno);
    if (listening) return std::make_error_code(std::errc::invalid_argument); // a listener's
    if (ip_only) return prepare_adopted(fd, SOCK_STREAM, false);
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        ::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return errno_code(errno);
    return {};
}

inline int checked_stream(int fd) {
    if (auto ec = prepare_adopted_stream(fd, false)) throw_error(ec, "tcp_stream");
    return fd;
}
} // namespace detail

/// A connected TCP socket. Move-only; closes itself on destruction. Its transfers (recv,
/// recv_exact, send, send_all, shutdown) are detail::stream_base's, shared with UNIX streams.
class tcp_stream : public detail::stream_base<detail::socket_base> {
public:
    /// A closed stream (the result of a failed non-throwing connect, for instance).
    tcp_stream() noexcept = default;
    /// Takes ownership of a descriptor that is already a connected TCP socket (one inherited
    /// from another program, say) and makes it non-blocking and close-on-exec, as
    /// tcp_listener::adopt and udp_socket::adopt do. Throws std::system_error
    /// (wrong_protocol_type for a socket that is not a stream one, invalid_argument for a
    /// listening one, address_family_not_supported for one that is not IP); on failure the
    /// descriptor is left open, unchanged and not owned.
    static tcp_stream adopt(int fd) {
        std::error_code ec;
        auto stream = adopt(fd, ec);
        if (ec) detail::throw_error(ec, "tcp_stream::adopt");
        return stream;
    }
    static tcp_stream adopt(int fd, std::error_code& ec) noexcept {
        ec = detail::prepare_adopted_stream(fd, true);
        return ec ? tcp_stream() : tcp_stream(fd, adopted{});
    }
    /// As adopt(fd), but it takes any connected stream socket, a Unix one too (so its short
    /// reads prove nothing: each operation tries first). Throws std::system_error.
    explicit tcp_stream(int fd) : stream_base(detail::checked_stream(fd)) {}

    /// Connects to `to` (`co_await tcp_stream::connect(ep)`): yields the connected stream.
    static detail::connect_op connect(const endpoint& to);
    /// Non-throwing connect: on failure sets `ec` and yields a closed stream.
    static detail::connect_op connect(const endpoint& to, std::error_code& ec);

    /// The peer's address and port.
    using socket_base::peer_endpoint;

    /// Turns Nagle's algorithm off (true) so small writes go out at once.
    void set_nodelay(bool on) { set_option(option::no_delay{on}); }

private:
    friend class detail::connect_op;
    friend struct detail::accept_traits<accepted>;
    // A TCP socket conet made itself (connect, accept): see descriptor's traits.
    struct made_here {};
    tcp_stream(int fd, made_here) noexcept : stream_base(fd, stream_socket | conet_made) {}
    struct adopted {}; // checked by adopt
    tcp_stream(int fd, adopted) noexcept : stream_base(fd) {}
};

/// What accept() yields: the connected stream and who is on the other end.
struct accepted {
    tcp_stream stream;
    endpoint peer;
};

namespace detail {

/// Non-blocking connect: connect() returns EINPROGRESS, the socket turns writable when the
/// handshake ends, and SO_ERROR tells whether it succeeded.
class connect_op : public io_awaiter<connect_op, direction::write> {
public:
    connect_op(const endpoint& to, std::error_code* out) noexcept : io_awaiter(out), to_(to) {}

    bool try_once() noexcept {
        if (!started_) {
            started_ = true;
            const int socket_fd = open_socket(to_.family(), SOCK_STREAM, ec);
            if (socket_fd < 0) return true;
            stream_ = tcp_stream(socket_fd, tcp_stream::made_here{});
            const sockaddr_any sa(to_);
            if (counted(::connect(socket_fd, sa.get(), sa.length)) == 0) return true;
            // EINTR: the handshake goes on in the background, exactly as for EINPROGRESS.
            if (errno == EINPROGRESS || errno == EINTR) return false;
            ec = errno_code(errno);
            return true;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (counted(::getsockopt(stream_.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len)) < 0)
            err = errno;
        if (err != 0) ec = errno_code(err);
        return true;
    }
    descriptor& target() noexcept { return stream_; }
    tcp_stream result() noexcept { return std::move(stream_); }
    tcp_stream failed_result() noexcept {
        stream_.close();
        return {};
    }
    std::string describe() const { return "connect " + to_.to_string(); }

private:
    endpoint to_;
    tcp_stream stream_;
    bool started_ = false;
};

template <>
struct accept_traits<accepted> {
    using address = sockaddr_any;
    static constexpr socklen_t capacity = sizeof(sockaddr_storage);
    static void take(accepted& a, int fd, const address& peer, std::error_code&) noexcept {
        a.stream = tcp_stream(fd, tcp_stream::made_here{});
        a.peer = peer.to_endpoint();
    }
};
using accept_op = basic_accept_op<accepted>;

} // namespace detail

inline detail::connect_op tcp_stream::connect(const endpoint& to) {
    return {to, nullptr};
}
inline detail::connect_op tcp_stream::connect(const endpoint& to, std::error_code& ec) {
    return {to, &ec};
}

/// How tcp_listener::bind prepares its socket: the course's setsockopt calls, made between
/// socket() and bind(). `tcp_listener::bind(where, {.reuse_port = true})`.
struct listen_options {
    /// SO_REUSEADDR: a restarted server can bind its port at once, although connections of
    /// the previous run are still in TIME_WAIT.
    bool reuse_address = true;
    /// SO_REUSEPORT: several listeners (one per reactor) bind the same port, and the kernel
    /// spreads incoming connections among them.
    bool reuse_port = false;
    /// IPV6_V6ONLY for an IPv6 address: true takes IPv6 clients only, false IPv4 too (they
    /// appear as ::ffff:a.b.c.d); unset keeps the system's default (IPv4 too, on Linux).
    std::optional<bool> v6_only = std::nullopt;
    /// The listen queue: connections the kernel completes before accept() takes them.
    int backlog = SOMAXCONN;
};

/// A listening TCP socket: the course's socket() + bind() + listen(), then accept().
class tcp_listener : public detail::socket_base {
public:
    /// The listen queue length used when none is given.
    static constexpr int default_backlog = SOMAXCONN;

    /// A closed listener.
    tcp_listener() noexcept = default;

    /// Creates a socket bound to `where` (SO_REUSEADDR set, so a restarted server can bind
    /// at once) and listening with `backlog`. Port 0 picks a free port: read it back with
    /// local_endpoint(). Throws std::system_error, e.g. "bind 0.0.0.0:80: Permission denied".
    static tcp_listener bind(const endpoint& where, int backlog = default_backlog) {
        return bind(where, listen_options{.backlog = backlog});
    }
    /// Non-throwing bind: on failure sets `ec` and returns a closed listener.
    static tcp_listener bind(const endpoint& where, std::error_code& ec,
                             int backlog = default_backlog) noexcept {
        return bind(where, listen_options{.backlog = backlog}, ec);
    }

    /// Creates a socket, sets `options` on it, binds it to `where` and listens:
    /// `tcp_listener::bind(where, {.reuse_port = true})`. Throws std::system_error.
    static tcp_listener bind(const endpoint& where, const listen_options& options) {
        std::error_code ec;
        auto listener = bind(where, options, ec);
        if (ec) detail::throw_error(ec, "bind " + where.to_string());
        return listener;
    }
    /// Non-throwing form: on failure sets `ec` and returns a closed listener.
    static tcp_listener bind(const endpoint& where, const listen_options& options,
                             std::error_code& ec) noexcept {
        ec.clear();
        const int fd = detail::open_bound_socket(where, SOCK_STREAM, options.reuse_address,
                                                 options.reuse_port, options.v6_only, ec);
        if (fd < 0) return {};
        tcp_listener listener(fd, conet_made);
        if (::listen(fd, options.backlog) < 0) {
            ec = detail::errno_code(errno);
            return {};
        }
        return listener;
    }

    /// Takes ownership of a descriptor that is already a listening TCP socket (one inherited
    /// from a service manager, say) and makes it non-blocking. Throws std::system_error
    /// (wrong_protocol_type for a socket that is not TCP, invalid_argument for one that does
    /// not listen); on failure the descriptor is left open and not owned.
    static tcp_listener adopt(int fd) {
        std::error_code ec;
        auto listener = adopt(fd, ec);
        if (ec) detail::throw_error(ec, "tcp_listener::adopt");
        return listener;
    }
    static tcp_listener adopt(int fd, std::error_code& ec) noexcept {
        ec = detail::prepare_adopted(fd, SOCK_STREAM, true);
        return ec ? tcp_listener() : tcp_listener(fd);
    }

    /// Waits for the next connection: `auto [conn, peer] = co_await listener.accept();`
    template <class Op = detail::accept_op>
    Op accept() noexcept {
        return {*this, nullptr};
    }
    /// Non-throwing accept. EMFILE and ENFILE are reported here and are recoverable: the
    /// listener keeps working once descriptors are freed.
    template <class Op = detail::accept_op>
    Op accept(std::error_code& ec) noexcept {
        return {*this, &ec};
    }

private:
    explicit tcp_listener(int fd, std::uint32_t kind = 0) noexcept : socket_base(fd, kind) {}
};

} // namespace conet

// conet/unix.hpp - UNIX domain stream sockets: unix_listener (socket + bind + listen +
// accept) and unix_stream (connect, socketpair, recv, send, the peer's credentials, and
// descriptors passed with the data).
//
// A unix_stream has the operations of a tcp_stream, shared with it (detail::stream_base):
// the same awaitables, error forms, cancellation, budget and readiness tracking. What is its
// own: addresses are unix_address (a path, "@name" in the abstract namespace, or unnamed),
// peer_credentials() (SO_PEERCRED), and send_fds / recv_fds (SCM_RIGHTS).
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "buffer.hpp"
#include "detail/descriptor_passing.hpp"
#include "detail/io_awaiter.hpp"
#include "detail/socket_ops.hpp"
#include "detail/stream_ops.hpp"
#include "detail/stream_socket.hpp"
#include "detail/unix_socket.hpp"
#include "error.hpp"
#include "owned_fd.hpp"
#include "reactor.hpp"
#include "unix_address.hpp"

namespace conet {

class unix_stream;
struct unix_accepted;
class unix_listener;

/// Who is on the other end of a unix_stream, as the kernel recorded it when the connection
/// (or socketpair) was made: its process, user and group ids.
struct credentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};

namespace detail {
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] unix_connect_op;
} // namespace detail

/// A connected UNIX stream socket. Move-only; closes itself on destruction. recv,
/// recv_exact, send, send_all and shutdown are tcp_stream's (detail::stream_base). A plain
/// receive that meets data sent with descriptors takes the data; the kernel closes the
/// descriptors (use recv_fds where they are expected).
class unix_stream : public detail::stream_base<detail::unix_socket_base, detail::message_reads> {
public:
    /// A closed stream (the result of a failed non-throwing connect, for instance).
    unix_stream() noexcept = default;

    /// Connects to the listener at `to` (`co_await unix_stream::connect("/run/app.sock")`):
    /// yields the connected stream. A UNIX connect never waits: the listener's queue being
    /// full fails at once with std::errc::resource_unavailable_try_again (EAGAIN), a path
    /// nobody listens on with no_such_file_or_directory or connection_refused.
    static detail::unix_connect_op connect(const unix_address& to);
    /// Non-throwing connect: on failure sets `ec` and yields a closed stream.
    static detail::unix_connect_op connect(const unix_address& to, std::error_code& ec);

    /// Two streams connected to each other (socketpair): for a child process, or two parts
    /// of one program. Throws std::system_error.
    static std::pair<unix_stream, unix_stream> pair() {
        std::error_code ec;
        auto p = pair(ec);
        detail::throw_if(ec, "socketpair");
        return p;
    }
    static std::pair<unix_stream, unix_stream> pair(std::error_code& ec) noexcept {
        int fds[2];
        if (detail::counted(
                ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds)) < 0) {
            ec = detail::errno_code(errno);
            return {};
        }
        ec.clear();
        return {unix_stream(fds[0], made_here{}), unix_stream(fds[1], made_here{})};
    }

    /// Takes ownership of a descriptor that is already a connected UNIX stream socket (one
    /// inherited, or received with recv_fds) and makes it non-blocking and close-on-exec.
    /// Throws std::system_error (address_family_not_supported for a socket that is not UNIX,
    /// wrong_protocol_type for one that is not a stream, invalid_argument for a listening
    /// one); on failure the descriptor is left open, unchanged and not owned. Its short reads
    /// prove nothing (another holder may read it too): each operation tries first.
    static unix_stream adopt(int fd) {
        std::error_code ec;
        auto stream = adopt(fd, ec);
        detail::throw_if(ec, "unix_stream::adopt");
        return stream;
    }
    static unix_stream adopt(int fd, std::error_code& ec) noexcept {
        ec = detail::prepare_adopted_unix(fd, SOCK_STREAM, false);
        return ec ? unix_stream() : unix_stream(fd, adopted{});
    }

    /// The peer's address (unnamed for most clients, and for a socketpair).
    using unix_socket_base::peer_address;

    /// The peer's process, user and group ids (SO_PEERCRED), as they were when it connected
    /// (or made the pair). Throws std::system_error.
    credentials peer_credentials() const {
        std::error_code ec;
        auto c = peer_credentials(ec);
        detail::throw_if(ec, "getsockopt(SO_PEERCRED)");
        return c;
    }
    credentials peer_credentials(std::error_code& ec) const noexcept {
        ucred c{};
        socklen_t length = sizeof c;
        if (::getsockopt(native_handle(), SOL_SOCKET, SO_PEERCRED, &c, &length) < 0) {
            ec = detail::errno_code(errno);
            return {};
        }
        ec.clear();
        return {c.pid, c.uid, c.gid};
    }

    /// Sends every byte of `buf`, with the descriptors `fds` (at most 253) attached to its
    /// first bytes (SCM_RIGHTS): the peer receives them with recv_fds, as new descriptors of
    /// its own for the same open files. `fds` stay the caller's, open; they must be open until
    /// the co_await returns. Yields the bytes sent, as send_all does. An empty `buf` (which
    /// could carry no descriptor on a stream), or more than 253 descriptors, is
    /// std::errc::invalid_argument.
    detail::send_fds_op send_fds(const_buffer buf, std::span<const int> fds) noexcept;
    detail::send_fds_op send_fds(const_buffer buf, std::span<const int> fds,
                                 std::error_code& ec) noexcept;

    /// Receives up to `buf.size()` bytes and the descriptors sent with them, at most
    /// `max_fds` (253 if not given): yields {size, fds}, size 0 at end of stream. Each
    /// descriptor is owned by the result (closed when it goes) and close-on-exec. A receive
    /// stops after the bytes that carried descriptors, so that descriptors of two messages
    /// are never mixed. More descriptors than `max_fds` fail with
    /// conet::error::descriptors_truncated, and none is left open: the kernel closes those
    /// that did not fit, the receive those that did (the non-throwing form still yields the
    /// bytes). An empty `buf` is std::errc::invalid_argument.
    detail::recv_fds_op recv_fds(mutable_buffer buf) noexcept;
    detail::recv_fds_op recv_fds(mutable_buffer buf, std::error_code& ec) noexcept;
    detail::recv_fds_op recv_fds(mutable_buffer buf, std::size_t max_fds) noexcept;
    detail::recv_fds_op recv_fds(mutable_buffer buf, std::size_t max_fds,
                                 std::error_code& ec) noexcept;

private:
    friend class detail::unix_connect_op;
    friend struct detail::accept_traits<unix_accepted>;
    // Made by conet (connect, accept, socketpair): tracked, and read with recvmsg.
    struct made_here {};
    unix_stream(int fd, made_here) noexcept
        : stream_base(fd, stream_socket | conet_made | message_stream) {}
    struct adopted {}; // checked by adopt
    unix_stream(int fd, adopted) noexcept : stream_base(fd, message_stream) {}
};

/// What unix_listener::accept() yields: the connected stream and its peer's address
/// (unnamed unless the client bound one).
struct unix_accepted {
    unix_stream stream;
    unix_address peer;
};

namespace detail {

/// A UNIX connect: the kernel connects at once or fails, it never waits (a full listen queue
/// is EAGAIN, reported). Still an awaitable, for the cancellation check and the budget.
class unix_connect_op : public io_awaiter<unix_connect_op, direction::write> {
public:
    unix_connect_op(const unix_address& to, std::error_code* out) : io_awaiter(out), to_(to) {}

    bool try_once() noexcept {
        sockaddr_unix sa;
        if ((ec = sa.assign(to_))) return true;
        const int socket_fd = open_unix_socket(SOCK_STREAM, ec);
        if (socket_fd < 0) return true;
        stream_ = unix_stream(socket_fd, unix_stream::made_here{});
        if (retry_on_eintr([&] { return ::connect(socket_fd, sa.get(), sa.length); }) < 0)
            ec = errno_code(errno);
        return true;
    }
    descriptor& target() noexcept { return stream_; }
    unix_stream result() noexcept { return std::move(stream_); }
    unix_stream failed_result() noexcept {
        stream_.close();
        return {};
    }
    std::string describe() const { return "connect " + to_.to_string(); }

private:
    unix_address to_;
    unix_stream stream_;
};

template <>
struct accept_traits<unix_accepted> {
    using address = sockaddr_unix;
    static constexpr socklen_t capacity = sizeof(sockaddr_un);
    static void take(unix_accepted& a, int fd, const address& peer, std::error_code& ec) noexcept {
        a.stream = unix_stream(fd, unix_stream::made_here{});
        try {
            a.peer = peer.to_address();
        } catch (const std::bad_alloc&) {
            a.stream.close();
            ec = std::make_error_code(std::errc::not_enough_memory);
        }
    }
};
using unix_accept_op = basic_accept_op<unix_accepted>;

} // namespace detail

inline detail::unix_connect_op unix_stream::connect(const unix_address& to) {
    return {to, nullptr};
}
inline detail::unix_connect_op unix_stream::connect(const unix_address& to, std::error_code& ec) {
    return {to, &ec};
}
inline detail::send_fds_op unix_stream::send_fds(const_buffer buf,
                                                 std::span<const int> fds) noexcept {
    return {*this, buf, fds, nullptr};
}
inline detail::send_fds_op unix_stream::send_fds(const_buffer buf, std::span<const int> fds,
                                                 std::error_code& ec) noexcept {
    return {*this, buf, fds, &ec};
}
inline detail::recv_fds_op unix_stream::recv_fds(mutable_buffer buf) noexcept {
    return {*this, buf, detail::max_fds_per_message, false, nullptr};
}
inline detail::recv_fds_op unix_stream::recv_fds(mutable_buffer buf, std::error_code& ec) noexcept {
    return {*this, buf, detail::max_fds_per_message, false, &ec};
}
inline detail::recv_fds_op unix_stream::recv_fds(mutable_buffer buf, std::size_t max_fds) noexcept {
    return {*this, buf, max_fds, false, nullptr};
}
inline detail::recv_fds_op unix_stream::recv_fds(mutable_buffer buf, std::size_t max_fds,
                                                 std::error_code& ec) noexcept {
    return {*this, buf, max_fds, false, &ec};
}

/// A listening UNIX stream socket: socket() + bind() + listen(), then accept().
///
/// Bound to a path, it makes the socket file, and close() (or destruction) removes that
/// file again, if it is still the one it made (same device and inode: a file another
/// program put there since is left alone). A relative path is removed relative to the
/// working directory at close. A file already at the path (a previous run's, say) makes
/// bind fail with address_in_use: remove it first if it is yours. An abstract name leaves
/// no file. An adopted listener removes nothing.
class unix_listener : public detail::unix_socket_base {
public:
    /// The listen queue length used when none is given.
    static constexpr int default_backlog = SOMAXCONN;

    /// A closed listener.
    unix_listener() noexcept = default;
    unix_listener(unix_listener&& other) noexcept = default;
    unix_listener& operator=(unix_listener&& other) noexcept {
        if (this != &other) {
            close();
            unix_socket_base::operator=(std::move(other));
            file_ = std::move(other.file_);
        }
        return *this;
    }
    ~unix_listener() { close(); }

    /// Creates a socket bound to `where` (a path, or "@name" in the abstract namespace) and
    /// listening with `backlog`. Throws std::system_error, e.g. "bind /run/app.sock: Address
    /// already in use"; a path or name over unix_address::max_length bytes is
    /// conet::error::address_too_long (nothing is made).
    static unix_listener bind(const unix_address& where, int backlog = default_backlog) {
        std::error_code ec;
        auto listener = bind(where, ec, backlog);
        if (ec) detail::throw_error(ec, "bind " + where.to_string());
        return listener;
    }
    /// Non-throwing bind: on failure sets `ec` and returns a closed listener (having left
    /// no file behind).
    static unix_listener bind(const unix_address& where, std::error_code& ec,
                              int backlog = default_backlog) {
        detail::socket_file file;
        const int fd = detail::open_bound_unix_socket(where, SOCK_STREAM, file, ec);
        if (fd < 0) return {};
        unix_listener listener(fd);
        listener.file_ = std::move(file);
        if (::listen(fd, backlog) < 0) {
            ec = detail::errno_code(errno);
            return {}; // (the listener's destruction removes the file)
        }
        ec.clear();
        return listener;
    }

    /// Takes ownership of a descriptor that is already a listening UNIX stream socket (one
    /// inherited from a service manager, say) and makes it non-blocking. Throws
    /// std::system_error; on failure the descriptor is left open and not owned. Its socket
    /// file, if any, is not removed on close.
    static unix_listener adopt(int fd) {
        std::error_code ec;
        auto listener = adopt(fd, ec);
        detail::throw_if(ec, "unix_listener::adopt");
        return listener;
    }
    static unix_listener adopt(int fd, std::error_code& ec) noexcept {
        ec = detail::prepare_adopted_unix(fd, SOCK_STREAM, true);
        return ec ? unix_listener() : unix_listener(fd);
    }

    /// Waits for the next connection: `auto [conn, peer] = co_await listener.accept();`
    detail::unix_accept_op accept() noexcept { return {*this, nullptr}; }
    /// Non-throwing accept. EMFILE and ENFILE are reported here and are recoverable.
    detail::unix_accept_op accept(std::error_code& ec) noexcept { return {*this, &ec}; }

    /// Removes the socket file this listener made (if it is still that file), then closes
    /// the socket: waiting accepts resume with conet::error::closed.
    void close() noexcept {
        file_.remove();
        unix_socket_base::close();
    }

private:
    explicit unix_listener(int fd) noexcept : unix_socket_base(fd, conet_made) {}

    detail::socket_file file_; // the socket file this listener made, to remove on close
};

} // namespace conet

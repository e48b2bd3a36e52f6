// conet/detail/unix_socket.hpp - what every UNIX domain socket shares, stream or datagram:
// making one (bound to a path or an abstract name), adopting one, its addresses, and the
// socket file a bind to a path made, removed again on close.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <string>
#include <system_error>
#include <utility>

#include "../error.hpp"
#include "../unix_address.hpp"
#include "socket_ops.hpp"

namespace conet::detail {

/// A new non-blocking, close-on-exec UNIX socket of `type` (SOCK_STREAM, SOCK_DGRAM), or -1
/// with `ec` set.
inline int open_unix_socket(int type, std::error_code& ec) noexcept {
    const int fd = counted(::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd < 0) ec = errno_code(errno);
    return fd;
}

/// getsockname/getpeername as a unix_address.
template <auto Query>
unix_address query_unix_address(int fd, std::error_code& ec) {
    sockaddr_unix sa;
    sa.length = sizeof sa.address;
    if (Query(fd, sa.get(), &sa.length) < 0) {
        ec = errno_code(errno);
        return {};
    }
    ec.clear();
    return sa.to_address();
}

/// Checks that `fd` is a UNIX socket of `type`, listening or not as `listening` says, and
/// makes it non-blocking and close-on-exec. Changes nothing if it is refused.
inline std::error_code prepare_adopted_unix(int fd, int type, bool listening) noexcept {
    int value = 0;
    socklen_t length = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &length) < 0) return errno_code(errno);
    if (value != AF_UNIX) return std::make_error_code(std::errc::address_family_not_supported);
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) < 0) return errno_code(errno);
    if (value != type) return std::make_error_code(std::errc::wrong_protocol_type);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) < 0) return errno_code(errno);
    if ((value != 0) != listening) return std::make_error_code(std::errc::invalid_argument);
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        ::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return errno_code(errno);
    return {};
}

/// The socket file that a bind to a path made: removed by remove() if it is still that file
/// (a socket, same device and inode), so that a file another program put there since is left
/// alone. Its owner removes it on close, before closing the socket. Empty (removes nothing)
/// for an abstract name, an adopted socket, or once moved from.
class socket_file {
public:
    socket_file() noexcept = default;
    socket_file(socket_file&& other) noexcept
        : path_(std::move(other.path_)), device_(other.device_), inode_(other.inode_) {
        other.path_.clear();
    }
    socket_file& operator=(socket_file&& other) noexcept {
        if (this != &other) {
            remove();
            path_ = std::move(other.path_);
            other.path_.clear();
            device_ = other.device_;
            inode_ = other.inode_;
        }
        return *this;
    }

    /// Records `path`, which a bind has just made: not_enough_memory if it cannot be kept
    /// (the caller then removes the file itself).
    std::error_code record(const char* path) noexcept {
        try {
            path_.assign(path);
        } catch (const std::bad_alloc&) {
            return std::make_error_code(std::errc::not_enough_memory);
        }
        struct stat made {};
        if (::stat(path_.c_str(), &made) == 0) {
            device_ = made.st_dev;
            inode_ = made.st_ino;
        }
        return {};
    }

    /// Removes the file if it is still the one recorded (a relative path: relative to the
    /// working directory now), and forgets it.
    void remove() noexcept {
        if (path_.empty()) return;
        struct stat now {};
        if (::lstat(path_.c_str(), &now) == 0 && S_ISSOCK(now.st_mode) && now.st_dev == device_ &&
            now.st_ino == inode_)
            ::unlink(path_.c_str());
        path_.clear();
    }

private:
    std::string path_;
    dev_t device_ = 0;
    ino_t inode_ = 0;
};

/// A new UNIX socket of `type` bound to `where`, the socket file it made (for a path)
/// recorded in `file`; -1 with `ec` set on failure, nothing left open and no file left
/// behind. A path or name too long is address_too_long, before anything is made.
inline int open_bound_unix_socket(const unix_address& where, int type, socket_file& file,
                                  std::error_code& ec) noexcept {
    sockaddr_unix sa;
    if ((ec = sa.assign(where))) return -1;
    const int fd = open_unix_socket(type, ec);
    if (fd < 0) return -1;
    if (::bind(fd, sa.get(), sa.length) < 0) {
        ec = errno_code(errno);
        ::close(fd);
        return -1;
    }
    if (!where.is_abstract() && (ec = file.record(sa.address.sun_path))) {
        ::unlink(sa.address.sun_path);
        ::close(fd);
        return -1;
    }
    ec.clear();
    return fd;
}

/// What every UNIX socket has: the socket, and the address it is bound to.
class unix_socket_base : public any_socket {
public:
    using any_socket::any_socket;

    /// The address this socket is bound to (unnamed if it is not).
    unix_address local_address() const {
        std::error_code ec;
        auto a = local_address(ec);
        throw_if(ec, "getsockname");
        return a;
    }
    unix_address local_address(std::error_code& ec) const {
        return query_unix_address<::getsockname>(native_handle(), ec);
    }

protected:
    // The peer's address: published by the sockets that have a peer (a unix_stream, a
    // connected datagram socket), not by a listener.
    unix_address peer_address() const {
        std::error_code ec;
        auto a = peer_address(ec);
        throw_if(ec, "getpeername");
        return a;
    }
    unix_address peer_address(std::error_code& ec) const {
        return query_unix_address<::getpeername>(native_handle(), ec);
    }
};

} // namespace conet::detail

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

/// Receives some bytes (0 at end of stream) from a connected socket.
class recv_op : public io_awaiter<recv_op, direction::read> {
public:
    recv_op(descriptor& d, mutable_buffer buf, std::error_code* out) noexcept
        : io_awaiter(out), d_(&d), buf_(buf) {}

    bool try_once() noexcept {
        const auto n = retry_on_eintr(
            [&] { return ::recv(d_->native_handle(), buf_.data(), buf_.size(), 0); });
        if (n >= 0) {
            received_ = static_cast<std::size_t>(n);
            return true;
        }
        if (would_block(errno)) return false;
        ec = errno_code(errno);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    std::size_t result() const noexcept { return received_; }
    std::size_t failed_result() const noexcept { return 0; }
    std::string describe() const { return "recv"; }

private:
    descriptor* d_;
    mutable_buffer buf_;
    std::size_t received_ = 0;
};

/// Sends some bytes (`all` false) or every byte through partial writes (`all` true).
/// MSG_NOSIGNAL: a peer that went away is an EPIPE error, never a SIGPIPE.
class send_op : public io_awaiter<send_op, direction::write> {
public:
    send_op(descriptor& d, const_buffer buf, bool all, std::error_code* out) noexcept
        : io_awaiter(out), d_(&d), buf_(buf), all_(all) {}

    bool try_once() noexcept {
        do {
            const auto n = retry_on_eintr([&] {
                return ::send(d_->native_handle(), buf_.data() + sent_, buf_.size() - sent_,
                              MSG_NOSIGNAL);
            });
            if (n < 0) {
                if (would_block(errno)) return false;
                ec = errno_code(errno);
                return true;
            }
            sent_ += static_cast<std::size_t>(n);
        } while (all_ && sent_ < buf_.size());
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return sent_; } // what did go out
    std::string describe() const { return all_ ? "send_all" : "send"; }

private:
    descriptor* d_;
    const_buffer buf_;
    bool all_;
    std::size_t sent_ = 0;
};

} // namespace conet::detail

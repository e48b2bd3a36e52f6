// conet/owned_fd.hpp - owned_fd: a plain descriptor that closes itself (RAII), such as one
// received from another process over a UNIX socket (unix_stream::recv_fds).
#pragma once

#include <unistd.h>

#include <utility>

namespace conet {

/// Owns one open descriptor and closes it when destroyed. Move-only. It does nothing else:
/// it is not registered with a reactor (to wait on a socket received this way, adopt it into
/// a conet socket with its adopt(release())).
class owned_fd {
public:
    /// Owns nothing.
    owned_fd() noexcept = default;
    /// Takes ownership of `fd` (-1 for none).
    explicit owned_fd(int fd) noexcept : fd_(fd) {}
    owned_fd(owned_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    owned_fd& operator=(owned_fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    owned_fd(const owned_fd&) = delete;
    owned_fd& operator=(const owned_fd&) = delete;
    ~owned_fd() { reset(); }

    /// The descriptor, still owned (-1 for none).
    int get() const noexcept { return fd_; }
    /// True if it owns a descriptor.
    explicit operator bool() const noexcept { return fd_ >= 0; }
    /// Gives the descriptor up without closing it: the caller owns it now.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the descriptor owned (if any) and owns `fd` instead.
    void reset(int fd = -1) noexcept {
        // Never retried on EINTR: on Linux the descriptor is gone either way.
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

} // namespace conet

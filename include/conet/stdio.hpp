// conet/stdio.hpp - standard input on the reactor, so that a program can wait for the user's
// next line and for a socket at the same time.
//
//     conet::standard_input input;
//     conet::line_reader keyboard{input};
//     auto line = co_await keyboard.read_line();   // other coroutines run meanwhile
//
// A terminal or a pipe is waited for on the reactor like a socket. A regular file (or
// /dev/null) cannot be polled, but never makes a reader wait either, so it is simply read.
// While a standard_input exists, the descriptor is in non-blocking mode; the original mode
// is restored when it is destroyed (the mode belongs to the open file, which other programs
// sharing the terminal see too).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "buffer.hpp"
#include "detail/io_awaiter.hpp"
#include "detail/stream_ops.hpp"
#include "error.hpp"
#include "reactor.hpp"

namespace conet {

/// The process's standard input (descriptor 0), readable with co_await.
class standard_input : public detail::descriptor {
public:
    /// Duplicates descriptor 0 (so that closing this object leaves it open) and puts it in
    /// non-blocking mode. Throws std::system_error if standard input is closed.
    standard_input() {
        const int fd = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) detail::throw_error(detail::errno_code(errno), "standard input");
        static_cast<descriptor&>(*this) = descriptor(fd);
        original_flags_ = ::fcntl(fd, F_GETFL);
        if (original_flags_ >= 0 && !(original_flags_ & O_NONBLOCK))
            ::fcntl(fd, F_SETFL, original_flags_ | O_NONBLOCK);
    }

    standard_input(const standard_input&) = delete;
    standard_input& operator=(const standard_input&) = delete;

    /// Restores the original blocking mode.
    ~standard_input() {
        if (is_open() && original_flags_ >= 0) ::fcntl(native_handle(), F_SETFL, original_flags_);
    }

    /// Reads what is available (waiting for at least one byte); yields 0 at end of input. An
    /// empty `buf` fails with std::errc::invalid_argument (its 0 would mean end of input).
    template <class Op = detail::read_op>
    Op read_some(mutable_buffer buf) noexcept {
        return {*this, buf, false, "read", nullptr};
    }
    template <class Op = detail::read_op>
    Op read_some(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, false, "read", &ec};
    }

private:
    int original_flags_ = -1;
};

} // namespace conet

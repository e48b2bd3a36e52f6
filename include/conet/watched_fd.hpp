// conet/watched_fd.hpp - waiting on the reactor for a descriptor that another library owns
// and reads: a database client's socket, curl's sockets, a pipe.
//
//     conet::watched_fd pg{PQsocket(conn)};   // conet never reads, writes or closes it
//     while (PQisBusy(conn)) {
//         co_await pg.wait_readable();        // other coroutines run meanwhile
//         PQconsumeInput(conn);
//     }
//
// The library keeps making its own calls on its descriptor, and its descriptor stays its
// own: conet watches a duplicate (closed, and taken off the epoll set, when the watched_fd
// goes), so the library may close its descriptor whenever it likes.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "detail/descriptor.hpp"
#include "detail/io_awaiter.hpp"
#include "error.hpp"

namespace conet {
namespace detail {

/// Waits until a watched descriptor is readable (or writable) *now*: level-triggered, unlike
/// a socket's wait_readable. A library that reads its descriptor itself may leave data
/// queued (libpq reads at most its buffer), and no new edge would come for it; so the first
/// try asks the kernel with poll() instead of trusting what the loop saw. If that says "not
/// yet", the operation waits for the next edge, which ends it without another poll.
template <direction Dir>
class level_wait_op : public io_awaiter<level_wait_op<Dir>, Dir> {
public:
    level_wait_op(descriptor& d, std::error_code* out) noexcept
        : io_awaiter<level_wait_op<Dir>, Dir>(out), d_(&d) {}

    bool must_wait() noexcept { return false; } // the try is the poll
    bool try_once() noexcept {
        if (polled_) return true; // an edge in this direction woke it
        polled_ = true;
        pollfd p{d_->native_handle(), Dir == direction::read ? short{POLLIN} : short{POLLOUT}, 0};
        const int n = retry_on_eintr([&] { return ::poll(&p, 1, 0); });
        if (n < 0) {
            this->ec = errno_code(errno);
            return true;
        }
        // POLLHUP, POLLERR, POLLNVAL end the wait too: the library's next call reports them.
        return n > 0;
    }
    descriptor& target() noexcept { return *d_; }
    void result() const noexcept {}
    void failed_result() const noexcept {}
    std::string describe() const {
        return Dir == direction::read ? "wait_readable" : "wait_writable";
    }

private:
    descriptor* d_;
    bool polled_ = false;
};

} // namespace detail

/// A descriptor that belongs to someone else (a library that reads and writes it itself),
/// watched for readiness on the running reactor. conet only waits: it never reads, writes,
/// changes the flags of, or closes the descriptor it was given. A wait ends when the
/// descriptor is ready at that moment, whatever was read from it before (level-triggered),
/// so it is safe with a library that does not read until EAGAIN. A wait may still end
/// spuriously (something else read the data first): the library then meets EAGAIN, and the
/// caller waits again.
///
/// One operation per direction at a time (a second fails with conet::error::already_waiting).
/// Waits are cancellable and take with_timeout like any conet operation; a watched_fd stays
/// on the reactor it first waited on (leave_reactor() before using it on another).
class watched_fd : private detail::descriptor {
public:
    /// Watches nothing (a wait fails with EBADF) until another watched_fd is moved in.
    watched_fd() noexcept = default;
    /// Watches `fd`, which stays the caller's. Throws std::system_error if `fd` is not an
    /// open descriptor (EBADF) or no descriptor is left to duplicate it (EMFILE).
    explicit watched_fd(int fd) {
        std::error_code ec;
        *this = watched_fd(fd, ec);
        if (ec) detail::throw_error(ec, "watched_fd");
    }
    /// The same, reporting the failure in `ec` (the watched_fd is then closed).
    watched_fd(int fd, std::error_code& ec) noexcept {
        ec.clear();
        // A duplicate: its number is conet's to register and to close, and the epoll
        // registration follows it, not the caller's number.
        const int own = fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (own < 0) {
            ec = detail::errno_code(fd < 0 ? EBADF : errno);
            return;
        }
        static_cast<descriptor&>(*this) = descriptor(own);
    }
    watched_fd(watched_fd&&) noexcept = default;
    watched_fd& operator=(watched_fd&&) noexcept = default;

    /// True until close() (or a move out of this object).
    using descriptor::is_open;
    /// Stops watching: closes conet's duplicate (the caller's descriptor stays open). Waits
    /// in progress resume with conet::error::closed.
    using descriptor::close;
    /// Unregisters from the reactor it has waited on, so that another reactor can use it.
    using descriptor::leave_reactor;

    // (The waits are templates only so that they are compiled where they are awaited, not in
    // every file that includes conet.hpp.)

    /// Waits until the descriptor is readable (or at end of file, hung up, in error): ends at
    /// once if it is readable now.
    template <class = void>
    detail::level_wait_op<detail::direction::read> wait_readable() noexcept {
        return {*this, nullptr};
    }
    template <class = void>
    detail::level_wait_op<detail::direction::read> wait_readable(std::error_code& ec) noexcept {
        return {*this, &ec};
    }
    /// Waits until the descriptor is writable: ends at once if it is writable now.
    template <class = void>
    detail::level_wait_op<detail::direction::write> wait_writable() noexcept {
        return {*this, nullptr};
    }
    template <class = void>
    detail::level_wait_op<detail::direction::write> wait_writable(std::error_code& ec) noexcept {
        return {*this, &ec};
    }
};

} // namespace conet

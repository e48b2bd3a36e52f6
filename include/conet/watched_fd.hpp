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
// own: conet watches a duplicate, closed (and taken off the epoll set) when the watched_fd
// goes. That duplicate keeps the file open, so close the watched_fd when the library closes
// its descriptor (curl's CURL_POLL_REMOVE, before PQfinish or PQreset): until then the peer
// sees no end of the connection.
#pragma once

#include <asm/unistd.h> // __NR_kcmp
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "detail/descriptor.hpp"
#include "detail/io_awaiter.hpp"
#include "error.hpp"

namespace conet {
namespace detail {

// True if `theirs` still names the open file that `ours` duplicates. kcmp compares the open
// file descriptions themselves, in the calling thread's descriptor table (which is not the
// process's after unshare(CLONE_FILES), hence the thread id). Where it fails (ENOSYS, or
// EPERM under a container's seccomp profile), the files' device and inode are compared
// instead, which tells sockets and pipes apart but not two anonymous-inode files (eventfds,
// timerfds); fstat also tells whether `theirs` was closed. errno is left as it was.
inline bool same_open_file(int theirs, int ours) noexcept {
    const int saved_errno = errno;
    const long self = ::syscall(__NR_gettid);
    const long r = ::syscall(__NR_kcmp, self, self, KCMP_FILE, theirs, ours);
    bool same = r == 0;
    if (r < 0) {
        struct stat a {};
        struct stat b {};
        same = ::fstat(theirs, &a) == 0 && ::fstat(ours, &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
    }
    errno = saved_errno;
    return same;
}

/// Waits until a watched descriptor is readable (or writable) *now*: level-triggered, unlike
/// a socket's wait_readable. A library that reads its descriptor itself may leave data
/// queued (libpq reads at most its buffer), and no new edge would come for it; so the first
/// try asks the kernel with poll() instead of trusting what the loop saw. If that says "not
/// yet", the operation waits for the next edge, which ends it without another poll.
///
/// The first try also checks that the library's descriptor still names the file conet
/// watches: a library that reconnects closes its socket and opens another under the same
/// number, and the duplicate would keep watching the old one for ever.
template <direction Dir>
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] level_wait_op;
template <direction Dir>
class level_wait_op : public io_awaiter<level_wait_op<Dir>, Dir> {
public:
    level_wait_op(descriptor& d, int theirs, std::error_code* out) noexcept
        : io_awaiter<level_wait_op<Dir>, Dir>(out), d_(&d), theirs_(theirs) {}

    bool must_wait() noexcept { return false; } // the try is the poll
    bool try_once() noexcept {
        if (polled_) return true; // an edge in this direction woke it
        polled_ = true;
        const int ours = d_->native_handle();
        if (ours >= 0 && !same_open_file(theirs_, ours)) {
            this->ec = make_error_code(error::descriptor_replaced);
            return true;
        }
        pollfd p{ours, Dir == direction::read ? short{POLLIN} : short{POLLOUT}, 0};
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
    int theirs_; // the library's number for the file
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
/// on the reactor that first used it (leave_reactor() before using it on another).
///
/// A wait that begins after the library closed its descriptor, or reused the number for
/// another file (a reconnection), fails with conet::error::descriptor_replaced: make a new
/// watched_fd for the new descriptor. A wait already in progress is not told; close() ends it.
/// As with sockets, do not move a watched_fd while a wait on it is in progress (keep many in
/// a std::list or behind std::unique_ptr, not in a std::vector that may grow meanwhile).
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
        // Never 0, 1 or 2: with those closed (a daemon), the program's standard streams would
        // become the library's connection.
        const int own = fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (own < 0) {
            ec = detail::errno_code(fd < 0 ? EBADF : errno);
            return;
        }
        static_cast<descriptor&>(*this) = descriptor(own);
        theirs_ = fd;
    }
    watched_fd(watched_fd&&) noexcept = default;
    watched_fd& operator=(watched_fd&&) noexcept = default;

    /// True until close() (or a move out of this object).
    using descriptor::is_open;
    /// Stops watching: closes conet's duplicate (the caller's descriptor stays open). Waits
    /// in progress resume with conet::error::closed.
    using descriptor::close;
    /// Leaves the reactor that used it (unregistering it), so that another reactor can use it.
    using descriptor::leave_reactor;

    // (The waits are templates only so that they are compiled where they are awaited, not in
    // every file that includes conet.hpp.)

    /// Waits until the descriptor is readable (or at end of file, hung up, in error): ends at
    /// once if it is readable now.
    template <class = void>
    detail::level_wait_op<detail::direction::read> wait_readable() noexcept {
        return {*this, theirs_, nullptr};
    }
    template <class = void>
    detail::level_wait_op<detail::direction::read> wait_readable(std::error_code& ec) noexcept {
        return {*this, theirs_, &ec};
    }
    /// Waits until the descriptor is writable: ends at once if it is writable now.
    template <class = void>
    detail::level_wait_op<detail::direction::write> wait_writable() noexcept {
        return {*this, theirs_, nullptr};
    }
    template <class = void>
    detail::level_wait_op<detail::direction::write> wait_writable(std::error_code& ec) noexcept {
        return {*this, theirs_, &ec};
    }

private:
    int theirs_ = -1; // the library's number for the file, checked at each wait
};

} // namespace conet

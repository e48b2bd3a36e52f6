// conet/signal.hpp - awaiting POSIX signals (SIGINT, SIGTERM, ...) on the reactor.
//
//     conet::signal_set signals{SIGINT, SIGTERM};   // before any thread is started
//     int which = co_await signals.wait();            // a Ctrl-C is now just an event
//
// A signal_set blocks its signals for the calling thread (threads started afterwards inherit
// that) and receives them through a signalfd, so no handler runs at an awkward moment.
// Create it before starting other threads: a thread that does not block the signals would
// receive them the ordinary way.
//
// Destroying it, on the thread that created it, unblocks only those of its signals that no
// other live signal_set of that thread still blocks and that the thread had not blocked
// before conet did (first consuming any of them still pending); the rest of the mask is left
// as it is, so sets may be destroyed in any order. Destroyed on another thread, it closes its
// signalfd and changes no mask (a thread's mask can only be changed by that thread): its
// signals stay blocked on the creating thread.
#pragma once

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <initializer_list>
#include <span>
#include <string>
#include <system_error>

#include "detail/atomic.hpp"
#include "detail/io_awaiter.hpp"
#include "error.hpp"
#include "reactor.hpp"

namespace conet {

namespace detail {

// What the live signal_sets of one thread have done to its signal mask (the mask is per
// thread, so is this).
struct thread_signals {
    // Per signal number: how many live signal_sets of this thread block it, and whether the
    // thread had it blocked already before the first of them did (then it stays blocked).
    unsigned users[NSIG] = {};
    bool blocked_before[NSIG] = {};
    // Tells this thread from every other, even one that has ended (a new thread may get an
    // ended one's pthread_t, and its thread_local objects at the same addresses).
    unsigned long long id = last_id.fetch_add(1, memory_order_relaxed) + 1;

    static inline atomic<unsigned long long> last_id{0};
};

inline thread_signals& this_thread_signals() noexcept {
    thread_local thread_signals signals;
    return signals;
}

/// Reads one signalfd_siginfo: yields the signal number.
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] signal_wait_op;
class signal_wait_op : public io_awaiter<signal_wait_op, direction::read> {
public:
    signal_wait_op(descriptor& d, std::error_code* out) noexcept : io_awaiter(out), d_(&d) {}

    bool try_once() noexcept {
        signalfd_siginfo info{};
        const auto n =
            retry_on_eintr([&] { return ::read(d_->native_handle(), &info, sizeof info); });
        if (n < 0) {
            if (would_block(errno)) return false;
            ec = errno_code(errno);
            return true;
        }
        signal_ = static_cast<int>(info.ssi_signo);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    int result() const noexcept { return signal_; }
    int failed_result() const noexcept { return 0; }
    std::string describe() const { return "wait for signal"; }

private:
    descriptor* d_;
    int signal_ = 0;
};

} // namespace detail

/// A set of signals delivered as events: `co_await signals.wait()` yields the next one.
class signal_set : public detail::descriptor {
public:
    /// Blocks `signals` for this thread and opens a signalfd for them. Throws
    /// std::system_error (invalid_argument for a signal number that does not exist, and for
    /// SIGKILL and SIGSTOP, which no program can block or catch).
    explicit signal_set(std::initializer_list<int> signals)
        : signal_set(std::span<const int>(signals.begin(), signals.size())) {}
    /// The same, for a list of signals known at run time.
    explicit signal_set(std::span<const int> signals) {
        sigemptyset(&signals_);
        for (int s : signals) {
            if (s == SIGKILL || s == SIGSTOP) // the kernel would ignore them silently
                detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                                    "signal_set: signal " + std::to_string(s) +
                                        " cannot be caught (SIGKILL and SIGSTOP never are)");
            if (sigaddset(&signals_, s) < 0)
                detail::throw_error(detail::errno_code(errno),
                                    "signal_set: signal " + std::to_string(s));
        }
        sigset_t before;
        if (const int err = ::pthread_sigmask(SIG_BLOCK, &signals_, &before))
            detail::throw_error(detail::errno_code(err), "pthread_sigmask");
        const int fd = ::signalfd(-1, &signals_, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) {
            const auto ec = detail::errno_code(errno);
            ::pthread_sigmask(SIG_SETMASK, &before, nullptr); // nothing else changed it since
            detail::throw_error(ec, "signalfd");
        }
        static_cast<descriptor&>(*this) = descriptor(fd);
        detail::thread_signals& thread = detail::this_thread_signals();
        thread_ = thread.id;
        for (int s = 1; s < NSIG; ++s)
            if (sigismember(&signals_, s) == 1 && thread.users[s]++ == 0)
                thread.blocked_before[s] = sigismember(&before, s) == 1;
    }

    signal_set(const signal_set&) = delete;
    signal_set& operator=(const signal_set&) = delete;

    /// Closes the signalfd and unblocks the signals that nothing else on this thread keeps
    /// blocked (see the top of the file). Those of them that arrived and were not waited for
    /// are consumed first: unblocked while pending, they would be delivered the ordinary way
    /// (a second Ctrl-C during a graceful shutdown would kill the process). A signal another
    /// set of this thread still blocks is left pending for it. (One sent to the whole process
    /// while this set goes may still be taken from a set of the same signal on another
    /// thread: the consuming cannot tell whom it was for.)
    ~signal_set() {
        close();
        detail::thread_signals& thread = detail::this_thread_signals();
        if (thread_ != thread.id) return; // not the creator's thread: its mask is out of reach
        sigset_t release;
        sigemptyset(&release);
        bool any = false;
        for (int s = 1; s < NSIG; ++s)
            if (sigismember(&signals_, s) == 1 && --thread.users[s] == 0 &&
                !thread.blocked_before[s]) {
                sigaddset(&release, s);
                any = true;
            }
        if (!any) return;
        // sigtimedwait, not a read of the signalfd: that would take any of the set's signals,
        // also one another set still waits for.
        const int saved_errno = errno;
        const timespec now{};
        while (::sigtimedwait(&release, nullptr, &now) > 0 || errno == EINTR) {
        }
        ::pthread_sigmask(SIG_UNBLOCK, &release, nullptr);
        errno = saved_errno;
    }

    /// Waits for one of the signals and yields its number (SIGINT, SIGTERM, ...).
    detail::signal_wait_op wait() noexcept { return {*this, nullptr}; }
    detail::signal_wait_op wait(std::error_code& ec) noexcept { return {*this, &ec}; }

private:
    sigset_t signals_{};
    unsigned long long thread_ = 0; // the creating thread's thread_signals::id
};

} // namespace conet

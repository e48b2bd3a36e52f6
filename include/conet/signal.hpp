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
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
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

/// Reads an eventfd: yields its count (how many times it was written since the last read).
class eventfd_wait_op : public io_awaiter<eventfd_wait_op, direction::read> {
public:
    eventfd_wait_op(descriptor& d, std::error_code* out) noexcept : io_awaiter(out), d_(&d) {}

    bool try_once() noexcept {
        std::uint64_t count = 0;
        const auto n =
            retry_on_eintr([&] { return ::read(d_->native_handle(), &count, sizeof count); });
        if (n < 0) {
            if (would_block(errno)) return false;
            ec = errno_code(errno);
            return true;
        }
        count_ = count;
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    std::uint64_t result() const noexcept { return count_; }
    std::uint64_t failed_result() const noexcept { return 0; }
    std::string describe() const { return "wait for a relayed signal"; }

private:
    descriptor* d_;
    std::uint64_t count_ = 0;
};

/// Relays signals to a reactor through a process-wide handler (as Asio's signal_set does),
/// for reactor_pool::stop_on. Unlike a signal_set it changes no thread's signal mask, so it
/// works whatever threads exist: the kernel runs the handler on any thread that does not
/// block the signal (one of the program's, started before the pool, included), and the
/// handler only writes to an eventfd, which is async-signal-safe; a reactor waits on it.
///
/// While it lives it replaces the signals' dispositions (with SA_RESTART); its destructor
/// restores them, then waits for a handler still running on another thread before closing
/// the eventfd, so that a late handler never writes to a reused descriptor number. A signal
/// is relayed to one relay at a time: a second for the same signal fails with
/// std::errc::device_or_resource_busy.
class signal_relay : public descriptor {
public:
    // (A pointer and a count, not a std::span: making a span from a pointer checks the
    // iterator concepts, which cost every file that includes conet.hpp.)
    signal_relay(const int* signals, std::size_t count) {
        sigemptyset(&signals_);
        for (std::size_t i = 0; i < count; ++i)
            if (const int s = signals[i];
                s == SIGKILL || s == SIGSTOP || sigaddset(&signals_, s) < 0)
                throw_error(std::make_error_code(std::errc::invalid_argument),
                            "signal_relay: signal " + std::to_string(s));
        const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) throw_error(errno_code(errno), "eventfd");
        static_cast<descriptor&>(*this) = descriptor(fd);
        for (int s = 1; s < NSIG; ++s) {
            if (sigismember(&signals_, s) != 1) continue;
            int none = 0;
            if (!target(s).compare_exchange_strong(none, fd + 1)) {
                release(s); // those claimed so far
                throw_error(std::make_error_code(std::errc::device_or_resource_busy),
                            "signal_relay: signal " + std::to_string(s) +
                                " is already relayed (another running pool stops on it)");
            }
            struct sigaction action {};
            action.sa_handler = &signal_relay::handle;
            sigemptyset(&action.sa_mask);
            action.sa_flags = SA_RESTART;
            if (::sigaction(s, &action, &previous_[s]) < 0) {
                const auto ec = errno_code(errno);
                target(s).store(0);
                release(s);
                throw_error(ec, "sigaction");
            }
        }
        claimed_ = NSIG;
    }
    signal_relay(const signal_relay&) = delete;
    signal_relay& operator=(const signal_relay&) = delete;
    ~signal_relay() { release(claimed_); }

    /// Waits until one of the signals has arrived (since the relay was made, or the last wait).
    eventfd_wait_op wait(std::error_code& ec) noexcept { return {*this, &ec}; }

private:
    // Restores the dispositions of the signals below `end` and forgets their target; then
    // waits out a handler that read the target before it was forgotten.
    void release(int end) noexcept {
        for (int s = 1; s < end; ++s) {
            if (sigismember(&signals_, s) != 1) continue;
            ::sigaction(s, &previous_[s], nullptr);
            target(s).store(0);
        }
        while (handlers_running().load() != 0)
            ::sched_yield();
    }

    static void handle(int s) noexcept {
        const int saved_errno = errno;
        handlers_running().fetch_add(1);
        const int fd = target(s).load() - 1;
        if (fd >= 0) {
            const std::uint64_t one = 1;
            [[maybe_unused]] const auto n = ::write(fd, &one, sizeof one);
        }
        handlers_running().fetch_sub(1);
        errno = saved_errno;
    }

    // Per signal number: the eventfd of the relay that holds it, plus one (0: none). Zero
    // is constant-initialized: no guard variable for the handler to meet.
    static atomic<int>& target(int s) noexcept {
        static atomic<int> targets[NSIG];
        return targets[s];
    }
    static atomic<int>& handlers_running() noexcept {
        static atomic<int> count{0};
        return count;
    }

    sigset_t signals_{};
    struct sigaction previous_[NSIG] = {};
    int claimed_ = 0; // signals below it are claimed (all of them once constructed)
};

} // namespace detail

/// A set of signals delivered as events: `co_await signals.wait()` yields the next one.
class signal_set : public detail::descriptor {
public:
    /// Blocks `signals` for this thread and opens a signalfd for them. Throws
    /// std::system_error (invalid_argument for a signal number that does not exist, and for
    /// SIGKILL and SIGSTOP, which no program can block or catch).
    explicit signal_set(std::initializer_list<int> signals)
        : signal_set(signals.begin(), signals.size()) {}
    /// The same, for a list of signals known at run time.
    explicit signal_set(std::span<const int> signals)
        : signal_set(signals.data(), signals.size()) {}

private:
    // What both constructors do (a pointer and a count, for the reason signal_relay says).
    signal_set(const int* signals, std::size_t count) {
        sigemptyset(&signals_);
        for (std::size_t i = 0; i < count; ++i) {
            const int s = signals[i];
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

public:
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
    template <class Op = detail::signal_wait_op>
    Op wait() noexcept {
        return {*this, nullptr};
    }
    template <class Op = detail::signal_wait_op>
    Op wait(std::error_code& ec) noexcept {
        return {*this, &ec};
    }

private:
    sigset_t signals_{};
    unsigned long long thread_ = 0; // the creating thread's thread_signals::id
};

} // namespace conet

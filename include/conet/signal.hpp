// conet/signal.hpp - awaiting POSIX signals (SIGINT, SIGTERM, ...) on the reactor.
//
//     conet::signal_set signals{SIGINT, SIGTERM};   // before any thread is started
//     int which = co_await signals.wait();            // a Ctrl-C is now just an event
//
// A signal_set blocks its signals for the calling thread (threads started afterwards inherit
// that) and receives them through a signalfd, so no handler runs at an awkward moment.
// Destroying it restores the thread's previous signal mask. Create it before starting other
// threads: a thread that does not block the signals would receive them the ordinary way.
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

#include "detail/io_awaiter.hpp"
#include "error.hpp"
#include "reactor.hpp"

namespace conet {

namespace detail {

/// Reads one signalfd_siginfo: yields the signal number.
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
    /// std::system_error (invalid_argument for a signal number that does not exist).
    explicit signal_set(std::initializer_list<int> signals)
        : signal_set(std::span<const int>(signals.begin(), signals.size())) {}
    /// The same, for a list of signals known at run time.
    explicit signal_set(std::span<const int> signals) {
        sigset_t set;
        sigemptyset(&set);
        for (int s : signals)
            if (sigaddset(&set, s) < 0)
                detail::throw_error(detail::errno_code(errno),
                                    "signal_set: signal " + std::to_string(s));
        if (const int err = ::pthread_sigmask(SIG_BLOCK, &set, &previous_mask_))
            detail::throw_error(detail::errno_code(err), "pthread_sigmask");
        const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) {
            const auto ec = detail::errno_code(errno);
            ::pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
            detail::throw_error(ec, "signalfd");
        }
        static_cast<descriptor&>(*this) = descriptor(fd);
    }

    signal_set(const signal_set&) = delete;
    signal_set& operator=(const signal_set&) = delete;

    /// Closes the signalfd and restores the signal mask the thread had before. Signals that
    /// arrived and were not waited for are consumed first: unblocked while pending, they
    /// would be delivered the ordinary way (a second Ctrl-C during a graceful shutdown would
    /// kill the process).
    ~signal_set() {
        if (is_open()) {
            signalfd_siginfo info;
            while (::read(native_handle(), &info, sizeof info) == sizeof info) {
            }
        }
        close();
        ::pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
    }

    /// Waits for one of the signals and yields its number (SIGINT, SIGTERM, ...).
    detail::signal_wait_op wait() noexcept { return {*this, nullptr}; }
    detail::signal_wait_op wait(std::error_code& ec) noexcept { return {*this, &ec}; }

private:
    sigset_t previous_mask_{};
};

} // namespace conet

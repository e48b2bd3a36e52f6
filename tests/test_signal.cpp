// Tests for conet/signal.hpp: a signal sent to the process is awaited as an event.
#include <conet/conet.hpp>

#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <optional>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

TEST_CASE("a signal delivered to the process is awaited", "[signal]") {
    conet::signal_set signals{SIGUSR1, SIGUSR2}; // before run_bounded starts its watchdog
    auto body = [](conet::signal_set& s) -> conet::task<int> {
        conet::reactor::current()->spawn([]() -> conet::task<> {
            co_await conet::sleep_for(std::chrono::milliseconds(10));
            ::kill(::getpid(), SIGUSR2); // to the process, as Ctrl-C or `kill` would
        }());
        co_return co_await s.wait();
    };
    CHECK(run_bounded(body(signals)) == SIGUSR2);
}

TEST_CASE("a signal wait can be bounded and leaves the signal mask as it was", "[signal]") {
    sigset_t before;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &before);
    {
        conet::signal_set signals{SIGUSR1};
        auto body = [](conet::signal_set& s) -> conet::task<> {
            std::error_code ec;
            co_await conet::with_timeout(s.wait(ec), std::chrono::milliseconds(10));
            CHECK(ec == std::errc::timed_out);
        };
        run_bounded(body(signals));
    }
    sigset_t after;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &after);
    CHECK(sigismember(&after, SIGUSR1) == sigismember(&before, SIGUSR1));
    CHECK_THROWS_AS(conet::signal_set({12345}), std::system_error);
    // SIGKILL and SIGSTOP cannot be blocked or caught: a set of them could never fire.
    CHECK_THROWS_WITH(conet::signal_set({SIGUSR1, SIGKILL}),
                      "signal_set: signal 9 cannot be caught (SIGKILL and SIGSTOP never are): "
                      "Invalid argument");
    CHECK_THROWS_AS(conet::signal_set({SIGSTOP}), std::system_error);
}

namespace {
volatile std::sig_atomic_t handled = 0;
extern "C" void count_signal(int) {
    handled = handled + 1;
}
} // namespace

TEST_CASE("a signal still pending when its set goes away is consumed, not delivered", "[signal]") {
    // A second Ctrl-C during a graceful shutdown: once the mask is restored, a pending
    // signal would be delivered the ordinary way (here: to a handler that counts).
    struct sigaction action {
    }, previous{};
    action.sa_handler = count_signal;
    sigemptyset(&action.sa_mask);
    REQUIRE(::sigaction(SIGUSR1, &action, &previous) == 0);
    handled = 0;
    {
        conet::signal_set signals{SIGUSR1};
        ::pthread_kill(::pthread_self(), SIGUSR1); // pending for this thread, blocked
        ::pthread_kill(::pthread_self(), SIGUSR1); // (the same signal twice is one pending)
    }
    CHECK(handled == 0);
    ::sigaction(SIGUSR1, &previous, nullptr);
}

namespace {
// Runs `body` in a forked child process (for a scenario whose failure kills the process) and
// returns its exit status, 128 + N if signal N killed it, or -1 if it did not end within 5 s.
// The child runs only `body` (no Catch2 assertion): its return value is its exit status.
template <class F>
int exit_status_in_child(F body) {
    const pid_t child = ::fork();
    if (child < 0) return -2;
    if (child == 0) {
        int code = 99;
        try {
            code = body();
        } catch (...) {
        }
        ::_exit(code);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(child, &status, WNOHANG) != child) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(child, SIGKILL);
            ::waitpid(child, &status, 0);
            return -1;
        }
        ::usleep(1000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool blocked(int signal) {
    sigset_t mask;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    return sigismember(&mask, signal) == 1;
}
} // namespace

TEST_CASE("destroying a signal_set out of creation order keeps the other set's signals blocked",
          "[signal]") {
    // Destroying the first set must not restore the mask from before the second existed:
    // SIGUSR2 unblocked would kill the process (hence the child) instead of reaching `second`.
    const int status = exit_status_in_child([] {
        std::optional<conet::signal_set> first;
        first.emplace(std::initializer_list<int>{SIGUSR1});
        conet::signal_set second{SIGUSR2};
        first.reset();
        ::raise(SIGUSR2);
        pollfd p{second.native_handle(), POLLIN, 0};
        return ::poll(&p, 1, 1000) == 1 ? 0 : 1; // 1: SIGUSR2 lost
    });
    CHECK(status == 0); // 128 + SIGUSR2: killed by it
}

TEST_CASE("destroying a signal_set leaves a pending signal to another set of the same signal",
          "[signal]") {
    const bool usr2_blocked_before = blocked(SIGUSR2);
    conet::signal_set shutdown{SIGUSR1};
    ::pthread_kill(::pthread_self(), SIGUSR1); // pending, for `shutdown`
    {
        conet::signal_set temporary{SIGUSR1, SIGUSR2}; // a short-lived helper's set
    }
    CHECK(blocked(SIGUSR1)); // `shutdown` still needs it
    CHECK(blocked(SIGUSR2) == usr2_blocked_before);
    auto body = [](conet::signal_set& s) -> conet::task<int> {
        std::error_code ec;
        co_return co_await conet::with_timeout(s.wait(ec), std::chrono::milliseconds(500));
    };
    CHECK(run_bounded(body(shutdown)) == SIGUSR1); // 0: timed out, the signal was consumed
}

TEST_CASE("a signal the thread had blocked itself stays blocked and pending after its signal_set",
          "[signal]") {
    // Blocked before conet blocked it: the program deals with it (sigwait, say), so the set
    // neither unblocks it nor consumes it when it goes away.
    sigset_t usr1, previous;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    REQUIRE(::pthread_sigmask(SIG_BLOCK, &usr1, &previous) == 0);
    {
        conet::signal_set signals{SIGUSR1};
        ::pthread_kill(::pthread_self(), SIGUSR1);
    }
    CHECK(blocked(SIGUSR1));
    sigset_t pending;
    sigpending(&pending);
    CHECK(sigismember(&pending, SIGUSR1) == 1);
    const timespec now{};
    ::sigtimedwait(&usr1, nullptr, &now); // take it back
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

TEST_CASE("a signal_set destroyed on another thread changes no signal mask", "[signal]") {
    // Only the creating thread could unblock its signals; the destroying thread's mask is not
    // the set's to change, and here this thread has a set of its own for the same signal.
    const bool blocked_before = blocked(SIGUSR2);
    std::optional<conet::signal_set> elsewhere;
    bool made = false;
    std::thread([&] {
        try {
            elsewhere.emplace(std::initializer_list<int>{SIGUSR2});
            made = true;
        } catch (...) {
        }
    }).join();
    REQUIRE(made);
    {
        conet::signal_set mine{SIGUSR2};
        elsewhere.reset();
        CHECK(blocked(SIGUSR2)); // `mine` still needs it
    }
    CHECK(blocked(SIGUSR2) == blocked_before);
}

// Tests for conet/signal.hpp: a signal sent to the process is awaited as an event.
#include <conet/conet.hpp>

#include <pthread.h>
#include <unistd.h>

#include <csignal>

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

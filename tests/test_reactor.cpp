// Tests for conet/reactor.hpp: run, spawn, stop, post from other threads, and destruction
// with suspended coroutines (nothing leaks: frames destroyed, descriptors closed).
#include <conet/reactor.hpp>
#include <conet/tcp.hpp>
#include <conet/time.hpp>
#include <conet/udp.hpp>

#include <fcntl.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "descriptor_check.hpp"
#include "support.hpp"

using namespace conet_test;

TEST_CASE("run returns the task's value and rethrows its exception", "[reactor]") {
    conet::reactor r;
    CHECK(run_bounded(r, []() -> conet::task<int> { co_return 3; }()) == 3);
    auto thrower = []() -> conet::task<int> {
        throw std::logic_error("bad");
        co_return 0;
    };
    CHECK_THROWS_AS(run_bounded(r, thrower()), std::logic_error);
    // The reactor stays usable after a failed run.
    CHECK(run_bounded(r, []() -> conet::task<int> { co_return 4; }()) == 4);
    CHECK(conet::reactor::current() == nullptr);
}

TEST_CASE("spawned tasks run, and run() returns when none is left", "[reactor]") {
    conet::reactor r;
    std::vector<int> order;
    auto job = [&order](int id) -> conet::task<> {
        order.push_back(id);
        co_return;
    };
    r.spawn(job(1));
    r.spawn(job(2));
    CHECK(order.empty()); // spawn only schedules
    watchdog guard(r);
    r.run();
    CHECK(order.size() == 2);
}

TEST_CASE("failing spawned tasks are reported and never end run", "[reactor]") {
    conet::reactor r;
    std::vector<std::string> reported;
    r.tasks().set_failure_handler([&reported](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& error) {
            reported.push_back(error.what());
        }
    });
    auto fail = [](const char* what) -> conet::task<> {
        throw std::runtime_error(what);
        co_return;
    };
    // Two failures in one turn: neither is dropped.
    r.spawn(fail("first failure"));
    r.spawn(fail("second failure"));
    int survivor = 0;
    r.spawn([](int& out) -> conet::task<> {
        co_await conet::sleep_for(std::chrono::milliseconds(5));
        out = 1;
    }(survivor));
    watchdog guard(r);
    CHECK_NOTHROW(r.run());
    CHECK(survivor == 1);
    CHECK(reported == std::vector<std::string>{"first failure", "second failure"});
    CHECK(r.tasks().failures() == 2);
}

TEST_CASE("stop makes run throw operation_canceled", "[reactor]") {
    conet::reactor r;
    auto body = [&r]() -> conet::task<int> {
        r.stop();
        // Wait on something that never comes: only stop() can end this run.
        auto pair = co_await connected_pair();
        char byte;
        co_await pair.client.recv({&byte, 1});
        co_return 1;
    };
    try {
        run_bounded(r, body());
        FAIL("run returned");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::operation_canceled);
    }
}

TEST_CASE("post from another thread runs on the reactor's thread and wakes it", "[reactor]") {
    conet::reactor r;
    // A spawned task blocked forever keeps run() waiting in epoll_wait, with no timer to end
    // the wait: only the post's wake-up can.
    auto pair = run_bounded(r, connected_pair());
    r.spawn([](conet::tcp_stream& s) -> conet::task<> {
        char byte;
        co_await s.recv({&byte, 1});
    }(pair.client));
    const auto reactor_thread = std::this_thread::get_id();
    const pid_t reactor_tid = this_thread_id();
    std::atomic<bool> ran_on_reactor_thread{false};
    std::atomic<bool> ran{false};
    bool was_asleep = false;
    bool woken = false; // checked after join: Catch2 assertions are for the main thread only
    std::thread poster([&] {
        // Posts only once the reactor sleeps in epoll_wait, so that the wake-up is what runs
        // the function (posted before, it would run on the way in, without one).
        was_asleep = holds_within([&] { return in_epoll_wait(reactor_tid); });
        r.post([&] {
            ran_on_reactor_thread = std::this_thread::get_id() == reactor_thread;
            ran = true;
            r.stop();
        });
        // The watchdog: stop() wakes the reactor too, so it is called only if the post has
        // not run the function in a time far longer than a wake-up takes.
        woken = holds_within([&] { return ran.load(); });
        if (!woken) r.stop();
    });
    r.run();
    poster.join();
    CHECK(was_asleep);
    CHECK(woken);
    CHECK(ran_on_reactor_thread);
}

TEST_CASE("destroying the reactor destroys its frames and detaches sockets it does not own",
          "[reactor]") {
    const std::size_t before = open_descriptors().size();
    bool frame_destroyed = false;
    bool nested_destroyed = false;
    conet::tcp_listener outside; // owned by the test, registered with the reactor
    {
        conet::reactor r;
        auto nested = [](bool* flag, conet::tcp_stream& s) -> conet::task<> {
            destroy_flag f{flag};
            conet::reactor::current()->stop(); // takes effect once this task is suspended
            char byte;
            co_await s.recv({&byte, 1}); // never completes
        };
        auto owner = [&](bool* flag) -> conet::task<> {
            destroy_flag f{flag};
            auto pair = co_await connected_pair();
            co_await nested(&nested_destroyed, pair.server);
        };
        r.spawn(owner(&frame_destroyed));
        outside = conet::tcp_listener::bind(any_loopback_port());
        r.spawn([](conet::tcp_listener& l) -> conet::task<> {
            auto conn = co_await l.accept(); // never completes
        }(outside));
        watchdog guard(r, 2s);
        r.run(); // until the nested task, suspended, has called stop()
        CHECK_FALSE(frame_destroyed);
        CHECK(outside.is_open());
    }
    CHECK(frame_destroyed);
    CHECK(nested_destroyed);
    // The listener belongs to the test, not to the reactor: detached, still open.
    CHECK(outside.is_open());
    outside.close();
    CHECK(open_descriptors().size() == before);
}

TEST_CASE("a reactor destroyed in a task of another reactor closes the sockets its frames own",
          "[reactor][threads]") {
    // Reactor B, on its own thread, runs a task whose socket has been used (it sent at once,
    // so B claimed it without registering it) and which is suspended when B stops. B is then
    // destroyed by a task of reactor A: the task's frame goes, and its socket closes on A's
    // thread. The close took that for a socket of a reactor that runs on another thread, and
    // stopped the program (a review's D2; the same held for a socket that had waited on B).
    auto receiver = conet::udp_socket::bind(any_loopback_port());
    bool frame_destroyed = false;
    auto b = std::make_unique<conet::reactor>();
    std::thread b_thread([&] {
        b->spawn([](conet::endpoint to, bool* flag) -> conet::task<> {
            destroy_flag f{flag};
            auto s = conet::udp_socket::open();
            s.connect(to);
            co_await s.send("x");              // completes at once: B claims the socket
            conet::reactor::current()->stop(); // takes effect once this task is suspended
            co_await conet::sleep_for(1h);
        }(receiver.local_endpoint(), &frame_destroyed));
        watchdog guard(*b, 5s);
        b->run();
    });
    b_thread.join();
    REQUIRE_FALSE(frame_destroyed);
    conet::reactor a;
    run_bounded(a, [](std::unique_ptr<conet::reactor>& b) -> conet::task<> {
        b.reset(); // on A's thread, while A runs
        co_return;
    }(b));
    CHECK(frame_destroyed);
}

TEST_CASE("an operation that must wait outside any reactor reports no_reactor", "[reactor]") {
    conet::reactor r;
    auto pair = run_bounded(r, connected_pair());
    // Drive the awaiter by hand, outside run(): the socket has no data, so it must wait.
    std::error_code ec;
    char byte;
    auto op = pair.client.recv({&byte, 1}, ec);
    REQUIRE_FALSE(op.await_ready());
    CHECK_FALSE(op.await_suspend(std::noop_coroutine()));
    op.await_resume();
    CHECK(ec == conet::error::no_reactor);
}

TEST_CASE("a reactor cannot run inside another on the same thread", "[reactor]") {
    conet::reactor outer;
    conet::reactor inner;
    auto body = [&inner]() -> conet::task<> {
        inner.run([]() -> conet::task<> { co_return; }());
        co_return;
    };
    CHECK_THROWS_AS(run_bounded(outer, body()), std::logic_error);
}

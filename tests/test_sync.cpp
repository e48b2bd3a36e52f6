// Tests for conet/mutex.hpp, conet/semaphore.hpp and conet/event.hpp: first come first
// served, cancellation while waiting (before and after the mutex or a permit was handed to
// the waiter), and use from the wrong reactor.
#include <conet/conet.hpp>
#include <conet/event.hpp>
#include <conet/mutex.hpp>
#include <conet/semaphore.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <system_error>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

namespace {

// Runs `use` on a second reactor, on its own thread, while `home` runs `on_home` (which has
// bound the primitive to `home` first); returns once both are done.
conet::task<> on_other_reactor(std::function<conet::task<>()> use) {
    std::atomic<bool> done{false};
    conet::reactor other;
    std::thread t([&] {
        other.run(use());
        done = true;
    });
    while (!done)
        co_await conet::sleep_for(1ms);
    t.join();
}

bool is_code(const std::system_error& e, std::error_code ec) {
    return e.code() == ec;
}

} // namespace

TEST_CASE("mutex hands itself to 100 waiters first come first served", "[sync][mutex]") {
    auto body = []() -> conet::task<> {
        conet::mutex m;
        std::vector<int> order;
        int inside = 0;
        int overlaps = 0;
        auto first = co_await m.lock();
        CHECK(m.locked());
        {
            conet::task_group g;
            for (int i = 0; i < 100; ++i)
                g.spawn([](conet::mutex& m, std::vector<int>& order, int& inside, int& overlaps,
                           int i) -> conet::task<> {
                    auto lock = co_await m.lock();
                    if (++inside != 1) ++overlaps;
                    order.push_back(i);
                    co_await conet::yield(); // held across a suspension
                    --inside;
                }(m, order, inside, overlaps, i));
            co_await conet::yield(); // all wait, in the order spawned
            auto refused = m.try_lock();
            CHECK_FALSE(refused.owns_lock());
            first.unlock();
            auto jumped = m.try_lock(); // handed to the first waiter: nobody jumps the queue
            CHECK_FALSE(jumped.owns_lock());
            co_await g.join();
        }
        REQUIRE(order.size() == 100);
        for (int i = 0; i < 100; ++i)
            if (order[std::size_t(i)] != i)
                FAIL("waiter " << i << " came " << order[std::size_t(i)]);
        CHECK(overlaps == 0);
        CHECK_FALSE(m.locked());
    };
    run_bounded(body());
}

TEST_CASE("mutex waiter cancelled while waiting leaves the queue", "[sync][mutex]") {
    auto body = []() -> conet::task<> {
        conet::mutex m;
        auto held = co_await m.lock();
        bool cancelled = false;
        bool second_locked = false;
        conet::task_group g;
        auto first = g.spawn([](conet::mutex& m, bool& cancelled) -> conet::task<> {
            try {
                auto lock = co_await m.lock();
                FAIL("the cancelled waiter holds the mutex");
            } catch (const std::system_error& e) {
                cancelled = is_code(e, std::make_error_code(std::errc::operation_canceled));
            }
        }(m, cancelled));
        g.spawn([](conet::mutex& m, bool& locked) -> conet::task<> {
            auto lock = co_await m.lock();
            locked = true;
        }(m, second_locked));
        co_await conet::yield();
        first.cancel();
        co_await conet::yield();
        CHECK(cancelled);
        held.unlock(); // goes to the second waiter, the first having left
        co_await g.join();
        CHECK(second_locked);
        CHECK_FALSE(m.locked());

        // Bounded by with_timeout: it fails with timed_out and holds nothing.
        auto again = co_await m.lock();
        bool timed_out = false;
        try {
            auto lock = co_await conet::with_timeout(m.lock(), 5ms);
        } catch (const std::system_error& e) {
            timed_out = e.code() == std::errc::timed_out;
        }
        CHECK(timed_out);
        again.unlock();
        CHECK_FALSE(m.locked());
    };
    run_bounded(body());
}

TEST_CASE("mutex handed to a waiter cancelled before it resumes goes to the next",
          "[sync][mutex]") {
    auto body = []() -> conet::task<> {
        conet::mutex m;
        auto held = co_await m.lock();
        bool first_held = false;
        bool second_held = false;
        conet::task_group g;
        auto first = g.spawn([](conet::mutex& m, bool& held) -> conet::task<> {
            auto lock = co_await m.lock();
            held = true;
        }(m, first_held));
        g.spawn([](conet::mutex& m, bool& held) -> conet::task<> {
            auto lock = co_await m.lock();
            held = true;
        }(m, second_held));
        co_await conet::yield();
        held.unlock();  // handed to the first: it resumes at the next turn...
        first.cancel(); // ...but is cancelled before, and passes it on
        co_await g.join();
        CHECK_FALSE(first_held);
        CHECK(second_held);
        CHECK_FALSE(m.locked());
    };
    conet::reactor r;
    run_bounded(r, body());
}

TEST_CASE("mutex used from another reactor fails with wrong_reactor", "[sync][mutex]") {
    conet::mutex m;
    std::error_code lock_ec;
    bool try_lock_refused = false;
    auto body = [&]() -> conet::task<> {
        auto held = co_await m.lock(); // binds it here
        co_await on_other_reactor([&]() -> conet::task<> {
            try {
                auto g = m.try_lock();
            } catch (const std::system_error& e) {
                try_lock_refused = e.code() == conet::error::wrong_reactor;
            }
            auto g = co_await m.lock(lock_ec);
            CHECK_FALSE(g.owns_lock());
        });
    };
    run_bounded(body());
    CHECK(try_lock_refused);
    CHECK(lock_ec == conet::error::wrong_reactor);
}

TEST_CASE("semaphore counts permits and serves waiters first come first served",
          "[sync][semaphore]") {
    auto body = []() -> conet::task<> {
        conet::semaphore s(3);
        int inside = 0;
        int most = 0;
        std::vector<int> order;
        {
            conet::task_group g;
            for (int i = 0; i < 100; ++i)
                g.spawn([](conet::semaphore& s, int& inside, int& most, std::vector<int>& order,
                           int i) -> conet::task<> {
                    co_await s.acquire();
                    order.push_back(i);
                    most = std::max(most, ++inside);
                    co_await conet::yield();
                    --inside;
                    s.release();
                }(s, inside, most, order, i));
            co_await g.join();
        }
        CHECK(most == 3);
        REQUIRE(order.size() == 100);
        for (int i = 0; i < 100; ++i)
            if (order[std::size_t(i)] != i)
                FAIL("waiter " << i << " came " << order[std::size_t(i)]);
        CHECK(s.available() == 3);
        CHECK(s.try_acquire());
        s.release();

        // release(n): one permit to each waiter, the rest free.
        conet::semaphore none(0);
        int woken = 0;
        {
            conet::task_group g;
            for (int i = 0; i < 2; ++i)
                g.spawn([](conet::semaphore& s, int& woken) -> conet::task<> {
                    co_await s.acquire();
                    ++woken;
                }(none, woken));
            co_await conet::yield();
            none.release(5);
            CHECK(none.available() == 3);
            co_await g.join();
        }
        CHECK(woken == 2);
        none.release(1'000'000'000);
        CHECK(none.available() == 1'000'000'003);
    };
    run_bounded(body());
}

TEST_CASE("semaphore released past the largest count is an error, not a wrap",
          "[sync][semaphore]") {
    auto body = []() -> conet::task<> {
        conet::semaphore s(1);
        // A wrapped count would be 0: the next acquire would wait for ever.
        CHECK_THROWS_AS(s.release(static_cast<std::size_t>(-1)), std::overflow_error);
        CHECK(s.available() == 1); // unchanged
        co_await s.acquire();
        CHECK(s.available() == 0);
        s.release(static_cast<std::size_t>(-1)); // the largest count itself is fine
        CHECK(s.available() == static_cast<std::size_t>(-1));
        CHECK_THROWS_AS(s.release(), std::overflow_error);
        // Permits handed to waiters do not count: only what is left over is added.
        conet::semaphore full(static_cast<std::size_t>(-1) - 1);
        CHECK_NOTHROW(full.release());
        CHECK_THROWS_AS(full.release(), std::overflow_error);
    };
    run_bounded(body());
}

TEST_CASE("semaphore waiter cancelled while waiting holds no permit", "[sync][semaphore]") {
    auto body = []() -> conet::task<> {
        conet::semaphore s(1);
        co_await s.acquire();
        CHECK_FALSE(s.try_acquire());
        bool waiting_cancelled = false;
        bool handed_got = false;
        bool last_got = false;
        conet::task_group g;
        auto waiting = g.spawn([](conet::semaphore& s, bool& cancelled) -> conet::task<> {
            std::error_code ec;
            co_await s.acquire(ec);
            cancelled = ec == std::errc::operation_canceled;
        }(s, waiting_cancelled));
        auto handed = g.spawn([](conet::semaphore& s, bool& got) -> conet::task<> {
            co_await s.acquire();
            got = true;
        }(s, handed_got));
        g.spawn([](conet::semaphore& s, bool& got) -> conet::task<> {
            co_await s.acquire();
            got = true;
            s.release();
        }(s, last_got));
        co_await conet::yield();
        waiting.cancel(); // cancelled while it waits
        co_await conet::yield();
        CHECK(waiting_cancelled);
        s.release();     // handed to the second...
        handed.cancel(); // ...cancelled before it resumes: the permit goes to the third
        co_await g.join();
        CHECK_FALSE(handed_got);
        CHECK(last_got);
        CHECK(s.available() == 1);

        co_await s.acquire();
        bool timed_out = false;
        try {
            co_await conet::with_timeout(s.acquire(), 5ms);
        } catch (const std::system_error& e) {
            timed_out = e.code() == std::errc::timed_out;
        }
        CHECK(timed_out);
        CHECK(s.available() == 0);
        s.release();
        CHECK(s.available() == 1);
    };
    run_bounded(body());
}

TEST_CASE("semaphore used from another reactor fails with wrong_reactor", "[sync][semaphore]") {
    conet::semaphore s(1);
    std::error_code acquire_ec;
    bool release_refused = false;
    auto body = [&]() -> conet::task<> {
        co_await s.acquire(); // binds it here
        co_await on_other_reactor([&]() -> conet::task<> {
            try {
                s.release();
            } catch (const std::system_error& e) {
                release_refused = e.code() == conet::error::wrong_reactor;
            }
            co_await s.acquire(acquire_ec);
        });
        s.release();
    };
    run_bounded(body());
    CHECK(release_refused);
    CHECK(acquire_ec == conet::error::wrong_reactor);
    CHECK(s.available() == 1);
}

TEST_CASE("event wakes every waiter, in order, and reset makes waits wait", "[sync][event]") {
    auto body = []() -> conet::task<> {
        conet::event e;
        std::vector<int> order;
        {
            conet::task_group g;
            for (int i = 0; i < 100; ++i)
                g.spawn([](conet::event& e, std::vector<int>& order, int i) -> conet::task<> {
                    co_await e.wait();
                    order.push_back(i);
                }(e, order, i));
            co_await conet::yield();
            CHECK(order.empty());
            e.set();
            e.reset(); // those woken still resume
            co_await g.join();
        }
        REQUIRE(order.size() == 100);
        for (int i = 0; i < 100; ++i)
            if (order[std::size_t(i)] != i)
                FAIL("waiter " << i << " came " << order[std::size_t(i)]);
        CHECK_FALSE(e.is_set());
        e.set();
        co_await e.wait(); // set: does not wait
        e.reset();
        bool timed_out = false;
        try {
            co_await conet::with_timeout(e.wait(), 5ms);
        } catch (const std::system_error& ex) {
            timed_out = ex.code() == std::errc::timed_out;
        }
        CHECK(timed_out);
    };
    run_bounded(body());
}

TEST_CASE("event waiter cancelled while waiting fails with operation_canceled", "[sync][event]") {
    auto body = []() -> conet::task<> {
        conet::event e;
        std::error_code first_ec;
        bool second_woken = false;
        conet::task_group g;
        auto first = g.spawn([](conet::event& e, std::error_code& ec) -> conet::task<> {
            co_await e.wait(ec);
        }(e, first_ec));
        g.spawn([](conet::event& e, bool& woken) -> conet::task<> {
            co_await e.wait();
            woken = true;
        }(e, second_woken));
        co_await conet::yield();
        first.cancel();
        co_await conet::yield();
        CHECK(first_ec == std::errc::operation_canceled);
        e.set();
        co_await g.join();
        CHECK(second_woken);
    };
    run_bounded(body());
}

TEST_CASE("event used from another reactor fails with wrong_reactor", "[sync][event]") {
    conet::event e;
    std::error_code wait_ec;
    bool set_refused = false;
    auto body = [&]() -> conet::task<> {
        e.reset(); // binds it here
        co_await on_other_reactor([&]() -> conet::task<> {
            try {
                e.set();
            } catch (const std::system_error& ex) {
                set_refused = ex.code() == conet::error::wrong_reactor;
            }
            co_await e.wait(wait_ec);
        });
    };
    run_bounded(body());
    CHECK(set_refused);
    CHECK(wait_ec == conet::error::wrong_reactor);
    CHECK_FALSE(e.is_set());
}

TEST_CASE("two reactors using a fresh primitive at once: one claims it, the other is refused",
          "[sync][event]") {
    // The claim is made by the first use. Two first uses at once on two reactors' threads:
    // exactly one binds the event, the other fails with wrong_reactor before touching it
    // (a plain pointer let both bind, and both go on: ThreadSanitizer saw the race).
    int both_claimed = 0;
    int none_claimed = 0;
    for (int round = 0; round < 100; ++round) {
        conet::event e;
        std::atomic<int> ready{0};
        std::atomic<int> claimed{0};
        std::atomic<int> refused{0};
        auto use = [&]() {
            conet::reactor r;
            r.run([](conet::event& e, std::atomic<int>& ready, std::atomic<int>& claimed,
                     std::atomic<int>& refused) -> conet::task<> {
                ready.fetch_add(1);
                while (ready.load() < 2) {
                } // (both reactors run: the uses overlap as much as they can)
                try {
                    e.set();
                    claimed.fetch_add(1);
                } catch (const std::system_error& ex) {
                    if (ex.code() == conet::error::wrong_reactor) refused.fetch_add(1);
                }
                // Both reactors live until both have tried (a reactor destroyed lets go of
                // what it claimed).
                ready.fetch_add(1);
                while (ready.load() < 4) {
                }
                co_return;
            }(e, ready, claimed, refused));
        };
        std::thread a(use);
        std::thread b(use);
        a.join();
        b.join();
        if (claimed.load() == 2) ++both_claimed;
        if (claimed.load() == 0 || refused.load() != 1) ++none_claimed;
    }
    CHECK(both_claimed == 0);
    CHECK(none_claimed == 0);
}

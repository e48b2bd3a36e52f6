// Tests for conet/channel.hpp: capacity and backpressure, close then drain, sending after
// close, receivers cancelled (by a handle, by with_timeout, by a when_any loss) while values
// are in flight with every value counted, FIFO among 100 waiting receivers and 100 waiting
// senders, use from the wrong reactor, and shared_channel between reactors on two threads. (The
// million values through a capacity-1 channel without allocating are in test_allocations.cpp, whose
// binary counts allocations.)
#include <conet/channel.hpp>
#include <conet/conet.hpp>
#include <conet/event.hpp>
#include <conet/shared_channel.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <variant>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

TEST_CASE("channel capacity 0 is refused", "[channel]") {
    CHECK_THROWS_AS(conet::channel<int>(0), std::invalid_argument);
    conet::channel<int> one(1);
    CHECK(one.capacity() == 1);
}

TEST_CASE("channel send waits while full (backpressure)", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<int> ch(2);
        int sent = 0;
        conet::task_group g;
        g.spawn([](conet::channel<int>& ch, int& sent) -> conet::task<> {
            for (int i = 0; i < 5; ++i) {
                co_await ch.send(int(i));
                ++sent;
            }
        }(ch, sent));
        for (int turn = 0; turn < 5; ++turn)
            co_await conet::yield();
        CHECK(sent == 2); // the third send waits: capacity 2
        CHECK(ch.size() == 2);
        int v = 7;
        CHECK_FALSE(ch.try_send(std::move(v)));
        CHECK(v == 7); // not queued: not moved from
        std::vector<int> got;
        for (int i = 0; i < 5; ++i) {
            auto x = co_await ch.recv();
            REQUIRE(x.has_value());
            got.push_back(*x);
        }
        CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
        co_await g.join();
        CHECK(sent == 5);
        CHECK(ch.size() == 0);
        CHECK_FALSE(ch.try_recv().has_value());
    };
    run_bounded(body());
}

TEST_CASE("channel close drains the queued values then ends", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<std::string> ch(4);
        co_await ch.send(std::string("a"));
        co_await ch.send(std::string("b"));
        CHECK(ch.try_send(std::string("c")));
        ch.close();
        ch.close(); // idempotent
        CHECK(ch.closed());
        std::vector<std::string> got;
        while (auto v = co_await ch.recv())
            got.push_back(*v);
        CHECK(got == std::vector<std::string>{"a", "b", "c"});
        auto again = co_await ch.recv();
        CHECK_FALSE(again.has_value());
        CHECK_FALSE(ch.try_recv().has_value());
    };
    run_bounded(body());
}

TEST_CASE("channel close wakes waiting receivers with the end, after the values", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<int> ch(1);
        int ends = 0;
        std::vector<int> got;
        conet::task_group g;
        auto receiver = [](conet::channel<int>& ch, int& ends,
                           std::vector<int>& got) -> conet::task<> {
            while (auto v = co_await ch.recv())
                got.push_back(*v);
            ++ends;
        };
        for (int i = 0; i < 3; ++i)
            g.spawn(receiver(ch, ends, got));
        co_await conet::yield();
        co_await ch.send(1);
        ch.close();
        co_await g.join();
        CHECK(got == std::vector<int>{1});
        CHECK(ends == 3);
    };
    run_bounded(body());
}

TEST_CASE("channel send after close fails with channel_closed and keeps the value", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<std::string> ch(1);
        co_await ch.send(std::string("queued"));
        // A sender waiting (the channel is full) when it is closed.
        std::error_code waiting_ec;
        std::string waiting_value = "waiting";
        conet::task_group g;
        g.spawn([](conet::channel<std::string>& ch, std::string& v,
                   std::error_code& ec) -> conet::task<> {
            co_await ch.send(std::move(v), ec);
        }(ch, waiting_value, waiting_ec));
        co_await conet::yield();
        ch.close();
        co_await g.join();
        CHECK(waiting_ec == conet::error::channel_closed);
        CHECK(waiting_value == "waiting"); // not queued, not moved from

        std::string late = "late";
        std::error_code ec;
        co_await ch.send(std::move(late), ec);
        CHECK(ec == conet::error::channel_closed);
        CHECK(late == "late");
        bool threw = false;
        try {
            co_await ch.send(std::string("thrown"));
        } catch (const std::system_error& e) {
            threw = e.code() == conet::error::channel_closed;
        }
        CHECK(threw);
        CHECK_THROWS_AS(ch.try_send(std::string("x")), std::system_error);
        // The value queued before the close is still delivered.
        auto v = co_await ch.recv();
        REQUIRE(v.has_value());
        CHECK(*v == "queued");
        auto end = co_await ch.recv();
        CHECK_FALSE(end.has_value());
    };
    run_bounded(body());
}

TEST_CASE("channel receiver cancelled with a value promised to it gives it up", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<int> ch(1);
        std::optional<int> got;
        bool cancelled = false;
        conet::task_group g;
        auto handle = g.spawn(
            [](conet::channel<int>& ch, std::optional<int>& got, bool& cancelled) -> conet::task<> {
                try {
                    got = co_await ch.recv();
                } catch (const std::system_error& e) {
                    cancelled = e.code() == std::errc::operation_canceled;
                }
            }(ch, got, cancelled));
        co_await conet::yield(); // it waits
        CHECK(ch.try_send(42));  // promised to it: it resumes at the next turn...
        handle.cancel();         // ...but is cancelled first
        co_await g.join();
        CHECK(cancelled);
        CHECK_FALSE(got.has_value());
        auto v = ch.try_recv(); // the value is still there
        REQUIRE(v.has_value());
        CHECK(*v == 42);
    };
    run_bounded(body());
}

TEST_CASE("channel receiver passes a cancelled promise to the next receiver", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<int> ch(1);
        std::optional<int> second;
        conet::task_group g;
        auto first = g.spawn([](conet::channel<int>& ch) -> conet::task<> {
            auto v = co_await ch.recv();
            FAIL("the cancelled receiver got " << (v ? *v : -1));
        }(ch));
        g.spawn([](conet::channel<int>& ch, std::optional<int>& got) -> conet::task<> {
            got = co_await ch.recv();
        }(ch, second));
        co_await conet::yield();
        CHECK(ch.try_send(5)); // promised to the first
        first.cancel();        // which gives it to the second
        co_await g.join();
        REQUIRE(second.has_value());
        CHECK(*second == 5);
    };
    conet::reactor r;
    r.tasks().set_failure_handler([](std::exception_ptr) {});
    run_bounded(r, body());
}

TEST_CASE("channel recv losing a when_any while a value is in flight loses nothing", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<int> ch(4);
        int received = 0;
        long sum = 0;
        constexpr int rounds = 200;
        int sender_won = 0;
        for (int i = 0; i < rounds; ++i) {
            while (auto v = ch.try_recv()) { // empty: the receiver below waits
                ++received;
                sum += *v;
            }
            auto recv_branch = [](conet::channel<int>& ch) -> conet::task<std::optional<int>> {
                co_return co_await ch.recv();
            };
            // The other branch sends (the value is promised to the waiting receiver, which
            // resumes at the next turn), then wins at once: the receiver is cancelled with
            // the value in flight, and must leave it in the channel.
            auto send_branch = [](conet::channel<int>& ch, int v) -> conet::task<> {
                co_await conet::yield();
                CHECK(ch.try_send(int(v)));
            };
            auto outcome = co_await conet::when_any(recv_branch(ch), send_branch(ch, i));
            if (outcome.index() == 0) {
                auto v = std::get<0>(outcome);
                REQUIRE(v.has_value());
                ++received;
                sum += *v;
            } else {
                ++sender_won;
            }
        }
        while (auto v = ch.try_recv()) {
            ++received;
            sum += *v;
        }
        CHECK(received == rounds);
        CHECK(sum == long(rounds) * (rounds - 1) / 2);
        CHECK(sender_won == rounds); // every round had a value in flight to the loser
    };
    run_bounded(body());
}

TEST_CASE("channel recv under with_timeout: every value once, in order", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<int> ch(2);
        constexpr int total = 3000;
        constexpr int consumers = 3;
        std::vector<int> got[consumers];
        int timeouts = 0;
        conet::task_group g;
        g.spawn([](conet::channel<int>& ch) -> conet::task<> {
            for (int i = 0; i < total; ++i) {
                co_await ch.send(int(i));
                if (i % 7 == 0) co_await conet::sleep_for(std::chrono::microseconds(150 + i % 300));
            }
            ch.close();
        }(ch));
        auto consumer = [](conet::channel<int>& ch, std::vector<int>& got,
                           int& timeouts) -> conet::task<> {
            for (;;) {
                try {
                    auto v = co_await conet::with_timeout(ch.recv(), 200us);
                    if (!v) co_return;
                    got.push_back(*v);
                } catch (const std::system_error& e) {
                    if (e.code() != std::errc::timed_out) throw;
                    ++timeouts;
                }
            }
        };
        for (auto& mine : got)
            g.spawn(consumer(ch, mine, timeouts));
        co_await g.join();
        // Each consumer takes its values in the channel's order; together, every value once.
        // (Across consumers the order they record in is not the order they took in: a
        // winner's with_timeout may wait for its timer's branch to unwind.)
        std::vector<int> all;
        for (auto& mine : got) {
            if (!std::is_sorted(mine.begin(), mine.end())) FAIL("a consumer's values out of order");
            all.insert(all.end(), mine.begin(), mine.end());
        }
        std::sort(all.begin(), all.end());
        REQUIRE(all.size() == std::size_t(total));
        for (int i = 0; i < total; ++i)
            if (all[std::size_t(i)] != i) FAIL("value " << i << " lost or duplicated");
        CHECK(timeouts > 0);
    };
    run_bounded(body(), 30s);
}

TEST_CASE("channel sender cancelled while waiting does not queue its value", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<std::string> ch(1);
        co_await ch.send(std::string("first"));
        std::string second = "second";
        bool timed_out = false;
        try {
            co_await conet::with_timeout(ch.send(std::move(second)), 5ms);
        } catch (const std::system_error& e) {
            timed_out = e.code() == std::errc::timed_out;
        }
        CHECK(timed_out);
        CHECK(second == "second"); // not queued: left as it was
        CHECK(ch.size() == 1);
        auto v = ch.try_recv();
        REQUIRE(v.has_value());
        CHECK(*v == "first");
        CHECK_FALSE(ch.try_recv().has_value());
    };
    run_bounded(body());
}

namespace {
conet::task<int> send_then_one(conet::channel<std::string>& ch, std::string& v) {
    co_await ch.send(std::move(v));
    co_return 1;
}
conet::task<int> wait_then_two(conet::event& e) {
    co_await e.wait();
    co_return 2;
}
} // namespace

TEST_CASE("channel send losing a when_any after room was made for it does not queue its value",
          "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<std::string> ch(1);
        conet::event other;
        CHECK(ch.try_send(std::string("filler")));
        std::string value = "precious";
        conet::task_group g;
        g.spawn([](conet::channel<std::string>& ch, conet::event& other) -> conet::task<> {
            co_await conet::yield(); // the send waits now: the channel is full
            other.set();             // the other branch resumes first ...
            auto v = ch.try_recv();  // ... and this makes room for the send in the same turn
            CHECK(v == "filler");
        }(ch, other));
        auto first = co_await conet::when_any(send_then_one(ch, value), wait_then_two(other));
        CHECK(first.index() == 1);
        // The send lost: its value must not be queued, and must still be the caller's.
        CHECK(ch.size() == 0);
        CHECK(value == "precious");
        CHECK_FALSE(ch.try_recv().has_value());
        co_await g.join();
    };
    run_bounded(body());
}

TEST_CASE("channel send that finds room with its budget spent, then loses a when_any, does not "
          "queue its value",
          "[channel]") {
    // The send finds room but must give the loop its turn first (the budget is spent): a
    // branch already queued wins meanwhile. Each round spends one more immediate operation
    // before the send, so one of them runs out of budget exactly at it.
    auto body = []() -> conet::task<> {
        conet::event always(true);
        for (int before = 0; before < 300; ++before) {
            conet::channel<std::string> ch(1);
            std::string value = "precious";
            auto sender = [](conet::channel<std::string>& ch, conet::event& always,
                             std::string& value, int before) -> conet::task<int> {
                for (int i = 0; i < before; ++i)
                    co_await always.wait(); // completes at once: takes budget
                co_await ch.send(std::move(value));
                co_return 1;
            };
            auto yielder = []() -> conet::task<int> {
                co_await conet::yield();
                co_return 0;
            };
            auto first = co_await conet::when_any(yielder(), sender(ch, always, value, before));
            INFO("immediate operations before the send: " << before);
            if (first.index() == 0) { // the send lost: not queued
                CHECK(ch.size() == 0);
                CHECK(value == "precious");
            } else {
                CHECK(ch.size() == 1);
            }
        }
    };
    run_bounded(body());
}

TEST_CASE("channel sender given room then closed before it resumes keeps its value", "[channel]") {
    auto body = []() -> conet::task<> {
        conet::channel<std::string> ch(1);
        CHECK(ch.try_send(std::string("filler")));
        std::string value = "second";
        std::error_code ec;
        conet::task_group g;
        g.spawn([](conet::channel<std::string>& ch, std::string& value,
                   std::error_code& ec) -> conet::task<> {
            co_await ch.send(std::move(value), ec);
        }(ch, value, ec));
        co_await conet::yield();
        CHECK(ch.try_recv() == "filler"); // room for the waiting send ...
        ch.close();                       // ... closed before it resumes
        co_await g.join();
        // Either it was queued (and received) or it failed and kept its value: never both
        // nor neither.
        auto v = co_await ch.recv();
        if (ec) {
            CHECK(ec == conet::error::channel_closed);
            CHECK(value == "second");
            CHECK_FALSE(v.has_value());
        } else {
            CHECK(v == "second");
        }
        CHECK_FALSE((co_await ch.recv()).has_value());
    };
    run_bounded(body());
}

TEST_CASE("channel serves 100 waiting receivers and 100 waiting senders FIFO", "[channel]") {
    auto body = []() -> conet::task<> {
        constexpr int n = 100;
        conet::channel<int> ch(1);
        std::vector<int> got(n, -1);
        {
            conet::task_group g;
            for (int i = 0; i < n; ++i)
                g.spawn([](conet::channel<int>& ch, int& slot) -> conet::task<> {
                    slot = *co_await ch.recv();
                }(ch, got[std::size_t(i)]));
            co_await conet::yield(); // all wait, in the order spawned
            for (int i = 0; i < n; ++i)
                co_await ch.send(int(i));
            co_await g.join();
        }
        for (int i = 0; i < n; ++i)
            if (got[std::size_t(i)] != i) FAIL("receiver " << i << " got " << got[std::size_t(i)]);

        co_await ch.send(-1); // full: every sender below waits
        {
            conet::task_group g;
            for (int i = 0; i < n; ++i)
                g.spawn([](conet::channel<int>& ch, int v) -> conet::task<> {
                    co_await ch.send(int(v));
                }(ch, i));
            co_await conet::yield();
            auto first = co_await ch.recv();
            CHECK(first == -1);
            for (int i = 0; i < n; ++i) {
                auto v = co_await ch.recv();
                REQUIRE(v.has_value());
                if (*v != i) FAIL("value " << i << " came as " << *v);
            }
            co_await g.join();
        }
    };
    run_bounded(body());
}

TEST_CASE("channel used from another reactor fails with wrong_reactor", "[channel]") {
    conet::channel<int> ch(4);
    conet::reactor home;
    conet::reactor other;
    std::atomic<bool> other_done{false};
    std::error_code try_send_ec, recv_ec;
    auto on_home = [&]() -> conet::task<> {
        co_await ch.send(1); // binds it to `home`
        std::thread t([&] {
            other.run([&]() -> conet::task<> {
                try {
                    ch.try_send(2);
                } catch (const std::system_error& e) {
                    try_send_ec = e.code();
                }
                auto v = co_await ch.recv(recv_ec);
                CHECK_FALSE(v.has_value());
            }());
            other_done = true;
        });
        while (!other_done)
            co_await conet::sleep_for(1ms);
        t.join();
        CHECK(ch.size() == 1);
    };
    run_bounded(home, on_home());
    CHECK(try_send_ec == conet::error::wrong_reactor);
    CHECK(recv_ec == conet::error::wrong_reactor);
}

TEST_CASE("shared_channel wakes a receiver on another reactor", "[channel][shared_channel]") {
    conet::shared_channel<std::string> ch(1);
    conet::reactor receiving;
    conet::reactor sending;
    std::optional<std::string> got;
    std::thread t([&] {
        run_bounded(receiving,
                    [](conet::shared_channel<std::string>& ch,
                       std::optional<std::string>& got) -> conet::task<> {
                        got = co_await ch.recv(); // waits: the value comes from the other thread
                    }(ch, got));
    });
    run_bounded(sending, [](conet::shared_channel<std::string>& ch) -> conet::task<> {
        co_await conet::sleep_for(20ms);
        co_await ch.send(std::string("across"));
    }(ch));
    t.join();
    REQUIRE(got.has_value());
    CHECK(*got == "across");
    CHECK_THROWS_AS(conet::shared_channel<int>(0), std::invalid_argument);
}

TEST_CASE("shared_channel: 4 producers on 2 reactors, every value once and in order",
          "[channel][shared_channel]") {
    constexpr int producers = 4;
    constexpr int per_producer = 20'000;
    conet::shared_channel<int> ch(8);
    std::atomic<int> producing{producers};
    struct consumer_record {
        std::vector<int> values;
        int timeouts = 0;
    };
    consumer_record records[2];

    auto producer = [](conet::shared_channel<int>& ch, std::atomic<int>& producing,
                       int id) -> conet::task<> {
        for (int i = 0; i < per_producer; ++i) {
            co_await ch.send(id * per_producer + i);
            if (i % 1000 == 0) co_await conet::sleep_for(1ms); // let the timeouts fire too
        }
        if (--producing == 0) ch.close();
    };
    // Bounded waits: a receive cancelled by its timeout with a value in flight must leave it.
    auto consumer = [](conet::shared_channel<int>& ch, consumer_record& r) -> conet::task<> {
        for (;;) {
            try {
                auto v = co_await conet::with_timeout(ch.recv(), 500us);
                if (!v) co_return;
                r.values.push_back(*v);
            } catch (const std::system_error& e) {
                if (e.code() != std::errc::timed_out) throw;
                ++r.timeouts;
            }
        }
    };
    auto shard = [&](int index) -> conet::task<> {
        conet::task_group g;
        g.spawn(producer(ch, producing, 2 * index));
        g.spawn(producer(ch, producing, 2 * index + 1));
        g.spawn(consumer(ch, records[index]));
        co_await g.join();
    };
    conet::reactor a;
    conet::reactor b;
    std::thread t([&] { run_bounded(b, shard(1), 60s); });
    run_bounded(a, shard(0), 60s);
    t.join();

    std::vector<int> all;
    for (auto& r : records) {
        // Each consumer takes values in the channel's order: each producer's rise.
        std::vector<int> last(producers, -1);
        for (int v : r.values) {
            const int p = v / per_producer;
            if (v <= last[std::size_t(p)]) FAIL("producer " << p << "'s values out of order");
            last[std::size_t(p)] = v;
        }
        all.insert(all.end(), r.values.begin(), r.values.end());
    }
    std::sort(all.begin(), all.end());
    REQUIRE(all.size() == std::size_t(producers * per_producer));
    for (int i = 0; i < producers * per_producer; ++i)
        if (all[std::size_t(i)] != i) FAIL("value " << i << " lost or duplicated");
    INFO("timeouts: " << records[0].timeouts << " and " << records[1].timeouts);
    CHECK(!records[0].values.empty());
    CHECK(!records[1].values.empty());
}

TEST_CASE("shared_channel receiver cancelled with a value on its way leaves it queued",
          "[channel][shared_channel]") {
    conet::reactor r;
    auto body = [](conet::reactor& r) -> conet::task<> {
        conet::shared_channel<int> ch(2);
        auto receiver = [](conet::shared_channel<int>& ch, std::error_code& ec,
                           std::optional<int>& got) -> conet::task<> {
            got = co_await ch.recv(ec);
        };
        std::error_code ec1, ec2;
        std::optional<int> got1, got2;
        conet::task_group g;
        // Cancelled while its wake-up is posted (in the reactor's inbox).
        auto first = g.spawn(receiver(ch, ec1, got1));
        co_await conet::yield();
        CHECK(ch.try_send(1)); // promised to the first: its wake-up is posted
        first.cancel();
        for (int turn = 0; turn < 10 && !ec1; ++turn)
            co_await conet::yield(); // the wake-up arrives: it resumes, cancelled
        CHECK(ec1 == std::errc::operation_canceled);
        CHECK_FALSE(got1.has_value());
        auto one = ch.try_recv(); // the value it gave up is still queued
        REQUIRE(one.has_value());
        CHECK(*one == 1);
        // Cancelled after its wake-up arrived, before it resumes: a function posted behind
        // the wake-up cancels it.
        auto second = g.spawn(receiver(ch, ec2, got2));
        co_await conet::yield();
        CHECK(ch.try_send(2));
        r.post([&second] { second.cancel(); });
        co_await g.join();
        CHECK(ec2 == std::errc::operation_canceled);
        CHECK_FALSE(got2.has_value());
        auto two = ch.try_recv();
        REQUIRE(two.has_value());
        CHECK(*two == 2);
        CHECK_FALSE(ch.try_recv().has_value());
    };
    run_bounded(r, body(r));
}

TEST_CASE("shared_channel send losing a when_any after room was made for it does not queue its "
          "value",
          "[channel][shared_channel]") {
    auto body = []() -> conet::task<> {
        conet::shared_channel<std::string> ch(1);
        conet::event other;
        CHECK(ch.try_send(std::string("filler")));
        std::string value = "precious";
        conet::task_group g;
        g.spawn([](conet::shared_channel<std::string>& ch, conet::event& other) -> conet::task<> {
            co_await conet::yield(); // the send waits now: the channel is full
            other.set();             // the other branch resumes first ...
            auto v = ch.try_recv();  // ... and this makes room for the send (its wake-up posted)
            CHECK(v == "filler");
        }(ch, other));
        auto sender = [](conet::shared_channel<std::string>& ch,
                         std::string& value) -> conet::task<int> {
            co_await ch.send(std::move(value));
            co_return 1;
        };
        auto waiter = [](conet::event& e) -> conet::task<int> {
            co_await e.wait();
            co_return 2;
        };
        auto first = co_await conet::when_any(sender(ch, value), waiter(other));
        CHECK(first.index() == 1);
        // The send lost: its value must not be queued, and must still be the caller's.
        CHECK(ch.size() == 0);
        CHECK(value == "precious");
        CHECK_FALSE(ch.try_recv().has_value());
        co_await g.join();
    };
    run_bounded(body());
}

TEST_CASE("a channel and an event outlive the reactor that used them", "[channel][sync]") {
    // Their reactor destroyed, they belong to none: usable where no reactor runs, and by the
    // next reactor that uses them. (They kept a pointer to the destroyed reactor and read it:
    // a heap-use-after-free under ASan.)
    conet::channel<int> ch(2);
    conet::event ev;
    {
        conet::reactor first;
        first.run([](conet::channel<int>& ch, conet::event& ev) -> conet::task<> {
            co_await ch.send(1);
            ev.set();
            co_return;
        }(ch, ev));
    }
    CHECK(ch.try_send(2)); // no reactor on this thread, and the first one is gone
    CHECK(ev.is_set());
    std::vector<int> got;
    conet::reactor second;
    second.run(
        [](conet::channel<int>& ch, conet::event& ev, std::vector<int>& got) -> conet::task<> {
            ch.close();
            while (auto v = co_await ch.recv())
                got.push_back(*v);
            co_await ev.wait();
        }(ch, ev, got));
    CHECK(got == std::vector<int>{1, 2});
}

// The task dump (conet/task_dump.hpp), the stall detector and task names.
#include <conet/handoff.hpp>
#include <conet/reactor_pool.hpp>
#include <conet/task_dump.hpp>
#include <conet/virtual_time.hpp>

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <coroutine>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

namespace {

// The lines of the co_awaits the dump must name.
// (Each co_await on one line: GCC and Clang name different lines of one that spans several.)
constexpr unsigned accept_line = __LINE__ + 3;
conet::task<> server_task(conet::tcp_listener& listener, std::vector<conet::tcp_stream>& accepted) {
    for (;;) {
        auto [conn, peer] = co_await listener.accept();
        accepted.push_back(std::move(conn));
    }
}

constexpr unsigned recv_line = __LINE__ + 10;
constexpr unsigned timed_recv_line = __LINE__ + 7;
conet::task<> client_task(conet::endpoint server, bool timed, int& connected) {
    auto conn = co_await conet::tcp_stream::connect(server);
    ++connected;
    char buf[16];
    const conet::mutable_buffer b(buf, sizeof buf);
    if (timed)
        co_await conet::with_timeout(conn.recv(b), std::chrono::seconds(5));
    else
        co_await conn.recv(b);
}

constexpr unsigned sleep_line = __LINE__ + 2;
conet::task<> sleeper() {
    co_await conet::sleep_for(std::chrono::seconds(5));
}

constexpr unsigned branch_sleep_line = __LINE__ + 2;
conet::task<> branch_sleep() {
    co_await conet::sleep_for(std::chrono::seconds(4));
}
constexpr unsigned when_any_line = __LINE__ + 2;
conet::task<> racer() {
    co_await conet::when_any(branch_sleep(), branch_sleep());
}

constexpr unsigned cleanup_line = __LINE__ + 2;
conet::task<> cleanup() {
    co_await conet::sleep_for(std::chrono::seconds(3));
}
constexpr unsigned shield_line = __LINE__ + 7;
conet::task<> doomed() {
    try {
        co_await conet::sleep_for(std::chrono::seconds(10));
    } catch (const std::system_error&) {
    }
    // Cancelled: its cleanup runs shielded.
    co_await conet::shield(cleanup());
}

conet::task<> finishes_at_once() {
    co_return;
}

bool ends_with(const std::string& s, const std::string& end) {
    return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

const conet::task_info* named(const std::vector<conet::task_info>& list, const std::string& name) {
    const conet::task_info* found = nullptr;
    for (const auto& t : list)
        if (t.name == name) {
            if (found) FAIL("two tasks named " << name);
            found = &t;
        }
    return found;
}

// What a dump says of a task waiting in a co_await of this file.
void check_where(const conet::task_info& t, unsigned line, const std::string& function) {
    CHECK(ends_with(t.file, "test_task_dump.cpp"));
    CHECK(t.line == line);
    CHECK(t.function.find(function) != std::string::npos);
}

} // namespace

TEST_CASE("the task dump lists every suspended task once: what it waits for, where, and who "
          "awaits it",
          "[task_dump]") {
    conet::reactor r;
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    const conet::endpoint server = listener.local_endpoint();
    std::vector<conet::tcp_stream> accepted;
    int connected = 0;
    std::vector<conet::task_info> list;
    std::string text;
    run_bounded(r, [&]() -> conet::task<> {
        auto& g = conet::reactor::current()->tasks();
        g.spawn(server_task(listener, accepted), "server");
        g.spawn(client_task(server, false, connected), "client 1");
        g.spawn(client_task(server, true, connected), "client 2");
        g.spawn(client_task(server, false, connected), "client 3");
        g.spawn(sleeper(), "sleeper");
        g.spawn(racer(), "racer");
        auto doomed_handle = g.spawn(doomed(), "doomed");
        g.spawn(finishes_at_once(), "finished");
        for (int i = 0; i < 1000 && (connected < 3 || accepted.size() < 3); ++i)
            co_await conet::sleep_for(std::chrono::milliseconds(1));
        doomed_handle.cancel();
        co_await conet::sleep_for(std::chrono::milliseconds(5));
        list = conet::task_list(*conet::reactor::current());
        text = conet::dump_tasks(*conet::reactor::current());
        g.cancel();
    }());
    INFO(text);
    REQUIRE(connected == 3);
    REQUIRE(accepted.size() == 3);

    // The run's own task, which took the dump: running.
    REQUIRE(!list.empty());
    CHECK(list[0].group == "run");
    CHECK(list[0].operation == "running");

    CHECK(named(list, "finished") == nullptr); // it ended: gone

    const auto* s = named(list, "server");
    REQUIRE(s);
    CHECK(s->group == "reactor");
    CHECK(s->depth == 0);
    CHECK(s->id != 0);
    CHECK(s->operation == "accept");
    CHECK(s->fd == listener.native_handle());
    CHECK(s->local == server.to_string());
    CHECK(s->peer.empty());
    CHECK(!s->deadline);
    check_where(*s, accept_line, "server_task");

    for (const char* name : {"client 1", "client 2", "client 3"}) {
        INFO(name);
        const auto* c = named(list, name);
        REQUIRE(c);
        CHECK(c->operation == "recv");
        CHECK(c->fd >= 0);
        CHECK(c->peer == server.to_string()); // a client: its peer is the server
        CHECK(!c->local.empty());
        CHECK(!c->cancelled);
        const bool timed = std::string(name) == "client 2";
        check_where(*c, timed ? timed_recv_line : recv_line, "client_task");
        CHECK(c->deadline.has_value() == timed);
        if (timed) {
            CHECK(*c->deadline > std::chrono::seconds(3));
            CHECK(*c->deadline <= std::chrono::seconds(5));
        }
    }
    // Each client's server side is there, by its descriptor, nowhere else (the server task
    // keeps them without waiting on them).
    for (const auto& conn : accepted)
        for (const auto& t : list)
            CHECK(t.fd != conn.native_handle());

    const auto* sl = named(list, "sleeper");
    REQUIRE(sl);
    CHECK(sl->operation == "sleep");
    CHECK(sl->fd == -1);
    REQUIRE(sl->deadline);
    CHECK(*sl->deadline > std::chrono::seconds(3));
    CHECK(*sl->deadline <= std::chrono::seconds(5));
    check_where(*sl, sleep_line, "sleeper");

    const auto* ra = named(list, "racer");
    REQUIRE(ra);
    CHECK(ra->operation == "when_any");
    check_where(*ra, when_any_line, "racer");
    const std::size_t racer_index = static_cast<std::size_t>(ra - list.data());
    int branches = 0;
    for (const auto& t : list)
        if (t.parent == racer_index) {
            ++branches;
            CHECK(t.depth == 1);
            CHECK(t.group == "branch");
            CHECK(t.id != 0);
            CHECK(t.id != ra->id);
            CHECK(t.operation == "sleep");
            check_where(t, branch_sleep_line, "branch_sleep");
        }
    CHECK(branches == 2);

    const auto* d = named(list, "doomed");
    REQUIRE(d);
    CHECK(d->cancelled);
    CHECK(d->operation == "task");
    check_where(*d, shield_line, "doomed");
    const std::size_t doomed_index = static_cast<std::size_t>(d - list.data());
    REQUIRE(doomed_index + 1 < list.size());
    const auto& clean = list[doomed_index + 1];
    CHECK(clean.parent == doomed_index);
    CHECK(clean.depth == 1);
    CHECK(clean.id == 0); // awaited: part of the doomed task, not a task of its own
    CHECK(clean.shielded);
    CHECK(clean.operation == "sleep");
    check_where(clean, cleanup_line, "cleanup");

    // Every task once: 1 run + 8 spawned - 1 finished = 8 roots; + 2 branches + 1 cleanup.
    std::size_t roots = 0;
    for (const auto& t : list)
        roots += t.depth == 0;
    CHECK(roots == 8);
    CHECK(list.size() == 11);

    // The text: one line per task, awaited ones indented under their task.
    CHECK(text.find("conet: task dump: 8 tasks, 11 coroutines\n") == 0);
    CHECK(text.find("\"server\": accept fd " + std::to_string(listener.native_handle()) + " " +
                    server.to_string() + ", at ") != std::string::npos);
    CHECK(text.find("<- " + server.to_string() + ", deadline in ") != std::string::npos);
    CHECK(text.find("\n  task ") != std::string::npos);         // a branch
    CHECK(text.find("\n  awaits: sleep") != std::string::npos); // the shielded cleanup
    CHECK(text.find(", cancelled") != std::string::npos);
    CHECK(text.find(", shielded") != std::string::npos);
    CHECK(text.find("test_task_dump.cpp:" + std::to_string(accept_line) + " in server_task") !=
          std::string::npos);
}

TEST_CASE("a dump says how long each task has been suspended, once the reactor stamps its polls",
          "[task_dump]") {
    conet::reactor r;
    std::vector<conet::task_info> first, second;
    run_bounded(r, [&]() -> conet::task<> {
        auto& reactor = *conet::reactor::current();
        first = conet::task_list(reactor); // turns the stamps on
        reactor.tasks().spawn(sleeper(), "sleeper");
        co_await conet::sleep_for(std::chrono::milliseconds(60));
        second = conet::task_list(reactor);
        reactor.tasks().cancel();
    }());
    const auto* s = named(second, "sleeper");
    REQUIRE(s);
    REQUIRE(s->suspended_for);
    CHECK(*s->suspended_for >= std::chrono::milliseconds(50));
    CHECK(*s->suspended_for < std::chrono::seconds(5));
}

namespace {

conet::task<> churn_one(int& finished) {
    co_await conet::yield();
    ++finished;
}

// Spawns `total` tasks in waves while taking dumps between them: each dump must see exactly
// the tasks alive, each well formed.
conet::task<> churn(int total, int& finished, bool& consistent) {
    auto& reactor = *conet::reactor::current();
    int spawned = 0;
    while (spawned < total) {
        for (int i = 0; i < 100; ++i, ++spawned)
            reactor.tasks().spawn(churn_one(finished), "churn");
        co_await conet::yield();
        const auto list = conet::task_list(reactor);
        int alive = 0;
        for (std::size_t i = 0; i < list.size(); ++i) {
            const auto& t = list[i];
            if (t.name == "churn") ++alive;
            if (t.depth > 0 && !(t.parent < i && list[t.parent].depth + 1 == t.depth))
                consistent = false;
        }
        if (alive != spawned - finished) consistent = false;
        std::ostringstream out;
        conet::dump_tasks(reactor, out);
        if (out.str().find("conet: task dump:") != 0) consistent = false;
    }
    while (finished < total)
        co_await conet::yield();
}

} // namespace

TEST_CASE("dumps taken while 10,000 tasks come and go, on two reactors at once, are consistent",
          "[task_dump]") {
    struct side {
        int finished = 0;
        bool consistent = true;
    };
    std::array<side, 2> sides;
    std::thread other([&] {
        conet::reactor r;
        run_bounded(r, churn(5000, sides[1].finished, sides[1].consistent), 30s);
    });
    {
        conet::reactor r;
        run_bounded(r, churn(5000, sides[0].finished, sides[0].consistent), 30s);
    }
    other.join();
    for (const auto& s : sides) {
        CHECK(s.finished == 5000);
        CHECK(s.consistent);
    }
}

namespace {

// Runs `body` with stderr going to a file; returns what was written there.
template <class F>
std::string captured_stderr(F body) {
    char path[] = "/tmp/conet_dump_err_XXXXXX";
    const int file = ::mkstemp(path);
    REQUIRE(file >= 0);
    const int saved = ::dup(2);
    ::dup2(file, 2);
    try {
        body();
    } catch (...) {
        ::dup2(saved, 2);
        ::close(saved);
        ::close(file);
        ::unlink(path);
        throw;
    }
    ::dup2(saved, 2);
    ::close(saved);
    std::string text(8192, '\0');
    const auto n = ::pread(file, text.data(), text.size(), 0);
    ::close(file);
    ::unlink(path);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
}

constexpr unsigned after_block_line = __LINE__ + 4;
conet::task<> blocks_the_loop() {
    co_await conet::sleep_for(std::chrono::milliseconds(1));
    ::usleep(100000); // a blocking call inside the loop
    co_await conet::yield();
}

conet::task<> busy_but_yielding() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < until) {
        const auto slice = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
        while (std::chrono::steady_clock::now() < slice) {
        }
        co_await conet::yield();
    }
}

} // namespace

TEST_CASE("the stall detector names a coroutine that blocks the loop, and only such a one",
          "[task_dump][stall]") {
    SECTION("a blocking call: one line naming the task and where it suspended next") {
        const std::string text = captured_stderr([] {
            conet::reactor r;
            r.set_stall_threshold(std::chrono::milliseconds(50));
            run_bounded(r, [&]() -> conet::task<> {
                auto h = conet::reactor::current()->tasks().spawn(blocks_the_loop(), "blocker");
                while (!h.done())
                    co_await conet::sleep_for(std::chrono::milliseconds(1));
            }());
        });
        INFO(text);
        CHECK(text.find("conet: stall: task ") != std::string::npos);
        CHECK(text.find("\"blocker\" ran 1") != std::string::npos); // 100 ms and more
        CHECK(text.find("in blocks_the_loop before its co_await at ") != std::string::npos);
        CHECK(text.find("test_task_dump.cpp:" + std::to_string(after_block_line) + "\n") !=
              std::string::npos);
        std::size_t lines = 0;
        for (std::size_t at = 0; (at = text.find("conet: stall:", at)) != std::string::npos; ++at)
            ++lines;
        CHECK(lines == 1);
    }
    SECTION("busy but yielding: silent") {
        const std::string text = captured_stderr([] {
            conet::reactor r;
            r.set_stall_threshold(std::chrono::milliseconds(50));
            run_bounded(r, busy_but_yielding());
        });
        CHECK(text.find("stall") == std::string::npos);
    }
    SECTION("off by default; CONET_STALL_MS sets it when a reactor is made") {
        CHECK(conet::reactor().stall_threshold() == std::chrono::nanoseconds(0));
        ::setenv("CONET_STALL_MS", "50", 1);
        conet::reactor r;
        ::unsetenv("CONET_STALL_MS");
        CHECK(r.stall_threshold() == std::chrono::milliseconds(50));
        const std::string text = captured_stderr([] {
            ::setenv("CONET_STALL_MS", "soon", 1);
            conet::reactor bad;
            ::unsetenv("CONET_STALL_MS");
            CHECK(bad.stall_threshold() == std::chrono::nanoseconds(0));
        });
        CHECK(text.find("CONET_STALL_MS=soon is not a number") != std::string::npos);
    }
}

TEST_CASE("a task's name shows in CONET_TRACE's lines", "[task_dump][trace]") {
    const std::string text = captured_stderr([] {
        ::setenv("CONET_TRACE", "1", 1);
        conet::reactor r;
        ::unsetenv("CONET_TRACE");
        run_bounded(r, []() -> conet::task<> {
            auto napper = []() -> conet::task<> {
                co_await conet::sleep_for(std::chrono::milliseconds(1));
            };
            auto h = conet::reactor::current()->tasks().spawn(napper(), "napper");
            auto [client, server] = co_await connected_pair();
            auto reader = [](conet::tcp_stream& s) -> conet::task<> {
                char buf[8];
                co_await s.recv(conet::mutable_buffer(buf, sizeof buf));
            };
            auto r = conet::reactor::current()->tasks().spawn(reader(server), "reader 1");
            co_await conet::sleep_for(std::chrono::milliseconds(5));
            co_await client.send_all(std::string("x"));
            while (!h.done() || !r.done())
                co_await conet::sleep_for(std::chrono::milliseconds(1));
        }());
    });
    INFO(text);
    CHECK(text.find("sleep: the coroutine suspends until its timer expires (task \"napper\")\n") !=
          std::string::npos);
    CHECK(text.find("recv waits: fd ") != std::string::npos);
    CHECK(text.find("is not readable yet, so the coroutine suspends (task \"reader 1\")\n") !=
          std::string::npos);
    CHECK(text.find("is readable: its coroutine resumes (task \"reader 1\")\n") !=
          std::string::npos);
}

TEST_CASE("task dump: a deadline is counted on the reactor's clock, virtual time too",
          "[task_dump][virtual]") {
    // After the virtual clock jumped an hour, a 10 s sleep taken 1 s ago has 9 s left (it
    // showed 3,610 s when the dump read steady_clock).
    conet::reactor r(conet::clock_kind::virtual_auto);
    std::vector<conet::task_info> list;
    auto body = [](std::vector<conet::task_info>& list) -> conet::task<> {
        co_await conet::sleep_for(std::chrono::hours(1));
        conet::task_group g;
        g.spawn([]() -> conet::task<> { co_await conet::sleep_for(std::chrono::seconds(10)); }());
        co_await conet::sleep_for(std::chrono::seconds(1));
        list = conet::task_list(*conet::reactor::current());
        g.cancel();
        co_await g.join();
    };
    run_bounded(r, body(list), std::chrono::seconds(5));
    const conet::task_info* sleeper = nullptr;
    for (const auto& t : list)
        if (t.operation == "sleep" && t.deadline) sleeper = &t;
    REQUIRE(sleeper != nullptr);
    CHECK(*sleeper->deadline == std::chrono::seconds(9));
}

// --- A review's findings (break7): each seen failing before its fix. ---

namespace {

std::atomic<bool> mover_arrived{false};
std::atomic<bool> mover_may_leave{false};

conet::task<> mover(conet::reactor& there, conet::reactor& back) {
    co_await conet::resume_on(there);
    mover_arrived = true;
    for (int i = 0; i < 5000 && !mover_may_leave; ++i)
        co_await conet::sleep_for(std::chrono::milliseconds(1));
    co_await conet::resume_on(back);
}

} // namespace

TEST_CASE("task ids stay unique in a reactor that a task moved to with resume_on", "[task_dump]") {
    // A task spawned on reactor A keeps its id on B, where B's own tasks were numbered from
    // a counter of B's thread: both were "task 2" (ids were unique per thread only).
    conet::reactor a;
    conet::reactor b;
    mover_arrived = false;
    mover_may_leave = false;
    std::vector<conet::task_info> list;
    std::thread other([&] {
        run_bounded(b, [&]() -> conet::task<> {
            b.tasks().spawn(sleeper(), "b's own");
            for (int i = 0; i < 5000 && !mover_arrived; ++i)
                co_await conet::sleep_for(std::chrono::milliseconds(1));
            list = conet::task_list(b);
            mover_may_leave = true;
            b.tasks().cancel();
        }());
    });
    // (Each reactor on a thread of its own, where its counter, when it was one per thread,
    // started from 0: the mover and b's own task were both task 2.)
    std::thread first([&] {
        run_bounded(a, [&]() -> conet::task<> {
            conet::task_group g;
            g.spawn(mover(b, a), "mover");
            co_await g.join();
        }());
    });
    first.join();
    other.join();
    std::string ids;
    std::vector<std::uint32_t> seen;
    for (const auto& t : list)
        if (t.id) {
            // (appended piece by piece: GCC 12 -O3 warns of a bogus memcpy bound for
            // "literal" + std::string&&)
            ids += ' ';
            ids += std::to_string(t.id);
            ids += '(';
            ids += t.name;
            ids += ')';
            seen.push_back(t.id);
        }
    INFO("ids on b:" << ids);
    REQUIRE(named(list, "mover") != nullptr);
    REQUIRE(named(list, "b's own") != nullptr);
    std::sort(seen.begin(), seen.end());
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
}

namespace {

struct throws_in_suspend {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const { throw std::runtime_error("refused"); }
    void await_resume() const noexcept {}
};

constexpr unsigned after_throw_line = __LINE__ + 7;
conet::task<> survives_a_throwing_await() {
    try {
        co_await throws_in_suspend{};
    } catch (const std::runtime_error&) {
    }
    // (the awaiter above is gone: the dump must not describe it any more)
    co_await conet::sleep_for(std::chrono::seconds(5));
}

} // namespace

TEST_CASE("after an await_suspend that threw, the dump shows the task's next wait", "[task_dump]") {
    conet::reactor r;
    std::vector<conet::task_info> list;
    run_bounded(r, [&]() -> conet::task<> {
        r.tasks().spawn(survives_a_throwing_await(), "thrown at");
        co_await conet::sleep_for(std::chrono::milliseconds(5));
        list = conet::task_list(r);
        r.tasks().cancel();
    }());
    const auto* t = named(list, "thrown at");
    REQUIRE(t);
    CHECK(t->operation == "sleep");
    CHECK(t->deadline.has_value());
    check_where(*t, after_throw_line, "survives_a_throwing_await");
}

namespace {

conet::task<int> quick_child() {
    co_await conet::sleep_for(std::chrono::milliseconds(2));
    co_return 1;
}

constexpr unsigned after_child_line = __LINE__ + 4;
conet::task<> blocks_after_its_child() {
    co_await quick_child();
    ::usleep(100000); // blocks in the resumption its child's end handed over to it
    co_await conet::sleep_for(std::chrono::milliseconds(1));
}

constexpr unsigned finisher_line = __LINE__ + 2;
conet::task<> blocks_then_ends() {
    co_await conet::sleep_for(std::chrono::milliseconds(2));
    ::usleep(100000); // blocks in its last resumption
}

constexpr unsigned branch_block_line = __LINE__ + 6;
conet::task<> blocking_branch(std::uint32_t& id) {
    for (const auto& t : conet::task_list(*conet::reactor::current()))
        if (t.operation == "running") id = t.id;
    co_await conet::sleep_for(std::chrono::milliseconds(2));
    ::usleep(100000);
    co_await conet::sleep_for(std::chrono::milliseconds(1));
}

conet::task<> races_a_blocker(std::uint32_t& id) {
    co_await conet::when_any(blocking_branch(id), sleeper());
}

// The stall lines of running `body` with a 50 ms threshold.
template <class F>
std::string stall_report(F body) {
    return captured_stderr([&] {
        conet::reactor r;
        r.set_stall_threshold(std::chrono::milliseconds(50));
        run_bounded(r, body(r));
    });
}

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = 0; (at = text.find(what, at)) != std::string::npos; ++at)
        ++n;
    return n;
}

} // namespace

TEST_CASE("the stall detector names the task that blocked: after its child ended, in its last "
          "resumption, in a when_any branch",
          "[task_dump][stall]") {
    const std::string at = "test_task_dump.cpp:";
    SECTION("blocking after an awaited task ended (the resumed frame was the child's)") {
        const std::string text = stall_report([](conet::reactor& r) -> conet::task<> {
            auto h = r.tasks().spawn(blocks_after_its_child(), "parent");
            while (!h.done())
                co_await conet::sleep_for(std::chrono::milliseconds(1));
        });
        INFO(text);
        CHECK(count_of(text, "conet: stall:") == 1);
        CHECK(text.find("\"parent\" ran 1") != std::string::npos);
        CHECK(text.find("in blocks_after_its_child before its co_await at ") != std::string::npos);
        CHECK(text.find(at + std::to_string(after_child_line)) != std::string::npos);
    }
    SECTION("blocking in the last resumption of a task") {
        const std::string text = stall_report([](conet::reactor& r) -> conet::task<> {
            auto h = r.tasks().spawn(blocks_then_ends(), "finisher");
            while (!h.done())
                co_await conet::sleep_for(std::chrono::milliseconds(1));
        });
        INFO(text);
        CHECK(count_of(text, "conet: stall:") == 1);
        CHECK(text.find("\"finisher\" ran 1") != std::string::npos);
        CHECK(text.find("in blocks_then_ends after its co_await at ") != std::string::npos);
        CHECK(text.find(at + std::to_string(finisher_line)) != std::string::npos);
        CHECK(text.find("until it finished") != std::string::npos);
    }
    SECTION("blocking in a when_any branch: the branch is named, not the root") {
        std::uint32_t id = 0;
        const std::string text =
            stall_report([&id](conet::reactor&) -> conet::task<> { return races_a_blocker(id); });
        INFO(text);
        REQUIRE(id != 0);
        CHECK(count_of(text, "conet: stall:") == 1);
        CHECK(text.find("conet: stall: task " + std::to_string(id) + " ran 1") !=
              std::string::npos);
        CHECK(text.find("in blocking_branch before its co_await at ") != std::string::npos);
        CHECK(text.find(at + std::to_string(branch_block_line) + "\n") != std::string::npos);
    }
}

namespace {

// The shapes an outside review found blamed on the wrong task (the awaiter that went on after
// the blocking task ended, a dump in the blocking resumption, a task resumed inline): each
// blocks 100 ms with a 50 ms threshold, and each co_await sits on a line of its own.

// The id of the running root task (looked up before it blocks, in a resumption of its own).
std::uint32_t running_id() {
    for (const auto& t : conet::task_list(*conet::reactor::current()))
        if (t.operation == "running") return t.id;
    return 0;
}

constexpr unsigned cleanup_block_line = __LINE__ + 2;
conet::task<> cleanup_blocks() {
    co_await conet::sleep_for(std::chrono::milliseconds(2));
    ::usleep(100000); // blocks in the last resumption of a when_any loser's cleanup
}

conet::task<int> loser_cleans_up(std::uint32_t& id) {
    id = running_id();
    try {
        co_await conet::sleep_for(std::chrono::seconds(10));
    } catch (const std::system_error&) {
    }
    co_await conet::shield(cleanup_blocks());
    co_return 2;
}

conet::task<int> wins_soon() {
    co_await conet::sleep_for(std::chrono::milliseconds(1));
    co_return 1;
}

constexpr unsigned last_branch_line = __LINE__ + 3;
conet::task<int> branch_blocks_last(std::uint32_t& id) {
    id = running_id();
    co_await conet::sleep_for(std::chrono::milliseconds(5));
    ::usleep(100000); // blocks in its last resumption, the last branch of a when_all to end
    co_return 3;
}

constexpr unsigned child_last_line = __LINE__ + 2;
conet::task<> child_blocks_last() {
    co_await conet::sleep_for(std::chrono::milliseconds(2));
    ::usleep(100000);
}

conet::task<> awaits_a_blocking_child() {
    co_await child_blocks_last();
    co_await conet::sleep_for(std::chrono::milliseconds(5));
}

constexpr unsigned dumper_line = __LINE__ + 7;
conet::task<> dumps_then_blocks(bool list_only) {
    co_await conet::sleep_for(std::chrono::milliseconds(2));
    const std::string dump =
        list_only ? std::string() : conet::dump_tasks(*conet::reactor::current());
    if (list_only) (void)conet::task_list(*conet::reactor::current());
    ::usleep(100000);
    co_await conet::sleep_for(std::chrono::milliseconds(1));
}

// A user's awaitable that leaves the resuming to its caller.
struct parked {
    std::coroutine_handle<> h;
};
struct park {
    parked* p;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { p->h = h; }
    void await_resume() const noexcept {}
};

conet::task<> parks(parked& p) {
    co_await park{&p};
    co_await conet::sleep_for(std::chrono::milliseconds(5));
}

constexpr unsigned resumer_line = __LINE__ + 2;
conet::task<> blocks_then_resumes_inline(parked& p) {
    co_await conet::sleep_for(std::chrono::milliseconds(5));
    ::usleep(100000);
    if (p.h) std::exchange(p.h, nullptr).resume(); // the parked task runs inline, and suspends
    co_await conet::sleep_for(std::chrono::milliseconds(5));
}

// The one stall line of `text` blames task `id`, `where` (its function, "after its co_await
// at ") this file's line `line`, "until it finished".
void check_named_until_finished(const std::string& text, std::uint32_t id, const char* where,
                                unsigned line) {
    CHECK(count_of(text, "conet: stall:") == 1);
    CHECK(text.find("conet: stall: task " + std::to_string(id) + " ran 1") != std::string::npos);
    CHECK(text.find(where) != std::string::npos);
    CHECK(text.find("test_task_dump.cpp:" + std::to_string(line) + ", until it finished\n") !=
          std::string::npos);
}

} // namespace

TEST_CASE("the stall detector names the task that blocked when its awaiter goes on in the same "
          "resumption, after a dump, and when it resumes another task inline",
          "[task_dump][stall]") {
    const std::string at = "test_task_dump.cpp:";
    SECTION("a when_any loser's cleanup that blocks in its last resumption") {
        std::uint32_t id = 0;
        const std::string text = stall_report([&id](conet::reactor&) -> conet::task<> {
            co_await conet::when_any(wins_soon(), loser_cleans_up(id));
            co_await conet::sleep_for(std::chrono::milliseconds(5));
        });
        INFO(text);
        REQUIRE(id != 0);
        check_named_until_finished(text, id, "in cleanup_blocks after its co_await at ",
                                   cleanup_block_line);
    }
    SECTION("a when_all branch that blocks in its last resumption, the last to end") {
        std::uint32_t id = 0;
        const std::string text = stall_report([&id](conet::reactor&) -> conet::task<> {
            co_await conet::when_all(branch_blocks_last(id), wins_soon());
            co_await conet::sleep_for(std::chrono::milliseconds(5));
        });
        INFO(text);
        REQUIRE(id != 0);
        check_named_until_finished(text, id, "in branch_blocks_last after its co_await at ",
                                   last_branch_line);
    }
    SECTION("an awaited task that blocks in its last resumption: it is named, not its awaiter") {
        const std::string text = stall_report([](conet::reactor& r) -> conet::task<> {
            auto h = r.tasks().spawn(awaits_a_blocking_child(), "awaiter");
            while (!h.done())
                co_await conet::sleep_for(std::chrono::milliseconds(1));
        });
        INFO(text);
        CHECK(count_of(text, "conet: stall:") == 1);
        CHECK(text.find("\"awaiter\" ran 1") != std::string::npos);
        CHECK(text.find("in child_blocks_last after its co_await at ") != std::string::npos);
        CHECK(text.find(at + std::to_string(child_last_line) + ", until it finished\n") !=
              std::string::npos);
    }
    for (const bool list_only : {false, true}) {
        DYNAMIC_SECTION("a task that takes a dump, then blocks"
                        << (list_only ? " (task_list)" : " (dump_tasks)")) {
            const std::string text = stall_report([list_only](conet::reactor& r) -> conet::task<> {
                for (int i = 0; i < 10; ++i) // (tasks the dump walks)
                    r.spawn(sleeper());
                auto h = r.tasks().spawn(dumps_then_blocks(list_only), "dumper");
                while (!h.done())
                    co_await conet::sleep_for(std::chrono::milliseconds(1));
                r.tasks().cancel();
            });
            INFO(text);
            CHECK(count_of(text, "conet: stall:") == 1);
            CHECK(text.find("\"dumper\" ran 1") != std::string::npos);
            CHECK(text.find("in dumps_then_blocks before its co_await at ") != std::string::npos);
            CHECK(text.find(at + std::to_string(dumper_line) + "\n") != std::string::npos);
            CHECK(text.find("until it finished") == std::string::npos);
        }
    }
    SECTION("a task resumed inline by the blocking task's code is not named") {
        parked p;
        const std::string text = stall_report([&p](conet::reactor& r) -> conet::task<> {
            auto b = r.tasks().spawn(blocks_then_resumes_inline(p), "blocker");
            auto i = r.tasks().spawn(parks(p), "innocent");
            while (!b.done() || !i.done())
                co_await conet::sleep_for(std::chrono::milliseconds(1));
        });
        INFO(text);
        CHECK(count_of(text, "conet: stall:") == 1);
        CHECK(text.find("\"blocker\" ran 1") != std::string::npos);
        CHECK(text.find("in blocks_then_resumes_inline after its co_await at ") !=
              std::string::npos);
        CHECK(text.find(at + std::to_string(resumer_line) + ", until it resumed another task") !=
              std::string::npos);
        CHECK(text.find("innocent") == std::string::npos);
    }
}

TEST_CASE("the stall detector names a posted function that blocks the loop", "[task_dump][stall]") {
    SECTION("reactor::post") {
        const std::string text = stall_report([](conet::reactor& r) -> conet::task<> {
            r.post([] { ::usleep(100000); });
            co_await conet::sleep_for(std::chrono::milliseconds(5));
        });
        INFO(text);
        CHECK(count_of(text, "conet: stall:") == 1);
        CHECK(text.find("conet: stall: a posted function (reactor::post) ran 1") !=
              std::string::npos);
    }
    SECTION("a task it resumes is named for its own blocking, not the posted function") {
        // (conet::resume_on hands a task over through a posted node that resumes it)
        const std::string text = stall_report([](conet::reactor& r) -> conet::task<> {
            auto h = r.tasks().spawn(
                [](conet::reactor& here) -> conet::task<> {
                    co_await conet::resume_on(here); // (posted to the same reactor)
                    ::usleep(100000);
                    co_await conet::sleep_for(std::chrono::milliseconds(1));
                }(r),
                "moved");
            while (!h.done())
                co_await conet::sleep_for(std::chrono::milliseconds(1));
        });
        INFO(text);
        CHECK(count_of(text, "conet: stall:") == 1);
        CHECK(text.find("\"moved\" ran 1") != std::string::npos);
        CHECK(text.find("posted") == std::string::npos);
    }
}

TEST_CASE("task dump: function names are cut to the function, templates and lambdas too",
          "[task_dump]") {
    auto cut = [](const char* pretty) {
        char out[160];
        conet::detail::short_function(pretty, out, sizeof out);
        return std::string(out);
    };
    // GCC 12's, for a template whose return type names its parameters: a "[with ...]" part.
    CHECK(cut("conet::task<T> conet::with_timeout(task<T>, std::chrono::duration<_Rep, _Period>) "
              "[with T = int; Rep = long int; Period = std::ratio<1>]") == "conet::with_timeout");
    CHECK(cut("T ns::S<U>::f(int) [with T = int; U = std::map<int, int>]") == "ns::S<U>::f");
    // GCC's lambda at namespace scope: no space after the return type.
    CHECK(cut("void<lambda(std::map<int, int>)>::operator()(<lambda(std::map<int, int>)>::_"
              "ZNK2opMUlSt3mapIiiSt4lessIiESaISt4pairIKiiEEEE_clES6_.Frame*)") ==
          "<lambda(std::map<int, int>)>");
    // What already held.
    CHECK(cut("void two(two<int, double>(int, double)::_Z3twoIidE2coT_T0_.Frame*)") == "two");
    CHECK(cut("void S<std::map<int, int> >::m(S<std::map<int, int> >::m()::_ZN1SISt3mapIiiSt4l"
              "essIiESaISt4pairIKiiEEEE1mEv.Frame*)") == "S<std::map<int, int> >::m");
    CHECK(cut("void main()::<lambda(int)>::operator()(main()::<lambda(int)>::_ZZ4mainENKUliE_"
              "clEi.Frame*)") == "main()::<lambda(int)>");
    CHECK(cut("void {anonymous}::anon(anon()::_ZN12_GLOBAL__N_14anonEv.Frame*)") == "anon");
    CHECK(cut("conet::task<> f(int)") == "f");
    CHECK(cut("plain") == "plain"); // Clang 14's __builtin_FUNCTION()
    CHECK(cut("operator()") == "operator()");
    CHECK(cut("") == "");
    CHECK(cut(nullptr) == "");
    char small[4];
    conet::detail::short_function("conet::task<> function_name(int)", small, sizeof small);
    CHECK(std::string(small) == "fun");
}

TEST_CASE("task dump: the small things (spawn with a name on the reactor, durations, stall "
          "thresholds under a nanosecond, the signal mask after the reactor)",
          "[task_dump]") {
    SECTION("reactor::spawn(t, name)") {
        conet::reactor r;
        std::vector<conet::task_info> list;
        run_bounded(r, [&]() -> conet::task<> {
            r.spawn(sleeper(), "by the reactor");
            co_await conet::yield();
            list = conet::task_list(r);
            r.tasks().cancel();
        }());
        const auto* t = named(list, "by the reactor");
        REQUIRE(t);
        CHECK(t->group == "reactor");
    }
    SECTION("a duration that rounds to 1000.0 ms is shown in seconds") {
        conet::task_info t;
        t.operation = "sleep";
        t.deadline = std::chrono::nanoseconds(999'960'000);
        CHECK(conet::detail::dump_line(t) == "awaits: sleep, deadline in 1.0 s");
        t.deadline = std::chrono::nanoseconds(999'940'000);
        CHECK(conet::detail::dump_line(t) == "awaits: sleep, deadline in 999.9 ms");
    }
    SECTION("CONET_STALL_MS below a nanosecond is the smallest threshold, not off") {
        ::setenv("CONET_STALL_MS", "0.0000001", 1);
        conet::reactor r;
        ::unsetenv("CONET_STALL_MS");
        CHECK(r.stall_threshold() == std::chrono::nanoseconds(1));
    }
    SECTION("CONET_DUMP_SIGNAL: the thread's mask is as it was once the reactor is gone") {
        // (On a thread of its own: the test's thread keeps its mask whatever happens.)
        auto blocked = [](int sig) {
            sigset_t now;
            ::pthread_sigmask(SIG_BLOCK, nullptr, &now);
            return sigismember(&now, sig) == 1;
        };
        bool before = true, during = false, after = true, kept = false;
        std::thread t([&] {
            before = blocked(SIGWINCH);
            {
                ::setenv("CONET_DUMP_SIGNAL", "SIGWINCH", 1);
                conet::reactor r;
                ::unsetenv("CONET_DUMP_SIGNAL");
                during = blocked(SIGWINCH);
                run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
            }
            after = blocked(SIGWINCH);
            // Blocked before the reactor: blocked after it too.
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGWINCH);
            ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
            {
                ::setenv("CONET_DUMP_SIGNAL", "SIGWINCH", 1);
                conet::reactor r;
                ::unsetenv("CONET_DUMP_SIGNAL");
            }
            kept = blocked(SIGWINCH);
        });
        t.join();
        CHECK(!before);
        CHECK(during);
        CHECK(!after);
        CHECK(kept);
    }
}

TEST_CASE("CONET_DUMP_SIGNAL: a dump on the signal says which reactor it is (its thread), and "
          "how many reactors watch the signal",
          "[task_dump]") {
    // With several reactors (a reactor_pool), each signal dumps one of them: the dump must
    // say which (it said nothing: "task 2" on one reactor was not "task 2" on another).
    pid_t thread_id = 0;
    const std::string text = captured_stderr([&] {
        std::thread t([&] {
            thread_id = ::gettid();
            ::setenv("CONET_DUMP_SIGNAL", "SIGWINCH", 1);
            conet::reactor r;
            conet::reactor other; // (never run: it watches the signal too)
            ::unsetenv("CONET_DUMP_SIGNAL");
            run_bounded(r, []() -> conet::task<> {
                ::pthread_kill(::pthread_self(), SIGWINCH); // (blocked: read by a signalfd)
                for (int i = 0; i < 20; ++i)
                    co_await conet::sleep_for(std::chrono::milliseconds(1));
            }());
        });
        t.join();
    });
    INFO(text);
    const auto header = text.find("conet: CONET_DUMP_SIGNAL (signal " + std::to_string(SIGWINCH) +
                                  "): the reactor on thread " + std::to_string(thread_id) +
                                  ", one of 2 reactors watching this signal");
    CHECK(header != std::string::npos);
    CHECK(text.find("conet: task dump: ") > header);
    CHECK(text.find("conet: task dump: ") != std::string::npos);
}

TEST_CASE("CONET_DUMP_SIGNAL: the reactor that reads the signal has every other reactor of the "
          "process dump too",
          "[task_dump]") {
    // With a reactor_pool, a signal sent to the process is read by one reactor: the others
    // said nothing (their tasks, on their own threads, were not in the dump).
    pid_t threads[2] = {0, 0};
    const std::string text = captured_stderr([&] {
        std::thread t([&] { // (its own thread: the test's keeps its mask)
            ::setenv("CONET_DUMP_SIGNAL", "SIGWINCH", 1);
            conet::reactor_pool pool(2);
            ::unsetenv("CONET_DUMP_SIGNAL");
            pool.run([&](std::size_t i) -> conet::task<> {
                threads[i] = ::gettid();
                co_await conet::sleep_for(std::chrono::milliseconds(5));
                // (to this thread, blocked here: read by reactor 0's signalfd, as a signal
                // to the process is read by one of the reactors)
                if (i == 0) ::pthread_kill(::pthread_self(), SIGWINCH);
                for (int n = 0; n < 40; ++n)
                    co_await conet::sleep_for(std::chrono::milliseconds(1));
            });
        });
        t.join();
    });
    INFO(text);
    REQUIRE(threads[0] != 0);
    REQUIRE(threads[1] != 0);
    CHECK(count_of(text, "conet: task dump: ") == 2);
    const std::string head = "conet: CONET_DUMP_SIGNAL (signal " + std::to_string(SIGWINCH) +
                             "): the reactor on thread ";
    CHECK(text.find(head + std::to_string(threads[0]) +
                    ", one of 2 reactors watching this signal\n") != std::string::npos);
    CHECK(text.find(head + std::to_string(threads[1]) +
                    ", one of 2 reactors watching this signal (the signal was read by the "
                    "reactor on thread " +
                    std::to_string(threads[0]) + ")\n") != std::string::npos);
}

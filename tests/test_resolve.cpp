// Tests for conet/resolve.hpp: lookups on the pool's helper threads that never block the
// reactor, their cancellation (queued or running: the helper's late answer must touch nothing
// that has gone), the pool's bound on threads, and connecting by name. Every lookup stays on
// this machine: localhost, numeric addresses, names under "invalid" (RFC 6761), which conet
// fails without asking anyone, and names under "test", which the test resolver answers.
#include <conet/conet.hpp>

#include <dirent.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "child_process.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using conet::endpoint;
using conet_test::run_bounded;

namespace {

conet::detail::lookup_pool_counts pool() {
    return conet::detail::lookup_pool<>::counts();
}

// Waits (bounded) until no lookup is queued or running, so that none outlives its test (the
// descriptor check would see its files, and a crash would be blamed on the next test).
bool helpers_finished(std::chrono::milliseconds limit = 10s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        const auto now = pool();
        if (now.queued == 0 && now.running == 0) return true;
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
}

// Waits (bounded) until `holds()`.
template <class F>
bool eventually(F holds, std::chrono::milliseconds limit = 5s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!holds()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// The threads of this process, as the kernel counts them.
std::size_t threads_alive() {
    std::size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/task")) {
        while (const dirent* e = ::readdir(d))
            n += e->d_name[0] != '.';
        ::closedir(d);
    }
    return n;
}

// The resolver the helpers call while one lives (detail::resolve_test_hook). Each call is
// recorded (host, thread), then waits until release() or until `delay` has passed. A name
// under "test" is answered here, never asked of the system: "N.test" (N a number) is
// 127.0.0.1:N, others what answer() set (127.0.0.1:80 if nothing). Other names go on to the
// real lookup. The state is never destroyed: a helper may still wait in it when a child
// process exits.
class test_resolver {
public:
    struct call {
        std::string host;
        pthread_t thread;
    };

    explicit test_resolver(std::chrono::milliseconds delay) {
        std::lock_guard lock(state().mutex);
        state().delay = delay;
        state().released = false;
        state().calls.clear();
        state().answers.clear();
        conet::detail::resolve_test_hook.store(&hook);
    }
    ~test_resolver() {
        release();
        CHECK(helpers_finished());
        conet::detail::resolve_test_hook.store(nullptr);
    }
    test_resolver(const test_resolver&) = delete;
    test_resolver& operator=(const test_resolver&) = delete;

    // Lets every waiting call (and every later one) go on at once.
    static void release() {
        {
            std::lock_guard lock(state().mutex);
            state().released = true;
        }
        state().changed.notify_all();
    }
    static void answer(const std::string& host, std::vector<endpoint> found) {
        std::lock_guard lock(state().mutex);
        state().answers.emplace_back(host, std::move(found));
    }
    static std::vector<call> calls() {
        std::lock_guard lock(state().mutex);
        return state().calls;
    }
    static bool called(const std::string& host) {
        for (const call& c : calls())
            if (c.host == host) return true;
        return false;
    }
    // Blocks this thread (not a reactor's) until `n` calls were made, or `limit` passes.
    static bool wait_for_calls(std::size_t n, std::chrono::milliseconds limit = 10s) {
        std::unique_lock lock(state().mutex);
        return state().changed.wait_for(lock, limit, [n] { return state().calls.size() >= n; });
    }

private:
    struct shared {
        std::mutex mutex;
        std::condition_variable changed;
        std::chrono::milliseconds delay{0};
        bool released = false;
        std::vector<call> calls;
        std::vector<std::pair<std::string, std::vector<endpoint>>> answers;
    };
    static shared& state() {
        static shared& s = *new shared; // never destroyed (see above)
        return s;
    }

    static bool hook(const std::string& host, std::vector<endpoint>& found, std::error_code& ec) {
        std::unique_lock lock(state().mutex);
        state().calls.push_back({host, ::pthread_self()});
        state().changed.notify_all();
        state().changed.wait_for(lock, state().delay, [] { return state().released; });
        const std::string suffix = ".test";
        if (host.size() <= suffix.size() || host.compare(host.size() - 5, 5, suffix) != 0)
            return false; // the real lookup
        ec.clear();
        for (const auto& [name, answer] : state().answers)
            if (name == host) {
                found = answer;
                return true;
            }
        const std::string label = host.substr(0, host.size() - suffix.size());
        const auto port = endpoint::parse_port(label);
        found = {endpoint{conet::ip_address::loopback(), port ? *port : std::uint16_t{80}}};
        return true;
    }
};

// Sets the pool's maximum for as long as it lives.
struct pool_size {
    explicit pool_size(std::size_t n) : before(conet::lookup_threads()) {
        conet::set_lookup_threads(n);
    }
    ~pool_size() { conet::set_lookup_threads(before); }
    pool_size(const pool_size&) = delete;
    pool_size& operator=(const pool_size&) = delete;
    std::size_t before;
};

// Runs the reactor until `done()` holds (each turn sleeps 1 ms), bounded by the watchdog.
template <class F>
void run_until(conet::reactor& r, F done) {
    run_bounded(r, [](F d) -> conet::task<> {
        while (!d())
            co_await conet::sleep_for(1ms);
    }(std::move(done)));
}

conet::task<> look_up(std::string host, std::error_code& out) {
    co_await conet::async_resolve(std::move(host), "80", conet::resolve_family::any, out);
}

} // namespace

TEST_CASE("async_resolve finds localhost and numeric addresses", "[resolve]") {
    auto found = run_bounded([]() -> conet::task<std::vector<endpoint>> {
        co_return co_await conet::async_resolve("localhost", "8888");
    }());
    REQUIRE_FALSE(found.empty());
    for (const auto& e : found) {
        CHECK(e.port() == 8888);
        CHECK(e.address().is_loopback());
    }
    found = run_bounded([]() -> conet::task<std::vector<endpoint>> {
        co_return co_await conet::async_resolve("127.0.0.1", "http", conet::resolve_family::v4);
    }());
    REQUIRE(found.size() == 1);
    CHECK(found.front() == endpoint::parse("127.0.0.1:80"));
    CHECK(helpers_finished());
}

TEST_CASE("async_resolve reports failures like resolve", "[resolve]") {
    CHECK_THROWS_WITH(run_bounded(conet::async_resolve("nothing.invalid", "80")),
                      "resolve nothing.invalid: Name or service not known");
    CHECK_THROWS_WITH(run_bounded(conet::async_resolve("localhost", "no-such-service")),
                      "resolve localhost: service \"no-such-service\": Unknown service name");
    std::error_code ec;
    auto found = run_bounded(
        conet::async_resolve("::1", "80", conet::resolve_family::v4, ec)); // no IPv4 for ::1
    CHECK(found.empty());
    CHECK(ec);
    found = run_bounded(conet::async_resolve("localhost", "80", conet::resolve_family::any, ec));
    CHECK_FALSE(ec);
    CHECK_FALSE(found.empty());
    CHECK(helpers_finished());
}

TEST_CASE("the reactor runs other coroutines while a lookup waits", "[resolve]") {
    test_resolver slow(100ms);
    int ticks = 0;
    auto ticker = [](int& n) -> conet::task<> {
        for (;;) {
            co_await conet::sleep_for(5ms);
            ++n;
        }
    };
    auto lookup = [](conet::task<> t) -> conet::task<std::vector<endpoint>> {
        auto result =
            co_await conet::when_any(conet::async_resolve("localhost", "80"), std::move(t));
        co_return std::get<0>(std::move(result));
    };
    const auto found = run_bounded(lookup(ticker(ticks)));
    CHECK_FALSE(found.empty());
    CHECK(ticks >= 5); // the loop went on for the lookup's 100 ms
    CHECK(helpers_finished());
}

TEST_CASE("a cancelled lookup ends at once, and the helper's late answer is dropped", "[resolve]") {
    test_resolver slow(500ms);
    SECTION("with_timeout of 1 ms") {
        const auto start = std::chrono::steady_clock::now();
        CHECK_THROWS_WITH(
            run_bounded(conet::with_timeout(conet::async_resolve("localhost", "80"), 1ms)),
            Catch::Contains("timed out"));
        CHECK(std::chrono::steady_clock::now() - start < 400ms); // did not wait for the helper
        const auto now = pool();
        CHECK(now.queued == 0);  // it left the queue, if it was there
        CHECK(now.running <= 1); // or its helper still looks it up
    }
    SECTION("with_timeout of 0") {
        CHECK_THROWS_WITH(
            run_bounded(conet::with_timeout(conet::async_resolve("localhost", "80"), 0ms)),
            Catch::Contains("timed out"));
    }
    SECTION("cancelled through its handle, non-throwing form") {
        std::error_code ec = conet::error::closed;
        conet::reactor r;
        auto lookup = [](std::error_code& out) -> conet::task<> {
            co_await conet::async_resolve("localhost", "80", conet::resolve_family::any, out);
        };
        auto handle = r.spawn(lookup(ec));
        run_bounded(r, [](conet::task_handle h) -> conet::task<> {
            co_await conet::sleep_for(10ms);
            h.cancel();
            co_await conet::yield();
        }(handle));
        CHECK(handle.done());
        CHECK(ec == std::errc::operation_canceled);
    }
    SECTION("cancelled between two runs of the reactor") {
        conet::reactor r;
        auto handle = r.spawn(conet::async_resolve("localhost", "80"));
        run_bounded(r, []() -> conet::task<> { co_await conet::sleep_for(10ms); }());
        handle.cancel(); // no run in progress: the lookup's end waits for the next
        CHECK_FALSE(handle.done());
        run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
        CHECK(handle.done());
    }
    SECTION("a task cancelled before it awaits starts no helper") {
        conet::reactor r;
        bool reached = false;
        auto lookup = [](bool& flag) -> conet::task<> {
            flag = true;
            co_await conet::async_resolve("localhost", "80");
        };
        auto handle = r.spawn(lookup(reached));
        handle.cancel();
        run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
        CHECK(reached); // it did await the lookup
        CHECK(handle.done());
        const auto now = pool();
        CHECK(now.queued == 0);
        CHECK(now.running == 0);
        CHECK(test_resolver::calls().empty());
    }
    SECTION("the reactor is destroyed while the lookup runs") {
        {
            conet::reactor r;
            r.spawn(conet::async_resolve("localhost", "80"));
            run_until(r, [] { return !test_resolver::calls().empty(); });
            CHECK(pool().running == 1);
        } // the frame awaiting the lookup goes with the reactor
    }
    // The helpers finish after their awaiters, frames and reactors have gone: under ASan and
    // TSan this is where a helper touching any of them would be caught.
    CHECK(helpers_finished());
}

TEST_CASE("many lookups at once, some cancelled, some answered", "[resolve]") {
    // The resolver answers nothing until the 8 timeouts have been counted: a cancelled
    // lookup that waited for its answer would never time out.
    test_resolver held(5s);
    struct outcome {
        int answered = 0;
        int timed_out = 0;
        int other_failures = 0;
        int answered_before_release = -1;
    };
    auto some = []() -> conet::task<outcome> {
        conet::task_group group;
        outcome out;
        auto one = [](int& n) -> conet::task<> {
            std::error_code ec;
            auto found =
                co_await conet::async_resolve("localhost", "80", conet::resolve_family::any, ec);
            if (!ec && !found.empty()) ++n;
        };
        auto cancelled = []() -> conet::task<> {
            co_await conet::with_timeout(conet::async_resolve("localhost", "80"), 1ms);
        };
        group.set_failure_handler([&out](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::system_error& failure) {
                ++(failure.code() == std::errc::timed_out ? out.timed_out : out.other_failures);
            } catch (...) {
                ++out.other_failures;
            }
        });
        for (int i = 0; i < 8; ++i) {
            group.spawn(one(out.answered));
            group.spawn(cancelled());
        }
        while (out.timed_out + out.other_failures < 8) // bounded by the watchdog
            co_await conet::sleep_for(1ms);
        out.answered_before_release = out.answered;
        test_resolver::release();
        co_await group.join();
        co_return out;
    };
    const outcome out = run_bounded(some());
    CHECK(out.answered_before_release == 0);
    CHECK(out.answered == 8);
    CHECK(out.timed_out == 8);
    CHECK(out.other_failures == 0);
    CHECK(helpers_finished());
}

TEST_CASE("connect by name tries each address until one accepts", "[resolve]") {
    // "two.test" is a refused address first, then the listener's: the first connect fails
    // for certain, so only a retry can reach the listener.
    test_resolver fake(0ms);
    conet_test::refused_port refused;
    auto listener = conet::tcp_listener::bind(conet_test::any_loopback_port());
    const std::string port = std::to_string(listener.local_endpoint().port());
    test_resolver::answer("two.test", {refused.endpoint(), listener.local_endpoint()});
    auto talk = [](conet::tcp_listener& l, std::string p) -> conet::task<std::string> {
        auto accepted = [](conet::tcp_listener& l) -> conet::task<conet::tcp_stream> {
            auto [conn, peer] = co_await l.accept();
            co_return std::move(conn);
        };
        auto [client, server] =
            co_await conet::when_all(conet::connect("two.test", p), accepted(l));
        co_await client.send_all("hi");
        char buf[2];
        co_await server.recv_exact(buf);
        co_return std::string(buf, 2);
    };
    CHECK(run_bounded(talk(listener, port)) == "hi");
    CHECK(test_resolver::called("two.test"));
    // Both refused: the error lists the two tries in order, so the first was tried.
    conet_test::refused_port also_refused;
    test_resolver::answer("none.test", {refused.endpoint(), also_refused.endpoint()});
    CHECK_THROWS_WITH(run_bounded(conet::connect("none.test", "1")),
                      "connect none.test:1 (tried " + refused.endpoint().to_string() +
                          ": Connection refused; " + also_refused.endpoint().to_string() +
                          ": Connection refused): Connection refused");
    CHECK(helpers_finished());
}

TEST_CASE("connect by name names the host and every address it tried", "[resolve]") {
    conet_test::refused_port refused;
    const std::string port = std::to_string(refused.port());
    CHECK_THROWS_WITH(run_bounded(conet::connect("127.0.0.1", port)),
                      "connect 127.0.0.1:" + port + " (tried 127.0.0.1:" + port +
                          ": Connection refused): Connection refused");
    CHECK_THROWS_WITH(run_bounded(conet::connect("nothing.invalid", "80")),
                      "resolve nothing.invalid: Name or service not known");
    CHECK_THROWS_WITH(run_bounded(conet::connect("localhost", "no-such-service")),
                      Catch::Contains("service \"no-such-service\": Unknown service name"));
    std::error_code ec;
    auto conn = run_bounded(conet::connect("127.0.0.1", port, conet::resolve_family::v4, ec));
    CHECK(ec == std::errc::connection_refused);
    CHECK_FALSE(conn.is_open());
    CHECK(helpers_finished());
}

namespace {
conet::task<> lookup_localhost(bool& finished) {
    co_await conet::async_resolve("localhost", "80");
    finished = true;
}
conet::task<> await_lvalue(conet::task<>& t) {
    co_await t;
}
} // namespace

TEST_CASE("a lookup whose frame outlives its reactor never posts to the destroyed reactor",
          "[resolve]") {
    test_resolver slow(5s); // the helper is still looking up when the reactor goes
    bool finished = false;
    conet::task<> inner = lookup_localhost(finished); // owned here, not by the reactor
    {
        conet::reactor r;
        // Stops the run once the helper has the lookup: run() is then in progress (the lookup
        // was started by it) and cannot end before the stop (the helper waits for release).
        std::thread stopper([&] {
            if (test_resolver::wait_for_calls(1)) r.stop();
        });
        CHECK_THROWS(r.run(await_lvalue(inner))); // stopped: its task destroyed, inner not
        stopper.join();
        CHECK(pool().running == 1);
    } // the reactor goes while the helper runs (ASan: it must not post into it)
    test_resolver::release();
    CHECK(helpers_finished());
    CHECK(!finished); // never resumed
}

TEST_CASE("a thousand lookups timed out against a hung resolver hold only the pool's threads",
          "[resolve]") {
    test_resolver hung(3s);
    const std::size_t most = conet::lookup_threads();
    // A thread started and joined first: ThreadSanitizer starts its background thread with
    // the process's first thread, which must be counted among the others, not the pool's.
    std::thread([] {}).join();
    const std::size_t others = threads_alive() - pool().threads; // this thread, sanitizers'
    struct seen {
        int finished = 0;
        int timed_out = 0;
        std::size_t most_helpers = 0;
        std::size_t most_threads = 0;
    };
    auto one = [](seen& s) -> conet::task<> {
        try {
            co_await conet::with_timeout(conet::async_resolve("localhost", "80"), 5ms);
        } catch (const std::system_error& e) {
            if (e.code() == std::errc::timed_out) ++s.timed_out;
        }
        ++s.finished;
    };
    auto all = [](seen& s, auto one) -> conet::task<> {
        conet::task_group group;
        for (int i = 0; i < 1000; ++i)
            group.spawn(one(s));
        for (;;) { // samples the threads until every lookup has ended
            s.most_helpers = std::max(s.most_helpers, pool().threads);
            s.most_threads = std::max(s.most_threads, threads_alive());
            if (s.finished == 1000) break;
            co_await conet::sleep_for(1ms);
        }
        co_await group.join();
    };
    seen s;
    const auto start = std::chrono::steady_clock::now();
    run_bounded(all(s, one));
    const auto took = std::chrono::steady_clock::now() - start;
    const std::size_t after = threads_alive();
    INFO("1000 lookups timed out after 5 ms against a 3 s resolver: "
         << after << " threads alive (" << others << " besides the pool, which may have " << most
         << "), " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(s.timed_out == 1000);
    CHECK(took < 2s); // not one waited for the resolver's 3 s
    CHECK(s.most_helpers <= most);
    CHECK(s.most_threads <= others + 1 + most); // + the watchdog
    CHECK(after <= others + most);
    const auto now = pool();
    CHECK(now.queued == 0);     // every queued lookup left the queue when cancelled
    CHECK(now.running <= most); // those running still wait for the resolver
    CHECK(test_resolver::calls().size() <= most); // the rest never reached it
}

TEST_CASE("a lookup cancelled while queued ends at once and never reaches the resolver",
          "[resolve]") {
    pool_size size(2);
    test_resolver hung(3s);
    conet::reactor r;
    std::error_code first, second, queued = conet::error::closed;
    auto a = r.spawn(look_up("busy-1.test", first));
    auto b = r.spawn(look_up("busy-2.test", second));
    run_until(r, [] { return test_resolver::calls().size() == 2; }); // both helpers busy
    auto c = r.spawn(look_up("queued.test", queued));
    run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
    CHECK(pool().queued == 1);
    CHECK_FALSE(c.done());
    c.cancel();
    run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
    CHECK(c.done()); // at the first turn, without any helper
    CHECK(queued == std::errc::operation_canceled);
    CHECK(pool().queued == 0);
    test_resolver::release();
    run_until(r, [&] { return a.done() && b.done(); });
    CHECK_FALSE(first);
    CHECK_FALSE(second);
    CHECK(helpers_finished());
    CHECK_FALSE(test_resolver::called("queued.test"));
    CHECK(test_resolver::calls().size() == 2);
}

TEST_CASE("a lookup cancelled while running leaves its thread to the next lookup", "[resolve]") {
    pool_size size(1);
    test_resolver hung(3s);
    conet::reactor r;
    std::error_code first = conet::error::closed, second = conet::error::closed;
    {
        auto a = r.spawn(look_up("first.test", first));
        run_until(r, [] { return test_resolver::calls().size() == 1; }); // it runs
        a.cancel();
        run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
        CHECK(a.done()); // at once: the helper still waits in the resolver
        CHECK(first == std::errc::operation_canceled);
    } // its frame is gone: the helper's answer must go nowhere
    auto b = r.spawn(look_up("4321.test", second));
    run_bounded(r, []() -> conet::task<> { co_await conet::yield(); }());
    CHECK(pool().queued == 1); // waits for the one helper
    test_resolver::release();
    run_until(r, [&] { return b.done(); });
    CHECK_FALSE(second);
    const auto calls = test_resolver::calls();
    REQUIRE(calls.size() == 2);
    CHECK(calls[1].host == "4321.test");
    CHECK(::pthread_equal(calls[0].thread, calls[1].thread)); // the same helper
    // Helpers left above the lowered maximum end once woken; none was added.
    CHECK(eventually([] { return pool().threads <= 1; }));
}

TEST_CASE("lookups from two reactors on two threads come back to their own reactor", "[resolve]") {
    pool_size size(2); // both reactors' lookups share two helpers
    test_resolver quick(1ms);
    struct tally {
        int right = 0;
        int wrong = 0;
    };
    auto lookups = [](std::uint16_t first_port, tally& t) -> conet::task<> {
        auto one = [](std::uint16_t port, tally& t) -> conet::task<> {
            conet::reactor* mine = conet::reactor::current();
            const auto found = co_await conet::async_resolve(std::to_string(port) + ".test", "1");
            const bool same = conet::reactor::current() == mine && found.size() == 1 &&
                              found.front().port() == port;
            ++(same ? t.right : t.wrong);
        };
        conet::task_group group;
        for (std::uint16_t i = 0; i < 100; ++i)
            group.spawn(one(static_cast<std::uint16_t>(first_port + i), t));
        co_await group.join();
    };
    tally one_side, other_side;
    std::thread other([&] { run_bounded(lookups(2000, other_side)); });
    run_bounded(lookups(1000, one_side));
    other.join();
    CHECK(one_side.right == 100);
    CHECK(one_side.wrong == 0);
    CHECK(other_side.right == 100);
    CHECK(other_side.wrong == 0);
}

TEST_CASE("set_lookup_threads takes a positive number", "[resolve]") {
    CHECK_THROWS_AS(conet::set_lookup_threads(0), std::invalid_argument);
    pool_size size(3);
    CHECK(conet::lookup_threads() == 3);
}

// ThreadSanitizer does not support a child of a multi-threaded fork() that starts threads.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RESOLVE_TEST_TSAN
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define RESOLVE_TEST_TSAN
#endif
#ifndef RESOLVE_TEST_TSAN
TEST_CASE("after fork(), the child's lookups run on helpers of its own", "[resolve]") {
    test_resolver hung(3s);
    conet::reactor r;
    std::error_code busy = conet::error::closed;
    auto a = r.spawn(look_up("busy.test", busy));
    run_until(r, [] { return test_resolver::calls().size() == 1; });
    REQUIRE(pool().threads >= 1); // a helper, busy: the child has no copy of it
    const pid_t pid = ::fork();
    if (pid == 0) {   // the child: only _exit, never back into the test runner
        int code = 3; // 3: an exception (the watchdog stopped a lookup that never ended)
        try {
            test_resolver::release();
            std::error_code ec = conet::error::closed;
            std::vector<endpoint> found;
            auto fresh = [](std::vector<endpoint>& out, std::error_code& e) -> conet::task<> {
                out = co_await conet::async_resolve("7.test", "1", conet::resolve_family::any, e);
            };
            run_bounded(r, fresh(found, ec), 5s);
            const bool fresh_ok = !ec && found.size() == 1 && found.front().port() == 7;
            run_until(r, [&] { return a.done(); }); // the parent's running lookup, done again
            code = !fresh_ok ? 1 : busy ? 2 : 0; // 1: no fresh lookup; 2: the parent's not redone
        } catch (...) {
        }
        ::_exit(code);
    }
    REQUIRE(pid > 0);
    const int status = conet_test::wait_for_child(pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0); // see the child's codes above
    test_resolver::release();
    run_until(r, [&] { return a.done(); });
    CHECK_FALSE(busy);
}
#endif

// Run by the next test in a process of its own: a lookup hangs in the resolver while the
// process exits.
TEST_CASE("(child) exits while a lookup hangs", "[.][resolve_exit_child]") {
    conet::detail::resolve_test_hook.store(
        [](const std::string&, std::vector<endpoint>&, std::error_code&) {
            for (;;)
                ::pause(); // a resolver that never answers
            return false;
        });
    std::error_code ec;
    conet::reactor r;
    r.run([](std::error_code& out) -> conet::task<> {
        try {
            co_await conet::with_timeout(conet::async_resolve("localhost", "80"), 5ms);
        } catch (const std::system_error& e) {
            out = e.code();
        }
    }(ec));
    std::cout << "lookup: " << ec.message() << std::endl;
    std::exit(ec == std::errc::timed_out ? 0 : 1); // static destructors run: none may wait
}

TEST_CASE("the process can exit while a lookup hangs", "[resolve]") {
    conet_test::child_process child("/proc/self/exe", {"[resolve_exit_child]"});
    const auto line = child.read_line_starting("lookup:");
    CHECK(line == "lookup: Connection timed out");
    CHECK(child.wait(5s) == 0);
}

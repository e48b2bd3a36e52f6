// Tests for conet/task.hpp: values, references, void, exceptions, laziness, and symmetric
// transfer (a million synchronous completions must not grow the stack).
#include <conet/task.hpp>

#include <coroutine>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "catch.hpp"
#include "support.hpp"

namespace {

conet::task<int> answer() {
    co_return 42;
}

conet::task<std::string> text(std::string s) {
    co_return s + "!";
}

conet::task<std::unique_ptr<int>> move_only_value() {
    co_return std::make_unique<int>(7);
}

int global_value = 5;
conet::task<int&> reference() {
    co_return global_value;
}

conet::task<> fail() {
    throw std::runtime_error("boom");
    co_return;
}

conet::task<int> fail_with_value() {
    co_await fail();
    co_return 1;
}

} // namespace

static_assert(!std::is_copy_constructible_v<conet::task<int>>);
static_assert(std::is_nothrow_move_constructible_v<conet::task<int>>);

TEST_CASE("task returns values, move-only values, references and void", "[task]") {
    auto body = []() -> conet::task<int> {
        int a = co_await answer();
        std::string s = co_await text("hi");
        auto p = co_await move_only_value();
        int& r = co_await reference();
        r = 6;
        co_return a + static_cast<int>(s.size()) + *p;
    };
    CHECK(conet_test::run_bounded(body()) == 42 + 3 + 7);
    CHECK(global_value == 6);
}

TEST_CASE("task exceptions propagate to the awaiter", "[task]") {
    auto catches = []() -> conet::task<std::string> {
        try {
            co_await fail_with_value();
        } catch (const std::runtime_error& e) {
            co_return e.what();
        }
        co_return "not thrown";
    };
    CHECK(conet_test::run_bounded(catches()) == "boom");
    CHECK_THROWS_WITH(conet_test::run_bounded(fail_with_value()), "boom");
}

TEST_CASE("task is lazy and destroying an unstarted task runs nothing", "[task]") {
    bool started = false;
    auto body = [&]() -> conet::task<> {
        started = true;
        co_return;
    };
    {
        auto t = body();
        CHECK_FALSE(started);
        CHECK(t.valid());
        CHECK_FALSE(t.done());
    }
    CHECK_FALSE(started);
    auto t = body();
    auto moved = std::move(t);
    CHECK_FALSE(t.valid());
    conet_test::run_bounded(std::move(moved));
    CHECK(started);
}

namespace {

// The stack pointer of an ordinary function's frame (a coroutine's locals live in its heap
// frame, so the probe must call out to see the thread's stack).
[[gnu::noinline]] std::uintptr_t stack_address() {
    return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
}

// Records where the stack is inside a task that finishes without suspending.
conet::task<std::uintptr_t> stack_depth_probe() {
    co_return stack_address();
}

} // namespace

TEST_CASE("a million synchronously completing awaits do not grow the stack", "[task]") {
    auto loop = []() -> conet::task<std::intptr_t> {
        const auto first = co_await stack_depth_probe();
        std::uintptr_t last = first;
        for (int i = 0; i < 1'000'000; ++i)
            last = co_await stack_depth_probe();
        co_return static_cast<std::intptr_t>(first) - static_cast<std::intptr_t>(last);
    };
    // Without symmetric transfer every iteration would nest a frame deeper (and crash long
    // before the end); with it the probe runs at the same depth each time.
    const auto drift = conet_test::run_bounded(loop(), std::chrono::seconds(60));
    CHECK(drift < 4096);
    CHECK(drift > -4096);
}

namespace {

// Awaits itself `depth` levels deep; every level finishes without suspending.
conet::task<int> nested(int depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await nested(depth - 1);
}

} // namespace

TEST_CASE("nested awaits that finish at once work to the documented depth", "[task]") {
    // task.hpp: each nesting level that finishes at once uses native stack (a few hundred
    // bytes at -O0), so ordinary recursion depths are fine; tens of thousands need more.
    CHECK(conet_test::run_bounded(nested(2'000)) == 2'000);
}

namespace {

// An awaitable that can be neither copied nor moved, and checks that every call reaches the
// object the task's co_await expression created.
class pinned_awaitable {
public:
    explicit pinned_awaitable(bool ready) noexcept : ready_(ready), self_(this) {}
    pinned_awaitable(const pinned_awaitable&) = delete;
    pinned_awaitable& operator=(const pinned_awaitable&) = delete;

    bool await_ready() const noexcept { return ready_ && self_ == this; }
    bool await_suspend(std::coroutine_handle<>) const noexcept { return false; } // go on at once
    bool await_resume() const noexcept { return self_ == this; }

private:
    bool ready_;
    const pinned_awaitable* self_;
};

} // namespace

TEST_CASE("a task awaits a user's awaitable where it stands, without copying or moving it",
          "[task]") {
    static_assert(!std::is_move_constructible_v<pinned_awaitable>);
    auto body = []() -> conet::task<int> {
        int in_place = 0;
        if (co_await pinned_awaitable(true)) ++in_place;  // completes in await_ready
        if (co_await pinned_awaitable(false)) ++in_place; // goes through await_suspend
        pinned_awaitable named(false);
        if (co_await named) ++in_place; // an lvalue
        co_return in_place;
    };
    CHECK(conet_test::run_bounded(body()) == 3);
}

// conet/time.hpp - sleeping and timeouts on the reactor.
//
//     co_await conet::sleep_for(100ms);
//     auto n = co_await conet::with_timeout(conn.recv(buf), 2s);   // throws timed_out
//
// Timers live in the awaiting coroutine's frame and sit on the reactor's binary heap of
// deadlines: arming or cancelling one costs O(log n) and allocates nothing once the heap has
// grown to the largest number of timers pending at once. The reactor sleeps in epoll_wait
// until the earliest deadline, rounded up to the millisecond: a timer never fires early, and
// fires within about a millisecond (plus scheduling delay) after its deadline. No timerfd:
// that would cost a system call per timer armed. Every deadline counts from conet::now(), the
// reactor's clock: steady_clock, or a virtual clock that moves only when the loop has nothing
// else to do (conet/virtual_time.hpp).
#pragma once

#include <concepts>
#include <coroutine>
#include <system_error>
#include <type_traits>
#include <utility>

#include "detail/chrono.hpp"
#include "detail/io_awaiter.hpp"
#include "detail/waiter.hpp"
#include "error.hpp"
#include "reactor.hpp"
#include "task.hpp"
#include "when.hpp"

namespace conet {

/// The clock of every conet deadline.
using steady_clock = std::chrono::steady_clock;

/// The time on the reactor running on this thread: what its deadlines count from. On a
/// reactor with a virtual clock (reactor(clock_kind)), its clock, which stands still while
/// coroutines run; elsewhere (or outside any reactor), steady_clock::now(). Code that asks
/// conet::now() instead of steady_clock is testable with the virtual clock.
inline steady_clock::time_point now() noexcept {
    return detail::clock_now();
}

namespace detail {

/// Suspends until a deadline. Ends with operation_canceled if its task is cancelled, even
/// when the deadline has already passed. A passed deadline costs no wait, but counts against
/// the coroutine's budget like an operation that completes at once, so a loop of zero
/// sleeps still gives the loop its turn.
// The sleep's deadline, in a base of its own placed before the waiter: bases are destroyed
// in reverse, so it outlives ~waiter, which takes it off the heap.
struct deadline_holder {
    deadline deadline_;
};

class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] sleep_op;
class sleep_op : private deadline_holder, public waiter {
public:
    sleep_op(steady_clock::time_point until, std::error_code* out) noexcept
        : waiter(nullptr), until_(until), out_(out) {
        deadline_.is_error = false; // reaching the deadline is what a sleep is for
    }
    sleep_op(const sleep_op& other) noexcept
        : deadline_holder(), waiter(other), until_(other.until_), out_(other.out_) {
        deadline_.is_error = false;
    }

    void set_chain(cancel_state* c) noexcept { chain = c; }

    bool await_ready() noexcept {
        if (cancel_requested()) {
            ec = std::make_error_code(std::errc::operation_canceled);
            return take_budget(); // spent: await_suspend gives the loop its turn first
        }
        return until_ <= clock_now() && take_budget(chain); // (paused: see pause.hpp)
    }

    bool await_suspend(std::coroutine_handle<> h) noexcept {
        handle = h;
        if (ec) return give_turn(*this, h); // cancelled, with the budget spent
        timer = &deadline_;
        ec = arm(until_); // a passed deadline fires at the end of this turn
        if (ec) return false;
        if (loop->trace) [[unlikely]]
            trace_sleeping();
        watch_cancellation();
        return true;
    }

    void await_resume() {
        if (out_)
            *out_ = ec;
        else if (ec)
            throw_error(ec, "sleep");
    }
    /// For the task dump: a sleep, its deadline on the waiter.
    void describe_await(await_view& v) const noexcept {
        v.kind = "sleep";
        v.op = this;
    }

private:
    [[gnu::noinline, gnu::cold]] void trace_sleeping() noexcept {
        if (loop->log)
            loop->log->instant(handle.address(), "sleep waits", "wait", "\"op\":\"sleep\"");
        else
            trace("sleep: the coroutine suspends until its timer expires%s",
                  traced_name(chain).text);
    }

    steady_clock::time_point until_;
    std::error_code* out_;
};

/// A socket operation bounded by with_timeout: the operation and, beside it, its deadline,
/// which it arms when it has to wait (operations without a timeout carry none).
template <class Op>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] timed_operation;
template <class Op>
class timed_operation {
public:
    timed_operation(Op&& op, std::chrono::nanoseconds limit) noexcept : op_(std::move(op)) {
        deadline_.limit = limit;
    }
    // Moves one that has not started (nothing is registered yet).
    timed_operation(timed_operation&& other) noexcept : op_(std::move(other.op_)) {
        deadline_.limit = other.deadline_.limit;
    }
    timed_operation& operator=(timed_operation&&) = delete;

    void set_chain(cancel_state* c) noexcept { op_.set_chain(c); }
    bool await_ready() noexcept {
        op_.timer = &deadline_; // here, where it stays: the awaitable is awaited in place
        return op_.await_ready();
    }
    auto await_suspend(std::coroutine_handle<> h) noexcept { return op_.await_suspend(h); }
    decltype(auto) await_resume() { return op_.await_resume(); }
    /// For the task dump: a loop operation, found in the loop's tables as `Op`'s waiter
    /// (which carries this deadline).
    using loop_operation_of = Op;

private:
    deadline deadline_; // declared first, destroyed last: ~waiter may still take it off
    Op op_;
};

/// `d` in nanoseconds, negative durations as zero and anything beyond a century (which
/// could overflow the clock) as a century: "never" for any practical purpose.
template <class Rep, class Period>
std::chrono::nanoseconds bounded_duration(std::chrono::duration<Rep, Period> d) noexcept {
    constexpr std::chrono::hours century(24 * 365 * 100);
    if (!(d > d.zero())) return std::chrono::nanoseconds(0); // NaN too: it compares false
    if (d >= century) return century;
    return std::chrono::ceil<std::chrono::nanoseconds>(d);
}

/// conet's socket operations: the awaitables with_timeout can bound without a wrapper.
template <class Op>
concept io_operation = std::derived_from<Op, waiter> && requires(Op& op) {
    { op.try_once() } -> std::same_as<bool>;
};

} // namespace detail

/// Suspends the calling coroutine until `deadline` (at once if it has passed).
inline detail::sleep_op sleep_until(steady_clock::time_point deadline) noexcept {
    return {deadline, nullptr};
}
/// Non-throwing form: `ec` reports operation_canceled (or no_reactor) instead.
inline detail::sleep_op sleep_until(steady_clock::time_point deadline,
                                    std::error_code& ec) noexcept {
    return {deadline, &ec};
}

/// Suspends the calling coroutine for `duration`.
template <class Rep, class Period>
detail::sleep_op sleep_for(std::chrono::duration<Rep, Period> duration) noexcept {
    return {detail::later_by(detail::clock_now(), detail::bounded_duration(duration)), nullptr};
}
template <class Rep, class Period>
detail::sleep_op sleep_for(std::chrono::duration<Rep, Period> duration,
                           std::error_code& ec) noexcept {
    return {detail::later_by(detail::clock_now(), detail::bounded_duration(duration)), &ec};
}

/// Bounds how long a socket operation may wait: `co_await with_timeout(conn.recv(buf), 2s)`.
///
/// The limit counts from the moment the operation has to wait (an operation that completes
/// at once never times out). When it expires, the operation stops waiting and fails with
/// std::errc::timed_out ("recv: Connection timed out"), or reports it through its error_code
/// in the non-throwing form; the socket stays usable and what a partial operation already
/// transferred is not lost (send_all's non-throwing form yields the count). The operation
/// resumes exactly once, even when data and deadline arrive together. Allocates nothing.
template <detail::io_operation Op, class Rep, class Period>
detail::timed_operation<Op> with_timeout(Op op, std::chrono::duration<Rep, Period> limit) noexcept {
    return {std::move(op), detail::bounded_duration(limit)};
}

namespace detail {
template <class Rep, class Period>
task<> sleep_task(std::chrono::duration<Rep, Period> limit) {
    co_await sleep_for(limit);
}
} // namespace detail

/// Bounds a whole task: runs `t`, and if it has not finished after `limit`, cancels it, waits
/// for it to unwind, and throws std::system_error with std::errc::timed_out ("with_timeout:
/// Connection timed out"). Otherwise yields what `t` yields (or rethrows what it threw).
/// Allocates two coroutine frames (this one and the timer's).
template <class T, class Rep, class Period>
task<T> with_timeout(task<T> t, std::chrono::duration<Rep, Period> limit) {
    auto outcome = co_await when_any(std::move(t), detail::sleep_task(limit));
    if (outcome.index() == 1)
        detail::throw_error(std::make_error_code(std::errc::timed_out), "with_timeout");
    if constexpr (!std::is_void_v<T>) co_return std::move(std::get<0>(outcome));
}

namespace detail {
template <class Awaitable>
auto await_in_task(Awaitable a) -> task<decltype(std::declval<Awaitable&>().await_resume())> {
    co_return co_await std::move(a);
}

template <class T>
inline constexpr bool is_task = false;
template <class T>
inline constexpr bool is_task<task<T>> = true;
} // namespace detail

/// Bounds any other cancellable awaitable (task_group::join(), a user's awaitable that
/// joins cancellation through cancel_callback): as with_timeout on a task that awaits it.
template <class Awaitable, class Rep, class Period>
requires(!detail::io_operation<Awaitable> && !detail::is_task<Awaitable> &&
         requires(Awaitable & a) {
             a.await_ready();
         }) auto with_timeout(Awaitable a, std::chrono::duration<Rep, Period> limit) {
    return with_timeout(detail::await_in_task(std::move(a)), limit);
}

} // namespace conet

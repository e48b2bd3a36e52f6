// conet/detail/waiter.hpp - the per-operation state that lives in the awaiting coroutine's
// frame, and how a wait is set up, ended and undone on the loop.
#pragma once

#include <coroutine>
#include <cstdint>
#include <new>
#include <system_error>

#include "../cancel.hpp"
#include "../error.hpp"
#include "chrono.hpp"
#include "descriptor_table.hpp"
#include "loop_core.hpp"
#include "ready_queue.hpp"
#include "timer_heap.hpp"
#include "trace.hpp"

namespace conet::detail {

/// std::error_code{}, made once when the program starts: copying it costs a load, where the
/// default constructor calls std::system_category() out of line in libstdc++ (and a
/// function-local static would check its guard on every use). Every operation starts from it.
inline const std::error_code no_error_code{};

/// The "no error" value every operation starts with and reports on success.
inline const std::error_code& no_error() noexcept {
    return no_error_code;
}

class waiter;

/// A deadline on a loop's timer heap, for the waiter `w`: a sleep's own, or the one
/// with_timeout adds beside an operation (so that an operation without one carries none).
struct deadline : timer_entry {
    waiter* w = nullptr;
    std::chrono::nanoseconds limit{0}; // with_timeout's bound, counted from the wait's start
    bool is_error = true;              // ends the wait with timed_out (a sleep's: success)
};

/// An operation suspended on a loop: waiting for its descriptor, for a deadline, for its
/// deferred try (the budget ran out), or for several of these.
///
/// For a descriptor, the loop calls `attempt` when it becomes ready; `attempt` performs the
/// syscall and returns true once the operation has finished (successfully, or with `ec`
/// set), false to keep waiting (EAGAIN again). For a deadline, the loop ends the wait when it
/// passes: with std::errc::timed_out (a timeout) or success (a sleep). Cancellation ends it
/// with operation_canceled, a close of the descriptor with conet::error::closed. Whichever
/// comes first undoes the others, so the coroutine resumes exactly once.
///
/// It lives in every operation, so it is kept small (88 bytes): the links of the ready
/// queue, one function for cancellation, and a pointer to a deadline kept elsewhere.
class waiter : public ready_node, public cancel_watcher {
public:
    using attempt_fn = bool (*)(waiter&) noexcept;

    [[gnu::always_inline]] explicit waiter(attempt_fn fn) noexcept
        : cancel_watcher{&waiter::cancelled}, attempt(fn) {}
    // Copies what configures an operation that has not started (with_timeout takes one by
    // value), none of the registrations.
    waiter(const waiter& other) noexcept
        : ready_node(other), cancel_watcher(other), attempt(other.attempt) {}
    waiter& operator=(const waiter&) = delete;
    // Usually nothing is left to undo (the wait ended normally, or there was none): one
    // test of the pending byte, and the ready link unlinks itself after a test of its own.
    [[gnu::always_inline]] ~waiter() {
        if (pending) [[unlikely]]
            destroyed_waiting();
    }

    attempt_fn attempt; // null for a pure timer
    std::error_code ec = no_error();

    // The loop holding this waiter's registrations, while it has any.
    loop_core* loop = nullptr;
    // (cancel_watcher::chain: the cancellation chain of the awaiting task, set by its
    // promise's await_transform; null in a coroutine that is not a conet::task.)
    // The deadline that bounds this wait (a sleep's, or with_timeout's), if any.
    deadline* timer = nullptr;
    int fd = -1;
    direction dir = direction::read;
    // What the wait holds, one bit each. A plain byte, not bit-fields: "is anything left to
    // undo?" is then one test (GCC tests bool bit-fields one by one).
    std::uint8_t pending = 0;
    // registered in loop->descriptors for (fd, dir)
    static constexpr std::uint8_t in_slot = 1;
    // queued on loop->retry: its try waits for the next turn
    static constexpr std::uint8_t deferred = 2;
    // `timer` is on the loop's heap
    static constexpr std::uint8_t timing = 4;

    bool holds(std::uint8_t what) const noexcept { return pending & what; }
    void hold(std::uint8_t what) noexcept { pending |= what; }
    void release(std::uint8_t what) noexcept { pending &= static_cast<std::uint8_t>(~what); }

    /// True if the awaiting chain is cancelled: the operation must not start.
    bool cancel_requested() const noexcept { return chain && chain->requested(); }

    /// Registers with the chain, so that cancelling it ends this wait.
    void watch_cancellation() noexcept {
        if (chain) chain->watch(*this);
    }
    /// The wait is over: cancelling the chain no longer concerns it. Called where a wait
    /// ends (the loop's resumptions, abort, a destroyed waiter), not in await_resume, so that
    /// an operation that never waited pays nothing for it.
    void unwatch_cancellation() noexcept {
        if (chain) chain->unwatch(*this);
    }

    /// Arms `timer` (set) for `at` on the current loop. Returns an error if there is no loop
    /// or memory ran out.
    std::error_code arm(timer_entry::clock::time_point at) noexcept {
        loop_core* l = loop_core::current();
        if (!l) return error::no_reactor;
        if (loop && loop != l) return error::wrong_reactor;
        timer->w = this;
        try {
            l->timers.push(*timer, at);
        } catch (const std::bad_alloc&) {
            return std::make_error_code(std::errc::not_enough_memory);
        }
        loop = l;
        hold(timing);
        return {};
    }

    /// True while the deadline is on the heap.
    bool timer_armed() const noexcept { return timer && timer->armed(); }

    /// The wait is over (the descriptor was ready, or the deadline passed): leaves the
    /// descriptor's slot, the timer heap and the retry queue. The chain still watches it:
    /// whoever resumes it ends that (unwatch_cancellation).
    void finish_wait() noexcept {
        if (holds(in_slot)) {
            waiter*& entry = loop->descriptors[fd].waiting(dir);
            if (entry == this) entry = nullptr;
        }
        if (timer_armed()) loop->timers.remove(*timer);
        if (holds(deferred)) unlink();
        pending = 0;
    }

    /// finish_wait, and the chain stops watching: the wait is over for good.
    void end_wait() noexcept {
        finish_wait();
        unwatch_cancellation();
    }

    /// Ends the wait now with `reason` and queues the coroutine to resume as soon as the
    /// running coroutine suspends (loop_core::urgent). Does nothing if it is not waiting (it
    /// finished and is already queued to resume).
    void abort(std::error_code reason) noexcept {
        if (!holds(in_slot | deferred) && !timer_armed()) return;
        if (loop->log) [[unlikely]]
            log_ended(reason);
        finish_wait();
        // Nothing watches a wait that has ended: if its frame is destroyed before it resumes,
        // the chain must not be left pointing at it.
        unwatch_cancellation();
        ec = reason;
        loop->urgent.push_back(*this);
    }

    /// Forgets the loop (it is being destroyed): never touch it again.
    void detach_from_loop() noexcept {
        // Its frame outlives the loop and may be destroyed after its chain: the chain must
        // not be left pointing at it.
        unwatch_cancellation();
        pending = 0; // the slots, the retry queue and the heap are gone
        loop = nullptr;
    }

private:
    // Out of line and cold, so that every operation's destructor stays a test.
    [[gnu::noinline, gnu::cold]] void destroyed_waiting() noexcept { end_wait(); }

    // CONET_TRACE=FILE: a cancellation or a close ends the wait (abort).
    [[gnu::noinline, gnu::cold]] void log_ended(std::error_code reason) noexcept {
        const bool closed = reason == make_error_code(error::closed);
        loop->log->instant(handle.address(), closed ? "closed" : "cancelled",
                           closed ? "close" : "cancel", "\"fd\":%d", holds(in_slot) ? fd : -1);
    }

    static void cancelled(cancel_watcher& watcher) noexcept {
        auto& w = static_cast<waiter&>(watcher);
        if (w.loop && w.loop->trace) [[unlikely]] {
            if (w.holds(in_slot))
                trace("cancelled: the wait on fd %d ends (operation_canceled)", w.fd);
            else
                trace("cancelled: a wait ends (operation_canceled)");
        }
        w.abort(std::make_error_code(std::errc::operation_canceled));
    }
};

} // namespace conet::detail

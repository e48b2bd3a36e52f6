// conet/detail/io_awaiter.hpp - the shape shared by every socket operation.
#pragma once

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <string>
#include <system_error>
#include <type_traits>

#include "../error.hpp"
#include "await_record.hpp"
#include "chrono.hpp"
#include "descriptor.hpp"
#include "loop_core.hpp"
#include "trace.hpp"
#include "waiter.hpp"

namespace conet::detail {

/// Arms `w`'s timeout (with_timeout's deadline) to end it with timed_out after its limit,
/// counted from now (the loop's clock: virtual, if it keeps virtual time).
inline std::error_code arm_timeout(waiter& w) noexcept {
    return w.arm(later_by(clock_now(), w.timer->limit)); // (a virtual clock may be far on)
}

/// CRTP base of every socket operation. It lives in the awaiting coroutine's frame (no
/// allocation), tries the syscall at once and waits on the reactor only after EAGAIN.
///
/// Before trying, it looks at the awaiting task's cancellation (a cancelled task transfers
/// nothing), at the thread (a descriptor registered with another thread's loop fails with
/// conet::error::wrong_reactor before its first try) and at the coroutine's budget (invariant 9):
/// once the budget is spent, the try is deferred to the loop's next turn, so that one busy peer
/// cannot starve the others.
///
/// `Derived` provides:
///   bool try_once() noexcept        - the syscall; true once finished (result kept or `ec` set)
///   descriptor& target() noexcept   - the descriptor to wait on
///   auto result()                   - the value of a successful operation
///   auto failed_result()            - the value the non-throwing form gives on failure
///   std::string describe() const    - the operation's name for messages, e.g. "recv"
/// and may provide `bool must_wait() noexcept` (see below).
/// and, for a transfer that can fail part way, `std::size_t transferred() const`, which the
/// throwing form reports in a conet::transfer_error; another transfer may say what it moved
/// with `std::size_t bytes_moved() const`. Either counts against the byte budget.
///
/// With `out` null the operation throws std::system_error; otherwise it stores the outcome
/// in *out and never throws for an I/O failure.
template <class Derived, direction Dir>
class io_awaiter : public waiter {
public:
    explicit io_awaiter(std::error_code* out) noexcept : waiter(&attempt_thunk), out_(out) {}

    void set_chain(cancel_state* c) noexcept { chain = c; }

    // Inline at every co_await: an operation that completes at once (every send of an echo)
    // runs no call but its syscall's (20 instructions fewer per echo round trip, no more code).
    [[gnu::always_inline]] bool await_ready() noexcept {
        if (cancel_requested()) {
            ec = std::make_error_code(std::errc::operation_canceled);
            return take_budget(); // spent: await_suspend gives the loop its turn first
        }
        // Registered with a loop that is not this thread's: its record is another thread's,
        // so not even the first try may run (the wait would be refused anyway).
        if (!self().target().usable_here()) [[unlikely]] {
            ec = error::wrong_reactor;
            return take_budget(); // spent: the loop's turn first, as for a cancellation
        }
        // Known drained (a stream socket's last read was short): wait for the next edge
        // without trying, which would only meet EAGAIN (docs/design.md, "Readiness").
        if (self().must_wait()) return false;
        if (!take_budget(chain)) { // (or a holding when_any holds this branch back)
            hold(deferred);        // await_suspend queues the try for the next turn
            return false;
        }
        if (!self().try_once()) return false;
        spend_bytes(moved());
        ++counters.completed_at_once;
        return true;
    }

    bool await_suspend(std::coroutine_handle<> h) noexcept {
        // This type's describe function, for the task dump (detail/await_record.hpp), given
        // at its first suspension: only a type that suspends can be in a dump, and a static
        // of the class (filled before main()) would compile every operation's code into
        // every file that includes conet.hpp (it doubled the include's cost). A guard test
        // per suspension.
        static const bool described [[maybe_unused]] =
            operation_describers::add(&attempt_thunk, &describe_erased<Derived>);
        handle = h;
        if (ec) return give_turn(*this, h); // cancelled, with the budget spent
        if (holds(deferred)) {
            release(deferred);
            if (defer()) return true;
            if (self().try_once()) return false; // no reactor: no turn to give
        }
        if (!self().target().wait(Dir, *this) || (timer && (ec = arm_timeout(*this)))) {
            finish_wait();
            return false; // could not wait: resume at once and report why (ec)
        }
        if (loop->trace) [[unlikely]]
            trace_wait();
        watch_cancellation();
        return true;
    }

    /// True to wait for the descriptor's next edge without trying first (a Derived with a
    /// buffer of its own says so only when the buffer cannot satisfy it).
    bool must_wait() noexcept { return self().target().must_wait(Dir); }

    auto await_resume() {
        if (ec) {
            if (!out_) throw_failure();
            *out_ = ec;
            return self().failed_result();
        }
        if (out_) *out_ = ec; // (clear: no error)
        return self().result();
    }

private:
    // Queues the try on the loop's retry list, registered for readiness when the descriptor
    // can wait (so that a close or an edge still reaches it). A descriptor that cannot wait
    // (a regular file, a closed socket) is deferred all the same: the budget applies to
    // every operation. False only without a running reactor.
    bool defer() noexcept {
        loop_core* l = loop_core::current();
        if (!l) return false;
        if (!self().target().wait(Dir, *this)) { // not registered: just the retry, which
            loop = l;                            // tries to register again (and reports)
            ec = no_error();
        }
        hold(deferred);
        loop->retry.push_back(*this);
        ++counters.deferred;
        watch_cancellation();
        return true;
    }

    // The bytes a finished operation moved, for the byte budget (invariant 9): what a
    // transfer reports as transferred(), or its bytes_moved(); none for the others.
    [[gnu::always_inline]] std::size_t moved() const noexcept {
        if constexpr (requires(const Derived& d) { d.bytes_moved(); })
            return static_cast<const Derived&>(*this).bytes_moved();
        else if constexpr (requires(const Derived& d) { d.transferred(); })
            return static_cast<const Derived&>(*this).transferred();
        else
            return 0;
    }

    [[gnu::noinline, gnu::cold]] void trace_wait() noexcept {
        try {
            if (loop->log) {
                char op[48], name[64];
                trace_log::json_copy(op, sizeof op, self().describe().c_str());
                std::snprintf(name, sizeof name, "%s waits", op);
                loop->log->instant(handle.address(), name, "wait",
                                   "\"fd\":%d,\"op\":\"%s\",\"until\":\"%s\"", fd, op,
                                   Dir == direction::read ? "readable" : "writable");
                return;
            }
            trace("%s waits: fd %d is not %s yet, so the coroutine suspends%s",
                  self().describe().c_str(), fd, Dir == direction::read ? "readable" : "writable",
                  traced_name(chain).text);
        } catch (...) { // no memory for the name: no trace line
        }
    }

    [[noreturn]] void throw_failure() {
        if constexpr (requires(const Derived& d) { d.transferred(); })
            throw transfer_error(ec, self().describe(), self().transferred());
        else
            throw_error(ec, self().describe());
    }

    // Called by the loop when the descriptor is ready, or at the turn a deferred try was
    // queued for. A deferred try that meets EAGAIN becomes an ordinary wait: it leaves the
    // retry list and arms its timeout (which counts from when the operation has to wait).
    static bool attempt_thunk(waiter& w) noexcept {
        auto& self = static_cast<Derived&>(static_cast<io_awaiter&>(w));
        if (self.try_once()) {
            self.spend_bytes_moved(); // against the resumption the loop gives it next
            return true;
        }
        if (self.holds(deferred)) {
            self.release(deferred);
            self.unlink();
            // Deferred without a slot: register now, or report why not (in ec).
            if (!self.holds(in_slot) && !self.target().wait(Dir, self)) return true;
            // Its timeout, unless armed already: a wait the when_any pause held back
            // (detail/pause.hpp) keeps the deadline it had.
            if (self.timer && !self.timer_armed()) {
                self.ec = arm_timeout(self);
                if (self.ec) return true;
            }
        }
        return false;
    }

    void spend_bytes_moved() noexcept { spend_bytes(moved()); }

    Derived& self() noexcept { return static_cast<Derived&>(*this); }

    std::error_code* out_;
};

/// Runs the system call `call` until it stops failing with EINTR; returns its result.
/// Counts each call (reactor_stats::syscalls).
template <class F>
auto retry_on_eintr(F call) noexcept {
    for (;;) {
        auto r = counted(call());
        if (r >= 0 || errno != EINTR) return r;
    }
}

/// errno after a failed syscall: true for "try again later".
inline bool would_block(int err) noexcept {
    return err == EAGAIN || err == EWOULDBLOCK;
}

} // namespace conet::detail

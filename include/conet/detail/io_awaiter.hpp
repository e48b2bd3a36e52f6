// conet/detail/io_awaiter.hpp - the shape shared by every socket operation.
#pragma once

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>

#include "../error.hpp"
#include "../reactor.hpp"
#include "../task.hpp"
#include "waiter.hpp"

namespace conet::detail {

/// Enters the cancellation chain of the awaiting coroutine (when it is a conet::task), so that
/// cancelling the chain ends this wait. False, with `w.ec` set, if the chain is already
/// cancelled: the operation must not start waiting.
template <class Promise>
bool begin_wait(waiter& w, std::coroutine_handle<Promise> h) noexcept {
    if constexpr (std::is_base_of_v<promise_base, Promise>) {
        cancel_state* chain = h.promise().cancel_;
        if (chain->requested()) {
            w.ec = std::make_error_code(std::errc::operation_canceled);
            return false;
        }
        w.chain = chain;
        chain->current = &w;
    }
    return true;
}

/// Leaves the cancellation chain (the wait is over).
inline void end_wait(waiter& w) noexcept {
    if (!w.chain) return;
    if (w.chain->current == &w) w.chain->current = nullptr;
    w.chain = nullptr;
}

/// Undoes a wait that could not be completely set up.
inline void abandon_wait(waiter& w) noexcept {
    if (w.registered_with) w.registered_with->cancel_wait(w);
    if (w.armed_on) w.armed_on->disarm(w);
    end_wait(w);
}

/// Arms `w` to end with timed_out after `w.timeout` (from now).
inline std::error_code arm_timeout(waiter& w) noexcept {
    reactor* r = reactor::current();
    if (!r) return error::no_reactor;
    w.deadline_is_error = true;
    try {
        r->arm(w, waiter::clock::now() + w.timeout); // with_timeout bounded it to a century
    } catch (const std::bad_alloc&) {
        return std::make_error_code(std::errc::not_enough_memory);
    }
    return {};
}

/// CRTP base of every socket operation. It lives in the awaiting coroutine's frame (no
/// allocation), tries the syscall at once and waits on the reactor only after EAGAIN.
///
/// `Derived` provides:
///   bool try_once() noexcept        - the syscall; true once finished (result kept or `ec` set)
///   descriptor& target() noexcept   - the descriptor to wait on
///   auto result()                   - the value of a successful operation
///   auto failed_result()            - the value the non-throwing form gives on failure
///   std::string describe() const    - the operation's name for messages, e.g. "recv"
///
/// With `out` null the operation throws std::system_error; otherwise it stores the outcome
/// in *out and never throws for an I/O failure.
template <class Derived, direction Dir>
class io_awaiter : public waiter {
public:
    explicit io_awaiter(std::error_code* out) noexcept : waiter(&attempt_thunk), out_(out) {}

    bool await_ready() noexcept { return self().try_once(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        handle = h;
        if (!begin_wait(*this, h)) return false;
        ec = self().target().wait(Dir, *this);
        if (!ec && timeout.count() >= 0) ec = arm_timeout(*this);
        if (ec) {
            abandon_wait(*this);
            return false; // could not wait: resume at once and report why
        }
        return true;
    }

    auto await_resume() {
        end_wait(*this);
        if (ec) {
            if (!out_) throw_error(ec, self().describe());
            *out_ = ec;
            return self().failed_result();
        }
        if (out_) *out_ = no_error();
        return self().result();
    }

private:
    static bool attempt_thunk(waiter& w) noexcept {
        return static_cast<Derived&>(static_cast<io_awaiter&>(w)).try_once();
    }
    Derived& self() noexcept { return static_cast<Derived&>(*this); }

    std::error_code* out_;
};

/// Runs `call` until it stops failing with EINTR; returns its result.
template <class F>
auto retry_on_eintr(F call) noexcept {
    for (;;) {
        auto r = call();
        if (r >= 0 || errno != EINTR) return r;
    }
}

/// errno after a failed syscall: true for "try again later".
inline bool would_block(int err) noexcept {
    return err == EAGAIN || err == EWOULDBLOCK;
}

} // namespace conet::detail

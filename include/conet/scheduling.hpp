// conet/scheduling.hpp - giving the loop its turn, and scheduling a resumption: yield() for
// a coroutine, conet::resumption for a user's own awaitable.
#pragma once

#include <coroutine>
#include <system_error>

#include "cancel.hpp"
#include "detail/await_record.hpp"
#include "detail/loop_core.hpp"
#include "detail/ready_queue.hpp"
#include "error.hpp"

namespace conet {

namespace detail {

/// What conet::yield() returns. Cancelled while it waits for its turn, it moves to the
/// urgent queue, so that it unwinds at once like any other cancelled wait.
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] yield_awaiter;
class yield_awaiter : public ready_node, public cancel_node {
public:
    explicit yield_awaiter(std::error_code* out) noexcept
        : cancel_node(&yield_awaiter::cancelled), out_(out) {}
    yield_awaiter(const yield_awaiter& other) noexcept
        : ready_node(other), cancel_node(other), out_(other.out_), chain_(other.chain_) {}
    yield_awaiter& operator=(const yield_awaiter&) = delete;

    void set_chain(cancel_state* c) noexcept { chain_ = c; }
    /// For the task dump.
    void describe_await(await_view& v) const noexcept { v.kind = "yield"; }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
        loop_ = loop_core::current();
        if (!loop_) return false; // no loop to give the turn to: just go on
        handle = h;
        loop_->ready.push_back(*this);
        // Cancelled already: resume at the next turn like any yield. Cancelled while waiting
        // for the turn: at once (see cancelled()).
        if (chain_ && !chain_->requested()) chain_->add(*this);
        return true;
    }
    void await_resume() {
        cancel_node::unregister();
        std::error_code ec;
        if (chain_ && chain_->requested()) ec = std::make_error_code(std::errc::operation_canceled);
        if (out_)
            *out_ = ec;
        else if (ec)
            throw_error(ec, "yield");
    }

private:
    static void cancelled(cancel_node& n) noexcept {
        auto& self = static_cast<yield_awaiter&>(n);
        self.unlink();
        self.loop_->urgent.push_back(self);
    }

    std::error_code* out_;
    cancel_state* chain_ = nullptr;
    loop_core* loop_ = nullptr;
};

} // namespace detail

/// A resumption that a user's awaitable schedules on the running reactor, without allocating:
/// keep one in the awaitable. On the reactor's thread only.
///
///     on_cancel_.emplace(token, [this] { wake_.resume_urgently(waiting_); });
///
/// A cancel_callback should end its wait with resume_urgently(): the coroutine then resumes
/// as soon as the running coroutine suspends, before the loop handles anything else, so that
/// a cancelled when_any loser has unwound before another event can decide an enclosing
/// when_any (design invariant 10). Destroying the resumption unschedules it.
class resumption : private detail::ready_node {
public:
    resumption() noexcept = default;
    resumption(const resumption&) noexcept : ready_node() {} // a copy is not scheduled
    resumption& operator=(const resumption&) = delete;

    /// Resumes `h` at the reactor's next turn. False if no reactor runs on this thread.
    bool resume_later(std::coroutine_handle<> h) noexcept { return schedule(h, false); }
    /// Resumes `h` as soon as the running coroutine suspends (see above). False if no reactor
    /// runs on this thread.
    bool resume_urgently(std::coroutine_handle<> h) noexcept { return schedule(h, true); }
    /// True while a resumption is scheduled and has not happened.
    bool scheduled() const noexcept { return linked(); }

private:
    bool schedule(std::coroutine_handle<> h, bool urgent) noexcept {
        detail::loop_core* l = detail::loop_core::current();
        if (!l) return false;
        unlink();
        handle = h;
        (urgent ? l->urgent : l->ready).push_back(*this);
        return true;
    }
};

/// Gives the turn to the other ready coroutines and to pending I/O, then resumes:
/// `co_await conet::yield();`. Throws operation_canceled if the task has been cancelled
/// meanwhile (or before).
inline detail::yield_awaiter yield() noexcept {
    return detail::yield_awaiter(nullptr);
}
/// Non-throwing form: `ec` reports operation_canceled instead.
inline detail::yield_awaiter yield(std::error_code& ec) noexcept {
    return detail::yield_awaiter(&ec);
}

} // namespace conet

// conet/event.hpp - a flag the coroutines of one reactor can wait for.
//
//     conet::event ready;
//     co_await ready.wait();   // waits until someone calls ready.set()
//     ready.set();             // wakes every waiter; later waits do not wait
//     ready.reset();           // later waits wait again
//
// set() wakes every coroutine waiting at that moment (in the order they began to wait), even
// if reset() follows before they resume. A waiter cancelled while it waits fails with
// operation_canceled. No allocation: a waiter waits in its own frame. One reactor: the first
// that uses the event owns it; from another reactor's thread its operations fail with
// conet::error::wrong_reactor.
//
// The event must outlive its waiters; destroyed while coroutines wait, they fail with
// conet::error::closed.
#pragma once

#include <coroutine>
#include <system_error>

#include "cancel.hpp"
#include "detail/await_record.hpp"
#include "detail/loop_core.hpp"
#include "detail/wait_list.hpp"
#include "error.hpp"

namespace conet {

class event {
public:
    class wait_op;

    /// An event, set or not.
    explicit event(bool set = false) noexcept : set_(set) {}
    event(const event&) = delete;
    event& operator=(const event&) = delete;
    inline ~event();

    /// `co_await e.wait();`: returns once the event is set (at once if it is). Throws
    /// operation_canceled if its task is cancelled, wrong_reactor, no_reactor.
    wait_op wait() noexcept;
    /// Non-throwing form: `ec` reports the failure instead.
    wait_op wait(std::error_code& ec) noexcept;

    /// Sets the event and wakes every coroutine waiting for it. Throws wrong_reactor.
    inline void set();
    /// Clears the event: later waits wait. Throws wrong_reactor.
    void reset() {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("event::reset");
        set_ = false;
    }
    bool is_set() const noexcept { return set_; }

    class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] wait_op
        : private detail::wait_node {
    public:
        wait_op(const wait_op& other) noexcept : wait_node(other), e_(other.e_), out_(other.out_) {}
        wait_op& operator=(const wait_op&) = delete;

        using wait_node::set_chain;

        /// For the task dump (conet/task_dump.hpp).
        void describe_await(detail::await_view & v) const noexcept {
            v.kind = "event wait";
        }
        bool await_ready() noexcept {
            if (detail::refused_at_start(*this, e_->home_, ec_)) return detail::take_budget();
            decided_ = e_->set_;
            return decided_ && detail::take_budget();
        }

        bool await_suspend(std::coroutine_handle<> h) noexcept {
            if (ec_ || decided_) return give_turn_decided(h);
            return suspend_on(e_->waiters_, h);
        }

        void await_resume() {
            end_wait();
            detail::report(ec_, out_, "event::wait");
        }

    private:
        friend class event;

        wait_op(event & e, std::error_code * out) noexcept
            : wait_node(&wait_op::cancelled), e_(&e), out_(out) {}

        static void cancelled(detail::cancel_watcher & w) noexcept {
            auto& self = static_cast<wait_op&>(static_cast<detail::wait_node&>(w));
            self.forget_chain();
            detail::wait_list::remove(self);
            self.ec_ = std::make_error_code(std::errc::operation_canceled);
            self.resume_urgently();
        }

        event* e_;
        std::error_code* out_;
        bool decided_ = false;
    };

private:
    bool set_;
    detail::home_loop home_;
    detail::wait_list waiters_;
};

inline event::wait_op event::wait() noexcept {
    return wait_op(*this, nullptr);
}
inline event::wait_op event::wait(std::error_code& ec) noexcept {
    return wait_op(*this, &ec);
}

inline void event::set() {
    if (!home_.here()) [[unlikely]]
        detail::throw_wrong_reactor("event::set");
    set_ = true;
    while (detail::wait_node* n = waiters_.pop_front()) {
        auto& op = static_cast<wait_op&>(*n);
        op.unwatch(); // woken: a cancellation now finds it done
        op.resume_later();
    }
}

inline event::~event() {
    while (detail::wait_node* n = waiters_.pop_front()) {
        auto& op = static_cast<wait_op&>(*n);
        op.ec_ = error::closed;
        op.unwatch();
        op.resume_urgently();
    }
}

} // namespace conet

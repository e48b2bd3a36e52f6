// conet/semaphore.hpp - a counting semaphore for the coroutines of one reactor.
//
//     conet::semaphore slots(4);         // at most 4 downloads at once
//     co_await slots.acquire();          // waits while all 4 are taken
//     ... download ...
//     slots.release();
//
// First come, first served: a release hands its permit to the coroutine that has waited
// longest (no other coroutine can take it in between, try_acquire() included). A waiter
// cancelled before it resumes, even one a permit was already handed to, holds none: it
// passes the permit on and fails with operation_canceled. No allocation: a waiter waits in
// its own frame. One reactor: the first that uses the semaphore owns it; from another
// reactor's thread its operations fail with conet::error::wrong_reactor.
//
// The semaphore must outlive its waiters; destroyed while coroutines wait, they fail with
// conet::error::closed.
#pragma once

#include <coroutine>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "cancel.hpp"
#include "detail/await_record.hpp"
#include "detail/loop_core.hpp"
#include "detail/wait_list.hpp"
#include "error.hpp"

namespace conet {

class semaphore {
public:
    class acquire_op;

    /// A semaphore with `permits` permits free.
    explicit semaphore(std::size_t permits) noexcept : count_(permits) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;
    inline ~semaphore();

    /// `co_await s.acquire();`: takes a permit, first waiting until one is free and this
    /// coroutine's turn has come. Throws operation_canceled if its task is cancelled while it
    /// waits (it then holds none), wrong_reactor, no_reactor.
    acquire_op acquire() noexcept;
    /// Non-throwing form: `ec` says whether it holds a permit (clear) or not.
    acquire_op acquire(std::error_code& ec) noexcept;

    /// Takes a permit if one is free and nobody waits (never waits): true if taken. Throws
    /// wrong_reactor.
    bool try_acquire() {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("semaphore::try_acquire");
        if (count_ == 0) return false;
        --count_;
        return true;
    }

    /// Gives back `n` permits: each goes to the coroutine that has waited longest, or is
    /// free again. Throws wrong_reactor, and std::overflow_error (changing nothing) if the
    /// free permits would pass the largest std::size_t: a count that wrapped would make
    /// later acquires wait for ever.
    void release(std::size_t n = 1) {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("semaphore::release");
        // (While coroutines wait, none is free: what they do not take cannot overflow.)
        if (waiters_.empty() && n > static_cast<std::size_t>(-1) - count_) [[unlikely]]
            throw std::overflow_error("conet::semaphore::release: more permits than a "
                                      "std::size_t counts");
        for (; n != 0 && !waiters_.empty(); --n)
            give();
        count_ += n; // nobody waits for the rest: no loop over a large n
    }

    /// Permits free now (none while coroutines wait).
    std::size_t available() const noexcept { return count_; }

    class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] acquire_op
        : private detail::wait_node {
    public:
        acquire_op(const acquire_op& other) noexcept
            : wait_node(other), s_(other.s_), out_(other.out_) {}
        acquire_op& operator=(const acquire_op&) = delete;
        // Destroyed with a permit handed to it: it passes it on.
        ~acquire_op() {
            if (state_ == state::granted) s_->give_up(*this);
        }

        using wait_node::set_chain;

        /// For the task dump (conet/task_dump.hpp).
        void describe_await(detail::await_view & v) const noexcept {
            v.kind = "semaphore acquire";
        }
        bool await_ready() noexcept {
            if (detail::refused_at_start(*this, s_->home_, ec_)) return detail::take_budget();
            if (s_->count_ == 0) return false; // (coroutines wait only when none is free)
            --s_->count_;
            state_ = state::granted;
            return detail::take_budget(); // spent: it holds one, and resumes at the next turn
        }

        bool await_suspend(std::coroutine_handle<> h) noexcept {
            if (ec_) return give_turn_decided(h);
            if (state_ == state::granted) // the budget is spent: it takes it at the next turn
                return resume_promised(&s_->granted_, h);
            state_ = state::waiting;
            return suspend_on(s_->waiters_, h);
        }

        void await_resume() {
            end_wait();
            if (state_ == state::granted) {
                state_ = state::done;
                if (out_) out_->clear();
                return;
            }
            state_ = state::done;
            detail::report(ec_, out_, "semaphore::acquire");
        }

    private:
        friend class semaphore;
        enum class state : unsigned char { idle, waiting, granted, done };

        acquire_op(semaphore & s, std::error_code * out) noexcept
            : wait_node(&acquire_op::cancelled), s_(&s), out_(out) {}

        static void cancelled(detail::cancel_watcher & w) noexcept {
            auto& self = static_cast<acquire_op&>(static_cast<detail::wait_node&>(w));
            self.forget_chain();
            if (self.state_ == state::granted)
                self.s_->give_up(self);
            else
                detail::wait_list::remove(self);
            self.state_ = state::done;
            self.ec_ = std::make_error_code(std::errc::operation_canceled);
            self.resume_urgently();
        }

        semaphore* s_;
        std::error_code* out_;
        state state_ = state::idle;
    };

private:
    // One permit: to the coroutine that has waited longest, or free.
    void give() noexcept {
        if (detail::wait_node* n = waiters_.pop_front()) {
            auto& next = static_cast<acquire_op&>(*n);
            next.state_ = acquire_op::state::granted;
            granted_.push_back(next);
            next.resume_later(); // still watched: cancelled before it resumes, it passes it on
        } else {
            ++count_;
        }
    }

    // `op`, handed a permit, will not take it (cancelled, or its frame destroyed).
    void give_up(acquire_op& op) noexcept {
        detail::wait_list::remove(op);
        op.state_ = acquire_op::state::done;
        give();
    }

    std::size_t count_;
    detail::home_loop home_;
    detail::wait_list waiters_;
    detail::wait_list granted_; // handed a permit, not resumed yet
};

inline semaphore::acquire_op semaphore::acquire() noexcept {
    return acquire_op(*this, nullptr);
}
inline semaphore::acquire_op semaphore::acquire(std::error_code& ec) noexcept {
    return acquire_op(*this, &ec);
}

inline semaphore::~semaphore() {
    // Coroutines still waiting resume with error::closed and never touch it again.
    for (detail::wait_list* list : {&waiters_, &granted_}) {
        while (detail::wait_node* n = list->pop_front()) {
            auto& op = static_cast<acquire_op&>(*n);
            op.state_ = acquire_op::state::done;
            op.ec_ = error::closed;
            op.unwatch();
            op.resume_urgently();
        }
    }
}

} // namespace conet

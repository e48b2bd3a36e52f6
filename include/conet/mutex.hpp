// conet/mutex.hpp - mutual exclusion between the coroutines of one reactor.
//
//     conet::mutex m;
//     {
//         auto lock = co_await m.lock();   // waits while another coroutine holds it
//         co_await conn.send_all(reply);   // nobody else sends on conn meanwhile
//     }                                    // unlocked here (or by lock.unlock())
//
// First come, first served: unlocking hands the mutex to the coroutine that has waited
// longest, which holds it from then on (no coroutine can take it in between, try_lock()
// included). A waiter cancelled before it resumes, even one the mutex was already handed to,
// never holds it: it passes it on and fails with operation_canceled. No allocation: a waiter
// waits in its own frame. One reactor: the first that uses the mutex owns it; from another
// reactor's thread, lock() and try_lock() fail with conet::error::wrong_reactor. Not
// recursive: a coroutine that locks a mutex it holds waits for itself.
//
// The mutex must outlive its holders and waiters; destroyed while coroutines wait, they fail
// with conet::error::closed.
#pragma once

#include <coroutine>
#include <optional>
#include <system_error>
#include <utility>

#include "cancel.hpp"
#include "detail/await_record.hpp"
#include "detail/loop_core.hpp"
#include "detail/wait_list.hpp"
#include "error.hpp"

namespace conet {

class mutex {
public:
    class lock_op;

    /// Holds the mutex until destroyed or unlock()ed. Movable; empty once moved from (and
    /// when a lock failed in the non-throwing form).
    class [[nodiscard("conet: the mutex is unlocked when this guard is destroyed")]] guard {
    public:
        guard() noexcept = default;
        guard(guard && other) noexcept : m_(std::exchange(other.m_, nullptr)) {}
        guard& operator=(guard&& other) noexcept {
            if (this != &other) {
                unlock();
                m_ = std::exchange(other.m_, nullptr);
            }
            return *this;
        }
        ~guard() {
            unlock();
        }

        /// Unlocks now (the next waiter gets the mutex); nothing if it holds none.
        void unlock() noexcept {
            if (mutex* m = std::exchange(m_, nullptr)) m->unlock();
        }
        /// True while it holds the mutex.
        bool owns_lock() const noexcept {
            return m_ != nullptr;
        }
        explicit operator bool() const noexcept {
            return owns_lock();
        }

    private:
        friend class mutex;
        explicit guard(mutex & m) noexcept : m_(&m) {}
        mutex* m_ = nullptr;
    };

    mutex() noexcept = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;
    inline ~mutex();

    /// `auto lock = co_await m.lock();`: waits until the mutex is free and this coroutine's
    /// turn has come, then holds it. Throws operation_canceled if its task is cancelled while
    /// it waits (it then holds nothing), wrong_reactor, no_reactor.
    lock_op lock() noexcept;
    /// Non-throwing form: an empty guard with `ec` set on failure.
    lock_op lock(std::error_code& ec) noexcept;

    /// Holds the mutex if it is free and nobody waits for it; an empty guard otherwise (never
    /// waits). Throws wrong_reactor.
    guard try_lock() {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("mutex::try_lock");
        if (locked_) return guard();
        locked_ = true;
        return guard(*this);
    }

    /// True while a coroutine holds it (or it has been handed to one about to resume).
    bool locked() const noexcept { return locked_; }

    class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] lock_op
        : private detail::wait_node {
    public:
        lock_op(const lock_op& other) noexcept : wait_node(other), m_(other.m_), out_(other.out_) {}
        lock_op& operator=(const lock_op&) = delete;
        // Destroyed with the mutex handed to it: it passes it on.
        ~lock_op() {
            if (state_ == state::granted) m_->give_up(*this);
        }

        using wait_node::set_chain;

        /// For the task dump (conet/task_dump.hpp).
        void describe_await(detail::await_view & v) const noexcept {
            v.kind = "mutex lock";
        }
        bool await_ready() noexcept {
            if (detail::refused_at_start(*this, m_->home_, ec_)) return detail::take_budget();
            if (m_->locked_) return false;
            m_->locked_ = true;
            state_ = state::granted;
            return detail::take_budget(); // spent: it holds it, and resumes at the next turn
        }

        bool await_suspend(std::coroutine_handle<> h) noexcept {
            if (ec_) return give_turn_decided(h);
            if (state_ == state::granted) { // the budget is spent: it takes it at the next turn
                m_->handed_ = this;
                return resume_promised(nullptr, h);
            }
            state_ = state::waiting;
            return suspend_on(m_->waiters_, h);
        }

        guard await_resume() {
            end_wait();
            if (state_ == state::granted) {
                state_ = state::done;
                if (m_->handed_ == this) m_->handed_ = nullptr;
                if (out_) out_->clear();
                return guard(*m_);
            }
            state_ = state::done;
            detail::report(ec_, out_, "mutex::lock");
            return guard();
        }

    private:
        friend class mutex;
        enum class state : unsigned char { idle, waiting, granted, done };

        lock_op(mutex & m, std::error_code * out) noexcept
            : wait_node(&lock_op::cancelled), m_(&m), out_(out) {}

        static void cancelled(detail::cancel_watcher & w) noexcept {
            auto& self = static_cast<lock_op&>(static_cast<detail::wait_node&>(w));
            self.forget_chain();
            if (self.state_ == state::granted)
                self.m_->give_up(self);
            else
                detail::wait_list::remove(self);
            self.state_ = state::done;
            self.ec_ = std::make_error_code(std::errc::operation_canceled);
            self.resume_urgently();
        }

        mutex* m_;
        std::error_code* out_;
        state state_ = state::idle;
    };

private:
    // Hands the mutex to the coroutine that has waited longest, or frees it.
    void unlock() noexcept {
        if (detail::wait_node* n = waiters_.pop_front()) {
            auto& next = static_cast<lock_op&>(*n);
            next.state_ = lock_op::state::granted;
            handed_ = &next;
            next.resume_later(); // still watched: cancelled before it resumes, it passes it on
        } else {
            locked_ = false;
        }
    }

    // `op`, handed the mutex, will not take it (cancelled, or its frame destroyed).
    void give_up(lock_op& op) noexcept {
        op.state_ = lock_op::state::done;
        if (handed_ == &op) handed_ = nullptr;
        unlock();
    }

    bool locked_ = false;
    detail::home_loop home_;
    detail::wait_list waiters_;
    lock_op* handed_ = nullptr; // handed the mutex, not resumed yet
};

inline mutex::lock_op mutex::lock() noexcept {
    return lock_op(*this, nullptr);
}
inline mutex::lock_op mutex::lock(std::error_code& ec) noexcept {
    return lock_op(*this, &ec);
}

inline mutex::~mutex() {
    // Coroutines still waiting resume with error::closed and never touch it again.
    auto end = [](lock_op& op) noexcept {
        op.state_ = lock_op::state::done;
        op.ec_ = error::closed;
        op.unwatch();
        op.resume_urgently();
    };
    while (detail::wait_node* n = waiters_.pop_front())
        end(static_cast<lock_op&>(*n));
    if (handed_) end(*std::exchange(handed_, nullptr));
}

} // namespace conet

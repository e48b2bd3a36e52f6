// conet/handoff.hpp - handing work from one reactor to another (one reactor per thread):
// starting a task there, or moving the running task there.
//
//     conet::spawn_on(worker, serve(std::move(conn))); // serve() starts on `worker`
//     co_await conet::resume_on(worker);               // this task goes on on `worker`
//
// Nothing is shared: each reactor's state stays on its own thread. What crosses is a node
// pushed onto the other reactor's lock-free inbox and an eventfd write that wakes it (see
// reactor::post); the receiving reactor takes no lock.
//
// Sockets: a socket belongs to the reactor that first uses it (and registers with it when
// it first waits). One that a reactor used (it sent, received, or was connected there)
// must leave that reactor before another uses it: call `conn.leave_reactor()` on the old
// reactor, then hand it over. A freshly accepted connection has not been used yet, and
// needs nothing. Used on the wrong reactor, a socket's operations fail with
// conet::error::wrong_reactor, before they try anything.
//
// Lifetimes: the reactors must outlive what is handed between them (a reactor_pool keeps
// all of its reactors until every thread has ended). A task handed to a reactor that is
// destroyed before it runs is destroyed, unstarted or unresumed.
#pragma once

#include <coroutine>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "cancel.hpp"
#include "detail/loop_core.hpp"
#include "detail/posted_queue.hpp"
#include "detail/ready_queue.hpp"
#include "reactor.hpp"
#include "task.hpp"
#include "task_group.hpp"

namespace conet {

namespace detail {

/// Work on its way to `target`: if `target` is a reactor of a pool, the pool's run waits
/// for it (detail::work_count) until it has arrived, or until the ticket is dropped.
class journey {
public:
    explicit journey(reactor& target) noexcept : count_(target.tasks().work_) {
        if (!count_) return;
        count_->enter();
        const std::uint64_t run = count_->runs.load(memory_order_seq_cst);
        departed_in_ = run % 2 ? run : 0; // (between runs: it belongs to the next)
    }
    journey(journey&& other) noexcept
        : count_(std::exchange(other.count_, nullptr)), departed_in_(other.departed_in_) {}
    journey& operator=(journey&&) = delete;
    ~journey() { arrived(); }

    /// True if it left during a run of the pool that has ended since: that run was stopped
    /// (one that ends by itself waits for it), and cancelled every task, so this one arrives
    /// cancelled. Asked before arrived().
    bool late() const noexcept {
        return count_ && departed_in_ && count_->runs.load(memory_order_seq_cst) != departed_in_;
    }

    /// The work is in `target`'s own group now (which counts it), or will never be.
    void arrived() noexcept {
        if (work_count* c = std::exchange(count_, nullptr)) c->leave();
    }

private:
    work_count* count_;
    std::uint64_t departed_in_ = 0;
};

} // namespace detail

/// Starts `t` on `target`, in its own task group (reactor::spawn there), at its next turn.
/// Safe from any thread. `t`'s arguments travel in its frame: pass sockets by value (a
/// socket that this reactor has already used must leave_reactor() first). Its failure
/// is reported by `target`'s group. Allocates one node for the journey. Throws
/// std::invalid_argument for an empty task.
template <class T>
void spawn_on(reactor& target, task<T> t) {
    if (!t.valid()) throw std::invalid_argument("conet::spawn_on: empty task");
    // (A pool's run waits for it meanwhile.)
    target.post([&target, t = std::move(t), ticket = detail::journey(target)]() mutable {
        task_handle h = target.spawn(std::move(t));
        if (ticket.late()) h.cancel(); // sent in a run that was stopped before it arrived
        ticket.arrived();
    });
}

namespace detail {

/// What conet::resume_on() returns. The awaiting task's chain of awaits moves as a whole: its
/// root (a task of a task_group) leaves its group and joins `target`'s own group, and the
/// coroutine resumes on `target`'s thread. The node it travels in lives in the frame.
///
/// It leaves in two steps. await_suspend only defers the departure to the start of the next
/// turn: the coroutine may be inside the awaiter that is starting it (a task awaited for the
/// first time), which goes on touching the frame until the whole resumption has returned.
/// At the next turn nothing of the chain runs any more: it leaves its group (or, cancelled
/// meanwhile, stays and resumes with operation_canceled) and goes to `target`.
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] resume_on_awaiter;
class resume_on_awaiter : private posted_node, private deferred_action {
public:
    explicit resume_on_awaiter(reactor& target) noexcept
        : posted_node(&resume_on_awaiter::arrive), target_(&target) {
        deferred_action::run = &resume_on_awaiter::depart;
    }
    resume_on_awaiter(const resume_on_awaiter&) = delete;
    resume_on_awaiter& operator=(const resume_on_awaiter&) = delete;

    void set_chain(cancel_state* c) noexcept { chain_ = c; }

    bool await_ready() noexcept {
        if (chain_ && chain_->requested()) {
            refused_ = why::cancelled;
            return take_budget(); // spent: await_suspend gives the loop its turn first
        }
        return reactor::current() == target_; // already there
    }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        if (refused_ == why::cancelled) return give_turn(static_cast<deferred_action&>(*this), h);
        if constexpr (!std::is_base_of_v<promise_base, Promise>) {
            refused_ = why::not_movable;
            return false;
        } else {
            promise_base& root = h.promise().root();
            task_group* group = task_group::owner_of(root);
            if (!group || !loop_core::current()) {
                refused_ = why::not_movable;
                return false;
            }
            // Structured: a task of a scope stays in it (the scope waits for it), and a task
            // that owns a group stays with the group (whose records are this reactor's). So
            // does code inside conet::shield (a chain of its own, not the root's): the groups
            // of the shielded tasks hang on chains this one cannot see all of.
            if (group->scoped() || task_group::owns_a_group(root.chain()) ||
                &h.promise().chain() != &root.chain()) {
                refused_ = why::structured;
                return false;
            }
            handle = h;
            root_ = &root;
            loop_core::current()->deferred.push_back(static_cast<deferred_action&>(*this));
            return true;
        }
    }

    void await_resume() const {
        if (refused_ == why::cancelled)
            throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                    "resume_on");
        if (refused_ == why::not_movable)
            throw std::invalid_argument(
                "conet::resume_on: only a task of a task_group (or a task it awaits) can move to "
                "another reactor; not a when_all/when_any branch or the task of a run()");
        if (refused_ == why::structured)
            throw std::invalid_argument(
                "conet::resume_on: a task that owns a task_group, a task of a conet::scope, or "
                "code inside conet::shield, stays on its reactor");
    }

private:
    enum class why : unsigned char { none, cancelled, not_movable, structured };

    // The first step, on the reactor the task leaves, once the chain has suspended for good.
    static void depart(deferred_action& a) noexcept {
        auto& self = static_cast<resume_on_awaiter&>(a);
        if (self.chain_ && self.chain_->requested()) { // cancelled while waiting to leave: stay
            self.refused_ = why::cancelled;
            loop_core::current()->ready.push_back(static_cast<deferred_action&>(self));
            return;
        }
        // Counted on its way before it leaves: a pool's run does not end meanwhile.
        self.ticket_.emplace(*self.target_);
        task_group::owner_of(*self.root_)->release(*self.root_);
        self.target_->post(static_cast<posted_node&>(self));
    }

    // The second, on the target: joins its group and resumes at the next turn. Disposed of
    // (the target is being destroyed), the task, owned by nobody now, is destroyed.
    static void arrive(posted_node& n, bool run) {
        auto& self = static_cast<resume_on_awaiter&>(n);
        if (!run) {
            self.root_->self_.destroy(); // destroys this awaiter too
            return;
        }
        try {
            self.target_->tasks().adopt(*self.root_);
        } catch (...) {
            self.root_->self_.destroy(); // out of memory: nobody can own it
            throw;
        }
        if (self.ticket_->late()) { // it left in a run that was stopped before it arrived
            self.refused_ = why::cancelled;
            self.root_->chain().request();
        }
        self.ticket_->arrived();
        loop_core::current()->ready.push_back(static_cast<deferred_action&>(self));
    }

    reactor* target_;
    cancel_state* chain_ = nullptr;
    promise_base* root_ = nullptr;
    why refused_ = why::none;
    std::optional<journey> ticket_;
};

} // namespace detail

/// Moves the awaiting task to `target`: `co_await conet::resume_on(worker);` and the code
/// after it runs on `worker`'s thread. The task's chain of awaits moves whole; its root, a
/// task of a task_group, leaves that group (whose join() no longer waits for it, and whose
/// handles now see it done) and joins `target`'s own group (reactor::tasks(), which reports
/// its failure). Sockets it uses must leave_reactor() first (see the top of this header).
/// Does nothing if the task already runs on `target`. Throws std::invalid_argument for a
/// task that cannot move (a when_all/when_any branch, the task of a run(), a task that owns
/// a task_group, a task of a conet::scope, code inside conet::shield), and
/// operation_canceled if the task has been cancelled.
inline detail::resume_on_awaiter resume_on(reactor& target) noexcept {
    return detail::resume_on_awaiter(target);
}

} // namespace conet

// conet/task_group.hpp - owning concurrent work: spawn tasks, cancel them all, join them.
//
//     conet::task_group connections;                     // one per server, say
//     for (;;) {
//         auto [conn, peer] = co_await listener.accept();
//         connections.spawn(serve_client(std::move(conn)));  // runs beside the accept loop
//     }
//     ...
//     connections.cancel();                              // on shutdown:
//     co_await connections.join();                       // wait until every one has ended
//
// Failures: by default (failure_policy::report) a task that ends with an exception never
// affects the others or the spawning task; the exception goes to the group's failure
// handler, which by default prints it on stderr. With failure_policy::cancel_all the first
// failure cancels every other task of the group and join() rethrows it (later failures go to
// the handler). A task that ends with the operation_canceled its own cancellation caused has
// not failed. No failure vanishes silently.
//
// Ownership: a group made while a task runs (in its frame, or in an object it makes) belongs
// to that task: cancelling the task cancels every task of the group, at once, and the ones
// spawned afterwards start cancelled. A group made outside any task (in main(), say) belongs
// to nobody; `task_group(owner_token)` names the owner explicitly (an empty token: nobody).
// conet::scope (scope.hpp) is the form that also waits for them.
//
// Lifetime: a group binds to the reactor running when it first spawns. Destroying a group
// with tasks still running never destroys a running frame and never skips their cleanup:
// they are cancelled and handed to the reactor's own group, where they finish (their
// shielded goodbyes included) and their failures are reported. So such a task must not use
// what its owner destroyed with the group: spawn it with what it needs as arguments, or
// join the group first (conet::scope does). Only destroying the reactor destroys unfinished
// frames, without resuming them. Handles are O(1), cheap to copy, and safe to use after
// their task, their group and their reactor are gone.
//
// Threads: use a group and its handles on its reactor's thread. Spawning into, joining or
// cancelling a group of a reactor that runs on another thread fails with
// conet::error::wrong_reactor.
//
// (Over 300 lines: the group, its handle and its join awaiter share private state and read
// best together.)
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include "cancel.hpp"
#include "detail/copyable_function.hpp"
#include "detail/loop_core.hpp"
#include "detail/ready_queue.hpp"
#include "detail/task_registry.hpp"
#include "detail/work_count.hpp"
#include "error.hpp"
#include "task.hpp"

namespace conet {

class task_group;
class reactor_pool;
namespace detail {
class resume_on_awaiter;
class journey;
struct scope_access;
struct task_dump_access;
} // namespace detail

namespace detail {

/// Prints a task's failure on stderr, with what it says.
inline void print_failure(const std::exception_ptr& e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "conet: a task failed: %s\n", error.what());
    } catch (...) {
        std::fputs("conet: a task failed with an exception that is not a std::exception\n", stderr);
    }
}

/// Hands a failure to `handler` (or prints it, with no handler). If the handler throws, both
/// the failure and the handler's exception are printed: neither vanishes.
inline void report_failure(const copyable_function<void(std::exception_ptr)>& handler,
                           const std::exception_ptr& e) noexcept {
    try {
        if (handler)
            handler(e);
        else
            print_failure(e);
    } catch (...) {
        print_failure(e);
        print_failure(std::current_exception());
    }
}

} // namespace detail

/// Refers to a task of a task_group: to cancel it or ask whether it has finished. O(1); cheap
/// to copy; stays valid (and harmless) after the task, its group or its reactor are gone.
class task_handle {
public:
    task_handle() noexcept = default;
    task_handle(const task_handle& other) noexcept
        : registry_(other.registry_), slot_(other.slot_), generation_(other.generation_) {
        if (registry_) registry_->retain();
    }
    task_handle& operator=(const task_handle& other) noexcept {
        task_handle copy(other);
        swap(copy);
        return *this;
    }
    task_handle(task_handle&& other) noexcept
        : registry_(std::exchange(other.registry_, nullptr)), slot_(other.slot_),
          generation_(other.generation_) {}
    task_handle& operator=(task_handle&& other) noexcept {
        task_handle moved(std::move(other));
        swap(moved);
        return *this;
    }
    ~task_handle() {
        if (registry_) registry_->release();
    }

    /// Cancels the task: the operation it waits in, and every later co_await in it, fail
    /// with std::errc::operation_canceled, so that it can clean up and end. Does nothing
    /// once the task has finished. On a thread other than its reactor's (while that runs),
    /// throws std::system_error with conet::error::wrong_reactor.
    inline void cancel() const;
    /// True once the task has finished (or for a default-constructed handle).
    bool done() const noexcept { return !registry_ || !registry_->find(slot_, generation_); }

private:
    friend class task_group;
    task_handle(detail::task_registry& r, std::uint32_t slot) noexcept
        : registry_(&r), slot_(slot), generation_(r.generation(slot)) {
        r.retain();
    }
    void swap(task_handle& other) noexcept {
        std::swap(registry_, other.registry_);
        std::swap(slot_, other.slot_);
        std::swap(generation_, other.generation_);
    }

    detail::task_registry* registry_ = nullptr;
    std::uint32_t slot_ = 0;
    std::uint32_t generation_ = 0;
};

/// The name reactor::spawn's handles had before task groups.
using spawn_handle = task_handle;

/// What a task_group does when one of its tasks ends with an exception.
enum class failure_policy {
    report,     ///< hand it to the failure handler; the other tasks go on (a server's choice)
    cancel_all, ///< cancel the other tasks; join() rethrows it (all-or-nothing work)
};

/// Owns tasks that run concurrently on one reactor. See the top of this header.
class task_group : private detail::root_owner {
public:
    /// Receives each failure the policy does not rethrow from join(). Made from any callable
    /// a std::function<void(std::exception_ptr)> takes (a std::function too), and copyable.
    using failure_handler = detail::copyable_function<void(std::exception_ptr)>;

    /// A group owned by the task that makes it, if one runs (see the top of this header).
    explicit task_group(failure_policy policy = failure_policy::report)
        : root_owner(&task_group::task_done), policy_(policy) {
        if (detail::promise_base* owner = detail::running_task) {
            owner_link_.made_by = owner;
            owner->made_group_ = true;
            own_to(owner->chain());
        }
    }
    /// A group owned by the task whose cancellation token `owner` is (`co_await
    /// conet::current_cancel_token()`); an empty token: owned by nobody.
    explicit task_group(cancel_token owner, failure_policy policy = failure_policy::report)
        : root_owner(&task_group::task_done), policy_(policy) {
        if (owner.state_) own_to(*owner.state_);
    }
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    /// Cancels the tasks still running and hands them to the reactor's own group, where they
    /// finish their cleanup (see the top of this header).
    ~task_group() {
        if (on_other_thread()) [[unlikely]]
            destroyed_on_wrong_thread();
        if (alive_) *alive_ = false; // destroyed from inside finish()
        if (owner_link_.registered()) leave_owner(owner_link_.owner()->task());
        owner_link_.unregister();
        hand_over_to_reactor();
        detach();
        registry_->release();
    }

    /// Starts `t` in this group at the reactor's next turn. Its result is discarded; an
    /// exception escaping it goes by the group's failure policy. Takes the task by value: a
    /// coroutine lambda's captures die at its first suspension, so pass what it needs as
    /// arguments. Throws std::invalid_argument for an empty task and std::logic_error when
    /// no reactor runs on this thread (nor was this group bound to one).
    template <class T>
    task_handle spawn(task<T> t) {
        if (!t.valid()) throw std::invalid_argument("conet::task_group::spawn: empty task");
        check_thread("task_group::spawn");
        bind();
        auto h = t.handle();
        detail::promise_base& p = h.promise();
        if (p.busy())
            throw std::invalid_argument("conet::task_group::spawn: the task already runs "
                                        "(awaited or started elsewhere)");
        p.self_ = h;
        const std::uint32_t slot = add(p); // may throw: `t` still owns the frame
        t.release();
        p.id_ = detail::next_task_id();
        p.start_node_.handle = h;
        loop_->ready.push_back(p.start_node_);
        return task_handle(*registry_, slot);
    }

    /// spawn(t), naming the task: the task dump (conet/task_dump.hpp) and CONET_TRACE show
    /// the name. The name is copied (one allocation, made before the task is taken).
    template <class T>
    task_handle spawn(task<T> t, std::string_view name) {
        char* copy = new char[name.size() + 1];
        name.copy(copy, name.size());
        copy[name.size()] = '\0';
        if (t.valid() && !t.handle().promise().busy()) {
            delete[] std::exchange(t.handle().promise().name_, copy);
            copy = nullptr;
        }
        delete[] copy;
        return spawn(std::move(t));
    }

    /// Cancels every task of the group (tasks spawned afterwards are not affected, unless
    /// the group's owner was cancelled). On another reactor's thread, throws
    /// std::system_error with conet::error::wrong_reactor.
    void cancel() {
        check_thread("task_group::cancel");
        cancel_all();
    }

    /// Waits until the group has no task left: `co_await group.join();`. With
    /// failure_policy::cancel_all, then rethrows the first failure (once). A cancelled
    /// join fails with operation_canceled; the group's tasks go on. A task of the group
    /// joining it would wait for itself: that fails at once with
    /// std::errc::resource_deadlock_would_occur; on another reactor's thread, with
    /// conet::error::wrong_reactor.
    auto join() noexcept { return join_awaiter(*this); }

    /// Tasks started and not finished yet.
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    /// How many tasks have failed so far.
    std::size_t failures() const noexcept { return failures_; }

    /// Replaces the failure handler (the default prints the exception on stderr). It runs on
    /// the reactor's thread as the failed task ends; an exception it throws is printed and
    /// dropped.
    void set_failure_handler(failure_handler handler) { handler_ = std::move(handler); }

    /// Forgets the reactor (it is being destroyed, or the group is): destroys the unfinished
    /// tasks' frames; a coroutine joining the group resumes with conet::error::closed (when
    /// the reactor still runs); a cancel_all failure nobody joined is reported.
    void detach() noexcept {
        // A frame destroyed here may hold the last reference to this group's owner.
        bool alive = true;
        bool* outer = std::exchange(alive_, &alive);
        while (detail::promise_base* p = first_) {
            forget(*p);
            p->owner_ = nullptr; // (as in finish: its frame's going counts nothing here again)
            p->self_.destroy();
            if (!alive) { // the group is gone, and its destructor has detached it
                if (outer) *outer = false;
                return;
            }
        }
        alive_ = outer;
        while (detail::ready_node* n = joiners_.pop_front()) {
            auto& j = static_cast<join_awaiter&>(*n);
            j.abandon();
            if (loop_) loop_->urgent.push_back(j);
        }
        if (auto e = std::exchange(first_failure_, nullptr)) report(e);
        if (loop_) {
            if (prev_group_)
                prev_group_->next_group_ = next_group_;
            else
                loop_->groups = next_group_;
            if (next_group_) next_group_->prev_group_ = prev_group_;
            prev_group_ = next_group_ = nullptr;
            loop_ = nullptr;
            registry_->loop.store(nullptr, detail::memory_order_relaxed);
        }
    }

    /// Binds the group to `l` (the reactor does this for its own group).
    void bind(detail::loop_core& l) noexcept {
        if (loop_) return;
        loop_ = &l;
        registry_->loop.store(&l, detail::memory_order_relaxed);
        next_group_ = l.groups;
        if (next_group_) next_group_->prev_group_ = this;
        l.groups = this;
    }

private:
    friend class task_handle;
    friend class detail::resume_on_awaiter;
    friend class detail::journey;
    friend struct detail::task_dump_access;
    friend class reactor_pool;
    friend struct detail::scope_access;

    // Its bases are reachable from task_group only (the class itself is private). Once woken
    // (or abandoned, or cancelled) it never touches the group again: the group may be gone
    // by the time it resumes.
    class [[nodiscard(
        "conet: co_await this operation; until awaited it does nothing")]] join_awaiter;
    class join_awaiter : public detail::ready_node, public detail::cancel_node {
    public:
        explicit join_awaiter(task_group& g) noexcept
            : cancel_node(&join_awaiter::cancelled), group_(&g) {}

        void set_chain(detail::cancel_state* c) noexcept { chain_ = c; }
        /// For the task dump: the group's tasks are listed as the group's.
        void describe_await(detail::await_view& v) const noexcept { v.kind = "join (its group)"; }

        bool await_ready() noexcept {
            if (chain_ && chain_->requested()) {
                state_ = state::cancelled;
                return detail::take_budget(); // else: through the ready queue, for fairness
            }
            if (group_->refused_here()) {
                state_ = state::wrong_thread;
                return true;
            }
            if (group_->size_ != 0) return false;
            joined(std::exchange(group_->first_failure_, nullptr));
            return true;
        }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            handle = h;
            loop_ = detail::loop_core::current();
            if (state_ == state::cancelled) {
                if (!loop_) return false;
                loop_->ready.push_back(*this);
                return true;
            }
            if constexpr (std::is_base_of_v<detail::promise_base, Promise>) {
                if (detail::awaits_within(&h.promise(), group_)) { // it would wait for itself
                    state_ = state::deadlock;
                    return false;
                }
            }
            if (!loop_) loop_ = group_->loop_;
            group_->joiners_.push_back(*this);
            if (chain_) chain_->add(*this);
            return true;
        }
        void await_resume() {
            cancel_node::unregister();
            if (state_ == state::deadlock)
                throw std::system_error(
                    std::make_error_code(std::errc::resource_deadlock_would_occur),
                    "task_group::join (a task of the group cannot wait for its own group)");
            if (state_ == state::wrong_thread)
                throw std::system_error(error::wrong_reactor, "task_group::join");
            if (state_ == state::abandoned)
                throw std::system_error(error::closed,
                                        "task_group::join (the group was destroyed)");
            if (state_ == state::cancelled)
                throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                        "task_group::join");
            if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
        }

        // The group has no task left; `failure` is the cancel_all failure, for this joiner to
        // rethrow (the first joiner takes it).
        void joined(std::exception_ptr failure) noexcept {
            state_ = state::joined;
            failure_ = std::move(failure);
            group_ = nullptr;
        }
        // The group is going away without having finished.
        void abandon() noexcept {
            cancel_node::unregister();
            state_ = state::abandoned;
            group_ = nullptr;
        }

    private:
        enum class state : unsigned char {
            waiting,
            joined,
            abandoned,
            cancelled,
            deadlock,
            wrong_thread
        };

        static void cancelled(detail::cancel_node& n) noexcept {
            auto& self = static_cast<join_awaiter&>(n);
            if (self.state_ != state::waiting) return; // already over: cancellation is late
            self.state_ = state::cancelled;
            self.unlink(); // from the group's joiners
            self.group_ = nullptr;
            // No loop: the reactor is gone, and with it any way to resume.
            if (self.loop_) self.loop_->urgent.push_back(self);
        }

        task_group* group_;
        detail::loop_core* loop_ = nullptr;
        detail::cancel_state* chain_ = nullptr;
        std::exception_ptr failure_;
        state state_ = state::waiting;
    };

    // For a handle whose registry's thread was checked: cancels.
    static void cancel_task(detail::promise_base& p) noexcept { p.own_cancel_.state().request(); }

    void cancel_all() noexcept {
        for (detail::promise_base* p = first_; p; p = p->next_in_group_)
            p->own_cancel_.state().request();
    }

    // True when the group's reactor runs on another thread than this one.
    bool on_other_thread() const noexcept { return loop_ && !loop_->usable_here(); }

    // What spawn, cancel and join check: the group's records and tasks are its reactor's,
    // and a task of another reactor must not start or wait on them even while that one is
    // idle (it would be resumed on the group's reactor's thread).
    bool refused_here() const noexcept { return loop_ && !loop_->usable_by_this_thread(); }
    void check_thread(const char* what) const {
        if (refused_here()) throw std::system_error(error::wrong_reactor, what);
    }

    // Its tasks and its reactor's records belong to the thread that runs the reactor: a
    // destructor cannot report, so the program stops with a message instead of racing.
    [[noreturn, gnu::noinline, gnu::cold]] static void destroyed_on_wrong_thread() noexcept {
        std::fputs("conet: a task_group was destroyed on a thread other than its reactor's "
                   "while that reactor runs\n",
                   stderr);
        std::terminate();
    }

    // For resume_on: true if the chain `c` owns a group (such a task cannot move: the
    // group's tasks and records stay on this reactor).
    static bool owns_a_group(detail::cancel_state& c) noexcept {
        return c.has(&detail::owner_link::fire);
    }

    // For resume_on: true for a scope's group, which waits for its tasks: they cannot leave.
    bool scoped() const noexcept { return awaiting_ != nullptr; }

    // Hangs the group under its owner's chain: the owner's cancellation cancels every task.
    // The owner's frame going first cuts the link too (detail::owner_link).
    struct owner_link : detail::owner_link {
        explicit owner_link(task_group& g) noexcept
            : detail::owner_link(&owner_link::owner_left), group(&g) {}
        static void owner_left(detail::owner_link& n, bool cancelled) noexcept {
            auto& link = static_cast<owner_link&>(n);
            task_group& g = *link.group;
            g.leave_owner(link.chain->task()); // (the link is off the chain already)
            if (!cancelled) return;
            g.cancel_newcomers_ = true;
            g.cancel_all();
        }
        task_group* group;
    };

    void own_to(detail::cancel_state& owner) noexcept {
        owner_link_.chain = &owner;
        owner.add(owner_link_);
        link_to_owner_ = &owner_link_; // (how the when_any pause finds the owner)
    }

    // The group's tasks are no longer part of `owner`'s code for the when_any pause (its link
    // to its owner is cut): the joins holding inside them no longer count there
    // (detail::count_holds). A scope's group stays part of the scope's task.
    void leave_owner(detail::promise_base* owner) noexcept {
        if (!holds_below() || awaiting_) [[likely]]
            return;
        if (detail::count_holds(owner, -holds_below()) && loop_) loop_->recheck_paused = true;
    }

    // The group goes while tasks still run: they are cancelled and move to the reactor's own
    // group, which they leave when they finish. Not while the reactor itself is going (it
    // destroys every frame), nor for the reactor's own group.
    void hand_over_to_reactor() noexcept {
        if (!loop_ || loop_->closing || !first_) return;
        task_group* heir = loop_->own_group;
        if (!heir || heir == this) return;
        while (detail::promise_base* p = first_) {
            forget(*p);
            try {
                heir->add(*p);
            } catch (...) { // no memory for the heir's registry: the task has no owner now
                p->owner_ = nullptr;
                if (detail::running_task && &detail::running_task->root() == p) {
                    std::fputs("conet: a task_group destroyed by its own task could not hand "
                               "it over (out of memory)\n",
                               stderr);
                    std::terminate();
                }
                p->self_.destroy();
                continue;
            }
            p->own_cancel_.state().request();
        }
        heir->wake_joiners_if_empty();
    }

    // Takes `p` (its frame in p.self_) into the group; returns its handle's slot. May throw
    // std::bad_alloc before anything changed.
    std::uint32_t add(detail::promise_base& p) {
        const std::uint32_t slot = registry_->add(p);
        if (cancel_newcomers_) p.own_cancel_.state().request();
        p.owner_ = this;
        if (p.holds_below_) [[unlikely]] // (a task handed over by a group destroyed)
            detail::count_holds_in(*this, p.holds_below_);
        p.handle_slot_ = slot;
        if (work_) work_->enter();
        p.prev_in_group_ = nullptr;
        p.next_in_group_ = first_;
        if (first_) first_->prev_in_group_ = &p;
        first_ = &p;
        ++size_;
        ++loop_->live_tasks;
        return slot;
    }

    // For resume_on: the group that owns the task `p`, or nullptr (a branch, a run()).
    static task_group* owner_of(detail::promise_base& p) noexcept {
        if (!p.owner_ || !p.owner_->notifies_through(&task_group::task_done)) return nullptr;
        return static_cast<task_group*>(p.owner_);
    }

    // For resume_on: gives up the suspended task `p` without destroying it (it leaves for
    // another reactor; its handles now see it done).
    void release(detail::promise_base& p) noexcept {
        forget(p);
        p.owner_ = nullptr;
        wake_joiners_if_empty();
    }

    // For resume_on: takes in the suspended task `p`, which left another reactor's group, on
    // this group's reactor (which must be running on this thread).
    void adopt(detail::promise_base& p) {
        bind();
        add(p);
    }

    // A joiner resumes as soon as the coroutine running now suspends (the urgent queue), as
    // a when_any's caller does when its last branch ends: a joiner in a when_any branch (a
    // scope whose body received data) must finish before the loop handles the next event,
    // which could decide that when_any for a sibling and discard the value.
    void wake_joiners_if_empty() noexcept {
        if (size_ != 0) return;
        while (detail::ready_node* n = joiners_.pop_front()) {
            auto& j = static_cast<join_awaiter&>(*n);
            j.joined(std::exchange(first_failure_, nullptr));
            loop_->urgent.push_back(j);
        }
    }

    void bind() {
        if (loop_) return;
        detail::loop_core* l = detail::loop_core::current();
        if (!l) throw std::logic_error("conet::task_group::spawn: no reactor runs on this thread");
        bind(*l);
    }

    // Takes `p` out of the group's bookkeeping.
    void forget(detail::promise_base& p) noexcept {
        // A task leaving with joins holding inside it (handed over, or moving on): they no
        // longer count in this group and what encloses it (detail::count_holds).
        if (p.holds_below_) [[unlikely]]
            if (detail::count_holds_in(*this, -p.holds_below_) && loop_)
                loop_->recheck_paused = true;
        if (p.prev_in_group_)
            p.prev_in_group_->next_in_group_ = p.next_in_group_;
        else
            first_ = p.next_in_group_;
        if (p.next_in_group_) p.next_in_group_->prev_in_group_ = p.prev_in_group_;
        p.prev_in_group_ = p.next_in_group_ = nullptr;
        registry_->remove(p.handle_slot_);
        --size_;
        --loop_->live_tasks;
        if (work_) work_->leave();
    }

    static std::coroutine_handle<> task_done(root_owner& self, detail::promise_base& p) noexcept {
        static_cast<task_group&>(self).finish(p);
        return std::noop_coroutine();
    }

    // The task `p` has ended. Its failure handler, or the destruction of its frame, may
    // destroy this group (the frame held the last reference to the group's owner): nothing
    // touches the group after either, unless it is known to have survived.
    void finish(detail::promise_base& p) noexcept {
        std::exception_ptr failure = p.exception_;
        if (failure && p.own_cancel_.state().requested() && is_cancellation(failure))
            failure = nullptr; // it ended the way its cancellation asked it to
        forget(p);
        const std::coroutine_handle<> frame = p.self_;
        bool alive = true;
        alive_ = &alive;
        detail::promise_base* const marked = std::exchange(detail::running_task, nullptr);
        if (failure) failed(std::move(failure)); // user code: a group it makes is nobody's
        detail::running_task = marked;
        if (alive) {
            alive_ = nullptr;
            wake_joiners_if_empty();
        }
        // No longer counted here (forget): the frame's going must not take its counts back
        // from this group a second time (a group it owns that outlives it, say).
        p.owner_ = nullptr;
        frame.destroy();
    }

    void failed(std::exception_ptr e) noexcept {
        ++failures_;
        if (policy_ == failure_policy::cancel_all && !first_failure_) {
            first_failure_ = std::move(e);
            cancel_all();
            return;
        }
        report(e);
    }

    void report(const std::exception_ptr& e) noexcept { detail::report_failure(handler_, e); }

    static bool is_cancellation(const std::exception_ptr& e) noexcept {
        try {
            std::rethrow_exception(e);
        } catch (const std::system_error& error) {
            return error.code() == std::errc::operation_canceled;
        } catch (...) {
            return false;
        }
    }

    failure_policy policy_;
    failure_handler handler_;
    detail::task_registry* registry_ = new detail::task_registry;
    detail::promise_base* first_ = nullptr;
    std::size_t size_ = 0;
    std::size_t failures_ = 0;
    std::exception_ptr first_failure_;
    detail::ready_queue joiners_;
    bool* alive_ = nullptr; // while finish() runs user code: cleared if the group dies
    // Set by a stopping reactor_pool on a reactor's own group, and when the group's owner is
    // cancelled: tasks added from then on start cancelled.
    bool cancel_newcomers_ = false;
    // Set by a reactor_pool on each of its reactors' own groups: the pool's run waits for
    // their tasks wherever they go (detail::work_count).
    detail::work_count* work_ = nullptr;
    owner_link owner_link_{*this};
    detail::loop_core* loop_ = nullptr;
    task_group* prev_group_ = nullptr;
    task_group* next_group_ = nullptr;
};

inline void task_handle::cancel() const {
    if (!registry_) return;
    // The thread first: the registry is the group's reactor's, and another thread's lookup
    // would race with its spawns (a finished task is refused the same way).
    if (const detail::loop_core* l = registry_->loop.load(detail::memory_order_relaxed);
        l && !l->usable_by_this_thread())
        throw std::system_error(error::wrong_reactor, "task_handle::cancel");
    if (detail::promise_base* p = registry_->find(slot_, generation_)) task_group::cancel_task(*p);
}

} // namespace conet

// conet/task.hpp - the coroutine type every conet program is written in.
//
// Awaiting a task runs it in the awaiting task's cancellation chain (see cancel.hpp):
// cancelling the caller cancels what it awaits, and awaiting a task in a chain that is
// already cancelled throws operation_canceled without starting it. To run cleanup that
// must not be cancelled, await it through conet::shield().
//
// Depth: a task that finishes without suspending hands control back on the native stack, so
// a chain of nested awaits (f awaits g awaits h ...) that all finish at once uses stack per
// level (a few hundred bytes at -O0). Sequential awaits do not accumulate: a loop of a
// million immediately finishing awaits runs in constant stack. Nesting tens of thousands of
// levels deep needs a larger stack; ordinary recursion depths are fine.
//
// (Over 300 lines: the task, its promises and the ways of awaiting it are one concept.)
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "cancel.hpp"
#include "detail/await_record.hpp"
#include "detail/chrono.hpp"
#include "detail/loop_core.hpp"
#include "detail/ready_queue.hpp"
#include "error.hpp"

namespace conet {

template <class T = void>
class [[nodiscard("conet: a task does nothing until it is co_awaited, run or spawned")]] task;
class task_group;
class reactor;

namespace detail {

class promise_base;
class resume_on_awaiter;
struct task_dump_access;
/// all: when_all; any: when_any; any_settled: when_any_settled (when.hpp).
enum class join_mode : std::uint8_t { all, any, any_settled };
template <join_mode Mode, class... Ts>
class join;

/// Whoever drives a task that has no awaiting coroutine (a task of a task_group, or a
/// branch of when_all/when_any): told when it finishes; returns the coroutine to transfer to.
///
/// A function pointer rather than a virtual function: no vtable to check, which matters under
/// UBSan, whose vptr check probes memory through a pipe and so fails (with a false report) in
/// a server that has run out of descriptors.
class root_owner {
public:
    std::coroutine_handle<> on_root_done(promise_base& promise) noexcept {
        return done_(*this, promise);
    }
    /// The task whose co_await waits for this owner's tasks (a join's caller, a scope), or
    /// nullptr: the next link of a chain of awaits (see awaits_within).
    promise_base* awaiting() const noexcept { return awaiting_; }
    /// True for a when_any: finishing one of its branches decides it, and discards what the
    /// others are doing (a when_all's branches all count, a task_group's are independent).
    bool decides() const noexcept { return decides_; }
    /// True while this when_any holds (detail/pause.hpp): its losers' cleanup is never paused.
    bool holding() const noexcept { return holding_; }
    /// How many holding when_any are inside this owner's tasks (detail/pause.hpp).
    std::int32_t holds_below() const noexcept { return holds_below_; }
    /// The task whose code this owner's tasks are part of: the one awaiting them, or else the
    /// task that owns this group (through its cancellation link), or nullptr.
    inline promise_base* enclosing() const noexcept;
    /// True if this owner is notified through `done` (tells a task_group from a join).
    bool notifies_through(std::coroutine_handle<> (*done)(root_owner&,
                                                          promise_base&) noexcept) const noexcept {
        return done_ == done;
    }

protected:
    using done_function = std::coroutine_handle<> (*)(root_owner&, promise_base&) noexcept;
    explicit root_owner(done_function done) noexcept : done_(done) {}
    root_owner(const root_owner&) noexcept = default;
    root_owner& operator=(const root_owner&) noexcept = default;
    ~root_owner() = default;

    promise_base* awaiting_ = nullptr;
    const cancel_node* link_to_owner_ = nullptr; // a group's link on its owner's chain
    bool decides_ = false;
    bool holding_ = false;

private:
    friend bool count_holds(promise_base* p, std::int32_t delta) noexcept;
    friend bool count_holds_in(root_owner& owner, std::int32_t delta) noexcept;

    // The holding joins inside this owner's tasks, kept by count_holds.
    std::int32_t holds_below_ = 0;
    done_function done_;
};

/// A task_group's registration on the chain of the task that owns it. `left` is called once
/// the link is cut from the owner's side: with true when the owner is cancelled, with false
/// when the owner's frame goes first (promise_base's destructor), so that the group takes back
/// what its holding joins counted in the owner (count_holds) whichever way the link ends.
struct owner_link : cancel_node {
    using function = void (*)(owner_link&, bool cancelled) noexcept;
    explicit owner_link(function on_left) noexcept
        : cancel_node(&owner_link::fire), left(on_left) {}
    static void fire(cancel_node& n) noexcept {
        auto& link = static_cast<owner_link&>(n);
        link.left(link, true);
    }
    function left;
    cancel_state* chain = nullptr; // the owner's, while linked
    // The task that made the group, when it runs in its caller's chain (awaited in
    // sequence): its frame going cuts the link, not only the chain's own task's.
    const promise_base* made_by = nullptr;
};

/// The conet::task running on this thread (the promise of the coroutine whose code runs now),
/// or nullptr between tasks. Each task sets it as it starts and whenever it resumes from a
/// co_await, and clears it whenever it suspends or ends (see promise_base::await_transform):
/// two stores per operation, where keeping the previous mark to put back would cost a load
/// and a store more. So in the code a task runs after it resumed another coroutine inline (a
/// user's awaitable whose set() resumes its waiter) and before its own next co_await, no
/// task is marked. A task_group made while a task is marked belongs to that task
/// (task_group.hpp); made while none is, to nobody.
inline thread_local promise_base* running_task = nullptr;

inline void mark_running(promise_base* p) noexcept;
template <class A, class H>
decltype(auto) suspend_marked(A& a, H h);
template <class A>
void note_suspension(promise_base& p, const A& a) noexcept;
template <class A>
void mark_resumed(promise_base* p) noexcept;
template <class A, class H>
decltype(auto) suspend_noted(A& a, H h, promise_base& p);

/// Awaits `*a` (see promise_base::await_transform), and marks the awaiting task as the one
/// running again when it resumes.
template <class A>
struct forwarder {
    A* a;
    promise_base* self;
    bool await_ready() { return a->await_ready(); }
    template <class Promise>
    decltype(auto) await_suspend(std::coroutine_handle<Promise> h) {
        note_suspension(*self, *a);
        if constexpr (loop_operation<A> || noexcept(a->await_suspend(h)))
            return suspend_marked(*a, h);
        else
            return suspend_noted(*a, h, *self);
    }
    decltype(auto) await_resume() {
        mark_resumed<A>(self);
        return a->await_resume();
    }
};

/// The same for the awaiter an operator co_await returns (awaiting a task), held by value.
template <class A>
struct holding_forwarder {
    A a;
    promise_base* self;
    bool await_ready() { return a.await_ready(); }
    template <class Promise>
    decltype(auto) await_suspend(std::coroutine_handle<Promise> h) {
        note_suspension(*self, a);
        if constexpr (loop_operation<A> || noexcept(a.await_suspend(h)))
            return suspend_marked(a, h);
        else
            return suspend_noted(a, h, *self);
    }
    decltype(auto) await_resume() {
        mark_resumed<A>(self);
        return a.await_resume();
    }
};

/// What every task promise shares: the awaiting coroutine, the exception, the cancellation
/// chain, and the links a task_group uses to own a task without allocating for it.
class promise_base {
public:
    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
            promise_base& p = self.promise();
            // Returned: the groups it made in its caller's chain are nobody's now (its frame
            // may outlive the caller, whose chain the destructor could then not walk).
            if (p.made_group_) [[unlikely]]
                p.cut_groups_in_callers_chain();
            // Finished while its awaiter is still starting it: let the awaiter go on in its
            // own stack frame (see task::awaiter::await_suspend).
            running_task = nullptr;
            if (stall_probe_now) [[unlikely]] // the stall detector times this resumption
                note_stretch(*stall_probe_now, &p, stall_runner::end::finished, &p,
                             stall_runner::end::finished);
            if (p.finished_inline_) {
                *p.finished_inline_ = true;
                return std::noop_coroutine();
            }
            // Finished after a suspension: symmetric transfer to the awaiting coroutine.
            if (p.continuation_) return p.continuation_;
            if (p.owner_) return p.owner_->on_root_done(p); // may destroy this frame
            return std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };

    // Suspends at once (a task is lazy); marks the task as running (and started) when it
    // starts.
    struct initial_awaiter {
        promise_base* self;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<>) const noexcept {}
        inline void await_resume() const noexcept;
    };

    promise_base() noexcept { own_cancel_.state().set_task(this); }
    promise_base(const promise_base&) = delete;
    promise_base& operator=(const promise_base&) = delete;
    // The other end of an await: a task destroyed while awaited tells its awaiter.
    ~promise_base() {
        if (running_task == this) running_task = nullptr;
        cut_owned_groups();
        if (awaited_by_) awaited_by_->task_destroyed(*awaited_by_);
        delete[] name_;
    }

    initial_awaiter initial_suspend() noexcept { return {this}; }
    final_awaiter final_suspend() const noexcept { return {}; }
    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    /// Hands every conet awaitable the task's cancellation chain before it is awaited, so
    /// that it can see a cancellation before doing anything (even when it would complete at
    /// once). An awaiter (anything with await_ready) is then awaited through a pointer-sized
    /// forwarder: the operand itself stays where it is (a temporary lives until its co_await
    /// completes), where GCC would otherwise move the returned object into the frame (a
    /// second construction and destruction of every operation, and a move constructor
    /// required of every user awaitable). Awaitables with operator co_await pass through.
    ///
    /// The forwarders also mark this task as the running one when it resumes (running_task),
    /// which is how a task_group learns its owner.
    ///
    /// Each co_await also stores its source location in the task (a defaulted argument: a
    /// constant, one pointer with std::source_location), for the task dump: stored here, in
    /// the frame's own record, rather than carried in the forwarder, which GCC keeps in the
    /// frame too (the same store, and a load more when the task suspends).
#if defined(__cpp_lib_source_location)
    template <class Awaitable>
    decltype(auto)
    await_transform(Awaitable&& a,
                    std::source_location at = std::source_location::current()) noexcept {
        return transform(std::forward<Awaitable>(a), await_site{at});
    }
#else
    template <class Awaitable>
    decltype(auto) await_transform(Awaitable&& a, const char* file = __builtin_FILE(),
                                   unsigned line = __builtin_LINE(),
                                   const char* function = __builtin_FUNCTION()) noexcept {
        return transform(std::forward<Awaitable>(a), await_site{file, line, function});
    }
#endif

    /// The cancellation chain this task runs in.
    cancel_state& chain() noexcept {
        return *cancel_;
    }

    /// The task at the bottom of the chain of awaits this one belongs to: the task of a
    /// task_group, a when_all/when_any branch or a run() that (indirectly) awaits it, or this
    /// task itself when nothing awaits it. A task awaited as an lvalue (`co_await t;`, owned
    /// elsewhere) is a root of its own: it may outlive its awaiter.
    promise_base& root() noexcept {
        return *root_;
    }

    /// What an lvalue await leaves in the awaited task: told if the task is destroyed first.
    struct await_link {
        void (*task_destroyed)(await_link&) noexcept;
    };

    /// The exception the task ended with, if any.
    const std::exception_ptr& exception() const noexcept {
        return exception_;
    }

    /// True once the task has been started, or while something awaits or owns it: it cannot
    /// be awaited, run or spawned again.
    bool busy() const noexcept {
        return started_ || awaited_by_ || owner_;
    }

    /// The task's name (task_group::spawn(t, name)), or null.
    const char* name() const noexcept {
        return name_;
    }

protected:
    // The groups this task owns outlive it: they are nobody's now, and the joins holding in
    // their tasks no longer count in this task and what encloses it. They hang on its own
    // chain, or, for a task awaited in sequence, on its caller's, among the caller's own.
    void cut_owned_groups() noexcept {
        cut_links(own_cancel_.state(), [](const owner_link&) { return true; });
        if (made_group_) cut_groups_in_callers_chain(); // (destroyed before it returned)
    }
    // Those it made while it ran in its caller's chain, awaited in sequence (made_group_):
    // cut when it returns, or when its frame goes first, while that caller waits for it.
    void cut_groups_in_callers_chain() noexcept {
        made_group_ = false;
        if (cancel_ != &own_cancel_.state())
            cut_links(*cancel_, [this](const owner_link& l) { return l.made_by == this; });
    }
    template <class Match>
    static void cut_links(cancel_state& chain, Match match) noexcept {
        auto matches = [&](const cancel_node& n) {
            return match(static_cast<const owner_link&>(n));
        };
        while (cancel_node* n = chain.find(&owner_link::fire, matches)) {
            chain.remove(*n);
            auto& link = static_cast<owner_link&>(*n);
            link.left(link, false);
        }
    }

    // Its result is taken once: a second await of a finished task must not see a moved-from
    // value (or rethrow an exception the first already handled).
    void rethrow_if_failed() {
        if (taken_)
            throw std::logic_error("conet::task: its result was already taken (a task is "
                                   "awaited once)");
        taken_ = true;
        if (exception_) std::rethrow_exception(exception_);
    }

private:
    // What the stall detector keeps of task `p` (its root's id and name, its last co_await),
    // and how its stretch ended; null `p`: no task.
    static void note_runner(stall_runner& r, const promise_base* p,
                            stall_runner::end how) noexcept {
        if (!p) {
            r = stall_runner{};
            return;
        }
        r.how = how;
        r.id = p->root_->id_;
        r.where = p->record_.where;
        const char* name = p->root_->name_ ? p->root_->name_ : "";
        std::size_t i = 0;
        for (; name[i] && i + 1 < sizeof r.name; ++i)
            r.name[i] = name[i];
        r.name[i] = '\0';
    }

    // A cut in a resumption the stall detector times (see stall_probe): the stretch since the
    // last one was task `ran`'s (null: no task known, then the last cut's task, if any), ended
    // `how`; the next one is `at`'s, ending `at_how` unless another cut comes first.
    [[gnu::noinline, gnu::cold]] static void
    note_stretch(stall_probe& probe, const promise_base* ran, stall_runner::end how,
                 const promise_base* at, stall_runner::end at_how) noexcept {
        const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count();
        const std::int64_t took = now - probe.mark;
        probe.mark = now;
        loop_time = now; // (a task suspending now keeps it as its `since`)
        if (took > probe.longest) {
            probe.longest = took;
            if (ran)
                note_runner(probe.longest_by, ran, how);
            else
                probe.longest_by = probe.last;
        }
        note_runner(probe.last, at, at_how);
    }

    // The stall detector's cut when `p` resumes from an awaiter that is not a loop operation
    // (those the loop resumes, each resumption timed on its own): resumed by another task's
    // code (a user's awaitable, an event set, a child's end), the stretch until now was that
    // task's.
    [[gnu::noinline, gnu::cold]] static void note_inline_resume(promise_base* p) noexcept {
        if (running_task == p) return; // (it did not suspend: its await_ready said so)
        note_stretch(*stall_probe_now, running_task, stall_runner::end::resumed, p,
                     stall_runner::end::running);
    }

    template <class Awaitable>
    decltype(auto) transform(Awaitable&& a, const await_site& where) noexcept {
        if constexpr (requires { a.set_chain(cancel_); }) a.set_chain(cancel_);
        record_.where = where;
        if constexpr (requires { a.await_ready(); })
            return forwarder<std::remove_reference_t<Awaitable>>{&a, this};
        else if constexpr (requires { std::forward<Awaitable>(a).operator co_await(); })
            return holding_forwarder<decltype(std::forward<Awaitable>(a).operator co_await())>{
                std::forward<Awaitable>(a).operator co_await(), this};
        else
            return std::forward<Awaitable>(a);
    }

    template <class T>
    friend class conet::task;
    friend class conet::task_group;
    friend struct task_dump_access;
    template <class A>
    friend void note_suspension(promise_base& p, const A& a) noexcept;
    template <class A>
    friend void mark_resumed(promise_base* p) noexcept;
    template <class A, class H>
    friend decltype(auto) suspend_noted(A& a, H h, promise_base& p);
    friend class conet::reactor;
    template <join_mode Mode, class... Ts>
    friend class join;
    friend class resume_on_awaiter;
    friend void mark_running(promise_base* p) noexcept;
    friend bool awaits_within(promise_base* p, const root_owner* owner) noexcept;
    friend bool count_holds(promise_base* p, std::int32_t delta) noexcept;
    friend bool held_by_a_join(promise_base* p) noexcept;

    std::coroutine_handle<> continuation_;
    await_link* awaited_by_ = nullptr; // the lvalue await in progress, if any
    // The task awaiting this one as an lvalue (shielded or not): the next link of a chain of
    // awaits (awaits_within, paused_by), since this one is a root of its own.
    promise_base* parent_ = nullptr;
    bool started_ = false;
    bool taken_ = false;
    // A task_group made while this task ran linked itself to this task's chain (made_by):
    // its frame going looks for the link in its caller's chain too (cut_owned_groups).
    bool made_group_ = false;
    // For a root: the holding joins inside its code (its awaits, the groups it owns), kept by
    // count_holds; for the other tasks, 0.
    std::int32_t holds_below_ = 0;
    // While non-null, the task is being started by an awaiter that wants to know whether it
    // finished before suspending.
    bool* finished_inline_ = nullptr;
    std::exception_ptr exception_;

    // The chain this task runs in: its own when it is a root, a branch or shielded; its
    // awaiter's when it is awaited.
    cancel_scope own_cancel_;
    cancel_state* cancel_ = &own_cancel_.state();

    promise_base* root_ = this; // see root()

    // Bookkeeping of the task_group or join driving it as a root.
    root_owner* owner_ = nullptr;
    std::coroutine_handle<> self_;
    ready_node start_node_;
    promise_base* prev_in_group_ = nullptr;
    promise_base* next_in_group_ = nullptr;
    std::uint32_t handle_slot_ = 0;
    std::uint32_t id_ = 0; // a root task's id in the task dump (0: an awaited task)

    // For the task dump and the stall detector (conet/task_dump.hpp): what the task is
    // suspended in, where and since when, and its name (owned, or null).
    await_record record_;
    char* name_ = nullptr;
};

/// `p` resumes: it is the running task now.
inline void mark_running(promise_base* p) noexcept {
    running_task = p;
}

/// `p` suspends in `a` (its co_await stored where, await_transform): what the task dump shows
/// of it. A few stores, no call; with the stall detector timing the resumption, a cut.
template <class A>
[[gnu::always_inline]] inline void note_suspension(promise_base& p, const A& a) noexcept {
    if constexpr (!loop_operation<A>) {
        p.record_.awaiter = &a;
        p.record_.describe = &describe_erased<A>;
    }
    if (stall_probe_now) [[unlikely]]
        promise_base::note_stretch(*stall_probe_now, &p, stall_runner::end::suspended, &p,
                                   stall_runner::end::suspending);
    p.record_.since = loop_time;
}

/// `p` resumes from a co_await of an A: it is the running task, and suspended in nothing.
template <class A>
[[gnu::always_inline]] inline void mark_resumed(promise_base* p) noexcept {
    if constexpr (!loop_operation<A>)
        if (stall_probe_now) [[unlikely]]
            promise_base::note_inline_resume(p);
    running_task = p;
    if constexpr (!loop_operation<A>) p->record_.awaiter = nullptr;
}

/// The name of the task that chain `c` belongs to (its root's), for the trace.
inline const char* task_name(const cancel_state* c) noexcept {
    promise_base* p = c->task();
    return p ? p->root().name() : nullptr;
}

/// Tells the trace (detail/trace.hpp) how to name a task, once per program, before main().
inline const bool trace_knows_task_names = (task_name_of = &task_name, true);

inline void promise_base::initial_awaiter::await_resume() const noexcept {
    self->started_ = true;
    mark_running(self);
}

/// Suspends through `a`; once suspended (the frame may be resumed elsewhere, or gone), no task
/// is marked running.
template <class A, class H>
decltype(auto) suspend_marked(A& a, H h) {
    using result = decltype(a.await_suspend(h));
    if constexpr (std::is_void_v<result>) {
        a.await_suspend(h);
        running_task = nullptr;
    } else if constexpr (std::is_same_v<result, bool>) {
        if (!a.await_suspend(h)) return false;
        running_task = nullptr;
        return true;
    } else {
        auto next = a.await_suspend(h);
        running_task = nullptr;
        return next;
    }
}

/// suspend_marked for a forwarder, after note_suspension(p, a): if `a`'s await_suspend
/// throws, the task goes on (the exception is thrown at its co_await) and `a` is a temporary
/// about to die, so the record forgets it (a dump would describe it through a dangling
/// pointer, and show it instead of the task's next loop operation). The forwarders call it
/// only where await_suspend may throw and an awaiter was recorded (not a loop operation),
/// and suspend_marked directly elsewhere: a wrapper there, even inlined, changed GCC's
/// inlining in the echo server's loop (+3 instructions per round trip, callgrind).
template <class A, class H>
decltype(auto) suspend_noted(A& a, H h, promise_base& p) {
    try {
        return suspend_marked(a, h);
    } catch (...) {
        p.record_.awaiter = nullptr;
        throw;
    }
}

/// True if the code of task `p` is, through its chain of awaits (joins and lvalue awaits
/// included), part of a task that `owner` drives: it would wait for itself.
inline bool awaits_within(promise_base* p, const root_owner* owner) noexcept {
    while (p) {
        promise_base& root = *p->root_;
        if (root.owner_ == owner) return true;
        p = root.owner_ ? root.owner_->awaiting() : root.parent_;
    }
    return false;
}

inline promise_base* root_owner::enclosing() const noexcept {
    if (awaiting_) return awaiting_;
    const cancel_state* owner = link_to_owner_ ? link_to_owner_->owner() : nullptr;
    return owner ? owner->task() : nullptr;
}

/// Adds `delta` to the count of holding joins (detail/pause.hpp) of every root and every
/// owner that the code of task `p` is part of, walking up its chain of awaits (joins, lvalue
/// awaits, and from a group's task to the task that owns the group): +1 from a join's
/// awaiting task when the join begins holding, -1 when it stops, and a task's whole count
/// when it leaves an owner (a group destroyed, an lvalue await undone). Returns true if the
/// count of a when_any's branch fell to zero (what that branch held back may go on).
inline bool count_holds(promise_base* p, std::int32_t delta) noexcept {
    bool branch_freed = false;
    while (p) {
        promise_base& root = *p->root_;
        root.holds_below_ += delta;
        root_owner* owner = root.owner_;
        if (!owner) {
            p = root.parent_;
            continue;
        }
        owner->holds_below_ += delta;
        branch_freed = branch_freed || (owner->decides() && root.holds_below_ == 0);
        p = owner->enclosing();
    }
    return branch_freed;
}

/// count_holds for a task of `owner` joining it (`delta` its count) or leaving it (minus).
inline bool count_holds_in(root_owner& owner, std::int32_t delta) noexcept {
    owner.holds_below_ += delta;
    return count_holds(owner.enclosing(), delta);
}

/// The steps the when_any pause's tests have walked on this thread (for the tests: holds that
/// begin or end together must cost time linear in their number, docs/design.md).
inline thread_local std::uint64_t pause_steps = 0;

/// True if the code of task `p` is in one branch of a when_any enclosing it (through its
/// chain of awaits, and from a group's task to the task that owns the group) while a join
/// inside another branch holds: a branch whose completion could decide that when_any against
/// the holder (detail/pause.hpp). False for the tasks inside any holding when_any (the losers
/// whose cleanup it waits for: pausing them could make two holders wait for each other).
/// Walks up the joins enclosing `p` once, whatever the number of holding joins: each owner
/// counts those inside it, and each root those inside its code (count_holds).
inline bool held_by_a_join(promise_base* p) noexcept {
    while (p) {
        ++pause_steps;
        promise_base& root = *p->root_;
        root_owner* owner = root.owner_;
        if (!owner) {
            p = root.parent_;
            continue;
        }
        if (owner->holding()) return false;
        if (owner->decides() && owner->holds_below() > root.holds_below_) return true;
        p = owner->enclosing();
    }
    return false;
}

template <class T>
class promise final : public promise_base {
public:
    task<T> get_return_object() noexcept;

    template <class U = T>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        value_.emplace(std::forward<U>(value));
    }

    T take() {
        rethrow_if_failed();
        return std::move(*value_);
    }

private:
    std::optional<T> value_;
};

template <class T>
class promise<T&> final : public promise_base {
public:
    task<T&> get_return_object() noexcept;
    void return_value(T& value) noexcept { value_ = &value; }
    T& take() {
        rethrow_if_failed();
        return *value_;
    }

private:
    T* value_ = nullptr;
};

template <>
class promise<void> final : public promise_base {
public:
    task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take() { rethrow_if_failed(); }
};

/// Why an awaiter refused to start a task.
enum class refusal : std::uint8_t { none, empty, cancelled, busy };

/// Throws for a refusal (does nothing for none).
inline void throw_refusal(refusal r) {
    if (r == refusal::empty) throw std::invalid_argument("conet::task: awaiting an empty task");
    if (r == refusal::cancelled)
        throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                "co_await task");
    if (r == refusal::busy)
        throw std::logic_error("conet::task: awaiting a task that already runs (awaited, "
                               "spawned or started elsewhere)");
}

} // namespace detail

/// A lazily started coroutine producing a T (or a reference, or nothing).
///
/// A task does nothing until it is awaited (`co_await t`), run (`reactor::run(t)`) or spawned
/// (`task_group::spawn(t)`). The awaiting coroutine receives the returned value, or the
/// exception the task threw. Tasks are move-only; destroying an unfinished task destroys its
/// frame. Awaiting an empty (moved-from) task throws std::invalid_argument.
template <class T>
class task {
public:
    using promise_type = detail::promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;

    task() noexcept = default;
    explicit task(handle_type h) noexcept : handle_(h) {}
    task(task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            destroy();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { destroy(); }

    /// True if this task holds a coroutine (it has not been moved from or released).
    bool valid() const noexcept { return static_cast<bool>(handle_); }
    /// True once the coroutine has run to its end (returned or thrown).
    bool done() const noexcept { return handle_ && handle_.done(); }

    /// Awaiting a task temporary (`co_await f()`, or `co_await std::move(t)`) runs it in the
    /// awaiting task's chain; once it starts, its frame belongs to the await (`t` is left
    /// empty) and is destroyed with it.
    auto operator co_await() && noexcept { return awaiter(handle_, false); }
    /// Awaiting a task owned elsewhere (`co_await t;`): it runs in a chain of its own, hung
    /// under the awaiting task's, because it may outlive the awaiting frame. If that frame is
    /// destroyed first, the task is unhooked and cancelled (it never resumes into the freed
    /// frame); if the task is destroyed first, the await fails with conet::error::closed.
    auto operator co_await() & noexcept { return lvalue_awaiter(handle_, false); }

    /// Gives up ownership of the coroutine frame (used to spawn it).
    handle_type release() noexcept { return std::exchange(handle_, nullptr); }
    /// The coroutine frame, still owned by this task.
    handle_type handle() const noexcept { return handle_; }

private:
    template <class U>
    friend auto shield(task<U>& t) noexcept;
    template <class U>
    friend auto shield(task<U>&& t) noexcept;

    class [[nodiscard(
        "conet: co_await this operation; until awaited it does nothing")]] lvalue_awaiter;
    // Starts `task` for `caller`, which it resumes when it ends. If it finishes without
    // suspending, returns false: the caller continues at once, in its own frame (see the
    // awaiter's await_suspend); else true.
    static bool start(handle_type task, std::coroutine_handle<> caller) noexcept {
        auto& p = task.promise();
        p.continuation_ = caller;
        bool finished_inline = false;
        p.finished_inline_ = &finished_inline;
        task.resume();
        if (finished_inline) return false;
        p.finished_inline_ = nullptr; // suspended: it will resume `caller` when it ends
        return true;
    }

    // Awaits a task owned elsewhere (see operator co_await() &). Both ends undo the await:
    // the awaiter's destructor unhooks and cancels a task still running, and the task's
    // destruction ends the await (promise_base::~promise_base).
    class lvalue_awaiter : private detail::promise_base::await_link, private detail::ready_node {
    public:
        lvalue_awaiter(handle_type task, bool shielded) noexcept
            : await_link{&lvalue_awaiter::task_destroyed}, h_(task), shielded_(shielded) {}
        lvalue_awaiter(const lvalue_awaiter&) = delete;
        lvalue_awaiter& operator=(const lvalue_awaiter&) = delete;
        ~lvalue_awaiter() {
            if (waiting_) unhook();
        }

        bool await_ready() const noexcept { return h_ && h_.done(); }
        /// For the task dump: the task it awaits.
        void describe_await(detail::await_view& v) const {
            v.kind = "task";
            if (h_ && !h_.done()) v.child(h_.promise(), h_.address(), shielded_);
        }
        template <class CallerPromise>
        bool await_suspend(std::coroutine_handle<CallerPromise> caller) noexcept {
            if (!h_) {
                refused_ = detail::refusal::empty;
                return false;
            }
            auto& p = h_.promise();
            if (p.busy()) {
                refused_ = detail::refusal::busy;
                return false;
            }
            if constexpr (std::is_base_of_v<detail::promise_base, CallerPromise>) {
                if (!shielded_) {
                    detail::cancel_state& chain = caller.promise().chain();
                    if (chain.requested()) {
                        refused_ = detail::refusal::cancelled;
                        if (detail::take_budget()) return false;
                        // It never starts; the turn is given through this awaiter's own node.
                        return detail::give_turn(static_cast<detail::ready_node&>(*this), caller);
                    }
                    p.own_cancel_.attach(chain);
                }
                // Shielded or not, its code is part of the caller's: the walks up the joins
                // (the when_any pause, a join of one's own group) go through it.
                p.parent_ = &caller.promise();
            }
            p.awaited_by_ = this;
            handle = caller;
            loop_ = detail::loop_core::current();
            if (!start(h_, caller)) return false;
            waiting_ = true;
            return true;
        }
        decltype(auto) await_resume() {
            waiting_ = false;
            if (!h_ && refused_ == detail::refusal::none)
                throw std::system_error(error::closed, "co_await task (the task was destroyed)");
            detail::throw_refusal(refused_);
            auto& p = h_.promise();
            p.awaited_by_ = nullptr;
            p.continuation_ = nullptr;
            leave_parent(p);
            p.own_cancel_.detach();
            return p.take();
        }

    private:
        // The awaiting frame goes first: the task must not resume it, nor stay in its chain.
        void unhook() noexcept {
            auto& p = h_.promise();
            p.awaited_by_ = nullptr;
            p.continuation_ = nullptr;
            leave_parent(p);
            p.own_cancel_.detach();
            p.own_cancel_.state().request();
        }

        // The task's code is no longer part of its awaiter's: the joins holding inside it
        // (in a group it owns that outlives it, say) no longer count there.
        void leave_parent(detail::promise_base& p) const noexcept {
            if (p.holds_below_) [[unlikely]]
                if (detail::count_holds(p.parent_, -p.holds_below_) && loop_)
                    loop_->recheck_paused = true; // (see end_hold)
            p.parent_ = nullptr;
        }

        // The task goes first: resume the awaiter with error::closed.
        static void task_destroyed(detail::promise_base::await_link& link) noexcept {
            auto& self = static_cast<lvalue_awaiter&>(link);
            self.h_ = nullptr;
            self.waiting_ = false;
            // On the loop it waits on (destroyed between runs: it resumes when one starts).
            if (self.loop_) self.loop_->urgent.push_back(static_cast<detail::ready_node&>(self));
        }

        handle_type h_;
        detail::loop_core* loop_ = nullptr;
        bool shielded_;
        bool waiting_ = false;
        detail::refusal refused_ = detail::refusal::none;
    };

    struct [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] awaiter;
    struct awaiter {
        handle_type h;
        bool shielded;
        detail::refusal refused = detail::refusal::none;

        // Awaiting a task object as an rvalue (`co_await f()`, `co_await std::move(t)`) gives
        // the task away: once started, its frame belongs to this await, and goes with it (so
        // with the awaiting frame, should that be destroyed first: the task never resumes
        // into it, nor walks its chain).
        awaiter(handle_type& task_handle, bool shield) noexcept
            : h(task_handle), shielded(shield), source_(&task_handle) {}
        awaiter(const awaiter&) = delete;
        awaiter& operator=(const awaiter&) = delete;
        ~awaiter() {
            if (owned_) h.destroy();
        }

        bool await_ready() const noexcept { return h && h.done(); }
        /// For the task dump: the task it awaits.
        void describe_await(detail::await_view& v) const {
            v.kind = "task";
            if (h && !h.done()) v.child(h.promise(), h.address(), shielded);
        }
        // Starts the task. If it finishes without suspending, the caller continues at once
        // (returning false) in its own frame; otherwise the task resumes the caller by
        // symmetric transfer when it ends. Returning `h` here (plain symmetric transfer) would
        // rely on the compiler turning the resumption into a tail call, which GCC does not do
        // at -O0: a loop of a million synchronously finishing awaits then overflows the stack.
        template <class CallerPromise>
        bool await_suspend(std::coroutine_handle<CallerPromise> caller) noexcept {
            if (!h) {
                refused = detail::refusal::empty;
                return false;
            }
            auto& p = h.promise();
            if (p.busy()) {
                refused = detail::refusal::busy;
                return false;
            }
            // Awaited in sequence: the task belongs to its caller's chain (one cancellation),
            // unless shielded, when it keeps its own, which nothing cancels.
            if constexpr (std::is_base_of_v<detail::promise_base, CallerPromise>) {
                if (!shielded) {
                    detail::cancel_state& chain = caller.promise().chain();
                    if (chain.requested()) { // it never starts, and is left as it was
                        refused = detail::refusal::cancelled;
                        if (detail::take_budget()) return false;
                        // Through this await's own node: the task's may be used meanwhile
                        // (spawned, destroyed), for it is not taken.
                        return detail::give_turn(turn_, caller);
                    }
                    p.cancel_ = &chain;
                }
                p.root_ = &caller.promise().root();
            }
            *source_ = nullptr; // given away: h is this await's now
            owned_ = true;
            return start(h, caller);
        }
        decltype(auto) await_resume() {
            detail::throw_refusal(refused);
            return h.promise().take();
        }

    private:
        handle_type* source_; // the task object's handle, taken when the task starts
        bool owned_ = false;
        detail::ready_node turn_; // a refusal's turn given to the loop
    };

    void destroy() noexcept {
        if (handle_) std::exchange(handle_, nullptr).destroy();
    }

    handle_type handle_;
};

/// Awaits `t` shielded from the awaiting task's cancellation: `co_await conet::shield(
/// say_goodbye(conn))` runs to its end even in a task that is being cancelled, so cleanup
/// can still send, sleep or wait. Bound it with a timeout (conet::with_timeout on its
/// operations, or on the task) so that a shielded cleanup cannot hang its task forever.
template <class T>
auto shield(task<T>& t) noexcept {
    return typename task<T>::lvalue_awaiter(t.handle_, true);
}
template <class T>
auto shield(task<T>&& t) noexcept {
    return typename task<T>::awaiter(t.handle_, true);
}

/// The cancellation token of the task that awaits it: `auto token = co_await
/// conet::current_cancel_token();` (empty outside a conet::task).
inline auto current_cancel_token() noexcept {
    struct [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] awaiter;
    struct awaiter {
        detail::cancel_state* chain = nullptr;
        void set_chain(detail::cancel_state* c) noexcept { chain = c; }
        bool await_ready() const noexcept { return true; }
        void await_suspend(std::coroutine_handle<>) const noexcept {}
        cancel_token await_resume() const noexcept {
            return chain ? cancel_token(*chain) : cancel_token();
        }
    };
    return awaiter{};
}

/// The cancellation token of the coroutine `h` (for a user's awaitable, in await_suspend):
/// its chain's token if it is a conet::task, an empty token otherwise.
template <class Promise>
cancel_token get_cancel_token(std::coroutine_handle<Promise> h) noexcept {
    if constexpr (std::is_base_of_v<detail::promise_base, Promise>)
        return cancel_token(h.promise().chain());
    else
        return {};
}

namespace detail {

template <class T>
task<T> promise<T>::get_return_object() noexcept {
    return task<T>{std::coroutine_handle<promise>::from_promise(*this)};
}

template <class T>
task<T&> promise<T&>::get_return_object() noexcept {
    return task<T&>{std::coroutine_handle<promise>::from_promise(*this)};
}

inline task<void> promise<void>::get_return_object() noexcept {
    return task<void>{std::coroutine_handle<promise>::from_promise(*this)};
}

} // namespace detail
} // namespace conet

// conet/detail/loop_core.hpp - the state a reactor's awaitables reach without the reactor
// itself: the ready queues, the timer heap, the descriptor table and the epoll instance.
#pragma once

#include <climits>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "atomic.hpp"
#include "descriptor_table.hpp"
#include "ready_queue.hpp"
#include "timer_heap.hpp"

namespace conet {
class task_group;

/// What a reactor counts as it runs (reactor::stats()): how its operations completed, how
/// often it polled epoll, and the system calls its thread made for its operations and its
/// loop (wake-ups written by other threads are theirs).
struct reactor_stats {
    std::uint64_t completed_at_once = 0;    // operations whose first try finished them
    std::uint64_t completed_after_wait = 0; // operations finished by a try after a wait
    std::uint64_t epoll_waits = 0;          // calls of epoll_wait
    std::uint64_t syscalls = 0;             // every system call, epoll_wait included
    std::uint64_t deferred = 0;             // socket operations the budget put off to the next turn
};
} // namespace conet

namespace conet::detail {

class cancel_state;
class trace_log;

/// How many operations a coroutine may complete without waiting before it gives the loop its
/// turn (design invariant 9): each costs 1/128 of the byte budget, so that a resumption of
/// operations that move nothing makes at most 128. An operation that finds the budget spent
/// is tried again at the next turn, after timers, other sockets, posted functions and stop()
/// have been served.
inline constexpr std::uint32_t default_budget = 128;

/// How many bytes a resumption may move (received and sent, counted when an operation
/// completes), its operations' own cost included, before it gives the loop its turn: what a
/// flood costs the other connections is bytes copied, not operations (invariant 9). 16 KiB,
/// one echo of a 16 KiB read: a flooding peer then gets a turn's share of the copying
/// like any other connection, as under Asio's one completion per turn (docs/benchmarks.md).
inline constexpr std::size_t default_byte_budget = 16 * 1024;

/// How many more budgets a coroutine that is alone on its loop gets before the loop polls
/// again: alone, giving the turn would only cost an empty epoll_wait per budget.
inline constexpr std::uint32_t alone_refills = 15;

/// What one operation costs of the budget: the byte budget over the operation budget,
/// rounded up (loop_core::cost).
inline constexpr std::int64_t operation_cost(std::int64_t bytes,
                                             std::uint32_t operations) noexcept {
    return bytes / operations + (bytes % operations != 0);
}

/// What is left of the running resumption's budget, in bytes: one signed counter for
/// operations and bytes, so that the fast path is a test before an operation tries, the
/// operation's cost taken then, and a subtraction of the bytes it moved once it completes.
/// Negative once an operation went past it (an operation is never split). Thread-local, not
/// per reactor: the reactor sets it before each resumption. Outside any reactor it is
/// effectively unlimited.
inline thread_local std::int64_t budget_left = INT64_MAX;

/// What an operation costs of budget_left (the running reactor's loop_core::cost).
inline thread_local std::int64_t op_cost = operation_cost(default_byte_budget, default_budget);

/// What is left of the budget while a when_any holds (loop_core::budget is 0 then, see
/// loop_core::hold_budget): counted on the cold path, across resumptions.
inline thread_local std::int64_t held_budget_left = 0;

/// Takes one operation's cost of the budget: false once it is spent (defined after
/// loop_core).
inline bool take_budget() noexcept;
/// The same for an operation of chain `c` that would complete at once: false also while a
/// holding when_any holds its branch back (detail/pause.hpp), so that it waits instead.
inline bool take_budget(const cancel_state* c) noexcept;

/// Counts `n` bytes that an operation moved against the running resumption's budget (the
/// next take_budget() sees whether it is spent).
[[gnu::always_inline]] inline void spend_bytes(std::size_t n) noexcept {
    budget_left -= static_cast<std::int64_t>(n);
}

/// The counters of the reactor running on this thread: thread-local like the budget, so
/// that counting costs one increment; the reactor swaps its own in and out around a run.
inline thread_local reactor_stats counters{};

/// Counts one system call made on the reactor's thread (returns `r` unchanged).
template <class R>
[[gnu::always_inline]] inline R counted(R r) noexcept {
    ++counters.syscalls;
    return r;
}

/// Something outside the loop that must let go of it before it is destroyed (a lookup whose
/// helper thread would post to it). Intrusive: a hook that goes away unlinks itself.
struct loop_hook : ready_node {
    using function = void (*)(loop_hook&) noexcept;
    function on_loop_destroyed = nullptr;
};

/// Work the loop runs on its own thread at the start of its next turn, once the resumption in
/// progress has returned (resume_on leaves its reactor this way). Intrusive, like the ready
/// queue: a node that goes away unlinks itself.
struct deferred_action : ready_node {
    using function = void (*)(deferred_action&) noexcept;
    function run = nullptr;
};

/// Queues `n` to resume `h` at the running loop's next turn: how an await that would complete
/// at once (a cancelled one, say) gives the loop its turn once the budget is spent. False
/// when no loop runs on this thread (there is no turn to give: go on at once).
inline bool give_turn(ready_node& n, std::coroutine_handle<> h) noexcept;

/// The reactor's state as the awaitables see it.
struct loop_core {
    int epoll_fd = -1;
    ready_queue ready; // coroutines to resume at the next turn
    // Waits a deadline ended: resumed at the next turn after `ready`, each one looked at by
    // the when_any pause (detail/pause.hpp) just before it resumes.
    ready_queue expired;
    ready_queue retry; // operations whose try the budget deferred to the next turn
    // Waits ended by a cancellation or a close: resumed as soon as the coroutine running now
    // suspends, so that a cancelled when_any loser has unwound (and its when_any finished)
    // before the loop looks at the next event, which could otherwise decide an enclosing
    // when_any for another branch and discard what this one already received.
    ready_queue urgent;
    // The when_any joins whose winner is decided while a loser still runs (detail/pause.hpp),
    // and the operations of other branches they pause: tries (still waiting, with their
    // `deferred` bit) and waits a deadline ended, resumed once no join holds them back.
    ready_queue holding;
    ready_queue paused;
    // A task left a when_any's branch while joins inside it held (a group destroyed, an
    // await undone): the next end of a hold looks at every paused operation again.
    bool recheck_paused = false;
    ready_queue deferred;         // deferred_actions, run at the start of the next turn
    ready_queue hooks;            // loop_hooks, told when the loop is destroyed
    timer_heap timers;            // deadlines of sleeps and timeouts
    descriptor_table descriptors; // who waits on which descriptor
    task_group* groups = nullptr; // every task group bound to this loop (intrusive list)
    // The reactor's own group: where the tasks of a group destroyed before they finished go
    // to finish (task_group.hpp); null while the reactor is being destroyed.
    task_group* own_group = nullptr;
    bool closing = false;       // the reactor is being destroyed: frames go without resuming
    std::size_t live_tasks = 0; // tasks of those groups not finished yet
    // What each resumption starts with (fresh_budget): the byte budget
    // reactor::set_byte_budget gave, or 0 while a when_any holds, so that every operation
    // that would complete at once goes through refill_budget, which holds back those of
    // paused branches; the budget waits in held_budget then.
    std::int64_t budget = static_cast<std::int64_t>(default_byte_budget);
    std::int64_t held_budget = budget;
    // Set while a when_any holds (detail/pause.hpp): true if it holds chain `c` back.
    bool (*held_back)(const loop_core&, const cancel_state* c) noexcept = nullptr;
    // What reactor::set_budget and set_byte_budget gave, and what an operation costs of the
    // budget for that (op_cost while the loop runs).
    std::uint32_t operations = default_budget;
    std::int64_t byte_budget = budget;
    std::int64_t cost = operation_cost(byte_budget, operations);
    // Who else the loop served (alone()), kept only where it serves someone else than the
    // coroutine an event or a deferred try resumes: the poll (counters.epoll_waits) after
    // which it last did. And the budgets given again since the poll refill_poll.
    std::uint64_t busy_poll = 0;
    std::uint64_t refill_poll = 0;
    std::uint32_t refills = 0;
    bool trace = false; // CONET_TRACE set: print or log what the loop does (detail/trace.hpp)
    // CONET_TRACE=FILE: where this loop logs it (detail/trace_file.hpp); null when not.
    trace_log* log = nullptr;
    // The stall detector is on (reactor::set_stall_threshold): resumptions are timed.
    bool stall_watch = false;
    // trace, stall_watch, or a when_any holding: what an event's dispatch tests once
    // (pay_attention()).
    bool attention = false;
    // The virtual clock's reading while the reactor keeps virtual time (detail/virtual_clock.hpp),
    // null on the real clock: every deadline reads it instead of steady_clock (now()).
    const timer_entry::clock::time_point* virtual_now = nullptr;

    /// The loop's time: steady_clock's, or its virtual clock's.
    timer_entry::clock::time_point now() const noexcept {
        if (virtual_now) [[unlikely]]
            return *virtual_now;
        return timer_entry::clock::now();
    }

    /// Sets `attention` from what it sums up (after a change of trace, stall_watch or holding).
    void pay_attention() noexcept { attention = trace || stall_watch || !holding.empty(); }

    // The thread that runs the loop, while it runs: the address of that thread's current()
    // slot (unique among live threads). Read by the checks of thread affinity off the hot
    // path (groups, handles); a socket compares current() with its loop instead.
    atomic<loop_core* const*> running_on{nullptr};

    /// Notes that the loop resumes, or runs, something else than the one coroutine an event
    /// or a deferred try resumes (a ready coroutine, an expired or ended wait, a posted
    /// function, a second event or try): the running coroutine is not alone for this poll
    /// and the next. Called on the paths that do so, none of which an echo's round trip takes.
    void note_busy() noexcept { busy_poll = counters.epoll_waits; }

    /// True when the running coroutine seems to be the loop's only work: the loop served
    /// nobody else (note_busy) since the poll before the last one, no other coroutine or
    /// deferred try is queued, and no deadline has passed. Each of the last two polls then
    /// returned at most one event and resumed at most one coroutine. A coroutine that spent
    /// its budget may then go on with a new one, alone_refills times before the loop polls
    /// again: a single stream keeps its throughput without an empty epoll_wait per budget,
    /// and a client that arrives meanwhile waits for at most alone_refills + 1 budgets. The
    /// clock is read last, only when everything else says alone (once per budget at most).
    bool alone() const noexcept {
        const std::uint64_t polls = counters.epoll_waits;
        return polls >= busy_poll + 2 && (refill_poll != polls || refills < alone_refills) &&
               ready.idle() && expired.empty() && retry.idle() && urgent.empty() && !timer_due();
    }

    /// True when the earliest deadline has passed on the loop's clock: its wait expires at
    /// the end of this turn, so a coroutine that keeps running keeps it waiting.
    bool timer_due() const noexcept {
        const timer_entry* first = timers.top();
        return first && first->deadline() <= now();
    }

    /// A new budget for the coroutine alone (alone() said so): counted against this poll's
    /// refills.
    void note_refill() noexcept {
        const std::uint64_t polls = counters.epoll_waits;
        if (refill_poll != polls) {
            refill_poll = polls;
            refills = 0;
        }
        ++refills;
    }

    /// The operation budget reactor::set_budget gave.
    std::uint32_t configured_budget() const noexcept { return operations; }
    /// Sets the operation budget (`ops`, at least 1) or the byte budget (`bytes`, at least 1),
    /// and what an operation costs for them; op_cost too if this loop runs on this thread.
    void configure_budget(std::uint32_t ops, std::int64_t bytes) noexcept {
        operations = ops;
        byte_budget = bytes;
        (held_back ? held_budget : budget) = bytes;
        cost = operation_cost(bytes, ops);
        if (current() == this) op_cost = cost;
    }

    /// Starts or ends the budget of holding (detail/pause.hpp): while a when_any holds, each
    /// resumption starts with none, and refill_budget counts what is left (held_budget_left).
    /// `on_loop`: this loop runs on this thread, in the resumption that starts or ends it.
    void hold_budget(bool (*check)(const loop_core&, const cancel_state*) noexcept,
                     bool on_loop) noexcept {
        if (held_back) return;
        held_back = check;
        held_budget = budget;
        budget = 0;
        if (on_loop) held_budget_left = std::exchange(budget_left, 0);
    }
    void release_budget(bool on_loop) noexcept {
        if (!held_back) return;
        held_back = nullptr;
        budget = held_budget;
        if (on_loop) { // (budget_left is at most 0 while holding: the bytes moved since)
            const std::int64_t rest = held_budget_left + budget_left;
            budget_left = rest < budget ? rest : budget;
        }
    }

    /// Out of line, for take_budget() once the budget is spent: a new budget when the
    /// coroutine is alone. False: defer. While a when_any holds, every operation comes here:
    /// one of chain `c` that the holding join holds back is deferred (the retry then pauses
    /// it), the others count held_budget_left, which takes in the bytes moved since.
    [[gnu::noinline, gnu::cold]] static bool
    refill_budget(const cancel_state* c = nullptr) noexcept {
        loop_core* l = current();
        if (!l) return false;
        if (l->held_back) [[unlikely]] {
            if (c && l->held_back(*l, c)) return false;
            held_budget_left += std::exchange(budget_left, 0);
            if (held_budget_left > 0) {
                held_budget_left -= op_cost;
                return true;
            }
            if (!refill(*l, held_budget_left, l->held_budget)) { // give the turn
                held_budget_left = l->held_budget;               // (the next starts afresh)
                return false;
            }
            held_budget_left -= op_cost; // (this operation's cost)
            return true;
        }
        if (!refill(*l, budget_left, l->budget)) return false;
        budget_left -= op_cost; // (this operation's cost)
        return true;
    }

    /// Alone (see alone()), new budgets for what is `left` (at most 0): as many as it takes
    /// to bring it above 0, each counted against alone_refills. What the last operation
    /// spent past its budget is paid from them, so alone, a coroutine moves at most
    /// 1 + alone_refills budgets between two polls, and one operation more. False once
    /// they run out (or it is not alone): the turn goes to the loop.
    static bool refill(loop_core& l, std::int64_t& left, std::int64_t budget) noexcept {
        while (l.alone()) {
            l.note_refill();
            left += budget;
            if (left > 0) return true;
        }
        return false;
    }

    /// The loop running on this thread, or nullptr.
    static loop_core*& current() noexcept {
        thread_local loop_core* running = nullptr;
        return running;
    }

    /// True unless the loop runs on another thread now (then its state is that thread's).
    bool usable_here() const noexcept {
        loop_core* const* t = running_on.load(memory_order_relaxed);
        return !t || t == &current();
    }

    /// True if what belongs to this loop may be used on this thread: it is the thread's
    /// running loop, or no loop runs here and this one runs nowhere else. A thread running
    /// another loop is refused even while this one is idle: what it would start or wait for
    /// would be resumed on this loop's thread.
    bool usable_by_this_thread() const noexcept {
        loop_core* here = current();
        return here == this || (!here && usable_here());
    }
};

[[gnu::always_inline]] inline bool take_budget() noexcept {
    if (budget_left <= 0) [[unlikely]]
        return loop_core::refill_budget();
    budget_left -= op_cost;
    return true;
}

[[gnu::always_inline]] inline bool take_budget(const cancel_state* c) noexcept {
    if (budget_left <= 0) [[unlikely]]
        return loop_core::refill_budget(c);
    budget_left -= op_cost;
    return true;
}

/// The time every deadline counts from: the clock of the loop running on this thread (its
/// virtual clock, if it keeps one), else steady_clock's. On the real clock it costs a test
/// of a thread-local pointer more than steady_clock::now().
inline timer_entry::clock::time_point clock_now() noexcept {
    const loop_core* l = loop_core::current();
    if (l && l->virtual_now) [[unlikely]]
        return *l->virtual_now;
    return timer_entry::clock::now();
}

/// `from` + `d` (d >= 0), or the clock's last time point where that would not fit: a far
/// deadline saturates instead of overflowing (a virtual clock can reach any deadline, even
/// time_point::max(), and count on from there).
inline timer_entry::clock::time_point later_by(timer_entry::clock::time_point from,
                                               std::chrono::nanoseconds d) noexcept {
    using time_point = timer_entry::clock::time_point;
    if (d > time_point::max() - from) return time_point::max();
    return from + d;
}

inline bool give_turn(ready_node& n, std::coroutine_handle<> h) noexcept {
    loop_core* l = loop_core::current();
    if (!l) return false;
    n.handle = h;
    l->ready.push_back(n);
    return true;
}

} // namespace conet::detail

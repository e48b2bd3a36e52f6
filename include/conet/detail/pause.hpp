// conet/detail/pause.hpp - holding back the other branches of enclosing joins while a
// when_any waits for its losers (docs/design.md, invariant 12).
//
// when_any(inner, C), inner = when_any(A, B): A wins inner, B is cancelled and runs a
// shielded cleanup that waits. Until B ends, inner cannot finish; if C completed meanwhile it
// would win the outer join, and what A received would be discarded with inner. So while a
// decided when_any has a loser left, the loop pauses the operations of every branch that
// could decide a join enclosing it for another branch: their tries and their expired
// deadlines wait on loop_core::paused, and go on when no join holds them back any more.
// Everything inside the holding join (its losers' cleanup) and everything outside the joins
// enclosing it (other connections) runs as usual.
#pragma once

#include "../cancel.hpp"
#include "../task.hpp"
#include "loop_core.hpp"
#include "ready_queue.hpp"
#include "waiter.hpp"

namespace conet::detail {

/// A join's entry on its loop's `holding` list.
struct hold_node : ready_node {
    const root_owner* join = nullptr;
};

/// True if some holding join pauses the operations of chain `c`. Off the hot path: the loop
/// calls it only while a join holds. One walk up the joins enclosing `c`'s task, whatever
/// the number of holding joins (task.hpp, held_by_a_join).
inline bool held_back(const loop_core&, const cancel_state* c) noexcept {
    return c && held_by_a_join(c->task());
}

/// Puts `w`'s try (an event came, or its deferred turn) on the paused list instead of making
/// it, if a holding join holds it back. It keeps its slot, its deadline and its cancellation.
inline bool pause_try(loop_core& l, waiter& w) noexcept {
    if (!held_back(l, w.chain)) return false;
    w.unlink(); // off the retry queue, or already paused
    w.hold(waiter::deferred);
    l.paused.push_back(w);
    return true;
}

/// loop_core::held_back while a join holds: the test refill_budget makes for an operation
/// that would complete at once.
inline bool holds_back(const loop_core& l, const cancel_state* c) noexcept {
    return held_back(l, c);
}

/// Starts holding: `n.join` decided while a loser still runs. From now on, until no join
/// holds, an operation that would complete at once is held back too (loop_core::budget):
/// a branch the join pauses may run without having waited (started by an enclosing join
/// after the one that began holding, or a group's task started at the next turn).
inline void begin_hold(loop_core& l, hold_node& n) noexcept {
    count_holds(n.join->enclosing(), 1);
    l.holding.push_back(n);
    l.pay_attention();
    l.hold_budget(&holds_back, loop_core::current() == &l);
}

/// Stops holding, and lets go what no other join still holds back: a try goes back to the
/// retry queue (tried at the next turn), a wait a deadline ended to the expired queue (looked
/// at again just before it resumes: another join may hold by then).
inline void end_hold(loop_core& l, hold_node& n) noexcept {
    n.unlink();
    const bool branch_freed = count_holds(n.join->enclosing(), -1);
    l.pay_attention();
    if (l.holding.empty()) l.release_budget(loop_core::current() == &l);
    // What is paused stays paused unless a when_any's branch holds nothing any more: each
    // other branch of each join it is in still holds (the count of every join enclosing this
    // one still counts the others), so holds that end together cost no walk of the paused.
    if (!branch_freed && !l.recheck_paused && !l.holding.empty()) return;
    l.recheck_paused = false;
    ready_queue still;
    while (ready_node* p = l.paused.pop_front()) {
        auto& w = static_cast<waiter&>(*p);
        if (!l.holding.empty() && held_back(l, w.chain))
            still.push_back(w);
        else if (w.holds(waiter::deferred))
            l.retry.push_back(w);
        else
            l.expired.push_back(w);
    }
    l.paused.splice(still);
}

} // namespace conet::detail

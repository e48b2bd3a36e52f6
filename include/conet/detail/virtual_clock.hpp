// conet/detail/virtual_clock.hpp - a reactor's virtual time (reactor(clock_kind)): a reading
// that only the loop moves, and the mark advance() leaves on the timer heap.
//
// The clock moves in one place, the loop's turn (reactor.hpp, virtual_step): when the loop
// had nothing to resume, polled epoll without sleeping and found nothing, it sets the clock
// to the earliest deadline on the heap, which then expires as a real one would. Only then:
// time stands still while coroutines run, while descriptors report events, and while
// anything is queued to run. With auto-advance off, the loop steps only towards a target
// advance() set, which it marks with a deadline of its own on the heap (`mark`, a wait of no
// coroutine: its resumption resumes std::noop_coroutine()), so that the loop needs no other
// test: a step is allowed while the mark is armed, and the heap orders the mark with the
// deadlines that fall before and at it.
#pragma once

#include <coroutine>

#include "loop_core.hpp"
#include "timer_heap.hpp"
#include "waiter.hpp"

namespace conet::detail {

struct virtual_clock {
    using time_point = timer_entry::clock::time_point;

    time_point now{};
    bool auto_advance = true;
    // The number of the last poll made because nothing was ready and timers are pending: it
    // may move the clock if it finds nothing either (set by the poll's timeout, read by
    // expiry). 0: none.
    std::uint64_t idle_poll = 0;
    deadline mark;          // advance()'s target, while armed
    waiter marker{nullptr}; // the wait `mark` ends

    /// Starts the clock at the real time (so that a deadline computed from steady_clock by
    /// mistake is still near), on `loop`.
    void start(loop_core& loop, bool advance_by_itself) noexcept {
        now = timer_entry::clock::now();
        auto_advance = advance_by_itself;
        loop.virtual_now = &now;
        mark.is_error = false;
        mark.w = &marker;
        marker.timer = &mark;
        marker.handle = std::noop_coroutine();
    }

    /// True while advance() has a target the clock has not reached.
    bool advancing() const noexcept { return marker.timer_armed(); }
    /// That target (while advancing()).
    time_point target() const noexcept { return static_cast<const timer_entry&>(mark).deadline(); }

    /// Moves advance()'s target to `target` (later than any it had). May throw
    /// std::bad_alloc, the heap unchanged.
    void mark_target(loop_core& loop, time_point target) {
        if (marker.timer_armed()) loop.timers.remove(mark);
        marker.release(waiter::timing);
        loop.timers.push(mark, target);
        marker.loop = &loop;
        marker.hold(waiter::timing);
    }

    /// How long the loop's poll may sleep when nothing is ready and `first` is the earliest
    /// deadline: not at all if it is due, or if the clock may move, which the poll then does
    /// if it finds nothing; else until an event (-1). The clock may move towards advance()'s
    /// target, or by itself (auto-advance) unless `guarded`: a work guard exists, so another
    /// thread has said it will hand the loop work, and only it can tell when it is done.
    /// `poll`: the number the poll about to be made will have (counters.epoll_waits + 1).
    int wait_timeout(const timer_entry& first, bool guarded, std::uint64_t poll) noexcept {
        if (first.deadline() <= now) return 0;
        if (!(auto_advance && !guarded) && !advancing()) return -1;
        idle_poll = poll;
        return 0;
    }

    /// The time deadlines expire against, after poll number `poll` found `events` events:
    /// the earliest deadline `first`'s if that very poll was made with nothing to do and
    /// found none (the clock jumps). The poll's number, not a flag: a turn whose poll found
    /// an event that ended the last deadline makes no step, and a flag left set would make
    /// a later turn's poll, made because coroutines were ready, count as idle.
    time_point step(const timer_entry& first, std::size_t events, std::uint64_t poll) noexcept {
        if (idle_poll == poll && events == 0 && first.deadline() > now) now = first.deadline();
        return now;
    }
};

} // namespace conet::detail

// conet/virtual_time.hpp - testing time-driven code without waiting: a reactor whose clock is
// virtual, and advance() to move it by hand.
//
//     conet::reactor r{conet::clock_kind::virtual_auto};
//     r.run(server_drops_idle_clients());   // its 30 s timeout takes microseconds
//
// A reactor made with a virtual clock_kind reads its own clock wherever conet reads time:
// sleep_for, sleep_until, with_timeout (both forms), conet::now() and reactor::now(). The
// clock starts at steady_clock's time and stands still while coroutines run. It moves at one
// point of the loop's turn only: when nothing is ready to resume (no ready coroutine, expired
// wait, deferred try, cancellation or posted function), the loop polls epoll with a zero
// timeout instead of sleeping until the next deadline; if that poll reports no event, the
// clock jumps to the earliest deadline, whose waits expire and resume in deadline order
// (equal deadlines in the order they were set), each seeing now() equal to its deadline.
//
// - virtual_auto jumps by itself (auto-advance), unless a reactor::work_guard exists: a guard
//   says another thread will hand the loop work, so the loop sleeps in epoll_wait until an
//   event or a post instead. With no deadline pending, the loop sleeps as usual.
// - virtual_manual moves only towards a target advance() sets, stepping through the
//   deadlines before it; otherwise the loop waits for events as if no timer were pending.
//
// Sockets work as usual; what the clock cannot know is what a peer will send later. With
// both ends on this reactor (loopback), the kernel delivers what one end sends within the
// sending call, so the next poll sees it and the clock does not jump past it. A peer in
// another thread or process races with auto-advance: if its data is not there yet when the
// loop finds nothing to do, the clock jumps, and a timeout may fire that real time would
// not have fired. To avoid it, keep a work guard alive while the peer may still send (the
// clock then waits for it), or use virtual_manual and advance() by hand (from the peer's
// thread: r.post([&] { r.advance(30s); })).
//
// Determinism: with a virtual clock, time is a function of the program, not of the machine,
// so two runs with the same inputs resume coroutines in the same order, as far as the loop
// decides it. What can still differ is what the kernel decides: the order in which epoll
// reports descriptors that became ready together, and anything another thread or process
// does (helper threads of resolve(), posted functions, peers).
//
// One clock per reactor: a reactor_pool's reactors keep real time, and a task moved between
// reactors (resume_on, a handoff) reads the clock of the reactor it runs on; a deadline
// computed on one reactor means nothing on another with a different clock.
#pragma once

#include <stdexcept>

#include "detail/chrono.hpp"
#include "reactor.hpp"
#include "time.hpp"

namespace conet {

/// Awaited by a coroutine of a reactor with a virtual clock: moves its clock forward by `d`
/// (reactor::advance) and resumes when the clock reads the target, after the waits due by
/// then have resumed, in deadline order. Throws std::logic_error when no reactor runs on
/// this thread or it keeps real time. On virtual_manual, the way a test driver moves time.
template <class Rep, class Period>
detail::sleep_op advance(std::chrono::duration<Rep, Period> d) {
    reactor* r = reactor::current();
    if (!r) throw std::logic_error("conet::advance: no reactor runs on this thread");
    return sleep_until(r->advance(detail::bounded_duration(d)));
}

} // namespace conet

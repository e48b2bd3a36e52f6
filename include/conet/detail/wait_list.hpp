// conet/detail/wait_list.hpp - what the coroutine-to-coroutine primitives (channel, event,
// mutex, semaphore) share: the node a waiting coroutine keeps in its frame, the first-come
// first-served list of such nodes, and the reactor a primitive belongs to.
//
// A node is in at most one of a primitive's lists at a time (by its own base link) and, once
// it is to resume, in the loop's ready or urgent queue (by `wake`). Both links unlink
// themselves when the frame goes, so a destroyed waiter never stays queued anywhere. A node
// joins its chain's single watch slot (cancel.hpp) while it waits: a chain waits in one
// operation at a time.
#pragma once

#include <coroutine>
#include <cstdint>
#include <system_error>

#include "../cancel.hpp"
#include "../error.hpp"
#include "atomic.hpp"
#include "loop_core.hpp"
#include "ready_queue.hpp"
#include "waiter.hpp" // no_error()

namespace conet::detail {

class wait_list;

/// A coroutine waiting on a primitive. Its base ready_node links it into the primitive's
/// list; `wake` queues its resumption on the loop.
class wait_node : public ready_node, public cancel_watcher {
public:
    explicit wait_node(cancel_watcher::function cancelled) noexcept
        : cancel_watcher{cancelled, nullptr} {}
    // Copies what configures an operation that has not started (with_timeout takes one by
    // value), none of its links.
    wait_node(const wait_node& other) noexcept : ready_node(), cancel_watcher{other.on_cancel} {}
    wait_node& operator=(const wait_node&) = delete;
    // A frame destroyed while it waits leaves its chain (its lists it leaves by itself).
    ~wait_node() { unwatch(); }

    void set_chain(cancel_state* c) noexcept { chain = c; }
    bool cancel_requested() const noexcept { return chain && chain->requested(); }

    /// Cancelling the chain now calls on_cancel (once: the chain forgets it first).
    void watch() noexcept {
        if (chain) chain->watch(*this);
    }
    /// Cancelling the chain no longer concerns this operation, and it forgets the chain:
    /// `chain` is non-null only while the chain may still reach it, so that neither this nor
    /// the destructor touches a chain that went first (a promise's own chain is destroyed
    /// before the parameters of its coroutine, with_timeout's awaitable among them).
    void unwatch() noexcept {
        if (cancel_state* c = chain) {
            chain = nullptr;
            c->unwatch(*this);
        }
    }
    /// Forgets the chain without telling it: in on_cancel (the chain has already forgotten
    /// this operation), or where an operation suspends without watching (its result is
    /// decided, it only gives the loop its turn).
    void forget_chain() noexcept { chain = nullptr; }

    /// Resumes the coroutine at the loop's next turn (a wait that succeeded).
    void resume_later() noexcept { loop->ready.push_back(wake); }
    /// Resumes it as soon as the running coroutine suspends (a wait that cancellation or a
    /// destruction ended: design invariant 10), even if it was queued for the next turn.
    void resume_urgently() noexcept {
        wake.unlink();
        loop->urgent.push_back(wake);
    }

    /// await_suspend of an operation whose result is decided (cancelled, refused, or done
    /// with the budget spent): it only gives the loop its turn, unwatched.
    [[gnu::always_inline]] bool give_turn_decided(std::coroutine_handle<> h) noexcept {
        forget_chain();
        return give_turn(wake, h);
    }

    /// await_suspend of an operation that waits in `list`, watched. False (resume now, with
    /// no_reactor in `ec_`) where no reactor runs.
    [[gnu::always_inline]] inline bool suspend_on(wait_list& list,
                                                  std::coroutine_handle<> h) noexcept;

    /// await_suspend of an operation the primitive has already given what it asked for, with
    /// the budget spent: it resumes at the next turn, in `list` meanwhile (null: in none) and
    /// watched, so that cancelled before, it gives that up. False (resume now) where no
    /// reactor runs.
    [[gnu::always_inline]] inline bool resume_promised(wait_list* list,
                                                       std::coroutine_handle<> h) noexcept;

    /// The common start of await_resume: the chain no longer concerns it, and it leaves any
    /// list it is still in.
    [[gnu::always_inline]] inline void end_wait() noexcept;

    ready_node wake;                  // wake.handle: the waiting coroutine
    loop_core* loop = nullptr;        // the loop it resumes on
    std::error_code ec_ = no_error(); // how the operation failed (clear: it did not)
};

/// A first-come first-served list of wait_nodes. Intrusive: costs no allocation, and a node
/// whose frame goes leaves it by itself.
class wait_list {
public:
    void push_back(wait_node& n) noexcept { q_.push_back(n); }
    bool empty() const noexcept { return q_.empty(); }
    wait_node* front() const noexcept { return static_cast<wait_node*>(q_.front()); }
    wait_node* pop_front() noexcept { return static_cast<wait_node*>(q_.pop_front()); }
    /// Takes `n` out of whichever list holds it (nothing if none does).
    static void remove(wait_node& n) noexcept { static_cast<ready_node&>(n).unlink(); }
    static bool listed(const wait_node& n) noexcept {
        return static_cast<const ready_node&>(n).linked();
    }

private:
    ready_queue q_;
};

[[gnu::always_inline]] inline bool wait_node::suspend_on(wait_list& list,
                                                         std::coroutine_handle<> h) noexcept {
    wake.handle = h;
    loop = loop_core::current();
    if (!loop) [[unlikely]] {
        ec_ = error::no_reactor;
        return false;
    }
    list.push_back(*this);
    watch();
    return true;
}

[[gnu::always_inline]] inline bool wait_node::resume_promised(wait_list* list,
                                                              std::coroutine_handle<> h) noexcept {
    wake.handle = h;
    loop = loop_core::current();
    if (!loop) [[unlikely]]
        return false; // nothing to wait for: it takes it now
    if (list) list->push_back(*this);
    resume_later();
    watch();
    return true;
}

[[gnu::always_inline]] inline void wait_node::end_wait() noexcept {
    unwatch();
    wait_list::remove(*this);
}

/// The reactor a primitive belongs to: the first one that uses it. A primitive's state is
/// that reactor's thread's (design invariant 8): used from another reactor's thread, or from a
/// thread without one while its reactor runs, it fails with conet::error::wrong_reactor.
/// The claim is atomic: of two reactors whose first uses meet, one claims it and the other
/// is refused (a plain pointer let both claim it and go on). A thread without a reactor
/// claims nothing: it may use a primitive no reactor has claimed, and that use races with a
/// reactor's first one (the program's own race, as for any object two threads share).
class home_loop : private loop_hook {
public:
    home_loop() noexcept { on_loop_destroyed = &loop_gone; }
    home_loop(const home_loop&) = delete;
    home_loop& operator=(const home_loop&) = delete;

    /// True if the primitive may be used on this thread now; binds it to the running reactor
    /// on first use. One compare on the hot path.
    [[gnu::always_inline]] bool here() noexcept {
        loop_core* const current = loop_core::current();
        if (loop_.load(memory_order_relaxed) == current) [[likely]] // (a plain load on x86)
            return true;
        return elsewhere(current);
    }

    /// The reactor it belongs to, or nullptr if none has used it yet (or the one that did is
    /// gone).
    loop_core* loop() const noexcept { return loop_.load(memory_order_relaxed); }

private:
    [[gnu::noinline]] bool elsewhere(loop_core* current) noexcept {
        loop_core* owner = loop_.load(memory_order_acquire);
        if (!owner) {
            if (!current) return true; // no reactor here, and none has claimed it
            if (loop_.compare_exchange_strong(owner, current, memory_order_acq_rel)) {
                // Told when that reactor is destroyed (the hook leaves its list when this
                // goes), so that a primitive that outlives its reactor never reads it again.
                current->hooks.push_back(*this);
                return true;
            }
            // Another reactor's first use came first: `owner` is that reactor now.
        }
        return !current && owner->usable_here(); // its reactor runs nowhere now
    }

    // Its reactor is being destroyed: the primitive belongs to none again.
    static void loop_gone(loop_hook& h) noexcept {
        static_cast<home_loop&>(h).loop_.store(nullptr, memory_order_release);
    }

    atomic<loop_core*> loop_{nullptr};
};

/// Throws conet::error::wrong_reactor for `what` (out of line: a cold path of every operation).
[[noreturn, gnu::noinline, gnu::cold]] inline void throw_wrong_reactor(const char* what) {
    throw std::system_error(error::wrong_reactor, what);
}

/// What opens every primitive's await_ready: a chain already cancelled, or the wrong thread,
/// decides the operation before it touches anything (true, with `ec` set).
inline bool refused_at_start(const wait_node& n, home_loop& home, std::error_code& ec) noexcept {
    if (n.cancel_requested()) [[unlikely]] {
        ec = std::make_error_code(std::errc::operation_canceled);
        return true;
    }
    if (!home.here()) [[unlikely]] {
        ec = error::wrong_reactor;
        return true;
    }
    return false;
}

/// Reports `ec` through `out`, or throws it for `what` when there is no `out`.
inline void report(std::error_code ec, std::error_code* out, const char* what) {
    if (out)
        *out = ec;
    else if (ec)
        throw std::system_error(ec, what);
}

} // namespace conet::detail

// conet/reactor_pool.hpp - every core: one reactor per thread, one task on each.
//
//     conet::reactor_pool pool;                 // as many reactors as the machine has cores
//     pool.stop_on({SIGINT, SIGTERM});          // a signal stops them all
//     pool.run([&](std::size_t i) { return serve(listeners[i]); });  // until all have ended
//
// The shard model (see docs/design.md): each reactor keeps its sockets, timers and tasks on
// its own thread, so nothing on the hot path is shared or locked. Work crosses between
// reactors only as a posted node (spawn_on, resume_on, reactor::post). There is no work
// stealing: a connection stays on the reactor that serves it, and the kernel spreads new
// connections over the reactors' SO_REUSEPORT listeners.
//
// A pool runs whole or not at all: whatever ends one reactor's part of a run ends the run.
// pool.stop(), a signal given to stop_on, and also reactor::stop() called on one of the
// pool's reactors, stop the whole pool gracefully (every task is cancelled and unwinds; run()
// returns). A failure ends it by the failure policy (cancel_all: stop, and run() rethrows).
// Stopping needs no memory (each reactor has its messages allocated with the pool), so a pool
// out of memory still stops.
#pragma once

#include <signal.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "detail/atomic.hpp"
#include "detail/owner.hpp"
#include "detail/thread.hpp"
#include "reactor.hpp"
#include "signal.hpp"
#include "task.hpp"
#include "task_group.hpp"

namespace conet {

/// N reactors on N threads (the calling thread runs the first), each running a task of the
/// program's, stopped together. Create it, then run() it; its reactors are reachable with
/// operator[] (to spawn_on, resume_on or post to them).
class reactor_pool {
public:
    /// Receives the failures the policy does not rethrow from run(). Calls are serialized.
    using failure_handler = task_group::failure_handler;

    /// `count` reactors (0: one per hardware thread, at least one). With
    /// failure_policy::cancel_all (the default, as reactor::run(task) rethrows), the first
    /// task to fail stops every reactor and run() rethrows its exception; with
    /// failure_policy::report, a failure goes to the failure handler (stderr by default) and
    /// the others go on.
    template <class = void> // compiled only where a pool is used
    explicit reactor_pool(std::size_t count = 0, failure_policy policy = failure_policy::cancel_all)
        : policy_(policy) {
        if (count == 0) count = detail::hardware_concurrency();
        if (count == 0) count = 1; // the number of hardware threads is not known
        messages_ = detail::owner<shard_messages[]>(new shard_messages[count]);
        reactors_ = detail::owner<detail::owner<reactor>[]>(new detail::owner<reactor>[count]);
        for (std::size_t i = 0; i < count; ++i)
            reactors_[i] = detail::owner<reactor>(new reactor());
        count_ = count;
        shards_ = detail::owner<shard_state[]>(new shard_state[count]());
        for (std::size_t i = 0; i < count; ++i) {
            messages_[i].stop.set(*this, i, &reactor_pool::stop_message<>);
            messages_[i].release.set(*this, i, &reactor_pool::release_message<>);
            reactors_[i]->tasks().work_ = &work_;
        }
        work_.context = this;
        work_.all_done = &reactor_pool::all_done<>;
    }
    // What the reactors dispose of as they go (a task on its way) no longer releases them.
    ~reactor_pool() { work_.all_done = nullptr; }
    reactor_pool(const reactor_pool&) = delete;
    reactor_pool& operator=(const reactor_pool&) = delete;

    /// How many reactors (and threads, while running) the pool has.
    std::size_t size() const noexcept { return count_; }
    /// Reactor `i` (0 runs on the thread that calls run()). From another thread, use it only
    /// to post(), spawn_on() or resume_on() it. Its stop() stops the whole pool (see above).
    reactor& operator[](std::size_t i) noexcept { return *reactors_[i]; }

    /// Makes the next run() stop the pool (as stop() does) when one of `signals` arrives.
    /// While run() runs, a process-wide handler takes them (their previous dispositions are
    /// restored when it returns) and tells reactor 0: no thread's signal mask is changed, so
    /// it works whatever threads the process has, one started before the pool included. A
    /// thread that blocks one of them (one with a signal_set of it) leaves it to the others.
    /// Only one running pool may stop on a given signal (the second's run() fails with
    /// std::errc::device_or_resource_busy). Throws std::system_error (invalid_argument) for a
    /// signal number that does not exist, and for SIGKILL and SIGSTOP.
    template <class = void> // compiled only where a pool is used
    void stop_on(std::initializer_list<int> signals) {
        detail::owner<int[]> copy(new int[signals.size()]);
        std::size_t n = 0;
        for (const int s : signals) {
            sigset_t check;
            sigemptyset(&check);
            if (s == SIGKILL || s == SIGSTOP || sigaddset(&check, s) < 0)
                detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                                    "reactor_pool::stop_on: signal " + std::to_string(s) +
                                        " cannot be caught");
            copy[n++] = s;
        }
        signals_ = std::move(copy);
        signal_count_ = n;
    }

    /// Replaces the failure handler (the default prints the failure on stderr). It runs on
    /// the thread of the failing task's reactor, never two at once.
    template <class = void> // compiled only where a pool is used
    void set_failure_handler(failure_handler handler) {
        detail::lock_guard lock(failure_mutex_);
        handler_ = std::move(handler);
    }

    /// Runs `make_task(i)` (a conet::task, made on the calling thread before any thread
    /// starts) on reactor i, for every i, each on its own thread, and returns once every one
    /// has finished, along with whatever was spawned on its reactor meanwhile. With
    /// cancel_all, rethrows the first failure. An exception escaping a reactor's loop (a
    /// posted function that throws) is a failure too: reported (and that reactor's loop runs
    /// on), or it stops the pool (cancel_all).
    ///
    /// A reactor whose task has ended serves what the others hand it until nothing is left
    /// anywhere: no reactor's task, no task in a reactor's own group (spawn_on, resume_on,
    /// reactor::spawn), none on its way between two reactors. So a task that moves from
    /// reactor to reactor finishes before run() returns. A task on its way when the pool
    /// stops arrives cancelled in the pool's next run() (or is freed by its destruction).
    ///
    /// Called on a thread that runs a reactor (from a task), it throws std::logic_error at
    /// once: the calling thread is to run reactor 0.
    template <class F>
    void run(F make_task) {
        if (reactor::current())
            throw std::logic_error(
                "conet::reactor_pool::run: a reactor already runs on this thread");
        if (running_.exchange(true, detail::memory_order_acq_rel))
            throw std::logic_error("conet::reactor_pool::run: the pool is already running");
        // The run's number (odd while it runs): a task on its way that left during it and
        // arrives after it arrives cancelled (detail::journey::late).
        work_.runs.fetch_add(1, detail::memory_order_seq_cst);
        struct not_running {
            detail::atomic<bool>& flag;
            detail::atomic<std::uint64_t>& runs;
            ~not_running() {
                runs.fetch_add(1, detail::memory_order_seq_cst);
                flag.store(false, detail::memory_order_release);
            }
        } guard{running_, work_.runs};
        // Stop requests of an earlier run are stale from here on; one made from now on (even
        // while the tasks are being made) stops this run. (A stop message of an earlier run
        // still queued reads this flag when it runs: it does nothing, or this run's stop.)
        stop_requested_.store(false, detail::memory_order_seq_cst);
        using task_type = decltype(make_task(std::size_t{0}));
        std::vector<task_type> tasks;
        tasks.reserve(size());
        for (std::size_t i = 0; i < size(); ++i)
            tasks.push_back(make_task(i));
        work_.enter(size()); // (what an earlier run left on its way stays counted)
        for (std::size_t i = 0; i < size(); ++i) {
            shards_[i].finished.store(false, detail::memory_order_relaxed);
            shards_[i].done.store(false, detail::memory_order_relaxed);
            shards_[i].released = false;
            shards_[i].waiting = {};
            // What spawn_on and resume_on bring to a reactor fails by the pool's policy too.
            auto by_policy = [this](std::exception_ptr e) { failed(std::move(e)); };
            reactors_[i]->tasks().set_failure_handler(by_policy);
            reactors_[i]->tasks().cancel_newcomers_ = false;
            shards_[i].host.set_failure_handler(by_policy);
        }
        {
            detail::lock_guard lock(failure_mutex_);
            first_failure_ = nullptr;
        }
        // Before any thread starts: a signal that arrives from now on stops this run.
        // (Not a std::optional: this part does not depend on F, so std::optional<signal_relay>
        // would be compiled wherever the header is included.)
        detail::owner<detail::signal_relay> signals;
        if (signal_count_ != 0)
            signals = detail::owner<detail::signal_relay>(
                new detail::signal_relay(signals_.get(), signal_count_));

        // (Not a std::vector: this part does not depend on F, so it would be compiled
        // wherever the header is included.)
        detail::owner<detail::thread[]> threads(new detail::thread[size() - 1]);
        std::size_t started = 0;
        try {
            for (; started + 1 < size(); ++started)
                threads[started] = detail::thread(
                    [this, i = started + 1, t = std::move(tasks[started + 1])]() mutable {
                        drive(i, std::move(t), nullptr);
                    });
        } catch (...) { // no thread for one of them: stop those started, then report
            stop();
            for (std::size_t i = 0; i < started; ++i)
                threads[i].join();
            // The tasks that never ran leave the count (a later run starts from it).
            task_finished(0);
            for (std::size_t i = started + 1; i < size(); ++i)
                task_finished(i);
            throw;
        }
        drive(0, std::move(tasks[0]), signals.get());
        for (std::size_t i = 0; i < started; ++i)
            threads[i].join();

        detail::lock_guard lock(failure_mutex_);
        if (auto e = std::exchange(first_failure_, nullptr)) std::rethrow_exception(e);
    }

    /// Cancels every task on every reactor (their pending operations fail with
    /// operation_canceled, so that they unwind and end), and so ends run(). Safe from any
    /// thread. A stop requested while no run() is in progress is dropped when the next starts.
    template <class = void> // compiled only where a pool is used
    void stop() noexcept {
        stop_requested_.store(true, detail::memory_order_seq_cst);
        for (std::size_t i = 0; i < size(); ++i)
            messages_[i].stop.post_to(*reactors_[i]);
    }

private:
    // What reactor i's shard keeps, touched only on its thread.
    struct shard_state {
        task_group* group = nullptr; // the program's task on this reactor, while it runs
        // That task has ended (and was counted). Atomic, as `done`: a reactor that another
        // thread runs (a misuse the pool reports) may end its shard there.
        detail::atomic<bool> finished{false};
        bool released = false;            // no work is left (work_count), or the pool stopped
        detail::atomic<bool> done{false}; // the shard has ended (or could not be made)
        std::coroutine_handle<> waiting;  // the shard, waiting to be released
        resumption wake;
        task_group host; // holds the shard itself (see drive)
    };

    // Waits until release_shard(i): until then the reactor keeps serving what other
    // reactors hand it.
    struct until_released {
        shard_state& shard;
        bool await_ready() const noexcept { return shard.released; }
        void await_suspend(std::coroutine_handle<> h) const noexcept { shard.waiting = h; }
        void await_resume() const noexcept {}
    };

    // Runs reactor i's shard on the calling thread. The shard is a task of a group of the
    // pool's, not the task of a run(task): an exception escaping the loop (a posted function
    // that throws) is a failure by the policy, and the loop runs again, the shard and every
    // other task still there.
    //
    // The loop may also return before the shard has ended: when reactor::stop() was called on
    // this reactor (a public call). The pool cannot go on without one of its reactors (what
    // others hand it would never run), so that stops the pool, and the loop runs again while
    // the tasks unwind, as after stop().
    template <class T>
    void drive(std::size_t i, task<T> work, detail::signal_relay* signals) noexcept {
        reactor& r = *reactors_[i];
        try {
            r.post([this, i, signals, t = std::move(work)]() mutable {
                try {
                    shards_[i].host.spawn(shard(i, std::move(t), signals));
                } catch (...) { // no memory for the shard's frame
                    cannot_take_part(i, std::current_exception());
                }
            });
        } catch (...) { // no memory for the node
            cannot_take_part(i, std::current_exception());
            return;
        }
        for (;;) {
            try {
                r.run(); // until the shard, and all it waits for, has ended, or r.stop()
            } catch (const detail::run_refused&) { // another thread runs it: not ours to run
                cannot_take_part(i, std::current_exception());
                return;
            } catch (...) {
                failed(std::current_exception());
                continue;
            }
            if (shards_[i].done.load(detail::memory_order_acquire)) return;
            stop();
        }
    }

    // Reactor i cannot take part in the run (no memory, or another thread runs it): a
    // failure that stops the pool, whatever the policy.
    template <class = void> // compiled only where a pool is used
    void cannot_take_part(std::size_t i, std::exception_ptr e) noexcept {
        fail(std::move(e));
        shards_[i].done.store(true, detail::memory_order_release);
        task_finished(i);
    }

    // Reactor i's part of a run: the program's task in a group with the pool's policy; then,
    // until no work is left anywhere (work_), whatever other reactors hand this one; then what
    // spawn_on and resume_on left in the reactor's own group.
    template <class T>
    task<> shard(std::size_t i, task<T> work, detail::signal_relay* signals) {
        shard_state& state = shards_[i];
        task_group group(policy_);
        group.set_failure_handler([this](std::exception_ptr e) { report(e); });
        group.spawn(std::move(work));
        state.group = &group;
        if (stop_requested_.load(detail::memory_order_seq_cst)) cancel_shard(i);
        task_group watchers;
        if (signals) watchers.spawn(stop_on_signal(*signals));

        std::exception_ptr failure;
        try {
            co_await group.join();
        } catch (...) {
            failure = std::current_exception(); // cancel_all: the first failure
        }
        state.group = nullptr;
        if (failure) fail(failure);
        task_finished(i);
        co_await until_released{state};
        co_await reactor::current()->tasks().join();
        watchers.cancel();
        co_await watchers.join();
        state.done.store(true, detail::memory_order_release);
    }

    // Reactor i's task has ended. Whoever ends the last work (this, a task of a reactor's
    // own group, or one arriving) releases every reactor.
    template <class = void> // compiled only where a pool is used
    void task_finished(std::size_t i) noexcept {
        if (shards_[i].finished.exchange(true, detail::memory_order_acq_rel)) return;
        work_.leave();
    }

    // Any thread, from work_count::leave.
    template <class = void> // compiled only where a pool is used
    static void all_done(void* context) noexcept {
        auto& pool = *static_cast<reactor_pool*>(context);
        for (std::size_t r = 0; r < pool.size(); ++r)
            pool.messages_[r].release.post_to(*pool.reactors_[r]);
    }

    using shard_function = void (*)(reactor_pool&, std::size_t) noexcept;

    // A message to reactor i, allocated with the pool: stopping and releasing need no memory.
    // It carries no data of its own: run, it does what the pool's state asks for then (a
    // stop requested, every task ended), so one node in the queue serves any number of
    // requests, and one left from an earlier run does what this run asks, or nothing.
    class shard_message final : public detail::posted_node {
    public:
        shard_message() noexcept : posted_node(&shard_message::call) {}
        void set(reactor_pool& pool, std::size_t i, shard_function fn) noexcept {
            pool_ = &pool;
            i_ = i;
            fn_ = fn;
        }
        // Posts it unless it is already on its way (then that one will see the new state:
        // the state is written before this exchange, and read after the node's own store).
        void post_to(reactor& r) noexcept {
            if (!posted_.exchange(true, detail::memory_order_seq_cst)) r.post(*this);
        }

    private:
        static void call(posted_node& n, bool run) noexcept {
            auto& m = static_cast<shard_message&>(n);
            m.posted_.store(false, detail::memory_order_seq_cst);
            if (run) m.fn_(*m.pool_, m.i_);
        }
        reactor_pool* pool_ = nullptr;
        std::size_t i_ = 0;
        shard_function fn_ = nullptr;
        detail::atomic<bool> posted_{false};
    };
    struct shard_messages {
        shard_message stop, release;
    };

    // On reactor i's thread, from its messages.
    template <class = void> // compiled only where a pool is used
    static void stop_message(reactor_pool& pool, std::size_t i) noexcept {
        if (!pool.stop_requested_.load(detail::memory_order_seq_cst)) return;
        pool.cancel_shard(i);
        pool.release_shard(i);
    }
    template <class = void> // compiled only where a pool is used
    static void release_message(reactor_pool& pool, std::size_t i) noexcept {
        if (pool.work_.zero()) pool.release_shard(i);
    }

    // On reactor i's thread.
    template <class = void> // compiled only where a pool is used
    void release_shard(std::size_t i) noexcept {
        shard_state& state = shards_[i];
        state.released = true;
        if (state.waiting) state.wake.resume_later(std::exchange(state.waiting, {}));
    }

    template <class = void> // compiled only where a pool runs
    task<> stop_on_signal(detail::signal_relay& signals) {
        std::error_code ec;
        co_await signals.wait(ec);
        if (!ec) stop();
    }

    // On reactor i's thread.
    template <class = void> // compiled only where a pool is used
    void cancel_shard(std::size_t i) noexcept {
        if (shards_[i].group) shards_[i].group->cancel();
        // What arrives later (a task moving here with resume_on, one spawned with spawn_on)
        // is cancelled on arrival: it may have left its reactor before that one's cancel ran.
        task_group& own = reactors_[i]->tasks();
        own.cancel_newcomers_ = true;
        own.cancel();
    }

    // A failure outside the program's own task groups, by the pool's policy.
    template <class = void> // compiled only where a pool is used
    void failed(std::exception_ptr e) noexcept {
        if (policy_ == failure_policy::cancel_all)
            fail(std::move(e));
        else
            report(e);
    }

    // Keeps the first failure for run() to rethrow and stops the pool; reports later ones.
    template <class = void> // compiled only where a pool is used
    void fail(std::exception_ptr e) noexcept {
        {
            detail::lock_guard lock(failure_mutex_);
            if (first_failure_) {
                detail::report_failure(handler_, e);
                return;
            }
            first_failure_ = std::move(e);
        }
        stop();
    }

    template <class = void> // compiled only where a pool is used
    void report(const std::exception_ptr& e) noexcept {
        detail::lock_guard lock(failure_mutex_);
        detail::report_failure(handler_, e);
    }

    failure_policy policy_;
    // Before the reactors: destroyed after them, as their queues may still hold these.
    detail::owner<shard_messages[]> messages_;
    detail::work_count work_; // (and what they dispose of leaves this)
    detail::owner<detail::owner<reactor>[]> reactors_;
    std::size_t count_ = 0;
    detail::owner<shard_state[]> shards_; // [i]: touched on reactor i's thread only
    detail::owner<int[]> signals_;
    std::size_t signal_count_ = 0;
    detail::atomic<bool> running_{false};
    detail::atomic<bool> stop_requested_{false};
    detail::mutex failure_mutex_;
    failure_handler handler_;
    std::exception_ptr first_failure_;
};

} // namespace conet

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
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <stdexcept>
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
    explicit reactor_pool(std::size_t count = 0, failure_policy policy = failure_policy::cancel_all)
        : policy_(policy) {
        if (count == 0) count = detail::hardware_concurrency();
        if (count == 0) count = 1; // the number of hardware threads is not known
        reactors_ = detail::owner<detail::owner<reactor>[]>(new detail::owner<reactor>[count]);
        for (std::size_t i = 0; i < count; ++i)
            reactors_[i] = detail::owner<reactor>(new reactor());
        count_ = count;
        shards_ = detail::owner<shard_state[]>(new shard_state[count]());
    }
    reactor_pool(const reactor_pool&) = delete;
    reactor_pool& operator=(const reactor_pool&) = delete;

    /// How many reactors (and threads, while running) the pool has.
    std::size_t size() const noexcept { return count_; }
    /// Reactor `i` (0 runs on the thread that calls run()). From another thread, use it only
    /// to post(), spawn_on() or resume_on() it.
    reactor& operator[](std::size_t i) noexcept { return *reactors_[i]; }

    /// Makes the next run() stop the pool (as stop() does) when one of `signals` arrives. The
    /// signals are blocked for every thread of the pool and received by reactor 0.
    void stop_on(std::initializer_list<int> signals) {
        detail::owner<int[]> copy(new int[signals.size()]);
        std::size_t n = 0;
        for (const int s : signals)
            copy[n++] = s;
        signals_ = std::move(copy);
        signal_count_ = n;
    }

    /// Replaces the failure handler (the default prints the failure on stderr). It runs on
    /// the thread of the failing task's reactor, never two at once.
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
    /// Known limit: a task still on its way between two reactors (resume_on, spawn_on) when
    /// the reactor it goes to has finished (every reactor's task has ended, or the pool
    /// stopped) is destroyed with the pool, without being resumed. Hand work over while the
    /// pool's tasks run.
    template <class F>
    void run(F make_task) {
        if (running_.exchange(true, detail::memory_order_acq_rel))
            throw std::logic_error("conet::reactor_pool::run: the pool is already running");
        struct not_running {
            detail::atomic<bool>& flag;
            ~not_running() { flag.store(false, detail::memory_order_release); }
        } guard{running_};
        // Stop requests of an earlier run are stale from here on; one made from now on (even
        // while the tasks are being made) stops this run. (The flag first: a stop between
        // the two stores still leaves it set.)
        stop_requested_.store(false, detail::memory_order_release);
        run_id_.fetch_add(1, detail::memory_order_acq_rel);
        using task_type = decltype(make_task(std::size_t{0}));
        std::vector<task_type> tasks;
        tasks.reserve(size());
        for (std::size_t i = 0; i < size(); ++i)
            tasks.push_back(make_task(i));
        tasks_running_.store(size(), detail::memory_order_release);
        for (std::size_t i = 0; i < size(); ++i) {
            shards_[i].finished = shards_[i].released = false;
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
        // Before any thread starts, so that they all inherit the blocked mask.
        // (Not a std::optional: this part does not depend on F, so std::optional<signal_set>
        // would be compiled wherever the header is included, and it costs more than the pool.)
        detail::owner<signal_set> signals;
        if (signal_count_ != 0)
            signals = detail::owner<signal_set>(
                new signal_set(std::span<const int>(signals_.get(), signal_count_)));

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
    void stop() noexcept {
        stop_requested_.store(true, detail::memory_order_release);
        on_every_reactor([](reactor_pool& pool, std::size_t i) noexcept {
            pool.cancel_shard(i);
            pool.release_shard(i);
        });
    }

private:
    // What reactor i's shard keeps, touched only on its thread.
    struct shard_state {
        task_group* group = nullptr;     // the program's task on this reactor, while it runs
        bool finished = false;           // that task has ended (and was counted)
        bool released = false;           // every reactor's task has ended, or the pool stopped
        std::coroutine_handle<> waiting; // the shard, waiting to be released
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
    template <class T>
    void drive(std::size_t i, task<T> work, signal_set* signals) noexcept {
        reactor& r = *reactors_[i];
        try {
            r.post([this, i, signals, t = std::move(work)]() mutable {
                shards_[i].host.spawn(shard(i, std::move(t), signals));
            });
        } catch (...) { // no memory for the node: this reactor cannot take part
            fail(std::current_exception());
            task_finished(i);
            return;
        }
        for (;;) {
            try {
                r.run(); // until the shard, and all it waits for, has ended
                return;
            } catch (...) {
                failed(std::current_exception());
            }
        }
    }

    // Reactor i's part of a run: the program's task in a group with the pool's policy; then,
    // until every reactor's task has ended, whatever other reactors hand this one; then what
    // spawn_on and resume_on left in the reactor's own group.
    template <class T>
    task<> shard(std::size_t i, task<T> work, signal_set* signals) {
        shard_state& state = shards_[i];
        task_group group(policy_);
        group.set_failure_handler([this](std::exception_ptr e) { report(e); });
        group.spawn(std::move(work));
        state.group = &group;
        if (stop_requested_.load(detail::memory_order_acquire)) cancel_shard(i);
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
    }

    // Reactor i's task has ended: the last one to end releases every reactor.
    void task_finished(std::size_t i) noexcept {
        if (std::exchange(shards_[i].finished, true)) return;
        if (tasks_running_.fetch_sub(1, detail::memory_order_acq_rel) == 1)
            on_every_reactor(
                [](reactor_pool& pool, std::size_t r) noexcept { pool.release_shard(r); });
    }

    using shard_function = void (*)(reactor_pool&, std::size_t) noexcept;

    // `fn(pool, i)` on reactor i, dropped if a later run has begun by then. A node of its own
    // rather than a posted lambda: every post<F> instantiates a posted_function, and these
    // are compiled wherever conet.hpp is included.
    class shard_message final : public detail::posted_node {
    public:
        shard_message(reactor_pool& pool, std::size_t i, std::uint64_t run,
                      shard_function fn) noexcept
            : posted_node(&shard_message::call), pool_(pool), i_(i), run_(run), fn_(fn) {}

    private:
        static void call(posted_node& n, bool run) noexcept {
            auto* m = static_cast<shard_message*>(&n);
            if (run && m->run_ == m->pool_.run_id_.load(detail::memory_order_acquire))
                m->fn_(m->pool_, m->i_);
            delete m;
        }
        reactor_pool& pool_;
        std::size_t i_;
        std::uint64_t run_;
        shard_function fn_;
    };

    // Posts `fn(*this, i)` to every reactor i, for this run only.
    void on_every_reactor(shard_function fn) noexcept {
        const std::uint64_t id = run_id_.load(detail::memory_order_acquire);
        for (std::size_t i = 0; i < size(); ++i) {
            shard_message* m = new (std::nothrow) shard_message(*this, i, id, fn);
            if (m)
                reactors_[i]->post(*m);
            else
                reactors_[i]->stop(); // no memory for a graceful message: the abrupt stop
        }
    }

    // On reactor i's thread.
    void release_shard(std::size_t i) noexcept {
        shard_state& state = shards_[i];
        state.released = true;
        if (state.waiting) state.wake.resume_later(std::exchange(state.waiting, {}));
    }

    template <class = void> // compiled only where a pool runs
    task<> stop_on_signal(signal_set& signals) {
        std::error_code ec;
        co_await signals.wait(ec);
        if (!ec) stop();
    }

    // On reactor i's thread.
    void cancel_shard(std::size_t i) noexcept {
        if (shards_[i].group) shards_[i].group->cancel();
        // What arrives later (a task moving here with resume_on, one spawned with spawn_on)
        // is cancelled on arrival: it may have left its reactor before that one's cancel ran.
        task_group& own = reactors_[i]->tasks();
        own.cancel_newcomers_ = true;
        own.cancel();
    }

    // A failure outside the program's own task groups, by the pool's policy.
    void failed(std::exception_ptr e) noexcept {
        if (policy_ == failure_policy::cancel_all)
            fail(std::move(e));
        else
            report(e);
    }

    // Keeps the first failure for run() to rethrow and stops the pool; reports later ones.
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

    void report(const std::exception_ptr& e) noexcept {
        detail::lock_guard lock(failure_mutex_);
        detail::report_failure(handler_, e);
    }

    failure_policy policy_;
    detail::owner<detail::owner<reactor>[]> reactors_;
    std::size_t count_ = 0;
    detail::owner<shard_state[]> shards_; // [i]: touched on reactor i's thread only
    detail::atomic<std::size_t> tasks_running_{0};
    detail::owner<int[]> signals_;
    std::size_t signal_count_ = 0;
    detail::atomic<bool> running_{false};
    detail::atomic<std::uint64_t> run_id_{0};
    detail::atomic<bool> stop_requested_{false};
    detail::mutex failure_mutex_;
    failure_handler handler_;
    std::exception_ptr first_failure_;
};

} // namespace conet

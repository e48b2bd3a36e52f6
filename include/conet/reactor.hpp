// conet/reactor.hpp - the event loop: one epoll instance driving every coroutine of a thread.
//
// Threading rule: a reactor belongs to the thread that runs it. Everything except post(),
// stop() and work guards must be used on that thread. Scale to more cores with one reactor
// per thread.
//
// One turn of the loop resumes the coroutines that were ready when the turn began, then polls
// epoll (without sleeping if anything is ready, else until the earliest deadline), resumes
// the coroutines whose descriptors became ready, makes the tries the budget deferred before
// the turn began, then expires deadlines. Everything scheduled during a turn waits for the next
// one, so no coroutine can keep the others from their turn (design invariant 9). An exception
// leaving user code inside a turn (a posted function, say) propagates out of run() with the loop
// consistent: no epoll event, ready coroutine or posted function is lost, and run() can be
// called again (invariant 11).
//
// (Over 300 lines: the steps of a turn share the batch state kept in the reactor, and read
// best in one place; the parts below the loop live in detail/, see docs/design.md.)
#pragma once

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "cancel.hpp"
#include "detail/atomic.hpp"
#include "detail/chrono.hpp"
#include "detail/descriptor.hpp"
#include "detail/loop_core.hpp"
#include "detail/pause.hpp"
#include "detail/posted_queue.hpp"
#include "detail/ready_queue.hpp"
#include "detail/task_walk.hpp"
#include "detail/trace.hpp"
#include "detail/virtual_clock.hpp"
#include "detail/waiter.hpp"
#include "error.hpp"
#include "scheduling.hpp" // yield(), resumption: brought by reactor.hpp as they always were
#include "task.hpp"
#include "task_group.hpp"

namespace conet {

namespace detail {
/// Set by conet/task_dump.hpp when a program includes it: what a reactor made while
/// CONET_DUMP_SIGNAL is set calls to start listening for that signal.
inline void (*start_dump_signal)(reactor&, const char* signal) = nullptr;

/// CONET_STALL_MS as nanoseconds (0: unset, or not a positive number). A positive value below
/// a nanosecond, the clock's resolution, is the smallest threshold, 1 ns (not 0, which is off).
inline std::int64_t stall_threshold_requested() noexcept {
    const char* value = std::getenv("CONET_STALL_MS");
    if (!value || !*value) return 0;
    char* end = nullptr;
    const double ms = std::strtod(value, &end);
    if (*end != '\0' || !(ms > 0) || ms > 1e9) {
        std::fprintf(stderr,
                     "conet: CONET_STALL_MS=%s is not a number of milliseconds: the "
                     "stall detector stays off\n",
                     value);
        return 0;
    }
    const double ns = ms * 1e6;
    return ns < 1 ? 1 : static_cast<std::int64_t>(ns);
}

/// What run() throws when the reactor already runs on another thread (a logic_error): a
/// reactor_pool tells it from a failure of the loop, which it would retry.
struct run_refused : std::logic_error {
    using std::logic_error::logic_error;
};
} // namespace detail

/// Which clock a reactor's deadlines read (reactor(clock_kind); see conet/virtual_time.hpp).
enum class clock_kind : unsigned char {
    real,           ///< steady_clock: the default
    virtual_auto,   ///< virtual time, jumping to the next deadline when only timers can act
    virtual_manual, ///< virtual time that moves only by advance()
};

/// The event loop. Owns every task spawned on it (directly or through a task_group) and
/// every coroutine suspended on it.
///
///     conet::reactor r;
///     int answer = r.run(compute());   // drives compute() to completion
///
/// Destroying a reactor destroys every coroutine frame it owns (the tasks of every group
/// bound to it, and through them everything they await). Descriptors owned by objects that
/// outlive it (a listener declared before it, standard input) are detached, not closed.
class reactor {
public:
    /// Keeps run() (the form without a task) running while it exists, even with no task to
    /// run, so that work posted from other threads is waited for (Asio's work guard). May be
    /// created and destroyed on any thread.
    class work_guard {
    public:
        explicit work_guard(reactor& r) noexcept : reactor_(&r) { r.outstanding_.fetch_add(1); }
        work_guard(work_guard&& other) noexcept
            : reactor_(std::exchange(other.reactor_, nullptr)) {}
        work_guard& operator=(work_guard&& other) noexcept {
            if (this != &other) {
                reset();
                reactor_ = std::exchange(other.reactor_, nullptr);
            }
            return *this;
        }
        work_guard(const work_guard&) = delete;
        work_guard& operator=(const work_guard&) = delete;
        ~work_guard() { reset(); }

        /// Lets run() return once nothing else is left.
        void reset() noexcept {
            if (reactor* r = std::exchange(reactor_, nullptr)) r->finish_work();
        }

    private:
        reactor* reactor_;
    };

    /// Creates the epoll instance and the wake-up eventfd. Throws std::system_error.
    reactor() {
        core_.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (core_.epoll_fd < 0) detail::throw_error(detail::errno_code(errno), "epoll_create1");
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) {
            auto ec = detail::errno_code(errno);
            ::close(core_.epoll_fd);
            detail::throw_error(ec, "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN; // level-triggered: it stays readable until drained
        ev.data.u64 = wake_token;
        if (::epoll_ctl(core_.epoll_fd, EPOLL_CTL_ADD, wake_fd_, &ev) < 0) {
            auto ec = detail::errno_code(errno);
            ::close(wake_fd_);
            ::close(core_.epoll_fd);
            detail::throw_error(ec, "epoll_ctl(eventfd)");
        }
        tasks_.bind(core_);
        core_.own_group = &tasks_;
        core_.log = detail::trace_log::make();
        core_.trace = core_.log || detail::trace_requested();
        core_.pay_attention();
        stall_ns_ = detail::stall_threshold_requested();
        watch();
        if (const char* sig = std::getenv("CONET_DUMP_SIGNAL"); sig && *sig) [[unlikely]]
            start_dump_signal(sig);
    }

    /// A reactor whose deadlines read `clock`. A virtual clock (for tests: see
    /// conet/virtual_time.hpp) stands still while coroutines run and moves only when the
    /// loop finds nothing to do: to the next deadline at once (virtual_auto), or towards
    /// what advance() asks (both). It starts at steady_clock's time.
    explicit reactor(clock_kind clock) : reactor() {
        if (clock != clock_kind::real)
            virtual_clock_.start(core_, clock == clock_kind::virtual_auto);
    }

    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    ~reactor() {
        // Groups destroyed from here on destroy their tasks' frames: there is no reactor left
        // to hand them to.
        core_.closing = true;
        core_.own_group = nullptr;
        // Lookups still running are abandoned first: their helper threads must not post here
        // once this is gone (the frames awaiting them may outlive the reactor).
        while (detail::ready_node* n = core_.hooks.pop_front()) {
            auto& hook = static_cast<detail::loop_hook&>(*n);
            hook.on_loop_destroyed(hook);
        }
        // What was posted and never run is disposed of next: a node may live in a frame
        // destroyed below (a task on its way here from another reactor).
        posted_.dispose_all();
        // Destroy every task bound to us; their frames close their sockets, cancel their
        // timers and destroy nested groups as they go.
        while (task_group* g = core_.groups)
            g->detach();
        // What is still registered belongs to frames and objects owned elsewhere (the task
        // of a stopped run(), a listener declared before the reactor): forget it, never
        // resume it, never close its descriptor.
        core_.ready.clear();
        core_.expired.clear();
        core_.urgent.clear();
        core_.deferred.clear();
        // Waits without a slot (sleeps, tries the budget deferred) forget us as well, so
        // that nothing, not even a late cancellation of their chain, reaches the dead loop.
        while (detail::ready_node* n = core_.retry.pop_front())
            static_cast<detail::waiter&>(*n).detach_from_loop();
        while (detail::ready_node* n = core_.paused.pop_front())
            static_cast<detail::waiter&>(*n).detach_from_loop();
        core_.holding.clear();
        while (detail::timer_entry* e = core_.timers.top()) {
            core_.timers.remove(*e);
            static_cast<detail::deadline&>(*e).w->detach_from_loop();
        }
        for (std::size_t fd = 0; fd < core_.descriptors.size(); ++fd) {
            auto& s = core_.descriptors[static_cast<int>(fd)];
            if (s.reader) s.reader->detach_from_loop();
            if (s.writer) s.writer->detach_from_loop();
            if (s.owner) s.owner->detach_from_loop();
        }
        delete core_.log; // (flushes the trace file)
        ::close(wake_fd_);
        ::close(core_.epoll_fd);
    }

    /// The reactor running on the calling thread, or nullptr.
    static reactor* current() noexcept { return current_ref(); }

    /// Runs `t` to completion and returns its value (or rethrows its exception). Spawned
    /// tasks run meanwhile; their failures go by their group's policy, never out of run().
    /// If stop() is called before `t` finishes, run() throws std::system_error with
    /// std::errc::operation_canceled; `t` is then destroyed unfinished. An exception from a
    /// posted function propagates; the loop stays consistent and can be run again.
    template <class T>
    T run(task<T> t) {
        if (!t.valid()) throw std::invalid_argument("conet::reactor::run: empty task");
        if (t.handle().promise().busy())
            throw std::logic_error("conet::reactor::run: the task already runs, or ran");
        running_scope scope(*this, t.handle());
        auto h = t.handle();
        main_task_ = &h.promise();
        detail::task_dump_access::set_id(h.promise(), detail::next_task_id());
        h.promise().start_node_.handle = h;
        core_.ready.push_back(h.promise().start_node_);
        run_until_done(h);
        return h.promise().take();
    }

    /// Runs what when_all() or when_any() returns as run(task) runs a task, and returns the
    /// tuple or variant it yields: `r.run(conet::when_any(a(), b()))`.
    template <detail::join_mode Mode, class... Ts>
    auto run(detail::join<Mode, Ts...> j) {
        return run(awaiting(std::move(j)));
    }

    /// Runs until no task, ready coroutine, posted function or work guard is left, or until
    /// stop() is called.
    void run() {
        running_scope scope(*this);
        while (!out_of_work()) {
            if (stop_taken()) return;
            run_once();
        }
    }

    /// The reactor's own task group: what spawn() uses. Its failure policy is report, to
    /// stderr unless a handler is set: `r.tasks().set_failure_handler(...)`.
    task_group& tasks() noexcept { return tasks_; }

    /// Starts `t` in the reactor's own task group (see task_group::spawn): a failure of it
    /// never ends run(); it is reported by the group's failure handler.
    template <class T>
    task_handle spawn(task<T> t) {
        return tasks_.spawn(std::move(t));
    }

    /// spawn(t), naming the task (task_group::spawn(t, name)): the task dump and CONET_TRACE
    /// show the name. It is copied, and kept as a C string: it ends at its first NUL, if any.
    template <class T>
    task_handle spawn(task<T> t, std::string_view name) {
        return tasks_.spawn(std::move(t), name);
    }

    /// Asks the run() in progress to return at its next turn. Safe to call from any thread.
    /// A stop request made while no run() is in progress is dropped when the next starts:
    /// each run() begins with no stop pending.
    void stop() noexcept {
        stop_requested_.store(true, detail::memory_order_release);
        wake();
    }

    /// Runs `fn()` on the reactor's thread at its next turn. Safe to call from any thread;
    /// the way for another thread to hand the reactor work. `fn` may be move-only (a socket,
    /// a task); it is moved into one allocation, never copied. If `fn` throws, run()
    /// propagates the exception; the functions posted after it still run.
    template <class F>
    requires std::is_invocable_v < std::decay_t<F>
    & > void post(F&& fn) {
        post(*new detail::posted_function<std::decay_t<F>>(std::forward<F>(fn)));
    }

    /// Posts a node the caller provides (no allocation); it must stay alive until run.
    void post(detail::posted_node& node) noexcept {
        outstanding_.fetch_add(1, detail::memory_order_relaxed);
        if (posted_.push(node)) wake();
    }

    /// How many operations a coroutine may complete without waiting before it gives the
    /// loop its turn (design invariant 9; default 128): each costs this share of the byte
    /// budget, so that operations that move nothing make at most this many. 0 is taken as 1.
    void set_budget(std::uint32_t operations) noexcept {
        core_.configure_budget(operations ? operations : 1, core_.byte_budget);
    }
    std::uint32_t budget() const noexcept { return core_.configured_budget(); }

    /// How many bytes a coroutine may move (received and sent) without waiting before it
    /// gives the loop its turn, its operations' cost included (invariant 9; default 16 KiB).
    /// An operation is never split: the one that goes past the budget completes, and the
    /// next waits for the turn. 0 is taken as 1.
    void set_byte_budget(std::size_t bytes) noexcept {
        constexpr auto most = static_cast<std::size_t>(INT64_MAX);
        const std::size_t b = bytes == 0 ? 1 : bytes < most ? bytes : most;
        core_.configure_budget(core_.operations, static_cast<std::int64_t>(b));
    }
    std::size_t byte_budget() const noexcept { return static_cast<std::size_t>(core_.byte_budget); }

    /// The reactor's time (conet::now() on its thread): steady_clock's, or its virtual clock's.
    /// On the reactor's thread, or when no run() is in progress.
    std::chrono::steady_clock::time_point now() const noexcept { return core_.now(); }

    /// True if the reactor keeps virtual time (reactor(clock_kind)).
    bool keeps_virtual_time() const noexcept { return core_.virtual_now != nullptr; }

    /// Moves the virtual clock forward by `d` (negative: zero), running what falls due in
    /// deadline order, equal deadlines in the order they were set; each coroutine resumes
    /// with the clock at its own deadline. Calls add up: the target is `d` past the previous
    /// target still pending, else past now(). Returns the target.
    ///
    /// Called while no run() is in progress, runs the loop (spawned tasks, sockets, posted
    /// functions) until the clock reads the target and what was due by then has resumed;
    /// throws std::system_error (operation_canceled) if stop() comes first. Called on the
    /// reactor's thread while it runs (from a coroutine, or a posted function), sets the
    /// target and returns at once: the clock moves as the loop finds nothing else to do (a
    /// coroutine awaits conet::advance() to wait for it). Throws std::logic_error on a
    /// reactor that keeps real time, or while a run() is in progress on another thread.
    std::chrono::steady_clock::time_point advance(std::chrono::nanoseconds d) {
        if (!keeps_virtual_time())
            throw std::logic_error("conet::reactor::advance: the reactor keeps real time "
                                   "(make it with conet::clock_kind::virtual_auto or _manual)");
        if (d < d.zero()) d = d.zero();
        if (!running_here() && running_.load(detail::memory_order_acquire))
            throw std::logic_error("conet::reactor::advance: the reactor runs on another thread");
        const auto from = virtual_clock_.advancing() ? virtual_clock_.target() : virtual_clock_.now;
        const auto target = detail::later_by(from, d); // saturates: never past the clock's end
        virtual_clock_.mark_target(core_, target);
        if (!running_here()) run(until_marked());
        return target;
    }

    /// What this reactor has counted since it was made (reactor_stats): operations that
    /// completed at once or after a wait, epoll_wait calls, system calls. Read it on the
    /// reactor's thread, or when no run() is in progress.
    reactor_stats stats() const noexcept { return running_here() ? detail::counters : stats_; }

    /// The stall detector: a resumption of a coroutine (or a posted function) that runs longer
    /// than `threshold` without giving the loop its turn (a blocking call inside the loop)
    /// prints one line on stderr naming the coroutine that ran longest in it (its task: a
    /// group's task, a join's branch or the run's, by id and name), how long, and where: the
    /// co_await it suspended at (the blocking code ran before it), or, when it ended or resumed
    /// another task inline, the co_await it last resumed from. Zero turns it off (the default,
    /// unless CONET_STALL_MS gives milliseconds when the reactor is made). Off, it costs no
    /// clock read (a test of a thread-local pointer as a task suspends, ends, or resumes from
    /// an awaiter that is not a loop operation); on, one clock read at each of those and two
    /// per resumption.
    void set_stall_threshold(std::chrono::nanoseconds threshold) noexcept {
        stall_ns_ = threshold.count() > 0 ? threshold.count() : 0;
        watch();
    }
    std::chrono::nanoseconds stall_threshold() const noexcept {
        return std::chrono::nanoseconds(stall_ns_);
    }

    /// Reads the clock once per poll, so that the task dump can say how long each task has
    /// been suspended (to within a turn). Off by default; on once a dump was taken, with
    /// CONET_DUMP_SIGNAL, or with the stall detector.
    void time_suspensions(bool on) noexcept {
        stamp_polls_ = on;
        watch();
    }

private:
    friend struct detail::task_dump_access;

    // What the loop watches beyond its work, from the settings: the stall detector times
    // resumptions, the task dump stamps polls.
    void watch() noexcept {
        core_.stall_watch = stall_ns_ > 0;
        core_.pay_attention();
        stamp_polls_ = stamp_polls_ || stall_ns_ > 0;
        watch_resumptions_ = core_.log || stall_ns_ > 0;
        poll_attention_ = core_.trace || stamp_polls_;
        if (stamp_polls_) stamp_poll();
    }

    static void stamp_poll() noexcept {
        detail::loop_time = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                detail::timer_entry::clock::now().time_since_epoch())
                                .count();
    }

    [[gnu::noinline, gnu::cold]] void start_dump_signal(const char* sig) {
        if (detail::start_dump_signal) {
            time_suspensions(true);
            detail::start_dump_signal(*this, sig);
        } else {
            std::fprintf(stderr, "conet: CONET_DUMP_SIGNAL is set, but this program does not "
                                 "include <conet/task_dump.hpp>: no dump on a signal\n");
        }
    }
    // A task that awaits `a` and yields its result: how run() drives an awaitable.
    template <class Awaitable>
    static auto awaiting(Awaitable a) -> task<decltype(std::declval<Awaitable&>().await_resume())> {
        co_return co_await std::move(a);
    }

    static constexpr std::uint64_t wake_token = ~std::uint64_t{0};

    // Makes `r` the thread's current reactor for the duration of a run, with `main` the task
    // whose end ends the run (none: the run ends when nothing is left to do).
    class running_scope {
    public:
        explicit running_scope(reactor& r, std::coroutine_handle<> main = {})
            : reactor_(r), previous_(current_ref()), budget_(detail::budget_left),
              cost_(detail::op_cost) {
            if (previous_ == &r) throw std::logic_error("conet::reactor::run: already running");
            if (previous_)
                throw std::logic_error("conet::reactor::run: another reactor runs on this thread");
            if (r.running_.exchange(true, detail::memory_order_acq_rel))
                throw detail::run_refused("conet::reactor::run: already running on another thread");
            current_ref() = &r;
            detail::loop_core::current() = &r.core_;
            detail::op_cost = r.core_.cost;
            r.core_.running_on.store(&detail::loop_core::current(), detail::memory_order_relaxed);
            detail::running_task = nullptr;
            detail::counters = r.stats_; // counted thread-locally while it runs
            r.main_ = main;
            r.stop_requested_.store(false, detail::memory_order_relaxed); // no stale stop
        }
        ~running_scope() {
            reactor_.stats_ = detail::counters;
            reactor_.core_.running_on.store(nullptr, detail::memory_order_relaxed);
            reactor_.running_.store(false, detail::memory_order_release);
            detail::running_task = nullptr;
            current_ref() = previous_;
            detail::loop_core::current() = nullptr;
            detail::budget_left = budget_;
            detail::op_cost = cost_;
            reactor_.main_ = nullptr;
            reactor_.main_task_ = nullptr;
        }
        running_scope(const running_scope&) = delete;
        running_scope& operator=(const running_scope&) = delete;

    private:
        reactor& reactor_;
        reactor* previous_;
        std::int64_t budget_;
        std::int64_t cost_;
    };

    // Unlinks a turn's end marker however the turn ends (an exception included).
    struct marker_guard {
        detail::ready_node& marker;
        ~marker_guard() { marker.unlink(); }
    };

    bool running_here() const noexcept { return current_ref() == this; }

    // run(t)'s loop, not a template: one copy of the loop serves every task type.
    void run_until_done(std::coroutine_handle<> main) {
        while (!main.done()) {
            if (stop_taken())
                detail::throw_error(std::make_error_code(std::errc::operation_canceled),
                                    "reactor::run: stopped before the task finished");
            run_once();
        }
    }

    static reactor*& current_ref() noexcept {
        thread_local reactor* current = nullptr;
        return current;
    }

    bool out_of_work() const noexcept {
        return core_.live_tasks == 0 && core_.ready.empty() && core_.expired.empty() &&
               core_.retry.empty() && core_.urgent.empty() && core_.deferred.empty() &&
               next_event_ == event_count_ && outstanding_.load(detail::memory_order_acquire) == 0;
    }

    // Takes a pending stop request. A plain load first: the locked exchange, tens of cycles
    // on every turn of the loop, is paid only when a stop is there to take.
    bool stop_taken() noexcept {
        return stop_requested_.load(detail::memory_order_relaxed) &&
               stop_requested_.exchange(false, detail::memory_order_acquire);
    }

    // True once the current run has nothing left to wait for.
    bool run_finished() const noexcept { return main_ ? main_.done() : out_of_work(); }

    void wake() noexcept {
        const std::uint64_t one = 1;
        // A full counter (EAGAIN) already means "wake up", so the result can be ignored.
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    void finish_work() noexcept {
        if (outstanding_.fetch_sub(1, detail::memory_order_acq_rel) == 1) wake();
    }

    // A resumption's fresh budget (invariant 9), given before the try that ends a wait so
    // that the bytes it moves count against the resumption they lead to.
    [[gnu::always_inline]] void fresh_budget() noexcept { detail::budget_left = core_.budget; }

    void resume(std::coroutine_handle<> h) {
        fresh_budget();
        resume_budgeted(h);
    }

    // Resumes `h` with the budget fresh_budget() gave (and a try may have spent).
    [[gnu::always_inline]] void resume_budgeted(std::coroutine_handle<> h) {
        if (watch_resumptions_) [[unlikely]] // the trace file, or the stall detector
            return resume_logged(h);
        resume_unlogged(h);
    }

    // resume_budgeted where the trace file is known off (resume_ready's common path).
    [[gnu::always_inline]] void resume_unlogged(std::coroutine_handle<> h) {
        h.resume();
        if (!core_.urgent.empty()) [[unlikely]]
            resume_urgent();
    }

    // Resumes the waits a cancellation or a close ended (see loop_core::urgent), including
    // those their unwinding ends in turn.
    void resume_urgent() {
        while (detail::ready_node* n = core_.urgent.pop_front()) {
            core_.note_busy();
            fresh_budget();
            if (watch_resumptions_) [[unlikely]] {
                resume_watched(n->handle);
                continue;
            }
            n->handle.resume();
        }
    }

    // CONET_TRACE=FILE: a resumption is a slice of its coroutine's row, closed however the
    // resumption ends.
    struct span_guard {
        detail::trace_log& log;
        std::uint32_t row;
        ~span_guard() { log.span_ends(row); }
    };

    [[gnu::noinline]] void resume_logged(std::coroutine_handle<> h) {
        resume_watched(h);
        if (!core_.urgent.empty()) resume_urgent();
    }

    // What the stall detector keeps of one resumption (or posted function) it times: its
    // probe, current on the thread while it runs, checked when it returns or throws.
    struct stall_guard {
        reactor& self;
        void* frame; // the coroutine resumed (null: a posted function)
        std::int64_t start = 0;
        detail::stall_probe* outer = nullptr;
        detail::stall_probe probe{};
        stall_guard(reactor& r, void* resumed) noexcept : self(r), frame(resumed) {
            if (!r.stall_ns_) return;
            start = now_ns();
            probe.mark = start;
            probe.posted = resumed == nullptr;
            detail::loop_time = start;
            outer = std::exchange(detail::stall_probe_now, &probe);
        }
        stall_guard(const stall_guard&) = delete;
        stall_guard& operator=(const stall_guard&) = delete;
        ~stall_guard() {
            if (!start) return;
            detail::stall_probe_now = outer;
            self.check_stall(*this);
        }
    };

    // One resumption in a span of the trace file, timed by the stall detector, or both.
    // Timed, the resumption is cut into stretches, each the time of the task that ran it (see
    // detail::stall_probe): what report_stall names, if the resumption ran too long.
    void resume_watched(std::coroutine_handle<> h) {
        stall_guard stall{*this, h.address()};
        if (core_.log) {
            span_guard span{*core_.log, core_.log->span_begins(h.address())};
            h.resume();
            return;
        }
        h.resume();
    }

    static std::int64_t now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   detail::timer_entry::clock::now().time_since_epoch())
            .count();
    }

    void check_stall(stall_guard& g) noexcept {
        const std::int64_t now = now_ns();
        // (in an enclosing one, if any, the time of this one is nobody's stretch)
        if (g.outer) g.outer->mark = now;
        if (stall_ns_ == 0 || now - g.start <= stall_ns_) [[likely]] // (0: turned off meanwhile)
            return;
        // The stretch after the last cut is the last cut's task's.
        if (now - g.probe.mark > g.probe.longest) {
            g.probe.longest = now - g.probe.mark;
            g.probe.longest_by = g.probe.last;
        }
        report_stall(g.frame, g.probe, now - g.start);
    }

    // One line on stderr: the task that ran the longest stretch of a resumption that ran
    // `ran` nanoseconds in all, and where: the co_await it suspended at (the blocking code ran
    // before it), or the last one it resumed from, when it ended or resumed another task.
    [[gnu::noinline, gnu::cold]] void report_stall(void* frame, const detail::stall_probe& probe,
                                                   std::int64_t ran) noexcept {
        using end = detail::stall_runner::end;
        const detail::stall_runner& by = probe.longest_by;
        char who[112];
        if (by.how == end::unknown || by.id == 0) {
            if (probe.posted)
                std::snprintf(who, sizeof who, "a posted function (reactor::post)");
            else if (by.how == end::unknown)
                std::snprintf(who, sizeof who, "a coroutine (frame %p)", frame);
            else
                std::snprintf(who, sizeof who, "a task");
        } else if (by.name[0]) {
            std::snprintf(who, sizeof who, "task %u \"%s\"", by.id, by.name);
        } else {
            std::snprintf(who, sizeof who, "task %u", by.id);
        }
        char where[400] = "";
        if (by.how != end::unknown) {
            char function[128];
            detail::short_function(by.where.function(), function, sizeof function);
            const bool awaited = by.where.line() != 0;
            char at[300] = "in its first resumption";
            if (awaited)
                std::snprintf(at, sizeof at, "in %s %s its co_await at %s:%u", function,
                              by.how == end::suspended    ? "before"
                              : by.how == end::suspending ? "suspending at"
                                                          : "after",
                              by.where.file(), by.where.line());
            std::snprintf(where, sizeof where, ", %s%s", at,
                          by.how == end::finished  ? ", until it finished"
                          : by.how == end::resumed ? ", until it resumed another task inline"
                                                   : "");
        }
        const double ms = static_cast<double>(probe.longest) / 1e6;
        if (probe.longest > stall_ns_) {
            std::fprintf(stderr,
                         "conet: stall: %s ran %.1f ms without suspending (blocking the loop)%s\n",
                         who, ms, where);
        } else { // no one ran past the threshold, all of them together did
            std::fprintf(stderr,
                         "conet: stall: coroutines ran %.1f ms in one resumption (blocking the "
                         "loop), none of them %.1f ms; the longest: %s ran %.1f ms%s\n",
                         static_cast<double>(ran) / 1e6, static_cast<double>(stall_ns_) / 1e6, who,
                         ms, where);
        }
    }

    // Inline in both run()s: at one connection, each round trip is a whole turn.
    [[gnu::always_inline]] void run_once() {
        // Tested here, not in the calls: most turns have none of these to do.
        if (!core_.urgent.empty()) [[unlikely]]
            resume_urgent(); // cancellations made while no run was in progress
        if (next_event_ < event_count_) [[unlikely]]
            dispatch_rest(); // what an exception left of the previous batch
        if (!core_.deferred.empty()) [[unlikely]]
            run_deferred();
        // The tries deferred before this turn, made after its events: a coroutine that spent
        // its budget goes behind what was queued before it and behind the sockets that
        // became ready meanwhile. Those deferred while the turn runs wait for the next.
        const bool retries = !core_.retry.empty();
        if (retries) {
            core_.retry.push_back(retry_end_);
            resumed_before_retries_ = detail::counters.completed_after_wait;
        }
        marker_guard retry_guard{retry_end_};
        run_ready();
        run_expired();
        if (stop_requested_.load(detail::memory_order_relaxed) || run_finished()) return;
        int n;
        do {
            const int timeout = wait_timeout_ms();
            if (core_.trace) [[unlikely]]
                trace_sleep(timeout);
            n = detail::counted(::epoll_wait(core_.epoll_fd, events_.data(),
                                             static_cast<int>(events_.size()), timeout));
            ++detail::counters.epoll_waits;
            if (poll_attention_) [[unlikely]] { // tracing, or stamping polls (the task dump)
                if (stamp_polls_) stamp_poll();
                if (core_.trace) trace_polled(n, timeout);
            }
        } while (n < 0 && errno == EINTR); // a signal: just poll again
        if (n < 0) detail::throw_error(detail::errno_code(errno), "epoll_wait");
        if (n > 1) core_.note_busy(); // (several coroutines may resume: see loop_core::alone)
        event_count_ = static_cast<std::size_t>(n);
        next_event_ = 0;
        dispatch_events();
        if (retries) run_retries();
        expire_timers();
    }

    // The trace's lines (or the trace file's events), out of line and cold: off, they must
    // not weigh on the loop's code.
    [[gnu::noinline, gnu::cold]] void trace_event(std::size_t fd, std::uint32_t events) noexcept {
        char what[64];
        std::snprintf(what, sizeof what, "%s%s%s%s", (events & EPOLLIN) ? " readable" : "",
                      (events & EPOLLOUT) ? " writable" : "",
                      (events & EPOLLRDHUP) ? " peer-closed" : "",
                      (events & (EPOLLHUP | EPOLLERR)) ? " hang-up/error" : "");
        if (core_.log)
            core_.log->fd_reports(fd, what);
        else
            detail::trace("fd %zu reports%s", fd, what);
    }

    [[gnu::noinline, gnu::cold]] void trace_resume(const detail::waiter& w) noexcept {
        const char* ready = w.dir == detail::direction::read ? "readable" : "writable";
        if (core_.log)
            core_.log->instant(w.handle.address(), "wakes", "wake", "\"fd\":%d,\"ready\":\"%s\"",
                               w.fd, ready);
        else
            detail::trace("fd %d is %s: its coroutine resumes%s", w.fd, ready,
                          detail::traced_name(w.chain).text);
    }

    [[gnu::noinline, gnu::cold]] void trace_expiry(const detail::deadline& d) noexcept {
        if (core_.log) {
            if (d.is_error)
                core_.log->instant(d.w->handle.address(), "times out", "timeout", "\"fd\":%d",
                                   d.w->fd);
            else
                core_.log->instant(d.w->handle.address(), "timer expires", "timer",
                                   "\"op\":\"sleep\"");
        } else if (d.is_error) {
            detail::trace("timeout on fd %d: its coroutine resumes (timed out)", d.w->fd);
        } else {
            detail::trace("timer expired: the sleeping coroutine resumes");
        }
    }

    [[gnu::noinline, gnu::cold]] void trace_sleep(int timeout_ms) noexcept {
        if (core_.log)
            core_.log->poll_starts(timeout_ms);
        else if (timeout_ms < 0)
            detail::trace("nothing to run: epoll_wait sleeps until a descriptor is ready");
        else if (timeout_ms > 0)
            detail::trace("nothing to run: epoll_wait sleeps (%d ms at most: the next timer)",
                          timeout_ms);
    }

    [[gnu::noinline, gnu::cold]] void trace_polled(int n, int timeout_ms) noexcept {
        if (core_.log)
            core_.log->polled(n, timeout_ms);
        else if (n > 0)
            detail::trace("epoll_wait returns %d event%s", n, n == 1 ? "" : "s");
    }

    void run_deferred() {
        core_.note_busy();
        while (detail::ready_node* n = core_.deferred.pop_front()) {
            auto& action = static_cast<detail::deferred_action&>(*n);
            action.run(action);
        }
    }

    // Resumes the coroutines that were ready when the turn began.
    void run_ready() {
        if (core_.ready.empty()) return;
        core_.note_busy();
        core_.ready.push_back(turn_end_);
        marker_guard guard{turn_end_};
        for (detail::ready_node* n; (n = core_.ready.pop_front()) != &turn_end_;)
            resume(n->handle);
    }

    // Resumes the waits whose deadline passed before the turn began, after the ready ones (as
    // if they were queued behind them). One that a holding when_any pauses waits until it no
    // longer holds (detail/pause.hpp): looked at here, just before it would resume, since a
    // when_any may start holding during this very turn.
    void run_expired() {
        if (core_.expired.empty()) return;
        core_.note_busy();
        core_.expired.push_back(expired_end_);
        marker_guard guard{expired_end_};
        for (detail::ready_node* n; (n = core_.expired.pop_front()) != &expired_end_;) {
            auto& w = static_cast<detail::waiter&>(*n);
            if (!core_.holding.empty() && detail::held_back(core_, w.chain)) [[unlikely]] {
                core_.paused.push_back(w);
                continue;
            }
            resume(w.handle);
        }
    }

    // Tries again the operations the budget deferred before the turn began (up to the
    // marker run_once placed); those that meet EAGAIN now wait for their descriptor.
    void run_retries() {
        // The first try to resume, when the poll's events resumed nobody (completed no wait:
        // the other resumptions of the turn note_busy), is the only coroutine the loop
        // serves since that poll (see loop_core::alone).
        bool first = detail::counters.completed_after_wait == resumed_before_retries_;
        for (detail::ready_node* n; (n = core_.retry.pop_front()) != &retry_end_;) {
            auto& w = static_cast<detail::waiter&>(*n);
            if (!core_.holding.empty() && detail::pause_try(core_, w)) [[unlikely]]
                continue;
            fresh_budget();
            if (!w.attempt(w)) continue;
            ++detail::counters.completed_after_wait;
            if (!std::exchange(first, false)) core_.note_busy();
            if (core_.log && w.holds(detail::waiter::in_slot)) [[unlikely]]
                trace_resume(w); // a wait the when_any pause held back ends here
            w.end_wait();
            resume_budgeted(w.handle);
        }
    }

    // How long epoll_wait may sleep: not at all if coroutines are ready, until the earliest
    // deadline (rounded up to whole milliseconds, so that a timer never fires early) if any,
    // else indefinitely.
    int wait_timeout_ms() noexcept {
        if (!core_.ready.empty() || !core_.expired.empty() || !core_.retry.empty() ||
            !core_.urgent.empty() || !core_.deferred.empty())
            return 0;
        const detail::timer_entry* first = core_.timers.top();
        if (!first) return -1;
        if (core_.virtual_now) [[unlikely]] // (virtual time: the poll never sleeps for a timer)
            return virtual_wait_timeout(*first);
        const auto now = detail::timer_entry::clock::now();
        if (first->deadline() <= now) return 0; // (compared first: min() - now overflows)
        const auto left = first->deadline() - now;
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }

    // Ends the waits whose deadline has passed. They resume at the next turn, through the
    // ready queue, so that a coroutine re-arming a zero timeout cannot starve the loop.
    void expire_timers() noexcept {
        if (core_.timers.empty()) return;
        const auto now = core_.virtual_now ? virtual_step() : detail::timer_entry::clock::now();
        while (detail::timer_entry* e = core_.timers.top()) {
            if (e->deadline() > now) break;
            auto& d = static_cast<detail::deadline&>(*e);
            detail::waiter& w = *d.w;
            w.end_wait();
            if (d.is_error) w.ec = std::make_error_code(std::errc::timed_out);
            if (core_.trace) [[unlikely]]
                trace_expiry(d);
            core_.expired.push_back(w);
        }
    }

    // Waits until the virtual clock's mark has expired. A member, not a class local to
    // until_marked: GCC 12 crashes (an internal error in mangling) precompiling a header whose
    // coroutine declares a local class that is awaited.
    struct mark_reached {
        detail::waiter& mark;
        bool await_ready() const noexcept { return !mark.timer_armed() && !mark.linked(); }
        void await_suspend(std::coroutine_handle<> h) noexcept { mark.handle = h; }
        void await_resume() const noexcept {}
    };
    // However the task ends (a stop destroys it waiting), the mark resumes nobody after.
    struct mark_resumes_nobody {
        detail::waiter& mark;
        ~mark_resumes_nobody() { mark.handle = std::noop_coroutine(); }
    };

    // advance()'s run when no run() is in progress: a task that the mark's resumption ends.
    task<> until_marked() {
        mark_resumes_nobody reset{virtual_clock_.marker};
        co_await mark_reached{virtual_clock_.marker};
    }

    // wait_timeout_ms on virtual time (detail/virtual_clock.hpp): out of line, so that the
    // real clock's loop carries nothing of it but a test.
    [[gnu::noinline, gnu::cold]] int
    virtual_wait_timeout(const detail::timer_entry& first) noexcept {
        return virtual_clock_.wait_timeout(first,
                                           outstanding_.load(detail::memory_order_relaxed) != 0,
                                           detail::counters.epoll_waits + 1);
    }

    // The virtual clock's time for expiry: moved to the earliest deadline if this turn's
    // poll was made with nothing to do and found nothing (detail/virtual_clock.hpp).
    [[gnu::noinline, gnu::cold]] detail::timer_entry::clock::time_point virtual_step() noexcept {
        const auto before = virtual_clock_.now;
        const auto now =
            virtual_clock_.step(*core_.timers.top(), event_count_, detail::counters.epoll_waits);
        if (core_.trace && now != before && !core_.log) [[unlikely]]
            detail::trace(
                "virtual clock: nothing to do, it jumps %lld us to the next deadline",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::microseconds>(now - before).count()));
        return now;
    }

    // What an exception left of the previous batch: rare, so out of line.
    [[gnu::noinline]] void dispatch_rest() { dispatch_events(); }

    // Handles the fetched events from next_event_ on. Progress is recorded before each
    // resumption, so that if user code throws, the rest of the batch (edge-triggered: never
    // reported again) is handled by the next turn instead of being lost. Inline in run_once,
    // like the resumptions it makes: every turn that polls runs it.
    [[gnu::always_inline]] void dispatch_events() {
        constexpr std::uint32_t read_bits = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
        constexpr std::uint32_t write_bits = EPOLLOUT | EPOLLHUP | EPOLLERR;
        while (next_event_ < event_count_) {
            epoll_event& ev = events_[next_event_];
            if (ev.data.u64 == wake_token) {
                ++next_event_;
                std::uint64_t count;
                [[maybe_unused]] auto r = detail::counted(::read(wake_fd_, &count, sizeof count));
                run_posted();
                continue;
            }
            const auto fd = static_cast<std::size_t>(ev.data.u64 & 0xffffffffu);
            const auto generation = static_cast<std::uint32_t>(ev.data.u64 >> 32);
            const std::uint32_t events = ev.events;
            auto* s = core_.descriptors.find(fd, generation);
            if (!s) { // stale: the descriptor was closed after the event was fetched
                ++next_event_;
                continue;
            }
            // Remembered even when nobody waits: the next operation then tries at once.
            s->owner->note_events(events);
            if (core_.trace) [[unlikely]]
                trace_event(fd, events);
            // A writer that starts waiting while the reader runs is not this event's: it
            // waits because it found no room (or was told so), after this event was fetched,
            // and the room it waits for makes a new edge.
            const bool for_writer = (events & write_bits) && s->writer;
            if ((events & read_bits) && s->reader) {
                if (!for_writer) {
                    ++next_event_; // the event is done with before the reader resumes
                    resume_ready(s->reader);
                    continue;
                }
                ev.events = EPOLLOUT; // what is left to do, should the resumption throw
                core_.note_busy();    // (two coroutines may resume: see loop_core::alone)
                resume_ready(s->reader);
                // Found again: resuming the reader may have closed the socket, or grown the
                // table the slot lives in.
                s = core_.descriptors.find(fd, generation);
            }
            ++next_event_;
            if (s && for_writer && s->writer) resume_ready(s->writer);
        }
    }

    // Resumes the waiter in `entry` (a descriptor's slot), which an event reported ready, if
    // its try finishes it (else it met EAGAIN again: a spurious wake-up, and it goes on
    // waiting). A try never registers a descriptor, so `entry` is still where it was.
    [[gnu::always_inline]] void resume_ready(detail::waiter*& entry) {
        detail::waiter& w = *entry;
        // Tracing, or a when_any holding (detail/pause.hpp): one test here for both.
        if (core_.attention) [[unlikely]]
            return resume_ready_attentive(w);
        fresh_budget();
        if (!w.attempt(w)) return;
        ++detail::counters.completed_after_wait;
        // The common end of a wait, inline: it leaves its slot, and nothing else is pending
        // (a timeout, a deferred try: finish_wait undoes those).
        if (!w.holds(detail::waiter::deferred) && !w.timer) [[likely]] {
            entry = nullptr;
            w.release(detail::waiter::in_slot);
            w.unwatch_cancellation();
        } else {
            w.end_wait();
        }
        resume_unlogged(w.handle); // (logging, the loop takes resume_ready_attentive)
    }

    // resume_ready while the loop traces or a when_any holds: the try of a branch the
    // holding when_any pauses waits; a resumption is traced.
    [[gnu::noinline]] void resume_ready_attentive(detail::waiter& w) {
        if (!core_.holding.empty() && detail::pause_try(core_, w)) return;
        fresh_budget();
        if (!w.attempt(w)) return;
        ++detail::counters.completed_after_wait;
        if (core_.trace) trace_resume(w);
        w.end_wait();
        resume_budgeted(w.handle);
    }

    // Runs the functions posted before this wake-up, in order. If one throws, the ones behind
    // it stay pending and the eventfd is signalled again, so the next turn runs them.
    void run_posted() {
        posted_.collect();
        struct run_rest_later {
            reactor& self;
            ~run_rest_later() {
                if (self.posted_.has_pending()) self.wake();
            }
        } guard{*this};
        while (detail::posted_node* n = posted_.pop()) {
            outstanding_.fetch_sub(1, detail::memory_order_acq_rel);
            core_.note_busy();
            // A posted function may resume a coroutine (a value handed over from another
            // thread): with a budget, and followed by the waits it cancelled, as resume() does.
            fresh_budget();
            detail::running_task = nullptr;
            if (watch_resumptions_) [[unlikely]] // the trace file, or the stall detector
                run_posted_watched(*n);
            else
                n->run(); // deletes a posted_function even when it throws
            resume_urgent();
        }
    }

    // A posted function timed by the stall detector (what no task runs in it is its own), in
    // the trace file, or both.
    [[gnu::noinline]] void run_posted_watched(detail::posted_node& n) {
        stall_guard stall{*this, nullptr};
        if (core_.log)
            run_posted_logged(n);
        else
            n.run();
    }

    // CONET_TRACE=FILE: a posted function is a slice of the reactor's own row (the coroutine
    // it may resume is not known).
    [[gnu::noinline]] void run_posted_logged(detail::posted_node& n) {
        struct slice {
            detail::trace_log& log;
            double start;
            ~slice() { log.posted(start); }
        } s{*core_.log, detail::trace_file::get().now_us()};
        n.run();
    }

    detail::loop_core core_;
    int wake_fd_ = -1;
    task_group tasks_{cancel_token{}};          // owned by nobody, wherever the reactor is made
    std::coroutine_handle<> main_;              // the task the current run() drives, if any
    detail::promise_base* main_task_ = nullptr; // its promise (for the task dump)
    std::int64_t stall_ns_ = 0;                 // the stall detector's threshold, 0: off
    bool watch_resumptions_ = false;            // the trace file, or the stall detector
    bool stamp_polls_ = false;                  // loop_time at each poll (task dump)
    bool poll_attention_ = false;               // trace, or stamp_polls_
    detail::atomic<bool> stop_requested_{false};
    detail::atomic<bool> running_{false};        // a run() is in progress (on whichever thread)
    detail::atomic<std::size_t> outstanding_{0}; // posted functions not run yet + work guards
    detail::posted_queue posted_;
    detail::ready_node turn_end_;    // marks where the current turn's ready batch ends
    detail::ready_node retry_end_;   // and where the tries deferred before it end
    detail::ready_node expired_end_; // and the waits whose deadline passed before it
    std::array<epoll_event, 256> events_{};
    std::size_t event_count_ = 0;
    std::size_t next_event_ = 0;
    // counters.completed_after_wait before the turn's events, in a turn with retries: did
    // its events resume anyone (run_retries)?
    std::uint64_t resumed_before_retries_ = 0;
    reactor_stats stats_; // while no run() is in progress
    // Virtual time, if the reactor keeps it (declared after core_: destroyed before it).
    detail::virtual_clock virtual_clock_;
};

} // namespace conet

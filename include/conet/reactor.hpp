// conet/reactor.hpp - the event loop: one epoll instance driving every coroutine of a thread.
//
// Threading rule: a reactor belongs to the thread that runs it. Everything except post() and
// stop() must be called on that thread. Scale to more cores with one reactor per thread.
#pragma once

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "detail/waiter.hpp"
#include "error.hpp"
#include "task.hpp"

namespace conet {

class reactor;

namespace detail {

/// A file descriptor that can wait on a reactor: the base of every conet socket.
///
/// It owns the descriptor (closing it on destruction) and registers it with the running
/// reactor the first time an operation has to wait, once, edge-triggered, for both directions.
class descriptor {
public:
    descriptor() noexcept = default;
    explicit descriptor(int fd) noexcept : fd_(fd) {}
    inline descriptor(descriptor&& other) noexcept;
    inline descriptor& operator=(descriptor&& other) noexcept;
    descriptor(const descriptor&) = delete;
    descriptor& operator=(const descriptor&) = delete;
    ~descriptor() { close(); }

    /// The operating system's descriptor, or -1 once closed.
    int native_handle() const noexcept { return fd_; }
    /// True until close() (or a move out of this object).
    bool is_open() const noexcept { return fd_ >= 0; }
    /// Closes the descriptor. Coroutines waiting on it resume with operation_canceled.
    inline void close() noexcept;

    /// Registers `w` to be resumed when the descriptor is ready in direction `d`.
    inline std::error_code wait(direction d, waiter& w) noexcept;

private:
    friend class conet::reactor;
    int fd_ = -1;
    reactor* reactor_ = nullptr;
};

} // namespace detail

/// Refers to a task started with reactor::spawn, to cancel it. Cheap to copy; stays valid
/// (and harmless) after the task has finished. Use it on the reactor's thread only.
class spawn_handle {
public:
    spawn_handle() noexcept = default;

    /// Cancels the task: the operation it waits in (and any it would wait in later) fails
    /// with std::errc::operation_canceled, so that its co_await sites can clean up. Does
    /// nothing once the task has finished.
    inline void cancel() const noexcept;
    /// True once the task has finished (or for a default-constructed handle).
    inline bool done() const noexcept;

private:
    friend class reactor;
    spawn_handle(reactor& r, std::uint64_t id) noexcept : reactor_(&r), id_(id) {}
    reactor* reactor_ = nullptr;
    std::uint64_t id_ = 0;
};

/// The event loop. Owns every task it spawns and every coroutine suspended on it.
///
///     conet::reactor r;
///     int answer = r.run(compute());   // drives compute() to completion
///
/// Destroying a reactor destroys every coroutine frame it owns (spawned tasks, and through
/// them everything they await) and closes every descriptor still registered with it.
class reactor final : private detail::root_owner {
public:
    /// Creates the epoll instance and the wake-up eventfd. Throws std::system_error.
    reactor() : root_owner(&reactor::root_done) {
        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd_ < 0) detail::throw_error(detail::errno_code(errno), "epoll_create1");
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) {
            auto ec = detail::errno_code(errno);
            ::close(epoll_fd_);
            detail::throw_error(ec, "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN; // level-triggered: it stays readable until drained
        ev.data.u64 = wake_token;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) < 0) {
            auto ec = detail::errno_code(errno);
            ::close(wake_fd_);
            ::close(epoll_fd_);
            detail::throw_error(ec, "epoll_ctl(eventfd)");
        }
        ready_.make_sentinel();
    }

    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    ~reactor() {
        // Destroy every frame we own; their sockets close and leave the table as they go.
        while (roots_) {
            detail::promise_base* p = roots_;
            unlink_root(*p);
            p->self_.destroy();
        }
        // Whatever is still queued belongs to frames owned elsewhere; forget, never resume.
        while (detail::ready_node* n = ready_.front())
            n->unlink();
        for (detail::waiter* w : timers_) {
            w->armed_on = nullptr;
            w->heap_index = detail::waiter::not_armed;
        }
        // Sockets owned outside any task (say, a listener in main) are closed now, so that no
        // descriptor outlives the reactor it was registered with.
        for (std::size_t fd = 0; fd < slots_.size(); ++fd) {
            slot& s = slots_[fd];
            if (s.reader) s.reader->registered_with = nullptr;
            if (s.writer) s.writer->registered_with = nullptr;
            if (s.owner) {
                ::close(static_cast<int>(fd));
                s.owner->fd_ = -1;
                s.owner->reactor_ = nullptr;
            }
        }
        ::close(wake_fd_);
        ::close(epoll_fd_);
    }

    /// The reactor running on the calling thread, or nullptr.
    static reactor* current() noexcept { return current_ref(); }

    /// Runs `t` to completion and returns its value (or rethrows its exception).
    ///
    /// Spawned tasks run meanwhile. If one of them ends with an exception, run() rethrows it.
    /// If stop() is called before `t` finishes, run() throws std::system_error with
    /// std::errc::operation_canceled; `t` is then destroyed unfinished.
    template <class T>
    T run(task<T> t) {
        if (!t.valid()) throw std::invalid_argument("conet::reactor::run: empty task");
        running_scope scope(*this, t.handle());
        auto h = t.handle();
        h.promise().start_node_.handle = h;
        schedule(h.promise().start_node_);
        while (!h.done()) {
            if (stop_requested_.exchange(false, std::memory_order_acquire))
                detail::throw_error(std::make_error_code(std::errc::operation_canceled),
                                    "reactor::run: stopped before the task finished");
            rethrow_detached_failure();
            run_once();
        }
        rethrow_detached_failure();
        return h.promise().take();
    }

    /// Runs spawned tasks until none is left or stop() is called; rethrows the exception of a
    /// spawned task that fails.
    void run() {
        running_scope scope(*this);
        while (roots_ || ready_.front()) {
            if (stop_requested_.exchange(false, std::memory_order_acquire)) return;
            rethrow_detached_failure();
            run_once();
        }
        rethrow_detached_failure();
    }

    /// Starts `t` as a detached task owned by this reactor; it begins at the next turn of the
    /// loop. Its result is discarded; an exception escaping it is rethrown by run() (except
    /// the operation_canceled that cancelling it through the returned handle causes).
    /// Call on the reactor's thread (from another thread, wrap it in post()).
    template <class T>
    spawn_handle spawn(task<T> t) {
        if (!t.valid()) throw std::invalid_argument("conet::reactor::spawn: empty task");
        auto h = t.release();
        detail::promise_base& p = h.promise();
        p.root_id_ = ++last_root_id_;
        p.owner_ = this;
        p.self_ = h;
        p.next_root_ = roots_;
        if (roots_) roots_->prev_root_ = &p;
        roots_ = &p;
        p.start_node_.handle = h;
        schedule(p.start_node_);
        return spawn_handle(*this, p.root_id_);
    }

    /// Asks run() to return at its next turn. Safe to call from any thread.
    void stop() noexcept {
        stop_requested_.store(true, std::memory_order_release);
        wake();
    }

    /// Runs `fn` on the reactor's thread at its next turn. Safe to call from any thread; the
    /// only way for another thread to touch the reactor. Allocates (std::function, queue).
    void post(std::function<void()> fn) {
        {
            std::lock_guard lock(posted_mutex_);
            posted_.push_back(std::move(fn));
        }
        wake();
    }

    // ---- Internals used by conet's awaitables; not part of the public API. ----

    /// Queues a suspended coroutine to resume at the next turn of the loop.
    void schedule(detail::ready_node& node) noexcept { node.link_before(ready_); }

    /// Removes `w` from its descriptor's slot (a timeout or cancellation ended its wait).
    void cancel_wait(detail::waiter& w) noexcept {
        if (w.registered_with != this) return;
        slot& s = slots_[static_cast<std::size_t>(w.fd)];
        detail::waiter*& entry = w.dir == detail::direction::read ? s.reader : s.writer;
        if (entry == &w) entry = nullptr;
        w.registered_with = nullptr;
    }

    /// Arms `w`'s deadline: when it passes, `w` stops waiting for its descriptor (if it was)
    /// and resumes. A binary heap: arming and disarming cost O(log n), no allocation once the
    /// heap's vector has grown to the number of timers pending at once.
    void arm(detail::waiter& w, detail::waiter::clock::time_point deadline) {
        disarm(w);
        timers_.push_back(&w); // may throw bad_alloc before anything changed
        w.deadline = deadline;
        w.armed_on = this;
        w.heap_index = timers_.size() - 1;
        sift_up(w.heap_index);
    }

    /// Removes `w` from the timer heap, if it is there.
    void disarm(detail::waiter& w) noexcept {
        if (w.armed_on != this) return;
        const std::size_t i = w.heap_index;
        detail::waiter* last = timers_.back();
        timers_.pop_back();
        if (last != &w) {
            timers_[i] = last;
            last->heap_index = i;
            sift_down(i);
            sift_up(last->heap_index);
        }
        w.armed_on = nullptr;
        w.heap_index = detail::waiter::not_armed;
    }

    /// Ends `w`'s wait now with `reason` (cancellation): it resumes at the next turn.
    /// Does nothing if `w` is not waiting (it already finished and is about to resume).
    static void abort(detail::waiter& w, std::error_code reason) noexcept {
        reactor* r = w.registered_with ? w.registered_with : w.armed_on;
        if (!r) return;
        r->cancel_wait(w);
        r->disarm(w);
        w.ec = reason;
        r->schedule(w);
    }

    /// Cancels the spawned task `id` if it is still running (see spawn_handle::cancel).
    void cancel_root(std::uint64_t id) noexcept {
        for (detail::promise_base* p = roots_; p; p = p->next_root_)
            if (p->root_id_ == id) return p->own_cancel_.request();
    }

    /// True while the spawned task `id` has not finished.
    bool root_alive(std::uint64_t id) const noexcept {
        for (const detail::promise_base* p = roots_; p; p = p->next_root_)
            if (p->root_id_ == id) return true;
        return false;
    }

private:
    friend class detail::descriptor;

    // One slot per descriptor number: the coroutines waiting to read and to write, and the
    // object owning the descriptor. `generation` changes whenever the number is reused, so
    // an event fetched before a close is recognised as stale and dropped.
    struct slot {
        detail::waiter* reader = nullptr;
        detail::waiter* writer = nullptr;
        detail::descriptor* owner = nullptr;
        std::uint32_t generation = 0;
    };

    static constexpr std::uint64_t wake_token = ~std::uint64_t{0};

    // Makes `r` the thread's current reactor for the duration of a run, with `main` the task
    // whose end ends the run (none: the run ends when no spawned task is left).
    class running_scope {
    public:
        explicit running_scope(reactor& r, std::coroutine_handle<> main = {})
            : reactor_(r), previous_(current_ref()) {
            if (previous_ == &r) throw std::logic_error("conet::reactor::run: already running");
            if (previous_)
                throw std::logic_error("conet::reactor::run: another reactor runs on this thread");
            current_ref() = &r;
            r.main_ = main;
        }
        ~running_scope() {
            current_ref() = previous_;
            reactor_.main_ = nullptr;
        }
        running_scope(const running_scope&) = delete;
        running_scope& operator=(const running_scope&) = delete;

    private:
        reactor& reactor_;
        reactor* previous_;
    };

    // True once the current run has nothing left to wait for.
    bool run_finished() const noexcept { return main_ ? main_.done() : roots_ == nullptr; }

    static reactor*& current_ref() noexcept {
        thread_local reactor* current = nullptr;
        return current;
    }

    static std::coroutine_handle<> root_done(detail::root_owner& self,
                                             detail::promise_base& p) noexcept {
        return static_cast<reactor&>(self).finish_root(p);
    }

    std::coroutine_handle<> finish_root(detail::promise_base& p) noexcept {
        // A task that ends with the operation_canceled its cancellation caused has not failed.
        if (p.exception_ && !detached_failure_ &&
            !(p.own_cancel_.requested() && is_cancellation(p.exception_)))
            detached_failure_ = p.exception_;
        unlink_root(p);
        p.self_.destroy();
        return std::noop_coroutine();
    }

    static bool is_cancellation(const std::exception_ptr& e) noexcept {
        try {
            std::rethrow_exception(e);
        } catch (const std::system_error& error) {
            return error.code() == std::errc::operation_canceled;
        } catch (...) {
            return false;
        }
    }

    void unlink_root(detail::promise_base& p) noexcept {
        if (p.prev_root_)
            p.prev_root_->next_root_ = p.next_root_;
        else
            roots_ = p.next_root_;
        if (p.next_root_) p.next_root_->prev_root_ = p.prev_root_;
        p.prev_root_ = p.next_root_ = nullptr;
    }

    void rethrow_detached_failure() {
        if (auto e = std::exchange(detached_failure_, nullptr)) std::rethrow_exception(e);
    }

    void wake() noexcept {
        const std::uint64_t one = 1;
        // A full counter (EAGAIN) already means "wake up", so the result can be ignored.
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    // One turn: resume what is ready, then wait for (or poll, if more is ready) I/O events.
    void run_once() {
        detail::ready_node batch;
        batch.make_sentinel();
        ready_.splice_all_into(batch);
        while (detail::ready_node* n = batch.front()) {
            n->unlink();
            n->handle.resume();
        }
        if (stop_requested_.load(std::memory_order_relaxed) || detached_failure_ || run_finished())
            return;

        const int n = ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()),
                                   wait_timeout_ms());
        if (n < 0 && errno != EINTR) // EINTR: a signal; just take another turn
            detail::throw_error(detail::errno_code(errno), "epoll_wait");
        for (int i = 0; i < n; ++i)
            dispatch(events_[static_cast<std::size_t>(i)]);
        expire_timers();
    }

    // How long epoll_wait may sleep: not at all if coroutines are ready, until the earliest
    // deadline (rounded up to whole milliseconds, so that a timer never fires early) if any,
    // else indefinitely.
    int wait_timeout_ms() const noexcept {
        if (!ready_.empty()) return 0;
        if (timers_.empty()) return -1;
        const auto left = timers_.front()->deadline - detail::waiter::clock::now();
        if (left <= left.zero()) return 0;
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }

    // Ends the waits whose deadline has passed. They resume at the next turn, through the
    // ready list, so that a coroutine re-arming a zero timeout cannot starve the loop.
    void expire_timers() noexcept {
        if (timers_.empty()) return;
        const auto now = detail::waiter::clock::now();
        while (!timers_.empty() && timers_.front()->deadline <= now) {
            detail::waiter& w = *timers_.front();
            disarm(w);
            cancel_wait(w);
            if (w.deadline_is_error) w.ec = std::make_error_code(std::errc::timed_out);
            schedule(w);
        }
    }

    bool earlier(std::size_t a, std::size_t b) const noexcept {
        return timers_[a]->deadline < timers_[b]->deadline;
    }

    void swap_timers(std::size_t a, std::size_t b) noexcept {
        std::swap(timers_[a], timers_[b]);
        timers_[a]->heap_index = a;
        timers_[b]->heap_index = b;
    }

    void sift_up(std::size_t i) noexcept {
        while (i > 0 && earlier(i, (i - 1) / 2)) {
            swap_timers(i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
    }

    void sift_down(std::size_t i) noexcept {
        for (;;) {
            std::size_t smallest = i;
            for (std::size_t c = 2 * i + 1; c <= 2 * i + 2 && c < timers_.size(); ++c)
                if (earlier(c, smallest)) smallest = c;
            if (smallest == i) return;
            swap_timers(i, smallest);
            i = smallest;
        }
    }

    void dispatch(const epoll_event& ev) {
        if (ev.data.u64 == wake_token) {
            std::uint64_t count;
            [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
            run_posted();
            return;
        }
        const auto fd = static_cast<std::size_t>(ev.data.u64 & 0xffffffffu);
        const auto generation = static_cast<std::uint32_t>(ev.data.u64 >> 32);
        if (ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            resume_waiter(fd, generation, detail::direction::read);
        if (ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            resume_waiter(fd, generation, detail::direction::write);
    }

    void resume_waiter(std::size_t fd, std::uint32_t generation, detail::direction d) noexcept {
        // Re-checked for each direction: resuming the reader may have closed the socket.
        if (fd >= slots_.size() || slots_[fd].generation != generation) return;
        slot& s = slots_[fd];
        detail::waiter*& entry = d == detail::direction::read ? s.reader : s.writer;
        detail::waiter* w = entry;
        if (!w || !w->attempt(*w)) return; // nobody waiting, or a spurious wake-up
        entry = nullptr;
        w->registered_with = nullptr;
        disarm(*w); // it finished before its timeout
        w->handle.resume();
    }

    void run_posted() {
        std::vector<std::function<void()>> work;
        {
            std::lock_guard lock(posted_mutex_);
            work.swap(posted_);
        }
        for (auto& fn : work)
            fn();
    }

    std::error_code add_descriptor(int fd, detail::descriptor* owner) noexcept {
        const auto index = static_cast<std::size_t>(fd);
        try {
            if (index >= slots_.size()) slots_.resize(index + 1);
        } catch (const std::bad_alloc&) {
            return std::make_error_code(std::errc::not_enough_memory);
        }
        slot& s = slots_[index];
        ++s.generation;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = (std::uint64_t{s.generation} << 32) | static_cast<std::uint32_t>(fd);
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) return detail::errno_code(errno);
        s.owner = owner;
        return {};
    }

    void remove_descriptor(int fd) noexcept {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        slot& s = slots_[static_cast<std::size_t>(fd)];
        for (detail::waiter* w :
             {std::exchange(s.reader, nullptr), std::exchange(s.writer, nullptr)}) {
            if (!w) continue;
            w->registered_with = nullptr;
            disarm(*w);
            w->ec = std::make_error_code(std::errc::operation_canceled);
            schedule(*w);
        }
        s.owner = nullptr;
        ++s.generation;
    }

    std::error_code register_waiter(int fd, detail::direction d, detail::waiter& w) noexcept {
        slot& s = slots_[static_cast<std::size_t>(fd)];
        detail::waiter*& entry = d == detail::direction::read ? s.reader : s.writer;
        if (entry) return error::already_waiting;
        entry = &w;
        w.registered_with = this;
        w.fd = fd;
        w.dir = d;
        return {};
    }

    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::vector<slot> slots_;
    detail::ready_node ready_;
    detail::promise_base* roots_ = nullptr;
    std::uint64_t last_root_id_ = 0;
    std::vector<detail::waiter*> timers_; // a binary min-heap on deadline
    std::coroutine_handle<> main_;        // the task the current run() drives, if any
    std::exception_ptr detached_failure_;
    std::atomic<bool> stop_requested_{false};
    std::mutex posted_mutex_;
    std::vector<std::function<void()>> posted_;
    std::array<epoll_event, 256> events_{};
};

namespace detail {

class yield_awaiter {
public:
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
        reactor* r = reactor::current();
        if (!r) return false; // no loop to give the turn to: just go on
        node_.handle = h;
        r->schedule(node_);
        return true;
    }
    void await_resume() const noexcept {}

private:
    ready_node node_;
};

} // namespace detail

/// Gives the turn to the other ready coroutines and to pending I/O, then resumes:
/// `co_await conet::yield();`
inline detail::yield_awaiter yield() noexcept {
    return {};
}

namespace detail {

inline waiter::~waiter() {
    if (registered_with) registered_with->cancel_wait(*this);
    if (armed_on) armed_on->disarm(*this);
    if (chain && chain->current == this) chain->current = nullptr;
}

inline void cancel_state::request() noexcept {
    requested_ = true;
    if (current) reactor::abort(*current, std::make_error_code(std::errc::operation_canceled));
    for (cancel_state* child = first_child_; child; child = child->next_)
        child->request();
}

inline descriptor::descriptor(descriptor&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), reactor_(std::exchange(other.reactor_, nullptr)) {
    if (reactor_) reactor_->slots_[static_cast<std::size_t>(fd_)].owner = this;
}

inline descriptor& descriptor::operator=(descriptor&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        reactor_ = std::exchange(other.reactor_, nullptr);
        if (reactor_) reactor_->slots_[static_cast<std::size_t>(fd_)].owner = this;
    }
    return *this;
}

inline void descriptor::close() noexcept {
    if (fd_ < 0) return;
    if (reactor_) reactor_->remove_descriptor(fd_);
    ::close(fd_); // never retried on EINTR: on Linux the descriptor is gone either way
    fd_ = -1;
    reactor_ = nullptr;
}

inline std::error_code descriptor::wait(direction d, waiter& w) noexcept {
    reactor* r = reactor::current();
    if (!r) return error::no_reactor;
    if (fd_ < 0) return errno_code(EBADF);
    if (!reactor_) {
        if (auto ec = r->add_descriptor(fd_, this)) return ec;
        reactor_ = r;
    } else if (reactor_ != r) {
        return error::wrong_reactor;
    }
    return reactor_->register_waiter(fd_, d, w);
}

} // namespace detail

inline void spawn_handle::cancel() const noexcept {
    if (reactor_) reactor_->cancel_root(id_);
}

inline bool spawn_handle::done() const noexcept {
    return !reactor_ || !reactor_->root_alive(id_);
}

} // namespace conet

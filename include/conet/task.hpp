// conet/task.hpp - the coroutine type every conet program is written in.
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "detail/waiter.hpp"

namespace conet {

template <class T = void>
class task;

namespace detail {

class promise_base;

/// Whoever drives a task that has no awaiting coroutine (a task spawned on the reactor, or a
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

protected:
    using done_function = std::coroutine_handle<> (*)(root_owner&, promise_base&) noexcept;
    explicit root_owner(done_function done) noexcept : done_(done) {}
    root_owner(const root_owner&) noexcept = default;
    root_owner& operator=(const root_owner&) noexcept = default;
    ~root_owner() = default;

private:
    done_function done_;
};

/// What every task promise shares: the awaiting coroutine, the exception, and the links a
/// reactor uses to own a spawned task without allocating anything for it.
class promise_base {
public:
    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
            promise_base& p = self.promise();
            // Finished while its awaiter is still starting it: let the awaiter go on in its
            // own stack frame (see task::awaiter::await_suspend).
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

    std::suspend_always initial_suspend() const noexcept { return {}; }
    final_awaiter final_suspend() const noexcept { return {}; }
    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }

    // While non-null, the task is being started by an awaiter that wants to know whether it
    // finished before suspending.
    bool* finished_inline_ = nullptr;
    void rethrow_if_failed() const {
        if (exception_) std::rethrow_exception(exception_);
    }

    // The cancellation state of the chain this task runs in: its own when it is a root or a
    // concurrent branch, its awaiter's when it is awaited.
    cancel_state own_cancel_;
    cancel_state* cancel_ = &own_cancel_;

    // Root bookkeeping, used by conet::reactor for tasks it owns.
    std::uint64_t root_id_ = 0;
    std::exception_ptr exception_;
    root_owner* owner_ = nullptr;
    std::coroutine_handle<> self_;
    ready_node start_node_;
    promise_base* prev_root_ = nullptr;
    promise_base* next_root_ = nullptr;

private:
    std::coroutine_handle<> continuation_;
};

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

} // namespace detail

/// A lazily started coroutine producing a T (or a reference, or nothing).
///
/// A task does nothing until it is awaited (`co_await t`), run (`reactor::run(t)`) or spawned
/// (`reactor::spawn(t)`). The awaiting coroutine receives the returned value, or the exception
/// the task threw. Tasks are move-only; destroying an unfinished task destroys its frame.
template <class T>
class [[nodiscard]] task {
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

    auto operator co_await() && noexcept { return awaiter{handle_}; }
    auto operator co_await() & noexcept { return awaiter{handle_}; }

    /// Gives up ownership of the coroutine frame (used by the reactor to spawn it).
    handle_type release() noexcept { return std::exchange(handle_, nullptr); }
    /// The coroutine frame, still owned by this task.
    handle_type handle() const noexcept { return handle_; }

private:
    struct awaiter {
        handle_type h;
        bool await_ready() const noexcept { return !h || h.done(); }
        // Starts the task. If it finishes without suspending, the caller continues at once
        // (returning false) in its own frame; otherwise the task resumes the caller by
        // symmetric transfer when it ends. Returning `h` here (plain symmetric transfer) would
        // rely on the compiler turning the resumption into a tail call, which GCC does not do
        // at -O0: a loop of a million synchronously finishing awaits then overflows the stack.
        template <class CallerPromise>
        bool await_suspend(std::coroutine_handle<CallerPromise> caller) noexcept {
            auto& p = h.promise();
            p.set_continuation(caller);
            // Awaited in sequence: the task belongs to its caller's chain (one cancellation).
            if constexpr (std::is_base_of_v<detail::promise_base, CallerPromise>)
                p.cancel_ = caller.promise().cancel_;
            bool finished_inline = false;
            p.finished_inline_ = &finished_inline;
            h.resume();
            if (finished_inline) return false;
            p.finished_inline_ = nullptr; // suspended: it will resume `caller` when it ends
            return true;
        }
        decltype(auto) await_resume() { return h.promise().take(); }
    };

    void destroy() noexcept {
        if (handle_) std::exchange(handle_, nullptr).destroy();
    }

    handle_type handle_;
};

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

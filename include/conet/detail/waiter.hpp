// conet/detail/waiter.hpp - the per-operation state that lives in the awaiting coroutine's frame.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <system_error>

namespace conet {
class reactor;
}

namespace conet::detail {

/// A link in the reactor's intrusive list of coroutines ready to resume. Being intrusive, it
/// costs no allocation, and a node unlinks itself when its owner (an awaiter in a coroutine
/// frame that is being destroyed) goes away, so the reactor never resumes a dead frame.
class ready_node {
public:
    ready_node() noexcept = default;
    ready_node(const ready_node&) noexcept {}
    ready_node& operator=(const ready_node&) noexcept { return *this; }
    ~ready_node() { unlink(); }

    bool linked() const noexcept { return next_ != nullptr; }

    void unlink() noexcept {
        if (!next_) return;
        prev_->next_ = next_;
        next_->prev_ = prev_;
        prev_ = next_ = nullptr;
    }

    /// Inserts this node before `pos` (a list's sentinel, to append).
    void link_before(ready_node& pos) noexcept {
        prev_ = pos.prev_;
        next_ = &pos;
        pos.prev_->next_ = this;
        pos.prev_ = this;
    }

    /// Makes this node the empty sentinel of a circular list.
    void make_sentinel() noexcept { prev_ = next_ = this; }

    /// Moves every node of the list whose sentinel this is to the empty list `dest`.
    void splice_all_into(ready_node& dest) noexcept {
        if (next_ == this) return;
        dest.next_ = next_;
        dest.prev_ = prev_;
        next_->prev_ = &dest;
        prev_->next_ = &dest;
        make_sentinel();
    }
    ready_node* front() noexcept { return next_ == this ? nullptr : next_; }
    bool empty() const noexcept { return next_ == this; }

    std::coroutine_handle<> handle;

private:
    ready_node* prev_ = nullptr;
    ready_node* next_ = nullptr;
};

/// Which readiness an operation waits for.
enum class direction { read, write };

class waiter;

/// The cancellation state of a chain of coroutines that await one another (a task and the
/// tasks it awaits in turn share one). Concurrent branches (when_all, when_any) get their own,
/// linked under their parent's so that cancelling the parent cancels them all.
class cancel_state {
public:
    cancel_state() noexcept = default;
    cancel_state(const cancel_state&) = delete;
    cancel_state& operator=(const cancel_state&) = delete;
    ~cancel_state() { detach(); }

    /// Marks the chain cancelled and ends the wait it is suspended in, if any, with
    /// operation_canceled. Operations that would have to wait afterwards fail at once.
    inline void request() noexcept; // defined in reactor.hpp

    bool requested() const noexcept { return requested_; }

    /// Makes this state a child of `parent`: cancelling the parent cancels this one too.
    void attach(cancel_state& parent) noexcept {
        detach();
        parent_ = &parent;
        next_ = parent.first_child_;
        if (next_) next_->prev_ = this;
        parent.first_child_ = this;
    }

    void detach() noexcept {
        if (!parent_) return;
        if (prev_)
            prev_->next_ = next_;
        else
            parent_->first_child_ = next_;
        if (next_) next_->prev_ = prev_;
        parent_ = prev_ = next_ = nullptr;
    }

    /// The operation the chain is suspended in right now (set by the operation itself).
    waiter* current = nullptr;

private:
    bool requested_ = false;
    cancel_state* parent_ = nullptr;
    cancel_state* first_child_ = nullptr;
    cancel_state* prev_ = nullptr;
    cancel_state* next_ = nullptr;
};

/// A copy of std::error_code{}: the same value without the out-of-line call to
/// std::system_category() that the default constructor makes in libstdc++, which every
/// operation would otherwise pay once or twice.
inline const std::error_code& no_error() noexcept {
    static const std::error_code none;
    return none;
}

/// An operation suspended on the reactor: waiting for its descriptor, for a deadline, or both.
///
/// For a descriptor, the reactor calls `attempt` when it becomes ready; `attempt` performs the
/// syscall and returns true once the operation has finished (successfully, or with `ec` set),
/// false to keep waiting (EAGAIN again). For a deadline, the reactor ends the wait when it
/// passes: with std::errc::timed_out (`deadline_is_error`, a timeout) or success (a sleep).
/// Whichever comes first unregisters the other, so the coroutine resumes exactly once.
class waiter : public ready_node {
public:
    using attempt_fn = bool (*)(waiter&) noexcept;
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t not_armed = static_cast<std::size_t>(-1);

    explicit waiter(attempt_fn fn) noexcept : attempt(fn) {}
    waiter(const waiter& other) noexcept
        : ready_node(other), attempt(other.attempt), timeout(other.timeout) {}
    waiter& operator=(const waiter&) = delete;
    inline ~waiter(); // defined in reactor.hpp: leaves the reactor if still registered

    attempt_fn attempt; // null for a pure timer
    std::error_code ec = no_error();

    // Where this waiter is registered for readiness, while it is.
    reactor* registered_with = nullptr;
    int fd = -1;
    direction dir = direction::read;

    // The deadline, while armed on `armed_on`'s timer heap.
    reactor* armed_on = nullptr;
    clock::time_point deadline{};
    std::size_t heap_index = not_armed;
    bool deadline_is_error = true;
    /// Set by with_timeout() before the operation is awaited: bound the wait (negative: none).
    std::chrono::nanoseconds timeout{-1};

    // The chain this operation belongs to, while it is suspended.
    cancel_state* chain = nullptr;
};

} // namespace conet::detail

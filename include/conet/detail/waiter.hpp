// conet/detail/waiter.hpp - the per-operation state that lives in the awaiting coroutine's frame.
#pragma once

#include <coroutine>
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

    std::coroutine_handle<> handle;

private:
    ready_node* prev_ = nullptr;
    ready_node* next_ = nullptr;
};

/// Which readiness an operation waits for.
enum class direction { read, write };

/// An operation waiting for its descriptor: the reactor calls `attempt` when the descriptor
/// becomes ready; `attempt` performs the syscall and returns true once the operation has
/// finished (successfully, or with `ec` set), false to keep waiting (EAGAIN again).
class waiter : public ready_node {
public:
    using attempt_fn = bool (*)(waiter&) noexcept;

    explicit waiter(attempt_fn fn) noexcept : attempt(fn) {}
    waiter(const waiter& other) noexcept : ready_node(other), attempt(other.attempt) {}
    waiter& operator=(const waiter&) = delete;
    inline ~waiter(); // defined in reactor.hpp: leaves the reactor if still registered

    attempt_fn attempt;
    std::error_code ec;

    // Where this waiter is registered, while it is.
    reactor* registered_with = nullptr;
    int fd = -1;
    direction dir = direction::read;
};

} // namespace conet::detail

// conet/detail/ready_queue.hpp - the intrusive list of coroutines ready to resume.
#pragma once

#include <coroutine>

namespace conet::detail {

/// A link in an intrusive, circular, doubly-linked list: the reactor's queue of coroutines
/// ready to resume. Being intrusive, it costs no allocation, and a node unlinks itself when
/// its owner (an awaiter in a coroutine frame being destroyed) goes away, so that the reactor
/// never resumes a dead frame.
class ready_node {
public:
    ready_node() noexcept = default;
    // Copying an awaiter copies none of its links: the copy is not queued anywhere.
    ready_node(const ready_node&) noexcept {}
    ready_node& operator=(const ready_node&) noexcept { return *this; }
    [[gnu::always_inline]] ~ready_node() { unlink(); }

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

    /// The node after this one in the list whose sentinel is `sentinel`, or nullptr.
    ready_node* next_after(const ready_node& sentinel) const noexcept {
        return next_ == &sentinel ? nullptr : next_;
    }

    /// For a sentinel: the first node, or nullptr when the list is empty.
    ready_node* front() const noexcept { return next_ == this ? nullptr : next_; }
    /// For a sentinel: true when the list holds no coroutine (it may hold a marker, a node
    /// without a handle that bounds the loop's batch).
    bool idle() const noexcept {
        const ready_node* f = front();
        return !f || (!f->handle && f->next_ == this);
    }
    /// For a sentinel: true when the list is empty.
    bool empty() const noexcept { return next_ == this; }

    /// The coroutine to resume.
    std::coroutine_handle<> handle;

private:
    ready_node* prev_ = nullptr;
    ready_node* next_ = nullptr;
};

/// A list of ready_nodes with its own sentinel.
class ready_queue {
public:
    ready_queue() noexcept { sentinel_.make_sentinel(); }
    ready_queue(const ready_queue&) = delete;
    ready_queue& operator=(const ready_queue&) = delete;
    ~ready_queue() { clear(); }

    void push_back(ready_node& n) noexcept { n.link_before(sentinel_); }
    ready_node* front() const noexcept { return sentinel_.front(); }
    bool empty() const noexcept { return sentinel_.empty(); }
    /// True when the queue holds no coroutine, only a marker at most (ready_node::idle()).
    bool idle() const noexcept { return sentinel_.idle(); }

    /// Unlinks and returns the first node, or nullptr when the list is empty.
    ready_node* pop_front() noexcept {
        ready_node* n = sentinel_.front();
        if (n) n->unlink();
        return n;
    }

    /// Moves every node of `other` to the end of this queue, in order.
    void splice(ready_queue& other) noexcept {
        while (ready_node* n = other.pop_front())
            push_back(*n);
    }

    /// Calls `f(node)` for each node in order (`f` must not unlink other nodes).
    template <class F>
    void for_each(F f) const {
        for (ready_node* n = sentinel_.front(); n && n != &sentinel_;) {
            ready_node* next = n->next_after(sentinel_);
            f(*n);
            n = next;
        }
    }

    /// Forgets every node (they are never resumed).
    void clear() noexcept {
        while (ready_node* n = sentinel_.front())
            n->unlink();
    }

private:
    ready_node sentinel_;
};

} // namespace conet::detail

// conet/detail/posted_queue.hpp - functions handed to a reactor from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

namespace conet::detail {

/// An entry of a posted_queue. Intrusive: whoever posts provides the node (a heap-allocated
/// posted_function, or a node that lives in an awaiting coroutine's frame).
class posted_node {
public:
    /// Runs the entry (`run` true) or just disposes of it (false, the reactor is going away).
    using function = void (*)(posted_node&, bool run);

    explicit posted_node(function fn) noexcept : fn_(fn) {}
    posted_node(const posted_node&) = delete;
    posted_node& operator=(const posted_node&) = delete;

    void run() { fn_(*this, true); }
    void dispose() noexcept { fn_(*this, false); }

private:
    friend class posted_queue;
    function fn_;
    posted_node* next_ = nullptr;

protected:
    ~posted_node() = default;
};

/// A posted callable that owns itself: deleted once run (even if it throws) or disposed of.
/// Move-only callables are fine: nothing is ever copied.
template <class F>
class posted_function final : public posted_node {
public:
    template <class G>
    explicit posted_function(G&& f) : posted_node(&posted_function::call), f_(std::forward<G>(f)) {}

private:
    static void call(posted_node& n, bool run) {
        std::unique_ptr<posted_function> self(static_cast<posted_function*>(&n));
        if (run) self->f_();
    }
    F f_;
};

/// A FIFO of posted nodes shared between threads: a mutex held only to link or unlink.
class posted_queue {
public:
    posted_queue() noexcept = default;
    posted_queue(const posted_queue&) = delete;
    posted_queue& operator=(const posted_queue&) = delete;
    ~posted_queue() {
        posted_node* n = take_all();
        while (n) {
            posted_node* next = n->next_;
            n->dispose();
            n = next;
        }
    }

    /// Appends `n`; true if the queue was empty (the reactor then needs a wake-up).
    bool push(posted_node& n) noexcept {
        std::lock_guard lock(mutex_);
        const bool was_empty = head_ == nullptr;
        n.next_ = nullptr;
        *tail_ = &n;
        tail_ = &n.next_;
        return was_empty;
    }

    /// Unlinks every entry; returns the first (follow with next()).
    posted_node* take_all() noexcept {
        std::lock_guard lock(mutex_);
        posted_node* all = head_;
        head_ = nullptr;
        tail_ = &head_;
        return all;
    }

    static posted_node* next(posted_node& n) noexcept { return n.next_; }

    /// Puts a list taken by take_all() (or its rest) back in front, in order.
    void put_back(posted_node* list) noexcept {
        if (!list) return;
        posted_node* last = list;
        while (last->next_)
            last = last->next_;
        std::lock_guard lock(mutex_);
        last->next_ = head_;
        if (!head_) tail_ = &last->next_;
        head_ = list;
    }

private:
    std::mutex mutex_;
    posted_node* head_ = nullptr;
    posted_node** tail_ = &head_;
};

} // namespace conet::detail

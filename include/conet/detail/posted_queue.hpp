// conet/detail/posted_queue.hpp - functions handed to a reactor from any thread.
#pragma once

#include <type_traits>
#include <utility>

#include "atomic.hpp"

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
        struct owned { // deletes the node however call() ends
            posted_function* p;
            ~owned() { delete p; }
        } self{static_cast<posted_function*>(&n)};
        if (run) self.p->f_();
    }
    F f_;
};

/// The reactor's inbox. Any thread pushes onto a lock-free stack (one compare-and-swap, no
/// lock anywhere); the reactor's thread takes the whole stack at once, turns it into
/// first-in-first-out order, and runs it from a list only it touches. What an exception left
/// unrun stays on that list for the next turn.
class posted_queue {
public:
    posted_queue() noexcept = default;
    posted_queue(const posted_queue&) = delete;
    posted_queue& operator=(const posted_queue&) = delete;
    ~posted_queue() { dispose_all(); }

    /// Appends `n`, from any thread; true if nothing was posted since the reactor last took
    /// what was (the reactor then needs a wake-up).
    bool push(posted_node& n) noexcept {
        posted_node* top = top_.load(memory_order_relaxed);
        do {
            n.next_ = top;
        } while (!top_.compare_exchange_weak(top, &n, memory_order_release, memory_order_relaxed));
        return top == nullptr;
    }

    /// Reactor thread: moves everything posted so far behind what is still pending, in the
    /// order it was posted.
    void collect() noexcept {
        posted_node* stack = top_.exchange(nullptr, memory_order_acquire);
        posted_node* in_order = nullptr;
        posted_node* last = stack;
        while (stack) {
            posted_node* next = stack->next_;
            stack->next_ = in_order;
            in_order = stack;
            stack = next;
        }
        if (!in_order) return;
        *pending_tail_ = in_order;
        pending_tail_ = &last->next_;
    }

    /// Reactor thread: the first pending node, unlinked, or nullptr.
    posted_node* pop() noexcept {
        posted_node* n = pending_;
        if (!n) return nullptr;
        pending_ = n->next_;
        if (!pending_) pending_tail_ = &pending_;
        n->next_ = nullptr;
        return n;
    }

    /// Reactor thread: true if collected nodes wait to run.
    bool has_pending() const noexcept { return pending_ != nullptr; }

    /// Reactor thread, once no other thread posts any more: disposes of every node.
    void dispose_all() noexcept {
        collect();
        while (posted_node* n = pop())
            n->dispose();
    }

private:
    atomic<posted_node*> top_{nullptr};
    posted_node* pending_ = nullptr;
    posted_node** pending_tail_ = &pending_;
};

} // namespace conet::detail

// conet/cancel.hpp - cancellation that any awaitable can join.
//
// Every conet task runs in a cancellation chain: the task and the tasks it awaits in turn
// share one; each task of a task_group has its own (cancelled through its handle or its
// group), and each branch of when_all/when_any has its own, linked under its parent's so
// that cancelling the parent cancels the branches too. Cancelling a chain ends the
// operation it waits in with std::errc::operation_canceled, and every later co_await in it
// (conet's operations, yield(), sleeps, awaiting a task) fails the same way before doing
// anything, so a cancelled task never transfers data it cannot deliver.
//
// A user's own awaitable joins the chain the way std::stop_callback joins a std::stop_token:
//
//     template <class Promise>
//     bool await_suspend(std::coroutine_handle<Promise> h) {
//         auto token = conet::get_cancel_token(h);       // empty outside a conet::task
//         if (token.cancel_requested()) return false;    // await_resume reports it
//         on_cancel_.emplace(token, [this] { end_my_wait(); });  // std::optional member
//         ...
//     }
//
// The callback should end the wait by scheduling the coroutine's resumption with a
// conet::resumption (scheduling.hpp) kept in the awaitable, `resume_urgently(h)`, never by
// resuming it inline: resumed urgently, a cancelled when_any loser unwinds before the loop
// handles its next event (design invariant 10). A task awaits an awaitable where it stands: it
// need not be copyable or movable, unless it is passed by value (to with_timeout, say).
//
// Everything here is single-threaded: request cancellation on the reactor's thread.
#pragma once

#include <coroutine>
#include <type_traits>
#include <utility>

namespace conet {

namespace detail {

class cancel_state;
class promise_base;

/// A registration on a cancel_state: called once, when cancellation is requested.
/// Intrusive, so registering allocates nothing; it unregisters itself when destroyed.
class cancel_node {
public:
    using function = void (*)(cancel_node&) noexcept;

    explicit cancel_node(function fn) noexcept : fn_(fn) {}
    cancel_node(const cancel_node& other) noexcept : fn_(other.fn_) {} // not registered
    cancel_node& operator=(const cancel_node&) = delete;
    inline ~cancel_node();

    bool registered() const noexcept { return owner_ != nullptr; }
    cancel_state* owner() const noexcept { return owner_; }
    inline void unregister() noexcept;

private:
    friend class cancel_state;
    function fn_;
    cancel_state* owner_ = nullptr;
    cancel_node* prev_ = nullptr;
    cancel_node* next_ = nullptr;
};

/// What a chain's single watch slot calls when cancelled: a function and nothing else (the
/// operation a chain waits in; a cancel_node's links would be dead weight there).
struct cancel_watcher {
    using function = void (*)(cancel_watcher&) noexcept;
    function on_cancel;
    // The chain it belongs to: the chain clears it if it goes first (the frame that owned the
    // chain destroyed while a task it awaited, owned elsewhere, still waits).
    cancel_state* chain = nullptr;
};

/// The cancellation state of one chain: a flag, and the callbacks to run when it is set.
class cancel_state {
public:
    cancel_state() noexcept = default;
    cancel_state(const cancel_state&) = delete;
    cancel_state& operator=(const cancel_state&) = delete;
    ~cancel_state() {
        if (watched_) watched_->chain = nullptr;
        while (first_)
            remove(*first_);
    }

    bool requested() const noexcept { return requested_; }

    /// The task whose chain this is (set by the task's promise): how the loop finds, from an
    /// operation's chain, which when_any branches it belongs to (detail/pause.hpp).
    promise_base* task() const noexcept { return task_; }
    void set_task(promise_base* p) noexcept { task_ = p; }

    /// Sets the flag and runs the watched operation's callback and every registered callback
    /// once (each is unregistered first, so a callback may unregister or destroy other
    /// registrations). Idempotent.
    void request() noexcept {
        if (requested_) return;
        requested_ = true;
        if (cancel_watcher* w = watched_) {
            watched_ = nullptr;
            w->on_cancel(*w);
        }
        while (cancel_node* n = first_) {
            remove(*n);
            n->fn_(*n);
        }
    }

    /// Registers `n` (not registered elsewhere). If cancellation was already requested, runs
    /// it at once instead, and returns false.
    bool add(cancel_node& n) noexcept {
        if (requested_) {
            n.fn_(n);
            return false;
        }
        n.owner_ = this;
        n.prev_ = nullptr;
        n.next_ = first_;
        if (first_) first_->prev_ = &n;
        first_ = &n;
        return true;
    }

    /// Makes `w` the operation the chain waits in: a single slot, which costs a store where
    /// the list costs a link (conet's own operations use it; a chain waits in one operation
    /// at a time). If cancellation was already requested, runs it at once instead.
    void watch(cancel_watcher& w) noexcept {
        if (requested_)
            w.on_cancel(w);
        else
            watched_ = &w;
    }
    /// `w` no longer waits (it may not be watched any more: then nothing happens).
    void unwatch(const cancel_watcher& w) noexcept {
        if (watched_ == &w) watched_ = nullptr;
    }

    /// A registration calling `fn`, or nullptr (a scan: off the hot path).
    cancel_node* find(cancel_node::function fn) const noexcept {
        return find(fn, [](const cancel_node&) { return true; });
    }
    /// The first registration calling `fn` for which `match(node)` is true, or nullptr.
    template <class Match>
    cancel_node* find(cancel_node::function fn, Match match) const noexcept {
        for (cancel_node* n = first_; n; n = n->next_)
            if (n->fn_ == fn && match(*n)) return n;
        return nullptr;
    }
    /// True if a registration calling `fn` is registered (a scan: off the hot path).
    bool has(cancel_node::function fn) const noexcept { return find(fn) != nullptr; }
    void remove(cancel_node& n) noexcept {
        if (n.prev_)
            n.prev_->next_ = n.next_;
        else
            first_ = n.next_;
        if (n.next_) n.next_->prev_ = n.prev_;
        n.owner_ = nullptr;
        n.prev_ = n.next_ = nullptr;
    }

private:
    bool requested_ = false;
    cancel_watcher* watched_ = nullptr;
    cancel_node* first_ = nullptr;
    promise_base* task_ = nullptr;
};

inline cancel_node::~cancel_node() {
    unregister();
}

inline void cancel_node::unregister() noexcept {
    if (owner_) owner_->remove(*this);
}

/// A chain's own state plus, for a branch or a spawned task under a parent chain, the
/// registration through which the parent's cancellation reaches it.
class cancel_scope {
public:
    cancel_scope() noexcept = default;
    cancel_scope(const cancel_scope&) = delete;
    cancel_scope& operator=(const cancel_scope&) = delete;

    cancel_state& state() noexcept { return state_; }

    /// Makes this chain a child of `parent`: cancelling the parent cancels this one (at once,
    /// if the parent is already cancelled).
    void attach(cancel_state& parent) noexcept {
        link_.unregister();
        parent.add(link_);
    }
    /// Undoes attach(): the parent's cancellation no longer reaches this chain.
    void detach() noexcept { link_.unregister(); }

private:
    struct forwarder : cancel_node {
        explicit forwarder(cancel_state& to) noexcept : cancel_node(&forward), target(&to) {}
        static void forward(cancel_node& n) noexcept {
            static_cast<forwarder&>(n).target->request();
        }
        cancel_state* target;
    };

    cancel_state state_;
    forwarder link_{state_};
};

} // namespace detail

/// Observes a cancellation chain: whether cancellation has been requested, and a place to
/// register a cancel_callback. Cheap to copy. An empty token (default-constructed, or taken
/// outside a conet::task) is never cancelled. Valid while the chain's task runs.
class cancel_token {
public:
    cancel_token() noexcept = default;
    explicit cancel_token(detail::cancel_state& s) noexcept : state_(&s) {}

    /// True once the chain has been cancelled.
    bool cancel_requested() const noexcept { return state_ && state_->requested(); }
    /// False for an empty token.
    bool can_be_cancelled() const noexcept { return state_ != nullptr; }

private:
    template <class F>
    friend class cancel_callback;
    friend class task_group;
    detail::cancel_state* state_ = nullptr;
};

/// Runs `f()` once when the token's chain is cancelled, like std::stop_callback: at once in
/// the constructor if it already is, never after this object is destroyed. `f` must not
/// throw and runs on the reactor's thread, inside whatever requested the cancellation: it
/// should end a wait (schedule a resumption), not resume or destroy coroutines itself.
template <class F>
class cancel_callback : private detail::cancel_node {
public:
    template <class G>
    requires std::is_constructible_v<F, G&&> cancel_callback(cancel_token token, G&& f)
    noexcept(std::is_nothrow_constructible_v<F, G&&>)
        : cancel_node(&cancel_callback::invoke), f_(std::forward<G>(f)) {
        if (token.state_) token.state_->add(*this);
    }
    /// Moves the callback; a registered one is registered again at its new address (so that
    /// an awaitable holding one stays movable, and can be passed by value).
    cancel_callback(cancel_callback&& other) noexcept(std::is_nothrow_move_constructible_v<F>)
        : cancel_node(&cancel_callback::invoke), f_(std::move(other.f_)) {
        if (detail::cancel_state* s = other.owner()) {
            other.unregister();
            s->add(*this);
        }
    }
    cancel_callback(const cancel_callback&) = delete;
    cancel_callback& operator=(const cancel_callback&) = delete;
    cancel_callback& operator=(cancel_callback&&) = delete;
    ~cancel_callback() = default; // cancel_node's destructor unregisters

private:
    static void invoke(detail::cancel_node& n) noexcept { static_cast<cancel_callback&>(n).f_(); }
    F f_;
};

template <class F>
cancel_callback(cancel_token, F) -> cancel_callback<F>;

} // namespace conet

// conet/shared_channel.hpp - a bounded queue of values between coroutines on different
// reactors (threads): an acceptor handing connections to workers, producers on one shard
// feeding consumers on another.
//
//     conet::shared_channel<job> jobs(64);
//     co_await jobs.send(std::move(j));             // on any reactor's thread
//     while (auto j = co_await jobs.recv()) run(*j); // on any other
//
// The same operations and guarantees as conet::channel (channel.hpp): capacity at least 1,
// send() waits while full, recv() while empty, close() drains, try_send()/try_recv(), FIFO
// among waiting senders and among waiting receivers, and cancellation-safe (a cancelled
// recv never takes a value it does not deliver; a cancelled send queued its value or did
// not, and says which). Every operation may be used on any reactor's thread, and the
// non-waiting ones on any thread.
//
// How: the queue and the lists of waiting coroutines are behind one lock, held only to
// change them (never while a coroutine runs). A coroutine woken by another thread is woken
// through its reactor's post path (reactor::post, a lock-free inbox and an eventfd write):
// one node per reactor that waited on the channel, posted at most once until that reactor
// runs it, carries every wake-up for that reactor. So the receiving reactor takes no lock
// beyond the channel's own, and a burst of values costs one wake-up per reactor.
//
// Costs: the buffer and the shared state are allocated once, by the constructor; the first
// wait of each reactor allocates its wake-up node (kept until the channel goes). Nothing is
// allocated per operation. A wake-up reaches a coroutine one turn of its reactor later than
// a channel<T> wake-up would (it goes through the inbox), and a cancelled waiter the channel
// had already promised a value (or room) to resumes when that wake-up arrives.
//
// Lifetimes: the reactors must outlive the coroutines waiting here (as for anything handed
// between reactors, see handoff.hpp). The channel itself may go first: coroutines still
// waiting then resume as after close() with nothing queued, and the shared state is freed by
// the last of them.
#pragma once

#include <coroutine>
#include <cstddef>
#include <initializer_list>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "cancel.hpp"
#include "detail/atomic.hpp"
#include "detail/await_record.hpp"
#include "detail/loop_core.hpp"
#include "detail/posted_queue.hpp"
#include "detail/ready_queue.hpp"
#include "detail/thread.hpp"
#include "detail/wait_list.hpp"
#include "error.hpp"
#include "reactor.hpp"

namespace conet {

template <class T>
class shared_channel {
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "conet::shared_channel<T>: T must be nothrow move-constructible");
    struct state;
    struct mailbox;
    class op_base;

public:
    class send_op;
    class recv_op;

    /// A channel that holds at most `capacity` values. Throws std::invalid_argument for 0,
    /// std::bad_alloc.
    explicit shared_channel(std::size_t capacity) : s_(new state(capacity)) {}
    shared_channel(const shared_channel&) = delete;
    shared_channel& operator=(const shared_channel&) = delete;
    /// Closes the channel (see close()): coroutines still waiting resume as they would then.
    ~shared_channel() {
        {
            detail::lock_guard lock(s_->mutex);
            s_->close();
        }
        s_->release();
    }

    /// As channel::send: queues `v` (moved from only when queued), waiting while full.
    /// Throws channel_closed, operation_canceled (not queued), no_reactor.
    send_op send(T&& v) noexcept { return send_op(*s_, &v, nullptr); }
    send_op send(T&& v, std::error_code& ec) noexcept { return send_op(*s_, &v, &ec); }

    /// As channel::recv: the next value, or an empty optional once closed and drained.
    /// Throws operation_canceled (nothing taken), no_reactor.
    recv_op recv() noexcept { return recv_op(*s_, nullptr); }
    recv_op recv(std::error_code& ec) noexcept { return recv_op(*s_, &ec); }

    /// Queues `v` if there is room now (never waits), from any thread: true if queued.
    /// Throws channel_closed once closed.
    bool try_send(T&& v) {
        detail::lock_guard lock(s_->mutex);
        if (s_->closed) throw std::system_error(error::channel_closed, "shared_channel::try_send");
        if (s_->full()) return false;
        s_->push_back(std::move(v));
        s_->settle();
        return true;
    }

    /// The next value if one can be taken now (never waits), from any thread.
    std::optional<T> try_recv() {
        detail::lock_guard lock(s_->mutex);
        if (s_->size == s_->reserved) return std::nullopt;
        std::optional<T> v(s_->pop_front());
        s_->settle();
        return v;
    }

    /// As channel::close, from any thread: waiting senders fail with channel_closed,
    /// receivers get what is queued, then the end.
    void close() noexcept {
        detail::lock_guard lock(s_->mutex);
        s_->close();
    }

    bool closed() const noexcept {
        detail::lock_guard lock(s_->mutex);
        return s_->closed;
    }
    /// How many values are queued now (a snapshot: other threads may change it at once).
    std::size_t size() const noexcept {
        detail::lock_guard lock(s_->mutex);
        return s_->size;
    }
    std::size_t capacity() const noexcept { return s_->capacity; }

private:
    enum class where : unsigned char {
        idle,     // not waiting
        waiting,  // in state::senders or state::receivers
        in_box,   // decided (or promised a value or room), in its reactor's mailbox
        promised, // promised a value or room, on its reactor's ready queue (state::promised)
        done,     // decided, on its reactor's ready queue or running
    };

    // The shared state: allocated once, freed by the last of the channel, the waiting
    // coroutines and the mailboxes posted (so that a wake-up in flight outlives the channel).
    struct state {
        explicit state(std::size_t cap) : buffer(allocate(cap)), capacity(cap) {}
        ~state() {
            while (size != 0)
                pop_front();
            while (mailbox* m = boxes) {
                boxes = m->next;
                delete m;
            }
            ::operator delete (buffer, std::align_val_t{alignof(T)});
        }

        static T* allocate(std::size_t capacity) {
            if (capacity == 0)
                throw std::invalid_argument("conet::shared_channel: capacity must be at least 1");
            if (capacity > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
            return static_cast<T*>(
                ::operator new (capacity * sizeof(T), std::align_val_t{alignof(T)}));
        }

        void release() noexcept {
            if (refs.fetch_sub(1, detail::memory_order_acq_rel) == 1) delete this;
        }

        void push_back(T&& v) noexcept {
            std::size_t at = head + size;
            if (at >= capacity) at -= capacity;
            ::new (static_cast<void*>(buffer + at)) T(std::move(v));
            ++size;
        }
        T pop_front() noexcept {
            T* slot = buffer + head;
            T v(std::move(*slot));
            slot->~T();
            if (++head == capacity) head = 0;
            --size;
            return v;
        }

        // With the lock: as channel::settle, waking through the waiters' mailboxes.
        void settle() noexcept;
        // With the lock: no room for one more value (every slot queued, or kept for a sender
        // about to resume).
        bool full() const noexcept { return size + granted == capacity; }
        // With the lock: closes (waiting senders fail, receivers drain then end).
        void close() noexcept;
        // With the lock: `op` resumes (its result decided, or a value promised).
        void wake(op_base& op) noexcept;
        // With the lock: the mailbox of reactor `r`, made on its first wait (may throw).
        mailbox& mailbox_of(reactor& r);

        mutable detail::mutex mutex;
        T* buffer;
        std::size_t capacity;
        std::size_t head = 0;
        std::size_t size = 0;
        std::size_t reserved = 0; // queued values promised to receivers not resumed yet
        std::size_t granted = 0;  // free slots promised to senders not resumed yet
        bool closed = false;
        detail::wait_list senders;
        detail::wait_list receivers;
        detail::wait_list promised; // promised a value or room, on their ready queues
        mailbox* boxes = nullptr;
        detail::atomic<std::size_t> refs{1};
    };

    // One reactor's wake-ups: the coroutines of that reactor to resume, carried by one posted
    // node (posted when the first is added, until the reactor runs it).
    struct mailbox : detail::posted_node {
        mailbox(state& s, reactor& r) noexcept
            : posted_node(&mailbox::arrive), owner(&s), target(&r) {}
        static void arrive(detail::posted_node& n, bool run) noexcept {
            auto& box = static_cast<mailbox&>(n);
            state& s = *box.owner;
            {
                detail::lock_guard lock(s.mutex);
                box.posted = false;
                // Not run (the reactor is being destroyed): its waiting frames go next, and
                // leave the mailbox as they go.
                while (run && !box.pending.empty()) {
                    auto& op = static_cast<op_base&>(*box.pending.pop_front());
                    if (op.promised_value) {
                        op.at = where::promised; // cancelled now, it gives the value up
                        s.promised.push_back(op);
                    } else {
                        op.at = where::done;
                    }
                    op.loop->ready.push_back(op.wake);
                }
            }
            s.release(); // the reference the post held
        }

        state* owner;
        reactor* target;
        detail::wait_list pending; // to resume on `target`
        bool posted = false;
        mailbox* next = nullptr;
    };

    // What send and recv share: the node in the frame, and its place in the state.
    class op_base : public detail::wait_node {
    public:
        op_base(const op_base& other) noexcept : wait_node(other), s_(other.s_), out_(other.out_) {}
        op_base& operator=(const op_base&) = delete;
        // Destroyed while it waits (its frame went): it leaves every list, gives up what it
        // was promised, and drops its reference.
        ~op_base() {
            if (!registered_) return;
            {
                detail::lock_guard lock(s_->mutex);
                detail::wait_list::remove(*this);
                if (promised_value) give_up();
            }
            s_->release();
        }

        using wait_node::set_chain;

    protected:
        friend struct state;
        friend struct mailbox;

        op_base(state& s, std::error_code* out, cancel_watcher::function when_cancelled) noexcept
            : wait_node(when_cancelled), s_(&s), out_(out) {}

        // With the lock: a promised value goes to the next receiver, promised room to the
        // next sender.
        void give_up() noexcept {
            promised_value = false;
            if (outgoing_)
                --s_->granted;
            else
                --s_->reserved;
            s_->settle();
        }

        // Joins `list` (with the lock held by the caller) and watches the chain: the common
        // part of await_suspend once the operation must wait.
        bool wait_in(detail::wait_list& list, std::coroutine_handle<> h) noexcept {
            wake.handle = h;
            loop = detail::loop_core::current();
            reactor* r = reactor::current();
            if (!loop || !r) {
                ec_ = error::no_reactor;
                return false;
            }
            {
                detail::lock_guard lock(s_->mutex);
                try {
                    box_ = &s_->mailbox_of(*r);
                } catch (const std::bad_alloc&) {
                    ec_ = std::make_error_code(std::errc::not_enough_memory);
                    return false;
                }
                s_->refs.fetch_add(1, detail::memory_order_relaxed);
                registered_ = true;
                at = where::waiting;
                list.push_back(*this);
                s_->settle(); // with the budget spent, this may wake it at once (by its mailbox)
            }
            watch();
            return true;
        }

        // The chain is cancelled (on the waiter's thread).
        static void cancelled(detail::cancel_watcher& w) noexcept {
            auto& self = static_cast<op_base&>(static_cast<detail::wait_node&>(w));
            self.forget_chain();
            detail::lock_guard lock(self.s_->mutex);
            switch (self.at) {
            case where::waiting:
                detail::wait_list::remove(self);
                self.ec_ = std::make_error_code(std::errc::operation_canceled);
                self.at = where::done;
                self.resume_urgently();
                return;
            case where::promised:
                detail::wait_list::remove(self);
                self.give_up();
                self.ec_ = std::make_error_code(std::errc::operation_canceled);
                self.at = where::done;
                self.resume_urgently();
                return;
            case where::in_box:
                // The wake-up is posted: it resumes the coroutine when it arrives. A promised
                // value goes to the next receiver now, promised room to the next sender.
                if (self.promised_value) {
                    self.give_up();
                    self.ec_ = std::make_error_code(std::errc::operation_canceled);
                }
                return;
            default:
                return;
            }
        }

        // await_resume's common start: stops watching, and (with the lock) takes the
        // promised value if there is one, or queues its value in the room promised to it.
        std::optional<T> finish() noexcept {
            unwatch();
            std::optional<T> v;
            if (!registered_) return v;
            registered_ = false;
            {
                detail::lock_guard lock(s_->mutex);
                detail::wait_list::remove(*this);
                if (promised_value && outgoing_) {
                    promised_value = false;
                    --s_->granted;
                    if (s_->closed) { // closed before it resumed: not queued
                        ec_ = error::channel_closed;
                    } else {
                        s_->push_back(std::move(*outgoing_));
                        s_->settle();
                    }
                } else if (promised_value) {
                    promised_value = false;
                    --s_->reserved;
                    v.emplace(s_->pop_front());
                    s_->settle();
                }
                at = where::idle;
            }
            s_->release();
            return v;
        }

        state* s_;
        std::error_code* out_;
        mailbox* box_ = nullptr;
        T* outgoing_ = nullptr;      // a sender's value (moved from only when queued)
        where at = where::idle;      // with the lock
        bool promised_value = false; // with the lock: a queued value (receivers) or room
                                     // (senders) is its
        bool registered_ = false;    // its thread only: it holds a reference to the state
    };

public:
    class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] send_op
        : private op_base {
    public:
        send_op(const send_op& other) noexcept : op_base(other) {
            this->outgoing_ = other.outgoing_;
        }
        send_op& operator=(const send_op&) = delete;

        using op_base::set_chain;

        /// For the task dump (conet/task_dump.hpp).
        void describe_await(detail::await_view & v) const noexcept {
            v.kind = "shared_channel send";
        }
        bool await_ready() noexcept {
            if (this->cancel_requested()) [[unlikely]] {
                this->ec_ = std::make_error_code(std::errc::operation_canceled);
                return detail::take_budget();
            }
            state& s = *this->s_;
            detail::lock_guard lock(s.mutex);
            if (s.closed) {
                this->ec_ = error::channel_closed;
                return true;
            }
            if (s.full() || !detail::take_budget()) return false;
            s.push_back(std::move(*this->outgoing_));
            s.settle();
            return true;
        }

        bool await_suspend(std::coroutine_handle<> h) noexcept {
            if (this->ec_) return this->give_turn_decided(h);
            return this->wait_in(this->s_->senders, h);
        }

        void await_resume() {
            this->finish();
            detail::report(this->ec_, this->out_, "shared_channel::send");
        }

    private:
        friend class shared_channel;
        friend struct state;
        send_op(state & s, T * value, std::error_code * out) noexcept
            : op_base(s, out, &op_base::cancelled) {
            this->outgoing_ = value;
        }
    };

    class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] recv_op
        : private op_base {
    public:
        recv_op(const recv_op& other) noexcept : op_base(other) {}
        recv_op& operator=(const recv_op&) = delete;

        using op_base::set_chain;

        /// For the task dump (conet/task_dump.hpp).
        void describe_await(detail::await_view & v) const noexcept {
            v.kind = "shared_channel recv";
        }
        bool await_ready() noexcept {
            if (this->cancel_requested()) [[unlikely]] {
                this->ec_ = std::make_error_code(std::errc::operation_canceled);
                return detail::take_budget();
            }
            state& s = *this->s_;
            detail::lock_guard lock(s.mutex);
            if (s.size != s.reserved) {
                if (!detail::take_budget()) return false; // it waits for its turn, below
                value_.emplace(s.pop_front());
                s.settle();
                return true;
            }
            return s.closed && s.size == 0; // the end
        }

        bool await_suspend(std::coroutine_handle<> h) noexcept {
            if (this->ec_) return this->give_turn_decided(h);
            return this->wait_in(this->s_->receivers, h);
        }

        std::optional<T> await_resume() {
            if (auto v = this->finish()) {
                if (this->out_) this->out_->clear();
                return v;
            }
            detail::report(this->ec_, this->out_, "shared_channel::recv");
            return std::move(value_);
        }

    private:
        friend class shared_channel;
        friend struct state;
        recv_op(state & s, std::error_code * out) noexcept : op_base(s, out, &op_base::cancelled) {}
        std::optional<T> value_; // taken at once, without waiting
    };

private:
    state* s_;
};

template <class T>
void shared_channel<T>::state::settle() noexcept {
    while (!full() && !senders.empty()) {
        auto& s = static_cast<op_base&>(*senders.pop_front());
        ++granted; // room for it: it queues its value as it resumes (cancelled first, not)
        s.promised_value = true;
        wake(s);
    }
    while (size != reserved && !receivers.empty()) {
        auto& r = static_cast<op_base&>(*receivers.pop_front());
        ++reserved;
        r.promised_value = true;
        wake(r);
    }
    if (closed && size == 0)
        while (detail::wait_node* n = receivers.pop_front())
            wake(static_cast<op_base&>(*n));
}

template <class T>
void shared_channel<T>::state::close() noexcept {
    if (closed) return;
    closed = true;
    while (detail::wait_node* n = senders.pop_front()) {
        auto& s = static_cast<op_base&>(*n);
        s.ec_ = make_error_code(error::channel_closed);
        wake(s);
    }
    settle();
}

template <class T>
void shared_channel<T>::state::wake(op_base& op) noexcept {
    op.at = where::in_box;
    mailbox& box = *op.box_;
    box.pending.push_back(op);
    if (!box.posted) {
        box.posted = true;
        refs.fetch_add(1, detail::memory_order_relaxed);
        box.target->post(box);
    }
}

template <class T>
typename shared_channel<T>::mailbox& shared_channel<T>::state::mailbox_of(reactor& r) {
    for (mailbox* m = boxes; m; m = m->next)
        if (m->target == &r) return *m;
    auto* m = new mailbox(*this, r);
    m->next = boxes;
    boxes = m;
    return *m;
}

} // namespace conet

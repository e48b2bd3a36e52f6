// conet/channel.hpp - a bounded queue of values between the coroutines of one reactor.
//
//     conet::channel<std::string> lines(16);                 // at most 16 values queued
//     co_await lines.send(std::move(line));                 // waits while 16 are queued
//     while (auto line = co_await lines.recv()) use(*line); // ends once closed and drained
//     lines.close();                                        // queued values still arrive
//
// Capacity is at least 1 (0 throws std::invalid_argument; there is no rendezvous mode): a
// value waits in the channel's buffer until the receiver it is promised to resumes and takes
// it, which is what lets a receiver cancelled in between leave it there for the next one.
//
// Guarantees:
//  - Cancellation-safe. A cancelled recv() never takes a value it does not deliver: a value
//    promised to a receiver that is cancelled before it resumes goes to the next receiver
//    (or stays queued). A send() either queued its value (it returned normally) or did not
//    (it failed: operation_canceled, channel_closed), and the value passed to it is moved
//    from only when it was queued, by its own coroutine as it resumes: a sender that waited
//    is promised room (a slot kept for it), as a receiver is promised a value, and if it is
//    cancelled before it resumes (a when_any it loses in that turn) the room goes to the next
//    sender and its value stays the caller's. So recv() and send() work under with_timeout
//    and as when_any branches without losing or duplicating a value. (The price: through a
//    capacity-1 channel, a sender and a receiver that keep waiting for each other resume
//    once per value each.)
//  - First come, first served: waiting senders queue their values in the order they began
//    to wait, and waiting receivers get values in the order they began to wait.
//  - No allocation per operation: the buffer is allocated once, by the constructor; a
//    waiting coroutine waits in a node in its own frame.
//  - One reactor: the first reactor that uses the channel owns it; used on another reactor's
//    thread (or on a thread without one while its reactor runs), every operation fails with
//    conet::error::wrong_reactor. For values between reactors, see shared_channel.hpp.
//
// The channel must outlive the operations awaiting it. Destroying it while coroutines wait
// resumes them (receivers with the end, senders with conet::error::channel_closed) and
// destroys the values still queued.
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
#include "detail/await_record.hpp"
#include "detail/loop_core.hpp"
#include "detail/wait_list.hpp"
#include "error.hpp"

namespace conet {

namespace detail {
/// A value an awaitable owns (a copy it sends), in a base placed before the awaitable's.
template <class T>
struct value_holder {
    T held;
};
} // namespace detail

template <class T>
class channel {
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "conet::channel<T>: T must be nothrow move-constructible");

public:
    class send_op;
    class send_copy_op;
    class recv_op;

    /// A channel that holds at most `capacity` values. Allocates its buffer once; throws
    /// std::invalid_argument for 0 (see the top of this header) and std::bad_alloc.
    explicit channel(std::size_t capacity) : buffer_(allocate(capacity)), capacity_(capacity) {}
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;
    ~channel() {
        abandon_waiters();
        while (size_ != 0)
            pop_front();
        ::operator delete (buffer_, std::align_val_t{alignof(T)});
    }

    /// `co_await ch.send(std::move(v))`: queues `v`, first waiting while the channel is full.
    /// Throws std::system_error with conet::error::channel_closed once the channel is closed
    /// (before or while it waits), operation_canceled if its task is cancelled while it waits
    /// (the value is then not queued, and `v` is left as it was), wrong_reactor. `v` must
    /// outlive the co_await (a temporary in the same expression does).
    send_op send(T&& v) noexcept { return send_op(*this, &v, nullptr); }
    /// Sends a copy of `v`, made here (it may throw): `v` itself is never touched again.
    send_copy_op send(const T& v) requires std::is_copy_constructible_v<T> {
        return send_copy_op(*this, v, nullptr);
    }
    /// Non-throwing forms: `ec` reports the failure instead (and is cleared on success).
    send_op send(T&& v, std::error_code& ec) noexcept { return send_op(*this, &v, &ec); }
    send_copy_op send(const T& v, std::error_code& ec) requires std::is_copy_constructible_v<T> {
        return send_copy_op(*this, v, &ec);
    }

    /// `co_await ch.recv()`: the next value, first waiting while none is queued; an empty
    /// std::optional once the channel is closed and every value queued before has been
    /// received. Throws operation_canceled if its task is cancelled while it waits (nothing
    /// is taken then), wrong_reactor, no_reactor (it had to wait on a thread without one).
    recv_op recv() noexcept { return recv_op(*this, nullptr); }
    /// Non-throwing form: an empty optional with `ec` set on failure (`ec` clear: the end).
    recv_op recv(std::error_code& ec) noexcept { return recv_op(*this, &ec); }

    /// Queues `v` if there is room now, never waiting: true if queued (`v` moved from),
    /// false if full. Throws channel_closed once closed, wrong_reactor.
    bool try_send(T&& v) { return try_push(&v); }
    /// Copies `v` (only if there is room).
    bool try_send(const T& v) requires std::is_copy_constructible_v<T> {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("channel::try_send");
        if (closed_ || full()) return try_push(nullptr);
        T copy(v); // may throw: before anything changed
        return try_push(&copy);
    }

    /// The next value if one can be taken now (never waits): empty if none is queued (or all
    /// are promised to receivers that will resume shortly), or once closed and drained.
    /// Throws wrong_reactor.
    std::optional<T> try_recv() {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("channel::try_recv");
        if (size_ == reserved_) return std::nullopt;
        std::optional<T> v(pop_front());
        settle();
        return v;
    }

    /// Closes the channel: later sends fail with conet::error::channel_closed, and so do the
    /// sends waiting now (their values are not queued); receivers still get every value
    /// queued, then the end. Idempotent. Throws wrong_reactor.
    void close() {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("channel::close");
        if (closed_) return;
        closed_ = true;
        while (detail::wait_node* n = senders_.pop_front())
            static_cast<send_op&>(*n).fail(make_error_code(error::channel_closed));
        settle();
    }

    /// True once close() has been called.
    bool closed() const noexcept { return closed_; }
    /// How many values are queued (including those promised to receivers about to resume).
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }

    /// What send() returns: an awaitable that lives in the awaiting frame.
    class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] send_op
        : private detail::wait_node {
    public:
        send_op(const send_op& other) noexcept
            : wait_node(other), ch_(other.ch_), value_(other.value_), out_(other.out_) {}
        send_op& operator=(const send_op&) = delete;
        // Destroyed with room kept for it: the room goes to the next sender.
        ~send_op() {
            if (state_ == state::granted) ch_->give_up_room(*this);
        }

        using wait_node::set_chain;

        /// For the task dump (conet/task_dump.hpp).
        void describe_await(detail::await_view & v) const noexcept {
            v.kind = "channel send";
        }
        bool await_ready() noexcept {
            if (cancel_requested()) [[unlikely]] {
                ec_ = std::make_error_code(std::errc::operation_canceled);
                return detail::take_budget(); // spent: await_suspend gives the turn first
            }
            channel& ch = *ch_;
            if (!ch.home_.here()) [[unlikely]] {
                ec_ = error::wrong_reactor;
                return true;
            }
            if (ch.closed_) [[unlikely]] {
                ec_ = error::channel_closed;
                return true;
            }
            if (ch.full()) return false;  // (senders wait only when it is full)
            if (!detail::take_budget()) { // spent: room is kept for it until it resumes
                ++ch.granted_;
                state_ = state::granted;
                return false;
            }
            ch.push_back(take_value());
            ch.settle();
            return true;
        }

        bool await_suspend(std::coroutine_handle<> h) noexcept {
            if (ec_) return give_turn_decided(h); // only the loop's turn is left to give
            if (state_ == state::granted)         // the budget is spent: it queues at the next turn
                return resume_promised(&ch_->granted_senders_, h);
            state_ = state::waiting;
            return suspend_on(ch_->senders_, h);
        }

        void await_resume() {
            unwatch();
            if (state_ == state::granted) {
                state_ = state::done;
                detail::wait_list::remove(*this);
                channel& ch = *ch_;
                --ch.granted_;
                if (ch.closed_) { // closed before it resumed: not queued
                    ec_ = error::channel_closed;
                } else {
                    ch.push_back(take_value());
                    ch.settle();
                }
            }
            detail::report(ec_, out_, "channel::send");
        }

    private:
        friend class channel;
        friend class send_copy_op;
        enum class state : unsigned char { idle, waiting, granted, done };

        send_op(channel & ch, T * value, std::error_code * out) noexcept
            : wait_node(&send_op::cancelled), ch_(&ch), value_(value), out_(out) {}

        T&& take_value() noexcept {
            return std::move(*value_);
        }

        // The wait failed (the channel closed): the value was not queued.
        void fail(std::error_code ec) noexcept {
            ec_ = ec;
            state_ = state::done;
            unwatch();
            resume_later();
        }

        static void cancelled(detail::cancel_watcher & w) noexcept {
            auto& self = static_cast<send_op&>(static_cast<detail::wait_node&>(w));
            self.forget_chain();
            if (self.state_ == state::granted)
                self.ch_->give_up_room(self); // the room goes to the next sender
            else
                detail::wait_list::remove(self); // was waiting: its value was not queued
            self.state_ = state::done;
            self.ec_ = std::make_error_code(std::errc::operation_canceled);
            self.resume_urgently();
        }

        channel* ch_;
        T* value_; // moved from only when it is queued, by its own coroutine as it resumes
        state state_ = state::idle;
        std::error_code* out_;
    };

    /// What send(const T&) returns: send_op, sending a copy it holds.
    class [[nodiscard(
        "conet: co_await this operation; until awaited it does nothing")]] send_copy_op
        : private detail::value_holder<T>,
          public send_op {
    public:
        send_copy_op(const send_copy_op& other)
            : detail::value_holder<T>{other.held}, send_op(other) {
            this->value_ = &this->held;
        }
        send_copy_op& operator=(const send_copy_op&) = delete;

    private:
        friend class channel;
        send_copy_op(channel & ch, const T& v, std::error_code* out)
            : detail::value_holder<T>{v}, send_op(ch, &this->held, out) {}
    };

    /// What recv() returns: an awaitable that lives in the awaiting frame.
    class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] recv_op
        : private detail::wait_node {
    public:
        recv_op(const recv_op& other) noexcept
            : wait_node(other), ch_(other.ch_), out_(other.out_) {}
        recv_op& operator=(const recv_op&) = delete;
        // Destroyed while a value is promised to it: the value goes to the next receiver.
        ~recv_op() {
            if (state_ == state::promised) ch_->withdraw(*this);
        }

        using wait_node::set_chain;

        /// For the task dump (conet/task_dump.hpp).
        void describe_await(detail::await_view & v) const noexcept {
            v.kind = "channel recv";
        }
        bool await_ready() noexcept {
            if (cancel_requested()) [[unlikely]] {
                ec_ = std::make_error_code(std::errc::operation_canceled);
                state_ = state::done;
                return detail::take_budget();
            }
            channel& ch = *ch_;
            if (!ch.home_.here()) [[unlikely]] {
                ec_ = error::wrong_reactor;
                state_ = state::done;
                return true;
            }
            if (ch.size_ != ch.reserved_) { // a value nobody else is promised
                ++ch.reserved_;
                state_ = state::promised;
                return detail::take_budget(); // spent: it waits for the turn, promised
            }
            if (ch.closed_ && ch.size_ == 0) {
                state_ = state::done; // the end
                return detail::take_budget();
            }
            return false;
        }

        bool await_suspend(std::coroutine_handle<> h) noexcept {
            if (state_ == state::done) return give_turn_decided(h);
            if (state_ == state::promised) // the budget is spent: take it at the next turn
                return resume_promised(&ch_->promised_, h);
            state_ = state::waiting;
            return suspend_on(ch_->receivers_, h);
        }

        std::optional<T> await_resume() {
            unwatch();
            if (state_ == state::promised) {
                state_ = state::done;
                detail::wait_list::remove(*this);
                channel& ch = *ch_;
                --ch.reserved_;
                std::optional<T> v(ch.pop_front());
                ch.settle();
                if (out_) out_->clear();
                return v;
            }
            detail::report(ec_, out_, "channel::recv");
            return std::nullopt;
        }

    private:
        friend class channel;
        enum class state : unsigned char { idle, waiting, promised, done };

        recv_op(channel & ch, std::error_code * out) noexcept
            : wait_node(&recv_op::cancelled), ch_(&ch), out_(out) {}

        static void cancelled(detail::cancel_watcher & w) noexcept {
            auto& self = static_cast<recv_op&>(static_cast<detail::wait_node&>(w));
            self.forget_chain();
            if (self.state_ == state::promised)
                self.ch_->withdraw(self); // the value goes to the next receiver
            else
                detail::wait_list::remove(self);
            self.state_ = state::done;
            self.ec_ = std::make_error_code(std::errc::operation_canceled);
            self.resume_urgently();
        }

        channel* ch_;
        std::error_code* out_;
        state state_ = state::idle;
    };

private:
    static T* allocate(std::size_t capacity) {
        if (capacity == 0)
            throw std::invalid_argument("conet::channel: capacity must be at least 1 (there is "
                                        "no rendezvous channel; see channel.hpp)");
        if (capacity > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
        return static_cast<T*>(::operator new (capacity * sizeof(T), std::align_val_t{alignof(T)}));
    }

    void push_back(T&& v) noexcept {
        std::size_t at = head_ + size_;
        if (at >= capacity_) at -= capacity_;
        ::new (static_cast<void*>(buffer_ + at)) T(std::move(v));
        ++size_;
    }

    T pop_front() noexcept {
        T* slot = buffer_ + head_;
        T v(std::move(*slot));
        slot->~T();
        if (++head_ == capacity_) head_ = 0;
        --size_;
        return v;
    }

    // Whoever can go on now does: waiting senders queue their values while there is room,
    // waiting receivers are promised the values nobody else is, and once the channel is
    // closed and empty every waiting receiver gets the end. Each in the order it came.
    [[gnu::always_inline]] void settle() noexcept {
        if (senders_.empty() && receivers_.empty()) return; // the common case: one test each
        settle_waiters();
    }
    void settle_waiters() noexcept {
        while (!full() && !senders_.empty()) {
            auto& s = static_cast<send_op&>(*senders_.pop_front());
            ++granted_;
            s.state_ = send_op::state::granted;
            granted_senders_.push_back(s);
            s.resume_later(); // it stays watched: cancelled before it resumes, it gives it up
        }
        while (size_ != reserved_ && !receivers_.empty()) {
            auto& r = static_cast<recv_op&>(*receivers_.pop_front());
            ++reserved_;
            r.state_ = recv_op::state::promised;
            promised_.push_back(r);
            r.resume_later(); // it stays watched: cancelled before it resumes, it gives it up
        }
        if (closed_ && size_ == 0) {
            while (detail::wait_node* n = receivers_.pop_front()) {
                auto& r = static_cast<recv_op&>(*n);
                r.state_ = recv_op::state::done;
                r.unwatch();
                r.resume_later();
            }
        }
    }

    // A sender gives up the room kept for it (cancelled, or its frame destroyed).
    void give_up_room(send_op& s) noexcept {
        detail::wait_list::remove(s);
        s.state_ = send_op::state::done;
        --granted_;
        settle();
    }

    // No room for one more value: every slot is queued or kept for a sender about to resume.
    bool full() const noexcept { return size_ + granted_ == capacity_; }

    // A receiver gives up the value promised to it (cancelled, or its frame destroyed).
    void withdraw(recv_op& r) noexcept {
        detail::wait_list::remove(r);
        r.state_ = recv_op::state::done;
        --reserved_;
        settle();
    }

    // try_send: queues *v (moved from) if there is room (v null: only the checks).
    bool try_push(T* v) {
        if (!home_.here()) [[unlikely]]
            detail::throw_wrong_reactor("channel::try_send");
        if (closed_) throw std::system_error(error::channel_closed, "channel::try_send");
        if (full() || !v) return false;
        push_back(std::move(*v));
        settle();
        return true;
    }

    // The channel goes while coroutines wait on it: each resumes (urgently) and never touches
    // it again.
    void abandon_waiters() noexcept {
        for (detail::wait_list* list : {&senders_, &granted_senders_}) {
            while (detail::wait_node* n = list->pop_front()) {
                auto& s = static_cast<send_op&>(*n);
                s.state_ = send_op::state::done;
                s.ec_ = make_error_code(error::channel_closed);
                s.unwatch();
                s.resume_urgently();
            }
        }
        granted_ = 0;
        for (detail::wait_list* list : {&receivers_, &promised_}) {
            while (detail::wait_node* n = list->pop_front()) {
                auto& r = static_cast<recv_op&>(*n);
                r.state_ = recv_op::state::done; // the end
                r.unwatch();
                r.resume_urgently();
            }
        }
        reserved_ = 0;
    }

    T* buffer_;
    std::size_t capacity_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
    std::size_t reserved_ = 0; // queued values promised to receivers not resumed yet
    std::size_t granted_ = 0;  // free slots kept for senders not resumed yet
    bool closed_ = false;
    detail::home_loop home_;
    detail::wait_list senders_;         // waiting for room, their values in their frames
    detail::wait_list granted_senders_; // given room, about to resume and queue their values
    detail::wait_list receivers_;       // waiting for a value
    detail::wait_list promised_;        // promised a value, about to resume and take it
};

} // namespace conet

// conet/detail/descriptor.hpp - a file descriptor that can wait on a reactor: the base of
// every conet socket.
#pragma once

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <system_error>
#include <utility>

#include "../error.hpp"
#include "atomic.hpp"
#include "descriptor_table.hpp"
#include "loop_core.hpp"
#include "waiter.hpp"

namespace conet::detail {

/// Owns a descriptor (closing it on destruction) and registers it with the running reactor
/// the first time an operation has to wait: once, edge-triggered, for both directions.
/// Before that, its first operation on a reactor's thread claims it for that reactor (a
/// compare-exchange), so that another reactor's operation is refused with wrong_reactor
/// before it touches anything, its first try included (design invariant 8).
///
/// It also keeps what the loop knows of its readiness, so that an operation on a stream
/// socket need not rediscover it with a syscall that fails with EAGAIN (docs/design.md,
/// "Readiness"). Edge-triggered epoll reports a change once: data arriving after a read
/// makes a new edge, data already queued makes none. So:
///   - registering (EPOLL_CTL_ADD) reports the current state as a first edge: both
///     directions start "not known ready" and that edge fills them in;
///   - an edge marks its direction ready, whether or not an operation waits for it;
///   - on a stream socket, a read that returns fewer bytes than asked for has emptied the
///     receive queue (the kernel copies all that is queued), and a short write has filled
///     the send queue: whatever changes that later makes a new edge, so the next operation
///     in that direction waits for it without trying first. EAGAIN proves the same;
///   - end of stream, a reset, an error (EPOLLRDHUP, EPOLLHUP, EPOLLERR) are final: no edge
///     follows them, so once seen the direction stays ready for good.
/// Anything else (a terminal returns one line per read, a datagram socket one datagram)
/// proves nothing by a short read: it always tries first, as before. A receive low-water
/// mark (SO_RCVLOWAT) above 1 makes the kernel report no edge below it: a drained socket's
/// recv then waits until that many bytes are queued, as a blocking socket's would.
class descriptor {
public:
    /// What a descriptor is, for the loop: bits for the constructor.
    enum trait_bits : std::uint32_t {
        /// A TCP or UNIX stream socket conet made (connect, accept, socketpair): a short read
        /// or write proves the direction drained. Not an adopted descriptor, which may be a
        /// UNIX socket read with read() (see message_stream).
        stream_socket = 1u << 24,
        /// Made by conet (socket(), accept4()) and never duplicated by it: close() needs no
        /// EPOLL_CTL_DEL, since closing the only descriptor of a file removes it from every
        /// epoll set (and the slot's generation already ignores an event fetched before).
        conet_made = 1u << 25,
        /// A UNIX stream: a read stops short after a message that carried descriptors (or,
        /// on a socket passing credentials, at another writer's data), with more queued
        /// behind it. Its own operations read with recvmsg() and see that (MSG_CTRUNC, or
        /// the descriptors they take); a plain read() there proves nothing by a short read.
        message_stream = 1u << 26,
    };

    descriptor() noexcept = default;
    explicit descriptor(int fd, std::uint32_t kind = 0) noexcept
        : fd_(fd), state_(kind | unknown) {}
    descriptor(descriptor&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), state_(std::exchange(other.state_, unknown)),
          loop_(other.take_loop()) {
        adopt_slot();
    }
    descriptor& operator=(descriptor&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = std::exchange(other.fd_, -1);
            state_ = std::exchange(other.state_, unknown);
            set_loop(other.take_loop());
            adopt_slot();
        }
        return *this;
    }
    descriptor(const descriptor&) = delete;
    descriptor& operator=(const descriptor&) = delete;
    ~descriptor() { close(); }

    /// The operating system's descriptor, or -1 once closed.
    int native_handle() const noexcept { return fd_; }
    /// True until close() (or a move out of this object).
    bool is_open() const noexcept { return fd_ >= 0; }

    /// Closes the descriptor. Coroutines waiting on it resume with conet::error::closed.
    void close() noexcept {
        if (fd_ < 0) return;
        if (loop_core* l = loop()) {
            require_owner_thread(*l, "closed");
            release();
        }
        counted(::close(fd_)); // never retried on EINTR: on Linux the descriptor is gone either way
        fd_ = -1;
        state_ = (state_ & traits_mask) | unknown;
    }

    /// True if an operation in direction `d` should wait for the next edge without trying:
    /// a tracked stream socket last seen drained in that direction. (Unregistered, it may be
    /// drained too, after a short read: its wait then registers it, and the registration
    /// reports what is ready.)
    bool must_wait(direction d) const noexcept {
        return (state_ & (stream_socket | ready_bits(d))) == stream_socket;
    }
    /// True for a UNIX stream (message_stream): a short read() of it proves nothing.
    bool stops_at_messages() const noexcept { return state_ & message_stream; }

    /// An operation in direction `d` transferred less than it asked for, or met EAGAIN: the
    /// direction is drained until its next edge (final states stay: they are never cleared).
    void note_drained(direction d) noexcept {
        state_ &= ~(d == direction::read ? std::uint32_t{EPOLLIN} : std::uint32_t{EPOLLOUT});
    }
    /// True if a wait for readiness in direction `d` can end at once: the loop has seen the
    /// descriptor ready and no operation has drained it since. False before the descriptor
    /// is registered: nothing is known then, and the registration reports the state.
    bool known_ready(direction d) const noexcept {
        return (state_ & registered) && (state_ & ready_bits(d));
    }

    /// True if the descriptor is registered and was last seen drained in direction `d`, with
    /// no edge since: an operation whose own result proved the drain (a short batch of
    /// datagrams) may then wait without trying, whatever kind of descriptor it is.
    bool known_drained(direction d) const noexcept {
        return (state_ & registered) && !(state_ & ready_bits(d));
    }

    /// Asks the kernel whether the descriptor is ready in direction `d` now, without waiting
    /// (poll). A failure of poll itself counts as ready: the caller's next syscall tells.
    bool ready_now(direction d) const noexcept {
        const auto events = d == direction::read ? POLLIN | POLLPRI | POLLRDHUP : POLLOUT;
        pollfd p{fd_, static_cast<short>(events), 0};
        return counted(::poll(&p, 1, 0)) != 0;
    }
    /// The kernel says the descriptor is not ready in direction `d` (see ready_now): what the
    /// loop recorded for it is stale, so the next wait is for the next edge.
    void forget_readiness(direction d) noexcept { state_ &= ~ready_bits(d); }

    /// Records what an epoll event reports ready: its bits, kept as they are.
    void note_events(std::uint32_t events) noexcept { state_ |= events; }

    /// Registers `w` to be resumed when the descriptor is ready in direction `d`. Returns
    /// false if it cannot, with the reason in `w.ec`. Inline: an operation on a registered
    /// descriptor takes this path every time it waits (and success leaves w.ec alone).
    [[gnu::always_inline]] bool wait(direction d, waiter& w) noexcept {
        loop_core* l = loop();
        // (Registered implies a loop: unregistered, with no loop here, it reports no_reactor.)
        if (l != loop_core::current() || !(state_ & registered)) [[unlikely]]
            return register_and_wait(d, w);
        waiter*& entry = l->descriptors[fd_].waiting(d);
        if (entry) [[unlikely]] {
            w.ec = error::already_waiting;
            return false;
        }
        entry = &w;
        w.loop = l;
        w.fd = fd_;
        w.dir = d;
        w.hold(waiter::in_slot);
        return true;
    }

    /// False when the descriptor belongs to a loop that another thread runs, or this thread
    /// runs another loop: then it must not be touched here (see leave_reactor). Its first
    /// use on a reactor's thread claims it for that reactor.
    [[gnu::always_inline]] bool usable_here() noexcept {
        if (loop() == loop_core::current()) [[likely]] // one compare on the hot path
            return true;
        return claim_or_refuse();
    }

    /// Releases the descriptor from the reactor that used it (and unregisters it, if it
    /// waited there), so that another reactor can use it: `conn.leave_reactor();` before
    /// handing `conn` to a task of another reactor. Call it on the reactor's thread, with no
    /// operation of this descriptor waiting (else conet::error::already_waiting); a descriptor
    /// that no reactor used needs no call. Throws std::system_error.
    void leave_reactor() {
        std::error_code ec;
        leave_reactor(ec);
        if (ec) throw_error(ec, "leave_reactor");
    }
    void leave_reactor(std::error_code& ec) noexcept {
        ec.clear();
        loop_core* const l = loop();
        if (!l) return;
        if (!usable_here()) { // its loop's records are that loop's thread's
            ec = error::wrong_reactor;
            return;
        }
        auto& s = l->descriptors[fd_];
        if (s.reader || s.writer) {
            ec = error::already_waiting;
            return;
        }
        if (state_ & registered) counted(::epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, fd_, nullptr));
        s.owner = nullptr;
        ++s.generation; // an event fetched before this is stale
        set_loop(nullptr);
        state_ = (state_ & traits_mask) | unknown;
    }

    /// Forgets the loop without touching it (the reactor is being destroyed; its epoll
    /// instance, and with it the registration, goes away). The descriptor stays open, and
    /// nothing is known of its readiness.
    void detach_from_loop() noexcept {
        set_loop(nullptr);
        state_ = (state_ & traits_mask) | unknown;
    }

private:
    // Readiness is kept as the epoll bits seen (see the class comment): EPOLLIN and EPOLLOUT
    // are cleared when a direction drains; EPOLLRDHUP, EPOLLHUP and EPOLLERR never are, which
    // is what makes them final. EPOLLPRI (urgent data: a read stops short at its mark, with
    // more queued behind it) is never cleared either, so such a socket tries first for good.
    // Not registered anywhere, nothing is known: try first.
    static constexpr std::uint32_t unknown = EPOLLIN | EPOLLOUT;
    static constexpr std::uint32_t traits_mask = stream_socket | conet_made | message_stream;
    // In its loop's epoll set (a wait registered it). Claimed by a loop (loop_ set) but not
    // registered, it is in the loop's table of descriptors only, so that the loop's
    // destruction releases it, and its readiness is not known: try first.
    static constexpr std::uint32_t registered = 1u << 27;

    static constexpr std::uint32_t ready_bits(direction d) noexcept {
        return d == direction::read
                   ? std::uint32_t{EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR}
                   : std::uint32_t{EPOLLOUT | EPOLLHUP | EPOLLERR};
    }

    // usable_here() off the hot path. Unclaimed, on a reactor's thread: claims it for that
    // reactor, so that another reactor's first use, which may meet this one, is refused
    // before it reads or writes the descriptor's state (one of them wins the
    // compare-exchange). On a thread without a reactor: usable if unclaimed or if its loop
    // runs nowhere, and claimed by nothing.
    [[gnu::noinline]] bool claim_or_refuse() noexcept {
        loop_core* const here = loop_core::current();
        loop_core* l = loop();
        if (l) return !here && l->usable_here();
        if (!here || fd_ < 0) return true;
        auto* s = here->descriptors.grow_to(fd_);
        if (!s) return true; // no memory for its record: used unclaimed (a wait reports it)
        if (!loop_.compare_exchange_strong(l, here, memory_order_acq_rel)) return false;
        s->owner = this;
        return true;
    }

    // Closing or moving touches the record of the descriptor of `l`, its loop, which belongs
    // to the thread that runs that loop: from another thread a programming error that cannot
    // be reported (close(), moves and destructors do not fail), so it stops the program with
    // a message instead of racing. (Claimed already: this claims nothing. A loop being
    // destroyed closes and moves its frames' sockets on the thread that destroys it, which
    // may run another loop.)
    void require_owner_thread(loop_core& l, const char* what) noexcept {
        if (!l.closing && !usable_here()) [[unlikely]]
            used_on_wrong_thread(what);
    }
    [[noreturn, gnu::noinline, gnu::cold]] static void
    used_on_wrong_thread(const char* what) noexcept {
        std::fprintf(stderr,
                     "conet: a socket that belongs to a reactor running on another thread was %s "
                     "(call leave_reactor() on its own thread before handing it over)\n",
                     what);
        std::terminate();
    }

    // After a move: the slot now names this object as the owner.
    void adopt_slot() noexcept {
        if (loop_core* l = loop()) {
            require_owner_thread(*l, "moved");
            l->descriptors[fd_].owner = this;
        }
    }

    // wait() when the descriptor is not registered with the running loop (yet).
    [[gnu::noinline]] bool register_and_wait(direction d, waiter& w) noexcept {
        loop_core* current = loop_core::current();
        if (!current)
            w.ec = error::no_reactor;
        else if (fd_ < 0)
            w.ec = errno_code(EBADF);
        else if (loop() && loop() != current)
            w.ec = error::wrong_reactor;
        else if (auto ec = add_to(*current))
            w.ec = ec;
        else
            return wait(d, w);
        return false;
    }

    std::error_code add_to(loop_core& l) noexcept {
        auto* s = l.descriptors.grow_to(fd_);
        if (!s) return std::make_error_code(std::errc::not_enough_memory);
        ++s->generation;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
        ev.data.u64 = (std::uint64_t{s->generation} << 32) | static_cast<std::uint32_t>(fd_);
        if (counted(::epoll_ctl(l.epoll_fd, EPOLL_CTL_ADD, fd_, &ev)) < 0) {
            // The file is still in the set under this number: closed here without
            // EPOLL_CTL_DEL (conet_made) while a duplicate kept it open, and back now. MOD
            // takes the registration over, with this generation and the current state.
            if (errno != EEXIST || counted(::epoll_ctl(l.epoll_fd, EPOLL_CTL_MOD, fd_, &ev)) < 0)
                return errno_code(errno);
        }
        // The claim, if its first use did not claim it already: another reactor's first use
        // may meet this one (a misuse, refused). The loser takes its registration back, and
        // its records of the descriptor stay unused.
        loop_core* none = nullptr;
        if (!loop_.compare_exchange_strong(none, &l, memory_order_acq_rel) && none != &l)
            [[unlikely]] {
            counted(::epoll_ctl(l.epoll_fd, EPOLL_CTL_DEL, fd_, nullptr));
            return error::wrong_reactor;
        }
        s->owner = this;
        // The registration reports what is ready now as a first edge: until it comes,
        // nothing is known ready (final states, once seen, stay).
        state_ = (state_ & ~unknown) | registered;
        return {};
    }

    // Leaves the loop: waiters resume with error::closed, the slot is freed for reuse.
    void release() noexcept {
        loop_core* const l = loop();
        if ((state_ & (registered | conet_made)) == registered)
            counted(::epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, fd_, nullptr));
        auto& s = l->descriptors[fd_];
        for (waiter* w : {s.reader, s.writer})
            if (w) w->abort(error::closed);
        s.owner = nullptr;
        ++s.generation;
        set_loop(nullptr);
    }

    // The loop it is registered with. Atomic (relaxed: a plain load on x86) because another
    // thread may check it while its reactor registers it: an operation tried on the wrong
    // reactor reads it to refuse (usable_here), a race it must not be (design invariant 8).
    loop_core* loop() const noexcept { return loop_.load(memory_order_relaxed); }
    void set_loop(loop_core* l) noexcept { loop_.store(l, memory_order_release); }
    loop_core* take_loop() noexcept {
        loop_core* const l = loop();
        set_loop(nullptr);
        return l;
    }

    int fd_ = -1;
    std::uint32_t state_ = unknown; // readiness (epoll bits) and traits
    atomic<loop_core*> loop_{nullptr};
};

} // namespace conet::detail

// floor_echo - two echo servers that put a price on the coroutine model itself, for bench/run's
// table of user-space instructions per round trip. They are measuring sticks, not a library:
// one listener, no timeouts, no close while a coroutine waits, nothing that fails is reported.
//
//   floor_echo PORT            "bare": a coroutine per client and an epoll loop that resumes
//                              it, and nothing else
//   floor_echo PORT --guarded  the same coroutines carrying, in their plainest form, what
//                              every conet operation checks and keeps: the task's
//                              cancellation (looked at before each try, watched during each
//                              wait), the budget (invariant 9, with the deferred try), the
//                              reactor_stats counters, the trace switch, the slot's
//                              generation (stale events), the second-waiter check, an
//                              error_code result, a receive buffer borrowed from a pool
//                              only once data is there, and the loop's try before it resumes
//                              a waiter (an operation's result is final, where the bare
//                              echo's receive may come back as "try again")
//
// Both track readiness as conet does (docs/design.md, "Readiness"): a short read drains the
// socket, so the next receive waits for the edge without trying. They make conet's system
// calls, so that what differs is user-space work only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <coroutine>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <system_error>

namespace {

constexpr std::size_t buffer_size = 16 * 1024;
constexpr std::size_t max_descriptors = 65536;
constexpr std::uint32_t budget = 128; // conet's default

// --- what both servers share ----------------------------------------------------------

struct waiter; // an operation suspended on a descriptor

// Doubly linked and intrusive, like conet's ready queues.
struct queue_node {
    queue_node* prev = nullptr;
    queue_node* next = nullptr;
};
struct queue {
    queue_node head;
    queue() { head.prev = head.next = &head; }
    bool empty() const { return head.next == &head; }
    void push_back(queue_node& n) {
        n.prev = head.prev;
        n.next = &head;
        head.prev->next = &n;
        head.prev = &n;
    }
    queue_node* pop_front() {
        if (empty()) return nullptr;
        queue_node* n = head.next;
        head.next = n->next;
        n->next->prev = &head;
        n->prev = n->next = nullptr;
        return n;
    }
};

// Per descriptor number: who waits (a waiter guarded, a coroutine's address bare), what epoll
// last reported (EPOLLIN / EPOLLOUT cleared by a short transfer), and a generation that tells
// a stale event from a live one.
struct slot {
    void* reader = nullptr;
    void* writer = nullptr;
    std::uint32_t ready = 0;
    std::uint32_t generation = 0;
};

struct cancel_state {
    bool requested = false;    // never set here: the checks are priced, not the response
    waiter* watched = nullptr; // the operation the task waits in
};

struct stats {
    std::uint64_t at_once = 0, after_wait = 0, epoll_waits = 0, syscalls = 0;
};

// Thread-local, as conet's are: the fast path's checks are then plain loads.
thread_local std::uint32_t budget_left = budget;
thread_local stats counters;

struct loop {
    int epoll_fd = -1;
    slot* slots = nullptr;
    queue retry; // tries the budget deferred to the next turn
    bool trace = false;
};
loop* the_loop = nullptr;

// std::error_code{} made once: its default constructor calls std::system_category() out of
// line, at every operation (conet does the same).
const std::error_code no_error{};

struct waiter : queue_node {
    bool (*attempt)(waiter&) noexcept = nullptr; // the loop's try once the socket is ready
    std::coroutine_handle<> handle;
    std::error_code ec = no_error;
    cancel_state* chain = nullptr;
    slot* where = nullptr;
    bool writes = false;
    bool deferred = false; // on the loop's retry queue

    void*& entry() noexcept { return writes ? where->writer : where->reader; }
    void unlink() noexcept {
        prev->next = next;
        next->prev = prev;
        prev = next = nullptr;
    }
};

[[gnu::noinline, gnu::cold]] void trace_line(const char* what) {
    std::fprintf(stderr, "floor_echo: %s\n", what);
}

template <class R>
R counted(R r) {
    ++counters.syscalls;
    return r;
}

// A coroutine that starts at once and frees itself when it ends. Guarded, its promise hands
// each awaited operation the task's cancellation state, as conet's task does.
template <bool Guarded>
struct detached {
    struct promise_type {
        cancel_state cancel;
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
        // The operation stays where the co_await expression made it; this refers to it.
        template <class Op>
        struct by_reference {
            Op* op;
            bool await_ready() noexcept { return op->await_ready(); }
            auto await_suspend(std::coroutine_handle<> h) noexcept { return op->await_suspend(h); }
            decltype(auto) await_resume() noexcept { return op->await_resume(); }
        };
        template <class Op>
        by_reference<Op> await_transform(Op&& op) noexcept {
            if constexpr (Guarded) op.chain = &cancel;
            return {&op};
        }
    };
};

// --- the bare server ------------------------------------------------------------------

// Receives into the caller's buffer. The loop resumes the coroutine when the socket reports
// readable, and the receive is tried then: a spurious wake-up comes back as "again" (-2).
struct bare_recv {
    slot& s;
    int fd;
    char* buf;
    long n = -2;

    long try_read() noexcept {
        const long r = ::recv(fd, buf, buffer_size, 0);
        if (r < 0 && errno == EAGAIN) {
            s.ready &= ~std::uint32_t{EPOLLIN};
            return -2;
        }
        if (r >= 0 && static_cast<std::size_t>(r) < buffer_size) s.ready &= ~std::uint32_t{EPOLLIN};
        return r;
    }
    bool await_ready() noexcept {
        if (!(s.ready & EPOLLIN)) return false;
        n = try_read();
        return n != -2;
    }
    void await_suspend(std::coroutine_handle<> h) noexcept { s.reader = h.address(); }
    long await_resume() noexcept { return n != -2 ? n : try_read(); }
};

struct bare_writable {
    slot& s;
    bool await_ready() noexcept { return s.ready & EPOLLOUT; }
    void await_suspend(std::coroutine_handle<> h) noexcept { s.writer = h.address(); }
    void await_resume() noexcept {}
};

detached<false> bare_echo(int fd, slot& s) {
    char buf[buffer_size];
    for (bool open = true; open;) {
        const long n = co_await bare_recv{s, fd, buf};
        if (n == -2) continue; // woken with nothing to read
        if (n <= 0) break;
        for (std::size_t done = 0; open && done < static_cast<std::size_t>(n);) {
            co_await bare_writable{s};
            const std::size_t left = static_cast<std::size_t>(n) - done;
            const long w = ::send(fd, buf + done, left, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) open = false; // the client is gone
            if (w < 0 || static_cast<std::size_t>(w) < left) s.ready &= ~std::uint32_t{EPOLLOUT};
            if (w > 0) done += static_cast<std::size_t>(w);
        }
    }
    ++s.generation;
    s.reader = s.writer = nullptr;
    ::close(fd);
}

// In the bare server a slot's waiter is a coroutine handle's address.
void bare_resume(void*& entry) {
    auto h = std::coroutine_handle<>::from_address(entry);
    entry = nullptr;
    h.resume();
}

// --- the guarded server ---------------------------------------------------------------

// Receive buffers lent per message, given back when the echo has been sent.
struct buffer_pool {
    struct free_block {
        free_block* next;
    };
    free_block* free = nullptr;
    char* lend() {
        if (free_block* f = free) {
            free = f->next;
            return reinterpret_cast<char*>(f);
        }
        return static_cast<char*>(::operator new(buffer_size));
    }
    void give_back(char* block) noexcept {
        free = ::new (static_cast<void*>(block)) free_block{free};
    }
};

struct pooled_buffer {
    buffer_pool* pool = nullptr;
    char* data = nullptr;
    std::size_t size = 0;
    pooled_buffer() = default;
    pooled_buffer(pooled_buffer&& o) noexcept : pool(o.pool), data(o.data), size(o.size) {
        o.data = nullptr;
    }
    pooled_buffer& operator=(pooled_buffer&&) = delete;
    ~pooled_buffer() {
        if (data) pool->give_back(data);
    }
};

// What every guarded operation does around its try (Op provides try_once, and must_wait: true
// when the socket is known drained in its direction).
template <class Op>
struct guarded_op : waiter {
    std::error_code* out;

    guarded_op(slot& s, bool for_write, std::error_code& e) noexcept : out(&e) {
        where = &s;
        writes = for_write;
        attempt = [](waiter& w) noexcept { return static_cast<Op&>(w).try_once(); };
    }
    guarded_op(const guarded_op&) = delete;
    ~guarded_op() { // (a frame destroyed while its try is deferred: nothing does that here)
        if (deferred) [[unlikely]]
            unlink();
    }
    Op& self() noexcept { return static_cast<Op&>(*this); }

    bool await_ready() noexcept {
        if (chain && chain->requested) {
            ec = std::make_error_code(std::errc::operation_canceled);
            return true;
        }
        if (self().must_wait()) return false;
        if (budget_left == 0) {
            deferred = true;
            return false;
        }
        --budget_left;
        if (!self().try_once()) return false;
        ++counters.at_once;
        return true;
    }
    [[gnu::noinline]] bool await_suspend(std::coroutine_handle<> h) noexcept {
        handle = h;
        if (deferred) {
            the_loop->retry.push_back(*this);
        } else {
            void*& entry = this->entry();
            if (entry) {
                ec = std::make_error_code(std::errc::device_or_resource_busy);
                return false;
            }
            entry = this;
        }
        if (the_loop->trace) [[unlikely]]
            trace_line("a coroutine waits");
        if (chain) chain->watched = this;
        return true;
    }
    void report() noexcept { *out = ec; }
};

struct pooled_recv : guarded_op<pooled_recv> {
    int fd;
    buffer_pool* pool;
    pooled_buffer buf;
    pooled_recv(slot& s, int f, buffer_pool& p, std::error_code& e) noexcept
        : guarded_op(s, false, e), fd(f), pool(&p) {}

    bool must_wait() const noexcept { return !(where->ready & EPOLLIN); }
    bool try_once() noexcept {
        if (!buf.data) {
            buf.pool = pool;
            buf.data = pool->lend();
        }
        long n;
        do
            n = counted(::read(fd, buf.data, buffer_size));
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            pool->give_back(buf.data);
            buf.data = nullptr;
            if (n == 0) return true;
            if (errno != EAGAIN) {
                ec = std::error_code(errno, std::generic_category());
                return true;
            }
            where->ready &= ~std::uint32_t{EPOLLIN};
            return false;
        }
        buf.size = static_cast<std::size_t>(n);
        if (buf.size < buffer_size) where->ready &= ~std::uint32_t{EPOLLIN};
        return true;
    }
    pooled_buffer await_resume() noexcept {
        report();
        if (ec) return {};
        return static_cast<pooled_buffer&&>(buf);
    }
};

struct send_all : guarded_op<send_all> {
    int fd;
    const char* data;
    std::size_t size, sent = 0;
    send_all(slot& s, int f, const char* d, std::size_t n, std::error_code& e) noexcept
        : guarded_op(s, true, e), fd(f), data(d), size(n) {}

    bool must_wait() const noexcept { return !(where->ready & EPOLLOUT); }
    bool try_once() noexcept {
        do {
            const long n = counted(::send(fd, data + sent, size - sent, MSG_NOSIGNAL));
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) {
                    where->ready &= ~std::uint32_t{EPOLLOUT};
                    return false;
                }
                ec = std::error_code(errno, std::generic_category());
                return true;
            }
            sent += static_cast<std::size_t>(n);
            if (sent < size) where->ready &= ~std::uint32_t{EPOLLOUT}; // the buffer is full
        } while (sent < size && (where->ready & EPOLLOUT));
        return sent == size;
    }
    void await_resume() noexcept { report(); }
};

detached<true> guarded_echo(int fd, slot& s, buffer_pool& pool) {
    std::error_code ec = no_error;
    for (;;) {
        pooled_buffer data = co_await pooled_recv(s, fd, pool, ec);
        if (ec || data.size == 0) break;
        co_await send_all(s, fd, data.data, data.size, ec);
        if (ec) break;
    }
    ++s.generation;
    s.reader = s.writer = nullptr;
    ::close(fd);
}

// The end of a wait whose try finished it, as conet's loop does it: count, leave the chain's
// watch, then resume with a fresh budget. Inline in both callers, as the same steps were
// before they were shared (GCC left alone made the round trip 2 instructions dearer).
[[gnu::always_inline]] inline void resume_finished(waiter& w) {
    ++counters.after_wait;
    if (the_loop->trace) [[unlikely]]
        trace_line("a coroutine resumes");
    if (w.chain && w.chain->watched == &w) w.chain->watched = nullptr;
    budget_left = budget;
    w.handle.resume();
}

// A waiter an event reported ready, tried first: a spurious wake-up goes on waiting.
void guarded_resume(void*& entry) {
    waiter& w = *static_cast<waiter*>(entry);
    if (!w.attempt(w)) return;
    entry = nullptr;
    resume_finished(w);
}

// The tries the budget deferred: each gets its turn once the others have had theirs.
void guarded_retries() {
    queue due;
    while (queue_node* n = the_loop->retry.pop_front())
        due.push_back(*n);
    while (queue_node* n = due.pop_front()) {
        auto& w = static_cast<waiter&>(*n);
        w.deferred = false;
        if (w.attempt(w))
            resume_finished(w);
        else
            w.entry() = &w; // met EAGAIN: an ordinary wait now
    }
}

// Resumes whoever waits in `entry`, the way each server does.
template <bool Guarded>
void resume_waiter(void*& entry) {
    if constexpr (Guarded)
        guarded_resume(entry);
    else
        bare_resume(entry);
}

// --- the loop -------------------------------------------------------------------------

int open_listener(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
        ::listen(fd, SOMAXCONN) < 0) {
        std::perror("floor_echo: bind");
        std::exit(1);
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("Listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    std::fflush(stdout);
    return fd;
}

template <bool Guarded>
[[noreturn]] void serve(int listener) {
    loop l;
    the_loop = &l;
    l.epoll_fd = ::epoll_create1(0);
    l.slots = new slot[max_descriptors];
    l.trace = std::getenv("FLOOR_TRACE") != nullptr;
    buffer_pool pool;
    constexpr std::uint64_t listener_token = ~std::uint64_t{0};
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.u64 = listener_token;
    ::epoll_ctl(l.epoll_fd, EPOLL_CTL_ADD, listener, &lev);
    epoll_event events[256];
    for (;;) {
        if constexpr (Guarded) {
            if (!l.retry.empty()) [[unlikely]]
                guarded_retries();
        }
        int n;
        do {
            // Deferred tries wait for no event: then only poll.
            n = ::epoll_wait(l.epoll_fd, events, 256, Guarded && !l.retry.empty() ? 0 : -1);
            if constexpr (Guarded) {
                ++counters.syscalls;
                ++counters.epoll_waits;
            }
        } while (n < 0 && errno == EINTR);
        for (int i = 0; i < n; ++i) {
            const epoll_event& ev = events[i];
            if (ev.data.u64 == listener_token) {
                for (int c; (c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
                    if (static_cast<std::size_t>(c) >= max_descriptors) {
                        ::close(c);
                        continue;
                    }
                    slot& s = l.slots[c];
                    s.ready = EPOLLIN | EPOLLOUT;
                    epoll_event cev{};
                    cev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
                    cev.data.u64 = static_cast<std::uint64_t>(c) |
                                   (static_cast<std::uint64_t>(s.generation) << 32);
                    ::epoll_ctl(l.epoll_fd, EPOLL_CTL_ADD, c, &cev);
                    if constexpr (Guarded)
                        guarded_echo(c, s, pool);
                    else
                        bare_echo(c, s);
                }
                continue;
            }
            const auto fd = static_cast<std::size_t>(ev.data.u64 & 0xffffffffu);
            slot& s = l.slots[fd];
            if constexpr (Guarded) {
                if (s.generation != static_cast<std::uint32_t>(ev.data.u64 >> 32)) continue;
                if (l.trace) [[unlikely]]
                    trace_line("an event");
            }
            s.ready |= ev.events;
            const bool readable = ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
            const bool writable = ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR);
            const bool for_writer = writable && s.writer;
            if (readable && s.reader) {
                resume_waiter<Guarded>(s.reader);
                // The reader may have closed the socket: its slot then has a new generation.
                if (s.generation != static_cast<std::uint32_t>(ev.data.u64 >> 32)) continue;
            }
            if (for_writer && s.writer) resume_waiter<Guarded>(s.writer);
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    const int port = argc > 1 ? std::atoi(argv[1]) : 0;
    bool guarded = false;
    for (int i = 2; i < argc; ++i)
        guarded = guarded || std::strcmp(argv[i], "--guarded") == 0;
    const int listener = open_listener(port);
    if (guarded) serve<true>(listener);
    serve<false>(listener);
}

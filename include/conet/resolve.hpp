// conet/resolve.hpp - name lookups that never block the reactor, and connecting by name.
//
//     auto found = co_await conet::async_resolve("localhost", "http");
//     auto conn = co_await conet::connect("localhost", "8888");
//
// getaddrinfo has no non-blocking form (it may read files, ask a DNS server and wait for
// its answer), so async_resolve runs it on a helper thread of its own and hands the result
// back to the reactor with reactor::post, the reactor's one thread-safe entry; meanwhile the
// reactor runs everything else. Cost: one thread created per lookup (tens of microseconds,
// next to a lookup's milliseconds), no pool to keep alive, nothing running between lookups.
// A lookup allocates (its task frame, the block it shares with the helper, the result):
// lookups are not on the hot path that design invariant 2 keeps free of allocations.
//
// Cancelling a lookup (a task handle, with_timeout, when_any) ends the wait at once with
// operation_canceled. The helper cannot be interrupted inside getaddrinfo: it finishes on its
// own later and its result is dropped. It shares only a reference-counted block with the
// awaiting coroutine, so it never touches a frame, a reactor or a socket that has gone.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include <coroutine>
#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "address.hpp"
#include "cancel.hpp"
#include "detail/atomic.hpp"
#include "detail/loop_core.hpp"
#include "detail/posted_queue.hpp"
#include "detail/ready_queue.hpp"
#include "error.hpp"
#include "reactor.hpp"
#include "task.hpp"
#include "tcp.hpp"

namespace conet {

namespace detail {

/// Helper threads of async_resolve still running (finished or not, their results wanted or
/// not). Tests wait for it to reach zero, so that no helper outlives the test that started it.
inline atomic<int> resolve_helpers_running{0};

/// For tests only: milliseconds each helper waits before it calls getaddrinfo, so that a test
/// can cancel a lookup while it runs. Zero in any real program.
inline atomic<int> resolve_test_delay_ms{0};

template <class Tag>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] resolve_awaiter_t;

// (The request and the awaiter are templates only so that a file that never looks a name up
// does not compile them; Tag is always void: resolve_request_t<>, resolve_awaiter_t<>.)

/// What a lookup's helper thread and its awaiting coroutine share. Three references: the
/// awaiter's, the helper's and the posted node's (the reactor's, once posted), so that none of
/// them frees the block while another may still use it.
///
/// `phase` decides who may touch the reactor. The helper posts only if it moves `running` to
/// `posting` first; the awaiter, when it gives up (cancelled, or its frame destroyed), moves
/// `running` to `abandoned`, and if it finds `posting` instead, waits until `posted`, so
/// that the reactor cannot be destroyed while the helper is inside post(). The posted node
/// waits for `posted` too before it looks at anything, for the same reason.
template <class Tag = void>
class resolve_request_t final : public posted_node {
public:
    enum phase_value : int { running, posting, posted, abandoned };

    resolve_request_t(std::string h, std::string s, resolve_family f, reactor& r)
        : posted_node(&resolve_request_t::on_posted), host(std::move(h)), service(std::move(s)),
          family(f), target(&r) {}

    // Set by the helper before it posts, read on the reactor's thread after.
    std::string host;
    std::string service;
    resolve_family family;
    std::vector<endpoint> result;
    std::error_code ec;

    reactor* target;
    atomic<int> phase{running};
    atomic<int> refs{3};
    resolve_awaiter_t<Tag>* waiting = nullptr; // reactor thread only: whom to hand it to

    void release() noexcept {
        if (refs.fetch_sub(1, memory_order_acq_rel) == 1) delete this;
    }

    /// Waits (briefly: the helper is between two stores around one post()) until `posted`.
    void wait_posted() const noexcept {
        while (phase.load(memory_order_acquire) != posted)
            ::sched_yield();
    }

    /// Reactor thread: the awaiter no longer wants the result. After it returns, the helper
    /// no longer touches the reactor.
    void abandon() noexcept {
        waiting = nullptr;
        int expected = running;
        if (!phase.compare_exchange_strong(expected, abandoned, memory_order_acq_rel))
            wait_posted(); // the result is on its way: the posted node drops it
        release();
    }

    /// The helper thread's whole life.
    static void* helper(void* arg) noexcept {
        auto* self = static_cast<resolve_request_t*>(arg);
        if (const int ms = resolve_test_delay_ms.load(memory_order_relaxed)) {
            const timespec pause{ms / 1000, (ms % 1000) * 1000000L};
            ::nanosleep(&pause, nullptr);
        }
        try {
            const std::uint16_t port = port_from_text(self->service, "tcp", self->ec);
            if (!self->ec) self->result = lookup_host(self->host, port, self->family, self->ec);
        } catch (const std::bad_alloc&) {
            self->ec = std::make_error_code(std::errc::not_enough_memory);
        }
        int expected = running;
        if (self->phase.compare_exchange_strong(expected, posting, memory_order_acq_rel)) {
            self->target->post(*self); // the node's reference goes with it
            self->phase.store(posted, memory_order_release);
        } else {
            self->release(); // abandoned: nobody will run the node
        }
        self->release();
        resolve_helpers_running.fetch_sub(1, memory_order_release);
        return nullptr;
    }

private:
    ~resolve_request_t() = default;
    static void on_posted(posted_node& n, bool run);
};

/// Awaits one lookup on a helper thread; see the top of this file.
template <class Tag = void>
class resolve_awaiter_t {
    using resolve_request = resolve_request_t<Tag>;

public:
    resolve_awaiter_t(std::string host, std::string service, resolve_family family) noexcept
        : host_(std::move(host)), service_(std::move(service)), family_(family) {}
    resolve_awaiter_t(const resolve_awaiter_t&) = delete;
    resolve_awaiter_t& operator=(const resolve_awaiter_t&) = delete;
    ~resolve_awaiter_t() {
        on_cancel_.unregister();
        if (request_) request_->abandon(); // destroyed while it waits (its frame went)
    }

    bool await_ready() const noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        const cancel_token token = get_cancel_token(h);
        if (token.cancel_requested()) {
            ec_ = std::make_error_code(std::errc::operation_canceled);
            return false;
        }
        reactor* r = reactor::current();
        loop_ = loop_core::current();
        if (!r || !loop_) {
            ec_ = error::no_reactor;
            return false;
        }
        handle_ = h;
        auto* request = new resolve_request(std::move(host_), std::move(service_), family_, *r);
        if (const std::error_code failed = start(*request)) {
            request->refs.store(1, memory_order_relaxed); // no helper, no node: ours only
            request->release();
            ec_ = failed;
            return false;
        }
        request->waiting = this;
        request_ = request;
        if constexpr (std::is_base_of_v<promise_base, Promise>) h.promise().chain().add(on_cancel_);
        loop_->hooks.push_back(hook_); // the reactor may go first: see loop_gone
        return true;
    }

    /// The endpoints found; error() says whether the lookup failed.
    std::vector<endpoint> await_resume() noexcept {
        on_cancel_.unregister();
        return std::move(result_);
    }

    const std::error_code& error() const noexcept { return ec_; }

private:
    friend resolve_request;

    // Ends the wait when the awaiting chain is cancelled. (A node of its own, not a
    // std::optional<cancel_callback>: that optional would be compiled wherever this header is
    // included, at a cost larger than the awaiter's.)
    struct cancel_link : cancel_node {
        explicit cancel_link(resolve_awaiter_t* s) noexcept
            : cancel_node(&cancel_link::fire), self(s) {}
        static void fire(cancel_node& n) noexcept {
            static_cast<cancel_link&>(n).self->cancelled();
        }
        resolve_awaiter_t* self;
    };

    // Starts the helper with every signal blocked, so that it never takes a signal the
    // program waits for with a signal_set (a thread inherits its creator's mask).
    static std::error_code start(resolve_request& request) noexcept {
        sigset_t all;
        sigset_t previous;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &previous);
        pthread_attr_t attr;
        ::pthread_attr_init(&attr);
        ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        resolve_helpers_running.fetch_add(1, memory_order_relaxed);
        pthread_t thread;
        const int rc = ::pthread_create(&thread, &attr, &resolve_request::helper, &request);
        ::pthread_attr_destroy(&attr);
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        if (rc == 0) return {};
        resolve_helpers_running.fetch_sub(1, memory_order_relaxed);
        return errno_code(rc);
    }

    // Reactor thread, from the posted node: the helper's answer.
    void complete(resolve_request& request) noexcept {
        hook_.unlink();
        result_ = std::move(request.result);
        ec_ = request.ec;
        request_ = nullptr;
        request.release(); // the awaiter's reference
        wake_.handle = handle_;
        loop_->ready.push_back(wake_);
    }

    // Reactor thread, from the cancellation chain: stop waiting now, drop the answer.
    void cancelled() noexcept {
        if (!request_) return; // already answered, about to resume
        hook_.unlink();
        std::exchange(request_, nullptr)->abandon();
        ec_ = std::make_error_code(std::errc::operation_canceled);
        // Urgently, like every cancelled wait (see cancel.hpp), and through the loop kept
        // from await_suspend: a cancellation requested between two runs resumes at the next.
        wake_.unlink();
        wake_.handle = handle_;
        loop_->urgent.push_back(wake_);
    }

    std::string host_;
    std::string service_;
    resolve_family family_;
    resolve_request* request_ = nullptr;
    std::coroutine_handle<> handle_;
    loop_core* loop_ = nullptr;
    ready_node wake_; // queues the resumption; unlinks itself if the frame goes first
    std::error_code ec_;
    std::vector<endpoint> result_;
    cancel_link on_cancel_{this};

    // The reactor is being destroyed while this frame (owned elsewhere) still waits: let the
    // helper drop its answer, and never touch the loop again.
    struct loop_gone_hook : loop_hook {
        resolve_awaiter_t* self;
    };
    static void loop_gone(loop_hook& h) noexcept {
        auto& self = *static_cast<loop_gone_hook&>(h).self;
        if (self.request_) std::exchange(self.request_, nullptr)->abandon();
    }
    loop_gone_hook hook_{{{}, &resolve_awaiter_t::loop_gone}, this};
};

template <class Tag>
void resolve_request_t<Tag>::on_posted(posted_node& n, bool run) {
    auto& self = static_cast<resolve_request_t&>(n);
    self.wait_posted(); // the helper may still be inside post(): let it leave the reactor
    if (run && self.waiting) self.waiting->complete(self);
    self.release(); // the node's reference
}

/// The lookup as a task, which owns the awaiter (so with_timeout and when_any can take it).
/// (This and the coroutines below are templates only so that a program that never calls them
/// does not compile them: a header-only library's includers pay for every inline coroutine.)
template <class Tag = void>
task<std::vector<endpoint>> async_resolve_task(std::string host, std::string service,
                                               resolve_family family, std::error_code* out) {
    resolve_awaiter_t<Tag> lookup(host, service, family);
    std::vector<endpoint> found = co_await lookup;
    if (out)
        *out = lookup.error();
    else if (lookup.error())
        throw_error(lookup.error(), resolve_what(host, service, lookup.error()));
    co_return found;
}

} // namespace detail

/// Looks `host` up like resolve(host, service, family), on a helper thread, without blocking
/// the reactor: `auto found = co_await conet::async_resolve("localhost", "http");`. Throws
/// std::system_error like resolve ("resolve HOST: reason"); operation_canceled if its task is
/// cancelled meanwhile, at once (the helper's late answer is dropped). `service` is a port
/// number as text ("8888") or a service name ("http").
template <class = void>
task<std::vector<endpoint>> async_resolve(std::string host, std::string service,
                                          resolve_family family = resolve_family::any) {
    return detail::async_resolve_task(std::move(host), std::move(service), family, nullptr);
}

/// Non-throwing form: on failure (cancellation included) sets `ec`, yields no endpoints.
template <class = void>
task<std::vector<endpoint>> async_resolve(std::string host, std::string service,
                                          resolve_family family, std::error_code& ec) {
    return detail::async_resolve_task(std::move(host), std::move(service), family, &ec);
}

namespace detail {

template <class = void>
task<tcp_stream> connect_by_name(std::string host, std::string service, resolve_family family,
                                 std::error_code* out) {
    std::error_code ec;
    const auto addresses = co_await async_resolve(host, service, family, ec);
    if (!ec && addresses.empty()) ec = std::error_code(EAI_NONAME, resolve_category());
    const bool resolved = !ec;
    std::string tried; // every address's failure, for the final message
    if (resolved) {
        for (const endpoint& address : addresses) {
            tcp_stream conn = co_await tcp_stream::connect(address, ec);
            if (!ec) {
                if (out) out->clear();
                co_return conn;
            }
            if (ec == std::errc::operation_canceled) break;
            tried += (tried.empty() ? "" : "; ") + address.to_string() + ": " + ec.message();
        }
    }
    if (out) {
        *out = ec;
        co_return tcp_stream{};
    }
    if (ec == std::errc::operation_canceled) throw_error(ec, "connect " + host);
    if (!resolved) throw_error(ec, resolve_what(host, service, ec));
    throw_error(ec, "connect " + host + ':' + service + " (tried " + tried + ')');
}

} // namespace detail

/// Connects to `host` by name: looks it up with async_resolve, then tries each address in the
/// order the system prefers until one accepts. Throws std::system_error naming the host: the
/// lookup's error ("resolve HOST: ..."), or the last address's with every attempt listed
/// ("connect localhost:8888 (tried 127.0.0.1:8888: Connection refused; ...): Connection
/// refused"). `service` is a port number as text or a service name.
template <class = void>
task<tcp_stream> connect(std::string host, std::string service,
                         resolve_family family = resolve_family::any) {
    return detail::connect_by_name(std::move(host), std::move(service), family, nullptr);
}

/// Non-throwing form: on failure sets `ec` (the lookup's error, or the last address's) and
/// yields a closed stream.
template <class = void>
task<tcp_stream> connect(std::string host, std::string service, resolve_family family,
                         std::error_code& ec) {
    return detail::connect_by_name(std::move(host), std::move(service), family, &ec);
}

} // namespace conet

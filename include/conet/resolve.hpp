// conet/resolve.hpp - name lookups that never block the reactor, and connecting by name.
//
//     auto found = co_await conet::async_resolve("localhost", "http");
//     auto conn = co_await conet::connect("localhost", "8888");
//
// getaddrinfo has no non-blocking form (it may read files, ask a DNS server and wait for
// its answer), so async_resolve runs it on one of a few helper threads shared by the whole
// process (detail/lookup_pool.hpp; set_lookup_threads sets how many) and hands the result
// back to the awaiting reactor with reactor::post, the reactor's one thread-safe entry;
// meanwhile the reactor runs everything else. Lookups beyond the helpers wait in a queue, so
// a resolver that hangs holds a handful of threads, never one per lookup. A lookup allocates
// (its task frame, the job it shares with the pool, the result): lookups are not on the hot
// path that design invariant 2 keeps free of allocations.
//
// Cancelling a lookup (a task handle, with_timeout, when_any) ends the wait at once with
// operation_canceled. A lookup still queued leaves the queue; one running cannot be
// interrupted inside getaddrinfo: its helper finishes on its own later, drops the result and
// takes the next lookup. The job is all the helper touches: never a frame, and a reactor only
// through post() while the lookup is still wanted.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "address.hpp"
#include "cancel.hpp"
#include "detail/atomic.hpp"
#include "detail/await_record.hpp"
#include "detail/lookup_pool.hpp"
#include "detail/loop_core.hpp"
#include "detail/posted_queue.hpp"
#include "detail/ready_queue.hpp"
#include "error.hpp"
#include "reactor.hpp"
#include "task.hpp"
#include "tcp.hpp"

namespace conet {

namespace detail {

/// For tests only: called by the helper thread in place of the lookup. It may wait (a slow
/// resolver) and return false to let the real lookup go on, or return true with its own
/// answer in `found` and `ec` (a fake resolver). Null in any real program.
using resolve_hook = bool (*)(const std::string& host, std::vector<endpoint>& found,
                              std::error_code& ec);
inline atomic<resolve_hook> resolve_test_hook{nullptr};

template <class Tag>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] resolve_awaiter_t;

// (The request and the awaiter are templates only so that a file that never looks a name up
// does not compile them; Tag is always void: resolve_request_t<>, resolve_awaiter_t<>.)

/// One lookup: what its helper thread and its awaiting coroutine share. The pool decides who
/// owns it (see lookup_pool::withdraw): the awaiter frees it if it leaves the queue unrun,
/// the helper if it was abandoned while running, the posted node once delivered.
template <class Tag = void>
class resolve_request_t final : public lookup_job {
public:
    resolve_request_t(std::string h, std::string s, resolve_family f, reactor& r)
        : lookup_job(&resolve_request_t::on_posted, &resolve_request_t::work,
                     &resolve_request_t::deliver),
          host(std::move(h)), service(std::move(s)), family(f), target(&r) {}

    // Written by the helper before it delivers, read on the reactor's thread after.
    std::string host;
    std::string service;
    resolve_family family;
    std::vector<endpoint> result;
    std::error_code ec;

    reactor* target;
    resolve_awaiter_t<Tag>* waiting = nullptr; // reactor thread only: whom to hand it to

    /// Reactor thread: the awaiter no longer wants the result. After it returns, no helper
    /// touches the reactor for this lookup.
    void abandon() noexcept {
        waiting = nullptr;
        if (lookup_pool<>::withdraw(*this) == lookup_pool<>::withdrawn::removed) delete this;
    }

    /// Frees a request that was never queued.
    void discard() noexcept { delete this; }

private:
    ~resolve_request_t() = default;

    // Helper thread, without the pool's lock.
    static void work(lookup_job& job) noexcept {
        auto& self = static_cast<resolve_request_t&>(job);
        try {
            if (const resolve_hook hook = resolve_test_hook.load(memory_order_acquire))
                if (hook(self.host, self.result, self.ec)) return;
            const std::uint16_t port = port_from_text(self.service, "tcp", self.ec);
            if (!self.ec) self.result = lookup_host(self.host, port, self.family, self.ec);
        } catch (const std::bad_alloc&) {
            self.ec = std::make_error_code(std::errc::not_enough_memory);
        }
    }

    // Helper thread, with the pool's lock held.
    static void deliver(lookup_job& job) noexcept {
        auto& self = static_cast<resolve_request_t&>(job);
        self.target->post(self);
    }

    static void on_posted(posted_node& n, bool run);
};

/// Awaits one lookup on the pool's helper threads; see the top of this file.
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

    /// For the task dump (conet/task_dump.hpp).
    void describe_await(detail::await_view& v) const noexcept { v.kind = "lookup"; }
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
        request->waiting = this;
        if (const int rc = lookup_pool<>::submit(*request); rc != 0) {
            request->discard(); // not queued: no helper has it
            ec_ = errno_code(rc);
            return false;
        }
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

    // Reactor thread, from the posted node: the helper's answer.
    void complete(resolve_request& request) noexcept {
        hook_.unlink();
        result_ = std::move(request.result);
        ec_ = request.ec;
        request_ = nullptr;
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
    lookup_pool<>::wait_for_delivery(); // the helper may still be inside post()
    if (run && self.waiting) self.waiting->complete(self);
    delete &self;
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

/// Sets the most helper threads async_resolve uses at once, for the whole process (default 4;
/// each lookup beyond them waits in a queue). Best called before the first lookup, but any
/// time works: a raised maximum starts threads for queued lookups at once, a lowered one is
/// reached as helpers finish the lookup they run. Throws std::invalid_argument for 0.
template <class = void>
void set_lookup_threads(std::size_t n) {
    if (n == 0) throw std::invalid_argument("conet::set_lookup_threads: at least 1 thread");
    detail::lookup_pool<>::set_max(n);
}

/// The most helper threads async_resolve uses at once (see set_lookup_threads).
template <class = void>
std::size_t lookup_threads() noexcept {
    return detail::lookup_pool<>::counts().max;
}

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

// conet/detail/io_awaiter.hpp - the shape shared by every socket operation.
#pragma once

#include <coroutine>
#include <string>
#include <system_error>

#include "../error.hpp"
#include "../reactor.hpp"
#include "waiter.hpp"

namespace conet::detail {

/// CRTP base of every socket operation. It lives in the awaiting coroutine's frame (no
/// allocation), tries the syscall at once and waits on the reactor only after EAGAIN.
///
/// `Derived` provides:
///   bool try_once() noexcept        - the syscall; true once finished (result kept or `ec` set)
///   descriptor& target() noexcept   - the descriptor to wait on
///   auto result()                   - the value of a successful operation
///   auto failed_result()            - the value the non-throwing form gives on failure
///   std::string describe() const    - the operation's name for messages, e.g. "recv"
///
/// With `out` null the operation throws std::system_error; otherwise it stores the outcome
/// in *out and never throws for an I/O failure.
template <class Derived, direction Dir>
class io_awaiter : public waiter {
public:
    explicit io_awaiter(std::error_code* out) noexcept : waiter(&attempt_thunk), out_(out) {}

    bool await_ready() noexcept { return self().try_once(); }

    bool await_suspend(std::coroutine_handle<> h) noexcept {
        handle = h;
        ec = self().target().wait(Dir, *this);
        return !ec; // could not wait: resume at once and report why
    }

    auto await_resume() {
        if (ec) {
            if (!out_) throw_error(ec, self().describe());
            *out_ = ec;
            return self().failed_result();
        }
        if (out_) out_->clear();
        return self().result();
    }

private:
    static bool attempt_thunk(waiter& w) noexcept {
        return static_cast<Derived&>(static_cast<io_awaiter&>(w)).try_once();
    }
    Derived& self() noexcept { return static_cast<Derived&>(*this); }

    std::error_code* out_;
};

/// Runs `call` until it stops failing with EINTR; returns its result.
template <class F>
auto retry_on_eintr(F call) noexcept {
    for (;;) {
        auto r = call();
        if (r >= 0 || errno != EINTR) return r;
    }
}

/// errno after a failed syscall: true for "try again later".
inline bool would_block(int err) noexcept {
    return err == EAGAIN || err == EWOULDBLOCK;
}

} // namespace conet::detail

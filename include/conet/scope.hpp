// conet/scope.hpp - a task group that cannot outlive the code that made it (Trio's nursery,
// Kotlin's coroutineScope).
//
//     co_await conet::scope([&](conet::task_group& g) -> conet::task<> {
//         for (;;) {
//             auto [conn, peer] = co_await listener.accept();
//             g.spawn(serve_client(std::move(conn)));
//         }
//     });
//
// The body runs as the first task of a fresh group (failure_policy::cancel_all), and
// scope() returns only when every task of the group has finished, however it ends:
// - the body returns: scope waits for the tasks it spawned, then yields the body's value;
// - a task fails (the body included): the others are cancelled, run their cleanup and end,
//   then the first failure is rethrown;
// - the awaiting task is cancelled: every task of the group is cancelled at once, and
//   scope rethrows operation_canceled once they have all ended.
// So a task spawned in a scope may refer to anything the awaiting task owns: it cannot be
// left running behind its back.
#pragma once

#include <concepts>
#include <exception>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "task.hpp"
#include "task_group.hpp"

namespace conet {

namespace detail {

template <class T>
struct scope_result {
    using type = void;
};
template <class T>
struct scope_result<task<T>> {
    using type = T;
};

// Where the body's value waits for the rest of the scope (nothing for void).
// Empty when the body did not return (cancelled by a task_group::cancel() of its own).
template <class T>
struct scope_slot {
    std::optional<T> value;
    bool empty() const noexcept { return !value; }
    T take() { return std::move(*value); }
};
template <>
struct scope_slot<void> {
    bool returned = false;
    bool empty() const noexcept { return !returned; }
    void take() noexcept {}
};

// The body's value goes to the slot. Awaited as a temporary: in this task's chain, so that
// a when_any inside the body commits through the group to the scope's awaiter.
template <class T>
task<> run_scope_body(task<T> body, scope_slot<T>& slot) {
    if constexpr (std::is_void_v<T>) {
        co_await std::move(body);
        slot.returned = true;
    } else
        slot.value.emplace(co_await std::move(body));
}

// What scope needs of its group: the awaiting task, for commits and joins to follow.
struct scope_access {
    static void awaited_by(task_group& g, promise_base* scope) noexcept { g.awaiting_ = scope; }
};

// Waits for the group without being cancellable (awaited through shield).
inline task<> join_for_scope(task_group& g) {
    co_await g.join();
}

} // namespace detail

/// Runs `body(group)` with a group that ends with it: waits for every task the body spawns
/// in the group, cancels them all when one fails or the awaiting task is cancelled, and
/// rethrows the first failure (see the top of this header). Yields the body's value. The
/// body is called once and stays alive (in scope's frame) until scope ends, so a lambda's
/// captures remain valid.
template <class Body>
requires std::invocable<Body&, task_group&>
auto scope(Body body)
    -> task<typename detail::scope_result<std::invoke_result_t<Body&, task_group&>>::type> {
    using value = typename detail::scope_result<std::invoke_result_t<Body&, task_group&>>::type;
    const cancel_token owner = co_await current_cancel_token();
    detail::scope_slot<value> slot;
    std::exception_ptr failure;
    {
        task_group group(owner, failure_policy::cancel_all);
        detail::scope_access::awaited_by(group, detail::running_task); // this scope's task
        group.spawn(detail::run_scope_body(body(group), slot));
        try {
            co_await shield(detail::join_for_scope(group));
        } catch (...) {
            failure = std::current_exception();
        }
    }
    if (failure) std::rethrow_exception(failure);
    if (owner.cancel_requested() || slot.empty())
        throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                "conet::scope");
    co_return slot.take();
}

} // namespace conet

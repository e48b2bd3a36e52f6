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
// The body runs as the first task of a fresh group, and scope() returns only when every task
// of the group has finished, however it ends:
// - the body returns: scope waits for the tasks it spawned, then yields the body's value
//   (even if the awaiting task was cancelled meanwhile: the value is not dropped, and the
//   awaiting task's next co_await fails as usual);
// - the body fails: the other tasks are cancelled, end, and the body's exception is
//   rethrown;
// - a task fails: by the group's failure policy. With failure_policy::cancel_all (the
//   default) the others, the body included, are cancelled and end, then the first failure
//   is rethrown; with failure_policy::report it goes to the group's failure handler (stderr
//   by default) and the rest go on, as a server wants for its connections;
// - the awaiting task is cancelled: every task of the group is cancelled at once, and
//   scope rethrows operation_canceled once they have all ended (unless the body returned).
// So a task spawned in a scope may refer to anything the awaiting task owns: it cannot be
// left running behind its back (nor move to another reactor: resume_on refuses it).
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
// The body's value, or its failure; empty when the body did not return.
template <class T>
struct scope_slot {
    std::optional<T> value;
    std::exception_ptr failure;
    bool empty() const noexcept { return !value; }
    T take() { return std::move(*value); }
};
template <>
struct scope_slot<void> {
    bool returned = false;
    std::exception_ptr failure;
    bool empty() const noexcept { return !returned; }
    void take() noexcept {}
};

// The body's value goes to the slot. Awaited as a temporary: in this task's chain, so that a
// join of the group inside the body is seen as the deadlock it is (task_group::join).
// A failure of the body ends the scope whatever the group's policy: the rest is cancelled.
template <class T>
task<> run_scope_body(task<T> body, scope_slot<T>& slot, task_group& group) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(body);
            slot.returned = true;
        } else {
            slot.value.emplace(co_await std::move(body));
        }
    } catch (...) {
        slot.failure = std::current_exception();
        group.cancel();
    }
}

// What scope needs of its group: the awaiting task, for joins to follow the chain of awaits
// (and resume_on to tell a scope's group).
struct scope_access {
    static void awaited_by(task_group& g, promise_base* scope) noexcept { g.awaiting_ = scope; }
};

// Waits for the group without being cancellable (awaited through shield).
inline task<> join_for_scope(task_group& g) {
    co_await g.join();
}

} // namespace detail

/// Runs `body(group)` with a group that ends with it: waits for every task the body spawns
/// in the group, cancels them all when the body fails or the awaiting task is cancelled, and
/// treats a task's failure by `policy` (see the top of this header). Yields the body's value.
/// The body is called once and stays alive (in scope's frame) until scope ends, so a
/// lambda's captures remain valid.
template <class Body>
requires std::invocable<Body&, task_group&>
auto scope(failure_policy policy, Body body)
    -> task<typename detail::scope_result<std::invoke_result_t<Body&, task_group&>>::type> {
    using value = typename detail::scope_result<std::invoke_result_t<Body&, task_group&>>::type;
    const cancel_token owner = co_await current_cancel_token();
    detail::scope_slot<value> slot;
    std::exception_ptr failure;
    {
        task_group group(owner, policy);
        detail::scope_access::awaited_by(group, detail::running_task); // this scope's task
        try {
            // Calling the body may spawn, then throw before it returns its task: then the
            // group is cancelled and joined like any other failure of the body.
            group.spawn(detail::run_scope_body(body(group), slot, group));
        } catch (...) {
            slot.failure = std::current_exception();
            group.cancel();
        }
        try {
            co_await shield(detail::join_for_scope(group));
        } catch (...) {
            failure = std::current_exception(); // cancel_all: a task's failure came first
        }
    }
    if (failure) std::rethrow_exception(failure);
    if (slot.failure) std::rethrow_exception(slot.failure);
    if (slot.empty())
        throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                                "conet::scope");
    co_return slot.take();
}

/// scope(failure_policy::cancel_all, body): the first failure ends the whole scope.
template <class Body>
requires std::invocable<Body&, task_group&>
auto scope(Body body) {
    return scope(failure_policy::cancel_all, std::move(body));
}

} // namespace conet

// conet/when.hpp - running tasks concurrently: when_all and when_any.
//
//     auto [a, b] = co_await conet::when_all(fetch(x), fetch(y));     // both results
//     auto first = co_await conet::when_any(read_reply(), timer());   // the first to finish
//
// Both start every task at once on the current reactor and return only when every one of
// them has finished: a loser is cancelled (its pending operation fails with
// operation_canceled) and awaited, so no frame is left running behind the caller's back.
// A branch started after the winner finished starts cancelled: its first co_await fails
// before transferring anything. Each task is its own concurrent branch: cancelling the
// awaiting task cancels them all, and awaiting in a task already cancelled starts none
// (operation_canceled).
//
// No completed result is discarded. A loser never consumes: a cancelled branch's pending
// operation ends before it transfers, and the loop resumes it before it handles the next
// event, so a nested when_any finishes before an enclosing one can decide for another
// branch. When a loser's shielded cleanup waits, the inner when_any cannot finish at once:
// until it does, the loop pauses the other branches of every when_any enclosing it (their
// socket tries and their expired timers wait; detail/pause.hpp), so none of them can
// win there and discard the inner winner's result. The pause is what makes this safe, and
// its price: a shielded cleanup must not wait for a sibling branch of an enclosing when_any
// (it would wait for ever), and a coroutine that a user's awaitable, yield() or another
// thread resumes directly, or whose socket the program closes, is not paused (see
// docs/design.md, "Ownership").
//
// What the pause cannot make safe: a branch that had already received when it lost (a
// when_all with one part done, a task that returns what it has when cancelled) and so ends
// with a value although another branch won. when_any drops that value; when_any_settled
// returns it beside the winner's. when_all is all or nothing: failed or cancelled after
// some branches finished, it drops their results, so a branch whose result must never be
// lost hands it over as it gets it (to the caller's state, a channel).
// Nothing is allocated beyond the tasks' own frames.
#pragma once

#include <array>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "cancel.hpp"
#include "detail/loop_core.hpp"
#include "detail/pause.hpp"
#include "task.hpp"

namespace conet {

namespace detail {

/// What a branch contributes to the combined result: its value, or std::monostate for void.
template <class T>
using branch_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

} // namespace detail

/// What when_any_settled yields: which branch won, the value of every branch that returned
/// one (the winner's, and a loser's that completed although it was cancelled), and the
/// winner's exception if it failed (then it has no value).
template <class... Ts>
struct settled {
    std::size_t winner = 0;
    std::tuple<std::optional<detail::branch_value_t<Ts>>...> values;
    std::exception_ptr error;
};

namespace detail {

/// Starts N tasks as branches and resumes the awaiting coroutine once all have finished.
/// In the `any` modes the first branch to finish wins and the others are cancelled;
/// otherwise the first branch to fail cancels the others and its exception is rethrown.
template <join_mode Mode, class... Ts>
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] join;
template <join_mode Mode, class... Ts>
class join final : public root_owner {
    static constexpr bool Any = Mode != join_mode::all;

    static_assert(sizeof...(Ts) > 0, "when_all/when_any need at least one task");
    static_assert((!std::is_reference_v<Ts> && ...),
                  "when_all/when_any do not take tasks returning references");
    static constexpr std::size_t count = sizeof...(Ts);
    static constexpr std::size_t none = count;

public:
    explicit join(task<Ts>... tasks) noexcept
        : root_owner(&join::root_done), tasks_(std::move(tasks)...) {
        // Only a when_any decides for one branch against the others (detail/pause.hpp): a
        // when_all's other branch completes it or fails it, and its failure drops every
        // result by contract, so pausing it would protect nothing (and would hang a cleanup
        // that talks to it, when_all(server, client) on one reactor).
        decides_ = Any;
    }
    join(join&&) noexcept = default;
    join(const join&) = delete;
    join& operator=(const join&) = delete;
    join& operator=(join&&) = delete;
    // Destroyed while it holds (its frame destroyed with a loser still running): what it
    // paused goes on.
    ~join() {
        if (hold_.linked()) [[unlikely]]
            stop_holding();
    }

    bool await_ready() const noexcept { return false; }

    /// For the task dump: the branches still running.
    void describe_await(await_view& v) const {
        v.kind = Any ? "when_any" : "when_all";
        std::size_t i = 0;
        std::apply(
            [&](const auto&... t) {
                (((promises_[i] && !t.done() ? v.child(*promises_[i], t.handle().address())
                                             : void()),
                  ++i),
                 ...);
            },
            tasks_);
    }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> caller) noexcept {
        caller_ = caller;
        cancel_state* parent = nullptr;
        if constexpr (std::is_base_of_v<promise_base, Promise>) {
            parent = &caller.promise().chain();
            awaiting_ = &caller.promise(); // for a join of a group inside a branch (task_group)
        }
        if (!std::apply([](const auto&... t) { return (t.valid() && ...); }, tasks_)) {
            refused_ = refusal::empty; // a moved-from task: nothing to start
            return false;
        }
        if (std::apply([](const auto&... t) { return (t.handle().promise().busy() || ...); },
                       tasks_)) {
            refused_ = refusal::busy; // started or awaited elsewhere
            return false;
        }
        if (parent && parent->requested()) { // cancellation is seen here too: start nothing
            refused_ = refusal::cancelled;
            if (take_budget()) return false;
            return give_turn(turn_, caller);
        }
        remaining_ = count;
        starting_ = true;
        start_all(parent, std::make_index_sequence<count>{});
        starting_ = false;
        return remaining_ != 0; // all finished while starting: go on at once
    }

    auto await_resume() {
        throw_refusal(refused_);
        if constexpr (Mode == join_mode::any_settled) {
            return take_settled(std::make_index_sequence<count>{});
        } else if constexpr (Any) {
            return take_winner<0>();
        } else {
            if (decided_ != none) std::rethrow_exception(promises_[decided_]->exception());
            return take_all(std::make_index_sequence<count>{});
        }
    }

    static std::coroutine_handle<> root_done(root_owner& self, promise_base& p) noexcept {
        return static_cast<join&>(self).finish_branch(p);
    }

    std::coroutine_handle<> finish_branch(promise_base& p) noexcept {
        const std::size_t index = index_of(p);
        if (decided_ == none && (Any || p.exception_)) decide(index);
        if (--remaining_ == 0) {
            if (hold_.linked()) stop_holding();
            if (!starting_) return caller_;
        }
        return std::noop_coroutine();
    }

private:
    std::size_t index_of(const promise_base& p) const noexcept {
        std::size_t index = 0;
        while (promises_[index] != &p)
            ++index;
        return index;
    }

    // Branch `index` decides the join: the others are cancelled.
    void decide(std::size_t index) noexcept {
        decided_ = index;
        // A winner with a result while losers still run: until they have ended, the other
        // branches of the joins enclosing this one wait (detail/pause.hpp), so that none of
        // them wins there and discards this result. Most losers end before the loop looks
        // at anything else (urgent queue); those whose shielded cleanup waits are why. A
        // when_any whose winner failed (a cancellation, say) has nothing to lose: it throws,
        // no hold. A when_any_settled has a result all the same (the error beside the
        // losers' values, one of which may come after its cleanup): it holds.
        if constexpr (Any) {
            if (awaiting_ && remaining_ > 1 &&
                (Mode == join_mode::any_settled || !promises_[index]->exception_))
                if (loop_core* l = loop_core::current()) {
                    hold_.join = this;
                    hold_loop_ = l;
                    holding_ = true;
                    begin_hold(*l, hold_);
                }
        }
        for (std::size_t i = 0; i < count; ++i)
            if (i != index && promises_[i]) promises_[i]->own_cancel_.state().request();
    }

    void stop_holding() noexcept {
        holding_ = false;
        end_hold(*hold_loop_, hold_);
    }

    template <std::size_t... I>
    void start_all(cancel_state* parent, std::index_sequence<I...>) noexcept {
        (start<I>(parent), ...);
    }

    template <std::size_t I>
    void start(cancel_state* parent) noexcept {
        auto h = std::get<I>(tasks_).handle();
        promise_base& p = h.promise();
        promises_[I] = &p;
        p.owner_ = this;
        p.id_ = next_task_id();
        if (parent) p.own_cancel_.attach(*parent);
        // Already decided: start it cancelled, so that its first co_await fails before it
        // transfers anything (a when_any loser must not consume data it cannot deliver).
        if (decided_ != none) p.own_cancel_.state().request();
        h.resume();
    }

    template <std::size_t I>
    auto take_winner() -> std::variant<branch_value_t<Ts>...> {
        if constexpr (I == count) {
            throw std::logic_error("conet::when_any: no winner"); // unreachable
        } else {
            if (decided_ != I) return take_winner<I + 1>();
            auto& promise = std::get<I>(tasks_).handle().promise();
            using value = std::tuple_element_t<I, std::tuple<Ts...>>;
            if constexpr (std::is_void_v<value>) {
                promise.take(); // rethrows the winner's exception
                return std::variant<branch_value_t<Ts>...>(std::in_place_index<I>);
            } else {
                return std::variant<branch_value_t<Ts>...>(std::in_place_index<I>, promise.take());
            }
        }
    }

    template <std::size_t... I>
    settled<Ts...> take_settled(std::index_sequence<I...>) {
        settled<Ts...> out;
        out.winner = decided_;
        out.error = promises_[decided_]->exception();
        (keep_value<I>(std::get<I>(out.values)), ...);
        return out;
    }

    // A branch that ended without an exception hands over its value, winner or not.
    template <std::size_t I, class Slot>
    void keep_value(Slot& slot) {
        if (promises_[I]->exception()) return;
        slot.emplace(take_one<I>());
    }

    template <std::size_t I>
    auto take_one() {
        auto& promise = std::get<I>(tasks_).handle().promise();
        if constexpr (std::is_void_v<std::tuple_element_t<I, std::tuple<Ts...>>>) {
            promise.take();
            return std::monostate{};
        } else {
            return promise.take();
        }
    }

    template <std::size_t... I>
    std::tuple<branch_value_t<Ts>...> take_all(std::index_sequence<I...>) {
        return {take_one<I>()...};
    }

    std::tuple<task<Ts>...> tasks_;
    ready_node turn_; // resumes the caller when a refusal gives the loop its turn
    std::array<promise_base*, count> promises_{};
    std::coroutine_handle<> caller_;
    std::size_t remaining_ = 0;
    std::size_t decided_ = none; // when_any: the winner; when_all: the first to fail
    hold_node hold_;             // on the loop's `holding` list while losers run
    loop_core* hold_loop_ = nullptr;
    bool starting_ = false;
    refusal refused_ = refusal::none;
};

} // namespace detail

/// Runs every task concurrently and yields a std::tuple of their results (std::monostate for
/// a task<void>). If one throws, the others are cancelled, all are awaited, and the first
/// exception is rethrown.
template <class... Ts>
detail::join<detail::join_mode::all, Ts...> when_all(task<Ts>... tasks) noexcept {
    return detail::join<detail::join_mode::all, Ts...>(std::move(tasks)...);
}

/// Runs every task concurrently; the first to finish wins and the others are cancelled and
/// awaited. Yields a std::variant whose index() says which task won, holding its result
/// (std::monostate for a task<void>); if the winner threw, rethrows its exception.
template <class... Ts>
detail::join<detail::join_mode::any, Ts...> when_any(task<Ts>... tasks) noexcept {
    return detail::join<detail::join_mode::any, Ts...>(std::move(tasks)...);
}

/// Runs every task concurrently as when_any does, and yields a conet::settled: the winner's
/// index and every branch's value, so that a loser which completed with a value although it
/// was cancelled (a composite that had already received, say) loses nothing. A failed
/// winner is reported in `error`, not thrown, beside the losers' values.
template <class... Ts>
detail::join<detail::join_mode::any_settled, Ts...> when_any_settled(task<Ts>... tasks) noexcept {
    return detail::join<detail::join_mode::any_settled, Ts...>(std::move(tasks)...);
}

} // namespace conet

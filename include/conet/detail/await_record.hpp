// conet/detail/await_record.hpp - what a suspended task waits for, where and since when: the
// few words each task keeps for the task dump (conet/task_dump.hpp) and the stall detector.
//
// A task stores them as it suspends (promise_base::await_transform's forwarder): a pointer to
// the awaiter it is suspended in, a pointer to the function that can describe that awaiter's
// type, the source location of the co_await, and the loop's time of its last poll. Nothing is
// formatted, looked up or allocated then: the dump reads these, and asks the descriptor its
// endpoints, only when it is taken.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#if __has_include(<source_location>)
#include <source_location>
#endif

#include "atomic.hpp"

namespace conet::detail {

class promise_base;
class waiter;
class cancel_state;

/// The name of the task whose cancellation chain is `c` (task_group::spawn(t, name)), or
/// null: set by task.hpp, which knows tasks, for the trace (detail/trace.hpp), which does not.
inline const char* (*task_name_of)(const cancel_state* c) noexcept = nullptr;

#if defined(__cpp_lib_source_location)
/// Where a co_await is: std::source_location (one pointer in libstdc++ and libc++).
struct await_site {
    std::source_location at{};
    const char* file() const noexcept { return at.file_name(); }
    unsigned line() const noexcept { return at.line(); }
    const char* function() const noexcept { return at.function_name(); }
};
#else
/// Where a co_await is, for a compiler without std::source_location (Clang 14 with
/// libstdc++): what its built-ins give, three words instead of one.
struct await_site {
    const char* file_ = nullptr;
    unsigned line_ = 0;
    const char* function_ = nullptr;
    const char* file() const noexcept { return file_ ? file_ : ""; }
    unsigned line() const noexcept { return line_; }
    const char* function() const noexcept { return function_ ? function_ : ""; }
};
#endif

/// What the dump learns of one awaiter, filled at dump time by its type's describe function.
/// Plain, so that describing needs nothing but this header: the dump's own code (strings,
/// streams, endpoints) stays in task_dump.hpp.
struct await_view {
    const char* kind = nullptr; // "task", "when_any", "sleep", "yield"... or null
    const char* type = nullptr; // the awaiter's type, as the compiler spells it
    const waiter* op = nullptr; // a loop operation: its descriptor, direction, deadline
    char name[48] = {};         // an operation's own name ("recv", "connect 127.0.0.1:80")

    /// Called for each task the awaiter waits for (an awaited task, a join's branches).
    void (*on_child)(await_view&, promise_base& task, void* frame, bool shielded) = nullptr;
    void* context = nullptr; // the dump's, for on_child

    void child(promise_base& task, void* frame, bool shielded = false) {
        if (on_child) on_child(*this, task, frame, shielded);
    }
    void set_name(const char* s) noexcept {
        std::size_t i = 0;
        for (; s && s[i] && i + 1 < sizeof name; ++i)
            name[i] = s[i];
        name[i] = '\0';
    }
};

/// A loop operation: a waiter (a socket operation, a sleep), or an awaiter around one
/// (with_timeout's). A task suspending in one records no pointer to it: the dump finds it in
/// the loop's tables (descriptors, timers, queues) by the frame it resumes.
template <class A>
concept loop_operation = std::is_base_of_v<waiter, A> || requires {
    typename A::loop_operation_of;
};

/// Describes the awaiter `a` of type A into `v`: its own describe_await if it has one (a
/// task, a join), else what a loop operation (a waiter) tells, else just its type's name.
template <class A>
void describe_awaiter(const A& a, await_view& v) {
    if (!v.type) v.type = __PRETTY_FUNCTION__; // "... [with A = conet::...]": cut at dump time
    if constexpr (requires { a.describe_await(v); }) {
        a.describe_await(v);
    } else if constexpr (std::is_base_of_v<waiter, A>) {
        v.op = &static_cast<const waiter&>(a);
        if constexpr (requires { a.describe(); }) {
            try {
                v.set_name(a.describe().c_str());
            } catch (...) { // no memory for the name: the kind and type still show
            }
        }
    }
}

/// The type-erased form the record keeps: one per awaiter type. For a loop operation, what
/// it is given is the waiter the dump found in the loop's tables.
template <class A>
void describe_erased(const void* a, await_view& v) {
    if constexpr (std::is_base_of_v<waiter, A>)
        describe_awaiter(static_cast<const A&>(*static_cast<const waiter*>(a)), v);
    else if constexpr (loop_operation<A>)
        describe_erased<typename A::loop_operation_of>(a, v);
    else
        describe_awaiter(*static_cast<const A*>(a), v);
}

using describe_function = void (*)(const void*, await_view&);

/// The describe function of each type of loop operation, by its waiter's attempt function
/// (one per type): each type adds itself at its first suspension (io_awaiter::await_suspend),
/// so that a task suspending in a loop operation stores none. Read only by the task dump,
/// on the reactor's thread; a type added on another reactor's thread meanwhile is seen
/// once `count` is (the entry is written first).
struct operation_describers {
    using attempt_function = bool (*)(waiter&) noexcept;
    static constexpr std::size_t capacity = 256;
    // Added from any reactor's thread: a slot is taken with one fetch_add, its describe
    // function written before its attempt function is published (release), and a reader
    // skips a slot whose attempt function it does not see yet.
    atomic<attempt_function> attempt[capacity] = {};
    describe_function describe[capacity] = {};
    atomic<std::size_t> count{0};

    static operation_describers& get() noexcept {
        static operation_describers table; // (constant-initialized: no guard)
        return table;
    }
    static bool add(attempt_function a, describe_function d) noexcept {
        operation_describers& t = get();
        const std::size_t slot = t.count.fetch_add(1, memory_order_relaxed);
        if (slot >= capacity) return false; // its dump shows the operation's type unnamed
        t.describe[slot] = d;
        t.attempt[slot].store(a, memory_order_release);
        return true;
    }
    static describe_function find(attempt_function a) noexcept {
        const operation_describers& t = get();
        std::size_t n = t.count.load(memory_order_relaxed);
        if (n > capacity) n = capacity;
        for (std::size_t i = 0; i < n; ++i)
            if (t.attempt[i].load(memory_order_acquire) == a) return t.describe[i];
        return nullptr;
    }
};

/// The loop's time at its last poll, in nanoseconds of steady_clock, when a reactor stamps
/// its polls (reactor::time_suspensions, on for a dump or the stall detector); else 0. With
/// the stall detector on, the time of its last reading of the clock (see stall_probe). A task
/// suspending copies it: how long it has been suspended costs no clock read.
inline thread_local std::int64_t loop_time = 0;

/// Where the ids of root tasks (a group's task, a join's branch, a run's task) come from: one
/// counter for the process, from which each thread takes a block of ids at a time. So an id
/// is unique in the process, also in a reactor that a task moved to with resume_on (it keeps
/// its id), for one atomic add per 64 ids. Ids are 32 bits, never 0; they repeat after 2^32.
inline atomic<std::uint32_t> task_ids_taken{0};
inline constexpr std::uint32_t task_id_block = 64;
struct task_id_range {
    std::uint32_t last = 0; // the last id given, in [first, end) of the thread's block
    std::uint32_t end = 0;
};
inline thread_local task_id_range task_ids{};

/// A new root task id (see task_ids_taken).
inline std::uint32_t next_task_id() noexcept {
    task_id_range& r = task_ids;
    if (r.last == r.end) [[unlikely]] {
        r.last = task_ids_taken.fetch_add(task_id_block, memory_order_relaxed);
        r.end = r.last + task_id_block;
    }
    const std::uint32_t id = ++r.last;
    return id != 0 ? id : next_task_id(); // (the counter wrapped)
}

/// Who ran one stretch of a resumption the stall detector times, and how the stretch ended:
/// copied as it ends, since the task's frame may be gone when the detector reports.
struct stall_runner {
    enum class end : std::uint8_t {
        unknown,    // no task's code (a coroutine of another kind, a posted function)
        suspended,  // it reached a co_await and suspended there (at `where`)
        finished,   // it ended (its last co_await was `where`)
        resumed,    // it resumed another task inline (a user's awaitable, a direct resume())
        suspending, // after it suspended at `where`: its awaiter's await_suspend ran
        running,    // it was resumed inline, and nothing cut its stretch after that
    };
    end how = end::unknown;
    std::uint32_t id = 0; // its root's id (0: none)
    await_site where{};   // its last co_await
    char name[64] = {};   // its root's name, cut
};

/// What the stall detector learns of one resumption it times (reactor::set_stall_threshold).
/// The resumption is cut into stretches, each run by one task: the clock is read when a task
/// suspends, ends, or resumes another inline, and the time since the last such read is the
/// task's that was running (promise_base's note_stretch). The longest stretch is named.
struct stall_probe {
    std::int64_t mark = 0;    // when the current stretch began
    std::int64_t longest = 0; // the longest stretch so far, and who ran it
    stall_runner longest_by{};
    stall_runner last{}; // the task at the last cut: the current stretch's, if none other cuts
    bool posted = false; // a posted function's run (what no task ran is its)
};

/// The probe of the resumption the stall detector times on this thread, else null: what a
/// task tests as it suspends, ends, or resumes from an awaiter that is not a loop operation
/// (one load and a predictable branch each).
inline thread_local stall_probe* stall_probe_now = nullptr;

/// What a task is suspended in. Set as it suspends: the location (at each co_await), the
/// time and, unless it is a loop operation (found in the loop's tables, and described through
/// operation_describers), the awaiter and its type's describe function; the awaiter is
/// cleared as the task resumes (so that a task running, or resumed inline by another, never
/// shows a dead awaiter).
struct await_record {
    const void* awaiter = nullptr;
    describe_function describe = nullptr;
    await_site where{};
    std::int64_t since = 0; // loop_time when it suspended
};

} // namespace conet::detail

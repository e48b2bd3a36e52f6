// conet/detail/task_walk.hpp - visiting every live task of a loop, roots first and each one's
// chain of awaits below it: what the task dump (conet/task_dump.hpp) and the stall detector
// (reactor::set_stall_threshold) read. Off the hot path: it runs only when asked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../task.hpp"
#include "../task_group.hpp"
#include "await_record.hpp"
#include "loop_core.hpp"

namespace conet::detail {

/// One task as the walk meets it.
struct task_node {
    promise_base* task = nullptr;
    void* frame = nullptr;                // its coroutine frame (what a resumption resumes)
    const task_group* group = nullptr;    // the group a root task belongs to, else null
    std::uint32_t depth = 0;              // 0 for a root, +1 per await below it
    bool shielded = false;                // awaited through conet::shield()
    const await_record* record = nullptr; // what it is suspended in (record->awaiter null: running)
};

/// What the walk reads of tasks and groups (their bookkeeping is private).
struct task_dump_access {
    static const await_record& record(const promise_base& p) noexcept { return p.record_; }
    static std::uint32_t id(const promise_base& p) noexcept { return p.id_; }
    static void set_id(promise_base& p, std::uint32_t id) noexcept { p.id_ = id; }
    static bool cancelled(const promise_base& p) noexcept { return p.cancel_->requested(); }
    static const cancel_state* chain(const promise_base& p) noexcept { return p.cancel_; }
    static bool started(const promise_base& p) noexcept { return p.started_; }
    static const promise_base& root(const promise_base& p) noexcept { return *p.root_; }
    static const task_group* next_group(const task_group& g) noexcept { return g.next_group_; }
    static promise_base* first_task(const task_group& g) noexcept { return g.first_; }
    static promise_base* next_task(const promise_base& p) noexcept { return p.next_in_group_; }
    static void* frame(const promise_base& p) noexcept { return p.self_.address(); }
    /// The id of the root task that owns group `g` (the one it was made in, or a scope's
    /// awaiting task, through its chain of awaits), or 0.
    static std::uint32_t owner_id(const task_group& g) noexcept {
        const promise_base* o = g.enclosing();
        return o ? o->root_->id_ : 0;
    }
    static bool is_scope(const task_group& g) noexcept { return g.awaiting_ != nullptr; }
    // A reactor's (templates: the reactor is not complete where this is included).
    template <class R>
    static loop_core& core(R& r) noexcept {
        return r.core_;
    }
    template <class R>
    static promise_base* main_task(R& r) noexcept {
        return r.main_task_;
    }
    template <class R>
    static void* main_frame(R& r) noexcept {
        return r.main_.address();
    }
};

/// The name of the function `pretty` spells (a source_location's function_name(), which GCC
/// gives as "void f(f()::_Z1fv.Frame*)" in a coroutine, or as "T f(T) [with T = int]" in
/// some templates): without return type, parameters and template arguments' list
/// ("f", "ns::S<int>::g", "main()::<lambda(int)>", "<lambda(int)>" for a lambda at namespace
/// scope, whose name GCC writes right after its return type: "void<lambda(int)>::...").
inline void short_function(const char* pretty, char* out, std::size_t size) noexcept {
    if (size == 0) return;
    out[0] = '\0';
    if (!pretty) return;
    std::size_t end = std::strlen(pretty);
    // GCC names a template's parameters after it ("... [with T = int; U = ...]"): cut that.
    constexpr char with[] = " [with ";
    if (end > 0 && pretty[end - 1] == ']')
        if (const char* w = std::strstr(pretty, with)) end = static_cast<std::size_t>(w - pretty);
    if (end > 0 && pretty[end - 1] == ')') { // cut the parameters: back to the matching '('
        int depth = 0;
        for (std::size_t i = end; i-- > 0;) {
            if (pretty[i] == ')') ++depth;
            if (pretty[i] == '(' && --depth == 0) {
                end = i;
                break;
            }
        }
        // "operator()" alone (Clang's __builtin_FUNCTION() in a lambda): its "()" stays.
        constexpr char op[] = "operator";
        const std::size_t op_size = sizeof op - 1;
        if (end >= op_size && std::strncmp(pretty + end - op_size, op, op_size) == 0 &&
            std::strncmp(pretty + end, "()", 2) == 0)
            end += 2;
    }
    std::size_t begin = 0;
    int depth = 0;
    constexpr char lambda[] = "<lambda";
    const std::size_t lambda_size = sizeof lambda - 1;
    for (std::size_t i = 0; i < end; ++i) { // the return type ends at the last outer space
        const char c = pretty[i];
        // ... or where a lambda's name starts right after it (GCC: "void<lambda(int)>::...")
        if (depth == 0 && c == '<' && i > 0 && pretty[i - 1] != ':' && end - i >= lambda_size &&
            std::strncmp(pretty + i, lambda, lambda_size) == 0)
            begin = i;
        if (c == '<' || c == '(') ++depth;
        if ((c == '>' || c == ')') && depth > 0) --depth;
        if (depth == 0 && c == ' ') begin = i + 1;
    }
    constexpr char call[] = "::operator()"; // a lambda's: its name is the lambda's
    const std::size_t call_size = sizeof call - 1;
    if (end - begin > call_size && std::strncmp(pretty + end - call_size, call, call_size) == 0)
        end -= call_size;
    std::size_t n = 0;
    for (std::size_t i = begin; i < end && n + 1 < size; ++i) {
        for (const char* noise : {"{anonymous}::", "(anonymous namespace)::"}) {
            const std::size_t length = std::strlen(noise);
            if (end - i >= length && std::strncmp(pretty + i, noise, length) == 0) i += length;
        }
        if (i < end) out[n++] = pretty[i];
    }
    out[n] = '\0';
}

/// How deep a walk goes below a root: it recurses, and a chain of tens of thousands of
/// nested awaits would overflow the stack of the thread taking the dump. Deeper tasks are
/// left out (the deepest shown says what it awaits).
inline constexpr std::uint32_t max_walk_depth = 1000;

/// Visits `n` and, below it, what it awaits (recursively, to max_walk_depth), calling
/// visit(const task_node&).
template <class Visit>
void walk_task(const task_node& n, Visit& visit) {
    visit(n);
    if (n.depth >= max_walk_depth) return;
    const await_record& r = task_dump_access::record(*n.task);
    if (!r.awaiter || !r.describe) return; // running, or not started
    struct context {
        Visit& visit;
        std::uint32_t depth;
    } ctx{visit, n.depth + 1};
    await_view v;
    v.context = &ctx;
    v.on_child = [](await_view& view, promise_base& task, void* frame, bool shielded) {
        auto& c = *static_cast<context*>(view.context);
        task_node child;
        child.task = &task;
        child.frame = frame;
        child.depth = c.depth;
        child.shielded = shielded;
        child.record = &task_dump_access::record(task);
        walk_task(child, c.visit);
    };
    r.describe(r.awaiter, v);
}

/// Visits every live task of loop `l`: the task a run() drives (`main`, if any), then each
/// group's tasks, each followed by the tasks it awaits.
template <class Visit>
void walk_tasks(const loop_core& l, promise_base* main, void* main_frame, Visit&& visit) {
    if (main && main_frame) {
        task_node n;
        n.task = main;
        n.frame = main_frame;
        n.record = &task_dump_access::record(*main);
        walk_task(n, visit);
    }
    for (const task_group* g = l.groups; g; g = task_dump_access::next_group(*g))
        for (promise_base* p = task_dump_access::first_task(*g); p;
             p = task_dump_access::next_task(*p)) {
            task_node n;
            n.task = p;
            n.frame = task_dump_access::frame(*p);
            n.group = g;
            n.record = &task_dump_access::record(*p);
            walk_task(n, visit);
        }
}

} // namespace conet::detail

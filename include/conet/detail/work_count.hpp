// conet/detail/work_count.hpp - the work a reactor_pool's run waits for, counted across its
// reactors: the program's tasks, the tasks in the reactors' own groups, and the tasks on
// their way from one reactor to another (resume_on, spawn_on).
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomic.hpp"

namespace conet::detail {

/// A count shared by the reactors of a pool. Whoever enters leaves once; the leave that
/// brings it to zero calls `all_done` (on that thread): no task is left anywhere that could
/// hand more work to a reactor, so every reactor may end its part of the run.
struct work_count {
    atomic<std::size_t> n{0};
    // The pool's runs, counted twice each (as one begins and as it ends): odd while a run is
    // in progress, its number then. Work that left in one run and arrives in another was on
    // its way when that run was stopped (a run that ends by itself waits for it).
    atomic<std::uint64_t> runs{0};
    void (*all_done)(void* context) noexcept = nullptr; // null once the pool goes
    void* context = nullptr;

    void enter(std::size_t k = 1) noexcept { n.fetch_add(k, memory_order_seq_cst); }
    void leave() noexcept {
        if (n.fetch_sub(1, memory_order_seq_cst) == 1 && all_done) all_done(context);
    }
    bool zero() const noexcept { return n.load(memory_order_seq_cst) == 0; }
};

} // namespace conet::detail

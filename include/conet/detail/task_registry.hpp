// conet/detail/task_registry.hpp - which tasks of a group are alive: what makes a
// task_handle O(1) and safe after its task, its group and its reactor are gone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "atomic.hpp"
#include "growable_array.hpp"

namespace conet::detail {

class promise_base;
struct loop_core;

/// Which tasks of a group are alive, by slot and generation: what makes a handle O(1) and
/// safe after its task is gone. Shared by the group and its handles through a count
/// (single-threaded, like everything on a reactor); the group's going away empties it.
class task_registry {
public:
    static constexpr std::uint32_t none = UINT32_MAX;

    /// Records `p`; returns its slot. May throw std::bad_alloc before anything changed.
    std::uint32_t add(promise_base& p) {
        if (free_ == none) {
            entries_.push_back({});
            free_ = static_cast<std::uint32_t>(entries_.size() - 1);
            entries_.back().next_free = none;
        }
        const std::uint32_t slot = free_;
        entry& e = entries_[slot];
        free_ = e.next_free;
        e.task = &p;
        return slot;
    }

    /// The task is gone: its handles now see it done.
    void remove(std::uint32_t slot) noexcept {
        entry& e = entries_[slot];
        e.task = nullptr;
        ++e.generation;
        e.next_free = free_;
        free_ = slot;
    }

    std::uint32_t generation(std::uint32_t slot) const noexcept {
        return entries_[slot].generation;
    }

    /// The live task at (slot, generation), or nullptr.
    promise_base* find(std::uint32_t slot, std::uint32_t generation) const noexcept {
        if (slot >= entries_.size() || entries_[slot].generation != generation) return nullptr;
        return entries_[slot].task;
    }

    /// The reactor of the group, while it is bound to one: what a handle checks its thread
    /// against before it looks anything up (atomic: read from any thread).
    atomic<const loop_core*> loop{nullptr};

    void retain() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }

private:
    struct entry {
        promise_base* task = nullptr;
        std::uint32_t generation = 0;
        std::uint32_t next_free = 0;
    };
    growable_array<entry> entries_;
    std::uint32_t free_ = none;
    std::size_t refs_ = 1;
};

} // namespace conet::detail

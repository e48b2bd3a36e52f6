// conet/detail/timer_heap.hpp - the reactor's deadlines: a binary min-heap of intrusive entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "chrono.hpp"
#include "growable_array.hpp"

namespace conet::detail {

/// What a waiter needs to sit on a timer_heap: its deadline and where it is in the heap.
class timer_entry {
public:
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t not_armed = static_cast<std::size_t>(-1);

    bool armed() const noexcept { return heap_index_ != not_armed; }
    clock::time_point deadline() const noexcept { return deadline_; }

private:
    friend class timer_heap;
    clock::time_point deadline_{};
    std::size_t heap_index_ = not_armed;
    std::uint64_t order_ = 0; // when it was pushed: breaks ties between equal deadlines
};

/// A binary min-heap of timer entries ordered by deadline, and equal deadlines in the order
/// they were pushed (a binary heap alone mixes them up; under the virtual clock, equal
/// deadlines are common, and their order must not depend on the heap's shape). Each entry
/// stores its own index, so removing one costs O(log n) with no search; nothing is allocated
/// once the array has grown to the largest number of deadlines pending at once.
class timer_heap {
public:
    /// Adds `e` (not armed yet) with `deadline`. May throw std::bad_alloc before anything
    /// changed.
    void push(timer_entry& e, timer_entry::clock::time_point deadline) {
        entries_.push_back(&e);
        e.deadline_ = deadline;
        e.order_ = pushed_++;
        e.heap_index_ = entries_.size() - 1;
        sift_up(e.heap_index_);
    }

    /// Removes `e`, which must be armed on this heap. Out of line: the sifting would swell
    /// every operation's destructor, where a timeout is the exception.
    [[gnu::noinline]] void remove(timer_entry& e) noexcept {
        const std::size_t i = e.heap_index_;
        timer_entry* last = entries_.back();
        entries_.pop_back();
        if (last != &e) {
            entries_[i] = last;
            last->heap_index_ = i;
            sift_down(i);
            sift_up(last->heap_index_);
        }
        e.heap_index_ = timer_entry::not_armed;
    }

    /// The entry with the earliest deadline, or nullptr.
    timer_entry* top() const noexcept { return entries_.empty() ? nullptr : entries_.front(); }
    bool empty() const noexcept { return entries_.empty(); }
    /// Calls f(timer_entry&) for each entry, in no order (the task dump).
    template <class F>
    void for_each(F f) const {
        for (std::size_t i = 0; i < entries_.size(); ++i)
            f(*entries_[i]);
    }

    /// Forgets every entry (they stay unarmed).
    void clear() noexcept {
        for (timer_entry* e : entries_)
            e->heap_index_ = timer_entry::not_armed;
        entries_.clear();
    }

private:
    bool earlier(std::size_t a, std::size_t b) const noexcept {
        const timer_entry& x = *entries_[a];
        const timer_entry& y = *entries_[b];
        return x.deadline_ < y.deadline_ || (x.deadline_ == y.deadline_ && x.order_ < y.order_);
    }

    void swap_entries(std::size_t a, std::size_t b) noexcept {
        std::swap(entries_[a], entries_[b]);
        entries_[a]->heap_index_ = a;
        entries_[b]->heap_index_ = b;
    }

    void sift_up(std::size_t i) noexcept {
        while (i > 0 && earlier(i, (i - 1) / 2)) {
            swap_entries(i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
    }

    void sift_down(std::size_t i) noexcept {
        for (;;) {
            std::size_t smallest = i;
            for (std::size_t c = 2 * i + 1; c <= 2 * i + 2 && c < entries_.size(); ++c)
                if (earlier(c, smallest)) smallest = c;
            if (smallest == i) return;
            swap_entries(i, smallest);
            i = smallest;
        }
    }

    growable_array<timer_entry*> entries_;
    std::uint64_t pushed_ = 0; // (2^64 pushes: never wraps in practice)
};

} // namespace conet::detail

// conet/detail/descriptor_table.hpp - per descriptor number: who waits to read, who waits to
// write, and which object owns the descriptor.
#pragma once

#include <cstddef>
#include <cstdint>

#include "growable_array.hpp"

namespace conet::detail {

class waiter;
class descriptor;

/// Which readiness an operation waits for.
enum class direction : std::uint8_t { read, write };

/// One slot per descriptor number, indexed by the number itself (descriptors are small
/// integers, so this is a flat array with O(1) lookup). `generation` changes whenever the
/// number is registered again or released, so that an epoll event fetched before a close is
/// recognised as stale and dropped.
class descriptor_table {
public:
    struct slot {
        waiter* reader = nullptr;
        waiter* writer = nullptr;
        descriptor* owner = nullptr;
        std::uint32_t generation = 0;

        waiter*& waiting(direction d) noexcept { return d == direction::read ? reader : writer; }
    };

    /// The slot of `fd`, growing the table if needed; nullptr if memory ran out.
    slot* grow_to(int fd) noexcept {
        const auto index = static_cast<std::size_t>(fd);
        if (!slots_.grow_to(index + 1)) return nullptr;
        return &slots_[index];
    }

    /// The slot of a registered descriptor.
    slot& operator[](int fd) noexcept { return slots_[static_cast<std::size_t>(fd)]; }

    /// The slot an epoll event refers to, or nullptr if it is stale.
    slot* find(std::size_t fd, std::uint32_t generation) noexcept {
        if (fd >= slots_.size() || slots_[fd].generation != generation) return nullptr;
        return &slots_[fd];
    }

    std::size_t size() const noexcept { return slots_.size(); }

private:
    growable_array<slot> slots_;
};

} // namespace conet::detail

// conet/detail/growable_array.hpp - the part of std::vector the reactor's own tables use, for
// trivially copyable slots: std::vector of each slot type costs more to compile (its growth,
// iterators and allocator machinery are instantiated for every type) than the table itself.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>

namespace conet::detail {

/// A contiguous array that grows by doubling, as std::vector does, and moves its elements by
/// copying their bytes (realloc). Elements must be trivially copyable and destructible.
template <class T>
class growable_array {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

public:
    growable_array() noexcept = default;
    growable_array(const growable_array&) = delete;
    growable_array& operator=(const growable_array&) = delete;
    ~growable_array() { std::free(data_); }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    T& front() const noexcept { return data_[0]; }
    T& back() const noexcept { return data_[size_ - 1]; }
    T* begin() const noexcept { return data_; }
    T* end() const noexcept { return data_ + size_; }

    /// Appends `value`. Throws std::bad_alloc, the array unchanged, when memory runs out.
    void push_back(T value) {
        if (size_ == capacity_ && !reserve(size_ + 1)) throw std::bad_alloc();
        data_[size_++] = value;
    }
    void pop_back() noexcept { --size_; }
    void clear() noexcept { size_ = 0; }

    /// Grows to `n` elements (if it has fewer), the new ones value-initialised; false, the
    /// array unchanged, when memory runs out.
    [[nodiscard]] bool grow_to(std::size_t n) noexcept {
        if (n <= size_) return true;
        if (!reserve(n)) return false;
        for (std::size_t i = size_; i < n; ++i)
            ::new (static_cast<void*>(data_ + i)) T();
        size_ = n;
        return true;
    }

private:
    // Room for at least `n`, growing geometrically (as std::vector does) so that appending
    // costs amortised O(1).
    bool reserve(std::size_t n) noexcept {
        if (n <= capacity_) return true;
        std::size_t cap = capacity_ * 2;
        if (cap < n) cap = n;
        if (cap > static_cast<std::size_t>(-1) / sizeof(T)) return false;
        void* p = std::realloc(static_cast<void*>(data_), cap * sizeof(T));
        if (!p) return false;
        data_ = static_cast<T*>(p);
        capacity_ = cap;
        return true;
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

} // namespace conet::detail

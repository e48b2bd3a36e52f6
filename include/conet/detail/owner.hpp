// conet/detail/owner.hpp - std::unique_ptr's part that conet uses, without <memory> (whose
// allocators, shared_ptr and parallel-algorithm declarations cost more to parse than conet).
#pragma once

#include <cstddef>
#include <utility>

namespace conet::detail {

/// Owns one `new T` (or, for owner<T[]>, one `new T[n]`), deleted with the owner.
template <class T>
class owner {
public:
    owner() noexcept = default;
    explicit owner(T* p) noexcept : p_(p) {}
    owner(owner&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    owner& operator=(owner&& other) noexcept {
        owner moved(std::move(other));
        std::swap(p_, moved.p_);
        return *this;
    }
    ~owner() { delete p_; }

    T& operator*() const noexcept { return *p_; }
    T* operator->() const noexcept { return p_; }
    T* get() const noexcept { return p_; }

private:
    T* p_ = nullptr;
};

template <class T>
class owner<T[]> {
public:
    owner() noexcept = default;
    explicit owner(T* p) noexcept : p_(p) {}
    owner(owner&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    owner& operator=(owner&& other) noexcept {
        owner moved(std::move(other));
        std::swap(p_, moved.p_);
        return *this;
    }
    ~owner() { delete[] p_; }

    T& operator[](std::size_t i) const noexcept { return p_[i]; }
    T* get() const noexcept { return p_; }

private:
    T* p_ = nullptr;
};

} // namespace conet::detail

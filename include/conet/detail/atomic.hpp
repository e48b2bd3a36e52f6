// conet/detail/atomic.hpp - the few atomic operations conet needs, on the compiler's
// __atomic builtins (GCC and Clang; ThreadSanitizer understands them as it does std::atomic).
//
// libstdc++'s <atomic> costs a program that includes conet more to compile than all of
// conet's other standard headers but <variant> (it brings <bits/atomic_wait.h>, mutexes and
// clocks with it); this is what conet uses of it: std::atomic's member names, with explicit
// memory orders.
#pragma once

#include <type_traits>

namespace conet::detail {

enum class memory_order : int {
    relaxed = __ATOMIC_RELAXED,
    acquire = __ATOMIC_ACQUIRE,
    release = __ATOMIC_RELEASE,
    acq_rel = __ATOMIC_ACQ_REL,
    seq_cst = __ATOMIC_SEQ_CST,
};
inline constexpr memory_order memory_order_relaxed = memory_order::relaxed;
inline constexpr memory_order memory_order_acquire = memory_order::acquire;
inline constexpr memory_order memory_order_release = memory_order::release;
inline constexpr memory_order memory_order_acq_rel = memory_order::acq_rel;
inline constexpr memory_order memory_order_seq_cst = memory_order::seq_cst;

/// An integer, bool or pointer accessed atomically: std::atomic<T>'s operations that conet
/// uses, with the same meaning.
template <class T>
class atomic {
    static_assert(std::is_integral_v<T> || std::is_pointer_v<T>);

public:
    constexpr atomic() noexcept = default;
    constexpr atomic(T value) noexcept : value_(value) {} // NOLINT(google-explicit-constructor)
    atomic(const atomic&) = delete;
    atomic& operator=(const atomic&) = delete;

    [[gnu::always_inline]] T load(memory_order order = memory_order::seq_cst) const noexcept {
        return __atomic_load_n(&value_, static_cast<int>(order));
    }
    [[gnu::always_inline]] void store(T value,
                                      memory_order order = memory_order::seq_cst) noexcept {
        __atomic_store_n(&value_, value, static_cast<int>(order));
    }
    [[gnu::always_inline]] T exchange(T value,
                                      memory_order order = memory_order::seq_cst) noexcept {
        return __atomic_exchange_n(&value_, value, static_cast<int>(order));
    }
    // (Integers only: on a pointer, the builtins would add bytes, not elements.)
    [[gnu::always_inline]] T fetch_add(T delta,
                                       memory_order order = memory_order::seq_cst) noexcept {
        static_assert(std::is_integral_v<T>);
        return __atomic_fetch_add(&value_, delta, static_cast<int>(order));
    }
    [[gnu::always_inline]] T fetch_sub(T delta,
                                       memory_order order = memory_order::seq_cst) noexcept {
        static_assert(std::is_integral_v<T>);
        return __atomic_fetch_sub(&value_, delta, static_cast<int>(order));
    }
    /// As std::atomic's: the order on failure is `success` weakened as std::atomic weakens it
    /// (acq_rel to acquire, release to relaxed).
    [[gnu::always_inline]] bool
    compare_exchange_strong(T& expected, T desired,
                            memory_order success = memory_order::seq_cst) noexcept {
        return __atomic_compare_exchange_n(&value_, &expected, desired, false,
                                           static_cast<int>(success), failure_order(success));
    }
    [[gnu::always_inline]] bool compare_exchange_weak(T& expected, T desired, memory_order success,
                                                      memory_order failure) noexcept {
        return __atomic_compare_exchange_n(&value_, &expected, desired, true,
                                           static_cast<int>(success), static_cast<int>(failure));
    }

private:
    static constexpr int failure_order(memory_order success) noexcept {
        return success == memory_order::acq_rel   ? __ATOMIC_ACQUIRE
               : success == memory_order::release ? __ATOMIC_RELAXED
                                                  : static_cast<int>(success);
    }

    alignas(sizeof(T)) T value_{};
};

} // namespace conet::detail

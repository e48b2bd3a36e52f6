// conet/detail/copyable_function.hpp - a copyable type-erased callable, std::function's part
// that conet uses, without <functional> (which costs more to parse than all of conet).
//
// Built from any copyable callable (but a pointer to member), as std::function is, and it stores
// the same ones in place (trivially copyable, at most two pointers big), so that it allocates
// exactly when std::function would. Built from a null function pointer or an empty std::function,
// it is empty too.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace conet::detail {

template <class Signature>
class copyable_function;

template <class R, class... Args>
class copyable_function<R(Args...)> {
public:
    copyable_function() noexcept = default;
    copyable_function(std::nullptr_t) noexcept {}

    template <class F, class D = std::decay_t<F>>
    requires(!std::is_same_v<D, copyable_function> && !std::is_member_pointer_v<D> &&
             std::is_copy_constructible_v<D> && std::is_invocable_r_v<R, D&, Args...>)
        copyable_function(F&& f) {
        if constexpr (std::is_pointer_v<D>) {
            if (f == nullptr) return;
        } else if constexpr (requires(const D& d) {
                                 d.target_type();
                                 static_cast<bool>(d);
                             }) { // a std::function
            if (!static_cast<bool>(f)) return;
        }
        if constexpr (stored_in_place<D>)
            ::new (static_cast<void*>(storage_.local)) D(std::forward<F>(f));
        else
            storage_.heap = new D(std::forward<F>(f));
        ops_ = &ops_for<D>;
    }

    copyable_function(const copyable_function& other) : ops_(nullptr) {
        if (other.ops_) other.ops_->copy(storage_, other.storage_);
        ops_ = other.ops_;
    }
    copyable_function(copyable_function&& other) noexcept
        : storage_(other.storage_), ops_(std::exchange(other.ops_, nullptr)) {}
    copyable_function& operator=(const copyable_function& other) {
        copyable_function copy(other);
        swap(copy);
        return *this;
    }
    copyable_function& operator=(copyable_function&& other) noexcept {
        copyable_function moved(std::move(other));
        swap(moved);
        return *this;
    }
    copyable_function& operator=(std::nullptr_t) noexcept {
        copyable_function empty;
        swap(empty);
        return *this;
    }
    ~copyable_function() {
        if (ops_) ops_->destroy(storage_);
    }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    /// Calls the target (as a non-const lvalue, as std::function does). Throws
    /// std::logic_error when empty.
    R operator()(Args... args) const {
        if (!ops_) throw std::logic_error("conet: an empty function was called");
        return ops_->call(storage_, std::forward<Args>(args)...);
    }

    void swap(copyable_function& other) noexcept {
        std::swap(storage_, other.storage_);
        std::swap(ops_, other.ops_);
    }

private:
    union storage {
        void* heap;
        alignas(void*) unsigned char local[2 * sizeof(void*)];
    };
    struct operations {
        R (*call)(storage&, Args&&...);
        void (*copy)(storage& to, const storage& from);
        void (*destroy)(storage&) noexcept;
    };

    // Where std::function (libstdc++) stores a callable in place: it can move by copying
    // its bytes, and fits.
    template <class D>
    static constexpr bool stored_in_place = std::is_trivially_copyable_v<D> &&
                                            sizeof(D) <= sizeof(storage) &&
                                            alignof(storage) % alignof(D) == 0;

    template <class D>
    static D& target(storage& s) noexcept {
        if constexpr (stored_in_place<D>)
            return *std::launder(reinterpret_cast<D*>(s.local));
        else
            return *static_cast<D*>(s.heap);
    }

    template <class D>
    static constexpr operations ops_for{
        [](storage& s, Args&&... args) -> R {
            if constexpr (std::is_void_v<R>)
                target<D>(s)(std::forward<Args>(args)...);
            else
                return target<D>(s)(std::forward<Args>(args)...);
        },
        [](storage& to, const storage& from) {
            if constexpr (stored_in_place<D>)
                std::memcpy(to.local, from.local, sizeof to.local);
            else
                to.heap = new D(*static_cast<const D*>(from.heap));
        },
        [](storage& s) noexcept {
            if constexpr (!stored_in_place<D>) delete static_cast<D*>(s.heap);
        },
    };

    mutable storage storage_{};
    const operations* ops_ = nullptr;
};

} // namespace conet::detail

// conet/buffer_pool.hpp - receive buffers lent to connections only while they hold data.
//
// A server that keeps a 16 KiB array in every connection's coroutine pays for it while the
// connection sits idle (its touched pages stay resident). With a pool, the buffer is taken
// when data is there to read and given back when the data has been handled:
//
//     conet::buffer_pool buffers(16 * 1024);
//     ...
//     auto data = co_await conn.recv(buffers);    // waits with no buffer, then reads into one
//     co_await conn.send_all(data);               // data.size() bytes
//     // data's buffer goes back to the pool when data is destroyed
//
// A pool belongs to one thread (one reactor's): it takes no lock. Once it holds as many free
// buffers as are ever out at once, lending allocates nothing.
#pragma once

#include <cstddef>
#include <new>
#include <utility>

namespace conet {

class buffer_pool;
namespace detail {
template <class Reads>
class basic_pooled_read_op;
}

/// A buffer lent by a buffer_pool, with how much of it holds data. Move-only; gives the
/// buffer back to its pool when destroyed. A contiguous range of its data, so it can be
/// passed where a const_buffer is taken (`conn.send_all(data)`).
class pooled_buffer {
public:
    pooled_buffer() noexcept = default;
    pooled_buffer(pooled_buffer&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), block_(std::exchange(other.block_, nullptr)),
          size_(std::exchange(other.size_, 0)) {}
    pooled_buffer& operator=(pooled_buffer&& other) noexcept {
        if (this != &other) {
            release();
            pool_ = std::exchange(other.pool_, nullptr);
            block_ = std::exchange(other.block_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    pooled_buffer(const pooled_buffer&) = delete;
    pooled_buffer& operator=(const pooled_buffer&) = delete;
    // Inline, like release(): a receive loop gives a buffer back every turn.
    [[gnu::always_inline]] ~pooled_buffer() { release(); }

    /// The data: the first size() bytes of the buffer.
    char* data() const noexcept { return block_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    char* begin() const noexcept { return block_; }
    char* end() const noexcept { return block_ + size_; }
    /// How many bytes the buffer can hold (0 when it holds none).
    inline std::size_t capacity() const noexcept;

    /// Sets how many of its bytes hold data (at most capacity()).
    void resize(std::size_t n) noexcept { size_ = n; }

    /// Gives the buffer back to its pool now.
    [[gnu::always_inline]] inline void release() noexcept;

private:
    friend class buffer_pool;
    pooled_buffer(buffer_pool* pool, char* block) noexcept : pool_(pool), block_(block) {}

    buffer_pool* pool_ = nullptr;
    char* block_ = nullptr;
    std::size_t size_ = 0;
};

/// Lends buffers of one size. Free buffers wait on an intrusive list (their first bytes
/// link them): taking and giving back cost a few instructions and never allocate once the
/// pool has grown. Up to `max_free` free buffers are kept; more are freed as they return, so
/// that a burst does not pin its memory for ever. Destroy it after every buffer it lent.
class buffer_pool {
public:
    /// A pool of `block_size`-byte buffers (at least the size of a pointer).
    explicit buffer_pool(std::size_t block_size, std::size_t max_free = 1024) noexcept
        : block_size_(block_size < sizeof(free_block) ? sizeof(free_block) : block_size),
          max_free_(max_free) {}
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;
    ~buffer_pool() {
        while (free_block* b = free_) {
            free_ = b->next;
            ::operator delete(static_cast<void*>(b));
        }
    }

    /// A buffer of block_size() bytes (data size 0). Throws std::bad_alloc.
    pooled_buffer borrow() {
        pooled_buffer b;
        lend(b);
        return b;
    }

    std::size_t block_size() const noexcept { return block_size_; }
    /// How many free buffers the pool holds now.
    std::size_t free_count() const noexcept { return free_count_; }
    /// How many of its buffers are lent out now.
    std::size_t lent_count() const noexcept { return allocated_ - free_count_; }

private:
    friend class pooled_buffer;
    template <class Reads>
    friend class detail::basic_pooled_read_op;
    struct free_block {
        free_block* next;
    };

    // What borrow() does, into `b` (which holds no buffer) where it stands: a receive fills
    // its own pooled_buffer, with no move.
    void lend(pooled_buffer& b) {
        char* block;
        if (free_block* f = free_) {
            free_ = f->next;
            --free_count_;
            block = reinterpret_cast<char*>(f);
        } else {
            block = static_cast<char*>(::operator new(block_size_));
            ++allocated_;
        }
        b.pool_ = this;
        b.block_ = block;
        b.size_ = 0;
    }

    void give_back(char* block) noexcept {
        if (free_count_ >= max_free_) [[unlikely]] {
            free_block_memory(block);
            return;
        }
        auto* b = ::new (static_cast<void*>(block)) free_block{free_};
        free_ = b;
        ++free_count_;
    }

    [[gnu::noinline, gnu::cold]] void free_block_memory(char* block) noexcept {
        --allocated_;
        ::operator delete(static_cast<void*>(block));
    }

    std::size_t block_size_;
    std::size_t max_free_;
    free_block* free_ = nullptr;
    std::size_t free_count_ = 0;
    std::size_t allocated_ = 0; // lent + free: the lent count costs nothing to keep
};

inline std::size_t pooled_buffer::capacity() const noexcept {
    return block_ ? pool_->block_size() : 0;
}

inline void pooled_buffer::release() noexcept {
    if (block_) {
        pool_->give_back(block_);
        block_ = nullptr;
    }
    size_ = 0;
}

} // namespace conet

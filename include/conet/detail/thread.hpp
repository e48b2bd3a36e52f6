// conet/detail/thread.hpp - the little of <thread> and <mutex> reactor_pool uses, on POSIX
// threads directly: those two headers (<thread> brings <stop_token>, <memory> and more) cost
// more to parse than the rest of conet. libstdc++'s std::thread and std::mutex are these same
// pthread calls.
#pragma once

#include <pthread.h>
#include <sys/sysinfo.h>

#include <cstddef>
#include <exception>
#include <system_error>
#include <utility>

namespace conet::detail {

/// std::thread::hardware_concurrency(), as libstdc++ computes it on glibc: 0 when unknown.
inline std::size_t hardware_concurrency() noexcept {
    const int n = ::get_nprocs();
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

/// A thread running a callable, joined (never detached): std::thread's part that
/// reactor_pool uses. The callable must not throw (as with std::thread, that terminates).
class thread {
public:
    /// Starts `f()` on a new thread, which inherits the calling thread's signal mask. Throws
    /// std::system_error (as std::thread does) when no thread can be made.
    template <class F>
    explicit thread(F f) {
        F* fn = new F(std::move(f));
        if (const int e = ::pthread_create(&id_, nullptr, &thread::start<F>, fn); e != 0) {
            delete fn;
            throw std::system_error(e, std::generic_category());
        }
        joinable_ = true;
    }
    /// No thread (as std::thread's default): something to assign a thread to later.
    thread() noexcept = default;
    thread(const thread&) = delete;
    thread& operator=(const thread&) = delete;
    thread(thread&& other) noexcept
        : id_(other.id_), joinable_(std::exchange(other.joinable_, false)) {}
    thread& operator=(thread&& other) noexcept {
        if (joinable_) std::terminate(); // as std::thread: join first
        id_ = other.id_;
        joinable_ = std::exchange(other.joinable_, false);
        return *this;
    }
    ~thread() {
        if (joinable_) std::terminate(); // as std::thread: join first
    }

    void join() {
        if (const int e = ::pthread_join(id_, nullptr); e != 0)
            throw std::system_error(e, std::generic_category());
        joinable_ = false;
    }

private:
    template <class F>
    static void* start(void* p) noexcept {
        F* fn = static_cast<F*>(p);
        (*fn)();
        delete fn;
        return nullptr;
    }

    ::pthread_t id_{};
    bool joinable_ = false;
};

/// std::mutex (a default pthread mutex, as libstdc++'s), with a scoped lock.
class mutex {
public:
    mutex() noexcept = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    void lock() {
        if (const int e = ::pthread_mutex_lock(&m_); e != 0)
            throw std::system_error(e, std::generic_category());
    }
    void unlock() noexcept { ::pthread_mutex_unlock(&m_); }

private:
    ::pthread_mutex_t m_ = PTHREAD_MUTEX_INITIALIZER;
};

/// std::lock_guard<mutex>.
class lock_guard {
public:
    explicit lock_guard(mutex& m) : m_(m) { m_.lock(); }
    lock_guard(const lock_guard&) = delete;
    lock_guard& operator=(const lock_guard&) = delete;
    ~lock_guard() { m_.unlock(); }

private:
    mutex& m_;
};

} // namespace conet::detail

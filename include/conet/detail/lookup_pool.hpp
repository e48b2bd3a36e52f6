// conet/detail/lookup_pool.hpp - the few helper threads, shared by the whole process, that run
// blocking name lookups (getaddrinfo) for async_resolve, with a queue in front of them.
//
// Rules (docs/design.md):
// - At most `max` helper threads exist (4 unless set_lookup_threads says otherwise; above a
//   lowered maximum until they finish their lookup). One starts when a lookup is queued and no
//   idle one can take it, ends after lookup_idle_seconds idle, and blocks every signal.
// - A lookup cancelled while queued leaves the queue under the lock: no thread ever sees it.
//   One cancelled while running is marked abandoned; its thread finishes the call, drops the
//   result and takes the next lookup.
// - A finished lookup is handed to its reactor with reactor::post while the pool's lock is
//   held, so that the reactor thread, by taking the lock once, knows the helper has left
//   post() (and the reactor may be destroyed).
// - Nothing is ever joined or destroyed at exit: the state is constant-initialized and
//   trivially destructible, the threads detached, so exit() never waits for a hung lookup.
// - After fork(), the child has no helper threads: its pool starts over, and lookups the
//   parent was running are queued again in the child.
//
// The code that runs is in templates (Tag is always void), compiled only in a program that
// looks a name up.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <cerrno>
#include <cstddef>

#include "posted_queue.hpp"

namespace conet::detail {

/// Helper threads unless set_lookup_threads says otherwise: a handful, enough for lookups
/// to overlap, few enough that a resolver that hangs holds no more than that.
inline constexpr std::size_t default_lookup_threads = 4;

/// How long a helper thread waits for work before it ends.
inline constexpr int lookup_idle_seconds = 10;

/// One lookup handed to the pool: allocated by its awaiter, posted back to the awaiting
/// reactor when done (hence a posted_node), and linked into the pool's queue or its list of
/// running lookups meanwhile. Its fields below are the pool's, read and written under its lock.
class lookup_job : public posted_node {
public:
    /// The blocking part, called on a helper thread without the lock.
    using work_function = void (*)(lookup_job&) noexcept;
    /// Hands the finished job to its reactor (reactor::post), called with the lock held.
    using deliver_function = void (*)(lookup_job&) noexcept;

    enum class state : unsigned char { queued, running, delivered, abandoned };

    lookup_job(posted_node::function on_posted, work_function work,
               deliver_function deliver) noexcept
        : posted_node(on_posted), work_(work), deliver_(deliver) {}

protected:
    ~lookup_job() = default;

private:
    template <class>
    friend struct lookup_pool;

    lookup_job* prev_ = nullptr;
    lookup_job* next_ = nullptr;
    state state_ = state::queued;
    work_function work_;
    deliver_function deliver_;
};

/// An intrusive list of jobs, first in first out; unlinking any job is O(1).
struct lookup_list {
    lookup_job* head = nullptr;
    lookup_job* tail = nullptr;
};

/// The pool's state: one for the process, constant-initialized and trivially destructible
/// (no constructor may run after a lookup starts, no destructor at exit).
struct lookup_pool_state {
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t work = PTHREAD_COND_INITIALIZER; // signalled when a job is queued
    lookup_list queue;
    lookup_list running;
    std::size_t queued = 0;  // jobs in `queue`
    std::size_t busy = 0;    // jobs in `running`
    std::size_t threads = 0; // helper threads alive
    std::size_t idle = 0;    // of them, waiting for work
    std::size_t max = default_lookup_threads;
};
inline constinit lookup_pool_state lookup_pool_data{};
inline constinit pthread_once_t lookup_pool_fork_once = PTHREAD_ONCE_INIT;

/// What the pool holds right now (for tests and curious callers).
struct lookup_pool_counts {
    std::size_t threads, idle, queued, running, max;
};

/// The pool's operations (a template only so that a program that never looks a name up does
/// not compile them; Tag is always void).
template <class Tag = void>
struct lookup_pool {
    /// Queues `job` and makes sure a thread will take it. Returns 0, or pthread_create's error
    /// when no helper thread exists and none can be made (the job is then not queued).
    static int submit(lookup_job& job) noexcept {
        // Before the lock: fork() holds glibc's lock of handlers while it runs before_fork.
        ::pthread_once(&lookup_pool_fork_once, [] {
            ::pthread_atfork(&before_fork, &after_fork_parent, &after_fork_child);
        });
        auto& p = lookup_pool_data;
        locked lock;
        job.state_ = lookup_job::state::queued;
        push_back(p.queue, job);
        ++p.queued;
        if (p.queued > p.idle && p.threads < p.max) {
            const int rc = start_thread();
            if (rc != 0 && p.threads == 0) {
                unlink(p.queue, job);
                --p.queued;
                return rc;
            }
        }
        if (p.idle) ::pthread_cond_signal(&p.work);
        return 0;
    }

    /// What withdraw() found.
    enum class withdrawn {
        removed,   // it was queued: it is out of the queue, the caller owns it
        abandoned, // it is running: its thread disposes of it when the call returns
        delivered, // it was posted to its reactor: the posted node disposes of it
    };

    /// The awaiter gives `job` up (cancelled, or its frame or reactor destroyed).
    static withdrawn withdraw(lookup_job& job) noexcept {
        auto& p = lookup_pool_data;
        locked lock;
        switch (job.state_) {
        case lookup_job::state::queued:
            unlink(p.queue, job);
            --p.queued;
            return withdrawn::removed;
        case lookup_job::state::running:
            job.state_ = lookup_job::state::abandoned;
            return withdrawn::abandoned;
        default:
            return withdrawn::delivered;
        }
    }

    /// Returns once no helper is inside a delivery (reactor::post): a posted job calls it
    /// before it looks at anything, so that its reactor cannot go while a helper is in post().
    static void wait_for_delivery() noexcept { locked lock; }

    /// Sets the most helper threads; starts some at once if queued jobs wait for them.
    static void set_max(std::size_t n) noexcept {
        auto& p = lookup_pool_data;
        locked lock;
        p.max = n;
        for (std::size_t started = 0; p.queued > p.idle + started && p.threads < p.max; ++started)
            if (start_thread() != 0) break; // the threads there are will get to them
        ::pthread_cond_broadcast(&p.work);  // idle threads above a lowered maximum end
    }

    static lookup_pool_counts counts() noexcept {
        auto& p = lookup_pool_data;
        locked lock;
        return {p.threads, p.idle, p.queued, p.busy, p.max};
    }

private:
    struct locked {
        locked() noexcept { ::pthread_mutex_lock(&lookup_pool_data.mutex); }
        ~locked() { ::pthread_mutex_unlock(&lookup_pool_data.mutex); }
        locked(const locked&) = delete;
        locked& operator=(const locked&) = delete;
    };

    static void push_back(lookup_list& l, lookup_job& job) noexcept {
        job.next_ = nullptr;
        job.prev_ = l.tail;
        (l.tail ? l.tail->next_ : l.head) = &job;
        l.tail = &job;
    }
    static void unlink(lookup_list& l, lookup_job& job) noexcept {
        (job.prev_ ? job.prev_->next_ : l.head) = job.next_;
        (job.next_ ? job.next_->prev_ : l.tail) = job.prev_;
        job.prev_ = job.next_ = nullptr;
    }

    // Lock held. The thread blocks every signal (a thread inherits its creator's mask), so
    // that it never takes one the program waits for with a signal_set, and is detached: no
    // one ever waits for it, exit() included.
    static int start_thread() noexcept {
        auto& p = lookup_pool_data;
        sigset_t all;
        sigset_t previous;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &previous);
        pthread_attr_t attr;
        ::pthread_attr_init(&attr);
        ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t thread;
        const int rc = ::pthread_create(&thread, &attr, &lookup_pool::helper, nullptr);
        ::pthread_attr_destroy(&attr);
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        if (rc == 0) ++p.threads;
        return rc;
    }

    // A helper thread's whole life: take the oldest job, run it without the lock, hand it
    // back (or drop it, if abandoned meanwhile), until idle for long enough or above the
    // maximum.
    static void* helper(void*) noexcept {
        auto& p = lookup_pool_data;
        ::pthread_mutex_lock(&p.mutex);
        for (;;) {
            if (p.threads > p.max) break;
            if (!p.queue.head) {
                timespec until;
                ::clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += lookup_idle_seconds;
                ++p.idle;
                const int rc = ::pthread_cond_timedwait(&p.work, &p.mutex, &until);
                --p.idle;
                if (rc == ETIMEDOUT && !p.queue.head) break;
                continue;
            }
            lookup_job& job = *p.queue.head;
            unlink(p.queue, job);
            --p.queued;
            push_back(p.running, job);
            ++p.busy;
            job.state_ = lookup_job::state::running;
            ::pthread_mutex_unlock(&p.mutex);

            job.work_(job);

            ::pthread_mutex_lock(&p.mutex);
            unlink(p.running, job);
            --p.busy;
            if (job.state_ == lookup_job::state::running) {
                job.state_ = lookup_job::state::delivered;
                job.deliver_(job);
            } else { // abandoned: nobody wants the result
                ::pthread_mutex_unlock(&p.mutex);
                job.dispose(); // it takes the lock itself (wait_for_delivery)
                ::pthread_mutex_lock(&p.mutex);
            }
        }
        --p.threads;
        if (p.queue.head && p.idle) ::pthread_cond_signal(&p.work); // left above the maximum
        ::pthread_mutex_unlock(&p.mutex);
        return nullptr;
    }

    // fork() copies only the calling thread: the child's pool has no helpers. The lock is held
    // across the fork so that the child's copy of the state is consistent; the child then
    // starts over, queueing again what the parent's helpers were running (its threads start
    // as the child's next lookup is queued).
    static void before_fork() noexcept { ::pthread_mutex_lock(&lookup_pool_data.mutex); }
    static void after_fork_parent() noexcept { ::pthread_mutex_unlock(&lookup_pool_data.mutex); }
    static void after_fork_child() noexcept {
        auto& p = lookup_pool_data;
        ::pthread_mutex_init(&p.mutex, nullptr);
        ::pthread_cond_init(&p.work, nullptr);
        while (lookup_job* job = p.running.tail) {
            unlink(p.running, *job);
            if (job->state_ == lookup_job::state::abandoned) {
                job->dispose();
                continue;
            }
            job->state_ = lookup_job::state::queued;
            job->next_ = p.queue.head;
            job->prev_ = nullptr;
            (p.queue.head ? p.queue.head->prev_ : p.queue.tail) = job;
            p.queue.head = job;
            ++p.queued;
        }
        p.busy = 0;
        p.threads = 0;
        p.idle = 0;
    }
};

} // namespace conet::detail

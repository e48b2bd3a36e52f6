// conet/task_dump.hpp - what every coroutine of a reactor is doing: a list of its live tasks
// (what each waits for, where, since when, who awaits it) and a text dump made from it.
//
//     conet::dump_tasks(reactor, std::cerr);   // on the reactor's thread, at any moment
//
// or, without writing code, CONET_DUMP_SIGNAL=SIGUSR1 in the environment of a program that
// includes this header: each reactor made then dumps on stderr when the signal comes (read
// through a signalfd by the loop, between resumptions: no signal handler runs), under a
// line naming its thread. With several reactors (a reactor_pool), the one that reads the
// signal has every other dump too, at its next turn, on its own thread.
//
// A task keeps what it is suspended in as it suspends (detail/await_record.hpp: a few stores,
// nothing looked up); the dump reads that, and asks each socket its endpoints, when taken.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <unordered_map>
#include <vector>

#include "detail/await_record.hpp"
#include "detail/descriptor.hpp"
#include "detail/task_walk.hpp"
#include "detail/waiter.hpp"
#include "reactor.hpp"

namespace conet {

/// One live task of a reactor, as task_list() sees it.
struct task_info {
    static constexpr std::size_t none = static_cast<std::size_t>(-1);

    std::uint32_t id = 0;          // a root task's id (a group's task, a join's branch, a run's)
                                   // 0 for a task awaited by another (it runs in its chain)
    std::uint32_t depth = 0;       // 0 for a root; one more per await below it
    std::size_t parent = none;     // the index of the task awaiting it (a join's for a branch)
    std::string group;             // a root's: "run", "reactor", "scope", "group", "branch"
    std::uint32_t group_owner = 0; // the id of the task its group belongs to, if any
    std::string name;              // task_group::spawn(t, name)'s name, if any
    std::string operation;         // what it waits for: "recv", "accept", "sleep", "when_any",
                                   // "task" (another task), ...; "running", "not started"
    int fd = -1;                   // the descriptor it waits on, if any
    std::string local;             // a socket's endpoints, looked up when the list is made
    std::string peer;
    std::string file; // where it is suspended: the co_await's file, line and function
    unsigned line = 0;
    std::string function;
    std::optional<std::chrono::nanoseconds> deadline;      // time left before its deadline
    std::optional<std::chrono::nanoseconds> suspended_for; // (with reactor::time_suspensions)
    bool cancelled = false;                                // its chain was cancelled
    bool shielded = false; // awaited through conet::shield(): cancellation does not reach it
};

namespace detail {

inline std::string endpoint_text(const sockaddr_storage& a, socklen_t len) {
    char text[INET6_ADDRSTRLEN + 16] = "";
    if (a.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(a);
        char ip[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, &in.sin_addr, ip, sizeof ip);
        std::snprintf(text, sizeof text, "%s:%u", ip, unsigned{ntohs(in.sin_port)});
    } else if (a.ss_family == AF_INET6) {
        const auto& in = reinterpret_cast<const sockaddr_in6&>(a);
        char ip[INET6_ADDRSTRLEN];
        ::inet_ntop(AF_INET6, &in.sin6_addr, ip, sizeof ip);
        std::snprintf(text, sizeof text, "[%s]:%u", ip, unsigned{ntohs(in.sin6_port)});
    } else if (a.ss_family == AF_UNIX) {
        const auto& un = reinterpret_cast<const sockaddr_un&>(a);
        const std::size_t path =
            len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
        if (path == 0) return "unix:(unnamed)";
        if (un.sun_path[0] == '\0') return "unix:@" + std::string(un.sun_path + 1, path - 1);
        return "unix:" + std::string(un.sun_path, ::strnlen(un.sun_path, path));
    }
    return text;
}

/// The local and peer endpoints of socket `fd` (empty when not a socket, or not connected).
inline void endpoints(int fd, std::string& local, std::string& peer) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
    local = endpoint_text(a, len);
    len = sizeof a;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) peer = endpoint_text(a, len);
}

/// The awaiter's type from describe_awaiter's __PRETTY_FUNCTION__ ("... [with A = T]").
inline std::string type_of(const char* pretty) {
    if (!pretty) return "?";
    const char* with = std::strstr(pretty, "A = ");
    if (!with) return pretty;
    std::string t(with + 4);
    if (const auto end = t.find_first_of(";]"); end != std::string::npos) t.resize(end);
    return t;
}

/// The loop operations waiting on `l` (in a descriptor's slot, on the timer heap, deferred,
/// paused, or ended and about to resume), by the frame each will resume.
inline std::unordered_map<void*, const waiter*> waiting_operations(loop_core& l) {
    std::unordered_map<void*, const waiter*> found;
    auto add = [&](const waiter* w) {
        if (w && w->handle) found.emplace(w->handle.address(), w);
    };
    for (std::size_t fd = 0; fd < l.descriptors.size(); ++fd) {
        const auto& s = l.descriptors[static_cast<int>(fd)];
        add(s.reader);
        add(s.writer);
    }
    l.timers.for_each([&](timer_entry& e) { add(static_cast<deadline&>(e).w); });
    for (const ready_queue* q : {&l.retry, &l.paused, &l.expired})
        q->for_each([&](ready_node& n) { // (a turn's end marker has no handle: not a waiter)
            if (n.handle) add(static_cast<const waiter*>(&n));
        });
    return found;
}

inline std::int64_t steady_now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               timer_entry::clock::now().time_since_epoch())
        .count();
}

} // namespace detail

/// Every live task of reactor `r`, roots first (the task a run() drives, then each group's
/// tasks), each followed by the tasks it awaits (a nested task, a join's branches), deeper
/// by one. Call it on the reactor's thread (from one of its tasks, or between runs). From
/// now on the reactor stamps its polls (reactor::time_suspensions), so that later lists say
/// how long each task has been suspended.
inline std::vector<task_info> task_list(reactor& r) {
    using access = detail::task_dump_access;
    std::vector<task_info> list;
    std::vector<std::size_t> stack; // the index of the last task seen at each depth
    const std::int64_t now = detail::steady_now_ns();
    auto& core = access::core(r);
    // Deadlines count on the reactor's clock (virtual, if it keeps one); how long a task has
    // been suspended, on the real one.
    const std::int64_t clock_now = core.virtual_now
                                       ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             core.virtual_now->time_since_epoch())
                                             .count()
                                       : now;
    const auto operations = detail::waiting_operations(core);
    detail::walk_tasks(
        core, access::main_task(r), access::main_frame(r), [&](const detail::task_node& n) {
            task_info t;
            const detail::promise_base& p = *n.task;
            t.id = access::id(p);
            t.depth = n.depth;
            stack.resize(n.depth);
            if (n.depth > 0) t.parent = stack[n.depth - 1];
            stack.push_back(list.size());
            if (n.depth == 0)
                t.group = n.group == nullptr           ? "run"
                          : n.group == &r.tasks()      ? "reactor"
                          : access::is_scope(*n.group) ? "scope"
                                                       : "group";
            else if (t.id != 0)
                t.group = "branch";
            if (n.group) t.group_owner = access::owner_id(*n.group);
            if (p.name()) t.name = p.name();
            t.cancelled = access::cancelled(p);
            t.shielded = n.shielded;
            const detail::await_record& rec = *n.record;
            // What it awaits: an awaiter it recorded, or a loop operation that will resume
            // its frame (described through its type's entry in operation_describers).
            const void* awaiter = rec.awaiter;
            detail::describe_function describe = awaiter ? rec.describe : nullptr;
            const detail::waiter* op = nullptr;
            if (!awaiter) {
                const auto found = operations.find(n.frame);
                if (found != operations.end()) {
                    op = found->second;
                    awaiter = op;
                    if (op->attempt) describe = detail::operation_describers::find(op->attempt);
                }
            }
            if (!awaiter) {
                t.operation = !access::started(p)          ? "not started"
                              : &p == detail::running_task ? "running"
                                                           : "ready";
                list.push_back(std::move(t));
                return;
            }
            t.file = rec.where.file();
            t.line = rec.where.line();
            char function[160];
            detail::short_function(rec.where.function(), function, sizeof function);
            t.function = function;
            if (rec.since > 0 && now > rec.since)
                t.suspended_for = std::chrono::nanoseconds(now - rec.since);
            detail::await_view v; // (no children: only what it is)
            if (describe) {
                describe(awaiter, v);
            } else { // a sleep (a waiter with no attempt), or an operation of no known type
                v.op = op;
                v.kind = op && !op->attempt ? "sleep" : "operation";
            }
            if (v.kind)
                t.operation = v.kind;
            else if (v.name[0])
                t.operation = v.name;
            else
                t.operation = detail::type_of(v.type);
            if (const detail::waiter* w = v.op) {
                if (w->holds(detail::waiter::in_slot) || w->holds(detail::waiter::deferred))
                    t.fd = w->fd;
                if (w->timer_armed())
                    t.deadline = std::chrono::nanoseconds(
                        std::chrono::duration_cast<std::chrono::nanoseconds>(
                            w->timer->timer_entry::deadline().time_since_epoch())
                            .count() -
                        clock_now);
                if (t.fd >= 0) detail::endpoints(t.fd, t.local, t.peer);
            }
            list.push_back(std::move(t));
        });
    r.time_suspensions(true);
    return list;
}

namespace detail {

inline void append_duration(std::string& s, std::chrono::nanoseconds d) {
    char text[32];
    const double ms = static_cast<double>(d.count()) / 1e6;
    if (ms < 0)
        std::snprintf(text, sizeof text, "passed");
    else if (ms < 999.95) // (what "%.1f" would round up to 1000.0 is shown in seconds)
        std::snprintf(text, sizeof text, "%.1f ms", ms);
    else
        std::snprintf(text, sizeof text, "%.1f s", ms / 1000);
    s += text;
}

/// One line of the text dump.
inline std::string dump_line(const task_info& t) {
    std::string s(2 * t.depth, ' ');
    if (t.id) {
        s += "task " + std::to_string(t.id);
        if (!t.group.empty()) {
            s += " [" + t.group;
            if (t.group_owner) s += " of task " + std::to_string(t.group_owner);
            s += "]";
        }
    } else {
        s += "awaits";
    }
    if (!t.name.empty()) s += " \"" + t.name + "\"";
    s += ": " + t.operation;
    if (t.fd >= 0) {
        s += " fd " + std::to_string(t.fd);
        if (!t.local.empty()) s += " " + t.local;
        if (!t.peer.empty()) s += " <- " + t.peer;
    }
    if (t.deadline) {
        s += ", deadline in ";
        append_duration(s, *t.deadline);
    }
    if (t.line) {
        s += ", at " + t.file + ":" + std::to_string(t.line);
        if (!t.function.empty()) s += " in " + t.function;
    }
    if (t.suspended_for) {
        s += ", suspended ";
        append_duration(s, *t.suspended_for);
    }
    if (t.cancelled) s += ", cancelled";
    if (t.shielded) s += ", shielded";
    return s;
}

} // namespace detail

/// The text dump of task_list(r): a header, then one line per task, each indented under the
/// task that awaits it.
inline std::string dump_tasks(reactor& r) {
    const std::vector<task_info> list = task_list(r);
    std::size_t roots = 0;
    for (const auto& t : list)
        roots += t.depth == 0;
    std::string s = "conet: task dump: " + std::to_string(roots) + " task" +
                    (roots == 1 ? "" : "s") + ", " + std::to_string(list.size()) + " coroutine" +
                    (list.size() == 1 ? "" : "s") + "\n";
    for (const auto& t : list)
        s += detail::dump_line(t) + "\n";
    return s;
}

/// Writes the text dump of reactor `r`'s tasks to `out`.
inline void dump_tasks(reactor& r, std::ostream& out) {
    out << dump_tasks(r);
}

namespace detail {

/// Per thread, for each signal: how many reactors made on it block the signal for
/// CONET_DUMP_SIGNAL, and whether it was blocked before the first did (then it stays blocked
/// after the last is gone; else the last one unblocks it).
struct dump_signal_blocks {
    std::uint16_t users[NSIG] = {};
    bool was_blocked[NSIG] = {};
};
inline thread_local dump_signal_blocks dump_signals_blocked{};

/// Blocks `number` on the calling thread for a reactor's signalfd (see dump_signal_blocks).
inline void block_dump_signal(int number) noexcept {
    sigset_t set, before;
    sigemptyset(&set);
    sigaddset(&set, number);
    ::pthread_sigmask(SIG_BLOCK, &set, &before);
    dump_signal_blocks& b = dump_signals_blocked;
    if (b.users[number]++ == 0) b.was_blocked[number] = sigismember(&before, number) == 1;
}

/// Undoes block_dump_signal(number) on the calling thread. `fd`, the reactor's signalfd if
/// any, is drained first: a signal that came after the loop's last turn is dropped, not
/// delivered (its default action would end the process).
inline void unblock_dump_signal(int number, int fd) noexcept {
    dump_signal_blocks& b = dump_signals_blocked;
    if (b.users[number] == 0 || --b.users[number] != 0 || b.was_blocked[number]) return;
    signalfd_siginfo info;
    while (fd >= 0 && ::read(fd, &info, sizeof info) == sizeof info) {
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, number);
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

/// The loop's side of CONET_DUMP_SIGNAL: a signalfd waited on by a waiter that never resumes
/// anything (its try dumps and goes on waiting), so it keeps no run() from ending. Registered
/// at the reactor's first turn (a descriptor registers on its loop's thread, while it runs);
/// deleted when the reactor goes (its loop hook), which gives the signal back to the thread
/// that made the reactor, if it is the thread destroying it (another thread's mask cannot be
/// changed: the signal then stays blocked on the reactor's).
class dump_signal_watch : private deferred_action, private loop_hook, private waiter {
public:
    dump_signal_watch(reactor& r, int signal_fd, int number)
        : waiter(&dump_signal_watch::attempt_dump), r_(r), fd_(signal_fd), number_(number),
          thread_(::pthread_self()) {
        watching().fetch_add(1, memory_order_relaxed);
        deferred_action::run = &dump_signal_watch::start;
        on_loop_destroyed = &dump_signal_watch::gone;
        auto& core = task_dump_access::core(r);
        core.hooks.push_back(static_cast<loop_hook&>(*this));
        core.deferred.push_back(static_cast<deferred_action&>(*this));
        const registry_guard lock;
        next_ = registry();
        if (next_) next_->prev_ = this;
        registry() = this;
    }

private:
    static void start(deferred_action& a) noexcept {
        auto& self = static_cast<dump_signal_watch&>(a);
        if (!self.fd_.wait(direction::read, self))
            std::fprintf(stderr, "conet: CONET_DUMP_SIGNAL: cannot wait for the signal (%s)\n",
                         self.ec.message().c_str());
    }
    static void gone(loop_hook& h) noexcept {
        auto* self = &static_cast<dump_signal_watch&>(h);
        {
            // (once out, no other reactor posts it a dump: what was posted is disposed of)
            const registry_guard lock;
            if (self->prev_)
                self->prev_->next_ = self->next_;
            else
                registry() = self->next_;
            if (self->next_) self->next_->prev_ = self->prev_;
        }
        watching().fetch_sub(1, memory_order_relaxed);
        if (::pthread_equal(self->thread_, ::pthread_self()))
            unblock_dump_signal(self->number_, self->fd_.native_handle());
        delete self;
    }

    // The signal came (or a spurious wake-up): drain the signalfd, dump once if it held one.
    static bool attempt_dump(waiter& w) noexcept {
        auto& self = static_cast<dump_signal_watch&>(w);
        bool signalled = false;
        signalfd_siginfo info;
        while (::read(self.fd_.native_handle(), &info, sizeof info) == sizeof info)
            signalled = true;
        if (signalled) {
            // A signal sent to the process is read by one reactor: the others are asked to dump
            // too, each on its own thread at its next turn (a reactor that never runs again
            // does not).
            self.dump(0);
            const int asking = static_cast<int>(::syscall(SYS_gettid));
            const registry_guard lock;
            for (dump_signal_watch* other = registry(); other; other = other->next_) {
                if (other == &self || other->number_ != self.number_) continue;
                try {
                    other->r_.post([other, asking] { other->dump(asking); });
                } catch (...) { // no memory: that reactor does not dump
                }
            }
        }
        return false; // wait on
    }

    // Dumps this reactor on stderr, under a line that says which it is: with several (a
    // reactor_pool), their tasks' ids do not tell them apart. `asking`: the thread of the
    // reactor that read the signal, if not this one.
    void dump(int asking) noexcept {
        try {
            char head[200];
            const int others = watching().load(memory_order_relaxed);
            int used = std::snprintf(head, sizeof head,
                                     "conet: CONET_DUMP_SIGNAL (signal %d): the reactor on "
                                     "thread %d",
                                     number_, static_cast<int>(::syscall(SYS_gettid)));
            if (others > 1 && used > 0 && static_cast<std::size_t>(used) < sizeof head)
                used += std::snprintf(head + used, sizeof head - static_cast<std::size_t>(used),
                                      ", one of %d reactors watching this signal", others);
            if (asking && used > 0 && static_cast<std::size_t>(used) < sizeof head)
                std::snprintf(head + used, sizeof head - static_cast<std::size_t>(used),
                              " (the signal was read by the reactor on thread %d)", asking);
            std::string dump = head;
            dump += "\n";
            dump += dump_tasks(r_);
            std::fwrite(dump.data(), 1, dump.size(), stderr);
            std::fflush(stderr);
        } catch (...) {
            std::fputs("conet: task dump: out of memory\n", stderr);
        }
    }

    // Every watch of the process (any signal), so that the one that reads a signal can have
    // the others dump.
    static dump_signal_watch*& registry() noexcept {
        static dump_signal_watch* first = nullptr;
        return first;
    }
    struct registry_guard {
        static ::pthread_mutex_t& lock() noexcept {
            static ::pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
            return m;
        }
        registry_guard() noexcept { ::pthread_mutex_lock(&lock()); }
        ~registry_guard() { ::pthread_mutex_unlock(&lock()); }
        registry_guard(const registry_guard&) = delete;
        registry_guard& operator=(const registry_guard&) = delete;
    };

    // How many reactors of the process watch a signal for a dump (any signal).
    static atomic<int>& watching() noexcept {
        static atomic<int> count{0}; // (constant-initialized: no guard)
        return count;
    }

    reactor& r_;
    descriptor fd_;
    int number_;                        // the signal
    pthread_t thread_;                  // the thread whose mask blocks it
    dump_signal_watch* prev_ = nullptr; // in registry(), under its lock
    dump_signal_watch* next_ = nullptr;
};

inline int signal_number(const char* name) noexcept {
    static const struct {
        const char* name;
        int number;
    } known[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2},   {"HUP", SIGHUP},
                 {"QUIT", SIGQUIT}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR}};
    char* end = nullptr;
    const long n = std::strtol(name, &end, 10);
    if (*name && *end == '\0') return n > 0 && n < NSIG ? static_cast<int>(n) : 0;
    if (std::strncmp(name, "SIG", 3) == 0) name += 3;
    for (const auto& k : known)
        if (std::strcmp(k.name, name) == 0) return k.number;
    return 0;
}

/// CONET_DUMP_SIGNAL's start: blocks the signal on the calling thread (the reactor's, made
/// before other threads are started, as for conet::signal_set) and reads it through a
/// signalfd on the loop. When the reactor is destroyed (on that thread), the thread's mask is
/// given back as it was.
inline void start_dump_on_signal(reactor& r, const char* name) {
    const int number = signal_number(name);
    if (number == 0) {
        std::fprintf(stderr,
                     "conet: CONET_DUMP_SIGNAL=%s: not a signal (SIGUSR1, USR2, HUP, "
                     "QUIT, WINCH, PWR or a number)\n",
                     name);
        return;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, number);
    block_dump_signal(number);
    const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        std::fprintf(stderr, "conet: CONET_DUMP_SIGNAL: signalfd failed: %s\n",
                     std::strerror(errno));
        unblock_dump_signal(number, -1);
        return;
    }
    try {
        new dump_signal_watch(r, fd, number);
    } catch (...) {
        ::close(fd);
        unblock_dump_signal(number, -1);
        throw;
    }
}

/// Tells reactor.hpp that this header is here (a reactor made with CONET_DUMP_SIGNAL set
/// calls start_dump_on_signal), once per program, before main().
inline const bool dump_signal_known = (start_dump_signal = &start_dump_on_signal, true);

} // namespace detail
} // namespace conet

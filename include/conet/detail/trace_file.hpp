// conet/detail/trace_file.hpp - CONET_TRACE=FILE: the loop's trace as a file that Chrome's
// and Perfetto's trace viewers open (the Trace Event Format, JSON), and that
// docs/trace_to_svg.py draws.
//
// What the file holds: one process (the program), one thread per reactor ("reactor 1", ...:
// its epoll_wait calls as slices, the events they return as instants), and, below it, one
// row per coroutine (an async track, "coroutine N": the frame the loop resumes, numbered in
// the order the reactor first meets it): a slice for each span it runs from a resumption by
// the loop until it suspends, and instants for its waits, its wake-ups, its timers and
// cancellations, with the descriptor and operation as arguments. Tasks have no names yet, so a
// row is a frame: a coroutine whose frame reuses the memory of one that ended continues that
// row (one coroutine after another on it, never two at once); a coroutine that another
// resumes inline (a task's continuation, when_all's branches as they start) runs within that
// one's slice.
//
// Always valid JSON on disk: the file starts as an empty trace, and each flush writes the
// events buffered since the last one together with the closing brackets, in one pwrite()
// that a later flush overwrites from the brackets on. Flushed: when 64 KiB of events have
// gathered, before a reactor sleeps in epoll_wait, when a reactor is destroyed, and at
// exit(). So a program killed by a signal it does not handle (Ctrl-C without a signal_set)
// or ended by std::terminate (an exception nobody catches) leaves a valid file that lacks
// the events since the loop last slept: what a busy loop did in its last moments, at most
// 64 KiB of events. (Killed in the middle of that pwrite itself, the file may lack its
// closing brackets; docs/trace_to_svg.py mends that.)
//
// Costs nothing measurable while off: nothing of this file runs, and the reactor tests one
// pointer per resumption it makes from its queues (ready, expired, deferred tries, urgent);
// the resumption an event makes, an echo's every round trip, tests nothing more (its test of
// loop_core::attention covers the trace). While on, each event is a clock read, a snprintf and
// an append under one process-wide lock (several reactors share the file).
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>

namespace conet::detail {

/// The file CONET_TRACE names, shared by every reactor of the process that traces into it.
/// A plain aggregate with constant initialisation: nothing to construct or destroy around
/// main(), so a reactor made or destroyed at any time finds it usable.
struct trace_file {
    static constexpr std::size_t capacity = 64 * 1024; // events gathered before a flush
    static constexpr const char footer[] = "\n]}\n";

    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    int fd = -1;
    int users = 0; // reactors tracing into it now
    off_t end = 0; // where the footer starts on disk
    char* buffer = nullptr;
    std::size_t used = 0;
    bool first = true;    // no event written yet (no comma before the next)
    bool at_exit = false; // the exit flush is registered
    std::uint32_t reactors = 0;
    timespec start{};
    char path[PATH_MAX]{};

    static trace_file& get() noexcept {
        static trace_file file; // constant-initialised: no guard, no destructor
        return file;
    }

    /// Microseconds since the trace began (the first time the file was opened).
    double now_us() const noexcept {
        timespec t;
        ::clock_gettime(CLOCK_MONOTONIC, &t);
        return static_cast<double>(t.tv_sec - start.tv_sec) * 1e6 +
               static_cast<double>(t.tv_nsec - start.tv_nsec) / 1e3;
    }

    /// Opens `name` for one more reactor (under `lock`); returns the reactor's number (its
    /// tid), or 0 after saying on stderr why it cannot. The same file opened again after its
    /// last reactor went (a program making reactors one after another) is continued, not
    /// started afresh; another name while the file is in use traces into the file in use.
    std::uint32_t open_for_reactor(const char* name) noexcept {
        if (users > 0) {
            if (std::strcmp(name, path) != 0)
                std::fprintf(stderr,
                             "conet: CONET_TRACE=%s: a reactor already traces into %s; "
                             "this one does too\n",
                             name, path);
            ++users;
            return ++reactors;
        }
        if (!buffer) {
            buffer = static_cast<char*>(std::malloc(capacity + sizeof footer));
            if (!buffer) {
                std::fprintf(stderr, "conet: CONET_TRACE=%s: no memory for the trace\n", name);
                return 0;
            }
        }
        const bool again = end > 0 && std::strcmp(name, path) == 0;
        if (std::strlen(name) >= sizeof path) {
            std::fprintf(stderr, "conet: CONET_TRACE: the file name is too long\n");
            return 0;
        }
        fd = ::open(name, O_WRONLY | O_CREAT | O_CLOEXEC | (again ? 0 : O_TRUNC), 0644);
        if (fd < 0) {
            std::fprintf(stderr, "conet: CONET_TRACE=%s: cannot open it (%s): no trace\n", name,
                         std::strerror(errno));
            return 0;
        }
        if (!again) {
            std::strcpy(path, name);
            ::clock_gettime(CLOCK_MONOTONIC, &start);
            first = true;
            end = 0;
            used = 0;
            reactors = 0;
            append_raw("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
            char line[256];
            const int n =
                std::snprintf(line, sizeof line,
                              "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"tid\":0,"
                              "\"args\":{\"name\":\"%s\"}}",
                              static_cast<int>(::getpid()), program_name());
            append_event(line, n);
            flush();
        }
        if (!at_exit) {
            at_exit = true;
            std::atexit([] {
                trace_file& f = get();
                ::pthread_mutex_lock(&f.lock);
                f.flush();
                ::pthread_mutex_unlock(&f.lock);
            });
        }
        ++users;
        return ++reactors;
    }

    /// A reactor stops tracing (under `lock`): flushed, and closed after the last one.
    void close_for_reactor() noexcept {
        flush();
        if (--users == 0) {
            ::close(fd);
            fd = -1;
        }
    }

    /// Appends one event (a JSON object of `n` bytes; under `lock`).
    void append_event(const char* event, int n) noexcept {
        if (n <= 0) return;
        auto size = static_cast<std::size_t>(n);
        if (!first) append_raw(",\n");
        first = false;
        if (used + size > capacity) flush();
        if (size > capacity) return; // (events are a few hundred bytes)
        std::memcpy(buffer + used, event, size);
        used += size;
    }

    /// Writes what is buffered and the footer after it, in one pwrite (under `lock`).
    void flush() noexcept {
        if (fd < 0) return;
        std::memcpy(buffer + used, footer, sizeof footer - 1);
        const std::size_t total = used + sizeof footer - 1;
        std::size_t done = 0;
        while (done < total) {
            const auto w =
                ::pwrite(fd, buffer + done, total - done, end + static_cast<off_t>(done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break; // a full disk: the file keeps what it had
            done += static_cast<std::size_t>(w);
        }
        end += static_cast<off_t>(used);
        used = 0;
    }

private:
    void append_raw(const char* text) noexcept {
        const std::size_t n = std::strlen(text);
        if (used + n > capacity) flush();
        std::memcpy(buffer + used, text, n);
        used += n;
    }

    // The program's name (its argv[0] without the directory, from /proc/self/cmdline),
    // without what a JSON string would need escaped.
    static const char* program_name() noexcept {
        static char name[64];
        char raw[256]{};
        const int fd = ::open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            [[maybe_unused]] const auto n = ::read(fd, raw, sizeof raw - 1);
            ::close(fd);
        }
        const char* base = std::strrchr(raw, '/');
        base = base ? base + 1 : raw;
        std::size_t j = 0;
        for (std::size_t i = 0; base[i] && j + 1 < sizeof name; ++i)
            if (static_cast<unsigned char>(base[i]) >= 0x20 && base[i] != '"' && base[i] != '\\')
                name[j++] = base[i];
        name[j] = '\0';
        return name;
    }
};

/// What CONET_TRACE asks for: nothing (unset, empty or 0), the text trace (1), or a file
/// (any other value: its name).
enum class trace_mode { off, text, file };

inline trace_mode trace_mode_requested() noexcept {
    const char* value = std::getenv("CONET_TRACE");
    if (!value || !*value || std::strcmp(value, "0") == 0) return trace_mode::off;
    return std::strcmp(value, "1") == 0 ? trace_mode::text : trace_mode::file;
}

/// One reactor's side of the trace file: its thread row, and its coroutines' rows (a frame
/// address and the number it was given, in an open-addressed table that only grows). Used on
/// the reactor's thread only; the file itself is shared under its lock.
class trace_log {
public:
    /// The log of a new reactor when CONET_TRACE names a file that opens, else nullptr.
    [[gnu::cold, gnu::noinline]] static trace_log* make() noexcept {
        if (trace_mode_requested() != trace_mode::file) return nullptr;
        auto* log = new (std::nothrow) trace_log;
        if (!log) return nullptr;
        trace_file& f = trace_file::get();
        ::pthread_mutex_lock(&f.lock);
        log->tid_ = f.open_for_reactor(std::getenv("CONET_TRACE"));
        ::pthread_mutex_unlock(&f.lock);
        if (log->tid_ == 0) {
            delete log;
            return nullptr;
        }
        log->pid_ = static_cast<int>(::getpid());
        log->event("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%u,"
                   "\"args\":{\"name\":\"reactor %u\"}}",
                   log->pid_, log->tid_, log->tid_);
        return log;
    }

    trace_log(const trace_log&) = delete;
    trace_log& operator=(const trace_log&) = delete;
    ~trace_log() {
        if (tid_ != 0) { // (0: the file did not open, make() gives up)
            trace_file& f = trace_file::get();
            ::pthread_mutex_lock(&f.lock);
            f.close_for_reactor();
            ::pthread_mutex_unlock(&f.lock);
        }
        delete[] rows_;
    }

    // The reactor's thread row.

    /// epoll_wait is called: flushes first if it may sleep (an idle program's trace is
    /// then on disk while it waits), and notes when it was called.
    void poll_starts(int timeout_ms) noexcept {
        if (timeout_ms != 0) flush();
        poll_start_ = trace_file::get().now_us();
    }
    /// epoll_wait returned `n` events: one slice from poll_starts to now.
    void polled(int n, int timeout_ms) noexcept {
        const double now = trace_file::get().now_us();
        event("{\"ph\":\"X\",\"name\":\"epoll_wait\",\"pid\":%d,\"tid\":%u,\"ts\":%.3f,"
              "\"dur\":%.3f,\"args\":{\"timeout_ms\":%d,\"events\":%d}}",
              pid_, tid_, poll_start_, now - poll_start_, timeout_ms, n);
    }
    /// epoll reported `what` (readable, writable, ...) on `fd`.
    void fd_reports(std::size_t fd, const char* what) noexcept {
        event("{\"ph\":\"i\",\"s\":\"t\",\"name\":\"fd %zu:%s\",\"pid\":%d,\"tid\":%u,"
              "\"ts\":%.3f,\"args\":{\"fd\":%zu,\"events\":\"%s\"}}",
              fd, what, pid_, tid_, trace_file::get().now_us(), fd, what + (*what == ' '));
    }
    /// A posted function ran from `start` (now_us()) to now.
    void posted(double start) noexcept {
        event("{\"ph\":\"X\",\"name\":\"posted function\",\"pid\":%d,\"tid\":%u,\"ts\":%.3f,"
              "\"dur\":%.3f}",
              pid_, tid_, start, trace_file::get().now_us() - start);
    }

    // The coroutines' rows.

    /// The loop resumes the coroutine whose frame is `frame`: its slice begins. Returns its
    /// row, for span_ends.
    std::uint32_t span_begins(void* frame) noexcept {
        const std::uint32_t row = row_of(frame, false);
        async_event('b', row, "coroutine %u\"", row);
        return row;
    }
    /// The coroutine resumed at span_begins(row) suspended (or ended): its slice ends.
    void span_ends(std::uint32_t row) noexcept { async_event('e', row, "coroutine %u\"", row); }

    /// An instant on the row of `frame`: `name` (JSON-safe), and `args` (the inside of a
    /// JSON object, formatted) beside "event": `kind` (wait, wake, timer, timeout, cancel,
    /// close).
    [[gnu::format(printf, 5, 6)]] void instant(void* frame, const char* name, const char* kind,
                                               const char* args, ...) noexcept {
        const std::uint32_t row = row_of(frame, true);
        char inner[192];
        va_list list;
        va_start(list, args);
        std::vsnprintf(inner, sizeof inner, args, list);
        va_end(list);
        async_event('n', row, "%s\",\"args\":{\"event\":\"%s\"%s%s}", name, kind, *inner ? "," : "",
                    inner);
    }

    /// Writes the file's buffer out now.
    void flush() noexcept {
        trace_file& f = trace_file::get();
        ::pthread_mutex_lock(&f.lock);
        f.flush();
        ::pthread_mutex_unlock(&f.lock);
    }

    /// `text` with the characters a JSON string cannot hold as they are left out (operation
    /// names are plain words; this only keeps a strange one from breaking the file).
    static void json_copy(char* out, std::size_t size, const char* text) noexcept {
        std::size_t j = 0;
        for (std::size_t i = 0; text[i] && j + 1 < size; ++i)
            if (static_cast<unsigned char>(text[i]) >= 0x20 && text[i] != '"' && text[i] != '\\')
                out[j++] = text[i];
        out[j] = '\0';
    }

private:
    trace_log() noexcept = default;

    [[gnu::format(printf, 2, 3)]] void event(const char* format, ...) noexcept {
        char line[512];
        va_list list;
        va_start(list, format);
        const int n = std::vsnprintf(line, sizeof line, format, list);
        va_end(list);
        if (n <= 0 || static_cast<std::size_t>(n) >= sizeof line) return;
        trace_file& f = trace_file::get();
        ::pthread_mutex_lock(&f.lock);
        f.append_event(line, n);
        ::pthread_mutex_unlock(&f.lock);
    }

    // One event of row `row`'s async track; `rest` formats what follows `"name":"`.
    [[gnu::format(printf, 4, 5)]] void async_event(char phase, std::uint32_t row, const char* rest,
                                                   ...) noexcept {
        char tail[320];
        va_list list;
        va_start(list, rest);
        const int n = std::vsnprintf(tail, sizeof tail, rest, list);
        va_end(list);
        if (n <= 0 || static_cast<std::size_t>(n) >= sizeof tail) return;
        event("{\"ph\":\"%c\",\"cat\":\"coroutine\",\"id\":\"%u.%u\",\"pid\":%d,\"tid\":%u,"
              "\"ts\":%.3f,\"name\":\"%s}",
              phase, tid_, row, pid_, tid_, trace_file::get().now_us(), tail);
    }

    // The row of `frame`, numbered on first sight; first met by an instant (a coroutine that
    // started inside another's span), it is named first, so that a viewer names the track.
    std::uint32_t row_of(void* frame, bool by_instant) noexcept {
        if (2 * (count_ + 1) > capacity_ && !grow()) return 0;
        std::size_t i = slot(frame, rows_, capacity_);
        if (rows_[i].frame != frame) {
            rows_[i] = {frame, ++count_};
            if (by_instant)
                async_event('n', count_, "coroutine %u\",\"args\":{\"event\":\"first seen\"}",
                            count_);
        }
        return rows_[i].row;
    }

    struct entry {
        void* frame = nullptr;
        std::uint32_t row = 0;
    };

    static std::size_t slot(void* frame, const entry* table, std::size_t capacity) noexcept {
        auto h = reinterpret_cast<std::uintptr_t>(frame);
        h ^= h >> 17;
        h *= 0x9e3779b97f4a7c15ULL & UINTPTR_MAX;
        std::size_t i = static_cast<std::size_t>(h) & (capacity - 1);
        while (table[i].frame && table[i].frame != frame)
            i = (i + 1) & (capacity - 1);
        return i;
    }

    bool grow() noexcept {
        const std::size_t bigger = capacity_ ? 2 * capacity_ : 64;
        auto* table = new (std::nothrow) entry[bigger];
        if (!table) return false;
        for (std::size_t i = 0; i < capacity_; ++i)
            if (rows_[i].frame) table[slot(rows_[i].frame, table, bigger)] = rows_[i];
        delete[] rows_;
        rows_ = table;
        capacity_ = bigger;
        return true;
    }

    int pid_ = 0;
    std::uint32_t tid_ = 0;
    double poll_start_ = 0;
    entry* rows_ = nullptr;
    std::size_t capacity_ = 0;
    std::uint32_t count_ = 0;
};

} // namespace conet::detail

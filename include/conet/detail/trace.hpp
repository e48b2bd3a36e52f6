// conet/detail/trace.hpp - the loop made visible: with CONET_TRACE=1 in the environment, a
// reactor prints one line on stderr per event worth teaching (an operation that has to wait,
// the epoll wake-up that ends the wait, a timer expiring, a cancellation); with CONET_TRACE
// naming a file, it logs the same events and the spans its coroutines run in that file, for a
// trace viewer (detail/trace_file.hpp). Each reactor reads the variable once, when it is made;
// while it is off, a trace point costs a load and a predictable branch, on the paths that
// wait (never on an operation that completes at once).
#pragma once

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "await_record.hpp"
#include "trace_file.hpp"

namespace conet::detail {

/// " (task "NAME")" for the trace line of an operation of chain `c`, or "" if unnamed.
struct traced_name {
    char text[80] = "";
    explicit traced_name(const cancel_state* c) noexcept {
        const char* name = c && task_name_of ? task_name_of(c) : nullptr;
        if (name) std::snprintf(text, sizeof text, " (task \"%s\")", name);
    }
};

/// True if CONET_TRACE is set to 1 (read once per reactor, when it is made).
inline bool trace_requested() noexcept {
    return trace_mode_requested() == trace_mode::text;
}

/// Prints one trace line: "conet: " and the formatted text. Out of line: it never runs
/// unless tracing is on.
[[gnu::noinline, gnu::cold, gnu::format(printf, 1, 2)]] inline void trace(const char* format,
                                                                          ...) noexcept {
    char line[256];
    va_list args;
    va_start(args, format);
    std::vsnprintf(line, sizeof line, format, args);
    va_end(args);
    std::fprintf(stderr, "conet: %s\n", line);
}

} // namespace conet::detail

// conet/error.hpp - how conet reports failures.
//
// Every operation that can fail comes in two forms:
//
//   * the throwing form, e.g. `co_await conn.recv(buf)`, throws std::system_error whose code()
//     is the errno (or a conet::error) and whose what() names the operation, e.g.
//     "connect 127.0.0.1:9: Connection refused";
//   * the non-throwing form takes a trailing `std::error_code&`, e.g.
//     `co_await conn.recv(buf, ec)`; it never throws for I/O failures, clears `ec` on success
//     and sets it on failure.
//
// Errors that are not an errno use the conet::error enum below, in its own category, so
// that `ec == conet::error::line_too_long` reads as it should. Timeouts and cancellation
// use the standard std::errc::timed_out and std::errc::operation_canceled.
//
// Cancelled or closed? std::errc::operation_canceled means the awaiting task itself was
// cancelled (through a handle, a task_group, when_any, with_timeout on a task): it should
// clean up and end. conet::error::closed means the socket was closed while the operation
// waited on it, by another task of the program: the task was not cancelled and is free to
// go on (a server task whose idle connection was closed by a reaper, say).
//
// A stream transfer that fails part way (send, send_all, recv, recv_exact) throws a
// conet::transfer_error, a std::system_error that also says how many bytes did go through.
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

namespace conet {

/// Failures specific to conet (everything else is a plain errno in std::generic_category).
enum class error {
    line_too_long = 1,  ///< a peer sent a line longer than the reader's limit
    end_of_stream,      ///< the peer closed the stream before the requested bytes arrived
    already_waiting,    ///< a second coroutine tried to wait for the same direction of a socket
    no_reactor,         ///< an operation had to wait but no reactor runs on this thread
    wrong_reactor,      ///< a socket, group or handle used on a thread other than its reactor's
    datagram_truncated, ///< a datagram was larger than the buffer given to receive it
    closed, ///< the socket (or task group) was closed by another task while the operation waited
    port_out_of_range,     ///< a service given as a number is not a port (0 to 65535)
    descriptor_replaced,   ///< a watched_fd's descriptor was closed, or now names another file
    channel_closed,        ///< a value sent on a closed channel (it was not queued)
    address_too_long,      ///< a UNIX socket path or abstract name does not fit in sockaddr_un
    descriptors_truncated, ///< descriptors passed with the data did not fit (MSG_CTRUNC)
    file_ended,            ///< send_file: the file ended before the range asked for
};

namespace detail {

class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "conet"; }
    // One std::string made in one place: the texts are plain pointers, so that every file
    // that uses the category does not compile a string construction per case.
    std::string message(int value) const override { return text(value); }

private:
    static const char* text(int value) noexcept {
        switch (static_cast<error>(value)) {
        case error::line_too_long:
            return "Line longer than the reader's limit";
        case error::end_of_stream:
            return "Unexpected end of stream";
        case error::already_waiting:
            return "Another coroutine is already waiting on this socket (or watched descriptor) in "
                   "the same direction";
        case error::no_reactor:
            return "No conet::reactor is running on this thread";
        case error::wrong_reactor:
            return "Used on a thread other than its reactor's (a socket is handed over with "
                   "leave_reactor() on its own reactor first; a task group, its handles and "
                   "its join stay on theirs)";
        case error::datagram_truncated:
            return "Datagram larger than the receive buffer";
        case error::closed:
            return "Closed (by another task) while the operation was waiting";
        case error::port_out_of_range:
            return "Port number out of range (0 to 65535)";
        case error::descriptor_replaced:
            return "The watched descriptor was closed, or now names another file (its library "
                   "reconnected?): watch the new one with a new watched_fd";
        case error::channel_closed:
            return "Sent on a closed channel (the value was not queued)";
        case error::address_too_long:
            return "UNIX socket address too long (a path or abstract name holds at most 107 "
                   "bytes; it is never cut short)";
        case error::descriptors_truncated:
            return "More descriptors arrived than the receive had room for (MSG_CTRUNC): the "
                   "kernel closed the rest, and those received were closed too";
        case error::file_ended:
            return "The file ended before the range to send did";
        }
        return "Unknown conet error";
    }
};

} // namespace detail

/// The category of conet::error values.
inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

/// Makes `std::error_code ec = conet::error::...` and comparisons work.
inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// What the throwing form of a stream transfer throws when it fails part way: the error,
/// and how many bytes were sent or received before it (none lost from the count).
class transfer_error : public std::system_error {
public:
    transfer_error(std::error_code ec, const std::string& what, std::size_t transferred)
        : std::system_error(ec, what), transferred_(transferred) {}

    /// Bytes sent (send, send_all) or received (recv, recv_exact) before the failure.
    std::size_t transferred() const noexcept { return transferred_; }

private:
    std::size_t transferred_;
};

namespace detail {

/// The error_code for an errno value.
inline std::error_code errno_code(int err) noexcept {
    return {err, std::generic_category()};
}

/// Throws std::system_error for `ec`; `what` names the operation and its target.
[[noreturn]] inline void throw_error(std::error_code ec, const std::string& what) {
    throw std::system_error(ec, what);
}

} // namespace detail
} // namespace conet

template <>
struct std::is_error_code_enum<conet::error> : std::true_type {};

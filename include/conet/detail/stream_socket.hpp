// conet/detail/stream_socket.hpp - what every connected stream socket offers (recv,
// recv_exact, send, send_all, shutdown), written once for TCP and UNIX streams.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>

#include <string>
#include <system_error>
#include <utility>

#include "../buffer.hpp"
#include "../buffer_pool.hpp"
#include "../error.hpp"
#include "socket_ops.hpp"
#include "stream_ops.hpp"

namespace conet {

/// Which direction(s) shutdown() ends.
enum class shutdown_type { receive = SHUT_RD, send = SHUT_WR, both = SHUT_RDWR };

namespace detail {

/// How accept() makes its result, for each kind of stream listener: specialized beside the
/// result type (tcp.hpp: `accepted`; unix.hpp: `unix_accepted`) with `address`, the
/// sockaddr holder accept4 fills, `capacity`, the size of the sockaddr it holds, and
/// `take(result, fd, address, ec)`, which makes the
/// stream and reads the peer's address (setting `ec`, and closing the stream, if it cannot).
template <class Accepted>
struct accept_traits;

/// accept() on a stream listener, written once for TCP and UNIX streams: takes the next
/// connection, made non-blocking and close-on-exec, and skips the ones accept(2) says to
/// retry (aborted before they were taken).
template <class Accepted>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_accept_op;
template <class Accepted>
class basic_accept_op : public io_awaiter<basic_accept_op<Accepted>, direction::read> {
    using traits = accept_traits<Accepted>;

public:
    basic_accept_op(descriptor& listener, std::error_code* out) noexcept
        : basic_accept_op::io_awaiter(out), listener_(&listener) {}

    bool try_once() noexcept {
        for (;;) {
            typename traits::address peer;
            peer.length = traits::capacity;
            const int conn_fd = counted(::accept4(listener_->native_handle(), peer.get(),
                                                  &peer.length, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (conn_fd >= 0) {
                traits::take(accepted_, conn_fd, peer, this->ec);
                return true;
            }
            const int err = errno;
            if (would_block(err)) return false;
            if (accept_skips(err)) continue;
            // EMFILE/ENFILE/ENOBUFS/ENOMEM are reported: the listener stays usable and the
            // pending connection waits in the backlog until descriptors are freed.
            this->ec = errno_code(err);
            return true;
        }
    }
    descriptor& target() noexcept { return *listener_; }
    Accepted result() noexcept { return std::move(accepted_); }
    Accepted failed_result() noexcept { return {}; }
    std::string describe() const { return "accept"; }

private:
    descriptor* listener_;
    Accepted accepted_;
};

/// The operations of a connected stream socket over `Base` (socket_base for TCP, whose
/// addresses are endpoints; unix_socket_base for UNIX streams), reading the way `Reads` says
/// (see stream_ops.hpp). tcp_stream and unix_stream derive from it and add how they are made
/// and addressed.
template <class Base, class Reads = plain_reads>
class stream_base : public Base {
public:
    using Base::Base;

    /// Receives up to `buf.size()` bytes; yields how many arrived, 0 at end of stream. An
    /// empty `buf` fails with std::errc::invalid_argument (its 0 would mean end of stream).
    basic_read_op<Reads> recv(mutable_buffer buf) noexcept {
        return {*this, buf, false, "recv", nullptr};
    }
    basic_read_op<Reads> recv(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, false, "recv", &ec};
    }

    /// Receives some bytes into several buffers, filling them in order, in one system call
    /// (up to 1,024 buffers): a fixed-size header into its own buffer and what follows into
    /// another. Yields how many bytes arrived in all, 0 at end of stream; buffers with no
    /// room in all fail with std::errc::invalid_argument.
    basic_scatter_read_op<Reads> recv(std::span<const mutable_buffer> bufs) noexcept {
        return {*this, bufs, nullptr};
    }
    basic_scatter_read_op<Reads> recv(std::span<const mutable_buffer> bufs,
                                      std::error_code& ec) noexcept {
        return {*this, bufs, &ec};
    }

    /// Sends `count` bytes of the open file `file` (a descriptor the program owns; its own
    /// offset is left alone) from `offset`, with sendfile(2): the kernel copies from the
    /// page cache, never through the program's memory. Waits while the peer's window is
    /// full, as send_all does; yields the count sent. A file that ends before the range does
    /// is conet::error::file_ended, the count that went out in the transfer_error (or the
    /// yield of the non-throwing form).
    send_file_op send_file(int file, off_t offset, std::size_t count) noexcept {
        return {*this, file, offset, count, nullptr};
    }
    send_file_op send_file(int file, off_t offset, std::size_t count,
                           std::error_code& ec) noexcept {
        return {*this, file, offset, count, &ec};
    }

    /// Receives into a buffer borrowed from `pool` once data is there (an idle connection
    /// holds none): `auto data = co_await conn.recv(pool);` yields the buffer with what
    /// arrived, empty at end of stream; destroying it gives the buffer back to the pool.
    basic_pooled_read_op<Reads> recv(buffer_pool& pool) noexcept { return {*this, pool, nullptr}; }
    basic_pooled_read_op<Reads> recv(buffer_pool& pool, std::error_code& ec) noexcept {
        return {*this, pool, &ec};
    }

    /// Sends some of `buf` (at least one byte); yields how many were sent.
    send_op send(const_buffer buf) noexcept { return {*this, buf, false, nullptr}; }
    send_op send(const_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, false, &ec};
    }

    /// Sends every byte of `buf`, waiting as often as the peer's window requires; yields the
    /// count sent (all of it, or in the non-throwing form, what went out before the error).
    send_op send_all(const_buffer buf) noexcept { return {*this, buf, true, nullptr}; }
    send_op send_all(const_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, true, &ec};
    }

    /// Sends some of `bufs`, in order, in one system call (at least one byte, unless all
    /// are empty); yields how many bytes were sent.
    gather_send_op send(std::span<const const_buffer> bufs) noexcept {
        return {*this, bufs, false, nullptr};
    }
    gather_send_op send(std::span<const const_buffer> bufs, std::error_code& ec) noexcept {
        return {*this, bufs, false, &ec};
    }

    /// Sends every byte of `bufs`, in order, as one stream: a header and a body without
    /// copying them together, in as few system calls as the peer's window allows (up to
    /// 1,024 buffers per call). Yields the count sent, as send_all(buf) does. `bufs` (an
    /// array or vector of const_buffer) and what it points to must live until it completes.
    gather_send_op send_all(std::span<const const_buffer> bufs) noexcept {
        return {*this, bufs, true, nullptr};
    }
    gather_send_op send_all(std::span<const const_buffer> bufs, std::error_code& ec) noexcept {
        return {*this, bufs, true, &ec};
    }

    /// Fills all of `buf`; the stream ending first is conet::error::end_of_stream (the
    /// non-throwing form then yields how many bytes did arrive). An empty `buf` is filled at
    /// once: it yields 0 without reading.
    basic_read_op<Reads> recv_exact(mutable_buffer buf) noexcept {
        return {*this, buf, true, "recv_exact", nullptr};
    }
    basic_read_op<Reads> recv_exact(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, true, "recv_exact", &ec};
    }

    /// Ends sending (the peer reads end of stream), receiving, or both.
    void shutdown(shutdown_type how = shutdown_type::send) {
        std::error_code ec;
        shutdown(how, ec);
        throw_if(ec, "shutdown");
    }
    void shutdown(shutdown_type how, std::error_code& ec) noexcept {
        if (!this->usable_here()) {
            ec = error::wrong_reactor;
            return;
        }
        ec.clear();
        if (::shutdown(this->native_handle(), static_cast<int>(how)) < 0) {
            ec = errno_code(errno);
            return;
        }
        // What is shut down ends (reads) or fails (sends) at once from now on: try it, for
        // no edge need come (EPOLLRDHUP is final, see descriptor).
        if (how != shutdown_type::send) this->note_events(EPOLLRDHUP);
        if (how != shutdown_type::receive) this->note_events(EPOLLOUT);
    }
};

} // namespace detail
} // namespace conet

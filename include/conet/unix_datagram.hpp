// conet/unix_datagram.hpp - UNIX domain datagram sockets (SOCK_DGRAM): unix_datagram_socket,
// with udp_socket's operations (send_to / recv_from, connected send / recv, batches, one
// datagram from several buffers) between the processes of one machine.
//
// The operations are udp_socket's, shared with it (detail/datagram_ops.hpp): the same
// awaitables, error forms, cancellation, budget and readiness tracking. What is its own:
// addresses are unix_address (a path, "@name" in the abstract namespace, or unnamed), a
// socket bound to a path removes its socket file on close (as unix_listener does), and
// pair() (socketpair).
//
// Unlike UDP's, its datagrams are neither lost nor reordered: a receiver whose queue is full
// makes the sender wait. A sender that is not bound has no address: its datagrams arrive from
// an unnamed address, which cannot be answered (bind it, or autobind() it, to be answered).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "buffer.hpp"
#include "detail/datagram_ops.hpp"
#include "detail/descriptor_passing.hpp"
#include "detail/io_awaiter.hpp"
#include "detail/socket_ops.hpp"
#include "detail/stream_ops.hpp"
#include "detail/unix_socket.hpp"
#include "error.hpp"
#include "reactor.hpp"
#include "unix_address.hpp"

namespace conet {

/// What unix_datagram_socket::recv_from() yields: how many bytes arrived and who sent them
/// (unnamed for a sender that is not bound).
struct unix_datagram {
    std::size_t size = 0;
    unix_address from;
};

/// One datagram of a unix_datagram_socket's recv_batch (as udp.hpp's datagram_slot): the
/// caller's buffer it goes into, and what the batch says of it. Reused from batch to batch, a
/// slot keeps the memory of its `from`, so that a batch allocates nothing once every slot
/// has held an address as long as the ones that come.
struct unix_datagram_slot {
    mutable_buffer buffer;  ///< where the datagram goes (may be empty: an empty datagram fits)
    std::size_t size = 0;   ///< set by the batch: bytes stored in `buffer`
    unix_address from;      ///< set by the batch: who sent it (unnamed: a sender not bound)
    bool truncated = false; ///< set by the batch: it was larger than `buffer`, the rest is lost
};

/// One datagram of a unix_datagram_socket's send_batch: its bytes and where it goes.
struct outgoing_unix_datagram {
    const_buffer data;
    unix_address to;
};

namespace detail {

/// A unix_address for the datagram operations: a path or name too long for sockaddr_un is
/// error::address_too_long, an unnamed one invalid_argument (see sockaddr_unix::assign).
template <>
struct datagram_addressing<unix_address> {
    using storage = sockaddr_un;
    static std::error_code write(const unix_address& a, storage& out, socklen_t& length) noexcept {
        sockaddr_unix sa;
        if (auto ec = sa.assign(a)) return ec;
        out = sa.address;
        length = sa.length;
        return {};
    }
    static std::error_code read(const storage& in, socklen_t length, unix_address& out) noexcept {
        return sockaddr_unix::read(in, length, out);
    }
    static std::string to_string(const storage& in, socklen_t length) {
        unix_address a;
        (void)sockaddr_unix::read(in, length, a);
        return a.to_string();
    }
};

using unix_recv_from_op = basic_recv_from_op<unix_datagram>;
using unix_datagram_recv_op = basic_recv_op<unix_datagram>;
using unix_send_to_op = basic_send_to_op<unix_address>;

} // namespace detail

/// A UNIX domain datagram socket. Move-only; closes itself on destruction.
///
/// Bound to a path, it makes the socket file, and close() (or destruction) removes that file
/// again if it is still the one it made, exactly as unix_listener does (an abstract name, an
/// adopted socket, leave nothing to remove).
class unix_datagram_socket : public detail::unix_socket_base {
public:
    /// A closed socket.
    unix_datagram_socket() noexcept = default;
    unix_datagram_socket(unix_datagram_socket&&) noexcept = default;
    unix_datagram_socket& operator=(unix_datagram_socket&& other) noexcept {
        if (this != &other) {
            close();
            unix_socket_base::operator=(std::move(other));
            file_ = std::move(other.file_);
        }
        return *this;
    }
    ~unix_datagram_socket() { close(); }

    /// A socket bound to nothing: it can send (to an address, or to the peer given to
    /// connect()), but its datagrams arrive from an unnamed address, which the receiver
    /// cannot answer, and nobody can send to it unless connected to it by pair().
    static unix_datagram_socket open() {
        std::error_code ec;
        auto s = open(ec);
        detail::throw_if(ec, "socket");
        return s;
    }
    static unix_datagram_socket open(std::error_code& ec) noexcept {
        ec.clear();
        const int fd = detail::open_unix_socket(SOCK_DGRAM, ec);
        return fd < 0 ? unix_datagram_socket() : unix_datagram_socket(fd, conet_made);
    }

    /// A socket bound to `where`: a path (the socket file is made, and removed on close) or
    /// "@name". Throws std::system_error ("bind /run/app.sock: Address already in use"); a
    /// path or name over unix_address::max_length bytes is conet::error::address_too_long,
    /// an unnamed address invalid_argument (see autobind()). Nothing is made on failure.
    static unix_datagram_socket bind(const unix_address& where) {
        std::error_code ec;
        auto s = bind(where, ec);
        if (ec) detail::throw_error(ec, "bind " + where.to_string());
        return s;
    }
    static unix_datagram_socket bind(const unix_address& where, std::error_code& ec) noexcept {
        detail::socket_file file;
        const int fd = detail::open_bound_unix_socket(where, SOCK_DGRAM, file, ec);
        if (fd < 0) return {};
        unix_datagram_socket s(fd, conet_made);
        s.file_ = std::move(file);
        return s;
    }

    /// A socket bound to a name the kernel picks in the abstract namespace (Linux's autobind:
    /// five hex digits, read it with local_address()): a client that must be answered, with
    /// no name of its own to choose and no file to remove.
    static unix_datagram_socket autobind() {
        std::error_code ec;
        auto s = autobind(ec);
        detail::throw_if(ec, "bind (autobind)");
        return s;
    }
    static unix_datagram_socket autobind(std::error_code& ec) noexcept {
        auto s = open(ec);
        if (ec) return s;
        sockaddr_un only_family{};
        only_family.sun_family = AF_UNIX;
        // An address of the family alone asks the kernel for a name (unix(7), "Autobind").
        if (::bind(s.native_handle(), reinterpret_cast<const sockaddr*>(&only_family),
                   sizeof only_family.sun_family) < 0) {
            ec = detail::errno_code(errno);
            return {};
        }
        return s;
    }

    /// Two sockets connected to each other (socketpair): each one's send() reaches the
    /// other. Throws std::system_error.
    static std::pair<unix_datagram_socket, unix_datagram_socket> pair() {
        std::error_code ec;
        auto p = pair(ec);
        detail::throw_if(ec, "socketpair");
        return p;
    }
    static std::pair<unix_datagram_socket, unix_datagram_socket>
    pair(std::error_code& ec) noexcept {
        int fds[2];
        if (detail::counted(
                ::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds)) < 0) {
            ec = detail::errno_code(errno);
            return {};
        }
        ec.clear();
        return {unix_datagram_socket(fds[0], conet_made), unix_datagram_socket(fds[1], conet_made)};
    }

    /// Takes ownership of a descriptor that is already a UNIX datagram socket (inherited, or
    /// received with recv_fds) and makes it non-blocking and close-on-exec. Throws
    /// std::system_error (address_family_not_supported for a socket that is not UNIX,
    /// wrong_protocol_type for one that is not a datagram socket); on failure the descriptor
    /// is left open, unchanged and not owned. Its socket file, if any, is not removed.
    static unix_datagram_socket adopt(int fd) {
        std::error_code ec;
        auto s = adopt(fd, ec);
        detail::throw_if(ec, "unix_datagram_socket::adopt");
        return s;
    }
    static unix_datagram_socket adopt(int fd, std::error_code& ec) noexcept {
        ec = detail::prepare_adopted_unix(fd, SOCK_DGRAM, false);
        return ec ? unix_datagram_socket() : unix_datagram_socket(fd);
    }

    /// Fixes the peer (immediate: nothing is awaited): afterwards send()/recv() talk to it,
    /// and only its datagrams arrive. A peer that has closed since makes the next send fail
    /// with connection_refused (and the socket unconnected: the send after it is
    /// not_connected); a path nobody is bound to is no_such_file_or_directory or
    /// connection_refused.
    void connect(const unix_address& peer) {
        std::error_code ec;
        connect(peer, ec);
        if (ec) detail::throw_error(ec, "connect " + peer.to_string());
    }
    void connect(const unix_address& peer, std::error_code& ec) noexcept {
        detail::sockaddr_unix sa;
        if ((ec = sa.assign(peer))) return;
        if (detail::retry_on_eintr(
                [&] { return ::connect(native_handle(), sa.get(), sa.length); }) < 0)
            ec = detail::errno_code(errno);
    }

    /// The peer given to connect() (or the other end of a pair); not_connected before.
    using unix_socket_base::peer_address;

    /// Sends `buf` as one datagram to `to`; yields the byte count. A datagram larger than the
    /// socket's send buffer is message_size; a receiver whose queue is full makes it wait.
    detail::unix_send_to_op send_to(const_buffer buf, const unix_address& to) noexcept {
        return {*this, buf, to, nullptr};
    }
    detail::unix_send_to_op send_to(const_buffer buf, const unix_address& to,
                                    std::error_code& ec) noexcept {
        return {*this, buf, to, &ec};
    }

    /// Receives one datagram; yields its size and sender (unnamed for a sender that is not
    /// bound). Too big for `buf` is conet::error::datagram_truncated (the non-throwing form
    /// yields what fitted); an empty `buf` takes an empty datagram.
    detail::unix_recv_from_op recv_from(mutable_buffer buf) noexcept {
        return {*this, buf, true, nullptr};
    }
    detail::unix_recv_from_op recv_from(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, true, &ec};
    }

    // The batch and gathered operations are templates only so that they are compiled where
    // they are called, as udp_socket's are.

    /// The buffers `bufs` (an array or vector of const_buffer) as one datagram to `to`
    /// (sendmsg); over 1,024 buffers is message_size.
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<unix_address, Buffer>
    send_to(Buffers&& bufs, const unix_address& to) noexcept {
        return {*this, std::span<const Buffer>(bufs), &to, nullptr};
    }
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<unix_address, Buffer>
    send_to(Buffers&& bufs, const unix_address& to, std::error_code& ec) noexcept {
        return {*this, std::span<const Buffer>(bufs), &to, &ec};
    }

    /// Up to 256 datagrams in one recvmmsg into `slots` (an array or vector of
    /// unix_datagram_slot), as udp_socket::recv_batch: waits for the first, takes what is
    /// queued; one too big for its slot is flagged `truncated`, not an error. No slots is
    /// invalid_argument.
    template <class Slot = unix_datagram_slot, detail::span_of<unix_datagram_slot> Slots>
    detail::basic_recv_batch_op<Slot> recv_batch(Slots&& slots) noexcept {
        return {*this, std::span<Slot>(slots), nullptr};
    }
    template <class Slot = unix_datagram_slot, detail::span_of<unix_datagram_slot> Slots>
    detail::basic_recv_batch_op<Slot> recv_batch(Slots&& slots, std::error_code& ec) noexcept {
        return {*this, std::span<Slot>(slots), &ec};
    }

    /// Up to 256 datagrams (an array or vector of outgoing_unix_datagram), each to its own
    /// address, in one sendmmsg, as udp_socket::send_batch: yields how many went, fewer when
    /// one was refused (its error reported when the rest is sent again). An address too long
    /// is refused the same way.
    template <class Datagram = outgoing_unix_datagram,
              detail::span_of<const outgoing_unix_datagram> Datagrams>
    detail::basic_send_batch_op<Datagram> send_batch(Datagrams&& datagrams) noexcept {
        return {*this, std::span<const Datagram>(datagrams), nullptr};
    }
    template <class Datagram = outgoing_unix_datagram,
              detail::span_of<const outgoing_unix_datagram> Datagrams>
    detail::basic_send_batch_op<Datagram> send_batch(Datagrams&& datagrams,
                                                     std::error_code& ec) noexcept {
        return {*this, std::span<const Datagram>(datagrams), &ec};
    }

    /// Connected form of send_batch: each buffer (of an array or vector of const_buffer) one
    /// datagram to the peer.
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_send_batch_op<Buffer> send_batch(Buffers&& datagrams) noexcept {
        return {*this, std::span<const Buffer>(datagrams), nullptr};
    }
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_send_batch_op<Buffer> send_batch(Buffers&& datagrams,
                                                   std::error_code& ec) noexcept {
        return {*this, std::span<const Buffer>(datagrams), &ec};
    }

    /// Connected form of send_to: one datagram to the peer.
    detail::send_op send(const_buffer buf) noexcept { return {*this, buf, false, nullptr}; }
    detail::send_op send(const_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, false, &ec};
    }

    /// Connected form of the gathered send_to: the buffers as one datagram to the peer.
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<unix_address, Buffer> send(Buffers&& bufs) noexcept {
        return {*this, std::span<const Buffer>(bufs), nullptr, nullptr};
    }
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<unix_address, Buffer> send(Buffers&& bufs,
                                                                std::error_code& ec) noexcept {
        return {*this, std::span<const Buffer>(bufs), nullptr, &ec};
    }

    /// Connected form of recv_from: yields the size of one datagram from the peer.
    detail::unix_datagram_recv_op recv(mutable_buffer buf) noexcept {
        return {*this, buf, nullptr};
    }
    detail::unix_datagram_recv_op recv(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, &ec};
    }

    /// Connected: sends `buf` as one datagram with the descriptors `fds` (at most 253)
    /// attached (SCM_RIGHTS), as unix_stream::send_fds does: the peer receives them with
    /// recv_fds. `fds` stay the caller's, open. An empty `buf`, or more than 253
    /// descriptors, is std::errc::invalid_argument.
    detail::send_fds_op send_fds(const_buffer buf, std::span<const int> fds) noexcept {
        return {*this, buf, fds, nullptr};
    }
    detail::send_fds_op send_fds(const_buffer buf, std::span<const int> fds,
                                 std::error_code& ec) noexcept {
        return {*this, buf, fds, &ec};
    }

    /// Receives one datagram and the descriptors that came with it, at most `max_fds` (253 if
    /// not given): yields {size, fds}, each descriptor owned and close-on-exec. More
    /// descriptors than `max_fds` is conet::error::descriptors_truncated, a datagram larger
    /// than `buf` conet::error::datagram_truncated; either way none is left open (the
    /// non-throwing form yields the bytes that fitted). The sender's address is not kept:
    /// for a connected socket, or a pair.
    detail::recv_fds_op recv_fds(mutable_buffer buf) noexcept {
        return {*this, buf, detail::max_fds_per_message, true, nullptr};
    }
    detail::recv_fds_op recv_fds(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, detail::max_fds_per_message, true, &ec};
    }
    detail::recv_fds_op recv_fds(mutable_buffer buf, std::size_t max_fds) noexcept {
        return {*this, buf, max_fds, true, nullptr};
    }
    detail::recv_fds_op recv_fds(mutable_buffer buf, std::size_t max_fds,
                                 std::error_code& ec) noexcept {
        return {*this, buf, max_fds, true, &ec};
    }

    /// Removes the socket file this socket made (if it is still that file), then closes the
    /// socket: waiting operations resume with conet::error::closed.
    void close() noexcept {
        file_.remove();
        unix_socket_base::close();
    }

private:
    explicit unix_datagram_socket(int fd, std::uint32_t kind = 0) noexcept
        : unix_socket_base(fd, kind) {}

    detail::socket_file file_; // the socket file bind made, to remove on close
};

} // namespace conet

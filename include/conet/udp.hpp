// conet/udp.hpp - UDP: udp_socket with send_to / recv_from (the course's sendto/recvfrom) and
// connected send / recv.
//
// Operations are awaited and come in a throwing form and a non-throwing form with a trailing
// `std::error_code&`, as in tcp.hpp. A datagram larger than the receive buffer is never cut
// silently: the receive fails with conet::error::datagram_truncated (the non-throwing form
// still yields the part that fitted). UDP has no end of stream: a size of 0 is an empty
// datagram, so receiving into an empty buffer is allowed. It takes the next datagram, and
// succeeds only if that datagram is empty (any other is datagram_truncated).
//
// Batches: recv_batch takes up to 256 datagrams in one system call (recvmmsg) into slots the
// caller owns, flagging each one too big for its slot instead of failing the batch;
// send_batch sends up to 256 (sendmmsg). send_to and send also take several buffers, sent as
// one datagram (sendmsg).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <system_error>

#include "address.hpp"
#include "buffer.hpp"
#include "detail/datagram_ops.hpp"
#include "detail/io_awaiter.hpp"
#include "detail/socket_ops.hpp"
#include "detail/stream_ops.hpp"
#include "error.hpp"
#include "reactor.hpp"

namespace conet {

/// What recv_from() yields: how many bytes arrived and who sent them.
struct datagram {
    std::size_t size = 0;
    endpoint from;
};

/// One datagram of a recv_batch: the caller's buffer it goes into, and what the batch says of
/// it. Slots are the caller's, reused from batch to batch: a batch allocates nothing.
struct datagram_slot {
    mutable_buffer buffer;  ///< where the datagram goes (may be empty: an empty datagram fits)
    std::size_t size = 0;   ///< set by the batch: bytes stored in `buffer`
    endpoint from;          ///< set by the batch: who sent it
    bool truncated = false; ///< set by the batch: it was larger than `buffer`, the rest is lost
};

/// One datagram of a send_batch: its bytes and where it goes.
struct outgoing_datagram {
    const_buffer data;
    endpoint to;
};

namespace detail {
// udp_socket's operations: detail/datagram_ops.hpp's, over endpoints.
using recv_from_op = basic_recv_from_op<datagram>;
using udp_recv_op = basic_recv_op<datagram>;
using send_to_op = basic_send_to_op<endpoint>;
} // namespace detail

/// How udp_socket::bind prepares its socket, between socket() and bind():
/// `udp_socket::bind(where, {.reuse_port = true})`.
struct udp_options {
    /// SO_REUSEADDR: on Linux, lets several sockets bind one port (all of them must set it;
    /// each datagram then goes to one of them).
    bool reuse_address = false;
    /// SO_REUSEPORT: several sockets bind the same port (one per reactor, say); the kernel
    /// spreads incoming datagrams among them by their source.
    bool reuse_port = false;
    /// SO_BROADCAST: the socket may send to a broadcast address.
    bool broadcast = false;
    /// IPV6_V6ONLY for an IPv6 address (see listen_options); unset keeps the default.
    std::optional<bool> v6_only = std::nullopt;
};

/// A UDP socket. Move-only; closes itself on destruction.
class udp_socket : public detail::socket_base {
public:
    /// A closed socket.
    udp_socket() noexcept = default;

    /// An unbound socket of `family` (the course's socket(AF_INET, SOCK_DGRAM)); the system
    /// picks its port at the first send_to.
    static udp_socket open(ip_family family = ip_family::v4) {
        std::error_code ec;
        auto s = open(family, ec);
        detail::throw_if(ec, "socket");
        return s;
    }
    static udp_socket open(ip_family family, std::error_code& ec) noexcept {
        ec.clear();
        const int fd = detail::open_socket(family, SOCK_DGRAM, ec);
        return fd < 0 ? udp_socket{} : udp_socket(fd, descriptor::conet_made);
    }

    /// A socket bound to `where` (port 0 picks a free port: read it with local_endpoint()).
    static udp_socket bind(const endpoint& where) {
        std::error_code ec;
        auto s = bind(where, ec);
        if (ec) detail::throw_error(ec, "bind " + where.to_string());
        return s;
    }
    static udp_socket bind(const endpoint& where, std::error_code& ec) noexcept {
        return bind(where, udp_options{}, ec);
    }

    /// A socket with `options` set, bound to `where`: `udp_socket::bind(where,
    /// {.reuse_port = true})`. Bind before connect() to fix a client's own address and port.
    static udp_socket bind(const endpoint& where, const udp_options& options) {
        std::error_code ec;
        auto s = bind(where, options, ec);
        if (ec) detail::throw_error(ec, "bind " + where.to_string());
        return s;
    }
    static udp_socket bind(const endpoint& where, const udp_options& options,
                           std::error_code& ec) noexcept {
        ec.clear();
        const int fd = detail::open_bound_socket(where, SOCK_DGRAM, options.reuse_address,
                                                 options.reuse_port, options.v6_only, ec);
        if (fd < 0) return {};
        udp_socket s(fd, descriptor::conet_made);
        if (options.broadcast && (ec = detail::set_option(fd, option::broadcast{true}))) return {};
        return s;
    }

    /// Takes ownership of a descriptor that is already a UDP socket and makes it
    /// non-blocking. Throws std::system_error (wrong_protocol_type for another kind of
    /// socket); on failure the descriptor is left open and not owned.
    static udp_socket adopt(int fd) {
        std::error_code ec;
        auto s = adopt(fd, ec);
        if (ec) detail::throw_error(ec, "udp_socket::adopt");
        return s;
    }
    static udp_socket adopt(int fd, std::error_code& ec) noexcept {
        ec = detail::prepare_adopted(fd, SOCK_DGRAM, false);
        return ec ? udp_socket() : udp_socket(fd);
    }

    /// Fixes the peer: afterwards send()/recv() talk to it only, and an ICMP "port
    /// unreachable" surfaces as connection_refused on the next operation.
    void connect(const endpoint& peer) {
        std::error_code ec;
        connect(peer, ec);
        if (ec) detail::throw_error(ec, "connect " + peer.to_string());
    }
    void connect(const endpoint& peer, std::error_code& ec) noexcept {
        ec.clear();
        const detail::sockaddr_any sa(peer);
        if (::connect(native_handle(), sa.get(), sa.length) < 0) ec = detail::errno_code(errno);
    }

    /// The peer given to connect(); std::errc::not_connected before.
    using socket_base::peer_endpoint;

    /// Sends `buf` as one datagram to `to`; yields the byte count.
    template <class Op = detail::send_to_op>
    Op send_to(const_buffer buf, const endpoint& to) noexcept {
        return {*this, buf, to, nullptr};
    }
    template <class Op = detail::send_to_op>
    Op send_to(const_buffer buf, const endpoint& to, std::error_code& ec) noexcept {
        return {*this, buf, to, &ec};
    }

    /// Receives one datagram; yields its size and sender.
    template <class Op = detail::recv_from_op>
    Op recv_from(mutable_buffer buf) noexcept {
        return {*this, buf, true, nullptr};
    }
    template <class Op = detail::recv_from_op>
    Op recv_from(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, true, &ec};
    }

    // The batch and gathered operations below are templates (over what converts to a span of
    // the element type, the element type a defaulted parameter) only so that a program that
    // never calls them compiles none of them: conet.hpp's include cost.

    /// Sends the buffers `bufs` (an array or vector of const_buffer) as one datagram to `to`,
    /// in order (sendmsg): a header and a payload without copying them together. Yields the
    /// byte count; more than 1,024 buffers is std::errc::message_size.
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<endpoint, Buffer> send_to(Buffers&& bufs,
                                                               const endpoint& to) noexcept {
        return {*this, std::span<const Buffer>(bufs), &to, nullptr};
    }
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<endpoint, Buffer> send_to(Buffers&& bufs, const endpoint& to,
                                                               std::error_code& ec) noexcept {
        return {*this, std::span<const Buffer>(bufs), &to, &ec};
    }

    /// Receives up to 256 datagrams in one system call (recvmmsg) into `slots` (an array or
    /// vector of datagram_slot), one each, in order: waits for the first, then takes what is
    /// queued without waiting. Yields how many slots were filled (their `size`, `from` and
    /// `truncated` set; the rest are left alone). A datagram larger than its slot's buffer
    /// keeps what fitted and is flagged `truncated`: the batch does not fail (recv_from's
    /// datagram_truncated would lose the others). No slots at all is
    /// std::errc::invalid_argument. The slots and their buffers must live until it completes.
    template <class Slot = datagram_slot, detail::span_of<datagram_slot> Slots>
    detail::basic_recv_batch_op<Slot> recv_batch(Slots&& slots) noexcept {
        return {*this, std::span<Slot>(slots), nullptr};
    }
    template <class Slot = datagram_slot, detail::span_of<datagram_slot> Slots>
    detail::basic_recv_batch_op<Slot> recv_batch(Slots&& slots, std::error_code& ec) noexcept {
        return {*this, std::span<Slot>(slots), &ec};
    }

    /// Sends up to 256 datagrams (an array or vector of outgoing_datagram), each to its own
    /// endpoint, in one system call (sendmmsg). Yields how many went, in order: fewer than
    /// given when the kernel refused one (too big, an address of the other family, no room),
    /// which is reported when the rest is sent again. No datagrams is
    /// std::errc::invalid_argument.
    template <class Datagram = outgoing_datagram,
              detail::span_of<const outgoing_datagram> Datagrams>
    detail::basic_send_batch_op<Datagram> send_batch(Datagrams&& datagrams) noexcept {
        return {*this, std::span<const Datagram>(datagrams), nullptr};
    }
    template <class Datagram = outgoing_datagram,
              detail::span_of<const outgoing_datagram> Datagrams>
    detail::basic_send_batch_op<Datagram> send_batch(Datagrams&& datagrams,
                                                     std::error_code& ec) noexcept {
        return {*this, std::span<const Datagram>(datagrams), &ec};
    }

    /// Connected form of send_batch: each buffer (of an array or vector of const_buffer) one
    /// datagram to the peer given to connect().
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_send_batch_op<Buffer> send_batch(Buffers&& datagrams) noexcept {
        return {*this, std::span<const Buffer>(datagrams), nullptr};
    }
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_send_batch_op<Buffer> send_batch(Buffers&& datagrams,
                                                   std::error_code& ec) noexcept {
        return {*this, std::span<const Buffer>(datagrams), &ec};
    }

    /// Connected form of send_to: one datagram to the peer given to connect().
    template <class Op = detail::send_op>
    Op send(const_buffer buf) noexcept {
        return {*this, buf, false, nullptr};
    }
    template <class Op = detail::send_op>
    Op send(const_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, false, &ec};
    }

    /// Connected form of the gathered send_to: the buffers as one datagram to the peer.
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<endpoint, Buffer> send(Buffers&& bufs) noexcept {
        return {*this, std::span<const Buffer>(bufs), nullptr, nullptr};
    }
    template <class Buffer = const_buffer, detail::span_of<const const_buffer> Buffers>
    detail::basic_gather_datagram_op<endpoint, Buffer> send(Buffers&& bufs,
                                                            std::error_code& ec) noexcept {
        return {*this, std::span<const Buffer>(bufs), nullptr, &ec};
    }

    /// Connected form of recv_from: yields the size of one datagram from the peer.
    template <class Op = detail::udp_recv_op>
    Op recv(mutable_buffer buf) noexcept {
        return {*this, buf, nullptr};
    }
    template <class Op = detail::udp_recv_op>
    Op recv(mutable_buffer buf, std::error_code& ec) noexcept {
        return {*this, buf, &ec};
    }

    /// Allows sending to broadcast addresses (the course's broadcast example).
    void set_broadcast(bool on) { set_option(option::broadcast{on}); }

private:
    explicit udp_socket(int fd, std::uint32_t kind = 0) noexcept : socket_base(fd, kind) {}
};

} // namespace conet

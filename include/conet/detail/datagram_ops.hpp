// conet/detail/datagram_ops.hpp - datagrams in batches (recvmmsg, sendmmsg) and one datagram
// from several buffers (sendmsg): the operations behind udp_socket's recv_batch, send_batch
// and the gathered send_to / send.
//
// They are templates on the caller's slot type (udp.hpp's datagram_slot and
// outgoing_datagram), so that a file that includes conet.hpp and never batches compiles none
// of them, and so that another datagram socket could give its own slot.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>

#include "../address.hpp"
#include "../buffer.hpp"
#include "../error.hpp"
#include "io_awaiter.hpp"
#include "stream_ops.hpp"

namespace conet::detail {

/// What a caller passes for a span of `T` (an array, a vector, a span): udp_socket's batch
/// and gathered operations are templates over it, so that nothing of them is compiled where
/// they are not called.
template <class R, class T>
concept span_of = std::is_convertible_v<R&, std::span<T>>;

/// The most datagrams one recv_batch or send_batch moves: one recvmmsg / sendmmsg, whose
/// headers, buffers and addresses are built on the stack for each call (27 KiB at most), so
/// that a batch allocates nothing. Slots past it are left alone, as a short batch leaves them.
inline constexpr std::size_t max_datagrams_per_call = 256;

/// Receives up to max_datagrams_per_call datagrams into `Slot`s (a datagram_slot: `buffer` in;
/// `size`, `from`, `truncated` out) with one recvmmsg; yields how many arrived, at least one.
///
/// A datagram larger than its slot's buffer is flagged (`truncated`, what fitted stored), not
/// an error: the others of the batch are good. A batch shorter than the slots proves the
/// receive queue empty (recvmmsg stops at the first EAGAIN), so that the next batch waits for
/// the next datagram's edge without trying first; a single recvfrom proves nothing, since it
/// takes one datagram whatever is queued behind it (see descriptor, "Readiness").
/// What the datagrams of a batch past its first cost of the budget beyond their bytes: an
/// operation's share each, as many recv_from / send_to would (design, "Datagrams in
/// batches"), so that a batch loop gives the loop its turn as often as a loop of single sends.
inline std::size_t operations_worth(std::size_t datagrams) noexcept {
    return datagrams > 1 ? (datagrams - 1) * static_cast<std::size_t>(op_cost) : 0;
}

template <class Slot>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_recv_batch_op;
template <class Slot>
class basic_recv_batch_op : public io_awaiter<basic_recv_batch_op<Slot>, direction::read> {
public:
    basic_recv_batch_op(descriptor& d, std::span<Slot> slots, std::error_code* out) noexcept
        : basic_recv_batch_op::io_awaiter(out), d_(&d), slots_(slots) {}

    bool try_once() noexcept {
        if (slots_.empty()) { // yielding 0 would read as "nothing arrived"
            this->ec = std::make_error_code(std::errc::invalid_argument);
            return true;
        }
        const std::size_t wanted =
            slots_.size() < max_datagrams_per_call ? slots_.size() : max_datagrams_per_call;
        mmsghdr messages[max_datagrams_per_call];
        iovec parts[max_datagrams_per_call];
        sockaddr_in6 senders[max_datagrams_per_call]; // room for an IPv4 or IPv6 sender
        for (std::size_t i = 0; i < wanted; ++i) {
            parts[i].iov_base = slots_[i].buffer.data();
            parts[i].iov_len = slots_[i].buffer.size();
            msghdr& h = messages[i].msg_hdr;
            h.msg_name = &senders[i];
            h.msg_namelen = sizeof senders[i];
            h.msg_iov = &parts[i];
            h.msg_iovlen = 1;
            h.msg_control = nullptr;
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        const int n = retry_on_eintr([&] {
            return ::recvmmsg(d_->native_handle(), messages, static_cast<unsigned>(wanted), 0,
                              nullptr);
        });
        if (n < 0) return failed_or_drained(*d_, direction::read, this->ec);
        received_ = static_cast<std::size_t>(n);
        for (std::size_t i = 0; i < received_; ++i) {
            Slot& s = slots_[i];
            s.size = messages[i].msg_len;
            s.truncated = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
            s.from = read_sockaddr(&senders[i], messages[i].msg_hdr.msg_namelen);
            bytes_ += s.size;
        }
        if (received_ < wanted) d_->note_drained(direction::read);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    // Known drained by the last short batch, and no datagram's edge since: wait for it.
    bool must_wait() noexcept { return !slots_.empty() && d_->known_drained(direction::read); }
    std::size_t result() const noexcept { return received_; }
    std::size_t failed_result() const noexcept { return 0; }
    // (the byte budget: the first datagram's operation is taken before the try)
    std::size_t bytes_moved() const noexcept { return bytes_ + operations_worth(received_); }
    std::string describe() const { return "recv_batch"; }

private:
    descriptor* d_;
    std::span<Slot> slots_;
    std::size_t received_ = 0;
    std::size_t bytes_ = 0;
};

/// Where a batch's datagram goes: to the endpoint of an outgoing_datagram, or to a connected
/// socket's peer for a plain buffer.
inline const_buffer datagram_bytes(const const_buffer& b) noexcept {
    return b;
}
template <class Outgoing>
const_buffer datagram_bytes(const Outgoing& o) noexcept {
    return o.data;
}

/// Sends up to max_datagrams_per_call datagrams with one sendmmsg: `Datagram` is an
/// outgoing_datagram (`data`, `to`) or, on a connected socket, a const_buffer. Yields how many
/// went, at least one: the kernel stops a batch at the first datagram it refuses (too big, an
/// address of the wrong family, a full send queue) and reports that refusal only when it is
/// the first of a batch, so the caller sends the rest again, and meets the error then.
template <class Datagram>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_send_batch_op;
template <class Datagram>
class basic_send_batch_op : public io_awaiter<basic_send_batch_op<Datagram>, direction::write> {
public:
    basic_send_batch_op(descriptor& d, std::span<const Datagram> datagrams,
                        std::error_code* out) noexcept
        : basic_send_batch_op::io_awaiter(out), d_(&d), datagrams_(datagrams) {}

    bool try_once() noexcept {
        if (datagrams_.empty()) { // yielding 0 would read as "none went"
            this->ec = std::make_error_code(std::errc::invalid_argument);
            return true;
        }
        constexpr bool addressed = !std::is_same_v<Datagram, const_buffer>;
        const std::size_t wanted =
            datagrams_.size() < max_datagrams_per_call ? datagrams_.size() : max_datagrams_per_call;
        mmsghdr messages[max_datagrams_per_call];
        iovec parts[max_datagrams_per_call];
        sockaddr_in6 receivers[addressed ? max_datagrams_per_call : 1];
        for (std::size_t i = 0; i < wanted; ++i) {
            const const_buffer bytes = datagram_bytes(datagrams_[i]);
            parts[i].iov_base = const_cast<char*>(bytes.data());
            parts[i].iov_len = bytes.size();
            msghdr& h = messages[i].msg_hdr;
            if constexpr (addressed) {
                h.msg_name = &receivers[i];
                h.msg_namelen = write_sockaddr(datagrams_[i].to, &receivers[i]);
            } else {
                h.msg_name = nullptr;
                h.msg_namelen = 0;
            }
            h.msg_iov = &parts[i];
            h.msg_iovlen = 1;
            h.msg_control = nullptr;
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        const int n = retry_on_eintr([&] {
            return ::sendmmsg(d_->native_handle(), messages, static_cast<unsigned>(wanted),
                              MSG_NOSIGNAL);
        });
        if (n < 0) return failed_or_drained(*d_, direction::write, this->ec);
        sent_ = static_cast<std::size_t>(n);
        for (std::size_t i = 0; i < sent_; ++i)
            bytes_ += messages[i].msg_len;
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return 0; }
    std::size_t bytes_moved() const noexcept {
        return bytes_ + operations_worth(sent_);
    } // (as recv_batch)
    std::string describe() const { return "send_batch"; }

private:
    descriptor* d_;
    std::span<const Datagram> datagrams_;
    std::size_t sent_ = 0;
    std::size_t bytes_ = 0;
};

/// One datagram made of several buffers, in order (sendmsg): a header and a payload without
/// copying them together. To `to`, or to a connected socket's peer when `to` is null. More
/// than max_buffers_per_call buffers is std::errc::message_size (as the kernel says); empty
/// buffers add nothing, and no bytes at all is an empty datagram, as send_to("") is.
/// (A template, over const_buffer, only so that it is compiled where it is used.)
template <class Buffer = const_buffer>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_gather_datagram_op;
template <class Buffer>
class basic_gather_datagram_op
    : public io_awaiter<basic_gather_datagram_op<Buffer>, direction::write> {
public:
    basic_gather_datagram_op(descriptor& d, std::span<const Buffer> bufs, const endpoint* to,
                             std::error_code* out) noexcept
        : basic_gather_datagram_op::io_awaiter(out), d_(&d), bufs_(bufs),
          to_(to ? *to : endpoint{}), addressed_(to != nullptr) {}

    bool try_once() noexcept {
        if (bufs_.size() > max_buffers_per_call) {
            this->ec = std::make_error_code(std::errc::message_size);
            return true;
        }
        iovec parts[max_buffers_per_call];
        std::size_t count = 0;
        for (const Buffer& b : bufs_) {
            if (b.size() == 0) continue;
            parts[count].iov_base = const_cast<char*>(b.data());
            parts[count++].iov_len = b.size();
        }
        sockaddr_in6 receiver;
        msghdr message{};
        if (addressed_) {
            message.msg_name = &receiver;
            message.msg_namelen = write_sockaddr(to_, &receiver);
        }
        message.msg_iov = parts;
        message.msg_iovlen = count;
        const auto n =
            retry_on_eintr([&] { return ::sendmsg(d_->native_handle(), &message, MSG_NOSIGNAL); });
        if (n < 0) return failed_or_drained(*d_, direction::write, this->ec);
        sent_ = static_cast<std::size_t>(n);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return 0; }
    std::size_t bytes_moved() const noexcept { return sent_; } // (the byte budget)
    std::string describe() const { return addressed_ ? "send_to " + to_.to_string() : "send"; }

private:
    descriptor* d_;
    std::span<const Buffer> bufs_;
    endpoint to_;
    bool addressed_;
    std::size_t sent_ = 0;
};

} // namespace conet::detail

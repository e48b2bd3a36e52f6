// conet/detail/datagram_ops.hpp - the operations of a datagram socket, written once for UDP
// (udp.hpp) and UNIX datagram sockets (unix_datagram.hpp): one datagram to or from an address
// (sendto, recvfrom), datagrams in batches (recvmmsg, sendmmsg) and one datagram from several
// buffers (sendmsg).
//
// They are templates on the caller's types (udp.hpp's datagram, datagram_slot and
// outgoing_datagram; unix_datagram.hpp's own), whose address member (`from`, `to`: an
// endpoint, a unix_address) says how the kernel's address is written and read back: see
// datagram_addressing. A file that includes conet.hpp and never batches compiles none of them.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
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

/// What a caller passes for a span of `T` (an array, a vector, a span): a datagram socket's
/// batch and gathered operations are templates over it, so that nothing of them is compiled
/// where they are not called.
template <class R, class T>
concept span_of = std::is_convertible_v<R&, std::span<T>>;

/// The most datagrams one recv_batch or send_batch moves: one recvmmsg / sendmmsg, whose
/// headers, buffers and addresses are built on the stack for each call (27 KiB at most for
/// UDP, 48 KiB for UNIX addresses), so that a batch allocates nothing. Slots past it are left
/// alone, as a short batch leaves them.
inline constexpr std::size_t max_datagrams_per_call = 256;

/// How a datagram socket's address type goes to the kernel and comes back, specialized for
/// each (endpoint here, unix_address in unix_datagram.hpp):
///   storage                              - the system's address, room for any of them
///   write(address, storage&, socklen_t&) - fills it; an error for an address that has no
///                                          system form (a UNIX path too long)
///   read(storage, length, address&)      - what recvfrom / recvmmsg filled in, back into an
///                                          address the caller owns (reusing its memory)
///   to_string(storage, length)           - for messages
/// None of them throws: an operation's try is noexcept.
template <class Address>
struct datagram_addressing;

template <>
struct datagram_addressing<endpoint> {
    using storage = sockaddr_in6; // room for an IPv4 or IPv6 address
    static std::error_code write(const endpoint& e, storage& out, socklen_t& length) noexcept {
        length = write_sockaddr(e, &out);
        return {};
    }
    static std::error_code read(const storage& in, socklen_t length, endpoint& out) noexcept {
        out = read_sockaddr(&in, length);
        return {};
    }
    static std::string to_string(const storage& in, socklen_t length) {
        return read_sockaddr(&in, length).to_string();
    }
};

/// A message of the `count` buffers at `parts`, to or from `name` (null: none, a connected
/// socket's peer), with no control data: what every datagram operation gives the kernel.
inline msghdr message_of(iovec* parts, std::size_t count, void* name,
                         socklen_t name_length) noexcept {
    msghdr message{};
    message.msg_name = name;
    message.msg_namelen = name ? name_length : 0;
    message.msg_iov = parts;
    message.msg_iovlen = count;
    return message;
}
/// The message of one buffer, `part`: a datagram of a batch.
inline msghdr one_part_message(iovec& part, void* name, socklen_t name_length) noexcept {
    return message_of(&part, 1, name, name_length);
}

/// Receives one datagram into `buf` (recvfrom), with its sender when `want_sender`: yields a
/// `Received` (udp.hpp's datagram: `size`, `from`). MSG_TRUNC makes the kernel report its real
/// length, so that a datagram too big for the buffer is detected (datagram_truncated, what
/// fitted kept) instead of silently cut.
template <class Received>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_recv_from_op;
template <class Received>
class basic_recv_from_op : public io_awaiter<basic_recv_from_op<Received>, direction::read> {
    using addressing = datagram_addressing<decltype(Received::from)>;

public:
    basic_recv_from_op(descriptor& d, mutable_buffer buf, bool want_sender,
                       std::error_code* out) noexcept
        : basic_recv_from_op::io_awaiter(out), d_(&d), buf_(buf), want_sender_(want_sender) {}

    bool try_once() noexcept {
        typename addressing::storage sender;
        socklen_t length = sizeof sender;
        auto* name = want_sender_ ? reinterpret_cast<sockaddr*>(&sender) : nullptr;
        const auto n = retry_on_eintr([&] {
            return ::recvfrom(d_->native_handle(), buf_.data(), buf_.size(), MSG_TRUNC, name,
                              name ? &length : nullptr);
        });
        if (n < 0) {
            if (would_block(errno)) return false;
            this->ec = errno_code(errno);
            return true;
        }
        received_.size = static_cast<std::size_t>(n);
        if (received_.size > buf_.size()) {
            received_.size = buf_.size();
            this->ec = error::datagram_truncated;
        }
        if (want_sender_)
            if (auto failed = addressing::read(sender, length, received_.from)) this->ec = failed;
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    Received result() noexcept { return std::move(received_); }
    Received failed_result() noexcept { return std::move(received_); }
    std::size_t bytes_moved() const noexcept { return received_.size; } // (the byte budget)
    std::string describe() const { return want_sender_ ? "recv_from" : "recv"; }

protected:
    descriptor* d_;
    mutable_buffer buf_;
    bool want_sender_;
    Received received_;
};

/// A connected socket's recv(): recv_from without the sender, yielding only the size.
template <class Received>
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] basic_recv_op;
template <class Received>
class basic_recv_op : public basic_recv_from_op<Received> {
public:
    basic_recv_op(descriptor& d, mutable_buffer buf, std::error_code* out) noexcept
        : basic_recv_from_op<Received>(d, buf, false, out) {}
    std::size_t await_resume() { return basic_recv_from_op<Received>::await_resume().size; }
};

/// Sends `buf` as one datagram to `to` (sendto); yields the byte count. The address is put in
/// the system's form when the operation is made (so that the caller's may go): one that has
/// none (a UNIX path too long) is the operation's error, reported without a system call.
template <class Address>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_send_to_op;
template <class Address>
class basic_send_to_op : public io_awaiter<basic_send_to_op<Address>, direction::write> {
    using addressing = datagram_addressing<Address>;

public:
    basic_send_to_op(descriptor& d, const_buffer buf, const Address& to,
                     std::error_code* out) noexcept
        : basic_send_to_op::io_awaiter(out), d_(&d), buf_(buf),
          bad_address_(addressing::write(to, address_, length_)) {}

    bool try_once() noexcept {
        if (bad_address_) {
            this->ec = bad_address_;
            return true;
        }
        const auto n = retry_on_eintr([&] {
            return ::sendto(d_->native_handle(), buf_.data(), buf_.size(), MSG_NOSIGNAL,
                            reinterpret_cast<const sockaddr*>(&address_), length_);
        });
        if (n < 0) {
            if (would_block(errno)) return false;
            this->ec = errno_code(errno);
            return true;
        }
        sent_ = static_cast<std::size_t>(n);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return 0; }
    std::size_t bytes_moved() const noexcept { return sent_; } // (the byte budget)
    std::string describe() const {
        return bad_address_ ? "send_to" : "send_to " + addressing::to_string(address_, length_);
    }

private:
    descriptor* d_;
    const_buffer buf_;
    typename addressing::storage address_{};
    socklen_t length_ = 0;
    std::error_code bad_address_;
    std::size_t sent_ = 0;
};

/// What the datagrams of a batch past its first cost of the budget beyond their bytes: an
/// operation's share each, as many recv_from / send_to would (design, "Datagrams in
/// batches"), so that a batch loop gives the loop its turn as often as a loop of single sends.
inline std::size_t operations_worth(std::size_t datagrams) noexcept {
    return datagrams > 1 ? (datagrams - 1) * static_cast<std::size_t>(op_cost) : 0;
}

/// Receives up to max_datagrams_per_call datagrams into `Slot`s (a datagram_slot: `buffer` in;
/// `size`, `from`, `truncated` out) with one recvmmsg; yields how many arrived, at least one.
///
/// A datagram larger than its slot's buffer is flagged (`truncated`, what fitted stored), not
/// an error: the others of the batch are good. A batch shorter than the slots stopped at
/// EAGAIN (the queue is empty) or at an error the kernel keeps for the next call, whose
/// EPOLLERR is an edge too: either way the next batch waits for an edge without trying
/// first (design, "Datagrams in batches"); a single recvfrom proves nothing, since it
/// takes one datagram whatever is queued behind it (see descriptor, "Readiness"). A sender's
/// address that cannot be stored (a UNIX one, out of memory) fails the batch: its datagrams
/// are lost.
template <class Slot>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_recv_batch_op;
template <class Slot>
class basic_recv_batch_op : public io_awaiter<basic_recv_batch_op<Slot>, direction::read> {
    using addressing = datagram_addressing<decltype(Slot::from)>;

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
        typename addressing::storage senders[max_datagrams_per_call];
        for (std::size_t i = 0; i < wanted; ++i) {
            parts[i] = {slots_[i].buffer.data(), slots_[i].buffer.size()};
            messages[i].msg_hdr = one_part_message(parts[i], &senders[i], sizeof senders[i]);
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
            if (auto failed = addressing::read(senders[i], messages[i].msg_hdr.msg_namelen, s.from))
                this->ec = failed;
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

/// Where a batch's datagram goes: to the address of an outgoing_datagram (`data`, `to`), or
/// to a connected socket's peer for a plain buffer.
inline const_buffer datagram_bytes(const const_buffer& b) noexcept {
    return b;
}
template <class Outgoing>
const_buffer datagram_bytes(const Outgoing& o) noexcept {
    return o.data;
}
template <class Datagram>
struct destination {
    using type = decltype(Datagram::to);
};
template <>
struct destination<const_buffer> {
    using type = endpoint; // (a connected socket's: none is written)
};

/// Sends up to max_datagrams_per_call datagrams with one sendmmsg: `Datagram` is an
/// outgoing_datagram (`data`, `to`) or, on a connected socket, a const_buffer. Yields how many
/// went, at least one: the kernel stops a batch at the first datagram it refuses (too big, an
/// address of the wrong family, a full send queue) and reports that refusal only when it is
/// the first of a batch, so the caller sends the rest again, and meets the error then. An
/// address with no system form (a UNIX path too long) ends the batch the same way.
template <class Datagram>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_send_batch_op;
template <class Datagram>
class basic_send_batch_op : public io_awaiter<basic_send_batch_op<Datagram>, direction::write> {
    using addressing = datagram_addressing<typename destination<Datagram>::type>;

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
        std::size_t wanted =
            datagrams_.size() < max_datagrams_per_call ? datagrams_.size() : max_datagrams_per_call;
        mmsghdr messages[max_datagrams_per_call];
        iovec parts[max_datagrams_per_call];
        typename addressing::storage receivers[addressed ? max_datagrams_per_call : 1];
        for (std::size_t i = 0; i < wanted; ++i) {
            const const_buffer bytes = datagram_bytes(datagrams_[i]);
            parts[i] = {const_cast<char*>(bytes.data()), bytes.size()};
            socklen_t length = 0;
            if constexpr (addressed) {
                if (auto bad = addressing::write(datagrams_[i].to, receivers[i], length)) {
                    if (i == 0) { // the first refused: its error, as the kernel's would be
                        this->ec = bad;
                        return true;
                    }
                    wanted = i;
                    break;
                }
            }
            messages[i].msg_hdr =
                one_part_message(parts[i], addressed ? &receivers[i] : nullptr, length);
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
/// (A template over `Buffer`, always const_buffer, only so that it is compiled where used.)
template <class Address, class Buffer = const_buffer>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_gather_datagram_op;
template <class Address, class Buffer>
class basic_gather_datagram_op
    : public io_awaiter<basic_gather_datagram_op<Address, Buffer>, direction::write> {
    using addressing = datagram_addressing<Address>;

public:
    basic_gather_datagram_op(descriptor& d, std::span<const Buffer> bufs, const Address* to,
                             std::error_code* out) noexcept
        : basic_gather_datagram_op::io_awaiter(out), d_(&d), bufs_(bufs),
          addressed_(to != nullptr) {
        if (to) bad_address_ = addressing::write(*to, receiver_, length_);
    }

    bool try_once() noexcept {
        if (bad_address_) {
            this->ec = bad_address_;
            return true;
        }
        if (bufs_.size() > max_buffers_per_call) {
            this->ec = std::make_error_code(std::errc::message_size);
            return true;
        }
        iovec parts[max_buffers_per_call];
        std::size_t count = 0;
        for (const Buffer& b : bufs_) {
            if (b.size() == 0) continue;
            parts[count++] = {const_cast<char*>(b.data()), b.size()};
        }
        const msghdr message = message_of(parts, count, addressed_ ? &receiver_ : nullptr, length_);
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
    std::string describe() const {
        if (!addressed_) return "send";
        return bad_address_ ? "send_to" : "send_to " + addressing::to_string(receiver_, length_);
    }

private:
    descriptor* d_;
    std::span<const Buffer> bufs_;
    typename addressing::storage receiver_{};
    socklen_t length_ = 0;
    std::error_code bad_address_;
    bool addressed_;
    std::size_t sent_ = 0;
};

} // namespace conet::detail

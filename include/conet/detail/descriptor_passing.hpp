// conet/detail/descriptor_passing.hpp - descriptors passed with the data over a UNIX socket
// (SCM_RIGHTS): the operations behind unix_stream's and unix_datagram_socket's send_fds and
// recv_fds, and what recv_fds yields.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../buffer.hpp"
#include "../error.hpp"
#include "../owned_fd.hpp"
#include "io_awaiter.hpp"
#include "stream_ops.hpp"

namespace conet {

/// What recv_fds yields: how many bytes arrived, and the descriptors that came with them,
/// owned (closed when the vector goes, unless released).
struct received_fds {
    std::size_t size = 0;
    std::vector<owned_fd> fds;
};

namespace detail {

class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] send_fds_op;
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] recv_fds_op;

/// The most descriptors one message carries (the kernel's SCM_MAX_FD).
inline constexpr std::size_t max_fds_per_message = 253;

/// send_all with descriptors attached to the first bytes that go out.
class send_fds_op : public io_awaiter<send_fds_op, direction::write> {
public:
    send_fds_op(descriptor& d, const_buffer buf, std::span<const int> fds,
                std::error_code* out) noexcept
        : io_awaiter(out), d_(&d), buf_(buf), fds_(fds) {}

    bool try_once() noexcept {
        if (buf_.size() == 0 || fds_.size() > max_fds_per_message) {
            ec = std::make_error_code(std::errc::invalid_argument);
            return true;
        }
        do {
            const std::size_t wanted = buf_.size() - sent_;
            iovec part{const_cast<char*>(buf_.data()) + sent_, wanted};
            msghdr message{};
            message.msg_iov = &part;
            message.msg_iovlen = 1;
            alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
            if (sent_ == 0 && !fds_.empty()) { // the descriptors go with the first byte
                const std::size_t size = sizeof(int) * fds_.size();
                std::memset(control, 0, CMSG_SPACE(size));
                message.msg_control = control;
                message.msg_controllen = CMSG_SPACE(size);
                cmsghdr* header = CMSG_FIRSTHDR(&message);
                header->cmsg_level = SOL_SOCKET;
                header->cmsg_type = SCM_RIGHTS;
                header->cmsg_len = CMSG_LEN(size);
                std::memcpy(CMSG_DATA(header), fds_.data(), size);
            }
            const auto n = retry_on_eintr(
                [&] { return ::sendmsg(d_->native_handle(), &message, MSG_NOSIGNAL); });
            if (n < 0) return failed_or_drained(*d_, direction::write, this->ec);
            sent_ += static_cast<std::size_t>(n);
            if (static_cast<std::size_t>(n) < wanted) { // the send queue is full now
                d_->note_drained(direction::write);
                if (d_->must_wait(direction::write)) return false;
            }
        } while (sent_ < buf_.size());
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    bool must_wait() noexcept { return buf_.size() != 0 && d_->must_wait(direction::write); }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return sent_; }
    std::size_t transferred() const noexcept { return sent_; }
    std::string describe() const { return "send_fds"; }

private:
    descriptor* d_;
    const_buffer buf_;
    std::span<const int> fds_;
    std::size_t sent_ = 0;
};

/// Receives some bytes and the descriptors that came with them (recvmsg, SCM_RIGHTS): on a
/// stream, up to the end of the message that carried descriptors; on a datagram socket
/// (`datagram`), one datagram, whose being larger than the buffer (MSG_TRUNC) is
/// datagram_truncated, its descriptors closed.
class recv_fds_op : public io_awaiter<recv_fds_op, direction::read> {
public:
    recv_fds_op(descriptor& d, mutable_buffer buf, std::size_t max_fds, bool datagram,
                std::error_code* out) noexcept
        : io_awaiter(out), d_(&d), buf_(buf),
          max_fds_(max_fds < max_fds_per_message ? max_fds : max_fds_per_message),
          datagram_(datagram) {}

    bool try_once() noexcept {
        if (buf_.size() == 0) {
            ec = std::make_error_code(std::errc::invalid_argument);
            return true;
        }
        alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
        iovec part{buf_.data(), buf_.size()};
        msghdr message{};
        message.msg_iov = &part;
        message.msg_iovlen = 1;
        if (max_fds_ > 0) {
            message.msg_control = control;
            // CMSG_LEN, not CMSG_SPACE: the kernel fills as many descriptors as the length
            // holds, and CMSG_SPACE's padding holds one more than an odd max_fds_.
            message.msg_controllen = CMSG_LEN(sizeof(int) * max_fds_);
        }
        const auto n = retry_on_eintr(
            [&] { return ::recvmsg(d_->native_handle(), &message, MSG_CMSG_CLOEXEC); });
        if (n < 0) return failed_or_drained(*d_, direction::read, this->ec);
        received_.size = static_cast<std::size_t>(n);
        // The descriptors are this process's now: owned before anything else can fail.
        take_descriptors(message);
        if (ec) return true;
        if (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
            received_.fds.clear(); // closes those that fitted: the message is incomplete
            ec = message.msg_flags & MSG_CTRUNC ? error::descriptors_truncated
                                                : error::datagram_truncated;
            return true;
        }
        // A short read proves the queue drained only when it carried no control data: the
        // kernel ends a read after a message with descriptors, whatever is queued behind it.
        // A datagram's proves nothing: it is one datagram, whatever is queued behind it.
        if (!datagram_ && n > 0 && received_.size < buf_.size() && message.msg_controllen == 0)
            d_->note_drained(direction::read);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    bool must_wait() noexcept { return buf_.size() != 0 && d_->must_wait(direction::read); }
    received_fds result() noexcept { return std::move(received_); }
    received_fds failed_result() noexcept {
        received_.fds.clear();
        return {received_.size, {}};
    }
    std::size_t transferred() const noexcept { return received_.size; }
    std::string describe() const { return "recv_fds"; }

private:
    // Moves every SCM_RIGHTS descriptor of `message` into received_.fds; if their vector
    // cannot be allocated, closes them all and sets ec (none may stay open unowned).
    void take_descriptors(msghdr& message) noexcept {
        std::size_t count = 0;
        for_each_descriptor(message, [&](int) { ++count; });
        if (count == 0) return;
        try {
            received_.fds.reserve(count);
        } catch (const std::bad_alloc&) {
            for_each_descriptor(message, [](int passed) { ::close(passed); });
            ec = std::make_error_code(std::errc::not_enough_memory);
            return;
        }
        for_each_descriptor(message, [&](int passed) { received_.fds.emplace_back(passed); });
    }

    template <class F>
    static void for_each_descriptor(msghdr& message, F f) noexcept {
        for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            const unsigned char* data = CMSG_DATA(c);
            for (std::size_t i = 0; i < count; ++i) {
                int passed;
                std::memcpy(&passed, data + i * sizeof(int), sizeof passed);
                f(passed);
            }
        }
    }

    descriptor* d_;
    mutable_buffer buf_;
    std::size_t max_fds_;
    bool datagram_; // a datagram socket's: MSG_TRUNC is datagram_truncated
    received_fds received_;
};

} // namespace detail
} // namespace conet

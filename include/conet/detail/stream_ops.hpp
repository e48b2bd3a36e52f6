// conet/detail/stream_ops.hpp - reading and writing a byte stream (a TCP or UNIX socket, a
// pipe, a terminal): the operations behind recv, recv_exact, send, send_all and read_some.
#pragma once

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <new>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "../buffer.hpp"
#include "../buffer_pool.hpp"
#include "../error.hpp"
#include "../reactor.hpp"
#include "io_awaiter.hpp"

namespace conet::detail {

/// What a transfer's failed system call means: true (the operation is over) with `ec` set
/// for a real failure; false (it waits) for EAGAIN, after noting `d` drained in `dir`.
[[gnu::always_inline]] inline bool failed_or_drained(descriptor& d, direction dir,
                                                     std::error_code& ec) noexcept {
    if (!would_block(errno)) {
        ec = errno_code(errno);
        return true;
    }
    d.note_drained(dir);
    return false;
}

/// How a stream is read: read(), so that pipes and terminals work too (on a socket it is
/// recv()). A short read proves what the descriptor's traits say (see descriptor).
struct plain_reads {
    static ssize_t read(int fd, void* data, std::size_t size, bool&) noexcept {
        return ::read(fd, data, size);
    }
    static ssize_t read_scattered(int fd, iovec* parts, std::size_t count, bool&) noexcept {
        return ::readv(fd, parts, static_cast<int>(count));
    }
};

/// How a UNIX stream is read: recvmsg() with no room for control data. The kernel ends a
/// read after a message that carried descriptors (and closes them, reporting MSG_CTRUNC),
/// with more data possibly queued behind it, and so does a socket that passes credentials:
/// `stopped` is then set, and the short read proves nothing.
struct message_reads {
    static ssize_t read(int fd, void* data, std::size_t size, bool& stopped) noexcept {
        iovec part{data, size};
        return read_scattered(fd, &part, 1, stopped);
    }
    static ssize_t read_scattered(int fd, iovec* parts, std::size_t count, bool& stopped) noexcept {
        msghdr message{};
        message.msg_iov = parts;
        message.msg_iovlen = count;
        const auto n = ::recvmsg(fd, &message, 0);
        if (n > 0 && (message.msg_flags & MSG_CTRUNC)) stopped = true;
        return n;
    }
};

/// The most buffers one readv, writev or sendmsg takes (Linux's UIO_MAXIOV, its IOV_MAX).
inline constexpr std::size_t max_buffers_per_call = 1024;

/// Reads some bytes (`exact` false: yields 0 at end of stream) or fills the whole buffer
/// (`exact` true: end of stream first is conet::error::end_of_stream), the way `Reads` says
/// (plain_reads for TCP, pipes and terminals; message_reads for UNIX streams).
///
/// An empty buffer is decided before any syscall: reading "some" bytes into it fails with
/// std::errc::invalid_argument, because its 0 would pass for the end of the stream; filling
/// it exactly is already done, so it succeeds with 0 at once and leaves the stream as it is.
template <class Reads>
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] basic_read_op;
template <class Reads>
class basic_read_op : public io_awaiter<basic_read_op<Reads>, direction::read> {
public:
    basic_read_op(descriptor& d, mutable_buffer buf, bool exact, const char* name,
                  std::error_code* out) noexcept
        : io_awaiter<basic_read_op<Reads>, direction::read>(out), d_(&d), buf_(buf), exact_(exact),
          name_(name) {}

    bool try_once() noexcept {
        if (buf_.size() == 0) {
            if (!exact_) this->ec = std::make_error_code(std::errc::invalid_argument);
            return true;
        }
        do {
            const std::size_t wanted = buf_.size() - received_;
            bool stopped = false; // at a message boundary (message_reads)
            const auto n = retry_on_eintr([&] {
                return Reads::read(d_->native_handle(), buf_.data() + received_, wanted, stopped);
            });
            if (n < 0) return failed_or_drained(*d_, direction::read, this->ec);
            if (n == 0) {
                if (exact_ && received_ < buf_.size()) this->ec = error::end_of_stream;
                return true;
            }
            received_ += static_cast<std::size_t>(n);
            // Fewer bytes than asked for: on a stream socket, the receive queue is empty
            // now (the descriptor decides whether that proves anything), unless the read
            // stopped at a message boundary.
            if (static_cast<std::size_t>(n) < wanted && !stopped) {
                d_->note_drained(direction::read);
                if (exact_ && d_->must_wait(direction::read)) return false; // wait for the rest
            }
        } while (exact_ && received_ < buf_.size());
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    // An empty buffer is decided by try_once, at once, drained socket or not.
    bool must_wait() noexcept { return buf_.size() != 0 && d_->must_wait(direction::read); }
    std::size_t result() const noexcept { return received_; }
    std::size_t failed_result() const noexcept { return received_; } // what did arrive
    std::size_t transferred() const noexcept { return received_; }
    std::string describe() const { return name_; }

private:
    descriptor* d_;
    mutable_buffer buf_;
    bool exact_;
    const char* name_;
    std::size_t received_ = 0;
};

/// Reading a TCP stream, a pipe or a terminal.
using read_op = basic_read_op<plain_reads>;

/// recv of some bytes into several buffers, filled in order by one readv (recvmsg on a UNIX
/// stream), up to max_buffers_per_call of them: a fixed-size header into its own buffer and
/// the rest into another, say. Buffers with no room in all fail with invalid_argument, as
/// recv into an empty buffer does.
template <class Reads>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_scatter_read_op;
template <class Reads>
class basic_scatter_read_op : public io_awaiter<basic_scatter_read_op<Reads>, direction::read> {
public:
    basic_scatter_read_op(descriptor& d, std::span<const mutable_buffer> bufs,
                          std::error_code* out) noexcept
        : basic_scatter_read_op::io_awaiter(out), d_(&d), bufs_(bufs) {
        for (const mutable_buffer& b : bufs)
            room_ = room_ || b.size() != 0;
    }

    bool try_once() noexcept {
        iovec parts[max_buffers_per_call];
        std::size_t count = 0;
        std::size_t wanted = 0;
        for (std::size_t i = 0; i < bufs_.size() && count < max_buffers_per_call; ++i) {
            if (bufs_[i].size() == 0) continue;
            parts[count].iov_base = bufs_[i].data();
            parts[count].iov_len = bufs_[i].size();
            wanted += parts[count++].iov_len;
        }
        if (count == 0) { // its 0 would pass for the end of the stream
            this->ec = std::make_error_code(std::errc::invalid_argument);
            return true;
        }
        bool stopped = false; // at a message boundary (message_reads)
        const auto n = retry_on_eintr(
            [&] { return Reads::read_scattered(d_->native_handle(), parts, count, stopped); });
        if (n < 0) return failed_or_drained(*d_, direction::read, this->ec);
        received_ = static_cast<std::size_t>(n);
        if (received_ != 0 && received_ < wanted && !stopped) d_->note_drained(direction::read);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    // No room at all is decided by try_once, at once, drained socket or not.
    bool must_wait() noexcept { return room_ && d_->must_wait(direction::read); }
    std::size_t result() const noexcept { return received_; }
    std::size_t failed_result() const noexcept { return 0; }
    std::size_t bytes_moved() const noexcept { return received_; }
    std::string describe() const { return "recv"; }

private:
    descriptor* d_;
    std::span<const mutable_buffer> bufs_;
    bool room_ = false;
    std::size_t received_ = 0;
};

/// Sends some bytes (`all` false) or every byte through partial writes (`all` true).
/// MSG_NOSIGNAL: a peer that went away is an EPIPE error, never a SIGPIPE.
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] send_op;
class send_op : public io_awaiter<send_op, direction::write> {
public:
    send_op(descriptor& d, const_buffer buf, bool all, std::error_code* out) noexcept
        : io_awaiter(out), d_(&d), buf_(buf), all_(all) {}

    bool try_once() noexcept {
        do {
            const std::size_t wanted = buf_.size() - sent_;
            const auto n = retry_on_eintr([&] {
                return ::send(d_->native_handle(), buf_.data() + sent_, wanted, MSG_NOSIGNAL);
            });
            if (n < 0) return failed_or_drained(*d_, direction::write, this->ec);
            sent_ += static_cast<std::size_t>(n);
            // Fewer bytes than offered: on a stream socket, the send queue is full now.
            if (static_cast<std::size_t>(n) < wanted) {
                d_->note_drained(direction::write);
                if (all_ && d_->must_wait(direction::write)) return false; // wait for room
            }
        } while (all_ && sent_ < buf_.size());
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    bool must_wait() noexcept { return buf_.size() != 0 && d_->must_wait(direction::write); }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return sent_; } // what did go out
    std::size_t transferred() const noexcept { return sent_; }
    std::string describe() const { return all_ ? "send_all" : "send"; }

private:
    descriptor* d_;
    const_buffer buf_;
    bool all_;
    std::size_t sent_ = 0;
};

/// send / send_all of several buffers, in order, as one stream: sendmsg with an iovec per
/// buffer, up to max_buffers_per_call at a time, so that a header and a body go out without being
/// copied together. A partial send resumes at the byte, in the buffer, where it stopped.
///
/// (A template only so that it is compiled where it is used: its span of buffers costs the
/// compiler as much to instantiate as the rest of this file, in every file that includes it.)
template <class = void>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_gather_send_op;
template <class Tag>
class basic_gather_send_op : public io_awaiter<basic_gather_send_op<Tag>, direction::write> {
public:
    basic_gather_send_op(descriptor& d, std::span<const const_buffer> bufs, bool all,
                         std::error_code* out) noexcept
        : basic_gather_send_op::io_awaiter(out), d_(&d), bufs_(bufs), all_(all) {
        for (const const_buffer& b : bufs)
            total_ += b.size();
    }

    bool try_once() noexcept {
        do {
            iovec pieces[max_buffers_per_call];
            std::size_t count = 0;
            std::size_t wanted = 0;
            for (std::size_t i = next_; i < bufs_.size() && count < max_buffers_per_call; ++i) {
                const std::size_t skip = i == next_ ? offset_ : 0;
                if (bufs_[i].size() == skip) continue; // empty: nothing to give the kernel
                pieces[count].iov_base = const_cast<char*>(bufs_[i].data() + skip);
                pieces[count].iov_len = bufs_[i].size() - skip;
                wanted += pieces[count++].iov_len;
            }
            if (count == 0) return true; // every byte has gone (or there were none)
            msghdr message{};
            message.msg_iov = pieces;
            message.msg_iovlen = count;
            const auto n = retry_on_eintr(
                [&] { return ::sendmsg(d_->native_handle(), &message, MSG_NOSIGNAL); });
            if (n < 0) return failed_or_drained(*d_, direction::write, this->ec);
            advance(static_cast<std::size_t>(n));
            // Fewer bytes than offered: on a stream socket, the send queue is full now.
            if (static_cast<std::size_t>(n) < wanted) {
                d_->note_drained(direction::write);
                if (all_ && sent_ < total_ && d_->must_wait(direction::write))
                    return false; // wait for room
            }
        } while (all_ && sent_ < total_);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    bool must_wait() noexcept { return total_ != 0 && d_->must_wait(direction::write); }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return sent_; } // what did go out
    std::size_t transferred() const noexcept { return sent_; }
    std::string describe() const { return all_ ? "send_all" : "send"; }

private:
    // Moves the position `n` bytes on, over the buffers they finish.
    void advance(std::size_t n) noexcept {
        sent_ += n;
        while (next_ < bufs_.size() && n >= bufs_[next_].size() - offset_) {
            n -= bufs_[next_].size() - offset_;
            ++next_;
            offset_ = 0;
        }
        offset_ += n;
    }

    descriptor* d_;
    std::span<const const_buffer> bufs_;
    bool all_;
    std::size_t total_ = 0;
    std::size_t sent_ = 0;
    std::size_t next_ = 0;   // the first buffer not wholly sent
    std::size_t offset_ = 0; // how much of it has been
};
using gather_send_op = basic_gather_send_op<>;

/// send_file: `count` bytes of an open file from `offset`, sent on a stream socket by
/// sendfile(2), the kernel copying from the page cache (no read into the program's memory).
/// Partial sends resume at the next byte; a file that ends before the range does is
/// conet::error::file_ended, with the count that went out.
/// (A template only so that it is compiled where it is used.)
template <class = void>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_send_file_op;
template <class Tag>
class basic_send_file_op : public io_awaiter<basic_send_file_op<Tag>, direction::write> {
public:
    basic_send_file_op(descriptor& d, int file, off_t offset, std::size_t count,
                       std::error_code* out) noexcept
        : basic_send_file_op::io_awaiter(out), d_(&d), file_(file), offset_(offset), count_(count) {
    }

    bool try_once() noexcept {
        // Linux sends at most 0x7ffff000 bytes per call.
        constexpr std::size_t most_per_call = 0x7ffff000;
        while (sent_ < count_) {
            const std::size_t left = count_ - sent_;
            const std::size_t wanted = left < most_per_call ? left : most_per_call;
            off_t at = offset_ + static_cast<off_t>(sent_);
            const auto n =
                retry_on_eintr([&] { return ::sendfile(d_->native_handle(), file_, &at, wanted); });
            if (n < 0) return failed_or_drained(*d_, direction::write, this->ec);
            if (n == 0) { // nothing left to read at `at`
                this->ec = error::file_ended;
                return true;
            }
            // A short count may mean a full send queue or the end of the file: the next
            // call tells which (EAGAIN, or 0), so nothing is guessed from it.
            sent_ += static_cast<std::size_t>(n);
        }
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    bool must_wait() noexcept { return count_ != 0 && d_->must_wait(direction::write); }
    std::size_t result() const noexcept { return sent_; }
    std::size_t failed_result() const noexcept { return sent_; } // what did go out
    std::size_t transferred() const noexcept { return sent_; }
    std::string describe() const { return "send_file"; }

private:
    descriptor* d_;
    int file_;
    off_t offset_;
    std::size_t count_;
    std::size_t sent_ = 0;
};
using send_file_op = basic_send_file_op<>;

/// Waits until the descriptor is readable (or writable) without transferring anything, as
/// Asio's async_wait does: for a library that makes its own syscalls on the socket (libpq,
/// curl, OpenSSL), or a server that takes a buffer only once there is data. Ends at once if
/// the descriptor is ready (the loop saw an edge, and the kernel says it still is).
template <direction Dir>
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] readiness_op;
template <direction Dir>
class readiness_op : public io_awaiter<readiness_op<Dir>, Dir> {
public:
    readiness_op(descriptor& d, std::error_code* out) noexcept
        : io_awaiter<readiness_op<Dir>, Dir>(out), d_(&d) {}

    bool must_wait() noexcept { return !d_->known_ready(Dir); }
    bool try_once() noexcept {
        // Woken by an edge, it is ready. Otherwise what the loop recorded may be stale: the
        // caller's own reads and sends, which conet does not see, may have drained the
        // direction since, or read a datagram socket's error. Then the kernel is asked
        // (poll, transferring nothing), so that such a wait waits instead of spinning. The
        // record is left as it is when the kernel says ready: a second datagram or connection
        // may still be queued, and no edge would come for it.
        const bool woken_by_edge = this->holds(waiter::in_slot) && !this->holds(waiter::deferred);
        if (!woken_by_edge && !d_->ready_now(Dir)) {
            d_->forget_readiness(Dir);
            return false;
        }
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    void result() const noexcept {}
    void failed_result() const noexcept {}
    std::string describe() const {
        return Dir == direction::read ? "wait_readable" : "wait_writable";
    }

private:
    descriptor* d_;
};

/// Receives into a buffer borrowed from a pool only once data is there: while it waits, the
/// connection holds no buffer. Yields the buffer holding what arrived (empty at end of
/// stream); destroying it gives the buffer back.
template <class Reads>
class [[nodiscard(
    "conet: co_await this operation; until awaited it does nothing")]] basic_pooled_read_op;
template <class Reads>
class basic_pooled_read_op : public io_awaiter<basic_pooled_read_op<Reads>, direction::read> {
public:
    basic_pooled_read_op(descriptor& d, buffer_pool& pool, std::error_code* out) noexcept
        : io_awaiter<basic_pooled_read_op<Reads>, direction::read>(out), d_(&d), pool_(&pool) {}
    // Moved by with_timeout before it starts (the destructor below would hide the move).
    basic_pooled_read_op(basic_pooled_read_op&&) noexcept = default;
    [[gnu::always_inline]] ~basic_pooled_read_op() {} // (its buffer was moved out, or never lent)

    // Inline (in attempt_thunk, where every wake-up of a pooled receive runs it): left to
    // itself, GCC stopped inlining it once the reactor's tables changed, 21 instructions more
    // per round trip.
    [[gnu::always_inline]] bool try_once() noexcept {
        // A buffer is taken only now, when the socket may hold data, and given back at once
        // when it does not: a connection that waits holds none.
        if (!buf_.data()) {
            try {
                pool_->lend(buf_);
            } catch (const std::bad_alloc&) {
                this->ec = std::make_error_code(std::errc::not_enough_memory);
                return true;
            }
        }
        const std::size_t wanted = pool_->block_size();
        bool stopped = false; // at a message boundary (message_reads)
        const auto n = retry_on_eintr(
            [&] { return Reads::read(d_->native_handle(), buf_.data(), wanted, stopped); });
        if (n <= 0) {
            buf_.release(); // nothing to hold: waiting, at end of stream, or failed
            if (n == 0) return true;
            return failed_or_drained(*d_, direction::read, this->ec);
        }
        buf_.resize(static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < wanted && !stopped) d_->note_drained(direction::read);
        return true;
    }
    descriptor& target() noexcept { return *d_; }
    pooled_buffer result() noexcept { return std::move(buf_); }
    std::size_t bytes_moved() const noexcept { return buf_.size(); } // (the byte budget)
    pooled_buffer failed_result() noexcept { return {}; }
    std::string describe() const { return "recv"; }

private:
    descriptor* d_;
    buffer_pool* pool_;
    pooled_buffer buf_;
};

/// Receiving a TCP stream into a pooled buffer.
using pooled_read_op = basic_pooled_read_op<plain_reads>;

} // namespace conet::detail

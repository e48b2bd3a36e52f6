// conet/line_reader.hpp - reading a line protocol one line at a time.
//
//     conet::line_reader lines{conn};
//     while (auto line = co_await lines.read_line()) {   // std::nullopt at end of stream
//         ...
//     }
//
// A line ends at '\n'; a '\r' before it is dropped too, so CRLF peers work. The last line may
// lack its '\n': it is returned at end of stream. A line longer than the reader's limit
// (64 KiB by default) fails with conet::error::line_too_long instead of growing the buffer
// without bound; the connection should then be closed. A limit of SIZE_MAX means no limit.
// A failed read (a reset, say) and line_too_long are kept: every later read_line fails with
// the same error, so that neither the tail of a line too long nor the half line a reset cut
// off is ever returned as a line. Each byte is scanned for the '\n' once, as it arrives, so a
// long line costs no more than a short one per byte, however small the reads that bring it.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "detail/io_awaiter.hpp"
#include "error.hpp"
#include "reactor.hpp"

namespace conet {

class line_reader;

namespace detail {

/// Bytes the line_readers of this thread have searched for a '\n', for the test that each
/// byte is searched once however small the reads (tests/test_line_reader.cpp): one add per
/// search, thread-local so that it needs no synchronisation.
inline thread_local std::uint64_t line_bytes_scanned = 0;

/// One read_line(): scans what is buffered, reads more only when no full line is there.
template <class Result>
class [[nodiscard("conet: co_await this operation; until awaited it does nothing")]] read_line_op;
template <class Result>
class read_line_op : public io_awaiter<read_line_op<Result>, direction::read> {
    using base = io_awaiter<read_line_op<Result>, direction::read>;

public:
    read_line_op(line_reader& r, std::string* into, std::error_code* out) noexcept
        : base(out), reader_(&r), into_(into) {}

    inline bool try_once() noexcept;
    inline descriptor& target() noexcept;
    // Waits without trying only with nothing buffered: a buffered line needs no syscall.
    inline bool must_wait() noexcept;
    Result result() {
        if constexpr (std::is_same_v<Result, bool>) {
            return got_line_;
        } else {
            if (!got_line_) return std::nullopt;
            return std::move(line_);
        }
    }
    Result failed_result() noexcept { return Result{}; }
    std::string describe() const { return "read_line"; }
    std::size_t bytes_moved() const noexcept { return read_; } // (the byte budget)

private:
    line_reader* reader_;
    std::string* into_; // the caller's string, or nullptr to fill line_
    std::string line_;
    bool got_line_ = false;
    std::size_t read_ = 0; // bytes its reads received: what it moved, for the byte budget
};

} // namespace detail

/// A buffered reader that splits a byte stream into lines. It reads from a conet stream (a
/// tcp_stream, a unix_stream, standard_input), which must outlive it; not from a udp_socket, whose
/// read takes one datagram and would cut one longer than the buffer's free space.
class line_reader {
public:
    /// The default longest line accepted, terminator excluded.
    static constexpr std::size_t default_max_line_length = 64 * 1024;

    explicit line_reader(detail::descriptor& stream,
                         std::size_t max_line_length = default_max_line_length)
        : stream_(&stream), max_line_(max_line_length) {}

    // (Each read_line is a template only so that the operation is compiled where it is
    // awaited, not in every file that includes conet.hpp.)

    /// Yields the next line without its terminator, or std::nullopt at end of stream.
    template <class Op = detail::read_line_op<std::optional<std::string>>>
    Op read_line() noexcept {
        return {*this, nullptr, nullptr};
    }
    /// Non-throwing form: std::nullopt with `ec` set on failure.
    template <class Op = detail::read_line_op<std::optional<std::string>>>
    Op read_line(std::error_code& ec) noexcept {
        return {*this, nullptr, &ec};
    }

    /// Reads the next line into `line` (reusing its capacity: no allocation once warm);
    /// yields false at end of stream.
    template <class Op = detail::read_line_op<bool>>
    Op read_line(std::string& line) noexcept {
        return {*this, &line, nullptr};
    }
    template <class Op = detail::read_line_op<bool>>
    Op read_line(std::string& line, std::error_code& ec) noexcept {
        return {*this, &line, &ec};
    }

    /// Bytes received but not yet returned as a line.
    std::string_view buffered() const noexcept { return {buffer_.data() + begin_, end_ - begin_}; }

    /// The longest line accepted.
    std::size_t max_line_length() const noexcept { return max_line_; }

private:
    template <class>
    friend class detail::read_line_op;

    // Outcome of one scan of the buffer.
    enum class scan { line, need_more, too_long, eof_empty };

    // Looks for a full line in the buffer and moves it into `out`. Only the bytes not yet
    // scanned are searched: the first `scanned_` hold no '\n'.
    scan take_line(std::string& out) {
        const std::string_view data = buffered();
        const auto newline = data.find('\n', scanned_);
        detail::line_bytes_scanned += (newline == data.npos ? data.size() : newline + 1) - scanned_;
        if (newline == data.npos) {
            scanned_ = data.size();
            // Allow one extra byte: a '\r' that will turn out to precede the '\n'. (Written
            // so that a limit of SIZE_MAX cannot wrap.)
            if (!data.empty() && data.size() - 1 > max_line_) return scan::too_long;
            if (!at_eof_) return scan::need_more;
            if (data.empty()) return scan::eof_empty;
            return emit(out, data.size(), false); // last line, no terminator: kept as it is
        }
        return emit(out, newline, true);
    }

    // Moves the line of `length` bytes out, and its '\n' (and a '\r' before it) if `ended`.
    scan emit(std::string& out, std::size_t length, bool ended) {
        std::string_view line = buffered().substr(0, length);
        const std::size_t consumed = ended ? length + 1 : length;
        if (ended && !line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > max_line_) return scan::too_long;
        out.assign(line);
        begin_ += consumed;
        scanned_ = 0;
        if (begin_ == end_) begin_ = end_ = 0;
        return scan::line;
    }

    // Forgets what is buffered and fails every later read with `ec` (after a line too long or
    // a failed read: nothing sane can follow).
    void fail(std::error_code ec) noexcept {
        begin_ = end_ = scanned_ = 0;
        failed_ = ec;
    }

    // Reads once into the buffer's free space: >0 bytes, 0 at end of stream, -1 with errno.
    long fill() {
        if (begin_ > 0 && end_ == buffer_.size()) { // slide the partial line to the front
            std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (end_ == buffer_.size()) {
            // A full line plus "\r\n", saturated: a limit near SIZE_MAX must not wrap.
            const std::size_t limit = max_line_ > SIZE_MAX - 2 ? SIZE_MAX : max_line_ + 2;
            const std::size_t doubled = buffer_.size() * 2 > 4096 ? buffer_.size() * 2 : 4096;
            const std::size_t most = limit > buffer_.size() + 1 ? limit : buffer_.size() + 1;
            buffer_.resize(doubled < most ? doubled : most);
        }
        const std::size_t wanted = buffer_.size() - end_;
        const auto n = detail::retry_on_eintr(
            [&] { return ::read(stream_->native_handle(), buffer_.data() + end_, wanted); });
        // A short read (or EAGAIN) leaves the stream drained until its next edge; not on a
        // UNIX stream, whose read() may have stopped after a message carrying descriptors.
        if (n > 0 ? static_cast<std::size_t>(n) < wanted && !stream_->stops_at_messages()
                  : n < 0 && detail::would_block(errno))
            stream_->note_drained(detail::direction::read);
        if (n > 0) end_ += static_cast<std::size_t>(n);
        if (n == 0) at_eof_ = true;
        return n;
    }

    detail::descriptor* stream_;
    std::size_t max_line_;
    std::string buffer_;
    std::size_t begin_ = 0;   // first unreturned byte
    std::size_t end_ = 0;     // one past the last received byte
    std::size_t scanned_ = 0; // bytes from begin_ known to hold no '\n'
    bool at_eof_ = false;
    std::error_code failed_; // what every read_line reports once one has failed
};

namespace detail {

template <class Result>
bool read_line_op<Result>::try_once() noexcept {
    std::string& out = into_ ? *into_ : line_;
    if (reader_->failed_) {
        this->ec = reader_->failed_;
        return true;
    }
    for (;;) {
        line_reader::scan s;
        try {
            s = reader_->take_line(out);
        } catch (const std::bad_alloc&) {
            this->ec = std::make_error_code(std::errc::not_enough_memory);
            return true;
        }
        switch (s) {
        case line_reader::scan::line:
            got_line_ = true;
            return true;
        case line_reader::scan::eof_empty:
            return true;
        case line_reader::scan::too_long:
            this->ec = error::line_too_long;
            reader_->fail(this->ec);
            return true;
        case line_reader::scan::need_more:
            break;
        }
        // Drained by the last read (a stream socket's short read): the rest of the line
        // comes with the next edge, and a read now would only meet EAGAIN.
        if (reader_->stream_->must_wait(direction::read)) return false;
        long n;
        try {
            n = reader_->fill();
        } catch (const std::bad_alloc&) {
            this->ec = std::make_error_code(std::errc::not_enough_memory);
            return true;
        }
        if (n < 0) {
            if (would_block(errno)) return false;
            this->ec = errno_code(errno);
            reader_->fail(this->ec);
            return true;
        }
        read_ += static_cast<std::size_t>(n);
    }
}

template <class Result>
descriptor& read_line_op<Result>::target() noexcept {
    return *reader_->stream_;
}

template <class Result>
bool read_line_op<Result>::must_wait() noexcept {
    return reader_->begin_ == reader_->end_ && !reader_->at_eof_ && !reader_->failed_ &&
           reader_->stream_->must_wait(direction::read);
}

} // namespace detail
} // namespace conet

// conet/buffer.hpp - views of the bytes an operation reads into or writes from.
//
// Operations take a conet::mutable_buffer (to receive into) or a conet::const_buffer (to send
// from). Both are cheap views that convert implicitly from what programs already hold:
//
//     char buf[1024];            co_await conn.recv(buf);          // the whole array
//     std::string reply = "hi";  co_await conn.send_all(reply);
//     co_await conn.send_all("hello\n");                          // no trailing '\0'
//     std::vector<std::byte> v;  co_await conn.recv_exact(v);
//
// Which bytes of a char array are sent depends on its constness:
//
// - A writable `char[N]` is a buffer, sent whole: `char rec[8]` filled by recv_exact goes out
//   as 8 bytes even when its last byte is 0. A copy of a literal is writable too:
//   `char msg[] = "hi"` sends 3 bytes, its '\0' included (pass std::string_view(msg) for 2).
// - A `const char[N]` is text, such as a string literal: sent without a final '\0', if it has
//   one (only that one byte; any other zero byte is sent). The edge: constant binary data
//   whose last byte is 0, `const char data[] = {'a', 0}`, loses that byte too. Give such data
//   a byte type (`const unsigned char[]`, `std::byte[]`, std::array) or a size (a span, or
//   const_buffer(data, sizeof data)), all of which are sent whole.
//
// Every other range (std::string, std::vector, std::array, std::span, arrays of unsigned
// char or std::byte) is sent whole, and text types (std::string_view, const char*) by their
// length.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#if !defined(__GLIBCXX__)
#include <ranges>
#endif
// (libstdc++'s <span> brings std::ranges' concepts and ranges::data/size, in
// <bits/ranges_base.h>: the views of <ranges> cost more to parse than the rest of conet's
// standard headers.)
#include <type_traits>

namespace conet {

namespace detail {

template <class T>
concept byte_like = std::is_same_v < std::remove_cv_t<T>,
char > || std::is_same_v<std::remove_cv_t<T>, unsigned char> ||
    std::is_same_v<std::remove_cv_t<T>, signed char> ||
    std::is_same_v<std::remove_cv_t<T>, std::byte>;

template <class R>
concept byte_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
    byte_like<std::ranges::range_value_t<R>>;

template <class R>
concept writable_byte_range =
    byte_range<R> && !std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<R>>>;

} // namespace detail

/// A writable span of bytes: the destination of a receive.
class mutable_buffer {
public:
    constexpr mutable_buffer() noexcept = default;
    constexpr mutable_buffer(void* data, std::size_t size) noexcept : data_(data), size_(size) {}
    /// Any contiguous range of char, unsigned char or std::byte (arrays, std::string, vector...).
    template <class R>
    requires detail::writable_byte_range<R>
    constexpr mutable_buffer(R&& r) noexcept // NOLINT(google-explicit-constructor)
        : data_(std::ranges::data(r)), size_(std::ranges::size(r)) {}

    constexpr char* data() const noexcept { return static_cast<char*>(data_); }
    constexpr std::size_t size() const noexcept { return size_; }

private:
    void* data_ = nullptr;
    std::size_t size_ = 0;
};

/// A read-only span of bytes: the source of a send. Text converts through std::string_view,
/// and a string literal does not carry its terminating '\0' (the rule for char arrays is at
/// the top of this file).
class const_buffer {
public:
    constexpr const_buffer() noexcept = default;
    constexpr const_buffer(const void* data, std::size_t size) noexcept
        : data_(data), size_(size) {}
    template <class S>
    requires(
        std::is_convertible_v<const S&, std::string_view> &&
        !std::is_array_v<
            S>) constexpr const_buffer(const S&
                                           text) noexcept // NOLINT(google-explicit-constructor)
        : const_buffer(std::string_view(text).data(), std::string_view(text).size()) {}
    /// A const char array (a string literal): all of it except a final '\0', its terminator.
    template <std::size_t N>
    constexpr const_buffer(const char (&array)[N]) noexcept // NOLINT(google-explicit-constructor)
        : data_(array), size_(N > 0 && array[N - 1] == '\0' ? N - 1 : N) {}
    /// A writable char array (a buffer the program fills): all of it, whatever its last byte.
    template <std::size_t N>
    constexpr const_buffer(char (&array)[N]) noexcept // NOLINT(google-explicit-constructor)
        : data_(array), size_(N) {}
    template <class R>
    requires(
        detail::byte_range<R> &&
        !std::is_convertible_v<
            const R&,
            std::
                string_view>) constexpr const_buffer(const R&
                                                         r) noexcept // NOLINT(google-explicit-constructor)
        : data_(std::ranges::data(r)), size_(std::ranges::size(r)) {}
    constexpr const_buffer(mutable_buffer b) noexcept // NOLINT(google-explicit-constructor)
        : data_(b.data()), size_(b.size()) {}

    constexpr const char* data() const noexcept { return static_cast<const char*>(data_); }
    constexpr std::size_t size() const noexcept { return size_; }

private:
    const void* data_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace conet

// conet/unix_address.hpp - unix_address: where a UNIX domain socket is bound or connects: a
// filesystem path, a name in Linux's abstract namespace ("@name"), or unnamed.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <system_error>

#include "error.hpp"

namespace conet {

namespace detail {
struct sockaddr_unix;
}

/// The address of a UNIX domain socket. A path names a socket file (made by bind, removed by
/// the listener that made it); an abstract name lives in the network namespace and leaves no
/// file (Linux only; written "@name", its bytes taken as they are, NULs included). Either
/// holds at most `max_length` bytes: longer fails bind and connect with
/// conet::error::address_too_long, never cut short.
class unix_address {
public:
    /// The longest path or abstract name: sun_path's bytes, less the path's terminating NUL
    /// (or the abstract name's leading one). 107 on Linux.
    static constexpr std::size_t max_length = sizeof(sockaddr_un::sun_path) - 1;

    /// Unnamed: an unbound socket, an end of a socketpair, a client as its listener sees it.
    unix_address() noexcept = default;
    /// From its text: "@name" is `name` in the abstract namespace, anything else a path.
    /// Implicit, so that `unix_listener::bind("/run/app.sock")` reads as it should.
    unix_address(std::string_view text) { // NOLINT(google-explicit-constructor)
        if (!text.empty() && text.front() == '@') {
            abstract_ = true;
            text.remove_prefix(1);
        }
        name_.assign(text);
    }
    unix_address(const char* text) // NOLINT(google-explicit-constructor)
        : unix_address(std::string_view(text)) {}
    unix_address(const std::string& text) // NOLINT(google-explicit-constructor)
        : unix_address(std::string_view(text)) {}

    /// A filesystem path, even one that starts with '@'.
    static unix_address path(std::string_view path) {
        unix_address a;
        a.name_.assign(path);
        return a;
    }
    /// `name` in Linux's abstract namespace (no file; gone with the last socket bound to it).
    static unix_address abstract(std::string_view name) {
        unix_address a;
        a.abstract_ = true;
        a.name_.assign(name);
        return a;
    }

    bool is_abstract() const noexcept { return abstract_; }
    /// True for no address at all (an empty path).
    bool is_unnamed() const noexcept { return !abstract_ && name_.empty(); }
    /// The path, or the abstract name without its '@'.
    std::string_view name() const noexcept { return name_; }
    /// "@name" for an abstract name, the path for a path, "" for unnamed.
    std::string to_string() const { return abstract_ ? "@" + name_ : name_; }

    friend bool operator==(const unix_address&, const unix_address&) = default;

private:
    friend struct detail::sockaddr_unix; // (reads a received address into one in place)

    std::string name_;
    bool abstract_ = false;
};

namespace detail {

/// A unix_address as the kernel takes it: the path NUL-terminated, or the abstract name
/// after a NUL, with exactly its length.
struct sockaddr_unix {
    sockaddr_un address{};
    socklen_t length = 0;

    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&address); }
    sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&address); }

    /// Fills it from `a`: address_too_long if it does not fit, invalid_argument for an
    /// unnamed one or a path holding a NUL byte (the kernel would cut the path there).
    std::error_code assign(const unix_address& a) noexcept {
        const std::string_view name = a.name();
        if (a.is_unnamed() || (!a.is_abstract() && name.find('\0') != name.npos))
            return std::make_error_code(std::errc::invalid_argument);
        if (name.size() > unix_address::max_length) return error::address_too_long;
        address.sun_family = AF_UNIX;
        char* at = address.sun_path + (a.is_abstract() ? 1 : 0);
        std::memcpy(at, name.data(), name.size());
        // A path's NUL is counted in (the kernel accepts both); an abstract name's length is
        // exact, since every byte of it counts.
        length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
        return {};
    }

    /// What getsockname, getpeername or accept filled in, back as a unix_address.
    unix_address to_address() const {
        unix_address a;
        if (read_into(a)) throw std::bad_alloc();
        return a;
    }

    /// The same into `out`, reusing its memory: see read().
    std::error_code read_into(unix_address& out) const noexcept {
        return read(address, length, out);
    }

    /// The address of `length` bytes at `address` (what recvfrom or recvmmsg filled in) into
    /// `out`, reusing its memory: a datagram socket's slots, reused from batch to batch, take
    /// each sender's address without allocating once they have held one as long.
    /// not_enough_memory (and `out` unnamed) if it must grow and cannot. A sender that is not
    /// bound (length 0: no name at all) gives an unnamed address.
    static std::error_code read(const sockaddr_un& address, socklen_t length,
                                unix_address& out) noexcept {
        const std::size_t offset = offsetof(sockaddr_un, sun_path);
        std::string_view name;
        bool abstract = false;
        if (length > offset && address.sun_family == AF_UNIX) {
            // Linux binds a path of all 108 bytes (no NUL) and reports its address as longer
            // than a sockaddr_un: the name ends with sun_path, whatever the length says.
            const std::size_t reported = length - offset;
            const std::size_t size =
                reported < sizeof address.sun_path ? reported : sizeof address.sun_path;
            abstract = address.sun_path[0] == '\0';
            name = abstract ? std::string_view(address.sun_path + 1, size - 1)
                            : std::string_view(address.sun_path, ::strnlen(address.sun_path, size));
        }
        try {
            out.name_.assign(name);
        } catch (const std::bad_alloc&) {
            out.name_.clear();
            out.abstract_ = false;
            return std::make_error_code(std::errc::not_enough_memory);
        }
        out.abstract_ = abstract;
        return {};
    }
};

} // namespace detail
} // namespace conet

// conet/address.hpp - IP addresses, endpoints (address + port), name resolution and the
// host helpers of the socket course.
//
// Parsing is strict and never undefined: malformed text throws std::system_error with
// std::errc::invalid_argument and a message quoting the text; the try_parse forms return
// std::nullopt instead. Name resolution (resolve) blocks the calling thread: do it before
// starting the reactor, or accept the pause.
//
// (Over 300 lines: addresses, endpoints and their text forms, parsed and printed, are one
// concept; lookup by name is the rest.)
#pragma once

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <compare>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "error.hpp"

namespace conet {

namespace detail {
/// The whole of `text` as a decimal number, as std::from_chars (base 10) reads it with nothing
/// left over: false, `value` untouched, if it is empty, not all digits, or too large for T.
template <class T>
constexpr bool parse_decimal(std::string_view text, T& value) noexcept {
    if (text.empty()) return false;
    T v = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return false;
        const T digit = static_cast<T>(c - '0');
        if (v > (std::numeric_limits<T>::max() - digit) / 10) return false;
        v = static_cast<T>(v * 10 + digit);
    }
    value = v;
    return true;
}
} // namespace detail

/// The IP version of an address.
enum class ip_family { v4, v6 };

/// An IPv4 or IPv6 address (with an IPv6 scope id for link-local addresses).
class ip_address {
public:
    /// 0.0.0.0
    constexpr ip_address() noexcept = default;

    /// An IPv4 address from its four bytes in network order: {127, 0, 0, 1}.
    static constexpr ip_address v4(std::array<std::uint8_t, 4> b) noexcept {
        ip_address a;
        for (std::size_t i = 0; i < 4; ++i)
            a.bytes_[i] = b[i];
        return a;
    }
    /// An IPv6 address from its sixteen bytes in network order.
    static constexpr ip_address v6(const std::array<std::uint8_t, 16>& b,
                                   std::uint32_t scope_id = 0) noexcept {
        ip_address a;
        a.family_ = ip_family::v6;
        a.bytes_ = b;
        a.scope_id_ = scope_id;
        return a;
    }
    /// The wildcard address of a family (0.0.0.0 or ::): "every interface of this host".
    static constexpr ip_address any(ip_family f = ip_family::v4) noexcept {
        return f == ip_family::v4 ? ip_address{} : v6({});
    }
    /// The loopback address of a family (127.0.0.1 or ::1).
    static constexpr ip_address loopback(ip_family f = ip_family::v4) noexcept {
        if (f == ip_family::v4) return v4({127, 0, 0, 1});
        std::array<std::uint8_t, 16> b{};
        b[15] = 1;
        return v6(b);
    }

    /// Parses "127.0.0.1", "::1" or "fe80::1%2" (the course's inet_aton, for both families).
    static ip_address parse(std::string_view text) {
        if (auto a = try_parse(text)) return *a;
        detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                            "invalid IP address \"" + std::string(text) + "\"");
    }

    /// Like parse(), but returns std::nullopt for malformed text.
    static std::optional<ip_address> try_parse(std::string_view text) noexcept {
        // inet_pton wants a NUL-terminated string; anything longer than the longest valid
        // address (with a scope) is malformed anyway.
        char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
        if (text.empty() || text.size() >= sizeof buf || text.find('\0') != text.npos)
            return std::nullopt;
        std::memcpy(buf, text.data(), text.size());
        buf[text.size()] = '\0';

        ip_address a;
        if (::inet_pton(AF_INET, buf, a.bytes_.data()) == 1) return a;

        std::uint32_t scope = 0;
        if (char* percent = std::strchr(buf, '%')) {
            *percent = '\0';
            const std::string_view zone(percent + 1);
            if (zone.empty()) return std::nullopt;
            if (!detail::parse_decimal(zone, scope)) {
                scope = ::if_nametoindex(percent + 1);
                if (scope == 0) return std::nullopt;
            }
        }
        if (::inet_pton(AF_INET6, buf, a.bytes_.data()) != 1) return std::nullopt;
        a.family_ = ip_family::v6;
        a.scope_id_ = scope;
        return a;
    }

    ip_family family() const noexcept { return family_; }
    bool is_v4() const noexcept { return family_ == ip_family::v4; }
    bool is_v6() const noexcept { return family_ == ip_family::v6; }
    std::uint32_t scope_id() const noexcept { return scope_id_; }

    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    std::span<const std::uint8_t> bytes() const noexcept {
        return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
    }

    /// 127.0.0.0/8 or ::1.
    bool is_loopback() const noexcept {
        return is_v4() ? bytes_[0] == 127 : *this == loopback(ip_family::v6);
    }
    bool is_unspecified() const noexcept { return *this == any(family_); }

    /// "127.0.0.1", "::1", "fe80::1%2" (the course's inet_ntoa, for both families).
    std::string to_string() const {
        char buf[INET6_ADDRSTRLEN];
        ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
        std::string s(buf);
        if (scope_id_ != 0) s += '%' + std::to_string(scope_id_);
        return s;
    }

    friend bool operator==(const ip_address&, const ip_address&) = default;
    friend auto operator<=>(const ip_address&, const ip_address&) = default;

private:
    ip_family family_ = ip_family::v4;
    std::array<std::uint8_t, 16> bytes_{}; // IPv4 uses the first four
    std::uint32_t scope_id_ = 0;
};

/// An IP address and a port: where a socket is bound, or whom it talks to.
class endpoint {
public:
    /// 0.0.0.0:0
    constexpr endpoint() noexcept = default;
    constexpr endpoint(ip_address address, std::uint16_t port) noexcept
        : address_(address), port_(port) {}

    /// Parses "127.0.0.1:8888", "[::1]:8888" or "0.0.0.0:0". Names are not looked up here:
    /// use resolve() for "localhost:8888".
    static endpoint parse(std::string_view text) {
        if (auto e = try_parse(text)) return *e;
        detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                            "invalid endpoint \"" + std::string(text) +
                                "\" (expected IPv4:PORT or [IPv6]:PORT)");
    }

    /// Like parse(), but returns std::nullopt for malformed text.
    static std::optional<endpoint> try_parse(std::string_view text) noexcept {
        std::string_view host;
        std::string_view port;
        if (!split_host_port(text, host, port)) return std::nullopt;
        const bool bracketed = text.front() == '[';
        auto address = ip_address::try_parse(host);
        auto number = parse_port(port);
        if (!address || !number) return std::nullopt;
        if (bracketed != address->is_v6()) return std::nullopt; // "[1.2.3.4]:1" or "::1:80"
        return endpoint{*address, *number};
    }

    /// Parses a decimal port number, 0 to 65535, with nothing else around it.
    static std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
        if (text.empty() || text.size() > 5) return std::nullopt;
        unsigned value = 0;
        if (!detail::parse_decimal(text, value) || value > 65535) return std::nullopt;
        return static_cast<std::uint16_t>(value);
    }

    /// Splits "HOST:PORT" or "[HOST]:PORT" without validating either part.
    static bool split_host_port(std::string_view text, std::string_view& host,
                                std::string_view& port) noexcept {
        if (text.empty()) return false;
        std::size_t colon;
        if (text.front() == '[') {
            const auto close = text.find(']');
            if (close == text.npos || close + 1 >= text.size() || text[close + 1] != ':')
                return false;
            host = text.substr(1, close - 1);
            colon = close + 1;
        } else {
            colon = text.rfind(':');
            if (colon == text.npos) return false;
            host = text.substr(0, colon);
        }
        port = text.substr(colon + 1);
        return !host.empty();
    }

    const ip_address& address() const noexcept { return address_; }
    std::uint16_t port() const noexcept { return port_; }
    ip_family family() const noexcept { return address_.family(); }

    /// "127.0.0.1:8888" or "[::1]:8888".
    std::string to_string() const {
        std::string port = std::to_string(port_);
        if (address_.is_v4()) return address_.to_string() + ':' + port;
        return '[' + address_.to_string() + "]:" + port;
    }

    friend bool operator==(const endpoint&, const endpoint&) = default;
    friend auto operator<=>(const endpoint&, const endpoint&) = default;

private:
    ip_address address_;
    std::uint16_t port_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const ip_address& a) {
    return os << a.to_string();
}
inline std::ostream& operator<<(std::ostream& os, const endpoint& e) {
    return os << e.to_string();
}

namespace detail {

/// The system's view of an endpoint, for bind/connect/sendto.
struct sockaddr_any {
    sockaddr_storage storage{};
    socklen_t length = 0;

    sockaddr_any() noexcept = default;
    explicit sockaddr_any(const endpoint& e) noexcept {
        const auto bytes = e.address().bytes();
        if (e.address().is_v4()) {
            auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
            sin->sin_family = AF_INET;
            sin->sin_port = htons(e.port());
            std::memcpy(&sin->sin_addr, bytes.data(), 4);
            length = sizeof(sockaddr_in);
        } else {
            auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(e.port());
            std::memcpy(&sin6->sin6_addr, bytes.data(), 16);
            sin6->sin6_scope_id = e.address().scope_id();
            length = sizeof(sockaddr_in6);
        }
    }

    sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }

    /// Back to an endpoint (an unknown family gives 0.0.0.0:0).
    endpoint to_endpoint() const noexcept {
        if (storage.ss_family == AF_INET) {
            const auto* sin = reinterpret_cast<const sockaddr_in*>(&storage);
            std::array<std::uint8_t, 4> b;
            std::memcpy(b.data(), &sin->sin_addr, 4);
            return {ip_address::v4(b), ntohs(sin->sin_port)};
        }
        if (storage.ss_family == AF_INET6) {
            const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage);
            std::array<std::uint8_t, 16> b;
            std::memcpy(b.data(), &sin6->sin6_addr, 16);
            return {ip_address::v6(b, sin6->sin6_scope_id), ntohs(sin6->sin6_port)};
        }
        return {};
    }
};

inline int to_af(ip_family f) noexcept {
    return f == ip_family::v4 ? AF_INET : AF_INET6;
}

class resolve_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "resolve"; }
    std::string message(int value) const override { return ::gai_strerror(value); }
};

inline const std::error_category& resolve_category() noexcept {
    static const resolve_category_impl instance;
    return instance;
}

} // namespace detail

/// Looks up `host` (a name such as "localhost", or a numeric address) and returns its
/// endpoints with `port`, in the order the system prefers. Blocks the calling thread.
/// On failure sets `ec` (category "resolve", or an errno) and returns an empty vector.
inline std::vector<endpoint> resolve(std::string_view host, std::uint16_t port,
                                     std::error_code& ec) {
    ec.clear();
    const std::string name(host);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM; // one entry per address rather than per socket type
    addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &list);
    if (rc != 0) {
        ec = rc == EAI_SYSTEM ? detail::errno_code(errno)
                              : std::error_code(rc, detail::resolve_category());
        return {};
    }
    std::vector<endpoint> result;
    for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        detail::sockaddr_any sa;
        std::memcpy(&sa.storage, ai->ai_addr, ai->ai_addrlen);
        sa.length = ai->ai_addrlen;
        endpoint e{sa.to_endpoint().address(), port};
        bool seen = false;
        for (const endpoint& r : result)
            seen = seen || r == e;
        if (!seen) result.push_back(e);
    }
    ::freeaddrinfo(list);
    return result;
}

/// Like resolve(host, port, ec), but throws std::system_error ("resolve HOST: reason").
inline std::vector<endpoint> resolve(std::string_view host, std::uint16_t port) {
    std::error_code ec;
    auto result = resolve(host, port, ec);
    if (ec) detail::throw_error(ec, "resolve " + std::string(host));
    return result;
}

/// Resolves "HOST:PORT" text ("localhost:8888", "[::1]:80", "10.0.0.1:22"). Throws
/// std::system_error: invalid_argument for text that is not HOST:PORT, or the lookup's error.
inline std::vector<endpoint> resolve(std::string_view host_and_port) {
    std::string_view host;
    std::string_view port_text;
    std::optional<std::uint16_t> port;
    if (endpoint::split_host_port(host_and_port, host, port_text))
        port = endpoint::parse_port(port_text);
    if (!port)
        detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                            "invalid endpoint \"" + std::string(host_and_port) +
                                "\" (expected HOST:PORT)");
    return resolve(host, *port);
}

/// The name of this machine (the course's socket.gethostname()).
inline std::string host_name() {
    char buf[HOST_NAME_MAX + 1] = {};
    if (::gethostname(buf, sizeof buf - 1) < 0)
        detail::throw_error(detail::errno_code(errno), "gethostname");
    return buf;
}

} // namespace conet

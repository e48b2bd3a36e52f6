// conet/address.hpp - IP addresses, endpoints (address + port), name resolution and the
// host helpers of the socket course.
//
// Parsing is strict and never undefined: malformed text throws std::system_error with
// std::errc::invalid_argument and a message quoting the text; the try_parse forms return
// std::nullopt instead. Wherever a port is taken as text, a service name ("http", "mysql")
// is looked up in the services database (/etc/services, a local file, by default).
// Name resolution here (resolve, host_name(address)) blocks the calling thread: do it before
// starting the reactor, or use async_resolve (resolve.hpp), which never blocks it.
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
#include <bit>
#include <cerrno>
#include <climits>
#include <compare>
#include <cstdint>
#include <cstring>
#include <iosfwd>
#include <limits>
#include <optional>
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

/// Which addresses a name lookup may return: both families, or only one.
enum class resolve_family { any, v4, v6 };

/// A 16-bit value from host to network byte order (big-endian): the course's htons().
constexpr std::uint16_t host_to_network(std::uint16_t v) noexcept {
    if constexpr (std::endian::native == std::endian::big) return v;
    return static_cast<std::uint16_t>((v << 8) | (v >> 8));
}
/// A 32-bit value from host to network byte order (big-endian): htonl().
constexpr std::uint32_t host_to_network(std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::big) return v;
    return (v << 24) | ((v << 8) & 0x00ff0000u) | ((v >> 8) & 0x0000ff00u) | (v >> 24);
}
/// From network to host byte order: ntohs(). (A swap is its own inverse.)
constexpr std::uint16_t network_to_host(std::uint16_t v) noexcept {
    return host_to_network(v);
}
/// From network to host byte order: ntohl().
constexpr std::uint32_t network_to_host(std::uint32_t v) noexcept {
    return host_to_network(v);
}

namespace detail {
struct ip_address_access;
}

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
    // (The parsing functions are templates only so that what they make, std::optional and
    // its checks, is compiled where they are used, not in every file that includes conet.)
    template <class = void>
    static ip_address parse(std::string_view text) {
        if (auto a = try_parse(text)) return *a;
        detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                            "invalid IP address \"" + std::string(text) + "\"");
    }

    /// Like parse(), but returns std::nullopt for malformed text.
    template <class = void>
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

    /// An IPv4 address from the 32-bit value of a `struct in_addr` (`s_addr`, network byte
    /// order), as inet_aton() fills it in: the course's inet_ntoa() input.
    static constexpr ip_address from_network_order(std::uint32_t s_addr) noexcept {
        return from_host_order(network_to_host(s_addr));
    }
    /// An IPv4 address from its value in host byte order: 0x7f000001 is 127.0.0.1.
    static constexpr ip_address from_host_order(std::uint32_t value) noexcept {
        return v4({static_cast<std::uint8_t>(value >> 24), static_cast<std::uint8_t>(value >> 16),
                   static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)});
    }

    /// The IPv4 address as a `struct in_addr`'s `s_addr` (network byte order), what
    /// inet_aton() yields. An IPv4-mapped IPv6 address gives its IPv4 address; any other
    /// IPv6 address throws std::system_error (invalid_argument) naming it.
    std::uint32_t to_network_order() const { return host_to_network(to_host_order()); }
    /// The IPv4 address as a number in host byte order: 127.0.0.1 is 0x7f000001. Throws as
    /// to_network_order() does.
    std::uint32_t to_host_order() const {
        const ip_address a = unmapped();
        if (!a.is_v4())
            detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                                "ip_address: " + to_string() + " is not an IPv4 address");
        return std::uint32_t{a.bytes_[0]} << 24 | std::uint32_t{a.bytes_[1]} << 16 |
               std::uint32_t{a.bytes_[2]} << 8 | std::uint32_t{a.bytes_[3]};
    }

    ip_family family() const noexcept { return family_; }
    bool is_v4() const noexcept { return family_ == ip_family::v4; }
    bool is_v6() const noexcept { return family_ == ip_family::v6; }
    std::uint32_t scope_id() const noexcept { return scope_id_; }

    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    // (A template only so that the span, whose making from a pointer checks the iterator
    // concepts, is compiled where it is used, not in every file that includes conet.hpp.)
    template <class = void>
    std::span<const std::uint8_t> bytes() const noexcept {
        return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
    }

    /// An IPv4 address in IPv6 clothes, ::ffff:a.b.c.d: what a dual-stack IPv6 socket (bound
    /// to ::) reports for an IPv4 peer.
    bool is_v4_mapped() const noexcept {
        if (!is_v6()) return false;
        for (std::size_t i = 0; i < 10; ++i)
            if (bytes_[i] != 0) return false;
        return bytes_[10] == 0xff && bytes_[11] == 0xff;
    }
    /// The IPv4 address of an IPv4-mapped one (::ffff:127.0.0.1 gives 127.0.0.1); any other
    /// address is returned as it is. Print a peer this way to show the address it has.
    ip_address unmapped() const noexcept {
        if (!is_v4_mapped()) return *this;
        return v4({bytes_[12], bytes_[13], bytes_[14], bytes_[15]});
    }

    /// 127.0.0.0/8 or ::1, also when IPv4-mapped (::ffff:127.0.0.1 is this host too).
    bool is_loopback() const noexcept {
        const ip_address a = unmapped();
        return a.is_v4() ? a.bytes_[0] == 127 : a == loopback(ip_family::v6);
    }
    /// 0.0.0.0, :: or ::ffff:0.0.0.0: no address in particular.
    bool is_unspecified() const noexcept {
        const ip_address a = unmapped();
        return a == any(a.family_);
    }

    /// "127.0.0.1", "::1", "fe80::1%2" (the course's inet_ntoa, for both families).
    std::string to_string() const {
        char buf[INET6_ADDRSTRLEN];
        ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
        std::string s(buf);
        if (scope_id_ != 0) s += '%' + std::to_string(scope_id_);
        return s;
    }

    friend bool operator==(const ip_address&, const ip_address&) = default;
    /// A total order: every IPv4 address before every IPv6 one, then the bytes in network
    /// order (the first that differs decides), then the scope id.
    friend constexpr std::strong_ordering operator<=>(const ip_address& a,
                                                      const ip_address& b) noexcept {
        // Written out rather than defaulted: a defaulted one needs operator<=> on std::array,
        // which libc++ 16 lacks (it would be deleted there).
        if (a.family_ != b.family_) return a.family_ <=> b.family_;
        for (std::size_t i = 0; i < a.bytes_.size(); ++i)
            if (a.bytes_[i] != b.bytes_[i]) return a.bytes_[i] <=> b.bytes_[i];
        return a.scope_id_ <=> b.scope_id_;
    }

private:
    friend struct detail::ip_address_access;

    ip_family family_ = ip_family::v4;
    std::array<std::uint8_t, 16> bytes_{}; // IPv4 uses the first four
    std::uint32_t scope_id_ = 0;
};

namespace detail {
// The address's bytes as a pointer, for the system's structures (bytes() is a span, which
// the code every includer compiles stays clear of).
struct ip_address_access {
    static const std::uint8_t* bytes(const ip_address& a) noexcept { return a.bytes_.data(); }
};

/// The port of a service name in the services database ("http" is 80, "mysql" 3306) for
/// `protocol` ("tcp" or "udp"), or std::nullopt if it has none. The database is a local file
/// (/etc/services) wherever nsswitch.conf says "services: files", as it does by default.
template <class = void>
std::optional<std::uint16_t> lookup_service(std::string_view name, const char* protocol) noexcept {
    // getservbyname_r wants NUL-terminated text; a longer name is no service's.
    char text[64];
    if (name.empty() || name.size() >= sizeof text || name.find('\0') != name.npos)
        return std::nullopt;
    std::memcpy(text, name.data(), name.size());
    text[name.size()] = '\0';
    servent entry{};
    servent* found = nullptr;
    char buf[1024];
    if (::getservbyname_r(text, protocol, &entry, buf, sizeof buf, &found) != 0 || !found)
        return std::nullopt;
    return network_to_host(static_cast<std::uint16_t>(found->s_port));
}

} // namespace detail

/// An IP address and a port: where a socket is bound, or whom it talks to.
class endpoint {
public:
    /// 0.0.0.0:0
    constexpr endpoint() noexcept = default;
    constexpr endpoint(ip_address address, std::uint16_t port) noexcept
        : address_(address), port_(port) {}

    /// Parses "127.0.0.1:8888", "[::1]:8888", "0.0.0.0:0" or "127.0.0.1:http" (a TCP
    /// service name, from the services database). Host names are not looked up here: use
    /// resolve() for "localhost:8888".
    // (Templates, as ip_address's parsing functions are, and for the same reason.)
    template <class = void>
    static endpoint parse(std::string_view text) {
        if (auto e = try_parse(text)) return *e;
        detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                            "invalid endpoint \"" + std::string(text) +
                                "\" (expected IPv4:PORT or [IPv6]:PORT, PORT a number or a "
                                "service name)");
    }

    /// Like parse(), but returns std::nullopt for malformed text (or an unknown service).
    template <class = void>
    static std::optional<endpoint> try_parse(std::string_view text) noexcept {
        std::string_view host;
        std::string_view port;
        if (!split_host_port(text, host, port)) return std::nullopt;
        const bool bracketed = text.front() == '[';
        auto address = ip_address::try_parse(host);
        if (!address) return std::nullopt;
        auto number = parse_port(port);
        if (!number) number = detail::lookup_service(port, "tcp");
        if (!number) return std::nullopt;
        if (bracketed != address->is_v6()) return std::nullopt; // "[1.2.3.4]:1" or "::1:80"
        return endpoint{*address, *number};
    }

    /// Parses a decimal port number, 0 to 65535, with nothing else around it.
    template <class = void>
    static std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
        // Leading zeros change nothing ("000080" is 80), so they do not count against the
        // five digits a port can have.
        while (text.size() > 1 && text.front() == '0')
            text.remove_prefix(1);
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

    /// The same endpoint with its address unmapped (see ip_address::unmapped): a dual-stack
    /// server's IPv4 peer [::ffff:127.0.0.1]:40312 prints as 127.0.0.1:40312.
    endpoint unmapped() const noexcept { return {address_.unmapped(), port_}; }

    /// "127.0.0.1:8888" or "[::1]:8888".
    std::string to_string() const {
        std::string port = std::to_string(port_);
        if (address_.is_v4()) return address_.to_string() + ':' + port;
        return '[' + address_.to_string() + "]:" + port;
    }

    friend bool operator==(const endpoint&, const endpoint&) = default;
    /// By address (see ip_address's order), then by port.
    friend constexpr std::strong_ordering operator<=>(const endpoint& a,
                                                      const endpoint& b) noexcept {
        if (const auto by_address = a.address_ <=> b.address_; by_address != 0) return by_address;
        return a.port_ <=> b.port_;
    }

private:
    ip_address address_;
    std::uint16_t port_ = 0;
};

// Templates on the stream (any std::ostream, std::ofstream, ...), so that this header needs
// only <iosfwd>: <ostream> is a large part of what <chrono> would otherwise spare.
template <class Traits>
std::basic_ostream<char, Traits>& operator<<(std::basic_ostream<char, Traits>& os,
                                             const ip_address& a) {
    return os << a.to_string();
}
template <class Traits>
std::basic_ostream<char, Traits>& operator<<(std::basic_ostream<char, Traits>& os,
                                             const endpoint& e) {
    return os << e.to_string();
}

namespace detail {

/// Writes `e` as the system's address into `out`, which has room for a sockaddr_in6 (the
/// larger of the two); returns its length. For the sockaddr_any below, and for batches of
/// datagrams, which keep one small address per datagram.
inline socklen_t write_sockaddr(const endpoint& e, void* out) noexcept {
    const std::uint8_t* bytes = ip_address_access::bytes(e.address());
    if (e.address().is_v4()) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(e.port());
        std::memcpy(&sin.sin_addr, bytes, 4);
        std::memcpy(out, &sin, sizeof sin);
        return sizeof sin;
    }
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(e.port());
    std::memcpy(&sin6.sin6_addr, bytes, 16);
    sin6.sin6_scope_id = e.address().scope_id();
    std::memcpy(out, &sin6, sizeof sin6);
    return sizeof sin6;
}

/// The endpoint of a system address of `length` bytes at `in` (an IPv4 or IPv6 one; any other
/// gives 0.0.0.0:0).
inline endpoint read_sockaddr(const void* in, socklen_t length) noexcept {
    sa_family_t family = AF_UNSPEC;
    if (length >= sizeof family) std::memcpy(&family, in, sizeof family);
    if (family == AF_INET && length >= sizeof(sockaddr_in)) {
        sockaddr_in sin;
        std::memcpy(&sin, in, sizeof sin);
        std::array<std::uint8_t, 4> b;
        std::memcpy(b.data(), &sin.sin_addr, 4);
        return {ip_address::v4(b), ntohs(sin.sin_port)};
    }
    if (family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
        sockaddr_in6 sin6;
        std::memcpy(&sin6, in, sizeof sin6);
        std::array<std::uint8_t, 16> b;
        std::memcpy(b.data(), &sin6.sin6_addr, 16);
        return {ip_address::v6(b, sin6.sin6_scope_id), ntohs(sin6.sin6_port)};
    }
    return {};
}

/// The system's view of an endpoint, for bind/connect/sendto.
struct sockaddr_any {
    sockaddr_storage storage{};
    socklen_t length = 0;

    sockaddr_any() noexcept = default;
    explicit sockaddr_any(const endpoint& e) noexcept : length(write_sockaddr(e, &storage)) {}

    sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }

    /// Back to an endpoint (an unknown family gives 0.0.0.0:0).
    endpoint to_endpoint() const noexcept { return read_sockaddr(&storage, sizeof storage); }
};

inline int to_af(ip_family f) noexcept {
    return f == ip_family::v4 ? AF_INET : AF_INET6;
}

class resolve_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "resolve"; }
    std::string message(int value) const override {
        // conet looks service names up itself, so EAI_SERVICE always means "no such service"
        // (getaddrinfo's own text speaks of socket types).
        if (value == EAI_SERVICE) return "Unknown service name";
        return ::gai_strerror(value);
    }
};

inline const std::error_category& resolve_category() noexcept {
    static const resolve_category_impl instance;
    return instance;
}

/// A getaddrinfo/getnameinfo result as an error_code.
inline std::error_code gai_code(int rc, int saved_errno) noexcept {
    return rc == EAI_SYSTEM ? errno_code(saved_errno) : std::error_code(rc, resolve_category());
}

/// True for "invalid" and the names under it: RFC 6761 reserves them never to exist, and asks
/// resolver libraries to say so at once. glibc asks the DNS server instead; conet does not.
inline bool is_invalid_name(std::string_view host) noexcept {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    constexpr std::string_view tld = "invalid";
    if (host.size() < tld.size()) return false;
    if (host.size() > tld.size() && host[host.size() - tld.size() - 1] != '.') return false;
    for (std::size_t i = 0; i < tld.size(); ++i) {
        char c = host[host.size() - tld.size() + i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != tld[i]) return false;
    }
    return true;
}

/// A port from text: a number, else a service name for `protocol`; EAI_SERVICE if neither.
template <class = void>
std::uint16_t port_from_text(std::string_view service, const char* protocol,
                             std::error_code& ec) noexcept {
    ec.clear();
    if (auto port = endpoint::parse_port(service)) return *port;
    // All digits, but no port: a number too big, not a name to look up ("Unknown service").
    if (!service.empty() && service.find_first_not_of("0123456789") == service.npos) {
        ec = error::port_out_of_range;
        return 0;
    }
    if (auto port = lookup_service(service, protocol)) return *port;
    ec = std::error_code(EAI_SERVICE, resolve_category());
    return 0;
}

/// getaddrinfo for `host` (blocking), each address once, with `port`.
template <class = void>
std::vector<endpoint> lookup_host(const std::string& host, std::uint16_t port,
                                  resolve_family family, std::error_code& ec) {
    ec.clear();
    // A NUL is in no name: getaddrinfo, reading a C string, would look up what precedes it.
    if (is_invalid_name(host) || host.find('\0') != host.npos) {
        ec = std::error_code(EAI_NONAME, resolve_category());
        return {};
    }
    addrinfo hints{};
    hints.ai_family = family == resolve_family::v4   ? AF_INET
                      : family == resolve_family::v6 ? AF_INET6
                                                     : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM; // one entry per address rather than per socket type
    addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
    if (rc != 0) {
        ec = gai_code(rc, errno);
        return {};
    }
    std::vector<endpoint> result;
    for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        sockaddr_any sa;
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

// (resolve_what and the lookups below are templates only so that they are compiled where they
// are called, not in every file that includes conet.hpp.)

/// What a failed lookup of `host` with `service` is called in an exception.
template <class = void>
std::string resolve_what(std::string_view host, std::string_view service,
                         const std::error_code& ec) {
    if (ec == std::error_code(EAI_SERVICE, resolve_category()) || ec == error::port_out_of_range)
        return "resolve " + std::string(host) + ": service \"" + std::string(service) + '"';
    return "resolve " + std::string(host);
}

} // namespace detail

/// The port of a service: a number ("8080"), or a name looked up in the services database
/// ("mysql" gives 3306, the course's getservbyname) for `protocol` ("tcp" or "udp"). An
/// unknown name sets `ec` (category "resolve", "Unknown service name") and returns 0.
template <class = void>
std::uint16_t service_port(std::string_view service, std::string_view protocol,
                           std::error_code& ec) {
    return detail::port_from_text(service, std::string(protocol).c_str(), ec);
}

/// Like service_port(service, protocol, ec), but throws std::system_error naming the service:
/// `service "nope": Unknown service name`.
template <class = void>
std::uint16_t service_port(std::string_view service, std::string_view protocol = "tcp") {
    std::error_code ec;
    const std::uint16_t port = service_port(service, protocol, ec);
    if (ec) detail::throw_error(ec, "service \"" + std::string(service) + '"');
    return port;
}

/// Looks up `host` (a name such as "localhost", or a numeric address) and returns its
/// endpoints with `port`, in the order the system prefers, of `family` only if it is not
/// `any`. Blocks the calling thread. On failure sets `ec` (category "resolve", or an errno)
/// and returns an empty vector. Names under "invalid" (RFC 6761) fail at once, unasked.
template <class = void>
std::vector<endpoint> resolve(std::string_view host, std::uint16_t port, resolve_family family,
                              std::error_code& ec) {
    return detail::lookup_host(std::string(host), port, family, ec);
}
/// resolve(host, port, family, ec) for both families.
template <class = void>
std::vector<endpoint> resolve(std::string_view host, std::uint16_t port, std::error_code& ec) {
    return resolve(host, port, resolve_family::any, ec);
}

/// Like resolve(host, port, family, ec), but throws std::system_error ("resolve HOST: reason").
template <class = void>
std::vector<endpoint> resolve(std::string_view host, std::uint16_t port,
                              resolve_family family = resolve_family::any) {
    std::error_code ec;
    auto result = resolve(host, port, family, ec);
    if (ec) detail::throw_error(ec, "resolve " + std::string(host));
    return result;
}

/// Looks up `host` with a service: a port number as text or a service name ("http"); an
/// unknown service sets `ec` to "Unknown service name" before any host lookup.
template <class = void>
std::vector<endpoint> resolve(std::string_view host, std::string_view service,
                              resolve_family family, std::error_code& ec) {
    const std::uint16_t port = detail::port_from_text(service, "tcp", ec);
    if (ec) return {};
    return resolve(host, port, family, ec);
}

/// Like resolve(host, service, family, ec), but throws std::system_error: "resolve HOST:
/// reason", or "resolve HOST: service "NAME": Unknown service name".
template <class = void>
std::vector<endpoint> resolve(std::string_view host, std::string_view service,
                              resolve_family family = resolve_family::any) {
    std::error_code ec;
    auto result = resolve(host, service, family, ec);
    if (ec) detail::throw_error(ec, detail::resolve_what(host, service, ec));
    return result;
}

/// Resolves "HOST:PORT" text ("localhost:8888", "[::1]:80", "10.0.0.1:22", "localhost:http").
/// Throws std::system_error: invalid_argument for text that is not HOST:PORT, or the lookup's
/// error (an unknown service included).
template <class = void>
std::vector<endpoint> resolve(std::string_view host_and_port,
                              resolve_family family = resolve_family::any) {
    std::string_view host;
    std::string_view service;
    if (!endpoint::split_host_port(host_and_port, host, service) || service.empty() ||
        (endpoint::parse_port(service) == std::nullopt &&
         service.find_first_not_of("0123456789") == std::string_view::npos))
        detail::throw_error(std::make_error_code(std::errc::invalid_argument),
                            "invalid endpoint \"" + std::string(host_and_port) +
                                "\" (expected HOST:PORT)");
    return resolve(host, service, family);
}

/// The name of this machine (the course's socket.gethostname()).
template <class = void>
std::string host_name() {
    char buf[HOST_NAME_MAX + 1] = {};
    if (::gethostname(buf, sizeof buf - 1) < 0)
        detail::throw_error(detail::errno_code(errno), "gethostname");
    return buf;
}

/// The name of the host at `address` (the course's gethostbyaddr; getnameinfo underneath): a
/// reverse lookup, which blocks like resolve(). An IPv4-mapped address is looked up as IPv4.
/// No name sets `ec` (category "resolve"); the unspecified address (0.0.0.0, ::) names no host
/// and gives invalid_argument at once, without asking anyone.
template <class = void>
std::string host_name(const ip_address& address, std::error_code& ec) {
    ec.clear();
    const ip_address a = address.unmapped();
    if (a.is_unspecified()) {
        ec = std::make_error_code(std::errc::invalid_argument);
        return {};
    }
    const detail::sockaddr_any sa(endpoint{a, 0});
    char name[NI_MAXHOST];
    const int rc = ::getnameinfo(sa.get(), sa.length, name, sizeof name, nullptr, 0, NI_NAMEREQD);
    if (rc != 0) {
        ec = detail::gai_code(rc, errno);
        return {};
    }
    return name;
}

/// Like host_name(address, ec), but throws std::system_error naming the address:
/// "host_name 192.0.2.1: Name or service not known".
template <class = void>
std::string host_name(const ip_address& address) {
    std::error_code ec;
    std::string name = host_name(address, ec);
    if (ec) detail::throw_error(ec, "host_name " + address.to_string());
    return name;
}

} // namespace conet

// Tests for conet/address.hpp: parsing and formatting IPv4/IPv6 addresses and endpoints,
// malformed input, name resolution and the course's host helpers.
#include <conet/address.hpp>

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <bit>
#include <compare>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "catch.hpp"

using conet::endpoint;
using conet::ip_address;

TEST_CASE("valid endpoints parse and format back to the same text", "[address]") {
    for (const char* text : {"127.0.0.1:8888", "0.0.0.0:0", "255.255.255.255:65535", "[::1]:8888",
                             "[::]:0", "[fe80::1%1]:22", "[2001:db8::8:800:200c:417a]:443"}) {
        INFO(text);
        const auto e = endpoint::parse(text);
        CHECK(e.to_string() == text);
        CHECK(endpoint::try_parse(text) == e);
    }
    const auto e = endpoint::parse("127.0.0.1:8888");
    CHECK(e.port() == 8888);
    CHECK(e.address() == ip_address::loopback());
    CHECK(e.address().is_loopback());
    CHECK(endpoint::parse("[::1]:80").address() == ip_address::loopback(conet::ip_family::v6));
    CHECK(endpoint::parse("[::1]:80").family() == conet::ip_family::v6);
    CHECK(endpoint::parse("0.0.0.0:0").address().is_unspecified());
    std::ostringstream os;
    os << endpoint::parse("[::ffff:1.2.3.4]:7");
    CHECK(os.str() == "[::ffff:1.2.3.4]:7");
}

TEST_CASE("malformed endpoints are clear errors naming the text", "[address]") {
    for (const char* text : {"",
                             ":",
                             "127.0.0.1",
                             "127.0.0.1:",
                             ":80",
                             "127.0.0.1:65536",
                             "127.0.0.1:-1",
                             "127.0.0.1:80x",
                             "127.0.0.1:0x50",
                             "1.2.3:80",
                             "1.2.3.4.5:80",
                             "256.0.0.1:80",
                             "localhost:80",
                             "::1:80",
                             "[::1]",
                             "[::1]80",
                             "[::1:80",
                             "[1.2.3.4]:80",
                             "[:::1]:80",
                             "[fe80::1%]:80",
                             "[fe80::1%nosuchif0]:80",
                             "1.2.3.4 :80",
                             " 1.2.3.4:80",
                             "1.2.3.4:8 0",
                             "1.2.3.4:123456"}) {
        INFO("text: \"" << text << "\"");
        CHECK_FALSE(endpoint::try_parse(text).has_value());
        try {
            endpoint::parse(text);
            FAIL("parsed");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::invalid_argument);
            CHECK(std::string(e.what()).find('"' + std::string(text) + '"') != std::string::npos);
        }
    }
    // Embedded NUL and over-long text are rejected without reading past the view.
    CHECK_FALSE(endpoint::try_parse(std::string_view("1.2.3.4\0:80", 11)).has_value());
    CHECK_FALSE(ip_address::try_parse(std::string(1000, '1')).has_value());
    CHECK_THROWS_WITH(ip_address::parse("1.2.3.999"),
                      "invalid IP address \"1.2.3.999\": Invalid argument");
}

TEST_CASE("addresses convert between text and bytes like inet_aton/inet_ntoa", "[address]") {
    const auto a = ip_address::parse("192.168.1.2");
    REQUIRE(a.bytes().size() == 4);
    CHECK(a.bytes()[0] == 0xc0);
    CHECK(a.bytes()[1] == 0xa8);
    CHECK(a.bytes()[2] == 0x01);
    CHECK(a.bytes()[3] == 0x02);
    CHECK(ip_address::v4({0xc0, 0xa8, 0x01, 0x02}).to_string() == "192.168.1.2");
    const auto six = ip_address::parse("::1");
    CHECK(six.is_v6());
    CHECK(six.bytes().size() == 16);
    CHECK(six.bytes()[15] == 1);
    CHECK(ip_address::any(conet::ip_family::v6).to_string() == "::");
    CHECK(ip_address::parse("fe80::1%3").scope_id() == 3);
    CHECK(ip_address::parse("10.0.0.1") < ip_address::parse("10.0.0.2"));
}

TEST_CASE("addresses and endpoints order by family, bytes, scope, then port", "[address]") {
    const auto a = [](const char* text) { return ip_address::parse(text); };
    const auto e = [](const char* text) { return endpoint::parse(text); };
    // Every IPv4 address before every IPv6 one, even the largest before the smallest.
    CHECK(a("255.255.255.255") < a("::"));
    CHECK(a("0.0.0.0") < a("::ffff:0.0.0.0"));
    // The bytes in network order, the first that differs decides: not the last, not a sum.
    CHECK(a("9.255.255.255") < a("10.0.0.0"));
    CHECK(a("10.0.1.0") > a("10.0.0.255"));
    CHECK(a("2001:db8::1") < a("2001:db9::"));
    CHECK(a("::ffff:255.255.255.255") > a("::1"));
    // The scope id only between equal bytes.
    CHECK(a("fe80::1%1") < a("fe80::1%2"));
    CHECK(a("fe80::1%9") < a("fe80::2%1"));
    CHECK((a("fe80::1%3") <=> a("fe80::1%3")) == std::strong_ordering::equal);
    CHECK((a("fe80::1%3") <=> a("fe80::1%4")) == std::strong_ordering::less);
    CHECK((a("fe80::1") <=> a("fe80::1%1")) == std::strong_ordering::less);
    // An endpoint orders by its address, then by its port.
    CHECK(e("10.0.0.1:65535") < e("10.0.0.2:1"));
    CHECK(e("10.0.0.1:80") < e("10.0.0.1:443"));
    CHECK(e("255.255.255.255:9") < e("[::]:0"));
    CHECK((e("[::1]:80") <=> e("[::1]:80")) == std::strong_ordering::equal);
    CHECK((e("[::1]:81") <=> e("[::1]:80")) == std::strong_ordering::greater);
    // A total order, usable as a std::set key or to sort.
    std::vector<endpoint> sorted{e("[fe80::1%2]:1"), e("[::1]:2"),      e("10.0.0.1:2"),
                                 e("[fe80::1%1]:9"), e("10.0.0.1:1"),   e("1.2.3.4:5"),
                                 e("[::1]:1"),       e("[fe80::1%1]:9")};
    std::sort(sorted.begin(), sorted.end());
    const std::vector<endpoint> expected{e("1.2.3.4:5"),     e("10.0.0.1:1"),   e("10.0.0.1:2"),
                                         e("[::1]:1"),       e("[::1]:2"),      e("[fe80::1%1]:9"),
                                         e("[fe80::1%1]:9"), e("[fe80::1%2]:1")};
    CHECK(sorted == expected);
    // Usable where a constant is needed.
    static_assert(ip_address::loopback() < ip_address::loopback(conet::ip_family::v6));
    static_assert(endpoint{ip_address::loopback(), 1} < endpoint{ip_address::loopback(), 2});
    static_assert(ip_address::v4({1, 2, 3, 4}) <= ip_address::v4({1, 2, 3, 4}));
}

TEST_CASE("ports are checked: numbers from 0 to 65535 only", "[address]") {
    CHECK(endpoint::parse_port("0") == 0);
    CHECK(endpoint::parse_port("65535") == 65535);
    CHECK_FALSE(endpoint::parse_port("65536"));
    CHECK_FALSE(endpoint::parse_port("+1"));
    CHECK_FALSE(endpoint::parse_port(""));
    CHECK_FALSE(endpoint::parse_port("99999999999999999999"));
    // Leading zeros are the same number, however many ("080" was 80, "000080" out of range).
    CHECK(endpoint::parse_port("080") == 80);
    CHECK(endpoint::parse_port("000080") == 80);
    CHECK(endpoint::parse_port("0000000") == 0);
    CHECK_FALSE(endpoint::parse_port("0000065536"));
    CHECK(conet::service_port("000080") == 80);
}

TEST_CASE("a host name with a NUL in it is no name: never cut at the NUL", "[address]") {
    using namespace std::string_literals;
    std::error_code ec;
    // getaddrinfo would see "localhost" and succeed.
    CHECK(conet::resolve("localhost\0.attacker.example"s, 80, ec).empty());
    CHECK(ec == std::error_code(EAI_NONAME, conet::detail::resolve_category()));
    CHECK_THROWS_AS(conet::resolve("localhost\0junk:80"s), std::system_error);
    CHECK(conet::resolve("x.invalid\0"s, 80, ec).empty());
    CHECK(ec == std::error_code(EAI_NONAME, conet::detail::resolve_category()));
}

TEST_CASE("resolve looks names up, and reports failures clearly", "[address]") {
    const auto found = conet::resolve("localhost:8888");
    REQUIRE_FALSE(found.empty());
    for (const auto& e : found) {
        CHECK(e.port() == 8888);
        CHECK(e.address().is_loopback());
    }
    CHECK(conet::resolve("127.0.0.1", 80).front() == endpoint::parse("127.0.0.1:80"));
    CHECK_THROWS_WITH(conet::resolve("localhost"), Catch::Contains("expected HOST:PORT"));
    CHECK_THROWS_WITH(conet::resolve("localhost:99999"), Catch::Contains("invalid endpoint"));
    // Names under "invalid" (RFC 6761) fail at once, without a DNS query off this machine.
    CHECK_THROWS_WITH(conet::resolve("nothing.invalid", 80),
                      "resolve nothing.invalid: Name or service not known");
    CHECK_THROWS_WITH(conet::resolve("INVALID.", 80), Catch::Contains("resolve INVALID."));
    std::error_code ec;
    CHECK(conet::resolve("a.b.invalid", 80, ec).empty());
    CHECK(ec == std::error_code(EAI_NONAME, conet::detail::resolve_category()));
    // "invalidx" and "invalid.example" are ordinary names, not reserved ones.
    CHECK_FALSE(conet::detail::is_invalid_name("invalidx"));
    CHECK_FALSE(conet::detail::is_invalid_name("xinvalid"));
    CHECK_FALSE(conet::detail::is_invalid_name("invalid.example"));
    CHECK(conet::detail::is_invalid_name("x.Invalid"));
}

TEST_CASE("resolve takes service names and an address family", "[address]") {
    const auto http = conet::resolve("localhost:http");
    REQUIRE_FALSE(http.empty());
    CHECK(http.front().port() == 80);
    CHECK(conet::resolve("127.0.0.1", "ssh").front() == endpoint::parse("127.0.0.1:22"));
    CHECK(conet::resolve("127.0.0.1", "8080").front() == endpoint::parse("127.0.0.1:8080"));
    for (const auto& e : conet::resolve("localhost", 80, conet::resolve_family::v4))
        CHECK(e.address().is_v4());
    // ::1 as text is found only as IPv6; asking for IPv4 only finds nothing, an error.
    CHECK(conet::resolve("::1", 80, conet::resolve_family::v6).front() ==
          endpoint::parse("[::1]:80"));
    std::error_code ec;
    CHECK(conet::resolve("::1", 80, conet::resolve_family::v4, ec).empty());
    CHECK(ec);
    CHECK_THROWS_WITH(conet::resolve("localhost", "no-such-service"),
                      "resolve localhost: service \"no-such-service\": Unknown service name");
    CHECK_THROWS_WITH(conet::resolve("localhost:no-such-service"),
                      Catch::Contains("Unknown service name"));
    CHECK(conet::resolve("localhost", "no-such-service", conet::resolve_family::any, ec).empty());
    CHECK(ec == std::error_code(EAI_SERVICE, conet::detail::resolve_category()));
}

TEST_CASE("service_port is the course's getservbyname", "[address]") {
    CHECK(conet::service_port("mysql") == 3306);
    CHECK(conet::service_port("http") == 80);
    CHECK(conet::service_port("domain", "udp") == 53);
    CHECK(conet::service_port("8888") == 8888);
    CHECK_THROWS_WITH(conet::service_port("no-such-service"),
                      "service \"no-such-service\": Unknown service name");
    std::error_code ec;
    CHECK(conet::service_port("", "tcp", ec) == 0);
    CHECK(ec);
    CHECK(conet::service_port(std::string(100, 'x'), "tcp", ec) == 0);
    CHECK(ec);
    // A number that is no port is said to be one, not looked up as a name.
    CHECK(conet::service_port("99999", "tcp", ec) == 0);
    CHECK(ec == conet::error::port_out_of_range);
    CHECK_THROWS_WITH(conet::service_port("65536"),
                      "service \"65536\": Port number out of range (0 to 65535)");
    CHECK_THROWS_WITH(
        conet::resolve("localhost", "123456"),
        "resolve localhost: service \"123456\": Port number out of range (0 to 65535)");
    CHECK(conet::service_port(std::string_view("http\0x", 6), "tcp", ec) == 0);
    CHECK(ec);
    CHECK(conet::service_port("99999", "tcp", ec) == 0); // not a port, and no service's name
    CHECK(ec);
}

TEST_CASE("endpoint text takes a service name for the port", "[address]") {
    CHECK(endpoint::parse("127.0.0.1:http") == endpoint::parse("127.0.0.1:80"));
    CHECK(endpoint::parse("[::1]:https") == endpoint::parse("[::1]:443"));
    CHECK_FALSE(endpoint::try_parse("127.0.0.1:no-such-service"));
    CHECK_THROWS_WITH(endpoint::parse("127.0.0.1:no-such-service"),
                      Catch::Contains("invalid endpoint \"127.0.0.1:no-such-service\""));
    CHECK_FALSE(endpoint::try_parse("localhost:http")); // host names are resolve()'s job
}

TEST_CASE("host_name(address) is the course's gethostbyaddr", "[address]") {
    CHECK(conet::host_name(ip_address::loopback()) == "localhost");
    // An IPv4-mapped address is looked up as its IPv4 address.
    CHECK(conet::host_name(ip_address::parse("::ffff:127.0.0.1")) == "localhost");
    // The unspecified address names no host: an error at once, without asking a DNS server.
    CHECK_THROWS_WITH(conet::host_name(ip_address::any()),
                      "host_name 0.0.0.0: " +
                          std::make_error_code(std::errc::invalid_argument).message());
    std::error_code ec;
    CHECK(conet::host_name(ip_address::any(conet::ip_family::v6), ec).empty());
    CHECK(ec == std::errc::invalid_argument);
}

// True if /etc/hosts names `host`: then looking it up stays on this machine.
static bool in_hosts_file(const std::string& host) {
    std::ifstream hosts("/etc/hosts");
    for (std::string word; hosts >> word;)
        if (word == host) return true;
    return false;
}

TEST_CASE("the machine's own name resolves", "[address]") {
    const std::string self = conet::host_name();
    if (!in_hosts_file(self)) {
        CONET_REPORT_SKIP(
            "not in /etc/hosts, so not looked up (a DNS query would leave the machine): " + self);
        return;
    }
    const auto found = conet::resolve(self, 80);
    CHECK_FALSE(found.empty());
}

TEST_CASE("IPv4 addresses convert to and from 32-bit numbers", "[address]") {
    const auto a = ip_address::parse("192.168.1.2");
    CHECK(a.to_host_order() == 0xc0a80102u);
    CHECK(a.to_network_order() == htonl(0xc0a80102u));
    CHECK(ip_address::from_host_order(0x7f000001u) == ip_address::loopback());
    CHECK(ip_address::from_network_order(htonl(0xc0a80102u)) == a);
    in_addr in{};
    REQUIRE(::inet_aton("10.1.2.3", &in) == 1);
    CHECK(ip_address::from_network_order(in.s_addr) == ip_address::parse("10.1.2.3"));
    CHECK(ip_address::parse("10.1.2.3").to_network_order() == in.s_addr);
    CHECK(ip_address::parse("::ffff:10.1.2.3").to_network_order() == in.s_addr);
    CHECK_THROWS_WITH(ip_address::parse("::1").to_host_order(),
                      Catch::Contains("::1 is not an IPv4 address"));
    CHECK(conet::host_to_network(std::uint16_t{0x1234}) == htons(0x1234));
    CHECK(conet::host_to_network(std::uint32_t{0x12345678}) == htonl(0x12345678));
    CHECK(conet::network_to_host(htons(8888)) == 8888);
    CHECK(conet::network_to_host(htonl(0xc0a80102u)) == 0xc0a80102u);
    static_assert(conet::host_to_network(std::uint16_t{1}) == 0x0100 ||
                  std::endian::native == std::endian::big);
}

TEST_CASE("IPv4-mapped addresses unmap, and count as what they map", "[address]") {
    const auto mapped = ip_address::parse("::ffff:127.0.0.1");
    CHECK(mapped.is_v4_mapped());
    CHECK(mapped.unmapped() == ip_address::loopback());
    CHECK(mapped.is_loopback());
    CHECK(ip_address::parse("::ffff:0.0.0.0").is_unspecified());
    CHECK_FALSE(ip_address::parse("::ffff:10.0.0.1").is_loopback());
    CHECK_FALSE(ip_address::parse("::1").is_v4_mapped());
    CHECK_FALSE(ip_address::parse("::127.0.0.1").is_v4_mapped()); // deprecated v4-compatible
    CHECK_FALSE(ip_address::parse("::127.0.0.1").is_loopback());
    CHECK_FALSE(ip_address::parse("127.0.0.1").is_v4_mapped());
    CHECK(ip_address::parse("::1").unmapped() == ip_address::parse("::1"));
    CHECK(ip_address::parse("10.0.0.1").unmapped() == ip_address::parse("10.0.0.1"));
    CHECK(endpoint::parse("[::ffff:1.2.3.4]:7").unmapped().to_string() == "1.2.3.4:7");
    CHECK(mapped != ip_address::loopback()); // equality stays exact: two different addresses
}

TEST_CASE("host_name is this machine's name", "[address]") {
    CHECK_FALSE(conet::host_name().empty());
}

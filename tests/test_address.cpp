// Tests for conet/address.hpp: parsing and formatting IPv4/IPv6 addresses and endpoints,
// malformed input, name resolution and the course's host helpers.
#include <conet/address.hpp>

#include <sstream>
#include <string>

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

TEST_CASE("ports are checked: numbers from 0 to 65535 only", "[address]") {
    CHECK(endpoint::parse_port("0") == 0);
    CHECK(endpoint::parse_port("65535") == 65535);
    CHECK_FALSE(endpoint::parse_port("65536"));
    CHECK_FALSE(endpoint::parse_port("+1"));
    CHECK_FALSE(endpoint::parse_port(""));
    CHECK_FALSE(endpoint::parse_port("99999999999999999999"));
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
    // Failed lookups are not exercised here: they would send a DNS query off this machine.
}

TEST_CASE("host_name is this machine's name", "[address]") {
    CHECK_FALSE(conet::host_name().empty());
}

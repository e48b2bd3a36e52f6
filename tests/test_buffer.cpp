// Tests for conet/buffer.hpp: what converts to a buffer, and with which size.
#include <conet/buffer.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "catch.hpp"

TEST_CASE("const_buffer takes text without a terminating NUL", "[buffer]") {
    conet::const_buffer literal = "hello";
    CHECK(literal.size() == 5);
    // A const char array is text: taken whole (not up to its first NUL), minus a final '\0'.
    const char binary[4] = {'a', '\0', 'b', 'c'};
    CHECK(conet::const_buffer(binary).size() == 4);
    static constexpr char text_with_nul[] = "x\0y";
    CHECK(conet::const_buffer(text_with_nul).size() == 3);
    const char ends_in_zero[2] = {'a', '\0'}; // the documented edge: read as text
    CHECK(conet::const_buffer(ends_in_zero).size() == 1);
    const std::string s = "abc";
    conet::const_buffer from_string = s;
    CHECK(from_string.data() == s.data());
    CHECK(from_string.size() == 3);
    const std::vector<std::byte> bytes(7);
    CHECK(conet::const_buffer(bytes).size() == 7);
    const std::array<unsigned char, 4> raw{};
    CHECK(conet::const_buffer(raw).size() == 4);
}

TEST_CASE("a writable char array is a buffer, sent whole", "[buffer]") {
    char record[8] = {}; // as recv_exact leaves it: its last byte may well be 0
    CHECK(conet::const_buffer(record).size() == 8);
    CHECK(conet::const_buffer(record).data() == record);
    char text[] = "x\0y"; // a copy of a literal is a buffer too, terminator included
    CHECK(conet::const_buffer(text).size() == 4);
    static_assert(conet::const_buffer("abc").size() == 3);
}

TEST_CASE("mutable_buffer covers the whole writable range", "[buffer]") {
    char array[16];
    conet::mutable_buffer a = array;
    CHECK(a.size() == 16);
    std::string s(10, '\0');
    CHECK(conet::mutable_buffer(s).size() == 10);
    std::vector<std::byte> v(3);
    CHECK(conet::mutable_buffer(v).data() == reinterpret_cast<char*>(v.data()));
    static_assert(!std::is_convertible_v<const std::string&, conet::mutable_buffer>);
    static_assert(!std::is_convertible_v<const char(&)[4], conet::mutable_buffer>);
    static_assert(!std::is_convertible_v<std::vector<int>&, conet::mutable_buffer>);
}

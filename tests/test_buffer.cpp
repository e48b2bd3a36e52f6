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
    // A char array is taken whole (not up to its first NUL), minus a final terminator.
    const char binary[4] = {'a', '\0', 'b', 'c'};
    CHECK(conet::const_buffer(binary).size() == 4);
    char text_with_nul[] = "x\0y";
    CHECK(conet::const_buffer(text_with_nul).size() == 3);
    const std::string s = "abc";
    conet::const_buffer from_string = s;
    CHECK(from_string.data() == s.data());
    CHECK(from_string.size() == 3);
    const std::vector<std::byte> bytes(7);
    CHECK(conet::const_buffer(bytes).size() == 7);
    const std::array<unsigned char, 4> raw{};
    CHECK(conet::const_buffer(raw).size() == 4);
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

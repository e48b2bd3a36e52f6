// libFuzzer harness: address and endpoint parsing, fed arbitrary text.
//
// Whatever the text, parsing either succeeds or fails cleanly (never a crash, a hang or
// undefined behaviour: the sanitizers watch), the throwing and non-throwing forms agree, a
// failure names the text, and what parses formats back to text that parses to the same value.
#include <conet/address.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace {

[[noreturn]] void fail() {
    __builtin_trap(); // libFuzzer reports the crash and keeps the input
}

template <class T>
void check_parse(std::string_view text) {
    const auto parsed = T::try_parse(text);
    try {
        const T thrown = T::parse(text);
        if (!parsed || thrown != *parsed) fail();
    } catch (const std::system_error& e) {
        if (parsed || e.code() != std::errc::invalid_argument) fail();
    }
    if (!parsed) return;
    const std::string formatted = parsed->to_string();
    const auto again = T::try_parse(formatted);
    if (!again || *again != *parsed || again->to_string() != formatted) fail();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_parse<conet::ip_address>(text);
    check_parse<conet::endpoint>(text);
    return 0;
}

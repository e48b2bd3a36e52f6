// Tests for conet/error.hpp: conet's error codes, their messages, and how they compare.
#include <conet/error.hpp>

#include <string>
#include <system_error>

#include "catch.hpp"

TEST_CASE("conet errors are error codes with readable messages", "[error]") {
    std::error_code ec = conet::error::line_too_long;
    CHECK(ec.category().name() == std::string("conet"));
    CHECK(ec == conet::error::line_too_long);
    CHECK(ec != conet::error::end_of_stream);
    CHECK(ec != std::errc::invalid_argument);
    for (auto e :
         {conet::error::line_too_long, conet::error::end_of_stream, conet::error::already_waiting,
          conet::error::no_reactor, conet::error::wrong_reactor, conet::error::datagram_truncated,
          conet::error::closed, conet::error::port_out_of_range, conet::error::descriptor_replaced,
          conet::error::channel_closed, conet::error::address_too_long,
          conet::error::descriptors_truncated, conet::error::file_ended}) {
        const std::string message = conet::make_error_code(e).message();
        CHECK_FALSE(message.empty());
        CHECK(message != "Unknown conet error");
    }
    const std::system_error thrown(conet::error::end_of_stream, "recv_exact");
    CHECK(std::string(thrown.what()) == "recv_exact: Unexpected end of stream");
}

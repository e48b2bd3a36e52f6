// A consumer's program: opens a loopback connection through conet and echoes one message.
// It also has an unused variable on purpose: if conet leaked -Werror into consumers, this
// would not build.
#include <conet/conet.hpp>

#include <iostream>
#include <string>

conet::task<std::string> round_trip() {
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"));
    auto client = co_await conet::tcp_stream::connect(listener.local_endpoint());
    auto [server, peer] = co_await listener.accept();
    co_await client.send_all("hello from a consumer\n");
    conet::line_reader lines{server};
    auto line = co_await conet::with_timeout(lines.read_line(), std::chrono::seconds(5));
    co_return line.value_or("<nothing>");
}

int main() {
    int unused_on_purpose = 0;
    conet::reactor reactor;
    const std::string got = reactor.run(round_trip());
    std::cout << got << " (conet " << CONET_VERSION_STRING << ")\n";
    return got == "hello from a consumer" ? 0 : 1;
}

// asio_chat_server - examples/chat_server.cpp written with standalone Asio's C++20
// coroutines, doing the same work, for comparing compile time and binary size.
#include <asio.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

using asio::ip::tcp;

const std::string fixed_reply = "Receive your message";

// The operator's keyboard, read on the event loop.
class keyboard {
public:
    explicit keyboard(asio::any_io_executor executor) : input_(executor, ::dup(STDIN_FILENO)) {}

    asio::awaitable<std::string> next_reply() {
        if (ended_) co_return fixed_reply;
        asio::error_code ec;
        const std::size_t n =
            co_await asio::async_read_until(input_, asio::dynamic_buffer(buffer_), '\n',
                                            asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            ended_ = true;
            co_return fixed_reply;
        }
        std::string line = buffer_.substr(0, n - 1);
        buffer_.erase(0, n);
        co_return line;
    }

private:
    asio::posix::stream_descriptor input_;
    std::string buffer_;
    bool ended_ = false;
};

asio::awaitable<std::string> talk(tcp::socket& conn, keyboard& operator_input) {
    std::string buffer;
    for (;;) {
        asio::error_code ec;
        const std::size_t n =
            co_await asio::async_read_until(conn, asio::dynamic_buffer(buffer, 64 * 1024), '\n',
                                            asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::eof) co_return "disconnected";
        if (ec) co_return ec.message();
        std::string line = buffer.substr(0, n - 1);
        buffer.erase(0, n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line == "##") co_return "sent ##";
        std::cout << "client: " << line << std::endl;
        const std::string reply = co_await operator_input.next_reply() + '\n';
        co_await asio::async_write(conn, asio::buffer(reply),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return ec.message();
    }
}

asio::awaitable<void> serve(tcp::acceptor& acceptor) {
    keyboard operator_input(acceptor.get_executor());
    for (;;) {
        tcp::socket conn = co_await acceptor.async_accept(asio::use_awaitable);
        const auto peer = conn.remote_endpoint();
        std::cout << "Connect from " << peer << std::endl;
        const std::string reason = co_await talk(conn, operator_input);
        std::cout << "Client " << peer << " left (" << reason << ")" << std::endl;
    }
}

int main(int argc, char** argv) {
    const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 8888);
    try {
        asio::io_context context(1);
        tcp::acceptor acceptor(context, {asio::ip::make_address("0.0.0.0"), port});
        std::cout << "Listening on " << acceptor.local_endpoint() << std::endl;
        asio::signal_set signals(context, SIGINT, SIGTERM);
        signals.async_wait([&](auto, int) {
            std::cout << "Signal received, shutting down" << std::endl;
            context.stop();
        });
        asio::co_spawn(context, serve(acceptor), asio::detached);
        context.run();
    } catch (const std::exception& e) {
        std::cerr << "asio_chat_server: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

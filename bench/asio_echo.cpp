// asio_echo - the same echo server in standalone Asio with C++20 coroutines (co_spawn,
// use_awaitable): one coroutine per connection, 16 KiB buffer, one thread; or THREADS
// threads running one io_context (Asio's way of using more cores).
//
//   asio_echo [PORT] [THREADS]   (prints "Listening on 127.0.0.1:PORT")
#include <asio.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

using asio::ip::tcp;

asio::awaitable<void> echo(tcp::socket socket) {
    char data[16 * 1024];
    try {
        for (;;) {
            const std::size_t n =
                co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
            co_await asio::async_write(socket, asio::buffer(data, n), asio::use_awaitable);
        }
    } catch (const std::exception&) {
        // end of stream or a reset: the connection is over
    }
}

asio::awaitable<void> listen(tcp::acceptor& acceptor) {
    for (;;) {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
    }
}

int main(int argc, char** argv) {
    const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
    const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1;
    asio::io_context context(threads); // a hint of 1 lets Asio drop its locking
    tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), port});
    std::printf("Listening on 127.0.0.1:%u\n", acceptor.local_endpoint().port());
    std::fflush(stdout);
    asio::co_spawn(context, listen(acceptor), asio::detached);
    std::vector<std::thread> others;
    for (int i = 1; i < threads; ++i)
        others.emplace_back([&context] { context.run(); });
    context.run();
}

// docs/tutorial/12_task_dump.cpp - tutorial step 17: an echo server whose clients can ask
// what every coroutine of it is doing (a line "dump" is answered with the task dump).
#include <conet/conet.hpp>
#include <conet/task_dump.hpp>
#include <string>
#include <string_view>

conet::task<> serve_client(conet::tcp_stream conn) {
    char data[1024];
    for (;;) {
        const std::size_t size = co_await conn.recv(data);
        if (size == 0) co_return; // the client closed its side
        const std::string_view text(data, size);
        if (text.starts_with("dump"))
            co_await conn.send_all(conet::dump_tasks(*conet::reactor::current()));
        else
            co_await conn.send_all(text);
    }
}

conet::task<> serve(conet::tcp_listener& listener) {
    co_await conet::scope([&](conet::task_group& clients) -> conet::task<> {
        for (;;) {
            auto [conn, peer] = co_await listener.accept();
            clients.spawn(serve_client(std::move(conn)), "client " + peer.unmapped().to_string());
        }
    });
}

int main() {
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:8888"));
    conet::reactor reactor;
    reactor.time_suspensions(true); // a clock read per poll: the dump says how long each waits
    reactor.run(serve(listener));
}

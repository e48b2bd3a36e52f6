// docs/tutorial/11_chat_room.cpp - the chat room in its shortest form: every client at once on
// port 8888, and what one sends goes to all the others. examples/chat_room.cpp is the full one.
#include <conet/channel.hpp>
#include <conet/conet.hpp>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

// One client in the room: its name, and what waits to be sent to it.
struct member {
    std::string name;
    conet::channel<std::string> outbox{64}; // queue.Queue(64)
};

// Everyone in the room. Every coroutine runs on this one thread: no lock.
std::vector<member*> room;

// Puts `text` in every other member's outbox, without waiting. A full outbox belongs to a
// client that does not read: it misses this line, and nobody waits for it.
void tell_others(const member& sender, const std::string& text) {
    for (member* m : room)
        if (m != &sender) m->outbox.try_send(text);
}

// Passes on what the client sends until it leaves: "##", closing, or an error.
conet::task<> read_from(conet::tcp_stream& conn, member& me) {
    char data[1024];
    std::error_code ec;
    // while data := conn.recv(1024):
    while (const std::size_t size = co_await conn.recv(data, ec)) {
        std::string_view text(data, size);
        while (text.ends_with('\n') || text.ends_with('\r')) // nc sends "hello\n"
            text.remove_suffix(1);
        if (text == "##") break;
        tell_others(me, me.name + ": " + std::string(text) + "\n");
    }
}

// Sends the client what its outbox holds, in order: the Python's second thread.
conet::task<> write_to(conet::tcp_stream& conn, member& me) {
    std::error_code ec;
    while (auto text = co_await me.outbox.recv()) {
        co_await conn.send_all(*text, ec);
        if (ec) break; // the client is gone
    }
}

// One client, from joining to leaving.
conet::task<> serve_client(conet::tcp_stream conn, std::string name) {
    member me{name};
    room.push_back(&me);
    std::cout << name << " joined" << std::endl;
    tell_others(me, "*** " + name + " joined\n");

    // Both sides at once; the first to end cancels the other.
    co_await conet::when_any(read_from(conn, me), write_to(conn, me));

    std::erase(room, &me);
    std::cout << name << " left" << std::endl;
    tell_others(me, "*** " + name + " left\n");
}

// Accepts clients for ever, each in a coroutine of its own (the Python's thread per client).
conet::task<> serve(conet::tcp_listener& listener) {
    conet::task_group clients;
    for (;;) {
        auto [conn, addr] = co_await listener.accept();
        clients.spawn(serve_client(std::move(conn), addr.unmapped().to_string()));
    }
}

int main() {
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("0.0.0.0:8888"));
    std::cout << "Listening on " << listener.local_endpoint() << std::endl;
    conet::reactor reactor;
    reactor.run(serve(listener)); // until Ctrl-C
}

// chat_room - the concurrent chat room: any number of clients at once, and every message one
// of them sends goes to all the others.
//
//   ./chat_room [PORT] [--host HOST]              (defaults: 8888, 0.0.0.0)
//   then, in other terminals:   nc 127.0.0.1 8888   (or chat_client, or the course's client)
//
// Each client is known by its address, "127.0.0.1:5555". What it sends reaches every other
// client as "127.0.0.1:5555: hello" (never itself); "*** 127.0.0.1:5555 joined" and
// "*** 127.0.0.1:5555 left (why)" are sent to the others and printed by the server. "##"
// leaves. Messages are the course's (see messages.hpp): what one recv(1024) returns, split at
// its line endings, so nc's lines and the course's client's "hello" (no newline) both work.
// What a client is sent always ends with "\n".
//
// In the course's Python this needs a thread per client and a lock around the list of
// clients. Here every client is a coroutine on one thread: the room's member list is an
// ordinary std::vector that only this thread touches, so it needs no lock.
//
// A slow client must not stall the room. Sending to a client that does not read would wait
// (its socket's buffers are full), so a client's messages are never sent by the client who
// wrote them: they are put in each recipient's outbox, a conet::channel, and each client has
// its own writer coroutine that empties its outbox into its socket.
//
// The policy for a client that cannot keep up: its outbox holds at most `outbox_capacity`
// texts, each what one receive of another client brought (at most 1 KiB, with the sender's
// name before each of its lines), and at most `outbox_bytes` bytes of them: a receive of
// 1024 empty lines becomes 1024 names, about 19 KiB, so counting texts alone would let each
// client's outbox grow to megabytes. When a text finds the outbox full (its socket's buffers
// are full too), the client is dropped: it is disconnected, after what its socket already
// holds, and the others see "*** NAME left (too slow)". Nobody waits for it, and no memory
// grows without bound (twice the bound at most: the writer may be sending one outbox's
// worth, taken out in one piece, while a full outbox waits behind it).
//
// SIGINT or SIGTERM (Ctrl-C) closes every connection and exits with status 0.
//
// What is every coroutine doing? Start it with CONET_DUMP_SIGNAL=SIGUSR1 in the environment,
// then `kill -USR1 <pid>`: it prints on stderr every task, what it waits for and where
// (conet/task_dump.hpp; each client's task is named after its address).
#include <conet/channel.hpp> // (not in conet.hpp yet)
#include <conet/conet.hpp>
#include <conet/event.hpp>
#include <conet/task_dump.hpp> // CONET_DUMP_SIGNAL

#include <algorithm>
#include <csignal>
#include <iostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "command_line.hpp"
#include "messages.hpp"

// How many texts, and how many bytes of them, may wait for one client before it counts as
// too slow.
constexpr std::size_t outbox_capacity = 256;
constexpr std::size_t outbox_bytes = 256 * 1024;

struct member;

// Everyone in the room. Only the reactor's thread touches it: no lock.
using room = std::vector<member*>;

// One client in the room: in the list from its arrival until it is gone, however it goes
// (the destructor takes it out even when the server's shutdown cancels the client).
struct member {
    std::string name;                                    // its address: "127.0.0.1:5555"
    conet::channel<std::string> outbox{outbox_capacity}; // what is waiting to be sent to it
    std::size_t outbox_size = 0;                         // its bytes
    conet::event dropped;                                // set when the room drops it
    room& members;

    member(std::string n, room& m) : name(std::move(n)), members(m) { members.push_back(this); }
    ~member() { std::erase(members, this); }
    member(const member&) = delete;
    member& operator=(const member&) = delete;
};

// Sends `text` to everyone in the room but `from` (nullptr: to everyone). Never waits: the
// text goes into each outbox, and a member whose outbox is full is dropped instead.
void tell_others(room& members, const member* from, const std::string& text) {
    for (member* m : members) {
        if (m == from || m->dropped.is_set()) continue;
        if (m->outbox_size + text.size() > outbox_bytes || !m->outbox.try_send(std::string(text))) {
            m->dropped.set(); // too slow: see the top
            continue;
        }
        m->outbox_size += text.size();
    }
}

// The client's side that reads: receives its messages and passes them on, until it leaves.
// Returns why it left.
conet::task<std::string> read_from(conet::tcp_stream& conn, member& me, room& members) {
    for (;;) {
        // data = connfd.recv(1024)
        char data[1024];
        std::error_code ec;
        const std::size_t size = co_await conn.recv(data, ec);
        if (ec) co_return ec.message(); // reset by the peer, ...
        if (size == 0) co_return "disconnected";

        // Usually one message; several if the client sent several lines at once. They go on
        // as one text, so that one receive costs one place in each outbox.
        std::string text;
        bool quit = false;
        for (const example::message& message : example::split_messages({data, size})) {
            if (message.text == "##") {
                quit = true;
                break;
            }
            text += me.name + ": " + message.text + "\n";
        }
        if (!text.empty()) tell_others(members, &me, text);
        if (quit) co_return "sent ##";
    }
}

// The client's side that writes: sends it what its outbox holds, in order, as it comes.
conet::task<std::string> write_to(conet::tcp_stream& conn, member& me) {
    while (auto text = co_await me.outbox.recv()) {
        me.outbox_size -= text->size();
        // What else has been queued meanwhile goes in the same send: one system call for
        // many messages, when many clients talk at once.
        while (auto more = me.outbox.try_recv()) {
            me.outbox_size -= more->size();
            *text += *more;
        }
        std::error_code ec;
        co_await conn.send_all(*text, ec); // waits while the client does not read
        if (ec) co_return ec.message();
    }
    co_return "outbox closed"; // (never: nobody closes it)
}

// Returns once the room has dropped the client.
conet::task<std::string> until_dropped(member& me) {
    co_await me.dropped.wait();
    co_return "too slow";
}

// One client, from its arrival to its departure. It owns its connection: closed at the end.
conet::task<> serve_client(conet::tcp_stream conn, std::string name, room& members) {
    // A chat sends small messages, often two in a row to a client that is only reading.
    // With Nagle's algorithm on, the second waits for the client's acknowledgement of the
    // first, which the client delays (up to 40 ms on Linux) hoping to send it with data.
    conn.set_nodelay(true);
    member me(name, members); // joins the room
    std::cout << name << " joined" << std::endl;
    tell_others(members, &me, "*** " + name + " joined\n");

    // The client stays until it leaves (read_from ends), its connection fails (write_to
    // ends), or the room drops it, whichever comes first; when_any then cancels the others.
    auto first = co_await conet::when_any(read_from(conn, me, members), write_to(conn, me),
                                          until_dropped(me));
    const std::string why = std::visit([](std::string& reason) { return reason; }, first);

    std::erase(members, &me); // out before it is announced (its destructor would too)
    std::cout << name << " left (" << why << ")" << std::endl;
    tell_others(members, nullptr, "*** " + name + " left (" + why + ")\n");
} // `conn` is closed here

// Accepts clients until the server stops, each in its own coroutine. The scope returns only
// once every client has ended: when the server stops, it cancels them all, and each closes.
conet::task<> serve(conet::tcp_listener& listener) {
    room members; // lives here, in the accepting coroutine, as long as any client does
    co_await conet::scope(
        conet::failure_policy::report, [&](conet::task_group& clients) -> conet::task<> {
            for (;;) {
                std::error_code ec;
                auto [conn, peer] = co_await listener.accept(ec);
                if (ec == std::errc::operation_canceled) co_return; // stop
                if (ec) throw std::system_error(ec, "accept");
                const std::string name = peer.unmapped().to_string();
                clients.spawn(serve_client(std::move(conn), name, members), "client " + name);
            }
        });
}

// Waits for the next of the signals.
conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

// Runs the room until SIGINT (Ctrl-C) or SIGTERM arrives: the signal cancels serve().
conet::task<> run_until_signal(conet::tcp_listener& listener, conet::signal_set& signals) {
    auto first = co_await conet::when_any(serve(listener), next_signal(signals));
    if (first.index() == 1) std::cout << "Signal received, shutting down" << std::endl;
}

int main(int argc, char** argv) {
    const conet::endpoint where = example::server_endpoint(argc, argv);
    conet::signal_set signals{SIGINT, SIGTERM}; // Ctrl-C becomes an event we can co_await
    try {
        auto listener = conet::tcp_listener::bind(where);
        std::cout << "Listening on " << listener.local_endpoint() << std::endl;

        conet::reactor reactor;
        reactor.run(run_until_signal(listener, signals));
    } catch (const std::system_error& e) {
        std::cerr << "chat_room: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

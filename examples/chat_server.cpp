// chat_server - the socket course's homework, on coroutines.
//
// A TCP server that talks with one client at a time: for every message the client sends, it
// prints "client: TEXT" and answers with the next line typed on its own standard input (at a
// "> " prompt, when that is a terminal; once the input has ended, with a fixed reply). When
// the client sends "##" (or goes away), the server closes that connection and goes back to
// accept() the next client, who meanwhile waited in the listen queue.
//
// It notices a client leave even while its operator is typing: it waits for the operator's
// line and for the client at once, which the course's blocking server cannot do. A message
// that arrives meanwhile is shown and answered in its turn; a client that leaves is announced
// at once, its unanswered messages are dropped, and the line the operator was typing goes to
// the next client.
//
//   ./chat_server [PORT] [--host HOST]            (defaults: 8888, 0.0.0.0)
//   then, in another terminal:   ./chat_client 127.0.0.1 8888
//   or the course's own client, or:   nc 127.0.0.1 8888
//
// Messages are the course's: a message is what one recv(1024) returns, without a trailing
// "\n" or "\r\n"; a receive holding several lines is several messages (see messages.hpp).
// So the course's client, which sends "hello" with no newline, and nc or telnet, which send
// lines, are all understood, and "##" quits in every form ("##", "##\n", "##\r\n"). Each
// answer ends the way the message it answers did: none for the course's client (it prints
// what arrives, as the course's server sent it), "\n" or "\r\n" for line tools. An empty
// answer to the course's client would be no bytes at all, so the server asks for another.
//
// Compared with the course's Python, each blocking call (accept, recv, reading the keyboard)
// becomes a `co_await`: the coroutine pauses there, and the thread is free to notice other
// events meanwhile - here, Ctrl-C, which makes the server close everything and exit cleanly.
#include <conet/conet.hpp>

#include <csignal>
#include <deque>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "command_line.hpp"
#include "keyboard.hpp"
#include "messages.hpp"

// What the server answers once its own standard input has ended.
const std::string fixed_reply = "Receive your message";

// The operator's answer to one message: the next line typed, or the fixed reply once the
// input has ended. An empty answer to a message without a line ending would be no bytes at
// all, and the course's client would wait for it for ever: ask for another line instead.
conet::task<std::string> answer(example::keyboard& operator_input, const std::string& ending) {
    for (;;) {
        if (operator_input.interactive()) std::cout << "> " << std::flush;
        const auto line = co_await operator_input.next_line();
        if (!line) co_return fixed_reply;
        if (!line->empty() || !ending.empty()) co_return *line;
        std::cout << "(an empty answer cannot be sent to this client: type something)" << std::endl;
    }
}

// What one receive from the client brought: its messages, and why it left, if it did.
struct from_client {
    std::vector<example::message> messages;
    std::string left; // "" while the client stays
};

// data = connfd.recv(1024): what has arrived so far, at most 1024 bytes, as messages.
conet::task<from_client> receive(conet::tcp_stream& conn) {
    char data[1024];
    std::error_code ec;
    const std::size_t size = co_await conn.recv(data, ec);
    if (ec == std::errc::operation_canceled) throw std::system_error(ec, "recv");
    if (ec) co_return {{}, ec.message()}; // reset by the peer, ...
    if (size == 0) co_return {{}, "disconnected"};

    // Usually one message; several if the client sent several lines at once.
    from_client got;
    for (const example::message& message : example::split_messages({data, size})) {
        if (message.text == "##") {
            got.left = "sent ##";
            break;
        }
        got.messages.push_back(message);
    }
    co_return got;
}

// Talks with one connected client until it leaves; says why it left.
conet::task<std::string> talk(conet::tcp_stream& conn, example::keyboard& operator_input) {
    std::deque<example::message> unanswered; // shown, waiting for the operator, oldest first
    for (;;) {
        from_client got;
        if (unanswered.empty()) {
            got = co_await receive(conn); // nothing to answer: wait for the client
        } else {
            // The course's server blocks in input() here, blind to the client. We wait for
            // the operator's line OR the client's next receive, whichever comes first. The
            // other is cancelled before it takes anything: what the operator has typed so far
            // stays typed (it answers the next message), the client's bytes stay unread.
            const example::message& question = unanswered.front();
            auto first =
                co_await conet::when_any(answer(operator_input, question.ending), receive(conn));
            if (first.index() == 1) {
                got = std::move(std::get<1>(first)); // the client spoke (or left) first
                if (operator_input.interactive()) std::cout << '\n'; // off the prompt's line
            } else {
                // connfd.send(input().encode()), ended as the client ended its message
                std::error_code ec;
                co_await conn.send_all(std::get<0>(first) + question.ending, ec);
                if (ec == std::errc::operation_canceled) throw std::system_error(ec, "send");
                if (ec) co_return ec.message();
                unanswered.pop_front();
            }
        }
        for (const example::message& message : got.messages) {
            std::cout << "client: " << message.text << std::endl;
            unanswered.push_back(message);
        }
        if (!got.left.empty()) co_return got.left; // at once, even mid-answer
    }
}

// The homework's loop: accept a client, talk with it, and go back to accept the next one.
conet::task<> serve(conet::tcp_listener& listener, example::keyboard& operator_input) {
    for (;;) {
        auto [conn, peer] = co_await listener.accept(); // waits for the next client
        std::cout << "Connect from " << peer.unmapped() << std::endl;
        const std::string reason = co_await talk(conn, operator_input);
        std::cout << "Client " << peer.unmapped() << " left (" << reason << ")" << std::endl;
    } // `conn` is closed here, at the end of each turn of the loop
}

// Waits for the next of the signals.
conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

// Runs the server until SIGINT (Ctrl-C) or SIGTERM arrives.
conet::task<> run_until_signal(conet::tcp_listener& listener, example::keyboard& operator_input,
                               conet::signal_set& signals) {
    // when_any runs both and stops at the first to finish: a signal cancels serve(), whose
    // pending wait ends with operation_canceled, so its connection is closed as it unwinds.
    auto first = co_await conet::when_any(serve(listener, operator_input), next_signal(signals));
    if (first.index() == 1) std::cout << "Signal received, shutting down" << std::endl;
}

int main(int argc, char** argv) {
    const conet::endpoint where = example::server_endpoint(argc, argv);
    example::keyboard operator_input;           // first: see keyboard.hpp
    conet::signal_set signals{SIGINT, SIGTERM}; // Ctrl-C becomes an event we can co_await
    try {
        // socket() + bind() + listen(5), as in the course. Port 0 picks a free port; print
        // the one really bound (and flush at once: other programs may be waiting for it).
        auto listener = conet::tcp_listener::bind(where, 5);
        std::cout << "Listening on " << listener.local_endpoint() << std::endl;

        conet::reactor reactor;
        reactor.run(run_until_signal(listener, operator_input, signals));
    } catch (const std::system_error& e) {
        std::cerr << "chat_server: " << e.what() << '\n'; // e.g. "bind ...: Address in use"
        return 1;
    }
    return 0;
}

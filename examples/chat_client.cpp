// chat_client - the client of the course's chat homework, on coroutines.
//
// Connects to a chat server, sends each line typed on standard input, and prints the answer
// as "server: TEXT". Typing "##" (or ending the input with Ctrl-D) says goodbye; Ctrl-C or
// SIGTERM just closes the connection. Either way the exit status is 0.
//
//   ./chat_client [HOST] [PORT]                   (defaults: 127.0.0.1 8888)
//
// HOST is a name ("localhost") or an address; PORT a number or a service name.
//
// It talks to chat_server, to the course's servers (section 7's and the homework's), and to
// a person answering with `nc -l 8888`. Each line goes out with its "\n", so that a line
// server sees a line (the course's servers print it as it comes). The answer is what one
// recv(1024) returns, as in the course: no newline needed, and one ending in "\n" or "\r\n"
// is printed without it; an answer of several lines prints one "server:" line for each (see
// messages.hpp).
#include <conet/conet.hpp>

#include <csignal>
#include <iostream>
#include <string>

#include "command_line.hpp"
#include "keyboard.hpp"
#include "messages.hpp"

// Ways the conversation can end, as the process's exit status.
enum exit_status { said_goodbye = 0, failed = 1, usage = 2 };

conet::task<int> chat(std::string host, std::string port, example::keyboard& keyboard) {
    // socket.gethostbyname() + socket() + connect(), as in the course: the name ("localhost",
    // say) is looked up on a helper thread, so Ctrl-C is heard meanwhile; then each address it
    // has is tried in turn until one accepts.
    std::error_code ec;
    conet::tcp_stream conn = co_await conet::connect(host, port, conet::resolve_family::any, ec);
    if (ec == std::errc::operation_canceled) throw std::system_error(ec, "connect"); // Ctrl-C
    if (ec) {
        std::cerr << "chat_client: cannot connect to " << host << ':' << port << ": "
                  << ec.message() << '\n';
        co_return failed;
    }

    for (;;) {
        // sockfd.send(input().encode())
        if (keyboard.interactive()) std::cout << "> " << std::flush;
        const auto line = co_await keyboard.next_line();
        const std::string text = line ? *line : "##"; // end of input: say goodbye too
        co_await conn.send_all(text + '\n'); // a line, for servers (and nc -l) that read lines
        if (text == "##") co_return said_goodbye;

        // data = sockfd.recv(1024): the server's answer, as it comes
        char data[1024];
        const std::size_t size = co_await conn.recv(data, ec);
        if (ec == std::errc::operation_canceled) throw std::system_error(ec, "recv"); // Ctrl-C
        if (ec || size == 0) {
            std::cerr << "chat_client: the server closed the connection"
                      << (ec ? " (" + ec.message() + ")" : std::string()) << '\n';
            co_return failed;
        }
        for (const example::message& message : example::split_messages({data, size}))
            std::cout << "server: " << message.text << std::endl;
    }
}

// Waits for the next of the signals.
conet::task<int> next_signal(conet::signal_set& signals) {
    co_return co_await signals.wait();
}

// Chats until the conversation ends or SIGINT (Ctrl-C) or SIGTERM arrives; a signal cancels
// the chat, which closes the connection as it unwinds.
conet::task<int> chat_until_signal(std::string host, std::string port, example::keyboard& keyboard,
                                   conet::signal_set& signals) {
    auto first = co_await conet::when_any(chat(host, port, keyboard), next_signal(signals));
    co_return first.index() == 0 ? std::get<0>(first) : said_goodbye;
}

int main(int argc, char** argv) {
    const std::string_view program = argv[0];
    const std::string_view help = "[HOST] [PORT]   (defaults: 127.0.0.1 8888)";
    if (argc > 1 && (std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help")) {
        std::cout << "usage: " << program << ' ' << help << '\n';
        return said_goodbye;
    }
    if (argc > 3) example::usage_error(program, help, "too many arguments");
    const std::string host = argc > 1 ? argv[1] : "127.0.0.1";
    const std::uint16_t port = argc > 2 ? example::port_or_exit(argv[2], program, help) : 8888;

    example::keyboard keyboard;                 // first: see keyboard.hpp
    conet::signal_set signals{SIGINT, SIGTERM}; // Ctrl-C becomes an event we can co_await
    try {
        conet::reactor reactor;
        return reactor.run(chat_until_signal(host, std::to_string(port), keyboard, signals));
    } catch (const std::system_error& e) {
        std::cerr << "chat_client: " << e.what() << '\n';
        return failed;
    }
}

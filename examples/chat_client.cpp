// chat_client - the client of the course's chat homework, on coroutines.
//
// Connects to a chat server, sends each line typed on standard input, and prints the answer
// as "server: TEXT". Typing "##" (or ending the input with Ctrl-D) says goodbye; Ctrl-C or
// SIGTERM just closes the connection. Either way the exit status is 0.
//
//   ./chat_client [HOST] [PORT] [--connect-timeout SECONDS]   (defaults: 127.0.0.1 8888, 10)
//
// HOST is a name ("localhost") or an address; PORT a number or a service name. It says
// "Connecting to HOST:PORT ..." on stderr first, then "Connected to ADDRESS:PORT", and gives up
// (exit status 1) if no connection is made within the connect timeout.
//
// It talks to chat_server, to the course's servers (section 7's and the homework's), and to
// a person answering with `nc -l 8888`. Each line goes out with its "\n", so that a line
// server sees a line (the course's servers print it as it comes). The answer is what one
// recv(1024) returns, as in the course: no newline needed, and one ending in "\n" or "\r\n"
// is printed without it; an answer of several lines prints one "server:" line for each (see
// messages.hpp).
#include <conet/conet.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "command_line.hpp"
#include "keyboard.hpp"
#include "messages.hpp"

// Ways the conversation can end, as the process's exit status.
enum exit_status { said_goodbye = 0, failed = 1, usage = 2 };

// Sleeps `limit`: the rival of a connection attempt.
conet::task<> give_up_after(std::chrono::seconds limit) {
    co_await conet::sleep_for(limit);
}

// Whether the client ever connected: what it says when it stops before that.
struct progress {
    bool connected = false;
};

conet::task<int> chat(std::string host, std::string port, std::chrono::seconds connect_timeout,
                      example::keyboard& keyboard, progress& progress) {
    // socket.gethostbyname() + socket() + connect(), as in the course: the name ("localhost",
    // say) is looked up on a helper thread, so Ctrl-C is heard meanwhile; then each address it
    // has is tried in turn until one accepts. An address that never answers would keep the
    // kernel trying for minutes: after connect_timeout the attempt is cancelled.
    std::cerr << "Connecting to " << host << ':' << port << " ..." << std::endl;
    std::error_code ec;
    auto attempt = co_await conet::when_any(
        conet::connect(host, port, conet::resolve_family::any, ec), give_up_after(connect_timeout));
    if (attempt.index() == 1) {
        std::cerr << "chat_client: no connection to " << host << ':' << port << " within "
                  << connect_timeout.count() << " s, giving up (--connect-timeout SECONDS)\n";
        co_return failed;
    }
    if (ec == std::errc::operation_canceled) throw std::system_error(ec, "connect"); // Ctrl-C
    if (ec) {
        std::cerr << "chat_client: cannot connect to " << host << ':' << port << ": "
                  << ec.message() << '\n';
        co_return failed;
    }
    conet::tcp_stream conn = std::move(std::get<0>(attempt));
    progress.connected = true;
    std::cerr << "Connected to " << conn.peer_endpoint() << std::endl;

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
conet::task<int> chat_until_signal(std::string host, std::string port,
                                   std::chrono::seconds connect_timeout,
                                   example::keyboard& keyboard, conet::signal_set& signals) {
    progress progress;
    auto first = co_await conet::when_any(chat(host, port, connect_timeout, keyboard, progress),
                                          next_signal(signals));
    if (first.index() == 0) co_return std::get<0>(first);
    if (!progress.connected)
        std::cerr << "chat_client: stopped before it could connect to " << host << ':' << port
                  << '\n';
    co_return said_goodbye;
}

int main(int argc, char** argv) {
    const std::string_view program = argv[0];
    const std::string_view help =
        "[HOST] [PORT] [--connect-timeout SECONDS]   (defaults: 127.0.0.1 8888, 10)";
    std::vector<std::string_view> positional;
    long connect_seconds = 10;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << "usage: " << program << ' ' << help << '\n';
            return said_goodbye;
        }
        if (arg == "--connect-timeout") {
            const std::string_view text = i + 1 < argc ? argv[++i] : "";
            auto [end, err] =
                std::from_chars(text.data(), text.data() + text.size(), connect_seconds);
            if (text.empty() || err != std::errc{} || end != text.data() + text.size() ||
                connect_seconds < 1 || connect_seconds > 3600)
                example::usage_error(program, help,
                                     "--connect-timeout wants whole seconds, from 1 to 3600");
        } else {
            positional.push_back(arg);
        }
    }
    if (positional.size() > 2) example::usage_error(program, help, "too many arguments");
    const std::string host(positional.size() > 0 ? positional[0] : "127.0.0.1");
    const std::uint16_t port =
        positional.size() > 1 ? example::port_or_exit(positional[1], program, help) : 8888;

    example::keyboard keyboard;                 // first: see keyboard.hpp
    conet::signal_set signals{SIGINT, SIGTERM}; // Ctrl-C becomes an event we can co_await
    try {
        conet::reactor reactor;
        return reactor.run(chat_until_signal(
            host, std::to_string(port), std::chrono::seconds(connect_seconds), keyboard, signals));
    } catch (const std::system_error& e) {
        std::cerr << "chat_client: " << e.what() << '\n';
        return failed;
    }
}

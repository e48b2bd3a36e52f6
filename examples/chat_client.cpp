// chat_client - the client of the course's chat homework, on coroutines.
//
// Connects to a chat_server, sends each line typed on standard input, and prints the one-line
// answer as "server: TEXT". Typing "##" (or ending the input with Ctrl-D) says goodbye.
//
//   ./chat_client [HOST] [PORT]                   (defaults: 127.0.0.1 8888)
#include <conet/conet.hpp>

#include <unistd.h>

#include <iostream>
#include <string>

#include "command_line.hpp"

// Ways the conversation can end, as the process's exit status.
enum exit_status { said_goodbye = 0, failed = 1, usage = 2 };

conet::task<int> chat(const std::vector<conet::endpoint>& server) {
    // socket() + connect(), as in the course: try each address the name resolved to.
    conet::tcp_stream conn;
    std::error_code ec;
    for (const auto& address : server) {
        conn = co_await conet::tcp_stream::connect(address, ec);
        if (!ec) break;
    }
    if (ec) {
        std::cerr << "chat_client: cannot connect to " << server.front() << ": " << ec.message()
                  << '\n';
        co_return failed;
    }

    conet::standard_input input; // the keyboard, read without blocking the thread
    conet::line_reader keyboard{input};
    conet::line_reader replies{conn};
    const bool interactive = ::isatty(STDIN_FILENO);
    for (;;) {
        if (interactive) std::cout << "> " << std::flush;
        auto line = co_await keyboard.read_line();
        const std::string text = line ? *line : "##"; // end of input: say goodbye too
        co_await conn.send_all(text + '\n');
        if (text == "##") co_return said_goodbye;

        auto reply = co_await replies.read_line(ec); // wait for the server's one-line answer
        if (ec || !reply) {
            std::cerr << "chat_client: the server closed the connection"
                      << (ec ? " (" + ec.message() + ")" : std::string()) << '\n';
            co_return failed;
        }
        std::cout << "server: " << *reply << std::endl;
    }
}

int main(int argc, char** argv) {
    const std::string_view program = argv[0];
    const std::string_view help = "[HOST] [PORT]   (defaults: 127.0.0.1 8888)";
    if (argc > 3) example::usage_error(program, help, "too many arguments");
    const std::string host = argc > 1 ? argv[1] : "127.0.0.1";
    const std::uint16_t port = argc > 2 ? example::port_or_exit(argv[2], program, help) : 8888;

    try {
        // Like socket.gethostbyname(): a name such as "localhost" becomes addresses.
        const auto server = conet::resolve(host, port);
        conet::reactor reactor;
        return reactor.run(chat(server));
    } catch (const std::system_error& e) {
        std::cerr << "chat_client: " << e.what() << '\n';
        return failed;
    }
}

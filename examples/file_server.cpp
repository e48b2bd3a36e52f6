// file_server - serves the files of one directory over TCP, every client in its own
// coroutine.
//
//   ./file_server DIRECTORY [PORT] [--host HOST]      (defaults: 8888, 0.0.0.0)
//
// A client sends the name of a file on a line. The server answers "OK SIZE\n" followed by
// the file's SIZE bytes, or "ERROR what went wrong\n", then waits for the next name, until the
// client closes. Try it from bash:
//
//   exec 3<>/dev/tcp/127.0.0.1/8888; echo notes.txt >&3; head -c 200 <&3
//
// The bytes go from the file to the socket with send_file (sendfile(2)): the kernel copies
// them from its page cache; they never pass through this program's memory.
//
// Only the files directly in DIRECTORY are served. A name holding '/', or that is "." or "..",
// is refused, and a file is opened relative to the directory's own descriptor without
// following a symbolic link (O_NOFOLLOW): no name leads out of the directory.
#include <conet/conet.hpp>
#include <conet/owned_fd.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>

#include "command_line.hpp"

// Opens `name` in the served directory, or says why not (the text sent to the client).
// The checks are on the name itself, before any system call sees it.
conet::owned_fd open_served_file(int directory, const std::string& name, std::string& why) {
    if (name.empty() || name == "." || name == ".." ||
        name.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
        why = "not a file name of this directory";
        return {};
    }
    conet::owned_fd file(::openat(directory, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!file) {
        why = std::generic_category().message(errno); // "No such file or directory", ...
        return {};
    }
    struct stat about {};
    if (::fstat(file.get(), &about) != 0 || !S_ISREG(about.st_mode)) {
        why = "not a regular file";
        return {};
    }
    return file;
}

// Serves one client: a name per line, a file (or an error) per name.
conet::task<> serve_client(conet::tcp_stream conn, int directory) {
    conet::line_reader lines(conn, 4096); // a longer "name" is an error, not a memory hog
    std::error_code ec;
    for (;;) {
        auto name = co_await lines.read_line(ec);
        if (ec || !name) co_return; // the client left (or sent a line too long): close

        std::string why;
        conet::owned_fd file = open_served_file(directory, *name, why);
        if (!file) {
            co_await conn.send_all("ERROR " + why + "\n", ec);
            if (ec) co_return;
            continue;
        }
        struct stat about {};
        ::fstat(file.get(), &about);
        const auto size = static_cast<std::size_t>(about.st_size);
        co_await conn.send_all("OK " + std::to_string(size) + "\n", ec);
        if (ec) co_return;
        // The file's bytes, straight from the kernel's page cache to the socket. If the file
        // shrank since fstat, send_file stops at its end with file_ended: the client was
        // promised SIZE bytes it will not get, so the connection is closed.
        co_await conn.send_file(file.get(), 0, size, ec);
        if (ec) co_return;
    }
}

// Accepts clients until a signal stops the server; each is served by its own coroutine. The
// scope returns only when every client's coroutine has ended.
conet::task<> serve(conet::tcp_listener& listener, int directory) {
    conet::signal_set stop{SIGINT, SIGTERM};
    co_await conet::when_any(
        conet::scope([&](conet::task_group& clients) -> conet::task<> {
            for (;;) {
                auto [conn, peer] = co_await listener.accept();
                clients.spawn(serve_client(std::move(conn), directory));
            }
        }),
        [](conet::signal_set& signals) -> conet::task<> { co_await signals.wait(); }(stop));
}

int main(int argc, char** argv) {
    constexpr std::string_view usage = "DIRECTORY [PORT] [--host HOST]   (defaults: 8888, 0.0.0.0)";
    if (argc < 2 || argv[1][0] == '-') example::usage_error(argv[0], usage, "which directory?");
    const conet::owned_fd directory(::open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!directory)
        example::usage_error(argv[0], usage,
                             std::string(argv[1]) + ": " + std::generic_category().message(errno));
    // The rest of the arguments are the usual [PORT] [--host HOST].
    argv[1] = argv[0];
    const conet::endpoint where = example::server_endpoint(argc - 1, argv + 1, "tcp", usage);
    try {
        auto listener = conet::tcp_listener::bind(where);
        std::cout << "Listening on " << listener.local_endpoint() << std::endl;
        conet::reactor reactor;
        reactor.run(serve(listener, directory.get()));
    } catch (const std::system_error& e) {
        std::cerr << "file_server: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

// Tests for UNIX domain stream sockets (unix.hpp): echo over many connections, paths and
// abstract names, a path too long, socketpair, the peer's credentials, descriptors passed
// with the data (and a control message cut short), a peer that dies mid-message,
// cancellation, the budget, readiness after a message that carried descriptors, and
// line_reader over a unix_stream. Path sockets live in a fresh temporary directory.
#include <conet/conet.hpp>
#include <conet/unix.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "descriptor_check.hpp"
#include "support.hpp"
#include "unix_support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

namespace {

// Echoes what arrives until the peer ends its side.
conet::task<> echo(conet::unix_stream conn) {
    char buf[4096];
    for (;;) {
        const std::size_t n = co_await conn.recv(buf);
        if (n == 0) co_return;
        co_await conn.send_all({buf, n});
    }
}

// Connects, sends `size` bytes of pattern `id` in pieces, reads them back, checks each one.
conet::task<> echo_client(conet::unix_address where, std::size_t id, std::size_t size,
                          std::size_t& verified) {
    auto conn = co_await conet::unix_stream::connect(where);
    std::string out(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        out[i] = pattern_byte(i * 3 + id);
    std::string in(size, '\0');
    // Send in pieces of varying size, reading back as we go (no deadlock on a full queue).
    std::size_t sent = 0, received = 0;
    while (received < size) {
        if (sent < size) {
            const std::size_t piece = std::min(size - sent, 1 + (id * 37 + sent) % 3000);
            co_await conn.send_all({out.data() + sent, piece});
            sent += piece;
            if (sent == size) conn.shutdown();
        }
        while (received < sent) {
            const std::size_t n = co_await conn.recv({in.data() + received, size - received});
            if (n == 0) throw std::runtime_error("echo ended early");
            received += n;
        }
    }
    char extra[1];
    const std::size_t end = co_await conn.recv(extra);
    if (end != 0) throw std::runtime_error("echo sent more than it received");
    if (in != out) throw std::runtime_error("echo corrupted a byte");
    ++verified;
}

// How many descriptors this process may still open, raised to `want` if the hard limit
// allows.
std::size_t descriptor_room(std::size_t want) {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < want && limit.rlim_max > limit.rlim_cur) {
        limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, want);
        ::setrlimit(RLIMIT_NOFILE, &limit);
        ::getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur - open_descriptors().size();
}

// The close-on-exec flag of `fd`.
bool close_on_exec(int fd) {
    return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

// Makes `receiver` wait once, so that it is registered with the loop: a socket's first wait
// registers it, and the registration reports what is queued, which would hide a missing edge.
conet::task<> register_reader(conet::unix_stream& sender, conet::unix_stream& receiver) {
    co_await sender.send_all(conet::const_buffer("!"));
    co_await receiver.wait_readable();
    char one[1];
    co_await receiver.recv(one);
}

} // namespace

TEST_CASE("unix stream echo: 1000 connections, every byte verified", "[unix]") {
    temp_dir dir;
    const std::string path = dir.file("echo.sock");
    constexpr std::size_t connections = 1000;
    // Both ends of each connection are in this process: as many at once as descriptors allow.
    const std::size_t room = descriptor_room(2 * connections + 200);
    const std::size_t wave = std::min<std::size_t>(connections, (room - 50) / 2);
    REQUIRE(wave >= 10);
    std::size_t verified = 0;
    std::size_t bytes = 0;
    conet::reactor r;
    run_bounded(
        r,
        [&]() -> conet::task<> {
            auto listener = conet::unix_listener::bind(path);
            conet::task_group servers;
            auto accept_loop = [&]() -> conet::task<> {
                for (;;) {
                    auto accepted = co_await listener.accept();
                    CHECK(accepted.peer.is_unnamed());
                    servers.spawn(echo(std::move(accepted.stream)));
                }
            };
            conet::task_group acceptor;
            acceptor.spawn(accept_loop());
            for (std::size_t first = 0; first < connections; first += wave) {
                conet::task_group clients(conet::failure_policy::cancel_all);
                for (std::size_t id = first; id < std::min(connections, first + wave); ++id) {
                    const std::size_t size = 1 + (id * 7919) % 20000;
                    bytes += size;
                    clients.spawn(echo_client(conet::unix_address(path), id, size, verified));
                }
                co_await clients.join();
            }
            acceptor.cancel();
            co_await acceptor.join();
            co_await servers.join();
        }(),
        30s);
    CHECK(verified == connections);
    INFO("bytes echoed: " << bytes << ", connections at once: " << wave);
    CHECK(!exists(path)); // the listener removed its socket file
}

TEST_CASE("unix addresses: a path and an abstract name", "[unix]") {
    temp_dir dir;
    const std::string path = dir.file("named.sock");
    const std::string abstract = abstract_name("named");
    run_bounded([&]() -> conet::task<> {
        for (const conet::unix_address& where :
             {conet::unix_address(path), conet::unix_address(abstract)}) {
            auto listener = conet::unix_listener::bind(where);
            CHECK(listener.local_address() == where);
            CHECK(listener.local_address().to_string() == where.to_string());
            CHECK(exists(path) == !where.is_abstract()); // an abstract name makes no file
            auto client = co_await conet::unix_stream::connect(where);
            auto accepted = co_await listener.accept();
            CHECK(client.peer_address() == where);
            CHECK(client.local_address().is_unnamed());
            CHECK(accepted.peer.is_unnamed());
            CHECK(accepted.stream.local_address() == where);
            co_await client.send_all(conet::const_buffer("ping"));
            char buf[4];
            co_await accepted.stream.recv_exact(buf);
            CHECK(std::string(buf, 4) == "ping");
            listener.close();
            CHECK(!exists(path)); // closing removed the file it made
            // Nobody listens there any more.
            std::error_code ec;
            auto late = co_await conet::unix_stream::connect(where, ec);
            CHECK(ec);
            CHECK(!late.is_open());
        }
        CHECK(conet::unix_address("@x").is_abstract());
        CHECK(conet::unix_address("@x").name() == "x");
        CHECK(conet::unix_address::path("@x").to_string() == "@x");
        CHECK(!conet::unix_address::path("@x").is_abstract());
        CHECK(conet::unix_address().is_unnamed());
    }());
}

TEST_CASE("a unix listener leaves a file it did not make alone", "[unix]") {
    temp_dir dir;
    const std::string path = dir.file("taken.sock");
    run_bounded([&]() -> conet::task<> {
        {
            auto first = conet::unix_listener::bind(path);
            // A second bind to the same path fails, and the first's file stays.
            std::error_code ec;
            auto second = conet::unix_listener::bind(path, ec);
            CHECK(ec == std::errc::address_in_use);
            CHECK(!second.is_open());
            CHECK(exists(path));
            try {
                (void)conet::unix_listener::bind(path);
                FAIL("bind to a taken path succeeded");
            } catch (const std::system_error& e) {
                CHECK(std::string(e.what()).find("bind " + path) == 0);
            }
            CHECK(exists(path));
            // Another program replaces the file: the listener must not remove the new one.
            REQUIRE(::unlink(path.c_str()) == 0);
            auto replacement = conet::unix_listener::bind(path);
            first.close();
            CHECK(exists(path));
            // A listener moved out of removes nothing; the one moved into removes it once.
            conet::unix_listener moved = std::move(replacement);
            replacement.close();
            CHECK(exists(path));
            moved.close();
            CHECK(!exists(path));
        }
        co_return;
    }());
}

TEST_CASE("a unix path over the limit is an error, never cut short", "[unix]") {
    temp_dir dir;
    // The longest path that fits, and one byte more.
    const std::size_t prefix = dir.path().size() + 1;
    REQUIRE(prefix < conet::unix_address::max_length);
    const std::string longest =
        dir.file(std::string(conet::unix_address::max_length - prefix, 'a'));
    const std::string too_long = dir.file(std::string(longest.size() - prefix + 1, 'b'));
    REQUIRE(longest.size() == 107);
    REQUIRE(too_long.size() == 108);
    const std::string cut = too_long.substr(0, 107); // what a truncating bind would make
    run_bounded([&]() -> conet::task<> {
        std::error_code ec;
        auto listener = conet::unix_listener::bind(too_long, ec);
        CHECK(ec == conet::error::address_too_long);
        CHECK(!listener.is_open());
        CHECK(!exists(too_long));
        CHECK(!exists(cut));
        try {
            (void)conet::unix_listener::bind(too_long);
            FAIL("bind with a path too long succeeded");
        } catch (const std::system_error& e) {
            CHECK(e.code() == conet::error::address_too_long);
            CHECK(std::string(e.what()).find("too long") != std::string::npos);
        }
        auto client = co_await conet::unix_stream::connect(too_long, ec);
        CHECK(ec == conet::error::address_too_long);
        CHECK(!client.is_open());
        // The abstract namespace has the same limit.
        auto abstract = conet::unix_listener::bind(
            conet::unix_address::abstract(std::string(conet::unix_address::max_length + 1, 'c')),
            ec);
        CHECK(ec == conet::error::address_too_long);
        // The longest that fits works, and is read back whole.
        auto fits = conet::unix_listener::bind(longest);
        CHECK(fits.local_address().name() == longest);
        auto connected = co_await conet::unix_stream::connect(longest);
        CHECK(connected.peer_address().name() == longest);
        const std::string name(conet::unix_address::max_length, 'd');
        auto abstract_fits = conet::unix_listener::bind(conet::unix_address::abstract(name));
        CHECK(abstract_fits.local_address().name() == name);
        // A path holding a NUL byte would be cut there: refused.
        auto with_nul = conet::unix_listener::bind(
            conet::unix_address::path(std::string_view("/tmp/a\0b", 8)), ec);
        CHECK(ec == std::errc::invalid_argument);
    }());
    CHECK(!exists(longest));
}

TEST_CASE("socketpair streams and the peer's credentials", "[unix]") {
    temp_dir dir;
    const std::string path = dir.file("creds.sock");
    run_bounded([&]() -> conet::task<> {
        auto [a, b] = conet::unix_stream::pair();
        co_await a.send_all(conet::const_buffer("hello"));
        char buf[5];
        co_await b.recv_exact(buf);
        CHECK(std::string(buf, 5) == "hello");
        CHECK(a.peer_address().is_unnamed());
        for (auto* s : {&a, &b}) {
            const conet::credentials c = s->peer_credentials();
            CHECK(c.pid == ::getpid());
            CHECK(c.uid == ::getuid());
            CHECK(c.gid == ::getgid());
        }
        // Through a listener too, both ways.
        auto listener = conet::unix_listener::bind(path);
        auto client = co_await conet::unix_stream::connect(path);
        auto accepted = co_await listener.accept();
        const conet::credentials theirs = accepted.stream.peer_credentials();
        const conet::credentials ours = client.peer_credentials();
        CHECK(theirs.pid == ::getpid());
        CHECK(theirs.uid == ::getuid());
        CHECK(theirs.gid == ::getgid());
        CHECK(ours.pid == ::getpid());
        // A closed stream reports, it does not throw in the ec form.
        conet::unix_stream closed;
        std::error_code ec;
        (void)closed.peer_credentials(ec);
        CHECK(ec == std::errc::bad_file_descriptor);
    }());
}

TEST_CASE("three descriptors passed with the data are used on the other side", "[unix]") {
    temp_dir dir;
    const std::string file_path = dir.file("passed.txt");
    run_bounded([&]() -> conet::task<> {
        auto [sender, receiver] = conet::unix_stream::pair();
        // A pipe's write end, a file, and one end of another socketpair.
        int pipe_fds[2];
        REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
        conet::owned_fd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
        conet::owned_fd file(::open(file_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        REQUIRE(file);
        auto [near, far] = conet::unix_stream::pair();
        const std::array<int, 3> fds{pipe_write.get(), file.get(), far.native_handle()};

        const std::size_t sent =
            co_await sender.send_fds(conet::const_buffer("three descriptors"), fds);
        CHECK(sent == 17);
        // The sender's own descriptors stay open and theirs: close them now, so that only
        // the received ones keep the pipe, the file and the socket alive.
        pipe_write.reset();
        file.reset();
        far.close();

        char buf[64];
        conet::received_fds got = co_await receiver.recv_fds(buf);
        CHECK(std::string(buf, got.size) == "three descriptors");
        REQUIRE(got.fds.size() == 3);
        for (const auto& fd : got.fds)
            CHECK(close_on_exec(fd.get()));

        // The pipe: what is written through the received end comes out of ours.
        REQUIRE(::write(got.fds[0].get(), "via pipe", 8) == 8);
        char piped[8];
        REQUIRE(::read(pipe_read.get(), piped, 8) == 8);
        CHECK(std::string(piped, 8) == "via pipe");
        // The file: written through the received descriptor, read back by its path.
        REQUIRE(::write(got.fds[1].get(), "via file", 8) == 8);
        got.fds[1].reset();
        conet::owned_fd reopened(::open(file_path.c_str(), O_RDONLY | O_CLOEXEC));
        char filed[8] = {};
        REQUIRE(::read(reopened.get(), filed, 8) == 8);
        CHECK(std::string(filed, 8) == "via file");
        // The socket: adopted as a unix_stream, it talks to the end we kept.
        auto adopted = conet::unix_stream::adopt(got.fds[2].release());
        co_await adopted.send_all(conet::const_buffer("via socket"));
        char socketed[10];
        co_await near.recv_exact(socketed);
        CHECK(std::string(socketed, 10) == "via socket");
        const conet::credentials c = adopted.peer_credentials();
        CHECK(c.pid == ::getpid());
        // Bad input: no data to carry them, or too many descriptors.
        std::error_code ec;
        co_await sender.send_fds(conet::const_buffer(""), fds, ec);
        CHECK(ec == std::errc::invalid_argument);
        const std::vector<int> too_many(254, pipe_read.get());
        co_await sender.send_fds(conet::const_buffer("x"), too_many, ec);
        CHECK(ec == std::errc::invalid_argument);
    }());
}

TEST_CASE("more descriptors than the receive has room for: an error, and none leaks", "[unix]") {
    run_bounded([]() -> conet::task<> {
        auto [sender, receiver] = conet::unix_stream::pair();
        std::array<conet::owned_fd, 3> originals;
        std::array<int, 3> fds{};
        for (std::size_t i = 0; i < 3; ++i) {
            originals[i].reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
            fds[i] = originals[i].get();
        }
        co_await sender.send_fds(conet::const_buffer("cut"), fds);
        co_await sender.send_fds(conet::const_buffer("cut again"), fds);
        co_await sender.send_all(conet::const_buffer("plain"));
        const auto before = open_descriptors();
        char buf[64];
        std::error_code ec;
        // Room for one: the kernel closes two, the receive closes the one it got.
        conet::received_fds got = co_await receiver.recv_fds(buf, 1, ec);
        CHECK(ec == conet::error::descriptors_truncated);
        CHECK(got.fds.empty());
        CHECK(std::string(buf, got.size) == "cut"); // the bytes did arrive
        CHECK(new_descriptors(before, open_descriptors()).empty());
        // The throwing form says what happened.
        try {
            (void)co_await receiver.recv_fds(buf, 0);
            FAIL("a truncated control message was not reported");
        } catch (const conet::transfer_error& e) {
            CHECK(e.code() == conet::error::descriptors_truncated);
            CHECK(e.transferred() == 9);
        }
        CHECK(new_descriptors(before, open_descriptors()).empty());
        // The stream goes on: the next message is whole.
        got = co_await receiver.recv_fds(buf);
        CHECK(std::string(buf, got.size) == "plain");
        CHECK(got.fds.empty());
    }());
}

TEST_CASE("a receive limited to an odd number of descriptors takes no more than that", "[unix]") {
    // CMSG_SPACE rounds the control buffer up to 8 bytes: room for one int more than an odd
    // limit asks. Each message carries one descriptor more than the limit.
    run_bounded([]() -> conet::task<> {
        auto [sender, receiver] = conet::unix_stream::pair();
        std::array<conet::owned_fd, 8> originals;
        std::array<int, 8> fds{};
        for (std::size_t i = 0; i < fds.size(); ++i) {
            originals[i].reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
            fds[i] = originals[i].get();
        }
        const auto before = open_descriptors();
        for (std::size_t limit = 0; limit < fds.size(); ++limit) {
            INFO("limit " << limit);
            co_await sender.send_fds(conet::const_buffer("m"),
                                     std::span<const int>(fds.data(), limit + 1));
            char buf[8];
            std::error_code ec;
            conet::received_fds got = co_await receiver.recv_fds(buf, limit, ec);
            CHECK(ec == conet::error::descriptors_truncated);
            CHECK(got.fds.empty());
            CHECK(got.size == 1);
            CHECK(new_descriptors(before, open_descriptors()).empty());
        }
        // Exactly the limit passes, odd or even.
        for (std::size_t limit = 1; limit < fds.size(); ++limit) {
            co_await sender.send_fds(conet::const_buffer("m"),
                                     std::span<const int>(fds.data(), limit));
            char buf[8];
            conet::received_fds got = co_await receiver.recv_fds(buf, limit);
            CHECK(got.fds.size() == limit);
        }
    }());
}

TEST_CASE("a plain receive after a message with descriptors does not wait for more",
          "[unix][readiness]") {
    // The kernel ends a read after data that carried descriptors, with the rest queued behind
    // it and no edge to come for it: a short read there must not be taken for "drained".
    run_bounded([]() -> conet::task<> {
        auto [sender, receiver] = conet::unix_stream::pair();
        conet::owned_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        const int fd = null.get();
        char buf[64];
        std::error_code ec;
        co_await register_reader(sender, receiver);
        // recv
        co_await sender.send_all(conet::const_buffer("before "));
        co_await sender.send_fds(conet::const_buffer("with "), std::span<const int>(&fd, 1));
        co_await sender.send_all(conet::const_buffer("after"));
        co_await conet::sleep_for(20ms); // the loop takes the sends' edges: none is left
        std::string all;
        while (all.size() < 17) {
            const std::size_t n =
                co_await conet::with_timeout(receiver.recv(buf, ec), 2s); // no edge will come
            REQUIRE(!ec);
            all.append(buf, n);
        }
        CHECK(all == "before with after");
        // recv_exact
        co_await sender.send_fds(conet::const_buffer("12"), std::span<const int>(&fd, 1));
        co_await sender.send_all(conet::const_buffer("34"));
        co_await conet::sleep_for(20ms); // the loop takes the sends' edges: none is left
        char four[4];
        co_await conet::with_timeout(receiver.recv_exact(four, ec), 2s);
        REQUIRE(!ec);
        CHECK(std::string(four, 4) == "1234");
        // recv(pool)
        conet::buffer_pool pool(64);
        co_await sender.send_fds(conet::const_buffer("ab"), std::span<const int>(&fd, 1));
        co_await sender.send_all(conet::const_buffer("cd"));
        co_await conet::sleep_for(20ms); // the loop takes the sends' edges: none is left
        std::string pooled;
        while (pooled.size() < 4) {
            auto data = co_await conet::with_timeout(receiver.recv(pool, ec), 2s);
            REQUIRE(!ec);
            pooled.append(data.data(), data.size());
        }
        CHECK(pooled == "abcd");
        // recv_fds: the descriptors of two messages are never mixed, and none is waited for.
        co_await sender.send_fds(conet::const_buffer("x"), std::span<const int>(&fd, 1));
        co_await sender.send_fds(conet::const_buffer("y"), std::span<const int>(&fd, 1));
        co_await conet::sleep_for(20ms); // the loop takes the sends' edges: none is left
        auto first = co_await conet::with_timeout(receiver.recv_fds(buf, ec), 2s);
        REQUIRE(!ec);
        CHECK(first.size == 1);
        CHECK(first.fds.size() == 1);
        auto second = co_await conet::with_timeout(receiver.recv_fds(buf, ec), 2s);
        REQUIRE(!ec);
        CHECK(second.size == 1);
        CHECK(second.fds.size() == 1);
    }());
}

TEST_CASE("a unix stream's drained recv waits for the edge without a failing read",
          "[unix][readiness]") {
    conet::reactor r;
    watchdog dog(r);
    constexpr int round_trips = 1000;
    const auto stats = r.run([&]() -> conet::task<conet::reactor_stats> {
        auto ends = conet::unix_stream::pair(); // (no structured binding: a lambda uses it)
        auto& client = ends.first;
        auto& server = ends.second;
        conet::task_group echoes;
        echoes.spawn(echo(std::move(server)));
        char message[64] = {};
        char reply[4096]; // larger: each read is short
        auto round_trip = [&]() -> conet::task<> {
            co_await client.send_all(message);
            for (std::size_t got = 0; got < sizeof message;)
                got += co_await client.recv(reply);
        };
        for (int i = 0; i < 10; ++i)
            co_await round_trip();
        const auto before = r.stats();
        for (int i = 0; i < round_trips; ++i)
            co_await round_trip();
        auto after = r.stats();
        after.syscalls -= before.syscalls;
        after.epoll_waits -= before.epoll_waits;
        client.close();
        co_await echoes.join();
        co_return after;
    }());
    const auto others = stats.syscalls - stats.epoll_waits;
    INFO("syscalls " << stats.syscalls << ", of which epoll_wait " << stats.epoll_waits);
    CHECK(others <= round_trips * 4 + 20);
}

TEST_CASE("a unix peer that dies mid-message", "[unix]") {
    auto ends = conet::unix_stream::pair(); // (no structured binding: a lambda uses it)
    auto& parent_end = ends.first;
    auto& child_end = ends.second;
    conet::owned_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The child: half a 100-byte message, with a descriptor, then it is killed.
        const int fd = null.get();
        char data[50];
        std::memset(data, 'm', sizeof data);
        iovec part{data, sizeof data};
        alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int))] = {};
        msghdr message{};
        message.msg_iov = &part;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        cmsghdr* header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
        ::sendmsg(child_end.native_handle(), &message, MSG_NOSIGNAL);
        ::raise(SIGKILL);
        ::_exit(1);
    }
    child_end.close();
    null.reset();
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    run_bounded([&]() -> conet::task<> {
        char message[100];
        auto head = co_await parent_end.recv_fds({message, 10});
        CHECK(head.size == 10);
        CHECK(head.fds.size() == 1);
        std::error_code ec;
        const std::size_t rest = co_await parent_end.recv_exact({message + 10, 90}, ec);
        CHECK(ec == conet::error::end_of_stream);
        CHECK(rest == 40);
        try {
            char more[10];
            (void)co_await parent_end.recv_exact(more);
            FAIL("recv_exact after the end succeeded");
        } catch (const conet::transfer_error& e) {
            CHECK(e.code() == conet::error::end_of_stream);
            CHECK(e.transferred() == 0);
        }
        // Sending to the dead peer is an error, never a SIGPIPE.
        co_await parent_end.send_all(conet::const_buffer("anyone?"), ec);
        CHECK(ec == std::errc::broken_pipe);
    }());
}

TEST_CASE("a waiting unix recv is cancelled, and the stream goes on", "[unix][cancel]") {
    run_bounded([]() -> conet::task<> {
        auto [a, b] = conet::unix_stream::pair();
        std::error_code seen;
        bool ended = false;
        auto waiting = [](conet::unix_stream& s, std::error_code& out,
                          bool& done) -> conet::task<> {
            char buf[16];
            (void)co_await s.recv(buf, out);
            done = true;
        };
        conet::task_group group;
        auto handle = group.spawn(waiting(b, seen, ended));
        co_await conet::sleep_for(10ms);
        CHECK(!ended); // it waits: nothing was sent
        handle.cancel();
        co_await group.join();
        CHECK(ended);
        CHECK(seen == std::errc::operation_canceled);
        // The stream is intact: what is sent now arrives.
        co_await a.send_all(conet::const_buffer("after"));
        char buf[5];
        co_await b.recv_exact(buf);
        CHECK(std::string(buf, 5) == "after");
        // A close by another task is not a cancellation.
        auto closer = [](conet::unix_stream& s) -> conet::task<> {
            co_await conet::sleep_for(5ms);
            s.close();
        };
        group.spawn(closer(b));
        char one[1];
        std::error_code closed;
        (void)co_await b.recv(one, closed);
        CHECK(closed == conet::error::closed);
        co_await group.join();
    }());
}

TEST_CASE("a unix reader whose peer always has data lets a timer fire", "[unix][fair]") {
    run_bounded([]() -> conet::task<> {
        auto [reader, writer] = conet::unix_stream::pair();
        // The writer floods from its own thread, blocking, until told to stop.
        const int fd = writer.native_handle();
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        timeval tv{0, 100'000};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        std::atomic<bool> stop{false};
        std::thread flood([&] {
            static char chunk[64 * 1024] = {};
            const auto until = std::chrono::steady_clock::now() + 3s;
            while (!stop.load() && std::chrono::steady_clock::now() < until)
                ::send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        });
        co_await conet::sleep_for(50ms); // a backlog builds up
        bool fired = false;
        auto timer = [](bool& flag) -> conet::task<> {
            co_await conet::sleep_for(10ms);
            flag = true;
        };
        const auto start = std::chrono::steady_clock::now();
        conet::reactor::current()->spawn(timer(fired));
        char small[16];
        while (!fired)
            if (co_await reader.recv(small) == 0) break;
        const auto late = std::chrono::steady_clock::now() - start;
        stop = true;
        flood.join();
        CHECK(fired);
        CHECK(late < 1s); // unfair, it would fire only once the flood gives up after 3 s
    }());
}

TEST_CASE("line_reader over a unix_stream", "[unix]") {
    run_bounded([]() -> conet::task<> {
        auto [a, b] = conet::unix_stream::pair();
        conet::owned_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        const int fd = null.get();
        co_await register_reader(a, b);
        conet::line_reader lines(b);
        // Lines split across sends, one send carrying a descriptor (which the reader's plain
        // read drops, the kernel closing it) with more queued behind it.
        co_await a.send_all(conet::const_buffer("one\ntw"));
        co_await a.send_fds(conet::const_buffer("o\nthr"), std::span<const int>(&fd, 1));
        co_await a.send_all(conet::const_buffer("ee\n"));
        co_await conet::sleep_for(20ms); // the loop takes the sends' edges: none is left
        std::vector<std::string> got;
        std::error_code ec;
        for (int i = 0; i < 3; ++i) { // no edge comes for "ee\n": it is queued already
            auto line = co_await conet::with_timeout(lines.read_line(ec), 2s);
            REQUIRE(!ec);
            REQUIRE(line);
            got.push_back(*line);
        }
        co_await a.send_all(conet::const_buffer("four"));
        a.shutdown();
        while (auto line = co_await lines.read_line())
            got.push_back(*line);
        CHECK(got == std::vector<std::string>{"one", "two", "three", "four"});
    }());
}

TEST_CASE("adopting a unix socket checks what it is", "[unix]") {
    temp_dir dir;
    const std::string path = dir.file("adopted.sock");
    run_bounded([&]() -> conet::task<> {
        // A listener made elsewhere (blocking, no close-on-exec) is adopted and accepts.
        conet::owned_fd raw(::socket(AF_UNIX, SOCK_STREAM, 0));
        REQUIRE(raw);
        conet::detail::sockaddr_unix sa;
        REQUIRE(!sa.assign(path));
        REQUIRE(::bind(raw.get(), sa.get(), sa.length) == 0);
        REQUIRE(::listen(raw.get(), 8) == 0);
        std::error_code ec;
        // Not a connected stream: a listening socket is refused, and left open.
        auto wrong = conet::unix_stream::adopt(raw.get(), ec);
        CHECK(ec == std::errc::invalid_argument);
        CHECK(!wrong.is_open());
        CHECK(::fcntl(raw.get(), F_GETFD) >= 0);
        auto listener = conet::unix_listener::adopt(raw.release());
        CHECK(close_on_exec(listener.native_handle()));
        CHECK((::fcntl(listener.native_handle(), F_GETFL) & O_NONBLOCK) != 0);
        auto client = co_await conet::unix_stream::connect(path);
        auto accepted = co_await listener.accept();
        co_await client.send_all(conet::const_buffer("adopted"));
        char buf[7];
        co_await accepted.stream.recv_exact(buf);
        CHECK(std::string(buf, 7) == "adopted");
        listener.close();
        CHECK(exists(path)); // an adopted listener did not make the file: it stays
        ::unlink(path.c_str());
        // A TCP socket is not a UNIX one; a connected UNIX socket is not a listener.
        auto tcp = conet::tcp_listener::bind(any_loopback_port());
        auto not_unix = conet::unix_listener::adopt(tcp.native_handle(), ec);
        CHECK(ec == std::errc::address_family_not_supported);
        CHECK(!not_unix.is_open());
        auto not_listening = conet::unix_listener::adopt(client.native_handle(), ec);
        CHECK(ec == std::errc::invalid_argument);
        CHECK(!not_listening.is_open());
        // A datagram socket is not a stream.
        conet::owned_fd datagram(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        auto not_stream = conet::unix_stream::adopt(datagram.get(), ec);
        CHECK(ec == std::errc::wrong_protocol_type);
        CHECK(!not_stream.is_open());
    }());
}

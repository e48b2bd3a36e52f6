// Tests for UNIX domain datagram sockets (unix_datagram.hpp): echo over paths and abstract
// names, an unbound sender's unnamed address, 1,000 datagrams in order over a socketpair,
// batches of 64 with truncated members and several senders, gathered sends, a path too long,
// a peer that closes, cancellation, the socket file removed on close, adoption, and a reader
// that cannot starve a timer. Path sockets live in a fresh temporary directory.
#include <conet/conet.hpp>
#include <conet/unix.hpp>
#include <conet/unix_datagram.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
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

// `size` bytes of a pattern that differs for each `id`.
std::string payload(std::size_t id, std::size_t size) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = pattern_byte(i * 5 + id * 7919);
    return s;
}

// Answers every datagram to its sender, `count` times.
conet::task<> echo_datagrams(conet::unix_datagram_socket& server, std::size_t count) {
    std::vector<char> buf(70000);
    for (std::size_t i = 0; i < count; ++i) {
        auto [size, from] = co_await server.recv_from(buf);
        co_await server.send_to({buf.data(), size}, from);
    }
}

// Sends datagrams of varied sizes (0 bytes to 60,000) to `server` and checks that each one
// comes back whole, from the server. Yields the bytes verified.
conet::task<std::size_t> echo_client(conet::unix_datagram_socket& client,
                                     const conet::unix_address& server, std::size_t count) {
    std::vector<char> back(70000);
    std::size_t verified = 0;
    for (std::size_t id = 0; id < count; ++id) {
        const std::size_t size = id == 0 ? 0 : (id * 7919) % 60000;
        const std::string out = payload(id, size);
        const std::size_t sent = co_await client.send_to(out, server);
        REQUIRE(sent == size);
        auto [got, from] = co_await client.recv_from(back);
        REQUIRE(got == size);
        CHECK(from == server);
        REQUIRE(std::memcmp(back.data(), out.data(), size) == 0);
        verified += size;
    }
    co_return verified;
}

// `count` slots of `size` bytes each, over `storage`.
std::vector<conet::unix_datagram_slot> make_slots(std::vector<std::string>& storage,
                                                  std::size_t count, std::size_t size) {
    storage.assign(count, std::string(size, '\0'));
    std::vector<conet::unix_datagram_slot> slots(count);
    for (std::size_t i = 0; i < count; ++i)
        slots[i].buffer = conet::mutable_buffer(storage[i].data(), storage[i].size());
    return slots;
}

std::string text(const conet::unix_datagram_slot& s) {
    return std::string(s.buffer.data(), s.size);
}

} // namespace

TEST_CASE("unix datagram echo over a path and over an abstract name, every byte checked",
          "[unix][unix_datagram]") {
    temp_dir dir;
    const std::string server_path = dir.file("server.sock");
    const std::string client_path = dir.file("client.sock");
    constexpr std::size_t count = 200;
    std::size_t verified = 0;
    run_bounded(
        [&]() -> conet::task<> {
            // A path: both ends bound to a file.
            {
                auto server = conet::unix_datagram_socket::bind(server_path);
                auto client = conet::unix_datagram_socket::bind(client_path);
                CHECK(server.local_address() == conet::unix_address(server_path));
                CHECK(exists(server_path));
                conet::task_group group(conet::failure_policy::cancel_all);
                group.spawn(echo_datagrams(server, count));
                verified += co_await echo_client(client, server_path, count);
                co_await group.join();
            }
            CHECK(!exists(server_path)); // each removed the file it made
            CHECK(!exists(client_path));
            // The abstract namespace: the client's name chosen by the kernel (autobind).
            const conet::unix_address name = abstract_name("echo");
            auto server = conet::unix_datagram_socket::bind(name);
            auto client = conet::unix_datagram_socket::autobind();
            const conet::unix_address chosen = client.local_address();
            CHECK(chosen.is_abstract());
            CHECK(chosen.name().size() == 5); // unix(7): five hex digits
            CHECK(server.local_address() == name);
            conet::task_group group(conet::failure_policy::cancel_all);
            group.spawn(echo_datagrams(server, count));
            verified += co_await echo_client(client, name, count);
            co_await group.join();
        }(),
        20s);
    std::size_t expected = 0;
    for (std::size_t id = 1; id < count; ++id)
        expected += (id * 7919) % 60000;
    CHECK(verified == 2 * expected);
}

TEST_CASE("an unbound unix datagram sender arrives from an unnamed address",
          "[unix][unix_datagram]") {
    run_bounded([]() -> conet::task<> {
        const conet::unix_address name = abstract_name("unbound");
        auto receiver = conet::unix_datagram_socket::bind(name);
        auto sender = conet::unix_datagram_socket::open();
        CHECK(sender.local_address().is_unnamed());
        co_await sender.send_to(conet::const_buffer("who am i"), name);
        char buf[16];
        auto [size, from] = co_await receiver.recv_from(buf);
        CHECK(std::string(buf, size) == "who am i");
        CHECK(from.is_unnamed());                   // nothing to answer to
        CHECK(sender.local_address().is_unnamed()); // sending did not bind it
        // Answering an unnamed address is bad input, reported, never sent anywhere.
        std::error_code ec;
        co_await receiver.send_to(conet::const_buffer("reply"), from, ec);
        CHECK(ec == std::errc::invalid_argument);
        // A sender connected first arrives unnamed too; recv on the connected side works.
        sender.connect(name);
        CHECK(sender.peer_address() == name);
        co_await sender.send(conet::const_buffer("again"));
        const std::size_t n = co_await receiver.recv(buf);
        CHECK(std::string(buf, n) == "again");
    }());
}

TEST_CASE("1,000 unix datagrams over a socketpair arrive in order, every byte checked",
          "[unix][unix_datagram]") {
    constexpr std::size_t count = 1000;
    std::size_t received = 0;
    run_bounded(
        [&]() -> conet::task<> {
            auto [a, b] = conet::unix_datagram_socket::pair();
            CHECK(a.peer_address().is_unnamed());
            // The sender runs ahead and fills the receiver's queue: it must wait, not fail.
            auto sender = [](conet::unix_datagram_socket& s) -> conet::task<> {
                for (std::size_t i = 0; i < count; ++i) {
                    std::string out = std::to_string(i) + ":" + payload(i, 1 + (i * 37) % 2000);
                    co_await s.send(out);
                }
            };
            conet::task_group group(conet::failure_policy::cancel_all);
            group.spawn(sender(a));
            char buf[4096];
            for (std::size_t i = 0; i < count; ++i) {
                const std::size_t n = co_await b.recv(buf);
                const std::string expected =
                    std::to_string(i) + ":" + payload(i, 1 + (i * 37) % 2000);
                REQUIRE(std::string(buf, n) == expected);
                ++received;
                if (i % 100 == 0) co_await conet::sleep_for(1ms); // let the queue fill up
            }
            co_await group.join();
        }(),
        20s);
    CHECK(received == count);
}

TEST_CASE("a unix datagram batch of 64 in one call, truncated members flagged",
          "[unix][unix_datagram][batch]") {
    // Over a socketpair: a named receiver takes at most net.unix.max_dgram_qlen + 1 datagrams
    // (11 by default) from senders it is not connected to before they must wait, but a
    // socketpair's ends are connected to each other, and only the send buffer limits them.
    run_bounded([]() -> conet::task<> {
        auto [sender, receiver] = conet::unix_datagram_socket::pair();
        constexpr std::size_t count = 64;
        constexpr std::size_t slot_size = 100;
        std::vector<std::string> sent;
        for (std::size_t i = 0; i < count; ++i) // every fifth one larger than its slot
            sent.push_back(payload(i, i % 5 == 0 ? slot_size + 1 + i : i));
        std::vector<conet::const_buffer> out(sent.begin(), sent.end());
        const auto before_send = conet::reactor::current()->stats().syscalls;
        const std::size_t n1 = co_await sender.send_batch(out); // connected: one datagram each
        CHECK(n1 == count);
        CHECK(conet::reactor::current()->stats().syscalls - before_send == 1);

        std::vector<std::string> storage;
        auto slots = make_slots(storage, count, slot_size);
        const auto before = conet::reactor::current()->stats().syscalls;
        const std::size_t n = co_await receiver.recv_batch(slots);
        CHECK(conet::reactor::current()->stats().syscalls - before == 1); // one recvmmsg
        REQUIRE(n == count);
        for (std::size_t i = 0; i < n; ++i) {
            INFO("datagram " << i);
            const bool too_big = i % 5 == 0;
            CHECK(slots[i].truncated == too_big);
            CHECK(slots[i].size == (too_big ? slot_size : i));
            CHECK(text(slots[i]) == sent[i].substr(0, slot_size));
            CHECK(slots[i].from.is_unnamed()); // a socketpair's end has no name
        }
        // Short now: the queue is empty, and the next batch waits for a datagram.
        std::error_code ec;
        const std::size_t later =
            co_await conet::with_timeout(receiver.recv_batch(slots, ec), 20ms);
        CHECK(ec == std::errc::timed_out);
        CHECK(later == 0);
        // No slots, or no datagrams, is bad input.
        std::vector<conet::unix_datagram_slot> no_slots;
        co_await receiver.recv_batch(no_slots, ec);
        CHECK(ec == std::errc::invalid_argument);
        std::vector<conet::const_buffer> none;
        co_await sender.send_batch(none, ec);
        CHECK(ec == std::errc::invalid_argument);
    }());
}

TEST_CASE("unix datagram batches of 64 slots from several senders, each member checked",
          "[unix][unix_datagram][batch]") {
    // Three senders at once (bound to a name, autobound, not bound; the last one connected),
    // each datagram "<sender> <sequence>" and a pattern, every seventh too big for its slot.
    // The receiver's queue fills (see above): the senders wait for room while it takes
    // batches, so the batches mix the senders.
    constexpr std::size_t per_sender = 60;
    constexpr std::size_t slot_size = 200;
    std::size_t received = 0, truncated = 0, batches = 0;
    run_bounded([&]() -> conet::task<> {
        const conet::unix_address name = abstract_name("batch");
        auto receiver = conet::unix_datagram_socket::bind(name);
        std::array<conet::unix_datagram_socket, 3> senders{
            conet::unix_datagram_socket::bind(abstract_name("first")),
            conet::unix_datagram_socket::autobind(), conet::unix_datagram_socket::open()};
        senders[2].connect(name);
        auto message = [](std::size_t who, std::size_t seq) {
            std::string m = std::to_string(who) + " " + std::to_string(seq) + " ";
            return m + payload(who * 1000 + seq, seq % 7 == 0 ? slot_size + seq : seq);
        };
        auto send_all = [&](std::size_t who) -> conet::task<> {
            for (std::size_t seq = 0; seq < per_sender; ++seq) {
                const std::string m = message(who, seq);
                if (who == 2)
                    co_await senders[who].send(m);
                else
                    co_await senders[who].send_to(m, name);
            }
        };
        conet::task_group group(conet::failure_policy::cancel_all);
        for (std::size_t who = 0; who < 3; ++who)
            group.spawn(send_all(who));
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 64, slot_size);
        std::array<std::size_t, 3> next{};
        while (received < 3 * per_sender) {
            const std::size_t n = co_await conet::with_timeout(receiver.recv_batch(slots), 5s);
            ++batches;
            for (std::size_t i = 0; i < n; ++i) {
                const std::string got = text(slots[i]);
                const std::size_t who = static_cast<std::size_t>(got.at(0) - '0');
                REQUIRE(who < 3);
                const std::string expected = message(who, next[who]++); // in order per sender
                INFO("sender " << who << ", datagram " << next[who] - 1);
                CHECK(slots[i].truncated == (expected.size() > slot_size));
                CHECK(got == expected.substr(0, slot_size));
                if (who == 2)
                    CHECK(slots[i].from.is_unnamed()); // not bound: nothing to answer to
                else
                    CHECK(slots[i].from == senders[who].local_address());
                truncated += slots[i].truncated ? 1 : 0;
            }
            received += n;
        }
        co_await group.join();
    }());
    CHECK(received == 3 * per_sender);
    CHECK(truncated == 3 * ((per_sender + 6) / 7));
    INFO("batches: " << batches);
    CHECK(batches < received); // at least one batch took more than one datagram
}

TEST_CASE("a unix datagram send_batch to two receivers, and an address too long in it",
          "[unix][unix_datagram][batch]") {
    run_bounded([]() -> conet::task<> {
        const conet::unix_address first_name = abstract_name("first");
        const conet::unix_address second_name = abstract_name("second");
        auto first = conet::unix_datagram_socket::bind(first_name);
        auto second = conet::unix_datagram_socket::bind(second_name);
        auto sender = conet::unix_datagram_socket::autobind();
        constexpr std::size_t count = 20; // within both receivers' queues (11 each)
        std::vector<std::string> payloads;
        std::vector<conet::outgoing_unix_datagram> out;
        for (std::size_t i = 0; i < count; ++i)
            payloads.push_back("datagram " + std::to_string(i));
        for (std::size_t i = 0; i < count; ++i)
            out.push_back({payloads[i], i % 2 ? second_name : first_name});
        const auto before = conet::reactor::current()->stats().syscalls;
        const std::size_t n2 = co_await sender.send_batch(out);
        CHECK(n2 == count);
        CHECK(conet::reactor::current()->stats().syscalls - before == 1); // one sendmmsg
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 64, 64);
        for (auto* r : {&first, &second}) {
            const std::size_t got = co_await conet::with_timeout(r->recv_batch(slots), 2s);
            REQUIRE(got == count / 2);
            const std::size_t odd = r == &second ? 1 : 0;
            for (std::size_t i = 0; i < got; ++i) {
                CHECK(text(slots[i]) == payloads[2 * i + odd]);
                CHECK(slots[i].from == sender.local_address());
            }
        }
        // An address too long ends the batch there; sent again, it is the error, nothing sent.
        const std::vector<conet::outgoing_unix_datagram> bad{
            {conet::const_buffer("a"), first_name},
            {conet::const_buffer("b"),
             conet::unix_address::abstract(std::string(conet::unix_address::max_length + 1, 'x'))},
            {conet::const_buffer("c"), first_name}};
        const std::size_t n3 = co_await sender.send_batch(bad);
        CHECK(n3 == 1);
        std::error_code ec;
        const std::size_t none = co_await sender.send_batch(std::span(bad).subspan(1), ec);
        CHECK(ec == conet::error::address_too_long);
        CHECK(none == 0);
        try {
            (void)co_await sender.send_batch(std::span(bad).subspan(1));
            FAIL("a batch to an address too long succeeded");
        } catch (const std::system_error& e) {
            CHECK(e.code() == conet::error::address_too_long);
        }
        const std::size_t got = co_await first.recv_batch(slots);
        REQUIRE(got == 1);
        CHECK(text(slots[0]) == "a");
    }());
}

TEST_CASE("a unix datagram from several buffers, and one too big for the receive",
          "[unix][unix_datagram]") {
    run_bounded([]() -> conet::task<> {
        const conet::unix_address name = abstract_name("gather");
        auto receiver = conet::unix_datagram_socket::bind(name);
        auto sender = conet::unix_datagram_socket::autobind();
        const std::array<conet::const_buffer, 3> pieces{
            conet::const_buffer("head|"), conet::const_buffer(""), conet::const_buffer("body")};
        const std::size_t n4 = co_await sender.send_to(pieces, name);
        CHECK(n4 == 9);
        char buf[32];
        auto [size, from] = co_await receiver.recv_from(buf);
        CHECK(std::string(buf, size) == "head|body");
        CHECK(from == sender.local_address());
        sender.connect(name);
        const std::size_t n5 = co_await sender.send(pieces);
        CHECK(n5 == 9);
        const std::size_t n6 = co_await receiver.recv(buf);
        CHECK(n6 == 9);
        // Too big for the buffer: an error that keeps what fitted, and names its sender.
        co_await sender.send(conet::const_buffer("0123456789"));
        std::error_code ec;
        auto cut = co_await receiver.recv_from({buf, 4}, ec);
        CHECK(ec == conet::error::datagram_truncated);
        CHECK(cut.size == 4);
        CHECK(cut.from == sender.local_address());
        co_await sender.send(conet::const_buffer("0123456789"));
        try {
            (void)co_await receiver.recv({buf, 4});
            FAIL("a truncated datagram was not reported");
        } catch (const std::system_error& e) {
            CHECK(e.code() == conet::error::datagram_truncated);
        }
    }());
}

TEST_CASE("a unix datagram path over the limit is a clear error, never cut short",
          "[unix][unix_datagram]") {
    temp_dir dir;
    const std::size_t prefix = dir.path().size() + 1;
    REQUIRE(prefix < conet::unix_address::max_length);
    const std::string longest =
        dir.file(std::string(conet::unix_address::max_length - prefix, 'a'));
    const std::string too_long = dir.file(std::string(longest.size() - prefix + 1, 'b'));
    REQUIRE(too_long.size() == conet::unix_address::max_length + 1);
    const std::string cut = too_long.substr(0, conet::unix_address::max_length);
    run_bounded([&]() -> conet::task<> {
        std::error_code ec;
        auto s = conet::unix_datagram_socket::bind(too_long, ec);
        CHECK(ec == conet::error::address_too_long);
        CHECK(!s.is_open());
        CHECK(!exists(too_long));
        CHECK(!exists(cut));
        try {
            (void)conet::unix_datagram_socket::bind(too_long);
            FAIL("bind with a path too long succeeded");
        } catch (const std::system_error& e) {
            CHECK(e.code() == conet::error::address_too_long);
            CHECK(std::string(e.what()).find("bind " + too_long) == 0);
            CHECK(std::string(e.what()).find("too long") != std::string::npos);
        }
        auto sender = conet::unix_datagram_socket::open();
        const std::size_t sent = co_await sender.send_to(conet::const_buffer("x"), too_long, ec);
        CHECK(ec == conet::error::address_too_long);
        CHECK(sent == 0);
        try {
            (void)co_await sender.send_to(conet::const_buffer("x"), too_long);
            FAIL("send_to a path too long succeeded");
        } catch (const std::system_error& e) {
            CHECK(e.code() == conet::error::address_too_long);
        }
        const std::array<conet::const_buffer, 1> one{conet::const_buffer("x")};
        co_await sender.send_to(one, too_long, ec);
        CHECK(ec == conet::error::address_too_long);
        sender.connect(too_long, ec);
        CHECK(ec == conet::error::address_too_long);
        CHECK_THROWS_AS(sender.connect(too_long), std::system_error);
        (void)conet::unix_datagram_socket::bind(
            conet::unix_address::abstract(std::string(conet::unix_address::max_length + 1, 'c')),
            ec);
        CHECK(ec == conet::error::address_too_long);
        // The longest that fits works, both ways.
        auto fits = conet::unix_datagram_socket::bind(longest);
        CHECK(fits.local_address().name() == longest);
        auto back = conet::unix_datagram_socket::bind(
            conet::unix_address::abstract(std::string(conet::unix_address::max_length, 'd')));
        co_await back.send_to(conet::const_buffer("fits"), longest);
        char buf[8];
        auto [size, from] = co_await fits.recv_from(buf);
        CHECK(std::string(buf, size) == "fits");
        CHECK(from == back.local_address());
        CHECK(from.name().size() == conet::unix_address::max_length);
    }());
    CHECK(!exists(longest));
}

TEST_CASE("a unix datagram peer that closes: connection_refused, then not_connected",
          "[unix][unix_datagram]") {
    temp_dir dir;
    const std::string path = dir.file("gone.sock");
    run_bounded([&]() -> conet::task<> {
        for (const conet::unix_address& where :
             {conet::unix_address(abstract_name("gone")), conet::unix_address(path)}) {
            INFO(where.to_string());
            auto receiver = conet::unix_datagram_socket::bind(where);
            auto sender = conet::unix_datagram_socket::open();
            sender.connect(where);
            co_await sender.send(conet::const_buffer("first"));
            receiver.close();
            std::error_code ec;
            const std::size_t n = co_await sender.send(conet::const_buffer("second"), ec);
            CHECK(ec == std::errc::connection_refused); // Linux: once, and it disconnects
            CHECK(n == 0);
            co_await sender.send(conet::const_buffer("third"), ec);
            CHECK(ec == std::errc::not_connected);
            // Unconnected, to an address nobody is bound to any more.
            co_await sender.send_to(conet::const_buffer("fourth"), where, ec);
            CHECK(ec == (where.is_abstract() ? std::errc::connection_refused
                                             : std::errc::no_such_file_or_directory));
            sender.connect(where, ec);
            CHECK(ec);
        }
        // A socketpair whose other end closed: sends are refused; a receive has no end of
        // stream to report (a datagram socket has none), it waits.
        auto [a, b] = conet::unix_datagram_socket::pair();
        b.close();
        std::error_code ec;
        co_await a.send(conet::const_buffer("anyone?"), ec);
        CHECK(ec == std::errc::connection_refused);
        char buf[8];
        co_await conet::with_timeout(a.recv(buf, ec), 20ms);
        CHECK(ec == std::errc::timed_out);
    }());
}

TEST_CASE("a waiting unix datagram recv is cancelled, and the socket goes on",
          "[unix][unix_datagram][cancel]") {
    run_bounded([]() -> conet::task<> {
        auto [a, b] = conet::unix_datagram_socket::pair();
        std::error_code seen;
        bool ended = false;
        auto waiting = [](conet::unix_datagram_socket& s, std::error_code& out,
                          bool& done) -> conet::task<> {
            char buf[16];
            (void)co_await s.recv_from(buf, out);
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
        // Nothing was lost or taken: what is sent now arrives.
        co_await a.send(conet::const_buffer("after"));
        char buf[8];
        const std::size_t n7 = co_await b.recv(buf);
        CHECK(n7 == 5);
        CHECK(std::string(buf, 5) == "after");
        // A waiting batch too.
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 4, 8);
        auto batch = [](conet::unix_datagram_socket& s, std::span<conet::unix_datagram_slot> sl,
                        std::error_code& out) -> conet::task<> {
            (void)co_await s.recv_batch(sl, out);
        };
        handle = group.spawn(batch(b, slots, seen));
        co_await conet::sleep_for(5ms);
        handle.cancel();
        co_await group.join();
        CHECK(seen == std::errc::operation_canceled);
        // A close by another task is not a cancellation.
        auto closer = [](conet::unix_datagram_socket& s) -> conet::task<> {
            co_await conet::sleep_for(5ms);
            s.close();
        };
        group.spawn(closer(b));
        std::error_code closed;
        (void)co_await b.recv(buf, closed);
        CHECK(closed == conet::error::closed);
        co_await group.join();
    }());
}

TEST_CASE("a unix datagram socket removes the socket file it made, and only that",
          "[unix][unix_datagram]") {
    temp_dir dir;
    const std::string path = dir.file("dgram.sock");
    run_bounded([&]() -> conet::task<> {
        {
            auto s = conet::unix_datagram_socket::bind(path);
            CHECK(exists(path));
            // Taken: a second bind fails and leaves the first's file.
            std::error_code ec;
            auto second = conet::unix_datagram_socket::bind(path, ec);
            CHECK(ec == std::errc::address_in_use);
            CHECK(!second.is_open());
            CHECK(exists(path));
            // Moved: only the socket moved into removes it, once.
            conet::unix_datagram_socket moved = std::move(s);
            s.close();
            CHECK(exists(path));
            // Adopted, a duplicate removes nothing.
            auto adopted = conet::unix_datagram_socket::adopt(::dup(moved.native_handle()));
            adopted.close();
            CHECK(exists(path));
            moved.close();
            CHECK(!exists(path));
        }
        {
            // Destruction removes it too.
            auto s = conet::unix_datagram_socket::bind(path);
            CHECK(exists(path));
        }
        CHECK(!exists(path));
        // Another program replaced the file: it is left alone.
        auto s = conet::unix_datagram_socket::bind(path);
        REQUIRE(::unlink(path.c_str()) == 0);
        auto replacement = conet::unix_datagram_socket::bind(path);
        s.close();
        CHECK(exists(path));
        // Move assignment removes the file of the socket it replaces.
        replacement = conet::unix_datagram_socket::autobind();
        CHECK(!exists(path));
        co_return;
    }());
}

TEST_CASE("unix_datagram_socket::adopt checks what it is given", "[unix][unix_datagram]") {
    run_bounded([]() -> conet::task<> {
        auto [left, right] = conet::unix_stream::pair();
        std::error_code ec;
        auto wrong = conet::unix_datagram_socket::adopt(left.native_handle(), ec);
        CHECK(ec == std::errc::wrong_protocol_type);
        CHECK(!wrong.is_open());
        CHECK(left.is_open()); // still the stream's
        auto udp = conet::udp_socket::open();
        (void)conet::unix_datagram_socket::adopt(udp.native_handle(), ec);
        CHECK(ec == std::errc::address_family_not_supported);
        // A datagram socket made elsewhere works, non-blocking.
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM, 0, fds) == 0);
        auto a = conet::unix_datagram_socket::adopt(fds[0]);
        auto b = conet::unix_datagram_socket::adopt(fds[1]);
        CHECK((::fcntl(a.native_handle(), F_GETFL) & O_NONBLOCK) != 0);
        char buf[4];
        co_await conet::with_timeout(a.recv(buf, ec), 10ms); // waits, does not block
        CHECK(ec == std::errc::timed_out);
        co_await b.send(conet::const_buffer("hey"));
        const std::size_t n8 = co_await a.recv(buf);
        CHECK(n8 == 3);
    }());
}

TEST_CASE("a unix datagram reader whose peer always has data lets a timer fire",
          "[unix][unix_datagram][fair]") {
    run_bounded([]() -> conet::task<> {
        auto [reader, writer] = conet::unix_datagram_socket::pair();
        // The writer floods from its own thread, blocking, until told to stop.
        const int fd = writer.native_handle();
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        timeval tv{0, 100'000};
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        std::atomic<bool> stop{false};
        std::thread flood([&] {
            static const char datagram[64] = {};
            const auto until = std::chrono::steady_clock::now() + 3s;
            while (!stop.load() && std::chrono::steady_clock::now() < until)
                ::send(fd, datagram, sizeof datagram, MSG_NOSIGNAL);
        });
        co_await conet::sleep_for(50ms); // a backlog builds up
        bool fired = false;
        auto timer = [](bool& flag) -> conet::task<> {
            co_await conet::sleep_for(10ms);
            flag = true;
        };
        const auto start = std::chrono::steady_clock::now();
        conet::reactor::current()->spawn(timer(fired));
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 8, 64);
        char one[64];
        bool batch = false; // (alternating: `fired` is set by the timer's task)
        while (!fired) {
            if (batch)
                co_await reader.recv_batch(slots);
            else
                co_await reader.recv(one);
            batch = !batch;
        }
        const auto late = std::chrono::steady_clock::now() - start;
        stop = true;
        flood.join();
        CHECK(fired);
        CHECK(late < 1s); // unfair, it would fire only once the flood gives up after 3 s
    }());
}

TEST_CASE("descriptors passed with unix datagrams, and none leaks when one is cut short",
          "[unix][unix_datagram]") {
    run_bounded([]() -> conet::task<> {
        auto [sender, receiver] = conet::unix_datagram_socket::pair();
        int pipe_fds[2];
        REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
        conet::owned_fd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
        conet::owned_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        const std::array<int, 2> fds{pipe_write.get(), null.get()};
        const std::size_t sent = co_await sender.send_fds(conet::const_buffer("two fds"), fds);
        CHECK(sent == 7);
        char buf[64];
        conet::received_fds got = co_await receiver.recv_fds(buf);
        CHECK(std::string(buf, got.size) == "two fds");
        REQUIRE(got.fds.size() == 2);
        // The pipe's write end, received: what is written through it comes out of ours.
        REQUIRE(::write(got.fds[0].get(), "via dgram", 9) == 9);
        char piped[9];
        REQUIRE(::read(pipe_read.get(), piped, 9) == 9);
        CHECK(std::string(piped, 9) == "via dgram");

        const auto before = open_descriptors();
        // More descriptors than room for: an error, and none left open.
        co_await sender.send_fds(conet::const_buffer("cut"), fds);
        std::error_code ec;
        got = co_await receiver.recv_fds(buf, 1, ec);
        CHECK(ec == conet::error::descriptors_truncated);
        CHECK(got.fds.empty());
        CHECK(std::string(buf, got.size) == "cut");
        CHECK(new_descriptors(before, open_descriptors()).empty());
        // A datagram larger than the buffer: datagram_truncated, its descriptors closed.
        co_await sender.send_fds(conet::const_buffer("0123456789"), fds);
        got = co_await receiver.recv_fds({buf, 4}, ec);
        CHECK(ec == conet::error::datagram_truncated);
        CHECK(got.size == 4);
        CHECK(got.fds.empty());
        CHECK(new_descriptors(before, open_descriptors()).empty());
        // Each receive takes one datagram, with its own descriptors only.
        co_await sender.send_fds(conet::const_buffer("a"), std::span<const int>(fds.data(), 1));
        co_await sender.send(conet::const_buffer("b"));
        got = co_await receiver.recv_fds(buf);
        CHECK(std::string(buf, got.size) == "a");
        CHECK(got.fds.size() == 1);
        got = co_await receiver.recv_fds(buf);
        CHECK(std::string(buf, got.size) == "b");
        CHECK(got.fds.empty());
    }());
}

TEST_CASE("a short unix datagram recv_fds does not make the next batch wait",
          "[unix][unix_datagram][readiness]") {
    // One datagram smaller than the buffer proves nothing about the queue behind it: a batch
    // after it must take the datagrams already queued, not wait for an edge that will not come.
    run_bounded([]() -> conet::task<> {
        auto [sender, receiver] = conet::unix_datagram_socket::pair();
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 8, 16);
        std::error_code ec;
        co_await conet::with_timeout(receiver.recv_batch(slots, ec), 10ms); // (registers it)
        CHECK(ec == std::errc::timed_out);
        co_await sender.send(conet::const_buffer("first"));
        co_await sender.send(conet::const_buffer("second"));
        co_await conet::sleep_for(10ms); // the loop takes the sends' edges: none is left
        char buf[64];
        conet::received_fds got = co_await receiver.recv_fds(buf);
        CHECK(std::string(buf, got.size) == "first");
        const std::size_t n = co_await conet::with_timeout(receiver.recv_batch(slots, ec), 2s);
        CHECK(!ec);
        REQUIRE(n == 1);
        CHECK(text(slots[0]) == "second");
    }());
}

TEST_CASE("a sender bound to a path of all 108 bytes, with no terminating NUL, is read whole",
          "[unix][unix_datagram]") {
    // Linux binds such a path and reports its address as longer than a sockaddr_un (111
    // bytes); reading the name up to that length read past the structure (ASan:
    // stack-buffer-overflow in recv_from, found by a review).
    temp_dir dir;
    sockaddr_un full{};
    const std::string prefix = dir.path() + "/";
    REQUIRE(prefix.size() < sizeof full.sun_path);
    const std::string leaf(sizeof full.sun_path - prefix.size(), 'n');
    const std::string path = dir.file(leaf);
    REQUIRE(path.size() == sizeof full.sun_path);
    full.sun_family = AF_UNIX;
    std::memcpy(full.sun_path, path.data(), path.size()); // no NUL after it
    const int raw = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(raw >= 0);
    const int bound = ::bind(raw, reinterpret_cast<const sockaddr*>(&full), sizeof full);
    REQUIRE(bound == 0);

    run_bounded([&]() -> conet::task<> {
        const conet::unix_address name = abstract_name("long-sender");
        auto receiver = conet::unix_datagram_socket::bind(name);
        sockaddr_un to{};
        socklen_t to_length = 0;
        // (the receiver's own address, as the kernel has it)
        to_length = sizeof to;
        REQUIRE(::getsockname(receiver.native_handle(), reinterpret_cast<sockaddr*>(&to),
                              &to_length) == 0);
        for (int i = 0; i < 2; ++i)
            REQUIRE(::sendto(raw, "hi", 2, 0, reinterpret_cast<const sockaddr*>(&to), to_length) ==
                    2);
        char buf[8];
        auto [size, from] = co_await receiver.recv_from(buf);
        CHECK(size == 2);
        CHECK(from.name() == path);
        std::vector<conet::unix_datagram_slot> slots(1);
        slots[0].buffer = conet::mutable_buffer(buf, sizeof buf);
        const std::size_t n = co_await receiver.recv_batch(slots);
        REQUIRE(n == 1);
        CHECK(slots[0].from.name() == path);
    }());
    ::close(raw);
}

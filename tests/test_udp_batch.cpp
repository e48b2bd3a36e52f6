// Tests for udp_socket's batches over loopback: recv_batch (recvmmsg) with each sender, size
// and truncation, send_batch (sendmmsg) whole and partial, one datagram from several buffers
// (sendmsg), cancellation, IPv6, and bad input.
#include <conet/reactor.hpp>
#include <conet/scheduling.hpp>
#include <conet/time.hpp>
#include <conet/udp.hpp>
#include <conet/when.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

namespace {

/// `count` slots of `size` bytes each, over `storage`.
std::vector<conet::datagram_slot> make_slots(std::vector<std::string>& storage, std::size_t count,
                                             std::size_t size) {
    storage.assign(count, std::string(size, '\0'));
    std::vector<conet::datagram_slot> slots(count);
    for (std::size_t i = 0; i < count; ++i)
        slots[i].buffer = conet::mutable_buffer(storage[i].data(), storage[i].size());
    return slots;
}

std::string text(const conet::datagram_slot& s) {
    return std::string(s.buffer.data(), s.size);
}

/// Lets loopback deliver what was just sent (it does so within the send, nearly always).
conet::task<> settle() {
    co_await conet::sleep_for(10ms);
}

} // namespace

TEST_CASE("recv_batch takes queued datagrams in one system call, each with its sender and size",
          "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto a = conet::udp_socket::bind(any_loopback_port());
        auto b = conet::udp_socket::bind(any_loopback_port());
        const auto to = receiver.local_endpoint();
        std::vector<std::string> sent;
        for (int i = 0; i < 10; ++i) {
            sent.push_back(std::string(static_cast<std::size_t>(i + 1), char('a' + i)));
            co_await (i % 2 ? b : a).send_to(sent.back(), to);
        }
        co_await settle();

        std::vector<std::string> storage;
        auto slots = make_slots(storage, 16, 64);
        const auto before = conet::reactor::current()->stats().syscalls;
        const std::size_t n = co_await receiver.recv_batch(slots);
        const auto calls = conet::reactor::current()->stats().syscalls - before;
        CHECK(calls == 1); // one recvmmsg for the whole batch
        REQUIRE(n == 10);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(text(slots[i]) == sent[i]);
            CHECK(slots[i].size == i + 1);
            CHECK_FALSE(slots[i].truncated);
            CHECK(slots[i].from == (i % 2 ? b : a).local_endpoint());
        }
        CHECK(slots[10].size == 0); // slots past the batch are left alone
    };
    run_bounded(body());
}

TEST_CASE("recv_batch with fewer slots than datagrams takes them in order over several calls",
          "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 8, 16);
        // Registered with the reactor first, so that what it knows of the socket's readiness
        // counts: a full batch proves nothing, and the next one must try, not wait.
        std::error_code ec;
        co_await conet::with_timeout(receiver.recv_batch(slots, ec), 10ms);
        CHECK(ec == std::errc::timed_out);
        for (int i = 0; i < 20; ++i)
            co_await sender.send_to(std::to_string(i), receiver.local_endpoint());
        co_await settle();

        std::vector<std::string> got;
        std::vector<std::size_t> batches;
        while (got.size() < 20) {
            const std::size_t n = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
            batches.push_back(n);
            for (std::size_t i = 0; i < n; ++i)
                got.push_back(text(slots[i]));
        }
        CHECK(batches == std::vector<std::size_t>{8, 8, 4});
        for (std::size_t i = 0; i < got.size(); ++i)
            CHECK(got[i] == std::to_string(i));

        // Drained now: the next batch waits for a datagram instead of yielding 0.
        const std::size_t none = co_await conet::with_timeout(receiver.recv_batch(slots, ec), 30ms);
        CHECK(ec == std::errc::timed_out);
        CHECK(none == 0);
    };
    run_bounded(body());
}

TEST_CASE("after a short batch, a datagram queued before the next one is still received",
          "[udp][batch]") {
    // A short batch proves the queue empty, so the next batch waits for an edge without
    // trying: the datagram sent in between makes that edge, and must not be missed.
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 4, 16);
        for (int round = 0; round < 50; ++round) {
            const std::string msg = "round " + std::to_string(round);
            co_await sender.send_to(msg, receiver.local_endpoint());
            if (round % 2) co_await settle();
            const std::size_t n = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
            REQUIRE(n == 1);
            CHECK(text(slots[0]) == msg);
        }
        // And one that arrives while the batch waits.
        std::size_t got = 0;
        auto waiter = conet::reactor::current()->spawn([](conet::udp_socket& s,
                                                          std::span<conet::datagram_slot> sl,
                                                          std::size_t& out) -> conet::task<> {
            out = co_await conet::with_timeout(s.recv_batch(sl), 2s);
        }(receiver, slots, got));
        co_await conet::sleep_for(5ms);
        co_await sender.send_to("late", receiver.local_endpoint());
        while (!waiter.done())
            co_await conet::yield();
        CHECK(got == 1);
        CHECK(text(slots[0]) == "late");
    };
    run_bounded(body());
}

TEST_CASE("after a short batch, the next recv_batch waits without a system call", "[udp][batch]") {
    // The short batch proved the queue empty: trying again would only meet EAGAIN.
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 4, 16);
        std::error_code ec;
        co_await conet::with_timeout(receiver.recv_batch(slots, ec), 10ms); // (registers it)
        CHECK(ec == std::errc::timed_out);
        co_await sender.send_to("one", receiver.local_endpoint());
        co_await settle();
        const std::size_t n = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
        CHECK(n == 1);

        const auto before = conet::reactor::current()->stats();
        co_await conet::with_timeout(receiver.recv_batch(slots, ec), 20ms);
        const auto after = conet::reactor::current()->stats();
        CHECK(ec == std::errc::timed_out);
        // Every system call of that wait was the loop's epoll_wait: no recvmmsg.
        CHECK(after.syscalls - before.syscalls == after.epoll_waits - before.epoll_waits);
    };
    run_bounded(body());
}

TEST_CASE("recv_batch flags a datagram larger than its slot and keeps the rest of the batch",
          "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        const auto to = receiver.local_endpoint();
        co_await sender.send_to("0123456789", to); // 10 bytes into 4
        co_await sender.send_to("ok", to);
        co_await sender.send_to("", to);  // empty, into an empty buffer: fits
        co_await sender.send_to("x", to); // into an empty buffer: truncated
        co_await settle();

        char small[4], big[16];
        std::array<conet::datagram_slot, 4> slots{};
        slots[0].buffer = small;
        slots[1].buffer = big;
        slots[2].buffer = conet::mutable_buffer(big + 8, 0);
        slots[3].buffer = conet::mutable_buffer(big + 8, 0);
        std::error_code ec;
        const std::size_t n = co_await receiver.recv_batch(slots, ec);
        CHECK_FALSE(ec);
        REQUIRE(n == 4);
        CHECK(slots[0].truncated);
        CHECK(text(slots[0]) == "0123");
        CHECK_FALSE(slots[1].truncated);
        CHECK(text(slots[1]) == "ok");
        CHECK_FALSE(slots[2].truncated);
        CHECK(slots[2].size == 0);
        CHECK(slots[3].truncated);
        CHECK(slots[3].size == 0);
        for (const auto& s : slots)
            CHECK(s.from.port() == sender.local_endpoint().port());
    };
    run_bounded(body());
}

TEST_CASE("send_batch sends every datagram to its own endpoint in one system call",
          "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto first = conet::udp_socket::bind(any_loopback_port());
        auto second = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::bind(any_loopback_port());
        constexpr std::size_t count = 64;
        std::vector<std::string> payloads;
        std::vector<conet::outgoing_datagram> out;
        for (std::size_t i = 0; i < count; ++i)
            payloads.push_back("datagram " + std::to_string(i));
        for (std::size_t i = 0; i < count; ++i)
            out.push_back({payloads[i], (i % 2 ? second : first).local_endpoint()});
        const auto before = conet::reactor::current()->stats().syscalls;
        const std::size_t n = co_await sender.send_batch(out);
        CHECK(conet::reactor::current()->stats().syscalls - before == 1);
        CHECK(n == count);
        co_await settle();

        std::vector<std::string> storage;
        auto slots = make_slots(storage, count, 64);
        for (auto* receiver : {&first, &second}) {
            const std::size_t got = co_await conet::with_timeout(receiver->recv_batch(slots), 2s);
            REQUIRE(got == count / 2);
            const std::size_t odd = receiver == &second ? 1 : 0;
            for (std::size_t i = 0; i < got; ++i) {
                CHECK(text(slots[i]) == payloads[2 * i + odd]);
                CHECK(slots[i].from == sender.local_endpoint());
            }
        }

        // Connected: each buffer one datagram to the peer.
        sender.connect(first.local_endpoint());
        const std::array<conet::const_buffer, 3> three{
            conet::const_buffer("one"), conet::const_buffer("two"), conet::const_buffer("three")};
        const std::size_t r1 = co_await sender.send_batch(three);
        CHECK(r1 == 3);
        co_await settle();
        const std::size_t got = co_await conet::with_timeout(first.recv_batch(slots), 2s);
        REQUIRE(got == 3);
        CHECK(text(slots[0]) == "one");
        CHECK(text(slots[1]) == "two");
        CHECK(text(slots[2]) == "three");
    };
    run_bounded(body());
}

TEST_CASE("send_batch stops at a datagram the kernel refuses and yields how many went",
          "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        const auto to = receiver.local_endpoint();
        const std::string too_big(70000, 'x'); // over UDP's 65,507 bytes
        const std::vector<conet::outgoing_datagram> batch{
            {"first", to}, {"second", to}, {too_big, to}, {"fourth", to}};
        const std::size_t n = co_await sender.send_batch(batch);
        CHECK(n == 2);

        // The rest again: now the refusal is the first of the batch, and is reported.
        const auto rest = std::span(batch).subspan(n);
        std::error_code ec;
        const std::size_t none = co_await sender.send_batch(rest, ec);
        CHECK(ec == std::errc::message_size);
        CHECK(none == 0);
        std::string what;
        try {
            co_await sender.send_batch(rest);
        } catch (const std::system_error& e) {
            what = e.what();
        }
        CHECK(what == "send_batch: Message too long");
        const std::size_t r2 = co_await sender.send_batch(rest.subspan(1));
        CHECK(r2 == 1);
        co_await settle();

        std::vector<std::string> storage;
        auto slots = make_slots(storage, 8, 16);
        const std::size_t got = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
        REQUIRE(got == 3);
        CHECK(text(slots[0]) == "first");
        CHECK(text(slots[1]) == "second");
        CHECK(text(slots[2]) == "fourth");
    };
    run_bounded(body());
}

TEST_CASE("a waiting recv_batch is cancelled and takes nothing", "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 4, 16);
        std::error_code seen;
        std::size_t yielded = 99;
        auto handle = conet::reactor::current()->spawn(
            [](conet::udp_socket& s, std::span<conet::datagram_slot> sl, std::error_code& ec,
               std::size_t& out) -> conet::task<> {
                out = co_await s.recv_batch(sl, ec);
            }(receiver, slots, seen, yielded));
        co_await conet::sleep_for(5ms); // it waits: nothing was sent
        CHECK_FALSE(handle.done());
        handle.cancel();
        while (!handle.done())
            co_await conet::yield();
        CHECK(seen == std::errc::operation_canceled);
        CHECK(yielded == 0);

        // The socket still works, and a datagram sent now is the next batch's.
        co_await sender.send_to("after", receiver.local_endpoint());
        const std::size_t n = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
        REQUIRE(n == 1);
        CHECK(text(slots[0]) == "after");
    };
    run_bounded(body());
}

TEST_CASE("batches over IPv6 loopback", "[udp][batch]") {
    auto body = []() -> conet::task<> {
        std::error_code ec;
        const conet::endpoint v6_loopback{conet::ip_address::loopback(conet::ip_family::v6), 0};
        auto receiver = conet::udp_socket::bind(v6_loopback, ec);
        if (ec) {
            CONET_REPORT_SKIP("no IPv6 loopback here: " << ec.message());
            co_return;
        }
        auto sender = conet::udp_socket::bind(v6_loopback);
        const auto to = receiver.local_endpoint();
        const std::vector<conet::outgoing_datagram> batch{{"v6 one", to}, {"v6 two", to}};
        const std::size_t r3 = co_await sender.send_batch(batch);
        CHECK(r3 == 2);
        // An IPv4 destination on an IPv6 socket is refused by the kernel, as the first.
        const std::vector<conet::outgoing_datagram> wrong{
            {"v4", {conet::ip_address::loopback(), 9}}};
        co_await sender.send_batch(wrong, ec);
        CHECK(ec);
        co_await settle();

        std::vector<std::string> storage;
        auto slots = make_slots(storage, 4, 16);
        const std::size_t n = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
        REQUIRE(n == 2);
        CHECK(text(slots[0]) == "v6 one");
        CHECK(text(slots[1]) == "v6 two");
        CHECK(slots[0].from.address().is_v6());
        CHECK(slots[1].from == sender.local_endpoint());
    };
    run_bounded(body());
}

TEST_CASE("bad batch input is a clear error, never a crash", "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        // Room for 300 queued datagrams of 1 byte (about 1 KiB each, as the kernel counts).
        receiver.set_option(conet::option::receive_buffer_size{1 << 20});
        auto sender = conet::udp_socket::open();
        const auto to = receiver.local_endpoint();

        std::error_code ec;
        std::span<conet::datagram_slot> no_slots;
        const std::size_t r4 = co_await receiver.recv_batch(no_slots, ec);
        CHECK(r4 == 0);
        CHECK(ec == std::errc::invalid_argument);
        std::string what;
        try {
            co_await receiver.recv_batch(no_slots);
        } catch (const std::system_error& e) {
            what = e.what();
        }
        CHECK(what == "recv_batch: Invalid argument");

        std::span<const conet::outgoing_datagram> nothing;
        const std::size_t r5 = co_await sender.send_batch(nothing, ec);
        CHECK(r5 == 0);
        CHECK(ec == std::errc::invalid_argument);
        std::span<const conet::const_buffer> no_buffers;
        const std::size_t r6 = co_await sender.send_batch(no_buffers, ec);
        CHECK(r6 == 0);
        CHECK(ec == std::errc::invalid_argument);

        // One datagram from more buffers than one sendmsg takes.
        std::vector<conet::const_buffer> pieces(1025, conet::const_buffer("p"));
        const std::size_t r7 = co_await sender.send_to(pieces, to, ec);
        CHECK(r7 == 0);
        CHECK(ec == std::errc::message_size);

        // More slots than one recvmmsg takes: 256 per call, the rest left for the next.
        std::vector<conet::outgoing_datagram> many(300, conet::outgoing_datagram{"m", to});
        std::size_t sent = 0;
        while (sent < many.size())
            sent += co_await sender.send_batch(std::span(many).subspan(sent));
        co_await settle();
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 400, 4);
        std::size_t first = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
        CHECK(first == 256);
        std::size_t second = co_await conet::with_timeout(receiver.recv_batch(slots), 2s);
        CHECK(second == 44);
    };
    run_bounded(body());
}

TEST_CASE("send_to and send of several buffers make one datagram", "[udp][batch]") {
    auto body = []() -> conet::task<> {
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::bind(any_loopback_port());
        const std::array<conet::const_buffer, 4> pieces{
            conet::const_buffer("head|"), conet::const_buffer(""), conet::const_buffer("body|"),
            conet::const_buffer("tail")};
        const std::size_t r8 = co_await sender.send_to(pieces, receiver.local_endpoint());
        CHECK(r8 == 14);
        const std::array<conet::const_buffer, 2> empties{conet::const_buffer(""),
                                                         conet::const_buffer("")};
        const std::size_t r9 = co_await sender.send_to(empties, receiver.local_endpoint());
        CHECK(r9 == 0);
        sender.connect(receiver.local_endpoint());
        const std::size_t r10 = co_await sender.send(std::span(pieces).first(2));
        CHECK(r10 == 5);

        char buf[32];
        auto [size, from] = co_await conet::with_timeout(receiver.recv_from(buf), 2s);
        CHECK(std::string(buf, size) == "head|body|tail");
        CHECK(from == sender.local_endpoint());
        auto [empty, from2] = co_await conet::with_timeout(receiver.recv_from(buf), 2s);
        CHECK(empty == 0); // an empty datagram, as send_to("") sends
        auto [last, from3] = co_await conet::with_timeout(receiver.recv_from(buf), 2s);
        CHECK(std::string(buf, last) == "head|");
        (void)from2;
        (void)from3;
    };
    run_bounded(body());
}

TEST_CASE("a waiting recv_batch on a connected socket reports a refusal, then waits again",
          "[udp][batch]") {
    auto body = []() -> conet::task<> {
        const refused_port dead(refused_port::protocol::udp);
        auto c = conet::udp_socket::open();
        c.connect(dead.endpoint());
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 4, 16);
        // The batch waits, known drained after its EAGAIN, when the ICMP error comes back:
        // the error's edge must end the wait.
        std::error_code recv_ec;
        std::size_t got = 99;
        auto receive = [&]() -> conet::task<> {
            got = co_await conet::with_timeout(c.recv_batch(slots, recv_ec), 2s);
        };
        auto send_later = [&]() -> conet::task<> {
            co_await conet::sleep_for(10ms);
            // One datagram: a second one in the same batch could meet the refusal itself (the
            // kernel reports a pending error to the next send or receive, whichever is first).
            const std::array<conet::const_buffer, 1> one{conet::const_buffer("anyone?")};
            co_await c.send_batch(one);
        };
        co_await conet::when_all(receive(), send_later());
        CHECK(recv_ec == std::errc::connection_refused);
        CHECK(got == 0);
        std::error_code ec;
        co_await conet::with_timeout(c.recv_batch(slots, ec), 30ms);
        CHECK(ec == std::errc::timed_out);
    };
    run_bounded(body());
}

TEST_CASE("each datagram of a batch takes an operation's share of the budget as send_to would",
          "[udp][batch][fair]") {
    // A batch loop beside a coroutine that only yields (so the batching one is not alone on
    // the loop, which would earn it more budgets): each batch that finds its resumption's
    // budget spent is deferred to the loop's next turn, and the reactor counts it.
    auto body = []() -> conet::task<> {
        auto& loop = *conet::reactor::current();
        loop.set_budget(16); // an operation costs 1 KiB of the 16 KiB budget
        bool done = false;
        auto yield_until_done = [&]() -> conet::task<> {
            while (!done)
                co_await conet::yield();
        };

        auto sink = conet::udp_socket::bind(any_loopback_port());
        auto sender = conet::udp_socket::open();
        sender.connect(sink.local_endpoint());
        const std::array<conet::const_buffer, 64> empty{}; // 64 datagrams of no byte
        auto send_batches = [&]() -> conet::task<> {
            for (int i = 0; i < 20; ++i) {
                const std::size_t sent = co_await sender.send_batch(empty);
                CHECK(sent == empty.size());
            }
            done = true;
        };
        auto before = loop.stats().deferred;
        co_await conet::when_all(yield_until_done(), send_batches());
        // 64 operations' worth each, over a whole budget: one batch a resumption, every
        // other deferred (all 20 in one resumption when a batch cost one operation).
        CHECK(loop.stats().deferred - before >= 19);

        // The same for recv_batch: 120 datagrams queued, taken 8 at a time, 8 operations'
        // worth each: two or three a resumption (all 15 in one before).
        auto receiver = conet::udp_socket::bind(any_loopback_port());
        auto from = conet::udp_socket::open();
        for (int i = 0; i < 120; ++i)
            co_await from.send_to(conet::const_buffer(), receiver.local_endpoint());
        co_await settle();
        std::vector<std::string> storage;
        auto slots = make_slots(storage, 8, 16);
        done = false;
        auto receive_batches = [&]() -> conet::task<> {
            for (std::size_t taken = 0; taken < 120;)
                taken += co_await receiver.recv_batch(slots);
            done = true;
        };
        before = loop.stats().deferred;
        co_await conet::when_all(yield_until_done(), receive_batches());
        CHECK(loop.stats().deferred - before >= 4);
    };
    run_bounded(body());
}

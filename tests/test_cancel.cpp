// Tests for cancellation (conet/cancel.hpp and design invariant 10): it is seen at every
// co_await, a close is not a cancellation, cleanup can still await, a cancelled transfer
// keeps its count, and a user's own awaitable can join a task's cancellation.
#include <conet/conet.hpp>

#include <chrono>
#include <coroutine>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

namespace {

// Records how an awaited operation ended: "ok", or the error's message.
template <class Op>
conet::task<std::string> outcome_of(Op op) {
    try {
        co_await op();
        co_return "ok";
    } catch (const std::system_error& e) {
        co_return e.code().message();
    }
}

// A connection task in the throwing style the README invites.
conet::task<> echo_connection(conet::tcp_stream conn, std::vector<conet::tcp_stream*>& registry) {
    registry.push_back(&conn);
    char buf[64];
    for (;;) {
        const auto n = co_await conn.recv(buf);
        if (n == 0) break;
        co_await conn.send_all({buf, n});
    }
}

} // namespace

TEST_CASE("a cancelled task sees it at every kind of co_await", "[cancel]") {
    auto body = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        co_await a.send_all("data waiting"); // b could read at once
        co_await conet::sleep_for(10ms);
        std::vector<std::string> seen;
        auto victim = [](std::vector<std::string>& out, conet::tcp_stream& s) -> conet::task<> {
            auto quick = []() -> conet::task<int> { co_return 1; };
            char buf[32];
            try {
                co_await conet::yield(); // cancelled while here
            } catch (const std::system_error& e) {
                out.push_back(e.what());
            }
            try {
                co_await s.recv(buf); // has data, but must not take it
            } catch (const std::system_error& e) {
                out.push_back(e.what());
            }
            try {
                co_await conet::sleep_until(conet::steady_clock::now() - 1s); // passed
            } catch (const std::system_error& e) {
                out.push_back(e.what());
            }
            try {
                co_await quick(); // would finish at once
            } catch (const std::system_error& e) {
                out.push_back(e.what());
            }
            try {
                co_await conet::when_any(quick(), quick());
            } catch (const std::system_error& e) {
                out.push_back(e.what());
            }
        };
        auto handle = conet::reactor::current()->spawn(victim(seen, b));
        co_await conet::yield(); // the victim now sits in its yield
        handle.cancel();
        while (!handle.done())
            co_await conet::yield();
        CHECK(seen == std::vector<std::string>{
                          "yield: Operation canceled", "recv: Operation canceled",
                          "sleep: Operation canceled", "co_await task: Operation canceled",
                          "co_await task: Operation canceled"});
        // None of it consumed the data.
        char buf[32];
        const auto n = co_await conet::with_timeout(b.recv(buf), 1s);
        CHECK(std::string(buf, n) == "data waiting");
    };
    run_bounded(body());
}

TEST_CASE("every non-throwing form reports cancellation without transferring", "[cancel]") {
    auto body = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        co_await a.send_all("abc");
        co_await conet::sleep_for(10ms);
        std::vector<std::error_code> codes;
        auto victim = [](std::vector<std::error_code>& out, conet::tcp_stream& s,
                         conet::tcp_stream& peer) -> conet::task<> {
            std::error_code ec;
            co_await conet::yield(ec); // cancelled while here
            out.push_back(ec);
            char buf[8];
            co_await s.recv(buf, ec);
            out.push_back(ec);
            co_await peer.send_all("more", ec);
            out.push_back(ec);
            co_await conet::yield(ec);
            out.push_back(ec);
            co_await conet::sleep_for(0ms, ec);
            out.push_back(ec);
        };
        auto handle = conet::reactor::current()->spawn(victim(codes, b, a));
        co_await conet::yield();
        handle.cancel();
        while (!handle.done())
            co_await conet::yield();
        REQUIRE(codes.size() == 5);
        for (const auto& ec : codes)
            CHECK(ec == std::errc::operation_canceled);
        char buf[8];
        const auto n = co_await conet::with_timeout(b.recv(buf), 1s);
        CHECK(std::string(buf, n) == "abc"); // and nothing was sent by the cancelled send
        std::error_code ec;
        co_await conet::with_timeout(b.recv(buf, ec), 50ms);
        CHECK(ec == std::errc::timed_out);
    };
    run_bounded(body());
}

TEST_CASE("a connection closed by another task is not a cancellation: the server goes on",
          "[cancel]") {
    auto body = []() -> conet::task<> {
        auto listener = conet::tcp_listener::bind(any_loopback_port());
        std::vector<conet::tcp_stream*> open;
        std::vector<std::string> errors;
        conet::task_group connections;
        connections.set_failure_handler([&errors](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::system_error& error) {
                errors.push_back(error.what());
            }
        });
        auto accept_loop = [](conet::tcp_listener& l, conet::task_group& g,
                              std::vector<conet::tcp_stream*>& registry) -> conet::task<> {
            for (int i = 0; i < 2; ++i) {
                auto [conn, peer] = co_await l.accept();
                g.spawn(echo_connection(std::move(conn), registry));
            }
        };
        conet::task_group acceptor;
        acceptor.spawn(accept_loop(listener, connections, open));
        auto first = co_await conet::tcp_stream::connect(listener.local_endpoint());
        co_await conet::sleep_for(20ms);
        REQUIRE(open.size() == 1);
        open[0]->close(); // a reaper closes the idle connection from another task
        co_await conet::sleep_for(20ms);
        REQUIRE(errors.size() == 1);
        CHECK(errors[0] == "recv: Closed (by another task) while the operation was waiting");
        // The accept loop and the server live on: a second client is served.
        auto second = co_await conet::tcp_stream::connect(listener.local_endpoint());
        co_await second.send_all("ping");
        char buf[4];
        co_await conet::with_timeout(second.recv_exact(buf), 2s);
        CHECK(std::string(buf, 4) == "ping");
        second.close();
        first.close();
        co_await conet::with_timeout(acceptor.join(), 2s);
        co_await conet::with_timeout(connections.join(), 2s);
        CHECK(errors.size() == 1);
    };
    run_bounded(body());
}

TEST_CASE("cleanup after cancellation can still send, through shield", "[cancel]") {
    auto body = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        auto goodbye = [](conet::tcp_stream& s) -> conet::task<> {
            co_await conet::sleep_for(1ms);
            co_await conet::with_timeout(s.send_all("goodbye\n"), 1s);
        };
        auto worker = [&goodbye](conet::tcp_stream& s) -> conet::task<> {
            std::error_code ec;
            co_await conet::sleep_for(1h, ec);
            REQUIRE(ec == std::errc::operation_canceled);
            // Cancelled: without a shield, this send fails at once.
            co_await s.send_all("unshielded\n", ec);
            CHECK(ec == std::errc::operation_canceled);
            co_await conet::shield(goodbye(s));
        };
        auto handle = conet::reactor::current()->spawn(worker(a));
        co_await conet::yield();
        handle.cancel();
        conet::line_reader lines{b};
        const auto line = co_await conet::with_timeout(lines.read_line(), 2s);
        REQUIRE(line);
        CHECK(*line == "goodbye");
        while (!handle.done())
            co_await conet::yield();
    };
    run_bounded(body());
}

TEST_CASE("a cancelled throwing send_all says how many bytes went out", "[cancel]") {
    auto body = []() -> conet::task<> {
        auto [a, b] = co_await connected_pair();
        const std::string big(32 * 1024 * 1024, 'z'); // far more than the socket buffers
        std::size_t reported = 0;
        bool caught = false;
        auto sender = [](conet::tcp_stream& s, const std::string& data, std::size_t& out,
                         bool& got) -> conet::task<> {
            try {
                co_await s.send_all(data);
            } catch (const conet::transfer_error& e) {
                got = e.code() == std::errc::operation_canceled;
                out = e.transferred();
            }
        };
        auto handle = conet::reactor::current()->spawn(sender(a, big, reported, caught));
        co_await conet::sleep_for(30ms); // it fills the buffers and waits
        handle.cancel();
        while (!handle.done())
            co_await conet::yield();
        CHECK(caught);
        CHECK(reported > 0);
        CHECK(reported < big.size());
        // The peer receives exactly that many bytes, then nothing more.
        a.shutdown();
        std::string received;
        char buf[64 * 1024];
        for (;;) {
            const auto n = co_await conet::with_timeout(b.recv(buf), 2s);
            if (n == 0) break;
            received.append(buf, n);
        }
        CHECK(received.size() == reported);
    };
    run_bounded(body());
}

namespace {

// A user's own awaitable: waits until `release()` or cancellation, through cancel_callback.
class gate {
public:
    class awaiter;
    inline void release();
    inline awaiter wait();

private:
    bool open_ = false;
    awaiter* waiting_ = nullptr;
};

class gate::awaiter {
public:
    explicit awaiter(gate& g) : gate_(g) {}
    bool await_ready() const noexcept { return gate_.open_; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        conet::cancel_token token = conet::get_cancel_token(h);
        if (token.cancel_requested()) {
            cancelled_ = true;
            return false;
        }
        handle_ = h;
        gate_.waiting_ = this;
        on_cancel_.emplace(token, [this] {
            cancelled_ = true;
            gate_.waiting_ = nullptr;
            wake_.resume_urgently(handle_); // unwinds before the loop's next event
        });
        return true;
    }
    void await_resume() {
        on_cancel_.reset();
        if (cancelled_)
            throw std::system_error(std::make_error_code(std::errc::operation_canceled), "gate");
    }

private:
    friend class gate;
    gate& gate_;
    std::coroutine_handle<> handle_;
    conet::resumption wake_;
    std::optional<conet::cancel_callback<std::function<void()>>> on_cancel_;
    bool cancelled_ = false;
};

void gate::release() {
    open_ = true;
    if (awaiter* w = std::exchange(waiting_, nullptr)) w->wake_.resume_later(w->handle_);
}

gate::awaiter gate::wait() {
    return awaiter(*this);
}

} // namespace

TEST_CASE("a user's awaitable joins cancellation with cancel_callback", "[cancel]") {
    auto body = []() -> conet::task<> {
        gate never;
        auto outcome = co_await outcome_of([&]() -> conet::task<> {
            co_await conet::with_timeout([](gate& g) -> conet::task<> { co_await g.wait(); }(never),
                                         20ms);
        });
        CHECK(outcome == std::make_error_code(std::errc::timed_out).message());

        gate opened;
        auto waiter = [](gate& g) -> conet::task<int> {
            co_await g.wait();
            co_return 5;
        };
        conet::task_group group;
        int result = 0;
        group.spawn([](gate& g, int& out, auto wait) -> conet::task<> {
            out = co_await wait(g);
        }(opened, result, waiter));
        co_await conet::yield();
        opened.release();
        co_await conet::with_timeout(group.join(), 1s);
        CHECK(result == 5);

        auto token = co_await conet::current_cancel_token();
        CHECK(token.can_be_cancelled());
        CHECK_FALSE(token.cancel_requested());
    };
    run_bounded(body());
}

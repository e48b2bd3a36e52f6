// Every row of the README's reference table, exercised. The file only has to compile (it is
// built, never run): a row naming a call that conet does not have breaks the build. Each
// block starts with a "// row: " line holding the row's first cell as the README writes it;
// doc_snippets checks that every row of the table has its line here and every line here is
// still a row of the table, so neither side can drift alone. The second table, what each
// awaited call yields, has "// yields: " lines: static_asserts that `co_await` on the call
// yields exactly the type the README names, in both forms.
#include <conet/channel.hpp>
#include <conet/conet.hpp>
#include <conet/event.hpp>
#include <conet/handoff.hpp>
#include <conet/mutex.hpp>
#include <conet/owned_fd.hpp>
#include <conet/reactor_pool.hpp>
#include <conet/semaphore.hpp>
#include <conet/shared_channel.hpp>
#include <conet/unix.hpp>
#include <conet/unix_address.hpp>
#include <conet/unix_datagram.hpp>
#include <conet/watched_fd.hpp>

#include <unistd.h>

#include <array>
#include <chrono>
#include <coroutine>
#include <csignal>
#include <cstddef>
#include <exception>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace readme_reference {

using namespace std::chrono_literals;

// row: `task<T>`
conet::task<int> value() {
    co_return 42;
}
conet::task<int&> reference(int& x) {
    co_return x;
}
conet::task<> nothing() {
    int x = co_await value();
    int& y = co_await reference(x);
    ++y;
}

// row: `resumption`, `resume_urgently(h)`
struct my_awaitable {
    conet::resumption wake;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { wake.resume_urgently(h); }
    void await_resume() const noexcept {}
};

void loop() {
    // row: `reactor`
    conet::reactor r;
    // row: `reactor::run(task)`
    const int v = r.run(value());
    // row: `reactor::spawn(task)`
    conet::task_handle h = r.spawn(nothing());
    // row: `reactor::run()`
    r.run();
    // row: `reactor::stop()`, `post(fn)`
    r.post([v] { std::cout << v; });
    r.stop();
    // row: `reactor::work_guard{r}`
    conet::reactor::work_guard guard{r};
    guard.reset();
    // row: `reactor::set_budget(n)`
    r.set_budget(64);
    // row: `reactor::stats()`
    const conet::reactor_stats stats = r.stats();
    (void)stats.syscalls;
    // row: `reactor::current()`
    const conet::reactor* current = conet::reactor::current();
    // row: `reactor_pool{n, policy}`, `run(make_task)`, `stop()`, `stop_on(signals)`
    conet::reactor_pool pool{2, conet::failure_policy::report};
    pool.stop_on({SIGINT, SIGTERM});
    pool.run([](std::size_t) -> conet::task<> { co_return; });
    pool.stop();
    // row: `spawn_on(reactor, task)`, `resume_on(reactor)`
    conet::spawn_on(pool[1], nothing());
    // row: `task_handle::cancel()`, `done()`
    h.cancel();
    const bool done = h.done();
    std::cout << current << done;
}

conet::task<> groups() {
    // row: `task_group`, `spawn(task)`
    conet::task_group group;
    conet::task_handle h = group.spawn(nothing());
    // row: `task_group::cancel()`, `set_failure_handler(fn)`
    group.set_failure_handler([](std::exception_ptr) {});
    group.cancel();
    // row: `task_group::join()`
    co_await group.join();
    // row: `failure_policy::report`, `cancel_all`
    conet::task_group strict(conet::failure_policy::cancel_all);
    conet::task_group lenient(conet::failure_policy::report);
    // row: `shield(task)`
    co_await conet::shield(nothing());
    // row: `cancel_token`, `cancel_callback`, `get_cancel_token(h)`, `current_cancel_token()`
    conet::cancel_token token = co_await conet::current_cancel_token();
    conet::cancel_callback on_cancel(token, [] { std::cout << "cancelled"; });
    const bool requested = token.cancel_requested();
    const conet::cancel_token none = conet::get_cancel_token(std::coroutine_handle<>{});
    std::cout << h.done() << requested << none.can_be_cancelled();
}

conet::task<> yielding() {
    // row: `yield()`
    co_await conet::yield();
}

void addresses() {
    // row: `ip_address`
    conet::ip_address a = conet::ip_address::parse("127.0.0.1");
    std::optional<conet::ip_address> b = conet::ip_address::try_parse("::1");
    a = conet::ip_address::v4({127, 0, 0, 1});
    a = conet::ip_address::v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
    a = conet::ip_address::any();
    a = conet::ip_address::loopback(conet::ip_family::v6);
    std::span<const std::uint8_t> bytes = a.bytes();
    std::cout << a.to_string() << b.has_value() << bytes.size();
    // row: `endpoint`
    conet::endpoint e = conet::endpoint::parse("127.0.0.1:80");
    e = conet::endpoint::parse("[::1]:80");
    std::optional<conet::endpoint> f = conet::endpoint::try_parse("x");
    std::cout << e.to_string() << e << f.has_value();
    // row: `resolve(host, port)`, `resolve("host:port")`
    std::vector<conet::endpoint> found = conet::resolve("localhost", 80);
    found = conet::resolve("localhost:80");
    // row: `resolve(host, service, family)`, `resolve_family`
    found = conet::resolve("localhost", "http", conet::resolve_family::v4);
    // row: `service_port(name, protocol)`
    const std::uint16_t mysql = conet::service_port("mysql", "tcp");
    // row: `host_name()`
    const std::string name = conet::host_name();
    // row: `host_name(address)`
    const std::string local = conet::host_name(conet::ip_address::loopback());
    // row: `ip_address::unmapped()`, `is_v4_mapped()`, `endpoint::unmapped()`
    const bool mapped = a.is_v4_mapped();
    a = a.unmapped();
    e = e.unmapped();
    // row: `to_network_order()`, `from_network_order(n)`, `to_host_order()`, `from_host_order(n)`
    std::uint32_t s_addr = a.to_network_order();
    a = conet::ip_address::from_network_order(s_addr);
    s_addr = a.to_host_order();
    a = conet::ip_address::from_host_order(s_addr);
    // row: `host_to_network(n)`, `network_to_host(n)`
    const std::uint16_t port = conet::network_to_host(conet::host_to_network(std::uint16_t{80}));
    std::cout << found.size() << name << mysql << local << mapped << port;
}

conet::task<> names() {
    // row: `async_resolve(host, service, family)`
    std::vector<conet::endpoint> found = co_await conet::async_resolve("localhost", "http");
    std::error_code ec;
    found = co_await conet::with_timeout(
        conet::async_resolve("localhost", "80", conet::resolve_family::any, ec), 1s);
    // row: `connect(host, service, family)`
    conet::tcp_stream conn = co_await conet::connect("localhost", "8888");
    conn = co_await conet::connect("localhost", "http", conet::resolve_family::v6, ec);
}

conet::task<> tcp(conet::unix_stream& local) {
    // row: `tcp_listener::bind(endpoint, backlog)`
    auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"), 16);
    // row: `tcp_listener::bind(endpoint, listen_options)`
    auto shared = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:0"),
                                            {.reuse_port = true, .backlog = 64});
    // row: `tcp_listener::adopt(fd)`, `udp_socket::adopt(fd)`
    auto adopted = conet::tcp_listener::adopt(::dup(shared.native_handle()));
    // row: `set_option(o)`, `get_option<O>()`
    listener.set_option(conet::option::receive_buffer_size{1 << 16});
    const bool reuse = listener.get_option<conet::option::reuse_port>().value;
    std::cout << reuse;
    // row: `tcp_stream::connect(endpoint)`
    conet::tcp_stream client = co_await conet::tcp_stream::connect(listener.local_endpoint());
    // row: `tcp_listener::accept()`
    auto [conn, peer] = co_await listener.accept();
    char buf[64];
    // row: `tcp_stream::recv(buf)`
    std::size_t n = co_await conn.recv(buf);
    n = co_await local.recv(buf);
    // row: `tcp_stream::recv_exact(buf)`
    n = co_await conn.recv_exact(buf);
    n = co_await local.recv_exact(buf);
    // row: `tcp_stream::recv(pool)`, `buffer_pool`, `pooled_buffer`
    conet::buffer_pool pool(4096);
    conet::pooled_buffer data = co_await conn.recv(pool);
    n = data.size();
    data = co_await local.recv(pool);
    // row: `wait_readable()`, `wait_writable()`
    co_await conn.wait_readable();
    co_await conn.wait_writable();
    co_await local.wait_readable();
    // row: `watched_fd{fd}`, `wait_readable()`, `wait_writable()`
    conet::watched_fd watched{conn.native_handle()}; // as if another library owned it
    co_await watched.wait_writable();
    co_await watched.wait_readable();
    // row: `tcp_stream::send(buf)`, `send_all(buf)`
    n = co_await client.send(buf);
    n = co_await client.send_all(std::string("text"));
    n = co_await local.send(buf);
    n = co_await local.send_all(std::string("text"));
    // row: `send(bufs)`, `send_all(bufs)`
    {
        const std::string header = "HEAD", body = "body";
        const conet::const_buffer parts[] = {header, body};
        n = co_await client.send_all(parts);
        n = co_await local.send(parts);
    }
    // row: `send_file(file, offset, count)`
    n = co_await client.send_file(0, 0, 0);
    n = co_await local.send_file(0, 0, 0);
    // row: `recv(bufs)`
    {
        char header[8], body[64];
        const conet::mutable_buffer parts[] = {header, body};
        n = co_await client.recv(parts);
        n = co_await local.recv(parts);
    }
    // row: `leave_reactor()`
    conn.leave_reactor();
    local.leave_reactor();
    co_await conet::resume_on(*conet::reactor::current());
    // row: `tcp_stream::shutdown(how)`, `close()`
    client.shutdown(conet::shutdown_type::send);
    client.close();
    local.shutdown(conet::shutdown_type::both);
    local.close();
    // row: `tcp_stream::set_nodelay(bool)`
    conn.set_nodelay(true);
    // row: `local_endpoint()`, `peer_endpoint()`
    conet::endpoint where = listener.local_endpoint();
    where = conn.local_endpoint();
    where = conn.peer_endpoint();
    auto datagrams = conet::udp_socket::bind(where);
    datagrams.connect(peer);
    where = datagrams.local_endpoint();
    where = datagrams.peer_endpoint();
    std::cout << n << where;
}

conet::task<> unix_sockets() {
    // row: `unix_address`
    conet::unix_address path = "/run/app.sock";
    const conet::unix_address abstract = "@app";
    path = conet::unix_address::path("@not-abstract");
    path = conet::unix_address::abstract("app");
    const conet::unix_address unnamed;
    const bool kinds = abstract.is_abstract() && unnamed.is_unnamed();
    std::cout << path.name() << abstract.to_string() << kinds << conet::unix_address::max_length;
    // row: `unix_listener::bind(address, backlog)`
    auto listener = conet::unix_listener::bind("@readme", 16);
    auto at_path = conet::unix_listener::bind(conet::unix_address::path("/tmp/readme.sock"));
    // row: `unix_listener::adopt(fd)`, `unix_stream::adopt(fd)`
    auto adopted = conet::unix_listener::adopt(::dup(at_path.native_handle()));
    // row: `unix_stream::connect(address)`
    conet::unix_stream client = co_await conet::unix_stream::connect("@readme");
    // row: `unix_listener::accept()`
    auto [conn, peer] = co_await listener.accept();
    // row: `unix_stream::pair()`
    auto [left, right] = conet::unix_stream::pair();
    conet::unix_stream stream = conet::unix_stream::adopt(::dup(left.native_handle()));
    // row: `local_address()`, `peer_address()`
    conet::unix_address where = listener.local_address();
    where = conn.local_address();
    where = conn.peer_address();
    // row: `unix_stream::peer_credentials()`
    const conet::credentials who = conn.peer_credentials();
    std::cout << who.pid << who.uid << who.gid;
    // row: `unix_stream::send_fds(buf, fds)`
    const int fds[] = {0, 1};
    std::size_t n = co_await client.send_fds("x", fds);
    // row: `unix_stream::recv_fds(buf, max_fds)`, `received_fds`
    char buf[64];
    conet::received_fds got = co_await conn.recv_fds(buf, 4);
    got = co_await conn.recv_fds(buf);
    n = got.size;
    // row: `owned_fd`
    conet::owned_fd fd = std::move(got.fds.front());
    conet::unix_stream passed = conet::unix_stream::adopt(fd.release());
    fd.reset(::dup(0));
    std::cout << n << where.to_string() << fd.get() << static_cast<bool>(fd) << peer.name();
}

conet::task<> sync() {
    // row: `channel<T>{capacity}`, `send(v)`, `recv()`
    conet::channel<std::string> lines{16};
    co_await lines.send(std::string("hi"));
    const std::string copied = "copied";
    co_await lines.send(copied);
    while (std::optional<std::string> line = co_await lines.recv())
        std::cout << *line;
    // row: `channel::try_send(v)`, `try_recv()`, `close()`
    const bool queued = lines.try_send(std::string("hi"));
    std::optional<std::string> now = lines.try_recv();
    lines.close();
    const std::error_code closed = conet::error::channel_closed;
    // row: `shared_channel<T>{capacity}`
    conet::shared_channel<int> jobs{64};
    co_await jobs.send(1);
    std::optional<int> job = co_await jobs.recv();
    const bool shared_queued = jobs.try_send(2);
    job = jobs.try_recv();
    jobs.close();
    // row: `event`, `set()`, `reset()`, `wait()`
    conet::event ready;
    ready.set();
    co_await ready.wait();
    ready.reset();
    // row: `mutex`, `lock()`, `try_lock()`
    conet::mutex m;
    {
        conet::mutex::guard lock = co_await m.lock();
        lock.unlock();
        const conet::mutex::guard maybe = m.try_lock();
        std::cout << maybe.owns_lock();
    }
    // row: `semaphore{n}`, `acquire()`, `release(n)`
    conet::semaphore slots{4};
    co_await slots.acquire();
    slots.release();
    const bool taken = slots.try_acquire();
    slots.release(2);
    std::cout << queued << now.has_value() << closed << shared_queued << job.has_value() << taken;
}

conet::task<> udp() {
    // row: `udp_socket::open(family)`, `bind(endpoint)`
    auto a = conet::udp_socket::open(conet::ip_family::v4);
    auto b = conet::udp_socket::bind(conet::endpoint::parse("127.0.0.1:0"));
    char buf[64];
    // row: `udp_socket::bind(endpoint, udp_options)`
    auto c = conet::udp_socket::bind(conet::endpoint::parse("127.0.0.1:0"),
                                     {.reuse_address = true, .broadcast = true});
    auto d2 = conet::udp_socket::adopt(::dup(c.native_handle()));
    // row: `udp_socket::send_to(buf, endpoint)`
    std::size_t n = co_await a.send_to("hi", b.local_endpoint());
    // row: `udp_socket::recv_from(buf)`
    conet::datagram d = co_await b.recv_from(buf);
    auto [size, from] = d;
    // row: `udp_socket::connect`, `send`, `recv`, `set_broadcast`
    b.connect(from);
    n = co_await b.send(buf);
    n = co_await b.recv(buf);
    b.set_broadcast(true);
    // row: `udp_socket::recv_batch(slots)`, `datagram_slot`
    std::array<conet::datagram_slot, 2> slots{};
    slots[0].buffer = buf;
    std::size_t got = co_await a.recv_batch(slots);
    std::cout << slots[0].size << slots[0].from << slots[0].truncated;
    // row: `udp_socket::send_batch(datagrams)`, `outgoing_datagram`
    const std::vector<conet::outgoing_datagram> out{{"one", from}, {"two", from}};
    std::size_t went = co_await a.send_batch(out);
    const std::array<conet::const_buffer, 2> pieces{conet::const_buffer("head"),
                                                    conet::const_buffer("body")};
    went += co_await b.send_batch(pieces);
    // row: `udp_socket::send_to(bufs, endpoint)`, `send(bufs)`
    n = co_await a.send_to(pieces, from);
    n = co_await b.send(pieces);
    std::cout << n << size << got << went;
}

conet::task<> unix_datagrams() {
    // row: `unix_datagram_socket::bind(address)`, `autobind()`, `open()`
    auto server = conet::unix_datagram_socket::bind("@readme-dgram");
    auto at_path = conet::unix_datagram_socket::bind("/tmp/readme-dgram.sock");
    auto client = conet::unix_datagram_socket::autobind();
    auto anonymous = conet::unix_datagram_socket::open();
    // row: `unix_datagram_socket::pair()`, `connect(address)`, `adopt(fd)`
    auto [left, right] = conet::unix_datagram_socket::pair();
    anonymous.connect("@readme-dgram");
    auto adopted = conet::unix_datagram_socket::adopt(::dup(left.native_handle()));
    conet::unix_address where = client.local_address();
    where = anonymous.peer_address();
    // row: `unix_datagram_socket::send_to(buf, address)`, `recv_from(buf)`, `send`, `recv`
    char buf[64];
    std::size_t n = co_await client.send_to("hi", "@readme-dgram");
    conet::unix_datagram d = co_await server.recv_from(buf);
    auto [size, from] = d;
    n = co_await anonymous.send(buf);
    n = co_await right.recv(buf);
    // row: `unix_datagram_socket::recv_batch(slots)`, `send_batch(datagrams)`
    std::array<conet::unix_datagram_slot, 2> slots{};
    slots[0].buffer = buf;
    std::size_t got = co_await server.recv_batch(slots);
    std::cout << slots[0].size << slots[0].from.to_string() << slots[0].truncated;
    const std::vector<conet::outgoing_unix_datagram> out{{"one", from}, {"two", "@elsewhere"}};
    std::size_t went = co_await server.send_batch(out);
    const std::array<conet::const_buffer, 2> pieces{conet::const_buffer("head"),
                                                    conet::const_buffer("body")};
    went += co_await left.send_batch(pieces);
    n = co_await client.send_to(pieces, "@readme-dgram");
    n = co_await left.send(pieces);
    // row: `unix_datagram_socket::send_fds(buf, fds)`, `recv_fds(buf, max_fds)`
    const int fds[] = {0};
    n += co_await left.send_fds("x", fds);
    conet::received_fds passed = co_await right.recv_fds(buf, 1);
    passed = co_await right.recv_fds(buf);
    std::cout << n << size << got << went << where.to_string();
}

conet::task<> lines(conet::tcp_stream& stream) {
    // row: `line_reader{stream, max}`
    conet::line_reader reader{stream, 1024};
    // row: `line_reader::read_line()`
    std::optional<std::string> line = co_await reader.read_line();
    // row: `line_reader::read_line(std::string&)`
    std::string into;
    const bool got = co_await reader.read_line(into);
    std::cout << line.has_value() << got;
}

conet::task<> timers(conet::tcp_stream& stream) {
    // row: `sleep_for(d)`, `sleep_until(t)`
    co_await conet::sleep_for(10ms);
    co_await conet::sleep_until(std::chrono::steady_clock::now() + 10ms);
    // row: `with_timeout(op, d)`
    char buf[16];
    std::size_t n = co_await conet::with_timeout(stream.recv(buf), 1s);
    n += static_cast<std::size_t>(co_await conet::with_timeout(value(), 1s));
    conet::task_group group;
    co_await conet::with_timeout(group.join(), 1s);
    std::cout << n;
}

conet::task<> concurrency() {
    // row: `when_all(tasks...)`
    auto [x, y] = co_await conet::when_all(value(), value());
    // row: `when_any(tasks...)`
    auto first = co_await conet::when_any(value(), nothing());
    // row: `when_any_settled(tasks...)`
    auto every = co_await conet::when_any_settled(value(), nothing());
    std::cout << x << y << first.index() << every.winner << std::get<0>(every.values).has_value();
}

conet::task<> events() {
    // row: `signal_set{SIGINT, ...}`, `wait()`
    conet::signal_set signals{SIGINT, SIGTERM};
    const int which = co_await signals.wait();
    // row: `standard_input`, `read_some(buf)`
    conet::standard_input input;
    char buf[16];
    const std::size_t n = co_await input.read_some(buf);
    std::cout << which << n;
}

void values() {
    // row: `mutable_buffer`, `const_buffer`
    char buf[8] = {};
    const conet::mutable_buffer into = buf;
    const conet::const_buffer from = "text";
    // row: `error`, `error_category()`
    std::error_code ec = conet::error::address_too_long;
    ec = conet::error::descriptors_truncated;
    ec = conet::error::line_too_long;
    const bool ours = ec.category() == conet::error_category();
    // row: `transfer_error::transferred()`
    const conet::transfer_error failure(ec, "send_all", 3);
    const std::size_t moved = failure.transferred();
    // row: `CONET_VERSION_STRING`
    const char* version = CONET_VERSION_STRING;
    std::cout << into.size() << from.size() << ours << moved << version;
}

// What `co_await` on an awaitable of type A yields: a task's value, or the awaiter's
// await_resume() (every conet awaitable but task is an awaiter).
template <class A>
struct awaited {
    using type = decltype(std::declval<A&>().await_resume());
};
template <class T>
struct awaited<conet::task<T>> {
    using type = T;
};
template <class A>
using awaited_t = typename awaited<std::remove_cvref_t<A>>::type;

// The expression, awaited, yields exactly T (nothing is run: decltype only).
#define YIELDS(T, ...) static_assert(std::is_same_v<awaited_t<decltype(__VA_ARGS__)>, T>)

void yields(conet::tcp_listener& listener, conet::tcp_stream& conn, conet::udp_socket& udp,
            conet::line_reader& lines, conet::standard_input& input, conet::buffer_pool& pool,
            conet::signal_set& signals, conet::task_group& group, conet::reactor& other,
            conet::unix_listener& unix_listener, conet::unix_stream& local,
            conet::unix_datagram_socket& unix_dgram, conet::channel<std::string>& channel,
            conet::shared_channel<std::string>& shared, conet::event& event, conet::mutex& mutex,
            conet::semaphore& semaphore) {
    char buf[16];
    std::string line;
    std::error_code ec;
    const conet::endpoint to;
    const conet::unix_address address;
    const int fds[] = {0};
    // yields: `listener.accept()`
    YIELDS(conet::accepted, listener.accept());
    YIELDS(conet::accepted, listener.accept(ec));
    // yields: `tcp_stream::connect(endpoint)`
    YIELDS(conet::tcp_stream, conet::tcp_stream::connect(to));
    YIELDS(conet::tcp_stream, conet::tcp_stream::connect(to, ec));
    // yields: `unix_listener::accept()`
    YIELDS(conet::unix_accepted, unix_listener.accept());
    YIELDS(conet::unix_accepted, unix_listener.accept(ec));
    // yields: `unix_stream::connect(address)`
    YIELDS(conet::unix_stream, conet::unix_stream::connect(address));
    YIELDS(conet::unix_stream, conet::unix_stream::connect(address, ec));
    // yields: `connect(host, service)`
    YIELDS(conet::tcp_stream, conet::connect("localhost", "http"));
    YIELDS(conet::tcp_stream, conet::connect("localhost", "http", conet::resolve_family::any, ec));
    // yields: `conn.recv(buf)`, `input.read_some(buf)`
    YIELDS(std::size_t, conn.recv(buf));
    YIELDS(std::size_t, conn.recv(buf, ec));
    YIELDS(std::size_t, local.recv(buf));
    YIELDS(std::size_t, local.recv(buf, ec));
    YIELDS(std::size_t, input.read_some(buf));
    YIELDS(std::size_t, input.read_some(buf, ec));
    // yields: `conn.recv_exact(buf)`
    YIELDS(std::size_t, conn.recv_exact(buf));
    YIELDS(std::size_t, conn.recv_exact(buf, ec));
    YIELDS(std::size_t, local.recv_exact(buf));
    YIELDS(std::size_t, local.recv_exact(buf, ec));
    // yields: `conn.recv(pool)`
    YIELDS(conet::pooled_buffer, conn.recv(pool));
    YIELDS(conet::pooled_buffer, conn.recv(pool, ec));
    YIELDS(conet::pooled_buffer, local.recv(pool));
    YIELDS(conet::pooled_buffer, local.recv(pool, ec));
    // yields: `conn.send(buf)`, `conn.send_all(buf)`
    YIELDS(std::size_t, conn.send(buf));
    YIELDS(std::size_t, conn.send(buf, ec));
    YIELDS(std::size_t, conn.send_all(buf));
    YIELDS(std::size_t, conn.send_all(buf, ec));
    YIELDS(std::size_t, local.send(buf));
    YIELDS(std::size_t, local.send_all(buf, ec));
    // yields: `conn.send_fds(buf, fds)`
    YIELDS(std::size_t, local.send_fds(buf, fds));
    YIELDS(std::size_t, local.send_fds(buf, fds, ec));
    // yields: `conn.recv_fds(buf, max_fds)`
    YIELDS(conet::received_fds, local.recv_fds(buf));
    YIELDS(conet::received_fds, local.recv_fds(buf, ec));
    YIELDS(conet::received_fds, local.recv_fds(buf, 4));
    YIELDS(conet::received_fds, local.recv_fds(buf, 4, ec));
    // yields: `wait_readable()`, `wait_writable()`
    YIELDS(void, conn.wait_readable());
    YIELDS(void, conn.wait_writable(ec));
    YIELDS(void, udp.wait_readable(ec));
    YIELDS(void, local.wait_writable());
    // yields: `udp.send_to(buf, to)`, `udp.send(buf)`, `udp.send_to(bufs, to)`, `udp.send(bufs)`
    YIELDS(std::size_t, udp.send_to(buf, to));
    YIELDS(std::size_t, udp.send_to(buf, to, ec));
    YIELDS(std::size_t, udp.send(buf));
    YIELDS(std::size_t, udp.send(buf, ec));
    // yields: `udp.recv_from(buf)`
    YIELDS(conet::datagram, udp.recv_from(buf));
    YIELDS(conet::datagram, udp.recv_from(buf, ec));
    // yields: `udp.recv(buf)`
    YIELDS(std::size_t, udp.recv(buf));
    YIELDS(std::size_t, udp.recv(buf, ec));
    std::array<conet::datagram_slot, 4> slots{};
    std::array<conet::outgoing_datagram, 2> datagrams{};
    std::array<conet::const_buffer, 2> pieces{};
    YIELDS(std::size_t, udp.send_to(pieces, to));
    YIELDS(std::size_t, udp.send_to(pieces, to, ec));
    YIELDS(std::size_t, udp.send(pieces));
    YIELDS(std::size_t, udp.send(pieces, ec));
    // yields: `udp.recv_batch(slots)`
    YIELDS(std::size_t, udp.recv_batch(slots));
    YIELDS(std::size_t, udp.recv_batch(slots, ec));
    // yields: `udp.send_batch(datagrams)`
    YIELDS(std::size_t, udp.send_batch(datagrams));
    YIELDS(std::size_t, udp.send_batch(datagrams, ec));
    YIELDS(std::size_t, udp.send_batch(pieces));
    YIELDS(std::size_t, udp.send_batch(pieces, ec));
    // yields: `unix_dgram.recv_from(buf)`
    YIELDS(conet::unix_datagram, unix_dgram.recv_from(buf));
    YIELDS(conet::unix_datagram, unix_dgram.recv_from(buf, ec));
    // yields: `unix_dgram.send_to(buf, to)`, `send`, `recv`, `recv_batch`, `send_batch`
    std::array<conet::unix_datagram_slot, 4> unix_slots{};
    std::array<conet::outgoing_unix_datagram, 2> unix_datagrams{};
    YIELDS(std::size_t, unix_dgram.send_to(buf, address));
    YIELDS(std::size_t, unix_dgram.send_to(buf, address, ec));
    YIELDS(std::size_t, unix_dgram.send_to(pieces, address));
    YIELDS(std::size_t, unix_dgram.send_to(pieces, address, ec));
    YIELDS(std::size_t, unix_dgram.send(buf));
    YIELDS(std::size_t, unix_dgram.send(pieces, ec));
    YIELDS(std::size_t, unix_dgram.recv(buf));
    YIELDS(std::size_t, unix_dgram.recv(buf, ec));
    YIELDS(std::size_t, unix_dgram.recv_batch(unix_slots));
    YIELDS(std::size_t, unix_dgram.recv_batch(unix_slots, ec));
    YIELDS(std::size_t, unix_dgram.send_batch(unix_datagrams));
    YIELDS(std::size_t, unix_dgram.send_batch(pieces, ec));
    // yields: `lines.read_line()`
    YIELDS(std::optional<std::string>, lines.read_line());
    YIELDS(std::optional<std::string>, lines.read_line(ec));
    // yields: `lines.read_line(line)`
    YIELDS(bool, lines.read_line(line));
    YIELDS(bool, lines.read_line(line, ec));
    // yields: `sleep_for(d)`, `sleep_until(t)`
    YIELDS(void, conet::sleep_for(1s));
    YIELDS(void, conet::sleep_for(1s, ec));
    YIELDS(void, conet::sleep_until(conet::steady_clock::now()));
    YIELDS(void, conet::sleep_until(conet::steady_clock::now(), ec));
    // yields: `with_timeout(operation, d)`
    YIELDS(std::size_t, conet::with_timeout(conn.recv(buf), 1s));
    YIELDS(std::size_t, conet::with_timeout(conn.send_all(buf, ec), 1s));
    YIELDS(std::optional<std::string>, conet::with_timeout(lines.read_line(ec), 1s));
    // yields: `with_timeout(task, d)`
    YIELDS(int, conet::with_timeout(value(), 1s));
    YIELDS(void, conet::with_timeout(group.join(), 1s));
    // yields: `when_all(a, b, ...)`
    using all_yield = std::tuple<int, std::monostate>;
    YIELDS(all_yield, conet::when_all(value(), nothing()));
    // yields: `when_any(a, b, ...)`
    using any_yields = std::variant<int, std::monostate>;
    YIELDS(any_yields, conet::when_any(value(), nothing()));
    // yields: `when_any_settled(a, b, ...)`
    using settled_yields = conet::settled<int, void>;
    YIELDS(settled_yields, conet::when_any_settled(value(), nothing()));
    // yields: `group.join()`
    YIELDS(void, group.join());
    // yields: `async_resolve(host, service)`
    YIELDS(std::vector<conet::endpoint>, conet::async_resolve("localhost", "http"));
    YIELDS(std::vector<conet::endpoint>,
           conet::async_resolve("localhost", "http", conet::resolve_family::any, ec));
    // yields: `signals.wait()`
    YIELDS(int, signals.wait());
    YIELDS(int, signals.wait(ec));
    // yields: `yield()`, `resume_on(reactor)`
    YIELDS(void, conet::yield());
    YIELDS(void, conet::resume_on(other));
    // yields: `shield(task)`, `current_cancel_token()`
    YIELDS(int, conet::shield(value()));
    YIELDS(conet::cancel_token, conet::current_cancel_token());
    // yields: `channel.send(v)`
    YIELDS(void, channel.send(std::move(line)));
    YIELDS(void, channel.send(line, ec));
    YIELDS(void, shared.send(std::move(line)));
    YIELDS(void, shared.send(std::move(line), ec));
    // yields: `channel.recv()`
    YIELDS(std::optional<std::string>, channel.recv());
    YIELDS(std::optional<std::string>, channel.recv(ec));
    YIELDS(std::optional<std::string>, shared.recv());
    YIELDS(std::optional<std::string>, shared.recv(ec));
    // yields: `event.wait()`, `semaphore.acquire()`
    YIELDS(void, event.wait());
    YIELDS(void, event.wait(ec));
    YIELDS(void, semaphore.acquire());
    YIELDS(void, semaphore.acquire(ec));
    // yields: `mutex.lock()`
    YIELDS(conet::mutex::guard, mutex.lock());
    YIELDS(conet::mutex::guard, mutex.lock(ec));
}

} // namespace readme_reference

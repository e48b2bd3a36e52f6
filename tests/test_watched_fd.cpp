// Tests for conet/watched_fd.hpp: waiting on the reactor for descriptors another library owns
// and reads itself (pipes here, and a TCP socket driven with plain syscalls, as libpq would).
#include <conet/conet.hpp>
#include <conet/watched_fd.hpp>

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support.hpp"

using namespace conet_test;

namespace {

// A pipe whose ends close with the scope.
struct pipe_ends {
    int read_end = -1;
    int write_end = -1;
    pipe_ends() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
        read_end = fds[0];
        write_end = fds[1];
    }
    ~pipe_ends() {
        if (read_end >= 0) ::close(read_end);
        if (write_end >= 0) ::close(write_end);
    }
    pipe_ends(const pipe_ends&) = delete;
    pipe_ends& operator=(const pipe_ends&) = delete;
};

// Writes `text` to `fd` after `delay`, recording that it did.
conet::task<> write_later(int fd, std::string text, std::chrono::milliseconds delay, bool& done) {
    co_await conet::sleep_for(delay);
    done = true;
    CHECK(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
}

bool is_open_fd(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

} // namespace

TEST_CASE("a watched pipe is waited for, and its descriptor stays the caller's", "[watched_fd]") {
    pipe_ends p;
    auto body = [](pipe_ends& p) -> conet::task<std::string> {
        bool written = false;
        conet::reactor::current()->spawn(write_later(p.write_end, "hello", 30ms, written));
        std::string got;
        {
            conet::watched_fd watched{p.read_end};
            co_await watched.wait_readable();
            CHECK(written); // it waited for the data
            char buf[16];
            const auto n = ::read(p.read_end, buf, sizeof buf);
            REQUIRE(n > 0);
            got.assign(buf, static_cast<std::size_t>(n));
        }
        co_return got;
    };
    CHECK(run_bounded(body(p)) == "hello");
    CHECK(is_open_fd(p.read_end)); // conet closed its duplicate only
    CHECK(::write(p.write_end, "x", 1) == 1);
    char c = 0;
    CHECK(::read(p.read_end, &c, 1) == 1);
    CHECK(c == 'x');
}

TEST_CASE("data left unread ends the next wait at once: level-triggered", "[watched_fd]") {
    // A library that reads less than is queued (libpq reads at most its buffer) gets no new
    // edge for the rest: a wait that trusted edges alone would hang here.
    pipe_ends p;
    REQUIRE(::write(p.write_end, "abc", 3) == 3);
    auto body = [](pipe_ends& p) -> conet::task<std::string> {
        conet::watched_fd watched{p.read_end};
        std::string got;
        for (int i = 0; i < 3; ++i) {
            std::error_code ec;
            co_await conet::with_timeout(watched.wait_readable(ec), 2s);
            REQUIRE_FALSE(ec);
            char c;
            REQUIRE(::read(p.read_end, &c, 1) == 1); // one byte at a time
            got += c;
        }
        // Drained now: the next wait waits.
        std::error_code ec;
        co_await conet::with_timeout(watched.wait_readable(ec), 50ms);
        CHECK(ec == std::errc::timed_out);
        co_return got;
    };
    CHECK(run_bounded(body(p)) == "abc");
}

TEST_CASE("a drained watched descriptor waits for new data, time and again", "[watched_fd]") {
    pipe_ends p;
    auto body = [](pipe_ends& p) -> conet::task<int> {
        conet::watched_fd watched{p.read_end};
        int rounds = 0;
        for (int i = 0; i < 20; ++i) {
            bool written = false;
            conet::reactor::current()->spawn(write_later(p.write_end, "ping", 2ms, written));
            co_await watched.wait_readable();
            CHECK(written);
            char buf[8];
            while (::read(p.read_end, buf, sizeof buf) > 0) {
            } // the library reads until EAGAIN this time
            ++rounds;
        }
        co_return rounds;
    };
    CHECK(run_bounded(body(p)) == 20);
}

TEST_CASE("wait_writable on a full pipe ends once the reader makes room", "[watched_fd]") {
    pipe_ends p;
    std::size_t queued = 0;
    char block[4096] = {};
    for (;;) {
        const auto n = ::write(p.write_end, block, sizeof block);
        if (n < 0) break;
        queued += static_cast<std::size_t>(n);
    }
    REQUIRE(errno == EAGAIN);
    auto body = [](pipe_ends& p, std::size_t queued) -> conet::task<std::size_t> {
        bool drained = false;
        auto reader = [](int fd, std::size_t queued, bool& drained) -> conet::task<> {
            co_await conet::sleep_for(30ms);
            drained = true;
            std::vector<char> buf(queued);
            CHECK(::read(fd, buf.data(), buf.size()) > 0);
        };
        conet::reactor::current()->spawn(reader(p.read_end, queued, drained));
        conet::watched_fd watched{p.write_end};
        co_await watched.wait_writable();
        CHECK(drained); // it waited for room
        co_return static_cast<std::size_t>(::write(p.write_end, "y", 1));
    };
    CHECK(run_bounded(body(p, queued)) == 1);
}

TEST_CASE("a hang-up ends a read wait", "[watched_fd]") {
    pipe_ends p;
    auto body = [](pipe_ends& p) -> conet::task<ssize_t> {
        auto closer = [](int& fd) -> conet::task<> {
            co_await conet::sleep_for(20ms);
            ::close(fd);
            fd = -1;
        };
        conet::reactor::current()->spawn(closer(p.write_end));
        conet::watched_fd watched{p.read_end};
        co_await watched.wait_readable();
        char c;
        co_return ::read(p.read_end, &c, 1);
    };
    CHECK(run_bounded(body(p)) == 0); // end of file
}

TEST_CASE("watching a bad descriptor is a clear error", "[watched_fd]") {
    CHECK_THROWS_AS(conet::watched_fd(-1), std::system_error);
    pipe_ends p;
    const int gone = ::dup(p.read_end);
    REQUIRE(gone >= 0);
    ::close(gone);
    std::error_code ec;
    conet::watched_fd w(gone, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    CHECK_FALSE(w.is_open());
    auto wait_on_nothing = [](conet::watched_fd& w) -> conet::task<std::error_code> {
        std::error_code failed;
        co_await w.wait_readable(failed);
        co_return failed;
    };
    conet::watched_fd nothing;
    CHECK(run_bounded(wait_on_nothing(nothing)) == std::errc::bad_file_descriptor);
    try {
        conet::watched_fd thrown(gone);
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::bad_file_descriptor);
        CHECK(std::string(e.what()).find("watched_fd") != std::string::npos);
    }
}

TEST_CASE("a watched wait: one per direction, cancellable, ended by close", "[watched_fd]") {
    pipe_ends p;
    auto body = [](pipe_ends& p) -> conet::task<> {
        conet::watched_fd watched{p.read_end};
        std::error_code first;
        std::error_code second;
        auto waiting = [](conet::watched_fd& w, std::error_code& ec) -> conet::task<> {
            co_await w.wait_readable(ec);
        };
        auto h = conet::reactor::current()->spawn(waiting(watched, first));
        co_await conet::yield(); // the first now waits
        co_await watched.wait_readable(second);
        CHECK(second == conet::error::already_waiting);
        h.cancel();
        co_await conet::yield();
        CHECK(first == std::errc::operation_canceled);

        auto closer = [](conet::watched_fd& w) -> conet::task<> {
            co_await conet::sleep_for(10ms);
            w.close();
        };
        conet::reactor::current()->spawn(closer(watched));
        std::error_code closed;
        co_await watched.wait_readable(closed);
        CHECK(closed == conet::error::closed);
    };
    run_bounded(body(p));
    CHECK(is_open_fd(p.read_end));
}

TEST_CASE("a TCP socket driven with plain syscalls, as a client library would", "[watched_fd]") {
    auto body = []() -> conet::task<std::string> {
        auto listener = conet::tcp_listener::bind(any_loopback_port());
        auto server = [](conet::tcp_listener& l) -> conet::task<> {
            auto [conn, peer] = co_await l.accept();
            char buf[64];
            const std::size_t n = co_await conn.recv(conet::mutable_buffer(buf, sizeof buf));
            co_await conet::sleep_for(20ms); // the client waits for the answer meanwhile
            co_await conn.send_all(conet::const_buffer(buf, n));
        };
        conet::reactor::current()->spawn(server(listener));

        // The "library": its own non-blocking socket, its own connect, send and recv.
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        const conet::detail::sockaddr_any to(listener.local_endpoint());
        const int r = ::connect(fd, to.get(), to.length);
        REQUIRE((r == 0 || errno == EINPROGRESS));
        std::string got;
        {
            conet::watched_fd watched{fd};
            co_await watched.wait_writable(); // the connection is made
            int err = -1;
            socklen_t len = sizeof err;
            REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
            REQUIRE(err == 0);
            REQUIRE(::send(fd, "query", 5, MSG_NOSIGNAL) == 5);
            while (got.size() < 5) {
                co_await watched.wait_readable();
                char buf[64];
                const auto n = ::recv(fd, buf, sizeof buf, 0);
                if (n < 0 && errno == EAGAIN) continue; // spurious: wait again
                REQUIRE(n > 0);
                got.append(buf, static_cast<std::size_t>(n));
            }
        }
        ::close(fd);
        co_return got;
    };
    CHECK(run_bounded(body()) == "query");
}

TEST_CASE("a watched_fd outlives the reactor it waited on, and waits on the next", "[watched_fd]") {
    pipe_ends p;
    conet::watched_fd watched{p.read_end};
    auto waits = [](conet::watched_fd& w) -> conet::task<> { co_await w.wait_readable(); };
    auto one_turn = []() -> conet::task<> { co_await conet::yield(); };
    {
        conet::reactor r;
        r.spawn(waits(watched));
        run_bounded(r, one_turn()); // the spawned wait is now pending
    } // the reactor destroys the waiting frame and detaches the descriptor
    CHECK(watched.is_open());
    REQUIRE(::write(p.write_end, "z", 1) == 1);
    conet::reactor next;
    run_bounded(next, waits(watched));
    char c = 0;
    CHECK(::read(p.read_end, &c, 1) == 1);
    CHECK(c == 'z');
}

TEST_CASE("a library that replaced its descriptor: the next wait says so", "[watched_fd]") {
    // A client library that reconnects closes its socket and opens another, which usually
    // gets the same number. conet's duplicate still refers to the old file: waiting on it
    // would miss the new one's data for ever.
    pipe_ends old_file;
    pipe_ends new_file;
    const int number = ::dup(old_file.read_end); // the library's descriptor
    REQUIRE(number >= 0);
    auto body = [](int number, pipe_ends& old_file, pipe_ends& new_file) -> conet::task<> {
        conet::watched_fd watched{number};
        REQUIRE(::write(old_file.write_end, "a", 1) == 1);
        co_await watched.wait_readable();
        char c;
        REQUIRE(::read(number, &c, 1) == 1);

        // The reconnection: the same number now names the new pipe, which has data.
        REQUIRE(::dup2(new_file.read_end, number) == number);
        REQUIRE(::write(new_file.write_end, "b", 1) == 1);
        std::error_code ec;
        co_await conet::with_timeout(watched.wait_readable(ec), 500ms);
        CHECK(ec == conet::error::descriptor_replaced);
        CHECK(ec.message().find("watch") != std::string::npos);

        watched = conet::watched_fd{number}; // what the caller does about it
        co_await conet::with_timeout(watched.wait_readable(ec), 500ms);
        CHECK_FALSE(ec);
        CHECK(::read(number, &c, 1) == 1);
        CHECK(c == 'b');
    };
    run_bounded(body(number, old_file, new_file));
    ::close(number);
}

TEST_CASE("a library that closed its descriptor: the next wait says so", "[watched_fd]") {
    pipe_ends p;
    auto body = [](pipe_ends& p) -> conet::task<std::error_code> {
        const int number = ::dup(p.read_end);
        REQUIRE(number >= 0);
        conet::watched_fd watched{number};
        ::close(number); // and nothing took the number since
        std::error_code ec;
        co_await conet::with_timeout(watched.wait_readable(ec), 500ms);
        co_return ec;
    };
    CHECK(run_bounded(body(p)) == conet::error::descriptor_replaced);
}

TEST_CASE("conet's duplicate never takes standard input, output or error", "[watched_fd]") {
    // Else, with standard input closed (a daemon), the duplicate would become descriptor 0,
    // and whatever the program then reads from "standard input" would come from the library's
    // connection.
    pipe_ends p;
    const int saved = ::fcntl(0, F_DUPFD_CLOEXEC, 3);
    REQUIRE(saved >= 0);
    ::close(0);
    bool zero_free = false;
    {
        conet::watched_fd watched{p.read_end};
        zero_free = ::fcntl(0, F_GETFD) == -1;
    }
    REQUIRE(::dup2(saved, 0) == 0);
    ::close(saved);
    CHECK(zero_free);
}

TEST_CASE("where kcmp is refused, the files are told apart by their inodes", "[watched_fd]") {
    // Container profiles often refuse kcmp (EPERM): check the fallback in a child process
    // that refuses it to itself.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        sock_filter rules[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_kcmp, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        sock_fprog program{static_cast<unsigned short>(std::size(rules)), rules};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
            ::_exit(10);
        const pid_t self = ::getpid();
        if (::syscall(SYS_kcmp, self, self, KCMP_FILE, 0, 0) != -1 || errno != EPERM)
            ::_exit(11); // the filter did not take
        int a[2];
        int b[2];
        if (::pipe(a) != 0 || ::pipe(b) != 0) ::_exit(12);
        const int copy = ::dup(a[0]);
        int failures = 0;
        errno = 4242;
        failures += !conet::detail::same_open_file(copy, a[0]);
        failures += errno != 4242; // the refused kcmp's EPERM does not leak out
        failures += conet::detail::same_open_file(b[0], a[0]);
        ::dup2(b[0], copy); // replaced
        failures += conet::detail::same_open_file(copy, a[0]);
        ::close(copy); // closed
        failures += conet::detail::same_open_file(copy, a[0]);
        ::_exit(failures);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a thread with a descriptor table of its own watches its own descriptors",
          "[watched_fd]") {
    // After unshare(CLONE_FILES) the thread's numbers are not the process's: the check must
    // look in the calling thread's table (a sandboxed worker, or a main thread that exited).
    std::error_code outcome = conet::error::closed; // overwritten by the wait
    bool unshared = false;
    std::thread worker([&] {
        unshared = ::unshare(CLONE_FILES) == 0;
        if (!unshared) return;
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
        auto body = [](int read_end, int write_end, std::error_code& out) -> conet::task<> {
            conet::watched_fd watched{read_end};
            if (::write(write_end, "x", 1) != 1) co_return;
            co_await conet::with_timeout(watched.wait_readable(out), 2s);
        };
        try {
            run_bounded(body(fds[0], fds[1], outcome));
        } catch (const std::exception&) { // (Catch2's assertions are for the main thread)
            outcome = std::make_error_code(std::errc::timed_out);
        }
        ::close(fds[0]);
        ::close(fds[1]);
    });
    worker.join();
    REQUIRE(unshared);
    CHECK_FALSE(outcome);
}

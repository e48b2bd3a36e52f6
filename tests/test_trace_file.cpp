// CONET_TRACE=FILE: the loop's trace as a Trace Event Format file (detail/trace_file.hpp),
// read back by a small JSON parser of its own, and drawn by docs/trace_to_svg.py.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "child_process.hpp"
#include "conet/conet.hpp"
#include "conet/reactor_pool.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using namespace conet_test;

namespace {

// Just enough JSON: objects, arrays, strings (escapes kept as they are), numbers, literals.
struct json {
    enum kind_t { null, boolean, number, string, array, object } kind = null;
    double num = 0;
    std::string str;
    std::vector<json> items;
    std::map<std::string, json> members;

    const json* get(const std::string& key) const {
        auto it = members.find(key);
        return it == members.end() ? nullptr : &it->second;
    }
    std::string text(const std::string& key) const {
        const json* j = get(key);
        return j && j->kind == string ? j->str : std::string();
    }
};

class parser {
public:
    explicit parser(const std::string& s) : s_(s) {}

    // The whole text as one value; throws std::runtime_error where it is not JSON.
    json document() {
        json j = value();
        space();
        if (at_ != s_.size()) fail("text after the value");
        return j;
    }

private:
    [[noreturn]] void fail(const char* what) {
        throw std::runtime_error(std::string("not JSON: ") + what + " at offset " +
                                 std::to_string(at_));
    }
    void space() {
        while (at_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[at_])))
            ++at_;
    }
    char peek() {
        space();
        if (at_ >= s_.size()) fail("unexpected end");
        return s_[at_];
    }
    void expect(char c) {
        if (peek() != c) fail("unexpected character");
        ++at_;
    }
    json value() {
        const char c = peek();
        json j;
        if (c == '{') {
            j.kind = json::object;
            ++at_;
            if (peek() == '}') {
                ++at_;
                return j;
            }
            for (;;) {
                json key = value();
                if (key.kind != json::string) fail("a key that is not a string");
                expect(':');
                j.members[key.str] = value();
                if (peek() == ',') {
                    ++at_;
                    continue;
                }
                expect('}');
                return j;
            }
        }
        if (c == '[') {
            j.kind = json::array;
            ++at_;
            if (peek() == ']') {
                ++at_;
                return j;
            }
            for (;;) {
                j.items.push_back(value());
                if (peek() == ',') {
                    ++at_;
                    continue;
                }
                expect(']');
                return j;
            }
        }
        if (c == '"') {
            j.kind = json::string;
            for (++at_;; ++at_) {
                if (at_ >= s_.size()) fail("an unterminated string");
                const char d = s_[at_];
                if (static_cast<unsigned char>(d) < 0x20) fail("a control character in a string");
                if (d == '"') break;
                if (d == '\\') j.str += s_[at_++];
                if (at_ >= s_.size()) fail("an unterminated string");
                j.str += s_[at_];
            }
            ++at_;
            return j;
        }
        for (const char* literal : {"true", "false", "null"})
            if (s_.compare(at_, std::strlen(literal), literal) == 0) {
                at_ += std::strlen(literal);
                j.kind = literal[0] == 'n' ? json::null : json::boolean;
                return j;
            }
        const std::size_t begin = at_;
        if (s_[at_] == '-') ++at_;
        while (at_ < s_.size() &&
               (std::isdigit(static_cast<unsigned char>(s_[at_])) || s_[at_] == '.' ||
                s_[at_] == 'e' || s_[at_] == 'E' || s_[at_] == '+' || s_[at_] == '-'))
            ++at_;
        if (at_ == begin) fail("an unknown value");
        j.kind = json::number;
        j.num = std::stod(s_.substr(begin, at_ - begin));
        return j;
    }

    const std::string& s_;
    std::size_t at_ = 0;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream all;
    all << in.rdbuf();
    return all.str();
}

// A directory of its own under /tmp, removed with what it holds.
struct temp_dir {
    std::string path;
    temp_dir() {
        char name[] = "/tmp/conet_trace_file_XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~temp_dir() { [[maybe_unused]] int r = std::system(("rm -rf '" + path + "'").c_str()); }
};

// Sets CONET_TRACE while a reactor is made (it reads it once, then).
struct trace_env {
    explicit trace_env(const std::string& value) { ::setenv("CONET_TRACE", value.c_str(), 1); }
    ~trace_env() { ::unsetenv("CONET_TRACE"); }
};

// What a trace file says, checked as the issue asks: it parses; each coroutine's slices
// open and close in turn; its timestamps never go backwards; each wait ends (wake-up, timer,
// timeout, cancellation or close), unless the program was killed while it waited
// (`killed`). Returns the events.
std::vector<json> check_trace(const std::string& text, bool killed = false) {
    INFO(text.substr(0, 4000));
    const json doc = parser(text).document();
    REQUIRE(doc.kind == json::object);
    const json* events = doc.get("traceEvents");
    REQUIRE(events);
    REQUIRE(events->kind == json::array);
    struct row_state {
        bool open = false;
        double last_ts = 0;
        int waiting = 0;
    };
    std::map<std::string, row_state> rows;
    for (const json& e : events->items) {
        REQUIRE(e.kind == json::object);
        const std::string ph = e.text("ph");
        REQUIRE(!ph.empty());
        if (e.text("cat") != "coroutine") continue;
        const std::string id = e.text("id");
        REQUIRE(!id.empty());
        const json* ts = e.get("ts");
        REQUIRE(ts);
        row_state& row = rows[id];
        INFO("row " << id << " at " << ts->num);
        CHECK(ts->num >= row.last_ts);
        row.last_ts = ts->num;
        if (ph == "b") {
            CHECK(!row.open);
            row.open = true;
        } else if (ph == "e") {
            CHECK(row.open);
            row.open = false;
        } else if (ph == "n") {
            const json* args = e.get("args");
            REQUIRE(args);
            const std::string kind = args->text("event");
            if (kind == "wait") {
                CHECK(row.waiting == 0); // a coroutine waits for one thing at a time
                ++row.waiting;
            } else if (kind == "wake" || kind == "timer" || kind == "timeout" || kind == "cancel" ||
                       kind == "close") {
                row.waiting = 0;
            }
        } else {
            FAIL("an unexpected phase " << ph);
        }
    }
    for (const auto& [id, row] : rows) {
        INFO("row " << id);
        CHECK(!row.open);
        if (!killed) CHECK(row.waiting == 0);
    }
    return events->items;
}

std::size_t count_events(const std::vector<json>& events, const std::string& ph,
                         const std::string& kind) {
    std::size_t n = 0;
    for (const json& e : events) {
        if (e.text("ph") != ph) continue;
        const json* args = e.get("args");
        if (kind.empty() || (args && args->text("event") == kind)) ++n;
    }
    return n;
}

// The scripted exchange: a wait for data that comes (wake-up), a sleep (timer), a wait
// cancelled by when_any, a wait that times out, and a wait ended by a close.
conet::task<> scripted_exchange() {
    auto pair = co_await connected_pair(); // (named: Clang 14 lambdas cannot capture bindings)
    auto& client = pair.client;
    auto& server = pair.server;
    auto reader = [&]() -> conet::task<> {
        char buf[16];
        co_await server.recv(buf);
    };
    auto sender = [&]() -> conet::task<> {
        co_await conet::sleep_for(5ms);
        co_await client.send_all(conet::const_buffer("x"));
    };
    co_await conet::when_all(reader(), sender());
    auto waits_in_vain = [&]() -> conet::task<> {
        char buf[16];
        co_await server.recv(buf); // nothing comes: the timer wins, this is cancelled
    };
    co_await conet::when_any(waits_in_vain(), conet::detail::sleep_task(5ms));
    char buf[16];
    std::error_code ec;
    co_await conet::with_timeout(server.recv(buf, ec), 5ms);
    CHECK(ec == std::errc::timed_out);
}

} // namespace

TEST_CASE("CONET_TRACE=FILE writes the Trace Event Format: rows, slices and instants",
          "[trace][trace_file]") {
    temp_dir dir;
    const std::string path = dir.path + "/trace.json";
    {
        std::unique_ptr<conet::reactor> r;
        {
            trace_env env(path);
            r = std::make_unique<conet::reactor>();
        }
        run_bounded(*r, scripted_exchange());
    } // the reactor flushes as it goes
    const auto events = check_trace(read_file(path));
    std::set<std::string> rows;
    bool process_named = false, reactor_named = false;
    for (const json& e : events) {
        if (e.text("cat") == "coroutine") rows.insert(e.text("id"));
        if (e.text("ph") == "M" && e.text("name") == "process_name") process_named = true;
        if (e.text("ph") == "M" && e.text("name") == "thread_name") reactor_named = true;
    }
    CHECK(process_named);
    CHECK(reactor_named);
    CHECK(rows.size() >= 4); // the script, the reader, the sender, the one waiting in vain
    CHECK(count_events(events, "b", "") >= 4);
    CHECK(count_events(events, "b", "") == count_events(events, "e", ""));
    CHECK(count_events(events, "X", "") >= 3); // epoll_wait slices
    CHECK(count_events(events, "n", "wait") >= 4);
    CHECK(count_events(events, "n", "wake") >= 1);
    CHECK(count_events(events, "n", "timer") >= 2);
    CHECK(count_events(events, "n", "cancel") >= 1);
    CHECK(count_events(events, "n", "timeout") >= 1);
    // The descriptor and the operation are the waits' arguments.
    bool recv_wait = false;
    for (const json& e : events)
        if (const json* args = e.get("args");
            args && args->text("event") == "wait" && args->text("op") == "recv" && args->get("fd"))
            recv_wait = true;
    CHECK(recv_wait);
}

TEST_CASE("CONET_TRACE=FILE: the reactors of a pool trace into one file, a thread each",
          "[trace][trace_file]") {
    temp_dir dir;
    const std::string path = dir.path + "/trace.json";
    constexpr std::size_t reactors = 3;
    std::unique_ptr<conet::reactor_pool> pool;
    {
        trace_env env(path);
        pool = std::make_unique<conet::reactor_pool>(reactors);
    }
    std::atomic<int> done{0};
    // Each reactor exchanges a few messages over a connection of its own, waiting each time.
    auto exchange = [](std::atomic<int>& finished) -> conet::task<> {
        auto pair = co_await connected_pair();
        auto& client = pair.client;
        auto& server = pair.server;
        for (int i = 0; i < 20; ++i) {
            auto reader = [&]() -> conet::task<> {
                char buf[16];
                co_await server.recv(buf);
            };
            auto sender = [&]() -> conet::task<> {
                co_await conet::sleep_for(1ms);
                co_await client.send_all(conet::const_buffer("x"));
            };
            co_await conet::when_all(reader(), sender());
        }
        finished.fetch_add(1);
    };
    pool->run([&](std::size_t) { return exchange(done); });
    pool.reset();
    CHECK(done.load() == static_cast<int>(reactors));
    const auto events = check_trace(read_file(path));
    std::set<double> threads, with_rows;
    for (const json& e : events) {
        if (e.text("ph") == "M" && e.text("name") == "thread_name")
            threads.insert(e.get("tid")->num);
        if (e.text("cat") == "coroutine") with_rows.insert(e.get("tid")->num);
    }
    CHECK(threads.size() == reactors);
    CHECK(with_rows.size() == reactors);
}

TEST_CASE("CONET_TRACE=FILE: reactors made one after another continue the same file",
          "[trace][trace_file]") {
    temp_dir dir;
    const std::string path = dir.path + "/trace.json";
    for (int i = 0; i < 2; ++i) {
        std::unique_ptr<conet::reactor> r;
        {
            trace_env env(path);
            r = std::make_unique<conet::reactor>();
        }
        run_bounded(*r, []() -> conet::task<> { co_await conet::sleep_for(1ms); }());
    }
    const auto events = check_trace(read_file(path));
    std::set<double> reactors;
    for (const json& e : events)
        if (e.text("ph") == "M" && e.text("name") == "thread_name")
            reactors.insert(e.get("tid")->num);
    CHECK(reactors.size() == 2);
}

TEST_CASE("CONET_TRACE names a file that cannot be made: a clear message, no trace",
          "[trace][trace_file]") {
    char path[] = "/tmp/conet_trace_err_XXXXXX";
    const int file = ::mkstemp(path);
    REQUIRE(file >= 0);
    const int saved_stderr = ::dup(2);
    {
        std::unique_ptr<conet::reactor> r;
        ::dup2(file, 2);
        {
            trace_env env("/nonexistent-dir/trace.json");
            r = std::make_unique<conet::reactor>();
        }
        ::dup2(saved_stderr, 2);
        run_bounded(*r, []() -> conet::task<> { co_await conet::sleep_for(1ms); }());
    }
    ::close(saved_stderr);
    std::string text(4096, '\0');
    const auto n = ::pread(file, text.data(), text.size(), 0);
    ::close(file);
    ::unlink(path);
    REQUIRE(n > 0);
    text.resize(static_cast<std::size_t>(n));
    CHECK(text.find("CONET_TRACE=/nonexistent-dir/trace.json: cannot open it") !=
          std::string::npos);
}

TEST_CASE("CONET_TRACE=1 still prints the text trace and writes no file", "[trace][trace_file]") {
    temp_dir dir;
    char path[] = "/tmp/conet_trace_text_XXXXXX";
    const int file = ::mkstemp(path);
    REQUIRE(file >= 0);
    const int saved_stderr = ::dup(2);
    char cwd[4096];
    REQUIRE(::getcwd(cwd, sizeof cwd));
    REQUIRE(::chdir(dir.path.c_str()) == 0); // a file named "1" would appear here
    {
        std::unique_ptr<conet::reactor> r;
        {
            trace_env env("1");
            r = std::make_unique<conet::reactor>();
        }
        ::dup2(file, 2);
        run_bounded(*r, []() -> conet::task<> { co_await conet::sleep_for(1ms); }());
        ::dup2(saved_stderr, 2);
    }
    REQUIRE(::chdir(cwd) == 0);
    ::close(saved_stderr);
    std::string text(4096, '\0');
    const auto n = ::pread(file, text.data(), text.size(), 0);
    ::close(file);
    ::unlink(path);
    REQUIRE(n > 0);
    text.resize(static_cast<std::size_t>(n));
    CHECK(text.find("conet: sleep: the coroutine suspends until its timer expires") !=
          std::string::npos);
    CHECK(text.find("conet: timer expired") != std::string::npos);
    struct stat st;
    CHECK(::stat((dir.path + "/1").c_str(), &st) != 0);
}

// The child of the next test: a server traced to a file, waiting until a signal kills it.
TEST_CASE("trace file child", "[.trace_child]") {
    // Killed by SIGINT as a program without a handler is (Catch2's own handler would report
    // instead, and under TSan that report hangs).
    ::signal(SIGINT, SIG_DFL);
    conet::reactor r;
    auto listener = conet::tcp_listener::bind(any_loopback_port());
    std::cout << "PORT " << listener.local_endpoint().port() << std::endl;
    watchdog dog(r, 20s);
    r.run([](conet::tcp_listener& l) -> conet::task<> {
        for (;;) { // until the signal: the next accept waits, surely
            auto [conn, peer] = co_await l.accept();
            char buf[64];
            while (const std::size_t n = co_await conn.recv(buf))
                co_await conn.send_all(conet::const_buffer(buf, n));
        }
    }(listener));
    CHECK(true);
}

TEST_CASE("CONET_TRACE=FILE: a program stopped by SIGINT leaves a valid file",
          "[trace][trace_file]") {
    temp_dir dir;
    const std::string path = dir.path + "/trace.json";
    char self[4096];
    const auto len = ::readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(len > 0);
    self[len] = '\0';
    std::unique_ptr<child_process> child;
    {
        trace_env env(path);
        child = std::make_unique<child_process>(self, std::vector<std::string>{"trace file child"});
    }
    const auto line = child->read_line_starting("PORT ");
    REQUIRE(line);
    const auto port = static_cast<std::uint16_t>(std::stoi(line->substr(5)));
    run_bounded([](std::uint16_t p) -> conet::task<> {
        auto conn = co_await conet::tcp_stream::connect({conet::ip_address::loopback(), p});
        co_await conn.send_all(conet::const_buffer("hello"));
        char buf[16];
        std::size_t got = 0;
        while (got < 5)
            got += co_await conn.recv(conet::mutable_buffer(buf + got, sizeof buf - got));
        CHECK(got == 5);
    }(port));
    // The child waits in accept again, and sleeps in epoll_wait (it flushed before it
    // slept): stop it now.
    CHECK(holds_within([&] {
        const std::string text = read_file(path);
        const auto last_accept = text.rfind("\"op\":\"accept\"");
        return last_accept != std::string::npos &&
               text.find("\"op\":\"recv\"") < last_accept; // the second accept
    }));
    child->send_signal(SIGINT);
    const auto status = child->wait();
    REQUIRE(status);
    CHECK(*status == 128 + SIGINT);
    const auto events = check_trace(read_file(path), true);
    bool accept_waited = false;
    for (const json& e : events)
        if (const json* args = e.get("args"); args && args->text("op") == "accept")
            accept_waited = true;
    CHECK(accept_waited);
}

TEST_CASE("docs/trace_to_svg.py draws a trace as SVG, one row per coroutine",
          "[trace][trace_file]") {
    if (std::system("command -v python3 >/dev/null 2>&1") != 0) {
        CONET_REPORT_SKIP("no python3 to run docs/trace_to_svg.py");
        return;
    }
    temp_dir dir;
    const std::string trace = dir.path + "/trace.json";
    const std::string svg = dir.path + "/trace.svg";
    {
        std::unique_ptr<conet::reactor> r;
        {
            trace_env env(trace);
            r = std::make_unique<conet::reactor>();
        }
        run_bounded(*r, scripted_exchange());
    }
    std::set<std::string> rows;
    for (const json& e : check_trace(read_file(trace)))
        if (e.text("cat") == "coroutine") rows.insert(e.text("id"));
    const std::string draw =
        "python3 '" CONET_SOURCE_DIR "/docs/trace_to_svg.py' '" + trace + "' -o '" + svg + "'";
    REQUIRE(std::system(draw.c_str()) == 0);
    // The SVG parses as XML, and has as many coroutine rows as the trace has coroutines.
    const std::string count = dir.path + "/rows.txt";
    const std::string parse = "python3 -c 'import sys, xml.etree.ElementTree as E\n"
                              "root = E.parse(sys.argv[1]).getroot()\n"
                              "print(sum(1 for g in root.iter(\"{http://www.w3.org/2000/svg}g\")"
                              " if g.get(\"class\") == \"row coroutine\"))' '" +
                              svg + "' > '" + count + "'";
    REQUIRE(std::system(parse.c_str()) == 0);
    CHECK(std::stoul(read_file(count)) == rows.size());
    CHECK(read_file(svg).find("recv fd ") != std::string::npos);
}

// The tutorial's programs (docs/tutorial/), run: what each prints is checked against what
// docs/tutorial.md says it prints, and the server of steps 1-6 against a scripted client.
#include <conet/conet.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "child_process.hpp"
#include "support.hpp"

using namespace conet_test;
using namespace std::chrono_literals;

namespace {

std::string tutorial_program(const std::string& name) {
    return std::string(CONET_TUTORIAL_DIR) + "/" + name;
}

// The output docs/tutorial.md shows for `name`: the lines after "$ ./build/dev/docs/<name>"
// in its text block, up to the block's end. Empty if the page shows none.
std::vector<std::string> output_on_page(const std::string& name) {
    std::ifstream page(std::string(CONET_SOURCE_DIR) + "/docs/tutorial.md");
    std::vector<std::string> shown;
    std::string line;
    bool in_block = false;
    while (std::getline(page, line)) {
        if (in_block) {
            if (line.rfind("```", 0) == 0) break;
            shown.push_back(line);
        } else if (line == "$ ./build/dev/docs/" + name) {
            in_block = true;
        }
    }
    return shown;
}

// Every line the program writes on standard output, and its exit status.
std::vector<std::string> output_of(child_process& program) {
    std::vector<std::string> lines;
    while (auto line = program.read_line(10s))
        lines.push_back(*line);
    return lines;
}

} // namespace

TEST_CASE("the tutorial's programs print what its page shows", "[examples][tutorial]") {
    for (const char* name : {"05_message_boundaries", "07_byte_order"}) {
        INFO(name);
        const auto expected = output_on_page(name);
        REQUIRE_FALSE(expected.empty()); // the page still shows this program's output
        child_process program(tutorial_program(name), {}, closed_stdin);
        CHECK(output_of(program) == expected);
        CHECK(program.wait(10s) == 0);
    }
}

TEST_CASE("the tutorial's self-contained programs print what their steps say",
          "[examples][tutorial]") {
    const std::string any_port = R"(\d+)";
    SECTION("03_udp: the receiver hears the sender, the sender the answer") {
        child_process program(tutorial_program("03_udp"), {}, closed_stdin);
        const auto lines = output_of(program);
        REQUIRE(lines.size() == 2);
        CHECK(std::regex_match(lines[0],
                               std::regex("127\\.0\\.0\\.1:" + any_port + " sent: Hello, UDP")));
        CHECK(std::regex_match(lines[1],
                               std::regex("127\\.0\\.0\\.1:" + any_port + " replied: Thanks")));
        CHECK(program.wait(10s) == 0);
    }
    SECTION("04_hosts: inet_aton, inet_ntoa and a service's port, as step 11 says") {
        child_process program(tutorial_program("04_hosts"), {}, closed_stdin);
        const auto lines = output_of(program);
        const auto has = [&](const std::string& line) {
            return std::find(lines.begin(), lines.end(), line) != lines.end();
        };
        CHECK(has("192 168 1 2 = 0xc0a80102"));
        CHECK(std::count(lines.begin(), lines.end(), "192.168.1.2") == 2);
        CHECK(has("::1 port 80"));
        CHECK(has("localhost: 127.0.0.1:8888"));
        CHECK(program.wait(10s) == 0);
    }
    SECTION("09_broadcast: the datagram sent to 127.255.255.255 arrives") {
        child_process program(tutorial_program("09_broadcast"), {}, closed_stdin);
        const auto lines = output_of(program);
        REQUIRE(lines.size() == 1);
        CHECK(std::regex_match(lines[0], std::regex(R"(\S+:\d+ broadcast: Hello, everyone)")));
        CHECK(program.wait(10s) == 0);
    }
    SECTION("08_names_on_the_loop: lookups on the loop, a connection by name, a clear error") {
        child_process program(tutorial_program("08_names_on_the_loop"), {}, closed_stdin);
        const auto lines = output_of(program);
        REQUIRE(lines.size() >= 3);
        CHECK(std::find(lines.begin(), lines.end(), "IPv4 only: 127.0.0.1:8888") != lines.end());
        CHECK(std::regex_match(lines[lines.size() - 2],
                               std::regex(R"(connected to (127\.0\.0\.1|\[::1\]):\d+)")));
        CHECK(lines.back().find("no-such-host.invalid") != std::string::npos);
        CHECK(program.wait(10s) == 0);
    }
}

TEST_CASE("the tutorial's programs on the course's port 8888 serve as the page says",
          "[examples][tutorial]") {
    // The programs bind or connect to the course's fixed port, 8888 (one test case, so that
    // ctest never runs two of them at once); with that port taken (another program on the
    // machine), there is nothing to test.
    {
        std::error_code ec;
        auto probe = conet::tcp_listener::bind(conet::endpoint::parse("0.0.0.0:8888"), ec);
        if (ec) {
            CONET_REPORT_SKIP("port 8888 is taken: " << ec.message());
            return;
        }
    }
    SECTION("02_tcp_client talks to a server on 8888 (step 7)") {
        auto listener = conet::tcp_listener::bind(conet::endpoint::parse("127.0.0.1:8888"));
        child_process client(tutorial_program("02_tcp_client"), {}, std::string("hi there\n"));
        auto serve = [](conet::tcp_listener& listener) -> conet::task<std::string> {
            auto [conn, peer] = co_await listener.accept();
            std::string got;
            char buf[64];
            while (got.size() < 8) {
                const std::size_t n = co_await conn.recv(buf);
                if (n == 0) break;
                got.append(buf, n);
            }
            co_await conn.send_all(std::string("Receive your message"));
            co_return got;
        };
        std::string got;
        run_bounded([](conet::tcp_listener& l, std::string& got, auto serve) -> conet::task<> {
            got = co_await serve(l);
        }(listener, got, serve));
        CHECK(got == "hi there");
        CHECK(client.read_line(10s) == ">>你好From server: Receive your message");
        CHECK(client.wait(10s) == 0);
    }
    SECTION("10_watching_the_loop serves one client (step 15)") {
        child_process server(tutorial_program("10_watching_the_loop"), {}, closed_stdin);
        auto client = [](std::string& reply, conet::endpoint& mine) -> conet::task<> {
            // (connect retries until the server listens: it prints nothing before accept)
            conet::tcp_stream conn;
            for (int i = 0; i < 500 && !conn.is_open(); ++i) {
                std::error_code ec;
                conn = co_await conet::tcp_stream::connect(conet::endpoint::parse("127.0.0.1:8888"),
                                                           ec);
                if (ec) co_await conet::sleep_for(10ms);
            }
            mine = conn.local_endpoint();
            co_await conn.send_all(std::string("hello"));
            char buf[64];
            while (const std::size_t n = co_await conn.recv(buf))
                reply.append(buf, n);
        };
        std::string reply;
        conet::endpoint mine;
        run_bounded(client(reply, mine));
        CHECK(reply == "hi there");
        CHECK(server.read_line(10s) == "Connect from " + mine.to_string());
        CHECK(server.read_line(10s) == "client: hello");
        CHECK(server.wait(10s) == 0);
    }
    SECTION("06_every_core echoes on 8888 and stops on SIGTERM (the README's every-core "
            "program)") {
        child_process server(tutorial_program("06_every_core"), {}, closed_stdin);
        const auto first = server.read_line(10s);
        REQUIRE(first);
        CHECK(std::regex_match(*first,
                               std::regex(R"(Listening on 127\.0\.0\.1:8888 with \d+ reactors)")));
        auto client = []() -> conet::task<std::string> {
            auto conn =
                co_await conet::tcp_stream::connect(conet::endpoint::parse("127.0.0.1:8888"));
            co_await conn.send_all(std::string("ping"));
            std::string back(4, '\0');
            co_await conn.recv_exact(back);
            co_return back;
        };
        std::string back;
        run_bounded([](std::string& back, auto client) -> conet::task<> {
            back = co_await client();
        }(back, client));
        CHECK(back == "ping");
        server.send_signal(SIGTERM);
        CHECK(server.wait(10s) == 0);
    }
    SECTION("11_chat_room relays each client's lines to the others (step 16)") {
        child_process server(tutorial_program("11_chat_room"), {}, closed_stdin);
        REQUIRE(server.read_line(10s) == "Listening on 0.0.0.0:8888");
        const auto where = conet::endpoint::parse("127.0.0.1:8888");
        // Reads until `text` has come whole (the room sends a line in one piece, but TCP may
        // split it); what came is returned, so that a wrong text fails the CHECK, not a hang.
        auto expect = [](conet::tcp_stream& conn, std::string text) -> conet::task<std::string> {
            std::string got;
            char buf[256];
            while (got.size() < text.size()) {
                const std::size_t n = co_await conn.recv(buf);
                if (n == 0) break;
                got.append(buf, n);
            }
            co_return got;
        };
        auto talk = [&](std::vector<std::string>& seen, std::string& a_name,
                        std::string& b_name) -> conet::task<> {
            // The course's client (no newline) and nc (lines) side by side.
            auto a = co_await conet::tcp_stream::connect(where);
            a_name = a.local_endpoint().to_string();
            seen.push_back(*server.read_line(10s)); // joined: the room holds `a` now
            auto b = co_await conet::tcp_stream::connect(where);
            b_name = b.local_endpoint().to_string();
            seen.push_back(co_await expect(a, "*** " + b_name + " joined\n"));
            co_await b.send_all(std::string("hello\n"));
            seen.push_back(co_await expect(a, b_name + ": hello\n"));
            co_await a.send_all(std::string("你好"));
            seen.push_back(co_await expect(b, a_name + ": 你好\n"));
            co_await a.send_all(std::string("##"));
            seen.push_back(co_await expect(b, "*** " + a_name + " left\n"));
        };
        std::vector<std::string> seen;
        std::string a_name, b_name;
        run_bounded(talk(seen, a_name, b_name));
        CHECK(seen == std::vector<std::string>{a_name + " joined", "*** " + b_name + " joined\n",
                                               b_name + ": hello\n", a_name + ": 你好\n",
                                               "*** " + a_name + " left\n"});
        server.send_signal(SIGTERM); // it runs until stopped, as a server does
        CHECK(server.wait(10s) == 128 + SIGTERM);
    }
    SECTION("01_tcp_server serves one client (steps 1-6)") {
        child_process server(tutorial_program("01_tcp_server"), {}, closed_stdin);
        REQUIRE(server.read_line(10s) == "Waiting for connect...");
        auto client = [](std::string& reply, conet::endpoint& mine) -> conet::task<> {
            auto conn =
                co_await conet::tcp_stream::connect(conet::endpoint::parse("127.0.0.1:8888"));
            mine = conn.local_endpoint();
            co_await conn.send_all(std::string("hello"));
            char buf[64];
            // (the server closes after its reply)
            while (const std::size_t n = co_await conn.recv(buf))
                reply.append(buf, n);
        };
        std::string reply;
        conet::endpoint mine;
        run_bounded(client(reply, mine));
        CHECK(reply == "Receive your message");
        CHECK(server.read_line(10s) == "Connect from " + mine.to_string());
        CHECK(server.read_line(10s) == "Receive message: hello");
        CHECK(server.read_line(10s) == "Send 20 bytes");
        CHECK(server.wait(10s) == 0);
    }
}

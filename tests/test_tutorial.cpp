// The tutorial's programs (docs/tutorial/), run: what each prints is checked against what
// docs/tutorial.md says it prints, and the server of steps 1-6 against a scripted client.
#include <conet/conet.hpp>

#include <fstream>
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

TEST_CASE("the tutorial's TCP server (steps 1-6) serves one client as the page says",
          "[examples][tutorial]") {
    // The program binds the course's fixed port, 8888; with that port taken (another program
    // on the machine), there is nothing to test.
    {
        std::error_code ec;
        auto probe = conet::tcp_listener::bind(conet::endpoint::parse("0.0.0.0:8888"), ec);
        if (ec) {
            CONET_REPORT_SKIP("port 8888 is taken: " << ec.message());
            return;
        }
    }
    child_process server(tutorial_program("01_tcp_server"), {}, closed_stdin);
    REQUIRE(server.read_line(10s) == "Waiting for connect...");
    auto client = [](std::string& reply, conet::endpoint& mine) -> conet::task<> {
        auto conn = co_await conet::tcp_stream::connect(conet::endpoint::parse("127.0.0.1:8888"));
        mine = conn.local_endpoint();
        co_await conn.send_all(std::string("hello"));
        char buf[64];
        while (const std::size_t n = co_await conn.recv(buf)) // the server closes after its reply
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

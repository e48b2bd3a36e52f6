// room_load - a load generator for a chat room (examples/chat_room.cpp): CLIENTS clients talk
// in rounds; in each round every client sends one line, and a client sends its next line
// once it has received the other clients' lines of this round. A round is thus CLIENTS sends
// and CLIENTS x (CLIENTS - 1) deliveries, and its time is the room's round trip.
//
//   room_load HOST:PORT [--clients N] [--rounds R]        (defaults: 50 clients, 1000 rounds)
//
// Prints one line: "rounds=R seconds=S rounds_per_s=X lines_per_s=Y", lines counted as
// delivered (each received by one client). Exits with status 1 if a client is dropped or a
// line goes missing (the room must deliver every line, in order, while everyone reads).
#include <conet/conet.hpp>
#include <conet/event.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct settings {
    conet::endpoint room;
    int clients = 50;
    int rounds = 1000;
};

// What one client has read: the start of a line not yet whole, and the announcements seen.
struct reader {
    std::string pending;
    int announced = 0;
};

// Reads from `conn` until `messages` lines other than announcements ("*** ...") have come
// and `announcements` announcements in all; false if the room closes the connection or sends
// nothing for 10 s (a line went missing: a client was dropped, say).
conet::task<bool> read_until(conet::tcp_stream& conn, reader& r, int messages, int announcements) {
    char buf[16384];
    while (messages > 0 || r.announced < announcements) {
        const std::size_t end = r.pending.find('\n');
        if (end == std::string::npos) {
            std::error_code ec;
            const std::size_t n =
                co_await conet::with_timeout(conn.recv(buf, ec), std::chrono::seconds(10));
            if (n == 0 || ec) co_return false;
            r.pending.append(buf, n);
            continue;
        }
        if (r.pending.starts_with("*** "))
            ++r.announced;
        else
            --messages;
        r.pending.erase(0, end + 1);
    }
    co_return true;
}

// What the clients share: how many are ready to talk, and the start signal.
struct start_line {
    int ready = 0;
    int clients = 0;
    conet::event go;
};

// One client, joined `later` clients before the last: once the room has announced those to
// it (so everyone is in), and every other client is ready, it talks for `rounds` rounds.
conet::task<> client(conet::tcp_stream conn, int later, int rounds, start_line& start,
                     bool& failed) {
    reader r;
    if (!co_await read_until(conn, r, 0, later)) {
        failed = true;
        start.go.set(); // nobody waits for ever
        co_return;
    }
    if (++start.ready == start.clients) start.go.set();
    co_await start.go.wait();

    const std::string line = "a line from a client of room_load\n";
    for (int round = 0; round < rounds && !failed; ++round) {
        co_await conn.send_all(line);
        if (!co_await read_until(conn, r, start.clients - 1, 0)) failed = true;
    }
}

conet::task<> run(const settings& s, bool& failed, double& seconds) {
    start_line start;
    start.clients = s.clients;
    conet::task_group clients;
    // One connection at a time: the room accepts, and announces, them in this order.
    for (int i = 0; i < s.clients; ++i) {
        auto conn = co_await conet::tcp_stream::connect(s.room);
        conn.set_nodelay(true); // one small line per round: never held back by Nagle
        clients.spawn(client(std::move(conn), s.clients - 1 - i, s.rounds, start, failed));
    }
    co_await start.go.wait();
    const auto began = std::chrono::steady_clock::now();
    co_await clients.join();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: room_load HOST:PORT [--clients N] [--rounds R]\n");
        return 2;
    }
    settings s{.room = conet::endpoint::parse(argv[1])};
    for (int i = 2; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--clients") == 0) s.clients = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--rounds") == 0) s.rounds = std::atoi(argv[i + 1]);
    }
    if (s.clients < 2 || s.rounds < 1) {
        std::fprintf(stderr, "room_load: at least 2 clients and 1 round\n");
        return 2;
    }
    bool failed = false;
    double seconds = 0;
    conet::reactor reactor;
    reactor.run(run(s, failed, seconds));
    if (failed) {
        std::fprintf(stderr, "room_load: a client lost its connection or a line\n");
        return 1;
    }
    const double lines = double(s.rounds) * s.clients * (s.clients - 1);
    std::printf("rounds=%d seconds=%.3f rounds_per_s=%.0f lines_per_s=%.0f\n", s.rounds, seconds,
                s.rounds / seconds, lines / seconds);
}

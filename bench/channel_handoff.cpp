// channel_handoff - what a value handed between two coroutines of one reactor costs.
//
//   channel_handoff channel|mailbox VALUES
//
// A producer coroutine sends VALUES integers to a consumer coroutine on one reactor:
//  - channel: through a conet::channel<long> of capacity 1 (co_await send / recv);
//  - mailbox: through a one-slot mailbox written here for comparison: a value slot and the
//    two coroutine handles, each side resuming the other through a conet::resumption (the
//    reactor's ready queue, as the channel does), with no cancellation, no FIFO lists, no
//    budget and no thread checks: the floor of a hand-off on this reactor.
// bench/run counts the instructions of two runs under callgrind and divides the difference
// by the difference in values: instructions per send+recv pair, start-up excluded.
#include <conet/channel.hpp>
#include <conet/conet.hpp>

#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace {

// The hand-written one-slot hand-off.
class mailbox {
public:
    struct put_op {
        mailbox& m;
        long v;
        bool await_ready() noexcept { return m.try_put(v); }
        void await_suspend(std::coroutine_handle<> h) noexcept {
            m.producer_ = h;
            m.pending_ = v;
        }
        void await_resume() const noexcept {}
    };
    struct take_op {
        mailbox& m;
        bool await_ready() noexcept { return m.slot_.has_value(); }
        void await_suspend(std::coroutine_handle<> h) noexcept { m.consumer_ = h; }
        long await_resume() noexcept { return m.take(); }
    };

    put_op put(long v) noexcept { return {*this, v}; }
    take_op take_next() noexcept { return {*this}; }

private:
    bool try_put(long v) noexcept {
        if (slot_) return false;
        slot_ = v;
        if (consumer_) wake_consumer_.resume_later(std::exchange(consumer_, nullptr));
        return true;
    }
    long take() noexcept {
        const long v = *slot_;
        slot_.reset();
        if (producer_) { // the waiting producer's value goes in, and it goes on
            slot_ = pending_;
            wake_producer_.resume_later(std::exchange(producer_, nullptr));
        }
        return v;
    }

    std::optional<long> slot_;
    long pending_ = 0;
    std::coroutine_handle<> producer_;
    std::coroutine_handle<> consumer_;
    conet::resumption wake_producer_;
    conet::resumption wake_consumer_;
};

conet::task<> channel_producer(conet::channel<long>& ch, long values) {
    for (long i = 0; i < values; ++i)
        co_await ch.send(long(i));
    ch.close();
}

conet::task<long> channel_consumer(conet::channel<long>& ch) {
    long sum = 0;
    while (auto v = co_await ch.recv())
        sum += *v;
    co_return sum;
}

conet::task<> mailbox_producer(mailbox& m, long values) {
    for (long i = 0; i < values; ++i)
        co_await m.put(i);
    co_await m.put(-1); // the end
}

conet::task<long> mailbox_consumer(mailbox& m) {
    long sum = 0;
    for (long v; (v = co_await m.take_next()) >= 0;)
        sum += v;
    co_return sum;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3 ||
        (std::strcmp(argv[1], "channel") != 0 && std::strcmp(argv[1], "mailbox") != 0)) {
        std::fprintf(stderr, "usage: channel_handoff channel|mailbox VALUES\n");
        return 2;
    }
    const long values = std::atol(argv[2]);
    conet::reactor r;
    long sum = 0;
    if (argv[1][0] == 'c') {
        conet::channel<long> ch(1);
        r.spawn(channel_producer(ch, values));
        sum = r.run(channel_consumer(ch));
    } else {
        mailbox m;
        r.spawn(mailbox_producer(m, values));
        sum = r.run(mailbox_consumer(m));
    }
    if (sum != values * (values - 1) / 2) {
        std::fprintf(stderr, "channel_handoff: lost values (sum %ld)\n", sum);
        return 1;
    }
    std::printf("%s: %ld values\n", argv[1], values);
    return 0;
}

// keyboard.hpp - the chat examples' keyboard: standard input read on the reactor, line by
// line, so that waiting for the user never blocks the thread.
//
// Create it first, before the reactor, a signal_set or any socket. A program started with its
// standard input closed (`chat_server <&-`) has descriptor 0 free, and the next descriptor it
// opens takes that number: created later, the keyboard would read that one instead (a socket,
// or the signalfd that should catch Ctrl-C). Created first, it finds nothing there and acts
// as an input that has ended.
#pragma once

#include <conet/conet.hpp>

#include <unistd.h>

#include <optional>
#include <string>
#include <system_error>

namespace example {

class keyboard {
public:
    keyboard() {
        try {
            input_.emplace();
            lines_.emplace(*input_);
        } catch (const std::system_error&) {
            // Standard input is closed: behave as if it had ended.
        }
    }

    /// True if a person types at a terminal (worth a prompt), not a pipe or a file.
    bool interactive() const { return lines_ && ::isatty(input_->native_handle()); }

    /// The next line typed, without its line ending; std::nullopt once the input has ended
    /// (Ctrl-D, the end of a file) or cannot be read.
    conet::task<std::optional<std::string>> next_line() {
        if (!lines_) co_return std::nullopt;
        std::error_code ec;
        auto line = co_await lines_->read_line(ec);
        if (ec == std::errc::operation_canceled) throw std::system_error(ec, "keyboard");
        if (!line) lines_.reset(); // ended (or an error reading it): no more typing
        co_return line;
    }

private:
    std::optional<conet::standard_input> input_;
    std::optional<conet::line_reader> lines_;
};

} // namespace example

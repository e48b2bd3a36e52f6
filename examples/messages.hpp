// messages.hpp - where one chat message ends, as chat_server and chat_client read it.
//
// The socket course's programs mark no end at all: a message is one send(), read by one
// recv(1024). Line tools (nc, telnet) end each line with "\n" or "\r\n". To talk to both,
// the chat examples take as a message what one receive returns, without its line ending;
// a receive holding several lines (two lines pasted into nc) holds several messages.
//
// This works as long as each message arrives in one receive of its own, which a quiet
// loopback gives and a busy network does not: docs/tutorial.md, "Step 9", shows what goes
// wrong and what to use instead (conet::line_reader, when both sides can agree on lines).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace example {

/// One message, and the line ending it came with: "\n", "\r\n", or "" (none).
struct message {
    std::string text;
    std::string ending;
};

/// Splits what one receive returned into messages, at each "\n" or "\r\n". Whatever follows
/// the last line ending is a message too: "hello" is one message, ending "".
inline std::vector<message> split_messages(std::string_view received) {
    std::vector<message> messages;
    while (!received.empty()) {
        const auto newline = received.find('\n');
        if (newline == std::string_view::npos) { // no line ending: the rest is one message
            messages.push_back({std::string(received), ""});
            break;
        }
        std::string_view text = received.substr(0, newline);
        std::string ending = "\n";
        if (text.ends_with('\r')) {
            text.remove_suffix(1);
            ending = "\r\n";
        }
        messages.push_back({std::string(text), ending});
        received.remove_prefix(newline + 1);
    }
    return messages;
}

} // namespace example

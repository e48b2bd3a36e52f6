// tests/child_process.hpp - runs an example program as a child process with pipes on its
// standard input, output and error, for the end-to-end tests. Every read and wait is bounded.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

extern char** environ;

namespace conet_test {

/// Asks child_process to start the program with its standard input closed (`prog <&-`).
struct closed_stdin_t {};
inline constexpr closed_stdin_t closed_stdin{};

class child_process {
public:
    /// Starts `path` with `args`. Its standard input is a pipe (write_stdin, close_stdin);
    /// with `stdin_text` given, that text is written and the pipe closed at once.
    child_process(const std::string& path, const std::vector<std::string>& args,
                  std::optional<std::string> stdin_text = std::nullopt) {
        start(path, args, false);
        if (stdin_text) {
            write_stdin(*stdin_text);
            close_stdin();
        }
    }
    /// Starts `path` with `args` and no standard input at all: descriptor 0 is closed.
    child_process(const std::string& path, const std::vector<std::string>& args, closed_stdin_t) {
        start(path, args, true);
        close_stdin();
    }

    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    ~child_process() {
        if (!exit_status_) {
            ::kill(pid_, SIGKILL);
            int status;
            ::waitpid(pid_, &status, 0);
        }
        close_stdin();
        ::close(stdout_);
        ::close(stderr_);
    }

    /// Writes `text` to the child's standard input. A child that has already exited (a client
    /// whose connect was refused, say) never reads it: the text is dropped, and the SIGPIPE
    /// that writing raised is taken back instead of killing the test runner.
    void write_stdin(const std::string& text) {
        sigset_t pipe_signal, old_mask;
        sigemptyset(&pipe_signal);
        sigaddset(&pipe_signal, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
        std::size_t done = 0;
        int error = 0;
        while (done < text.size() && error == 0) {
            const auto n = ::write(stdin_, text.data() + done, text.size() - done);
            if (n > 0)
                done += static_cast<std::size_t>(n);
            else if (errno != EINTR)
                error = errno;
        }
        if (error == EPIPE) {
            const timespec now{};
            ::sigtimedwait(&pipe_signal, nullptr, &now); // the pending SIGPIPE, if ours
        }
        ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
        if (error != 0 && error != EPIPE)
            throw std::system_error(error, std::generic_category(), "write stdin");
    }

    void close_stdin() {
        if (stdin_ >= 0) ::close(std::exchange(stdin_, -1));
    }

    /// The next line of standard output (without '\n'), or nullopt at end of output or after
    /// `timeout`.
    std::optional<std::string>
    read_line(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        return next_line(stdout_, out_buffer_, timeout);
    }

    /// Reads standard output lines until one starts with `prefix`; returns it (or nullopt).
    std::optional<std::string>
    read_line_starting(const std::string& prefix,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            auto line = read_line(left);
            if (!line) return std::nullopt;
            if (line->rfind(prefix, 0) == 0) return line;
        }
    }

    /// Everything written on standard error until the child closes it (or `timeout`).
    std::string read_stderr(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        std::string all;
        while (auto line = next_line(stderr_, err_buffer_, timeout))
            all += *line + '\n';
        return all;
    }

    void send_signal(int signal) { ::kill(pid_, signal); }
    /// The child's process id.
    int pid() const noexcept { return pid_; }

    /// The exit status once the child has exited within `timeout` (128 + N for signal N).
    std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!exit_status_) {
            int status;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                break;
            }
            if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
            ::usleep(2000);
        }
        return exit_status_;
    }

private:
    void start(const std::string& path, const std::vector<std::string>& args, bool closed) {
        int in[2], out[2], err[2];
        if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
            throw std::system_error(errno, std::generic_category(), "pipe2");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        if (closed)
            posix_spawn_file_actions_addclose(&actions, STDIN_FILENO);
        else
            posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
        // The child starts with no signal blocked, whatever the test runner blocked.
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_setsigmask(&attributes, &none);
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);

        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(path.c_str()));
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        const int rc =
            ::posix_spawn(&pid_, path.c_str(), &actions, &attributes, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attributes);
        ::close(in[0]);
        ::close(out[1]);
        ::close(err[1]);
        stdin_ = in[1];
        stdout_ = out[0];
        stderr_ = err[0];
        if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn " + path);
    }

    static std::optional<std::string> next_line(int fd, std::string& buffer,
                                                std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto newline = buffer.find('\n');
            if (newline != std::string::npos) {
                std::string line = buffer.substr(0, newline);
                buffer.erase(0, newline + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
            char chunk[4096];
            const auto n = ::read(fd, chunk, sizeof chunk);
            if (n <= 0) {
                if (buffer.empty()) return std::nullopt;
                return std::exchange(buffer, std::string()); // a last line without '\n'
            }
            buffer.append(chunk, static_cast<std::size_t>(n));
        }
    }

    pid_t pid_ = -1;
    int stdin_ = -1;
    int stdout_ = -1;
    int stderr_ = -1;
    std::string out_buffer_;
    std::string err_buffer_;
    std::optional<int> exit_status_;
};

/// The port in a "Listening on ADDR:PORT" line.
inline std::uint16_t listening_port(const std::optional<std::string>& line) {
    if (!line || line->rfind("Listening on ", 0) != 0)
        throw std::runtime_error("expected \"Listening on ADDR:PORT\", got \"" +
                                 line.value_or("<nothing>") + '"');
    return static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
}

} // namespace conet_test

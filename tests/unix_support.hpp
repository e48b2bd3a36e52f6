// tests/unix_support.hpp - helpers for the UNIX socket tests (test_unix.cpp,
// test_unix_datagram.cpp): a fresh temporary directory for socket files, whether a path
// exists, and abstract names no other run uses.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

namespace conet_test {

/// A fresh directory under $TMPDIR (or /tmp), removed with whatever is left in it.
class temp_dir {
public:
    temp_dir() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/conet-unix-XXXXXX";
        if (!::mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category());
        path_ = pattern;
    }
    ~temp_dir() {
        for (const auto& name : made_)
            ::unlink((path_ + "/" + name).c_str());
        ::rmdir(path_.c_str());
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    /// The path of `name` in the directory (removed with it, if still there).
    std::string file(const std::string& name) {
        made_.push_back(name);
        return path_ + "/" + name;
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::vector<std::string> made_;
};

/// True if something (a socket file, say) is at `path`.
inline bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

/// An abstract name ("@...") no other test, or test run, uses.
inline std::string abstract_name(const char* what) {
    static int counter = 0;
    return "@conet-test-" + std::to_string(::getpid()) + "-" + what + "-" +
           std::to_string(++counter);
}

} // namespace conet_test

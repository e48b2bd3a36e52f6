// tests/descriptor_check.hpp - counts the process's open descriptors, so that every test case
// can be checked for leaks (the test runner's listener in catch_main.cpp does it for each).
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <map>
#include <string>

namespace conet_test {

/// The descriptors open right now, each with what it refers to ("socket:[1234]", a path...).
inline std::map<int, std::string> open_descriptors() {
    std::map<int, std::string> result;
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return result;
    const int own = ::dirfd(dir); // the listing's own descriptor is not the test's
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] == '.') continue;
        const int fd = std::atoi(entry->d_name);
        if (fd == own) continue;
        char target[PATH_MAX];
        const std::string link = std::string("/proc/self/fd/") + entry->d_name;
        const auto n = ::readlink(link.c_str(), target, sizeof target - 1);
        result[fd] = n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?";
    }
    ::closedir(dir);
    return result;
}

/// What is open in `after` that was not open in `before`, as "fd 7 (socket:[1234])" items.
inline std::string new_descriptors(const std::map<int, std::string>& before,
                                   const std::map<int, std::string>& after) {
    std::string leaked;
    for (const auto& [fd, target] : after) {
        const auto old = before.find(fd);
        if (old != before.end() && old->second == target) continue;
        if (!leaked.empty()) leaked += ", ";
        leaked += "fd " + std::to_string(fd) + " (" + target + ")";
    }
    return leaked;
}

} // namespace conet_test

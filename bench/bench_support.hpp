// bench/bench_support.hpp - small pieces the benchmark programs share: pinning a thread to a
// core, the machine's load average for the report, and the median of several runs.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace bench_support {

/// Pins the calling thread to `cpu` when the machine has more than one.
inline void pin(int cpu) {
    if (std::thread::hardware_concurrency() < 2) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}

/// The first three fields of /proc/loadavg, for the report's header.
inline std::string load_average() {
    std::ifstream file("/proc/loadavg");
    std::string a, b, c;
    file >> a >> b >> c;
    return a + " " + b + " " + c;
}

/// The median of `v` (the mean of the middle two for an even count; 0 for none).
inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace bench_support

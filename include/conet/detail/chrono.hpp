// conet/detail/chrono.hpp - durations, time points and steady_clock, without the rest of
// <chrono>. In C++20, libstdc++'s <chrono> adds calendars, time zones and their printing,
// and includes <sstream> for it: ~245M of the ~2,900M compiler instructions an include of
// conet.hpp cost with GCC 12. conet needs none of that, and libstdc++ keeps what it does
// need in <bits/chrono.h>. Elsewhere, the whole of <chrono>. (It pays only once no conet
// header includes <chrono> itself.)
#pragma once

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif

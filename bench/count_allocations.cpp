// count_allocations - an LD_PRELOAD library that counts every malloc, calloc and realloc of
// a process into an 8-byte counter in the file named by $CONET_ALLOC_COUNTER, which the
// benchmark script reads while the process runs (no signal, no cooperation needed).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
}

namespace {

std::atomic<std::uint64_t>* counter = nullptr;

__attribute__((constructor)) void open_counter() {
    const char* path = std::getenv("CONET_ALLOC_COUNTER");
    if (!path) return;
    const int fd = ::open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ::ftruncate(fd, sizeof(std::uint64_t)) < 0) return;
    void* p = ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) counter = static_cast<std::atomic<std::uint64_t>*>(p);
}

void count() noexcept {
    if (counter) counter->fetch_add(1, std::memory_order_relaxed);
}

} // namespace

extern "C" void* malloc(std::size_t size) {
    count();
    return __libc_malloc(size);
}
extern "C" void* calloc(std::size_t n, std::size_t size) {
    count();
    return __libc_calloc(n, size);
}
extern "C" void* realloc(void* p, std::size_t size) {
    count();
    return __libc_realloc(p, size);
}

// conet/detail/descriptor.hpp - a file descriptor that can wait on a reactor: the base of
// every conet socket.
#pragma once

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>

#include "../error.hpp"
#include "descriptor_table.hpp"
#include "loop_core.hpp"
#include "waiter.hpp"

namespace conet::detail {

/// Owns a descriptor (closing it on destruction) and registers it with the running reactor
/// the first time an operation has to wait: once, edge-triggered, for both directions.
class descriptor {
public:
    descriptor() noexcept = default;
    explicit descriptor(int fd) noexcept : fd_(fd) {}
    descriptor(descriptor&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), loop_(std::exchange(other.loop_, nullptr)) {
        adopt_slot();
    }
    descriptor& operator=(descriptor&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = std::exchange(other.fd_, -1);
            loop_ = std::exchange(other.loop_, nullptr);
            adopt_slot();
        }
        return *this;
    }
    descriptor(const descriptor&) = delete;
    descriptor& operator=(const descriptor&) = delete;
    ~descriptor() { close(); }

    /// The operating system's descriptor, or -1 once closed.
    int native_handle() const noexcept { return fd_; }
    /// True until close() (or a move out of this object).
    bool is_open() const noexcept { return fd_ >= 0; }

    /// Closes the descriptor. Coroutines waiting on it resume with conet::error::closed.
    void close() noexcept {
        if (fd_ < 0) return;
        if (loop_) release();
        ::close(fd_); // never retried on EINTR: on Linux the descriptor is gone either way
        fd_ = -1;
    }

    /// Registers `w` to be resumed when the descriptor is ready in direction `d`.
    std::error_code wait(direction d, waiter& w) noexcept {
        loop_core* current = loop_core::current();
        if (loop_ != current || !loop_) [[unlikely]] { // not registered here yet
            if (!current) return error::no_reactor;
            if (fd_ < 0) return errno_code(EBADF);
            if (loop_) return error::wrong_reactor;
            if (auto ec = add_to(*current)) return ec;
        }
        waiter*& entry = loop_->descriptors[fd_].waiting(d);
        if (entry) return error::already_waiting;
        entry = &w;
        w.loop = loop_;
        w.fd = fd_;
        w.dir = d;
        w.in_slot = true;
        return no_error();
    }

    /// Unregisters the descriptor from the reactor it has waited on, so that another reactor
    /// can use it (its next wait there registers it anew): `conn.leave_reactor();` before
    /// handing `conn` to a task of another reactor. Call it on the reactor's thread, with no
    /// operation of this descriptor waiting (else conet::error::already_waiting); a descriptor
    /// that never waited needs no call. Throws std::system_error.
    void leave_reactor() {
        std::error_code ec;
        leave_reactor(ec);
        if (ec) throw_error(ec, "leave_reactor");
    }
    void leave_reactor(std::error_code& ec) noexcept {
        ec.clear();
        if (!loop_) return;
        loop_core* current = loop_core::current();
        if (current && current != loop_) {
            ec = error::wrong_reactor;
            return;
        }
        auto& s = loop_->descriptors[fd_];
        if (s.reader || s.writer) {
            ec = error::already_waiting;
            return;
        }
        ::epoll_ctl(loop_->epoll_fd, EPOLL_CTL_DEL, fd_, nullptr);
        s.owner = nullptr;
        ++s.generation; // an event fetched before this is stale
        loop_ = nullptr;
    }

    /// Forgets the loop without touching it (the reactor is being destroyed; its epoll
    /// instance, and with it the registration, goes away). The descriptor stays open.
    void detach_from_loop() noexcept { loop_ = nullptr; }

private:
    // After a move: the slot now names this object as the owner.
    void adopt_slot() noexcept {
        if (loop_) loop_->descriptors[fd_].owner = this;
    }

    std::error_code add_to(loop_core& l) noexcept {
        auto* s = l.descriptors.grow_to(fd_);
        if (!s) return std::make_error_code(std::errc::not_enough_memory);
        ++s->generation;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = (std::uint64_t{s->generation} << 32) | static_cast<std::uint32_t>(fd_);
        if (::epoll_ctl(l.epoll_fd, EPOLL_CTL_ADD, fd_, &ev) < 0) return errno_code(errno);
        s->owner = this;
        loop_ = &l;
        return {};
    }

    // Leaves the loop: waiters resume with error::closed, the slot is freed for reuse.
    void release() noexcept {
        ::epoll_ctl(loop_->epoll_fd, EPOLL_CTL_DEL, fd_, nullptr);
        auto& s = loop_->descriptors[fd_];
        for (waiter* w : {s.reader, s.writer})
            if (w) w->abort(error::closed);
        s.owner = nullptr;
        ++s.generation;
        loop_ = nullptr;
    }

    int fd_ = -1;
    loop_core* loop_ = nullptr;
};

} // namespace conet::detail

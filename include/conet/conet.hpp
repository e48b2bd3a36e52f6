// conet/conet.hpp - one include for a program on one reactor: sockets, tasks, groups, time,
// signals. Families a program reaches for later have their own headers, so that what every
// includer compiles stays small (README, "Reference"): several reactors (reactor_pool.hpp,
// handoff.hpp), coroutine synchronization (channel.hpp, event.hpp, ...), UNIX sockets
// (unix.hpp, ...), descriptors another library owns (watched_fd.hpp), task dumps
// (task_dump.hpp) and virtual time (virtual_time.hpp).
#pragma once

#include "address.hpp"       // ip_address, endpoint, resolve, host_name, service_port
#include "buffer.hpp"        // mutable_buffer, const_buffer
#include "buffer_pool.hpp"   // buffer_pool, pooled_buffer
#include "cancel.hpp"        // cancel_token, cancel_callback
#include "error.hpp"         // conet::error, how failures are reported
#include "line_reader.hpp"   // line_reader
#include "reactor.hpp"       // reactor: run, spawn, stop, post, work_guard; yield
#include "resolve.hpp"       // async_resolve, connect(host, service)
#include "scheduling.hpp"    // yield, resumption
#include "scope.hpp"         // scope: a task group that ends with the code that made it
#include "signal.hpp"        // signal_set
#include "socket_option.hpp" // set_option, get_option: conet::option::reuse_port, ...
#include "stdio.hpp"         // standard_input
#include "task.hpp"          // task<T>, shield, current_cancel_token
#include "task_group.hpp"    // task_group, task_handle, failure_policy
#include "tcp.hpp"           // tcp_listener, tcp_stream
#include "time.hpp"          // sleep_for, sleep_until, with_timeout
#include "udp.hpp"           // udp_socket
#include "version.hpp"       // CONET_VERSION_*
#include "when.hpp"          // when_all, when_any

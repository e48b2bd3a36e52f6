// conet/conet.hpp - everything conet offers, in one include.
#pragma once

#include "address.hpp"       // ip_address, endpoint, resolve, host_name, service_port
#include "buffer.hpp"        // mutable_buffer, const_buffer
#include "buffer_pool.hpp"   // buffer_pool, pooled_buffer
#include "cancel.hpp"        // cancel_token, cancel_callback
#include "error.hpp"         // conet::error, how failures are reported
#include "handoff.hpp"       // spawn_on, resume_on: work handed between reactors
#include "line_reader.hpp"   // line_reader
#include "reactor.hpp"       // reactor: run, spawn, stop, post, work_guard; yield
#include "reactor_pool.hpp"  // reactor_pool: one reactor per core
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
#include "watched_fd.hpp"    // watched_fd: readiness of a descriptor another library owns
#include "when.hpp"          // when_all, when_any

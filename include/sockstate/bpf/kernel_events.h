// The kernel-event source: the kernel's own events about TCP sockets, from BPF programs on
// tracepoints (never kprobes), read from one ring buffer. What they add to sock_diag is who
// and when: the owner of a socket at connect(), listen() and accept(), the exact time of
// each transition, the counters at an abortive close, and the programs processes exec. Not
// a replacement for sock_diag, which stays the source of truth (baseline, reconciliation).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "sockstate/common/error.h"

namespace sockstate::bpf {

// The task an event ran in. Whether it is the socket's owner depends on the event: the
// transitions to SYN-SENT and LISTEN and an accept() run in the owner's context, the
// passive side's transitions run wherever the packet was processed.
struct Task {
  std::uint32_t tgid = 0;
  std::uint32_t pid = 0;  // the thread
  std::uint32_t uid = 0;
  std::uint32_t ppid = 0;               // its parent process
  std::uint64_t start_boottime_ns = 0;  // the process's start, as /proc/PID/stat field 22
  std::string comm;
};

// A TCP socket changed state (tcp_set_state()).
struct StateEvent {
  std::uint64_t cookie = 0;  // sock_diag's idiag_cookie
  std::uint64_t netns = 0;   // its network namespace's inode
  std::uint64_t boottime_ns = 0;
  std::uint8_t old_state = 0;  // the kernel's TCP_* values, as netlink::SocketEntry::state
  std::uint8_t new_state = 0;
  std::uint8_t family = 0;  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> local{};
  std::array<std::uint8_t, 16> remote{};
  std::uint16_t local_port = 0;
  std::uint16_t remote_port = 0;
  std::uint16_t error = 0;    // sk_err at a transition to CLOSE (ECONNREFUSED, ...); 0: none
  bool has_counters = false;  // the tcp_sock counters below are the kernel's
  std::uint64_t bytes_acked = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_retrans = 0;
  std::uint32_t total_retrans = 0;
  std::uint32_t rtt_us = 0;
  Task task;
};

// accept() or accept4() returned a socket.
struct AcceptEvent {
  std::uint64_t cookie = 0;  // 0 when nothing had asked for it yet
  std::uint64_t inode = 0;
  int fd = -1;
  std::uint64_t boottime_ns = 0;
  Task task;  // the acceptor: its owner
};

// A process exec'd a program.
struct ExecEvent {
  std::uint32_t old_pid = 0;
  std::uint64_t boottime_ns = 0;
  Task task;
  std::string filename;           // as given to execve() (may be relative)
  std::vector<std::string> args;  // argv, the first 256 bytes of it
};

using Event = std::variant<StateEvent, AcceptEvent, ExecEvent>;

struct KernelEventsOptions {
  std::size_t ring_bytes = 8U << 20;  // rounded up to a power of two pages
};

class KernelEvents {
 public:
  // Loads the programs and attaches them. An Error says why not in one line (built without
  // BPF, no kernel BTF, not permitted: CAP_BPF and CAP_PERFMON, lockdown, a kernel too old).
  static Result<std::unique_ptr<KernelEvents>> open(const KernelEventsOptions& options);
  ~KernelEvents();
  KernelEvents(const KernelEvents&) = delete;
  KernelEvents& operator=(const KernelEvents&) = delete;

  // Readable (epoll) when the programs woke it: after an exec event written into an empty
  // ring, or once a quarter of the ring (at most 256 KiB) waits. Other events wait for
  // the next drain (the daemon drains before every destroy event and at every poll).
  [[nodiscard]] int fd() const;
  // Hands at most `budget` waiting events to `each`, oldest first; returns how many. An
  // Error: the ring buffer could not be read.
  Result<std::size_t> drain(std::size_t budget, const std::function<void(const Event&)>& each);
  // Where the reader and the programs are in the ring buffer (bytes since open()). A
  // drain() stops at an event reserved but not yet written (its program was interrupted):
  // what was written after it waits for the next drain(), until `consumer` reaches the
  // `producer` seen before.
  struct Positions {
    std::uint64_t consumer = 0;
    std::uint64_t producer = 0;
  };
  [[nodiscard]] Positions positions() const;
  // Events the ring buffer had no room for, since open().
  [[nodiscard]] std::uint64_t lost() const;

  struct Impl;

 private:
  explicit KernelEvents(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether this build has the kernel-event source at all.
bool built_with_bpf();

}  // namespace sockstate::bpf

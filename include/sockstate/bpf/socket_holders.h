// Who holds each socket, from the kernel's task_file iterator (BPF): the pairs a
// /proc/<pid>/fd walk reads with a readlink each, in one read. For `snapshot --process`
// and the daemon's startup walk; the /proc walk stays where BPF is not available.
#pragma once

#include <cstdint>
#include <vector>

#include "sockstate/common/error.h"

namespace sockstate::bpf {

struct SocketHolder {
  std::int32_t pid = 0;     // the holding process (tgid)
  std::uint32_t inode = 0;  // the socket's inode, as in /proc/<pid>/fd's socket:[N]
};

// Every (process, socket inode) pair of a socket fd of any family (as the /proc walk finds
// them: the sock is not read, which would cost a cache miss a fd), in the
// iterator's order (by pid). An Error says in one line why not (built without BPF, no
// kernel BTF, not permitted: CAP_BPF and CAP_PERFMON, a pid namespace of our own, whose
// pids the iterator does not give).
Result<std::vector<SocketHolder>> socket_holders();

}  // namespace sockstate::bpf

#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/common/fd.h"
#include "sockstate/proc/cgroup.h"

namespace sockstate::proc {

// One network namespace of the host.
struct NetnsInfo {
  std::uint64_t inode = 0;  // the namespace's identity (nsfs inode), as in unmapped.netns
  std::int32_t pid = 0;     // the lowest pid in it; 0 when it has no process
  std::string path;         // what to open it by: <proc>/<pid>/ns/net or /run/netns/<name>
  std::string name;         // its /run/netns name (`ip netns`), if it has one
  std::string cgroup;       // the cgroup v2 path of `pid`
  // The container of `pid` (the namespace's first process): for a Kubernetes pod, whose
  // containers share one namespace, usually its sandbox ("pause") container.
  std::optional<Container> container;
};

struct NetnsScanStats {
  std::uint64_t pids_scanned = 0;
  std::uint64_t pids_unreadable = 0;  // pids whose ns/net could not be stat()ed (gone, EPERM)
  std::uint64_t named = 0;            // /run/netns entries
};

// The distinct network namespaces of the running processes (one stat of <proc>/<pid>/ns/net
// per pid, in pid order) and of the entries of `run_netns` (ip netns). Sorted by inode.
// Fails only when `proc_root` cannot be listed; a missing `run_netns` is no error.
Result<std::vector<NetnsInfo>> discover_netns(const std::string& proc_root = "/proc",
                                              const std::string& run_netns = "/run/netns",
                                              NetnsScanStats* stats = nullptr);

// Opens a namespace file (O_RDONLY | O_CLOEXEC) and checks that it is a network namespace
// whose inode is `expected_inode` (0: any): a pid recycled since discovery is refused.
Result<Fd> open_netns(const std::string& path, std::uint64_t expected_inode = 0);

// setns(netns_fd, CLONE_NEWNET) for the calling thread (for run_in_netns()).
Result<void> join_netns(int netns_fd);

// Runs `f` on a short-lived thread that has joined the network namespace `netns_fd`
// (setns(2) changes only the calling thread). Sockets made there stay in that namespace
// for their life, wherever they are used. Needs CAP_SYS_ADMIN. `f` returns a Result.
template <typename F>
auto run_in_netns(int netns_fd, F&& f) -> std::invoke_result_t<F> {
  using R = std::invoke_result_t<F>;
  std::optional<R> result;
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      if (auto joined = join_netns(netns_fd); !joined) {
        result.emplace(joined.error());
        return;
      }
      result.emplace(std::forward<F>(f)());
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) {
    std::rethrow_exception(failure);
  }
  return std::move(*result);
}

}  // namespace sockstate::proc

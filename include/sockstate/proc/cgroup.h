#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "sockstate/common/fd.h"

namespace sockstate::proc {

// Cgroup paths are cut to this many bytes (after sanitizing) in records.
inline constexpr std::size_t kMaxCgroupPathBytes = 512;

// The container a cgroup v2 path belongs to, as OCSF's `container` object wants it.
// At least `uid` or `name` is set (the schema requires one of them).
struct Container {
  std::string uid;           // the runtime's container id (64 hex digits), or empty
  std::string name;          // LXC's container name; the others' names are not in the path
  std::string runtime;       // "docker", "containerd", "cri-o", "podman", "lxc"; empty: unknown
  std::string orchestrator;  // "Kubernetes" when the path names a pod
  std::string pod_uuid;      // the pod's UID, as a UUID, when the path names a pod
  bool operator==(const Container&) const = default;
};

// Reads the container from a cgroup v2 path, by the names the runtimes give their cgroups:
//   docker        /system.slice/docker-<id>.scope, /docker/<id>
//   podman        /machine.slice/libpod-<id>.scope (conmon's libpod-conmon-<id> is not one)
//   containerd    .../cri-containerd-<id>.scope
//   cri-o         .../crio-<id>.scope (crio-conmon-<id> is not one)
//   Kubernetes    kubepods[-<qos>]-pod<uid>.slice (systemd driver, '_' for '-'),
//                 /kubepods/<qos>/pod<uid>/<id> (cgroupfs driver)
//   LXC           /lxc.payload.<name>
// The deepest match wins (a container nested in another is reported as the inner one).
// nullopt when the path names no container.
std::optional<Container> container_from_cgroup(std::string_view path);

// The systemd unit a cgroup path belongs to: its first component that is a unit but not a
// slice ("/system.slice/nginx.service" -> "nginx.service", "/user.slice/user-1000.slice/
// user@1000.service/app.slice/x.scope" -> "user@1000.service"). Empty when there is none.
std::string systemd_unit_from_cgroup(std::string_view path);

// The cgroup v2 path in /proc/<pid>/cgroup contents (its "0::" line); empty without one.
std::string cgroup2_path_from_proc(std::string_view proc_pid_cgroup);

// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo ("/sys/fs/cgroup",
// or "/sys/fs/cgroup/unified" on a hybrid system); empty when it is not mounted.
std::string find_cgroup2_mount(const std::string& mountinfo = "/proc/self/mountinfo");

// What a socket's INET_DIAG_CGROUP_ID resolves to.
struct CgroupInfo {
  std::string path;  // relative to the cgroup2 root, "/" first; sanitized, bounded
  std::string unit;  // systemd_unit_from_cgroup(path)
  std::optional<Container> container;
};

struct CgroupStats {
  std::uint64_t walks = 0;       // walks of the cgroup tree
  std::uint64_t by_handle = 0;   // ids the kernel answered directly
  std::uint64_t cgroups = 0;     // directories seen by the last walk
  std::uint64_t unresolved = 0;  // distinct ids no walk found (cgroup removed since)
  std::uint64_t errors = 0;      // directories that could not be read
};

// cgroup v2 id -> path. A cgroup's id is its directory's kernfs file handle, so an id is
// first asked of the kernel directly (open_by_handle_at(), CAP_DAC_READ_SEARCH); without
// the capability, one walk of the tree maps every id (on 64-bit kernels the id is the
// directory's inode number). The direct question is also the exact one: a walk's readdir
// can miss a live cgroup while a sibling is being removed (kernfs before 6.15). An id
// neither finds is remembered as unresolved and never asked again (its cgroup was removed,
// or lives in a cgroup namespace's hidden part). Not thread-safe; pointers stay valid until
// the next resolve().
class CgroupResolver {
 public:
  // `root`: the cgroup2 mount point; empty: find_cgroup2_mount(). When there is none,
  // every id resolves to nullptr.
  explicit CgroupResolver(std::string root = {});

  const CgroupInfo* resolve(std::uint64_t id);

  [[nodiscard]] const std::string& root() const { return root_; }
  [[nodiscard]] const CgroupStats& stats() const { return stats_; }

 private:
  void walk();
  [[nodiscard]] std::optional<std::string> path_by_handle(std::uint64_t id) const;

  std::string root_;
  Fd root_fd_;  // root_, for open_by_handle_at()
  std::unordered_map<std::uint64_t, CgroupInfo> by_id_;
  std::unordered_set<std::uint64_t> unresolved_;
  CgroupStats stats_;
};

}  // namespace sockstate::proc

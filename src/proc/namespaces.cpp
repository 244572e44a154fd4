#include "sockstate/proc/namespaces.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

#include "proc_files.h"
#include "sockstate/proc/socket_owners.h"

namespace sockstate::proc {
namespace {

using detail::kCgroupBuffer;
using detail::parse_pid;

using NetnsByInode = std::map<std::uint64_t, NetnsInfo>;

// The network namespace of one pid, unless a lower pid already names it: a namespace is
// described by its lowest pid, whatever order /proc lists them in.
void add_pid_netns(const std::string& proc_root, int proc_fd, const char* pid_name,
                   std::int32_t pid, NetnsByInode& found, NetnsScanStats& st,
                   std::vector<char>& buf) {
  const std::string ns = std::string(pid_name) + "/ns/net";
  struct stat s {};
  if (::fstatat(proc_fd, ns.c_str(), &s, 0) != 0) {
    ++st.pids_unreadable;
    return;
  }
  const auto inode = static_cast<std::uint64_t>(s.st_ino);
  auto it = found.find(inode);
  if (it != found.end() && it->second.pid != 0 && it->second.pid < pid) {
    return;
  }
  NetnsInfo info;
  info.inode = inode;
  info.pid = pid;
  info.path = proc_root;
  info.path.append("/").append(ns);
  Fd pid_dir(::openat(proc_fd, pid_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (pid_dir.valid() && detail::read_at(pid_dir.get(), "cgroup", kCgroupBuffer, buf) == 0) {
    info.cgroup = sanitize_text(cgroup2_path_from_proc(std::string_view(buf.data(), buf.size())),
                                kMaxCgroupPathBytes, nullptr);
    info.container = container_from_cgroup(info.cgroup);
  }
  found.insert_or_assign(inode, std::move(info));
}

Result<void> add_process_netns(const std::string& proc_root, NetnsByInode& found,
                               NetnsScanStats& st) {
  std::vector<char> buf;
  DIR* proc = ::opendir(proc_root.c_str());
  if (proc == nullptr) {
    return errno_error("open " + proc_root);
  }
  const int proc_fd = ::dirfd(proc);
  while (const dirent* d = ::readdir(proc)) {
    const std::int32_t pid = parse_pid(d->d_name);
    if (pid < 0) {
      continue;
    }
    ++st.pids_scanned;
    add_pid_netns(proc_root, proc_fd, d->d_name, pid, found, st, buf);
  }
  ::closedir(proc);
  return {};
}

// The namespaces `ip netns` named (bind mounts in run_netns): a name for those processes
// hold, and the only way to reach those no process is in.
void add_named_netns(const std::string& run_netns, NetnsByInode& found, NetnsScanStats& st) {
  DIR* named = ::opendir(run_netns.c_str());
  if (named == nullptr) {
    return;
  }
  const int named_fd = ::dirfd(named);
  while (const dirent* d = ::readdir(named)) {
    const std::string_view name(d->d_name);
    if (name == "." || name == "..") {
      continue;
    }
    struct stat s {};
    if (::fstatat(named_fd, d->d_name, &s, 0) != 0) {
      continue;  // an unmounted leftover file
    }
    ++st.named;
    auto& info = found[static_cast<std::uint64_t>(s.st_ino)];
    if (info.inode == 0) {
      info.inode = static_cast<std::uint64_t>(s.st_ino);
      info.path = run_netns + "/" + std::string(name);
    }
    if (info.name.empty()) {
      info.name = sanitize_text(name, kMaxCgroupPathBytes, nullptr);
    }
  }
  ::closedir(named);
}

}  // namespace

Result<std::vector<NetnsInfo>> discover_netns(const std::string& proc_root,
                                              const std::string& run_netns, NetnsScanStats* stats) {
  NetnsScanStats local;
  NetnsScanStats& st = stats != nullptr ? *stats : local;
  NetnsByInode found;
  if (auto scanned = add_process_netns(proc_root, found, st); !scanned) {
    return scanned.error();
  }
  add_named_netns(run_netns, found, st);

  std::vector<NetnsInfo> out;
  out.reserve(found.size());
  for (auto& [inode, info] : found) {
    out.push_back(std::move(info));
  }
  return out;
}

Result<Fd> open_netns(const std::string& path, std::uint64_t expected_inode) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return errno_error("open network namespace " + path);
  }
  struct stat s {};
  if (::fstat(fd.get(), &s) != 0) {
    return errno_error("stat network namespace " + path);
  }
  if (expected_inode != 0 && static_cast<std::uint64_t>(s.st_ino) != expected_inode) {
    return Error{ESRCH, path + " is no longer network namespace " + std::to_string(expected_inode)};
  }
  return fd;
}

Result<void> join_netns(int netns_fd) {
  if (::setns(netns_fd, CLONE_NEWNET) != 0) {
    return errno_error("setns (network namespace)");
  }
  return {};
}

}  // namespace sockstate::proc

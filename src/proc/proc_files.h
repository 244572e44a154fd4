#pragma once
// Reading /proc, shared by the proc library's walks (not a public header).

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sockstate::proc::detail {

// /proc/<pid>/cgroup: one line per v1 hierarchy, then "0::<path>"; paths may be long
// (Kubernetes).
inline constexpr std::size_t kCgroupBuffer = 8192;

// A pid from an all-digits /proc entry name; -1 for anything else (self, net, sys, ...).
std::int32_t parse_pid(const char* name);

// Reads up to `cap` bytes of dir_fd/name into buf (resized to what was read).
// Returns 0 or an errno.
int read_at(int dir_fd, const char* name, std::size_t cap, std::vector<char>& buf);

}  // namespace sockstate::proc::detail

#pragma once

#include <cstdint>
#include <string>

namespace sockstate::ocsf {

// Who is reporting: read once per run and put on every record's `device`.
struct HostIdentity {
  std::string hostname;        // /proc/sys/kernel/hostname (this UTS namespace)
  std::string machine_id;      // /etc/machine-id; empty when the host has none
  std::string boot_id;         // /proc/sys/kernel/random/boot_id
  std::string kernel_release;  // /proc/sys/kernel/osrelease
};

// Reads the identity below `root` ("/" on a live system; a fake tree in tests). Missing
// files leave their field empty: a record without device.uid is better than none.
HostIdentity read_host_identity(const std::string& root = "/");

// The inode of the network namespace `root`/proc/self/ns/net points at; 0 if unknown.
std::uint64_t read_netns_inode(const std::string& root = "/");

}  // namespace sockstate::ocsf

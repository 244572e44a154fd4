#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "sockstate/collect/collector.h"
#include "sockstate/common/error.h"
#include "sockstate/flow/address.h"
#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/request.h"
#include "sockstate/netlink/types.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/socket_owners.h"
#include "sockstate/snapshot/output.h"

namespace sockstate::snapshot {

struct SnapshotOptions {
  std::uint32_t states = netlink::kAllStates;  // kernel TCP states mask (UDP: see flow)
  bool inet = true;
  bool inet6 = true;
  bool tcp = true;  // --protocol
  bool udp = true;
  netlink::PortFilter ports;  // run in the kernel as inet_diag bytecode
  bool with_info = true;      // ask for tcp_info (traffic, rtt); --no-info turns it off
  bool table = false;         // --format table: a line per socket for people, not records
  bool process = false;       // --process: actor.process / actor.user from /proc
  bool all_netns = false;     // --all-netns: every network namespace, not just ours
  // --bpf: who holds which socket from the kernel's task_file iterator (auto: where it
  // loads; kBpf: required) or from /proc/<pid>/fd.
  collect::OwnerWalk owner_walk = collect::OwnerWalk::kAuto;
  std::string proc_root = "/proc";
  std::string run_netns = "/run/netns";
  std::string cgroup_root;  // the cgroup2 mount; empty: found in /proc/self/mountinfo
  // The networks called inside for direction; nullopt: the contract's default.
  std::optional<flow::NetworkSet> internal_networks;
};

struct SnapshotStats {
  netlink::DumpStats dump;  // the dumps whose sockets became records
  std::uint64_t records = 0;
  std::uint64_t listeners_seen = 0;    // LISTEN sockets used to decide direction
  std::uint64_t namespaces = 0;        // network namespaces dumped
  std::uint64_t namespace_errors = 0;  // namespaces that could not be dumped (gone, denied)
  std::string first_namespace_error;   // the first of those, for the one warning line
  proc::ScanStats owners;              // the /proc walk (--process)
  bool owners_by_iterator = false;     // its holders came from the kernel's iterator
  std::string iterator_unused;         // why not, where it was allowed
  std::uint64_t with_owner = 0;        // records that name a process
  proc::CgroupStats cgroups;
};

// One snapshot: for each namespace (ours, or with `all_netns` every one, through netlink
// sockets made inside it), its addresses and LISTEN sockets (for direction), then the
// requested sockets of each family, each written as one record as soon as its datagram
// arrives. Nothing
// is held but the listener table, the cookies already written and, with `process`, the
// inode -> process map of one /proc walk made first. A namespace that cannot be dumped
// (it went away, or we may not enter it) is counted and skipped.
Result<SnapshotStats> run_snapshot(const SnapshotOptions& options, ocsf::RecordBuilder& builder,
                                   RecordOutput& output);

}  // namespace sockstate::snapshot

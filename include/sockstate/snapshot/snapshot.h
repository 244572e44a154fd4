#pragma once

#include <cstdint>

#include "sockstate/common/error.h"
#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/request.h"
#include "sockstate/netlink/types.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/snapshot/output.h"

namespace sockstate::snapshot {

struct SnapshotOptions {
  std::uint32_t states = netlink::kAllStates;  // kernel states mask
  bool inet = true;
  bool inet6 = true;
  netlink::PortFilter ports;  // run in the kernel as inet_diag bytecode
  bool with_info = true;      // ask for tcp_info (traffic, rtt); --no-info turns it off
};

struct SnapshotStats {
  netlink::DumpStats dump;  // the dumps whose sockets became records
  std::uint64_t records = 0;
  std::uint64_t listeners_seen = 0;  // LISTEN sockets used to decide direction
};

// One snapshot: for each family, the LISTEN sockets (for direction), then the requested
// sockets, each written as one record as soon as its datagram arrives. Nothing is held
// but the listener table and the cookies already written.
Result<SnapshotStats> run_snapshot(const SnapshotOptions& options, ocsf::RecordBuilder& builder,
                                   RecordOutput& output);

}  // namespace sockstate::snapshot

#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "sockstate/netlink/types.h"
#include "sockstate/ocsf/direction.h"
#include "sockstate/ocsf/host.h"
#include "sockstate/ocsf/tcp_state.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/socket_owners.h"

namespace sockstate::ocsf {

// What is fixed for one run of sockstate; injected so golden records are byte-exact.
struct RecordContext {
  std::string product_version;
  std::string vendor_name = "sockstate";
  std::string log_name = "sockstate";
  HostIdentity host;
  int device_type_id = 0;         // OCSF device type_id, 0 Unknown
  std::uint64_t netns_inode = 0;  // unmapped.netns when known (0: left out)
  // Community ID v1 seed for connection_info.community_uid (0 is everyone's default).
  std::uint16_t community_id_seed = 0;
  // 64 random bits per run: the first half of every metadata.uid of the run.
  std::uint64_t run_id = 0;
  // Milliseconds since the epoch, UTC: when a state was observed.
  std::function<std::int64_t()> clock_ms;
};

// A random run id (getrandom), for RecordContext::run_id.
std::uint64_t random_run_id();
// Milliseconds since the epoch from CLOCK_REALTIME.
std::int64_t realtime_ms();

// Who is behind a socket. Every part is optional; pointers must outlive the append call.
struct Attribution {
  const proc::ProcessInfo* process = nullptr;  // actor.process and actor.user
  const proc::CgroupInfo* cgroup = nullptr;  // the socket's cgroup: unmapped.cgroup, .systemd_unit
  // The container of the socket's namespace, used when the socket's cgroup names none.
  const proc::Container* netns_container = nullptr;
  std::uint64_t netns = 0;  // unmapped.netns; 0: the context's
};

// What a record says beyond the socket itself: the daemon's events.
struct RecordFields {
  Activity activity = Activity::kUnknown;
  std::int64_t time_ms = 0;                    // when observed; 0: the context's clock, now
  int status_id = -1;                          // -1: none; 1 Success, 2 Failure
  std::int64_t start_ms = 0;                   // start_time when > 0
  std::int64_t end_ms = 0;                     // end_time when > 0 (and duration, with start_ms)
  const struct Traffic* traffic = nullptr;     // instead of the entry's own tcp_info
  bool traffic_from_entry = true;              // without `traffic`: from the tcp_info
  const struct Traffic* cumulative = nullptr;  // cumulative_traffic
  int previous_state = -1;                     // kernel state before, for State Change
  Attribution owner;
};

// Builds records per the output contract (../shared/docs/output-contract.md), one line
// of JSON each. Keeps metadata.sequence: strictly increasing across all records it builds.
class RecordBuilder {
 public:
  explicit RecordBuilder(RecordContext context);

  // Appends the one-shot snapshot record for `entry`, JSON and '\n', to out.
  void append_snapshot_record(const netlink::SocketEntry& entry, const Orientation& orientation,
                              std::string& out, const Attribution& owner = {});

  // Appends a daemon event record (activity 99 is written as "State Change").
  void append_record(const netlink::SocketEntry& entry, const Orientation& orientation,
                     const RecordFields& fields, std::string& out);

  [[nodiscard]] std::uint64_t last_sequence() const { return sequence_; }
  [[nodiscard]] const RecordContext& context() const { return context_; }

 private:
  RecordContext context_;
  // Rendered once: what every record of an activity, or of an IP version, shares.
  std::array<std::string, 8> envelope_;  // activity_id .. severity, per activity 0..7
  std::string state_change_envelope_;    // activity 99, "State Change"
  // metadata.version, product, profiles: ["host"], and ["host", "container"]
  std::array<std::string, 2> metadata_head_;
  std::array<std::string, 2> connection_head_;  // protocol_* for IPv4, IPv6
  std::string device_json_;
  std::string boot_prefix_;  // correlation_uid prefix from the boot id
  std::uint64_t sequence_ = 0;
  std::string scratch_;  // reused for the message and ids: no allocation per record
};

// What the application sent and received on a connection, from its tcp_info: the kernel's
// byte counters less the SYN and FIN sequence numbers they include. `active_open`: this
// end sent the SYN (outbound).
struct Traffic {  // NOLINT: also named in RecordFields above
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t segs_sent = 0;
  std::uint64_t segs_received = 0;
};
Traffic application_traffic(const netlink::SocketEntry& entry, bool active_open);

// metadata.correlation_uid for a socket: stable for the socket's life, unique across
// hosts and boots (boot id + kernel socket cookie). Exposed for tests and the daemon.
std::string correlation_uid(const std::string& boot_id, std::uint64_t cookie);
void append_correlation_uid(std::string& out, std::string_view boot_id, std::uint64_t cookie);

// actor.process.uid: UUID-shaped, unique per boot and process, stable across runs: the
// first 64 bits of the boot id, then the pid (24 bits) and its start time in clock ticks.
void append_process_uid(std::string& out, std::string_view boot_id, std::int32_t pid,
                        std::uint64_t start_ticks);

// Text form of an endpoint address: IPv4-mapped IPv6 becomes dotted IPv4.
using AddressBuffer = std::array<char, 48>;  // >= INET6_ADDRSTRLEN
std::string_view format_address(const Address& a, AddressBuffer& buf);
std::string address_text(const Address& a);

}  // namespace sockstate::ocsf

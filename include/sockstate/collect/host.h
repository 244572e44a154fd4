#pragma once

#include <cstdint>
#include <string>

#include "sockstate/flow/host.h"
#include "sockstate/flow/orientation.h"

namespace sockstate::collect {

// sockstate's application id for sd_id128_get_machine_app_specific(): device.uid is the
// machine id keyed through it (HMAC-SHA256), never the machine id itself, which
// machine-id(5) says must not leave the host.
inline constexpr const char* kAppId = "2a54fd2202f0451987824b8e17711400";

// Reads the identity below `root` ("/" on a live system; a fake tree in tests). Missing
// files leave their field empty: a record without device.uid is better than none. The
// device uid comes from libsystemd, which reads the live /etc/machine-id: with another
// root it is derived from that root's machine id by the same function only on "/".
flow::HostIdentity read_host_identity(const std::string& root = "/");

// The preferred source address of the default route of the main table (IPv4, else
// IPv6), as text: the route's own RTA_PREFSRC, else the source the kernel picks towards
// its gateway. "" when there is no default route.
std::string default_route_source();

// The inode of the network namespace `root`/proc/self/ns/net points at; 0 if unknown.
std::uint64_t read_netns_inode(const std::string& root = "/");

// net.ipv4.ip_local_port_range of the calling thread's network namespace into the table;
// keeps the default when it cannot.
void read_ephemeral_range(flow::ListenerTable& table, const std::string& root = "/");

// A random run id (getrandom), for RecordContext::run_id.
std::uint64_t random_run_id();

// Milliseconds since the epoch from CLOCK_REALTIME.
std::int64_t realtime_ms();
// Milliseconds from CLOCK_MONOTONIC: for intervals and deadlines.
std::int64_t monotonic_ms();

// The host's offset from UTC in minutes at `time_ms` (TZ, /etc/localtime). Asks libc at
// most once per quarter hour of `time_ms`: offsets change on those boundaries only.
class TimezoneOffset {
 public:
  std::int32_t at(std::int64_t time_ms);

 private:
  std::int64_t slot_ = -1;
  std::int32_t offset_ = 0;
};

}  // namespace sockstate::collect

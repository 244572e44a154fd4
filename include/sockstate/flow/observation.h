#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "sockstate/flow/address.h"
#include "sockstate/flow/orientation.h"
#include "sockstate/flow/traffic.h"
#include "sockstate/netlink/types.h"

// Who owns a socket is found by proc (the /proc walk, users, cgroups); flow only points
// at what was found, so it names those types without depending on that library.
namespace sockstate::proc {
struct ProcessInfo;
struct UserInfo;
struct CgroupInfo;
struct Container;
}  // namespace sockstate::proc

namespace sockstate::flow {

// What a record reports happened (the contract's activity tables). The OCSF renderer
// maps each to its activity_id and caption.
enum class Activity : std::uint8_t {
  kUnknown,
  kOpen,
  kClose,
  kFail,
  kRefuse,
  kTraffic,
  kListen,
  kStateChange,  // 99 Other, "State Change"
  kBound,        // 99 Other, "Bound"
};

// status_id: whether the observed activity happened as it should.
enum class Status : std::uint8_t { kUnknown = 0, kSuccess = 1, kFailure = 2 };

// The contract's one-shot snapshot table: what a socket in this kernel state is reported
// as when nothing is known of its past. A snapshot reports no event that did not happen.
Activity snapshot_activity(std::uint8_t kernel_state);
// The same for a socket of `protocol`. UDP has no connection states: the kernel keeps an
// unconnected UDP socket in TCP_CLOSE and a connected one in TCP_ESTABLISHED. One bound
// and not connected receives from anyone: a Listen; a connected one is a Traffic, as an
// established TCP connection is.
Activity snapshot_activity(std::uint8_t protocol, std::uint8_t kernel_state);

// What a socket of `protocol` a poll finds for the first time, new since the last poll, is
// reported as: kListen, kOpen, or kBound (a TCP socket bound and not used yet: no record
// until it listens or connects). A UDP socket is a Listen while unconnected, an Open once
// connected.
Activity appearance(std::uint8_t protocol, std::uint8_t kernel_state);

// The kernel states to ask a dump of `protocol` for, given the TCP states a user named
// (--state): for UDP, LISTEN is a bound, unconnected socket (TCP_CLOSE) and ESTABLISHED a
// connected one; UDP has no other state, so a mask naming only others asks for none (0).
std::uint32_t kernel_states_for(std::uint8_t protocol, std::uint32_t tcp_states);

// Whether a socket in this kernel state is past its handshake (the connection happened).
bool handshake_done(std::uint8_t kernel_state);

// An Open record's status: the attempt is seen, its outcome not while the handshake is
// pending (SYN-SENT, SYN-RECEIVED): Unknown then, Success after it.
Status open_status(std::uint8_t kernel_state);

// A traffic delta and the observation period it covers.
struct TrafficPeriod {
  Traffic delta;
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
};

// Who is behind a socket. Every part is optional; pointers must outlive the rendering.
struct Owner {
  const proc::ProcessInfo* process = nullptr;  // actor.process (--process)
  const proc::UserInfo* user = nullptr;        // actor.user: the socket's owner uid
  const proc::CgroupInfo* cgroup = nullptr;  // the socket's cgroup: unmapped.cgroup, .systemd_unit
  // The container of the socket's namespace, used when the socket's cgroup names none.
  const proc::Container* netns_container = nullptr;
  std::uint64_t netns = 0;  // unmapped.netns; 0: the renderer's default
};

// The socket a record is about: what a record writes of it and what attribution needs,
// taken from the kernel's entry by whoever observed it, so that the renderer never reads
// the kernel's struct (a socket of another source or protocol is one more facts_of()).
struct SocketFacts {
  std::uint8_t protocol = 6;  // IPPROTO_TCP 6, IPPROTO_UDP 17
  std::uint8_t state = 0;     // the kernel's state number
  std::uint64_t cookie = 0;
  std::uint32_t inode = 0;           // a full socket's inode; 0: none
  std::optional<std::uint32_t> uid;  // the owner's uid, when a poll saw the full socket
  std::uint64_t cgroup_id = 0;       // the cgroup v2 id of its creator; 0: none
  std::uint64_t netns = 0;           // nsfs inode of its namespace; 0: unknown
  struct Queues {
    std::uint32_t recv = 0;
    std::uint32_t send = 0;
  };
  std::optional<Queues> queues;  // a live full socket's (a poll's, not a destroy event's)
  struct Path {
    std::uint32_t rtt_us = 0;
    std::uint32_t total_retrans = 0;
  };
  std::optional<Path> path;  // a connection's tcp_info (never a listener's)
};

// What a record says of kernel socket `e`. `live`: from a poll, so its queues mean
// something; `uid_known`: e.uid is its owner's.
SocketFacts facts_of(const netlink::SocketEntry& e, bool live, bool uid_known);

// One finished flow observation: everything a record says, decided. The OCSF renderer
// writes it and decides nothing.
struct Observation {
  Activity activity = Activity::kUnknown;
  Status status = Status::kSuccess;
  std::string_view status_detail;  // static text ("reset", "aborted"); empty: none
  std::int64_t time_ms = 0;        // when observed (ms since the epoch, UTC)
  std::int32_t timezone_offset_min = 0;
  SocketFacts socket;
  Orientation orientation;
  Endpoint local;                        // as written: repaired when the kernel cleared it
  Endpoint remote;                       // port 0: the kernel cleared it, written without
  bool local_inferred = false;           // local.ip is the route's preferred source, not observed
  std::optional<Traffic> cumulative;     // lifetime totals, local view
  std::optional<TrafficPeriod> traffic;  // the change over a period that ends here
  int previous_state = -1;               // kernel state before (State Change)
  std::int64_t start_ms = 0;             // start_time: only when the start was seen
  std::int64_t end_ms = 0;               // end_time: only on terminal records
  // > 0: a summary of this many sockets' Closes (tracking::ShortLivedLimit): OCSF `count`,
  // no socket identity (cookie 0, no local port), start_time/end_time span them.
  std::uint32_t count = 0;
  Owner owner;
};

// The endpoints of a socket as the kernel reports them.
Endpoint local_endpoint(const netlink::SocketEntry& e);
Endpoint remote_endpoint(const netlink::SocketEntry& e);

// Endpoints as a record writes them. After an abort the kernel clears a socket's source
// address (a destroy event carries 0.0.0.0 or ::) and, after a failed blocking connect(),
// the remote port: take them from what the polls saw under the same cookie, and failing
// that the source the kernel's route to the peer gives (asked only then), marked inferred.
struct RepairedEndpoints {
  Endpoint local;
  Endpoint remote;
  bool local_inferred = false;
};
RepairedEndpoints repair_endpoints(const Endpoint& local, const Endpoint& remote,
                                   const Endpoint& polled_local, const Endpoint& polled_remote,
                                   const std::function<std::optional<Address>()>& route_source);

// A one-shot snapshot record's observation of a polled socket (no traffic period).
Observation observe_snapshot(const netlink::SocketEntry& e, const Orientation& o,
                             std::int64_t now_ms);

// The totals to report for a polled socket, when it has counters and a connection.
std::optional<Traffic> live_totals(const netlink::SocketEntry& e, const Orientation& o);

}  // namespace sockstate::flow

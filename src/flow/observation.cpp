#include "sockstate/flow/observation.h"

#include <array>

namespace sockstate::flow {

Activity snapshot_activity(std::uint8_t kernel_state) {
  // Index: kernel idiag_state (include/net/tcp_states.h).
  static constexpr std::array<Activity, 14> kTable = {
      Activity::kUnknown,  // 0: not a TCP state
      Activity::kTraffic,  // ESTABLISHED
      Activity::kOpen,     // SYN-SENT
      Activity::kOpen,     // SYN-RECV
      Activity::kTraffic,  // FIN-WAIT-1: the connection still moves data
      Activity::kTraffic,  // FIN-WAIT-2
      Activity::kClose,    // TIME-WAIT: ended; the kernel only lingers
      Activity::kBound,    // CLOSE: bound, never used (the only CLOSE sockets dumped)
      Activity::kTraffic,  // CLOSE-WAIT
      Activity::kTraffic,  // LAST-ACK
      Activity::kListen,   // LISTEN
      Activity::kTraffic,  // CLOSING
      Activity::kOpen,     // NEW_SYN_RECV (request socket)
      Activity::kBound,    // BOUND_INACTIVE
  };
  static_assert(kTable.size() == 14, "one row per kernel TCP state 0..13");
  return kernel_state < kTable.size() ? kTable[kernel_state] : Activity::kUnknown;
}

Activity snapshot_activity(std::uint8_t protocol, std::uint8_t kernel_state) {
  if (has_tcp_states(protocol)) {
    return snapshot_activity(kernel_state);
  }
  switch (kernel_state) {
    case netlink::kTcpClose:
      return Activity::kListen;
    case netlink::kTcpEstablished:
      return Activity::kTraffic;
    default:
      return Activity::kUnknown;
  }
}

Activity appearance(std::uint8_t protocol, std::uint8_t kernel_state) {
  if (!has_tcp_states(protocol)) {
    return kernel_state == netlink::kTcpEstablished ? Activity::kOpen : Activity::kListen;
  }
  switch (kernel_state) {
    case netlink::kTcpClose:
      return Activity::kBound;
    case netlink::kTcpListen:
      return Activity::kListen;
    default:
      return Activity::kOpen;
  }
}

std::uint32_t kernel_states_for(std::uint8_t protocol, std::uint32_t tcp_states) {
  if (has_tcp_states(protocol)) {
    return tcp_states;
  }
  std::uint32_t states = 0;
  if ((tcp_states & netlink::state_bit(netlink::kTcpListen)) != 0) {
    states |= netlink::state_bit(netlink::kTcpClose);
  }
  if ((tcp_states & netlink::state_bit(netlink::kTcpEstablished)) != 0) {
    states |= netlink::state_bit(netlink::kTcpEstablished);
  }
  return states;
}

bool handshake_done(std::uint8_t kernel_state) {
  return kernel_state != netlink::kTcpSynSent && kernel_state != netlink::kTcpSynRecv &&
         kernel_state != netlink::kTcpNewSynRecv && kernel_state != netlink::kTcpListen &&
         kernel_state != netlink::kTcpClose;
}

Status open_status(std::uint8_t kernel_state) {
  return handshake_done(kernel_state) ? Status::kSuccess : Status::kUnknown;
}

Endpoint local_endpoint(const netlink::SocketEntry& e) {
  return {normalized_address(e.family, e.local_addr), e.local_port};
}

Endpoint remote_endpoint(const netlink::SocketEntry& e) {
  return {normalized_address(e.family, e.remote_addr), e.remote_port};
}

std::optional<Traffic> live_totals(const netlink::SocketEntry& e, const Orientation& o) {
  if (!has_tcp_states(e.protocol) || !e.has_tcp_info || !o.connected()) {
    return std::nullopt;  // UDP: the kernel keeps no byte counters of a socket
  }
  return application_traffic(e, o.shape == Orientation::Shape::kInitiated);
}

RepairedEndpoints repair_endpoints(const Endpoint& local, const Endpoint& remote,
                                   const Endpoint& polled_local, const Endpoint& polled_remote,
                                   const std::function<std::optional<Address>()>& route_source) {
  RepairedEndpoints r{local, remote, false};
  if (is_unspecified(r.local.ip) && !is_unspecified(polled_local.ip)) {
    r.local.ip = polled_local.ip;
  }
  if (r.local.port == 0) {
    r.local.port = polled_local.port;
  }
  if (r.remote.port == 0 && r.remote.ip == polled_remote.ip) {
    r.remote.port = polled_remote.port;
  }
  if (is_unspecified(r.local.ip) && !is_unspecified(r.remote.ip) && route_source) {
    if (auto source = route_source()) {
      r.local.ip = *source;
      r.local_inferred = true;
    }
  }
  return r;
}

SocketFacts facts_of(const netlink::SocketEntry& e, bool live, bool uid_known) {
  SocketFacts f;
  f.protocol = e.protocol;
  f.state = e.state;
  f.cookie = e.cookie;
  // TIME-WAIT and request sockets carry inode 0 and uid 0 of nobody (see SocketEntry).
  f.inode = e.full_socket ? e.inode : 0;
  if (uid_known) {
    f.uid = e.uid;
  }
  f.cgroup_id = e.cgroup_id;
  f.netns = e.netns;
  if (e.full_socket && live) {
    f.queues = SocketFacts::Queues{e.recv_q, e.send_q};
  }
  if (e.has_tcp_info && e.state != netlink::kTcpListen) {
    f.path = SocketFacts::Path{e.info.rtt_us, e.info.total_retrans};
  }
  return f;
}

Observation observe_snapshot(const netlink::SocketEntry& e, const Orientation& o,
                             std::int64_t now_ms) {
  Observation obs;
  obs.activity = snapshot_activity(e.protocol, e.state);
  // A TIME-WAIT socket exists only after both FINs were acknowledged: an orderly end, and
  // observed (end_time); a pending handshake's outcome is not known yet.
  obs.status = obs.activity == Activity::kOpen ? open_status(e.state) : Status::kSuccess;
  obs.time_ms = now_ms;
  if (obs.activity == Activity::kClose) {
    obs.end_ms = now_ms;
  }
  obs.socket = facts_of(e, true, e.full_socket);
  obs.orientation = o;
  obs.local = local_endpoint(e);
  obs.remote = remote_endpoint(e);
  obs.cumulative = live_totals(e, o);
  return obs;
}

}  // namespace sockstate::flow

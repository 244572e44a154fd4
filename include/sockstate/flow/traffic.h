#pragma once

#include <cstdint>

#include "sockstate/netlink/types.h"

namespace sockstate::flow {

// What the application sent and received on a connection, from the local socket's view.
struct Traffic {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t segs_sent = 0;
  std::uint64_t segs_received = 0;
  bool operator==(const Traffic&) const = default;
};

// A live socket's totals from its tcp_info: the kernel's byte counters less the SYN and
// FIN sequence numbers they include. `active_open`: this end sent the SYN.
Traffic application_traffic(const netlink::SocketEntry& entry, bool active_open);

// How a connection ended, from a destroy event's final tcp_info.
struct FinalTraffic {
  Traffic totals;
  bool orderly = false;  // our FIN was acknowledged
  bool reset = false;    // tcp_disconnect() zeroed the counters (an abort, or a failed
                         // blocking connect): totals mean nothing
};
// The state no longer tells which SYN and FIN the counters include: data sent is
// tcpi_bytes_sent less retransmissions; our FIN was acknowledged when bytes_acked passes
// that data (and our SYN, when we opened the connection), and then the close was orderly
// and the peer's FIN is in bytes_received.
FinalTraffic final_traffic(const netlink::TcpInfo& info, bool active_open);

// now - before, field by field, never below zero (counters only grow; a reset is no
// negative traffic).
Traffic minus(const Traffic& now, const Traffic& before);
// The larger of each field: totals never go back.
Traffic max_of(const Traffic& a, const Traffic& b);
[[nodiscard]] inline bool is_zero(const Traffic& t) {
  return t.bytes_sent == 0 && t.bytes_received == 0 && t.segs_sent == 0 && t.segs_received == 0;
}

}  // namespace sockstate::flow

#pragma once

#include <cstdint>

#include "sockstate/netlink/types.h"

namespace sockstate::flow {

// What an exact source (the kernel's own transition events) knows of a socket that the
// polls and destroy events can only approximate: when it began, and its counters and
// remote port at the transition that ended it (an abort zeroes both before the destroy
// event is sent).
struct KernelFacts {
  std::int64_t start_ms = 0;  // its first transition (SYN-SENT, SYN-RECV, LISTEN); 0: not seen
  // How its connection began: connect() (CLOSE -> SYN-SENT) or a passive open (-> SYN-RECV).
  enum class Opened : std::uint8_t { kUnknown, kActive, kPassive };
  Opened opened = Opened::kUnknown;
  bool ended = false;       // its transition to CLOSE was seen, with:
  std::uint16_t error = 0;  // the socket's error then (an errno: ECONNREFUSED...); 0: none
  std::uint64_t bytes_acked = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;  // data, retransmissions included
  std::uint64_t bytes_retrans = 0;
  std::uint32_t rtt_us = 0;
  std::uint32_t total_retrans = 0;
  std::uint16_t remote_port = 0;
};

// A destroy event's entry, with what the kernel cleared before sending it taken from the
// transition that ended the socket: counters an abort zeroed (all of them, or none sent)
// take the transition's, and so do a zeroed RTT, retransmission count and remote port.
void amend_final(netlink::SocketEntry& entry, const KernelFacts& facts);

}  // namespace sockstate::flow

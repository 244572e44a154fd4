#pragma once
// SocketEntry values for unit tests, from text addresses.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>

#include "sockstate/netlink/types.h"

namespace sockstate::testing {

inline std::array<std::uint8_t, 16> raw_address(int family, const std::string& text) {
  std::array<std::uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(family, text.c_str(), a.data()), 1) << text;
  return a;
}

inline netlink::SocketEntry make_entry(int family, std::uint8_t state, const std::string& local,
                                       std::uint16_t lport, const std::string& remote,
                                       std::uint16_t rport, std::uint64_t cookie = 0) {
  netlink::SocketEntry e;
  e.family = static_cast<std::uint8_t>(family);
  e.state = state;
  e.local_addr = raw_address(family, local);
  e.local_port = lport;
  e.remote_addr = raw_address(family, remote);
  e.remote_port = rport;
  e.cookie = cookie;
  return e;
}

// A tcp_info as a destroy event or a poll carries it (Linux >= 4.19: bytes_sent known).
inline netlink::TcpInfo info(std::uint64_t acked, std::uint64_t received, std::uint32_t segs_out,
                             std::uint32_t segs_in, std::uint32_t rtt, std::uint64_t sent) {
  netlink::TcpInfo i;
  i.bytes_acked = acked;
  i.bytes_received = received;
  i.segs_out = segs_out;
  i.segs_in = segs_in;
  i.rtt_us = rtt;
  i.bytes_sent = sent;
  i.has_bytes_sent = true;
  return i;
}

}  // namespace sockstate::testing

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

}  // namespace sockstate::testing

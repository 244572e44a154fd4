#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/netlink/socket.h"

namespace sockstate::netlink {

// One address of a network namespace, as rtnetlink gives it (network byte order, IPv4 in
// the first 4 bytes).
struct IfAddress {
  std::uint8_t family = 0;  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> addr{};
  bool operator==(const IfAddress&) const = default;
};

// The rtnetlink multicast groups that announce address changes (RTMGRP_IPV4_IFADDR |
// RTMGRP_IPV6_IFADDR), for NetlinkSocket::open(groups, NETLINK_ROUTE).
unsigned address_change_groups();

// Every address assigned in the socket's network namespace (RTM_GETADDR dump, both
// families). `sock` is a NETLINK_ROUTE socket.
Result<std::vector<IfAddress>> dump_addresses(NetlinkSocket& sock);

// The source address the kernel would pick towards `peer` (RTM_GETROUTE, the answer's
// RTA_PREFSRC); nullopt when no route gives one.
Result<std::optional<IfAddress>> route_source(NetlinkSocket& sock, const IfAddress& peer);

// The default route of `family` in the main table (RTM_GETROUTE dump): its preferred
// source when it names one, else its gateway; nullopt when there is none.
struct DefaultRoute {
  std::optional<IfAddress> prefsrc;
  std::optional<IfAddress> gateway;
};
Result<std::optional<DefaultRoute>> default_route(NetlinkSocket& sock, std::uint8_t family);

// Decoders for one message's payload (exposed for tests). nullopt: not an address of
// either family, or malformed.
std::optional<IfAddress> decode_address(std::span<const std::uint8_t> payload);
std::optional<IfAddress> decode_route_source(std::span<const std::uint8_t> payload);
std::optional<DefaultRoute> decode_default_route(std::span<const std::uint8_t> payload);

// Reads every queued datagram of an address-change socket (non-blocking): true when the
// kernel announced a change or dropped announcements (ENOBUFS), so addresses must be
// dumped again.
Result<bool> drain_changes(NetlinkSocket& sock, std::vector<std::uint8_t>& buf);

}  // namespace sockstate::netlink

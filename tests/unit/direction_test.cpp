#include "sockstate/ocsf/direction.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "socket_entries.h"
#include "sockstate/ocsf/record.h"

namespace sockstate::ocsf {
namespace {

using netlink::SocketEntry;

using testing::raw_address;

Address addr(const std::string& text) {
  if (text.find(':') == std::string::npos) {
    return normalized_address(AF_INET, raw_address(AF_INET, text));
  }
  return normalized_address(AF_INET6, raw_address(AF_INET6, text));
}

SocketEntry entry(int family, std::uint8_t state, const std::string& local, std::uint16_t lport,
                  const std::string& remote, std::uint16_t rport) {
  return testing::make_entry(family, state, local, lport, remote, rport);
}

TEST(Address, Classes) {
  EXPECT_TRUE(is_loopback(addr("127.0.0.1")));
  EXPECT_TRUE(is_loopback(addr("127.255.0.9")));
  EXPECT_TRUE(is_loopback(addr("::1")));
  EXPECT_TRUE(is_loopback(addr("::ffff:127.0.0.1")));
  EXPECT_FALSE(is_loopback(addr("128.0.0.1")));
  EXPECT_TRUE(is_unspecified(addr("0.0.0.0")));
  EXPECT_TRUE(is_unspecified(addr("::")));
  EXPECT_FALSE(is_unspecified(addr("::2")));
  for (const char* a :
       {"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.1.1", "100.64.0.1",
        "100.127.255.255", "fd00::1", "fc00::1", "fe80::1", "febf::1", "::ffff:10.0.0.1"}) {
    EXPECT_TRUE(is_internal(addr(a))) << a;
  }
  for (const char* a : {"8.8.8.8", "172.32.0.1", "172.15.0.1", "192.169.0.1", "100.128.0.1",
                        "100.63.255.255", "2001:db8::1", "fec0::1", "11.0.0.1"}) {
    EXPECT_FALSE(is_internal(addr(a))) << a;
  }
}

TEST(Address, Text) {
  EXPECT_EQ(address_text(addr("192.0.2.10")), "192.0.2.10");
  EXPECT_EQ(address_text(addr("::ffff:192.0.2.10")), "192.0.2.10");
  EXPECT_EQ(address_text(addr("2001:db8::1")), "2001:db8::1");
  EXPECT_EQ(address_text(addr("0.0.0.0")), "0.0.0.0");
  EXPECT_EQ(address_text(addr("255.255.255.255")), "255.255.255.255");
}

TEST(Orientation, ListenerOnlyHasALocalEnd) {
  ListenerTable none;
  auto o = orient(entry(AF_INET, 10, "0.0.0.0", 22, "0.0.0.0", 0), none);
  EXPECT_EQ(o.shape, Orientation::Shape::kListener);
  EXPECT_EQ(o.direction, Direction::kInbound);
  EXPECT_EQ(o.observation_point, ObservationPoint::kDestination);
  EXPECT_TRUE(o.assignment_known);
  o = orient(entry(AF_INET6, 10, "::1", 631, "::", 0), none);
  EXPECT_EQ(o.direction, Direction::kLocal);
  EXPECT_EQ(o.boundary, Boundary::kLocalhost);
}

TEST(Orientation, ListenerDecidesInbound) {
  ListenerTable listeners;
  listeners.add(entry(AF_INET, 10, "0.0.0.0", 443, "0.0.0.0", 0));
  listeners.add(entry(AF_INET6, 10, "2001:db8::5", 8443, "::", 0));
  auto o = orient(entry(AF_INET, 1, "10.0.0.5", 443, "192.0.2.10", 51514), listeners);
  EXPECT_EQ(o.shape, Orientation::Shape::kInbound);
  EXPECT_EQ(o.direction, Direction::kInbound);
  EXPECT_EQ(o.boundary, Boundary::kExternal);
  EXPECT_EQ(o.observation_point, ObservationPoint::kDestination);
  EXPECT_TRUE(o.assignment_known);

  o = orient(entry(AF_INET6, 1, "2001:db8::5", 8443, "fd00::7", 40000), listeners);
  EXPECT_EQ(o.shape, Orientation::Shape::kInbound);
  EXPECT_EQ(o.boundary, Boundary::kInternal);
  // Same port on another local address is not that listener's.
  o = orient(entry(AF_INET6, 1, "2001:db8::6", 8443, "fd00::7", 3000), listeners);
  EXPECT_EQ(o.shape, Orientation::Shape::kOutbound);
  EXPECT_FALSE(o.assignment_known);
}

TEST(Orientation, DualStackListenerAcceptsMappedIpv4) {
  ListenerTable listeners;
  listeners.add(entry(AF_INET6, 10, "::", 80, "::", 0));
  auto o = orient(entry(AF_INET6, 1, "::ffff:10.0.0.5", 80, "::ffff:192.0.2.1", 3333), listeners);
  EXPECT_EQ(o.shape, Orientation::Shape::kInbound);
  EXPECT_EQ(o.boundary, Boundary::kExternal);
}

TEST(Orientation, OutboundIsAGuessUnlessSynSent) {
  ListenerTable none;
  auto o = orient(entry(AF_INET, 1, "10.0.0.5", 51514, "93.184.216.34", 443), none);
  EXPECT_EQ(o.shape, Orientation::Shape::kOutbound);
  EXPECT_EQ(o.direction, Direction::kOutbound);
  EXPECT_EQ(o.observation_point, ObservationPoint::kSource);
  EXPECT_EQ(o.boundary, Boundary::kExternal);
  EXPECT_FALSE(o.assignment_known);
  o = orient(entry(AF_INET, 2, "10.0.0.5", 51514, "10.0.0.9", 443), none);
  EXPECT_TRUE(o.assignment_known);
  EXPECT_EQ(o.boundary, Boundary::kInternal);
}

TEST(Orientation, WithoutAListenerTheEphemeralPortTellsWhoConnected) {
  ListenerTable none;
  // A service port facing an ephemeral one: accepted here (its listener is gone or not
  // yet seen). Still a guess.
  auto o = orient(entry(AF_INET, 1, "10.0.0.5", 8080, "10.0.0.9", 40000), none);
  EXPECT_EQ(o.shape, Orientation::Shape::kInbound);
  EXPECT_FALSE(o.assignment_known);
  // Both ephemeral, or neither: outbound, as before.
  o = orient(entry(AF_INET, 1, "10.0.0.5", 40001, "10.0.0.9", 40000), none);
  EXPECT_EQ(o.shape, Orientation::Shape::kOutbound);
  o = orient(entry(AF_INET, 1, "10.0.0.5", 2010, "10.0.0.9", 2000), none);
  EXPECT_EQ(o.shape, Orientation::Shape::kOutbound);
  // The namespace's own range decides.
  ListenerTable narrow;
  narrow.set_ephemeral_range(50000, 50100);
  o = orient(entry(AF_INET, 1, "10.0.0.5", 8080, "10.0.0.9", 40000), narrow);
  EXPECT_EQ(o.shape, Orientation::Shape::kOutbound);
  o = orient(entry(AF_INET, 1, "10.0.0.5", 8080, "10.0.0.9", 50050), narrow);
  EXPECT_EQ(o.shape, Orientation::Shape::kInbound);
}

TEST(Orientation, RequestSocketIsInboundWithoutListenerMatch) {
  ListenerTable none;
  auto o = orient(entry(AF_INET, 3, "10.0.0.5", 443, "192.0.2.1", 5555), none);
  EXPECT_EQ(o.shape, Orientation::Shape::kInbound);
  EXPECT_TRUE(o.assignment_known);
}

TEST(Orientation, LoopbackBothEnds) {
  ListenerTable listeners;
  listeners.add(entry(AF_INET, 10, "127.0.0.1", 5000, "0.0.0.0", 0));
  auto server = orient(entry(AF_INET, 1, "127.0.0.1", 5000, "127.0.0.1", 40000), listeners);
  auto client = orient(entry(AF_INET, 1, "127.0.0.1", 40000, "127.0.0.1", 5000), listeners);
  EXPECT_EQ(server.shape, Orientation::Shape::kInbound);
  EXPECT_EQ(client.shape, Orientation::Shape::kOutbound);
  for (const auto& o : {server, client}) {
    EXPECT_EQ(o.direction, Direction::kLocal);
    EXPECT_EQ(o.boundary, Boundary::kLocalhost);
    EXPECT_EQ(o.observation_point, ObservationPoint::kBoth);
  }
}

TEST(Orientation, BoundInactiveHasNoPeer) {
  ListenerTable none;
  auto o = orient(entry(AF_INET, 7, "10.0.0.5", 7000, "0.0.0.0", 0), none);
  EXPECT_EQ(o.shape, Orientation::Shape::kUnconnected);
  EXPECT_EQ(o.direction, Direction::kUnknown);
  EXPECT_FALSE(o.assignment_known);
}

}  // namespace
}  // namespace sockstate::ocsf

// The flow library: what a socket means, as pure functions over plain values. Every row of
// the contract's direction table, IPv4/IPv6/mapped, custom internal networks, who
// initiated, application bytes, deltas and totals, endpoint repair.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "socket_entries.h"
#include "sockstate/flow/address.h"
#include "sockstate/flow/observation.h"
#include "sockstate/flow/orientation.h"
#include "sockstate/flow/traffic.h"

namespace sockstate::flow {
namespace {

using netlink::SocketEntry;
using testing::info;
using Shape = Orientation::Shape;

Address addr(const std::string& text) {
  if (text.find(':') == std::string::npos) {
    return normalized_address(AF_INET, testing::raw_address(AF_INET, text));
  }
  return normalized_address(AF_INET6, testing::raw_address(AF_INET6, text));
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
}

TEST(Address, DefaultInternalNetworks) {
  const NetworkSet& inside = NetworkSet::default_internal();
  for (const char* a :
       {"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.1.1", "100.64.0.1",
        "100.127.255.255", "fd00::1", "fc00::1", "fe80::1", "febf::1", "::ffff:10.0.0.1"}) {
    EXPECT_TRUE(inside.contains(addr(a))) << a;
  }
  for (const char* a : {"8.8.8.8", "172.32.0.1", "172.15.0.1", "192.169.0.1", "100.128.0.1",
                        "100.63.255.255", "2001:db8::1", "fec0::1", "11.0.0.1", "127.0.0.1"}) {
    EXPECT_FALSE(inside.contains(addr(a))) << a;
  }
}

TEST(Address, Cidrs) {
  EXPECT_EQ(cidr_text(*parse_cidr("10.0.0.0/8")), "10.0.0.0/8");
  EXPECT_EQ(cidr_text(*parse_cidr("2001:db8::/32")), "2001:db8::/32");
  EXPECT_EQ(cidr_text(*parse_cidr("192.0.2.7")), "192.0.2.7/32");
  EXPECT_EQ(cidr_text(*parse_cidr("0.0.0.0/0")), "0.0.0.0/0");
  EXPECT_TRUE(parse_cidr("198.51.100.0/25")->contains(addr("198.51.100.127")));
  EXPECT_FALSE(parse_cidr("198.51.100.0/25")->contains(addr("198.51.100.128")));
  EXPECT_TRUE(parse_cidr("0.0.0.0/0")->contains(addr("8.8.8.8")));
  EXPECT_FALSE(parse_cidr("0.0.0.0/0")->contains(addr("2001:db8::1"))) << "IPv4 only";
  EXPECT_TRUE(parse_cidr("::/0")->contains(addr("2001:db8::1")));
  for (const char* bad : {"10.0.0.1/8", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "/8",
                          "10.0.0.0/8x", "host", "", "10.0.0.0/-1"}) {
    EXPECT_FALSE(parse_cidr(bad)) << bad;
  }
}

// Host 10.0.0.5 and 2001:db8::5; inside: the default networks.
struct Fixture {
  HostAddresses host;
  NetworkSet custom{{*parse_cidr("198.51.100.0/24"), *parse_cidr("2001:db8:1::/48")}};
  Fixture() {
    host.add(addr("10.0.0.5"));
    host.add(addr("2001:db8::5"));
  }
  [[nodiscard]] Perimeter perimeter() const { return Perimeter{&host}; }
  [[nodiscard]] Perimeter with_custom() const { return Perimeter{&host, &custom}; }
};

struct Row {
  const char* name;
  Shape shape;
  const char* remote;
  bool custom;
  Direction direction;
  Boundary boundary;
  ObservationPoint point;
};

// The contract's table: initiator x responder -> direction, boundary, observation point.
TEST(Direction, EveryRowOfTheContractTable) {
  const Fixture f;
  const Row rows[] = {
      {"this host -> this host (loopback)", Shape::kInitiated, "127.0.0.1", false,
       Direction::kLocal, Boundary::kLocalhost, ObservationPoint::kSource},
      {"this host -> this host (own address)", Shape::kInitiated, "10.0.0.5", false,
       Direction::kLocal, Boundary::kLocalhost, ObservationPoint::kSource},
      {"this host <- this host (own IPv6)", Shape::kAccepted, "2001:db8::5", false,
       Direction::kLocal, Boundary::kLocalhost, ObservationPoint::kDestination},
      {"this host <- this host (mapped)", Shape::kAccepted, "::ffff:10.0.0.5", false,
       Direction::kLocal, Boundary::kLocalhost, ObservationPoint::kDestination},
      {"inside -> inside", Shape::kInitiated, "10.0.0.9", false, Direction::kLateral,
       Boundary::kInternal, ObservationPoint::kSource},
      {"inside <- inside", Shape::kAccepted, "fd00::7", false, Direction::kLateral,
       Boundary::kInternal, ObservationPoint::kDestination},
      {"outside -> inside", Shape::kAccepted, "192.0.2.10", false, Direction::kInbound,
       Boundary::kExternal, ObservationPoint::kDestination},
      {"inside -> outside", Shape::kInitiated, "2606:4700::1", false, Direction::kOutbound,
       Boundary::kExternal, ObservationPoint::kSource},
      {"custom: inside -> inside", Shape::kInitiated, "198.51.100.7", true, Direction::kLateral,
       Boundary::kInternal, ObservationPoint::kSource},
      {"custom: no longer inside", Shape::kInitiated, "10.0.0.9", true, Direction::kOutbound,
       Boundary::kExternal, ObservationPoint::kSource},
      {"custom IPv6: inside <- inside", Shape::kAccepted, "2001:db8:1::9", true,
       Direction::kLateral, Boundary::kInternal, ObservationPoint::kDestination},
      {"custom: still this host", Shape::kAccepted, "10.0.0.5", true, Direction::kLocal,
       Boundary::kLocalhost, ObservationPoint::kDestination},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    Orientation o;
    o.shape = row.shape;
    classify(o, addr(row.remote), row.custom ? f.with_custom() : f.perimeter());
    EXPECT_EQ(o.direction, row.direction);
    EXPECT_EQ(o.boundary, row.boundary);
    EXPECT_EQ(o.observation_point, row.point);
  }
  // Without host addresses only loopback is this host.
  Orientation o;
  o.shape = Shape::kInitiated;
  classify(o, addr("10.0.0.5"), Perimeter{});
  EXPECT_EQ(o.direction, Direction::kLateral);
}

TEST(Direction, ListenAndBoundHaveNoConnection) {
  const Fixture f;
  ListenerTable none;
  auto o = orient(entry(AF_INET, 10, "0.0.0.0", 22, "0.0.0.0", 0), none, f.perimeter());
  EXPECT_EQ(o.shape, Shape::kListener);
  EXPECT_EQ(o.direction, Direction::kUnknown);
  EXPECT_EQ(o.boundary, Boundary::kUnknown);
  EXPECT_EQ(o.observation_point, ObservationPoint::kDestination);
  EXPECT_TRUE(o.assignment_known);
  o = orient(entry(AF_INET6, 10, "::1", 631, "::", 0), none, f.perimeter());
  EXPECT_EQ(o.direction, Direction::kUnknown);
  o = orient(entry(AF_INET, 7, "10.0.0.5", 7000, "0.0.0.0", 0), none, f.perimeter());
  EXPECT_EQ(o.shape, Shape::kUnconnected);
  EXPECT_EQ(o.direction, Direction::kUnknown);
  EXPECT_EQ(o.observation_point, ObservationPoint::kSource);
  EXPECT_FALSE(o.assignment_known);
}

TEST(Initiator, ListenerDecidesAccepted) {
  ListenerTable listeners;
  listeners.add(entry(AF_INET, 10, "0.0.0.0", 443, "0.0.0.0", 0));
  listeners.add(entry(AF_INET6, 10, "2001:db8::5", 8443, "::", 0));
  auto o = initiator(entry(AF_INET, 1, "10.0.0.5", 443, "192.0.2.10", 51514), listeners);
  EXPECT_EQ(o.shape, Shape::kAccepted);
  EXPECT_TRUE(o.assignment_known);
  o = initiator(entry(AF_INET6, 1, "2001:db8::5", 8443, "fd00::7", 40000), listeners);
  EXPECT_EQ(o.shape, Shape::kAccepted);
  // Same port on another local address is not that listener's.
  o = initiator(entry(AF_INET6, 1, "2001:db8::6", 8443, "fd00::7", 3000), listeners);
  EXPECT_EQ(o.shape, Shape::kInitiated);
  EXPECT_FALSE(o.assignment_known);
}

// Revision 3, rule 3: the peer of a loopback pair is a listener of the same namespace, so
// the client's socket knows it initiated even when no poll saw it in SYN-SENT.
TEST(Initiator, APeerThatIsOurListenerMeansWeConnected) {
  const Fixture f;
  ListenerTable listeners;
  listeners.add(entry(AF_INET, 10, "127.0.0.1", 8080, "0.0.0.0", 0));
  auto o =
      orient(entry(AF_INET, 1, "127.0.0.1", 40001, "127.0.0.1", 8080), listeners, f.perimeter());
  EXPECT_EQ(o.shape, Shape::kInitiated);
  EXPECT_TRUE(o.assignment_known);
  EXPECT_EQ(o.observation_point, ObservationPoint::kSource);
  EXPECT_EQ(o.direction, Direction::kLocal);
  // The server's socket of the same pair: its own listener decides it.
  o = orient(entry(AF_INET, 1, "127.0.0.1", 8080, "127.0.0.1", 40001), listeners, f.perimeter());
  EXPECT_EQ(o.shape, Shape::kAccepted);
  EXPECT_EQ(o.observation_point, ObservationPoint::kDestination);
  // A remote host's port 9090 is not our listener's, though we listen on it: still a guess.
  listeners.add(entry(AF_INET, 10, "0.0.0.0", 9090, "0.0.0.0", 0));
  o = orient(entry(AF_INET, 1, "10.0.0.5", 40002, "192.0.2.7", 9090), listeners, f.perimeter());
  EXPECT_FALSE(o.assignment_known);
}

TEST(Initiator, DualStackListenerAcceptsMappedIpv4) {
  ListenerTable listeners;
  listeners.add(entry(AF_INET6, 10, "::", 80, "::", 0));
  auto o =
      initiator(entry(AF_INET6, 1, "::ffff:10.0.0.5", 80, "::ffff:192.0.2.1", 3333), listeners);
  EXPECT_EQ(o.shape, Shape::kAccepted);
}

TEST(Initiator, SynSentAndRequestSocketsAreKnown) {
  ListenerTable none;
  auto o = initiator(entry(AF_INET, 2, "10.0.0.5", 51514, "10.0.0.9", 443), none);
  EXPECT_EQ(o.shape, Shape::kInitiated);
  EXPECT_TRUE(o.assignment_known);
  o = initiator(entry(AF_INET, 3, "10.0.0.5", 443, "192.0.2.1", 5555), none);
  EXPECT_EQ(o.shape, Shape::kAccepted);
  EXPECT_TRUE(o.assignment_known);
  o = initiator(entry(AF_INET, 1, "10.0.0.5", 51514, "93.184.216.34", 443), none);
  EXPECT_EQ(o.shape, Shape::kInitiated);
  EXPECT_FALSE(o.assignment_known);
}

TEST(Initiator, WithoutAListenerTheEphemeralPortTellsWhoConnected) {
  ListenerTable none;
  auto o = initiator(entry(AF_INET, 1, "10.0.0.5", 8080, "10.0.0.9", 40000), none);
  EXPECT_EQ(o.shape, Shape::kAccepted);
  EXPECT_FALSE(o.assignment_known);
  o = initiator(entry(AF_INET, 1, "10.0.0.5", 40001, "10.0.0.9", 40000), none);
  EXPECT_EQ(o.shape, Shape::kInitiated);
  o = initiator(entry(AF_INET, 1, "10.0.0.5", 2010, "10.0.0.9", 2000), none);
  EXPECT_EQ(o.shape, Shape::kInitiated);
  ListenerTable narrow;
  narrow.set_ephemeral_range(50000, 50100);
  o = initiator(entry(AF_INET, 1, "10.0.0.5", 8080, "10.0.0.9", 40000), narrow);
  EXPECT_EQ(o.shape, Shape::kInitiated);
  o = initiator(entry(AF_INET, 1, "10.0.0.5", 8080, "10.0.0.9", 50050), narrow);
  EXPECT_EQ(o.shape, Shape::kAccepted);
}

// UDP (observation.h): its two kernel states, connected (TCP_ESTABLISHED) or not
// (TCP_CLOSE). A connected socket initiated its flow, whatever the ports and listeners; one
// not connected is a listener. Both are known, never guessed.
TEST(Initiator, UdpConnectedInitiatedUnconnectedListens) {
  ListenerTable listeners;
  listeners.add(entry(AF_INET, 10, "0.0.0.0", 53, "0.0.0.0", 0));  // a TCP listener on 53
  SocketEntry connected = entry(AF_INET, 1, "10.0.0.5", 53, "192.0.2.10", 40000);
  connected.protocol = 17;
  auto o = initiator(connected, listeners);
  EXPECT_EQ(o.shape, Shape::kInitiated) << "TCP's listener on the port is not UDP's";
  EXPECT_TRUE(o.assignment_known);
  SocketEntry bound = entry(AF_INET6, 7, "::", 5353, "::", 0);
  bound.protocol = 17;
  o = initiator(bound, listeners);
  EXPECT_EQ(o.shape, Shape::kListener);
  EXPECT_TRUE(o.assignment_known);
  connected.protocol = 6;  // the same entry as TCP: accepted by its listener
  EXPECT_EQ(initiator(connected, listeners).shape, Shape::kAccepted);
}

// --state as UDP has it: listen is an unconnected socket, established a connected one;
// the TCP-only states ask a UDP dump for nothing. TCP's mask passes unchanged.
TEST(Snapshot, UdpStatesAndActivities) {
  using netlink::state_bit;
  EXPECT_EQ(kernel_states_for(17, netlink::kAllStates),
            state_bit(netlink::kTcpClose) | state_bit(netlink::kTcpEstablished));
  EXPECT_EQ(kernel_states_for(17, state_bit(netlink::kTcpListen)), state_bit(netlink::kTcpClose));
  EXPECT_EQ(kernel_states_for(17, state_bit(netlink::kTcpEstablished)),
            state_bit(netlink::kTcpEstablished));
  EXPECT_EQ(
      kernel_states_for(17, state_bit(netlink::kTcpTimeWait) | state_bit(netlink::kTcpSynSent) |
                                netlink::kBoundInactiveStates),
      0U);
  EXPECT_EQ(kernel_states_for(6, state_bit(netlink::kTcpTimeWait)),
            state_bit(netlink::kTcpTimeWait));
  EXPECT_EQ(snapshot_activity(17, netlink::kTcpClose), Activity::kListen);
  EXPECT_EQ(snapshot_activity(17, netlink::kTcpEstablished), Activity::kTraffic);
  EXPECT_EQ(snapshot_activity(17, netlink::kTcpTimeWait), Activity::kUnknown);
  EXPECT_EQ(snapshot_activity(6, netlink::kTcpClose), Activity::kBound);
  // No traffic from a UDP entry, even one that claims tcp_info.
  const Fixture f;
  ListenerTable none;
  SocketEntry e = entry(AF_INET, 1, "10.0.0.5", 40000, "192.0.2.10", 53);
  e.protocol = 17;
  e.full_socket = true;
  e.has_tcp_info = true;
  e.info = {101, 51, 5, 4, 0, 0};
  const Observation obs = observe_snapshot(e, orient(e, none, f.perimeter()), 1234);
  EXPECT_EQ(obs.activity, Activity::kTraffic);
  EXPECT_FALSE(obs.cumulative);
  EXPECT_EQ(obs.orientation.shape, Shape::kInitiated);
}

TEST(Traffic, ApplicationBytesLeaveOutSynAndFin) {
  SocketEntry e = entry(AF_INET, 1, "10.0.0.5", 1, "10.0.0.6", 2);
  e.has_tcp_info = true;
  e.info = {101, 51, 5, 4, 0, 0};
  auto t = application_traffic(e, /*active_open=*/true);
  EXPECT_EQ(t, (Traffic{100, 51, 5, 4}));
  t = application_traffic(e, /*active_open=*/false);
  EXPECT_EQ(t.bytes_sent, 101U);
  const std::pair<std::uint8_t, std::pair<std::uint64_t, std::uint64_t>> cases[] = {
      {4, {100, 51}},   // FIN-WAIT-1: our FIN not yet acked
      {5, {99, 51}},    // FIN-WAIT-2: our FIN acked
      {8, {100, 50}},   // CLOSE-WAIT: their FIN received
      {9, {100, 50}},   // LAST-ACK: theirs received, ours not acked
      {11, {100, 50}},  // CLOSING: theirs received, ours not acked
  };
  for (const auto& [state, want] : cases) {
    e.state = state;
    t = application_traffic(e, true);
    EXPECT_EQ(t.bytes_sent, want.first) << int{state};
    EXPECT_EQ(t.bytes_received, want.second) << int{state};
  }
  e.state = 5;
  e.info = {0, 0, 1, 0, 0, 0};  // never below zero
  EXPECT_EQ(application_traffic(e, true).bytes_sent, 0U);
}

// Destroy events measured on 6.18 (kernel-notes.md).
TEST(Traffic, FinalTotalsAndHowItEnded) {
  // Client, orderly: 1000 sent (+SYN +FIN acked), 300 received (+their FIN).
  auto f = final_traffic(info(1002, 301, 8, 6, 50, 1000), true);
  EXPECT_EQ(f.totals.bytes_sent, 1000U);
  EXPECT_EQ(f.totals.bytes_received, 300U);
  EXPECT_TRUE(f.orderly);
  EXPECT_FALSE(f.reset);
  // Server, orderly: its SYN-ACK is not in bytes_acked.
  f = final_traffic(info(301, 1001, 6, 8, 50, 300), false);
  EXPECT_EQ(f.totals.bytes_sent, 300U);
  EXPECT_EQ(f.totals.bytes_received, 1000U);
  EXPECT_TRUE(f.orderly);
  // Reset by the peer: our FIN never acknowledged.
  f = final_traffic(info(501, 0, 4, 3, 50, 500), true);
  EXPECT_FALSE(f.orderly);
  EXPECT_EQ(f.totals.bytes_sent, 500U);
  // Aborted here: tcp_disconnect() zeroed the counters.
  f = final_traffic(info(0, 0, 0, 0, 0, 0), true);
  EXPECT_TRUE(f.reset);
  // Retransmitted bytes are sent once.
  f = final_traffic(info(1002, 0, 10, 6, 50, 1500), true);
  EXPECT_FALSE(f.orderly) << "500 of 1500 were retransmissions: FIN not acked yet";
  netlink::TcpInfo r = info(1002, 0, 10, 6, 50, 1500);
  r.bytes_retrans = 500;
  f = final_traffic(r, true);
  EXPECT_EQ(f.totals.bytes_sent, 1000U);
  EXPECT_TRUE(f.orderly);
}

TEST(Traffic, DeltasAndTotals) {
  const Traffic before{100, 50, 10, 9};
  const Traffic now{1100, 50, 20, 9};
  EXPECT_EQ(minus(now, before), (Traffic{1000, 0, 10, 0}));
  EXPECT_EQ(minus(before, now), (Traffic{0, 0, 0, 0})) << "a reset is no negative traffic";
  EXPECT_TRUE(is_zero(minus(now, now)));
  EXPECT_FALSE(is_zero(minus(now, before)));
  EXPECT_EQ(max_of(Traffic{1, 9, 3, 0}, Traffic{5, 2, 3, 1}), (Traffic{5, 9, 3, 1}));
  // Deltas over consecutive periods add up to the change in totals.
  const Traffic t0{0, 0, 0, 0};
  const Traffic t1{300, 20, 4, 3};
  const Traffic t2{900, 20, 9, 5};
  const Traffic d1 = minus(t1, t0);
  const Traffic d2 = minus(t2, t1);
  EXPECT_EQ(d1.bytes_sent + d2.bytes_sent, t2.bytes_sent - t0.bytes_sent);
  EXPECT_EQ(d1.segs_received + d2.segs_received, t2.segs_received);
}

TEST(Repair, AddressesComeFromThePollsThenTheRoute) {
  const Endpoint cleared{addr("0.0.0.0"), 40000};
  const Endpoint peer{addr("192.0.2.10"), 443};
  const Endpoint polled_local{addr("10.0.0.5"), 40000};
  int route_calls = 0;
  auto route = [&]() -> std::optional<Address> {
    ++route_calls;
    return addr("10.0.0.7");
  };
  // Polls saw it: their address, not inferred, no route asked.
  auto r = repair_endpoints(cleared, peer, polled_local, peer, route);
  EXPECT_EQ(r.local, polled_local);
  EXPECT_FALSE(r.local_inferred);
  EXPECT_EQ(route_calls, 0);
  // No poll saw it: the route's preferred source, marked.
  r = repair_endpoints(cleared, peer, cleared, peer, route);
  EXPECT_EQ(r.local.ip, addr("10.0.0.7"));
  EXPECT_EQ(r.local.port, 40000);
  EXPECT_TRUE(r.local_inferred);
  EXPECT_EQ(route_calls, 1);
  // IPv6 the same way.
  const Endpoint cleared6{addr("::"), 40001};
  const Endpoint peer6{addr("2606:4700::1"), 443};
  r = repair_endpoints(cleared6, peer6, Endpoint{addr("2001:db8::5"), 40001}, peer6, route);
  EXPECT_EQ(r.local.ip, addr("2001:db8::5"));
  // No route: left as it is (the caller knows it was not repaired).
  r = repair_endpoints(cleared, peer, cleared, peer, [] { return std::optional<Address>{}; });
  EXPECT_TRUE(is_unspecified(r.local.ip));
  EXPECT_FALSE(r.local_inferred);
  // A remote port the kernel cleared comes back from the polls of the same peer.
  r = repair_endpoints(polled_local, Endpoint{peer.ip, 0}, polled_local, peer, route);
  EXPECT_EQ(r.remote.port, 443);
  // A real address is never replaced.
  r = repair_endpoints(polled_local, peer, Endpoint{addr("10.0.0.8"), 40000}, peer, route);
  EXPECT_EQ(r.local, polled_local);
}

TEST(Snapshot, ObservationOfALiveSocket) {
  const Fixture f;
  ListenerTable none;
  SocketEntry e = entry(AF_INET, 1, "10.0.0.5", 40000, "192.0.2.10", 443);
  e.full_socket = true;
  e.has_tcp_info = true;
  e.info = {101, 51, 5, 4, 0, 0};
  const Observation obs = observe_snapshot(e, orient(e, none, f.perimeter()), 1234);
  EXPECT_EQ(obs.activity, Activity::kTraffic);
  EXPECT_EQ(obs.status, Status::kSuccess);
  EXPECT_EQ(obs.cumulative, (Traffic{100, 51, 5, 4}));
  EXPECT_FALSE(obs.traffic);
  EXPECT_EQ(obs.start_ms, 0);
  EXPECT_TRUE(obs.socket.uid);
  EXPECT_EQ(obs.time_ms, 1234);
}

}  // namespace
// What a record may say of a socket is decided once, from the kernel's entry: a minisocket's
// inode and uid are nobody's, a destroyed socket's queues mean nothing, a listener has no
// path to measure.
TEST(SocketFacts, OnlyWhatTheKernelsEntryMeans) {
  SocketEntry e = entry(AF_INET, netlink::kTcpEstablished, "10.0.0.5", 40000, "192.0.2.10", 443);
  e.full_socket = true;
  e.inode = 77;
  e.uid = 1000;
  e.recv_q = 3;
  e.send_q = 4;
  e.cgroup_id = 9;
  e.netns = 4026531840U;
  e.cookie = 0x2001;
  e.has_tcp_info = true;
  e.info.rtt_us = 250;
  e.info.total_retrans = 2;
  const SocketFacts live = facts_of(e, true, true);
  EXPECT_EQ(live.protocol, 6);
  EXPECT_EQ(live.state, netlink::kTcpEstablished);
  EXPECT_EQ(live.cookie, 0x2001U);
  EXPECT_EQ(live.inode, 77U);
  EXPECT_EQ(live.uid, 1000U);
  EXPECT_EQ(live.cgroup_id, 9U);
  EXPECT_EQ(live.netns, 4026531840U);
  ASSERT_TRUE(live.queues);
  EXPECT_EQ(live.queues->recv, 3U);
  EXPECT_EQ(live.queues->send, 4U);
  ASSERT_TRUE(live.path);
  EXPECT_EQ(live.path->rtt_us, 250U);
  EXPECT_EQ(live.path->total_retrans, 2U);

  const SocketFacts destroyed = facts_of(e, false, false);
  EXPECT_FALSE(destroyed.queues);
  EXPECT_FALSE(destroyed.uid);
  EXPECT_EQ(destroyed.inode, 77U);

  SocketEntry minisocket = e;
  minisocket.full_socket = false;
  minisocket.state = netlink::kTcpTimeWait;
  const SocketFacts tw = facts_of(minisocket, true, false);
  EXPECT_EQ(tw.inode, 0U);
  EXPECT_FALSE(tw.queues);

  SocketEntry listener = e;
  listener.state = netlink::kTcpListen;
  EXPECT_FALSE(facts_of(listener, true, true).path);
  listener.protocol = 17;
  EXPECT_EQ(facts_of(listener, true, true).protocol, 17);
}

}  // namespace sockstate::flow

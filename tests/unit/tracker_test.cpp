#include "sockstate/tracking/tracker.h"

#include <gtest/gtest.h>

#include <vector>

#include "socket_entries.h"

namespace sockstate::tracking {
namespace {

using netlink::SocketEntry;
using testing::make_entry;

SocketEntry full(SocketEntry e, netlink::TcpInfo info = {}) {
  e.full_socket = true;
  e.has_tcp_info = true;
  e.info = info;
  e.inode = 1000 + static_cast<std::uint32_t>(e.cookie);
  e.uid = 33;
  return e;
}

SocketEntry listener(std::uint16_t port, std::uint64_t cookie) {
  return full(make_entry(AF_INET, 10, "0.0.0.0", port, "0.0.0.0", 0, cookie));
}

// Client side of a connection to 10.0.0.9:443 (outbound), and an accepted one on :22.
SocketEntry outbound(std::uint8_t state, std::uint64_t cookie, netlink::TcpInfo info = {}) {
  return full(make_entry(AF_INET, state, "10.0.0.5", 40000, "10.0.0.9", 443, cookie), info);
}
SocketEntry inbound(std::uint8_t state, std::uint64_t cookie, netlink::TcpInfo info = {}) {
  return full(make_entry(AF_INET, state, "10.0.0.5", 22, "192.0.2.7", 50000, cookie), info);
}

// A destroy event: state CLOSE, inode and uid 0, the final tcp_info.
SocketEntry destroy_of(SocketEntry e, netlink::TcpInfo info) {
  e.state = netlink::kTcpClose;
  e.inode = 0;
  e.uid = 0;
  e.full_socket = true;
  e.has_tcp_info = true;
  e.info = info;
  return e;
}

netlink::TcpInfo info(std::uint64_t acked, std::uint64_t received, std::uint32_t segs_out,
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

class TrackerTest : public ::testing::Test {
 protected:
  explicit TrackerTest(bool confirm = false)
      : tracker_([this](const Event& e) { events_.push_back(e); }, confirm) {}

  void poll(std::int64_t now, const std::vector<SocketEntry>& sockets, bool baseline = false) {
    listeners_ = {};
    for (const auto& s : sockets) {
      if (s.state == netlink::kTcpListen) {
        listeners_.add(s);
      }
    }
    tracker_.begin_poll(now, baseline);
    for (const auto& s : sockets) {
      tracker_.poll_socket(s, listeners_);
    }
    tracker_.end_poll();
  }

  std::vector<Event> take() { return std::exchange(events_, {}); }

  Tracker tracker_;
  ocsf::ListenerTable listeners_;
  std::vector<Event> events_;
};

TEST_F(TrackerTest, BaselineThenChanges) {
  poll(1000, {listener(22, 1), inbound(1, 2), outbound(1, 3)}, true);
  auto ev = take();
  ASSERT_EQ(ev.size(), 3U);
  for (const auto& e : ev) {
    EXPECT_EQ(e.kind, EventKind::kBaseline);
  }
  // Nothing changes: nothing to say.
  poll(2000, {listener(22, 1), inbound(1, 2), outbound(1, 3)});
  EXPECT_TRUE(take().empty());
  // A new listener, a new connection, a state change, one connection gone.
  poll(3000, {listener(22, 1), listener(80, 4), inbound(8, 2), outbound(2, 5)});
  ev = take();
  ASSERT_EQ(ev.size(), 4U);
  EXPECT_EQ(ev[0].kind, EventKind::kListen);
  EXPECT_EQ(ev[1].kind, EventKind::kStateChange);
  EXPECT_EQ(ev[1].previous_state, 1);
  EXPECT_EQ(ev[1].entry.state, 8);
  EXPECT_EQ(ev[1].start_ms, 1000);
  EXPECT_EQ(ev[2].kind, EventKind::kOpen);
  EXPECT_EQ(ev[2].start_ms, 3000);
  EXPECT_EQ(ev[2].orientation.shape, ocsf::Orientation::Shape::kOutbound);
  EXPECT_EQ(ev[3].kind, EventKind::kClose);  // cookie 3, found gone by the poll
  EXPECT_EQ(ev[3].entry.cookie, 3U);
  EXPECT_FALSE(ev[3].from_destroy);
  EXPECT_EQ(ev[3].time_ms, 3000);
  EXPECT_EQ(tracker_.stats().closed_by_poll, 1U);
  EXPECT_EQ(tracker_.stats().tracked, 4U);
}

TEST_F(TrackerTest, DestroyClosesOnceWithFinalTotalsAndPollOwner) {
  poll(1000, {listener(22, 1)}, true);
  take();
  poll(2000, {listener(22, 1), inbound(1, 2, info(10, 20, 3, 3, 50, 10))});
  ASSERT_EQ(take().size(), 1U);
  // Measured on 6.18: the accepting side sent 300, received 1000; orderly close.
  tracker_.destroyed(destroy_of(inbound(1, 2), info(301, 1001, 3, 6, 20, 300)), listeners_, 2500);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].kind, EventKind::kClose);
  EXPECT_TRUE(ev[0].from_destroy);
  EXPECT_EQ(ev[0].start_ms, 2000);
  EXPECT_EQ(ev[0].time_ms, 2500);
  EXPECT_EQ(ev[0].entry.inode, 1002U) << "owner from the poll";
  EXPECT_EQ(ev[0].entry.uid, 33U);
  EXPECT_EQ(ev[0].orientation.shape, ocsf::Orientation::Shape::kInbound);
  ASSERT_TRUE(ev[0].has_traffic);
  EXPECT_EQ(ev[0].traffic.bytes_sent, 300U);
  EXPECT_EQ(ev[0].traffic.bytes_received, 1000U);
  // The same destroy again, a late poll still listing the socket, its TIME-WAIT
  // minisocket (same cookie) for three polls: no more records.
  tracker_.destroyed(destroy_of(inbound(1, 2), info(301, 1001, 3, 6, 20, 300)), listeners_, 2600);
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 22, "192.0.2.7", 50000, 2);
  for (int i = 0; i < 3; ++i) {
    poll(3000 + i * 1000, {listener(22, 1), tw});
  }
  poll(7000, {listener(22, 1)});
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().duplicate_destroys, 1U);
  EXPECT_EQ(tracker_.stats().closed_by_destroy, 1U);
  EXPECT_EQ(tracker_.stats().closed_by_poll, 0U);
}

TEST_F(TrackerTest, ShortConnectionBetweenPollsIsClosedOnce) {
  poll(1000, {listener(22, 1)}, true);
  take();
  // Accepted and closed between two polls: only its destroy event is ever seen.
  tracker_.destroyed(destroy_of(inbound(1, 9), info(301, 1001, 3, 6, 20, 300)), listeners_, 1500);
  poll(2000, {listener(22, 1)});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].kind, EventKind::kClose);
  EXPECT_EQ(ev[0].start_ms, 0) << "never seen open";
  EXPECT_EQ(ev[0].orientation.shape, ocsf::Orientation::Shape::kInbound) << "listener decided";
  EXPECT_EQ(ev[0].traffic.bytes_received, 1000U);
}

TEST_F(TrackerTest, FailedAttemptsRefuseAndFail) {
  poll(1000, {}, true);
  // Non-blocking connect refused by RST (6.18): segs_out 1, segs_in 1, rtt 0.
  tracker_.destroyed(destroy_of(outbound(2, 20), info(0, 0, 1, 1, 0, 0)), listeners_, 1100);
  // SYNs never answered: segs_in 0, retransmissions.
  tracker_.destroyed(destroy_of(outbound(2, 21), info(0, 0, 3, 0, 0, 0)), listeners_, 1200);
  // Blocking connect that failed: counters reset, remote port cleared.
  SocketEntry blocking = destroy_of(outbound(2, 22), info(0, 0, 0, 0, 0, 0));
  blocking.remote_port = 0;
  tracker_.destroyed(blocking, listeners_, 1300);
  auto ev = take();
  ASSERT_EQ(ev.size(), 3U);
  EXPECT_EQ(ev[0].kind, EventKind::kRefuse);
  EXPECT_EQ(ev[1].kind, EventKind::kFail);
  EXPECT_EQ(ev[1].traffic.segs_sent, 3U);
  EXPECT_EQ(ev[2].kind, EventKind::kFail);
  EXPECT_EQ(ev[2].entry.remote_port, 0) << "address alone";
}

TEST_F(TrackerTest, PollSawEstablishedSoItIsACloseEvenWithResetCounters) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 30, info(101, 51, 5, 4, 30, 100))});
  take();
  // close() with SO_LINGER 0: tcp_disconnect() zeroed everything before the event.
  SocketEntry gone = destroy_of(outbound(1, 30), info(0, 0, 0, 0, 0, 0));
  gone.remote_port = 0;
  tracker_.destroyed(gone, listeners_, 2500);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].kind, EventKind::kClose);
  EXPECT_EQ(ev[0].entry.remote_port, 443) << "the port the poll saw";
  ASSERT_TRUE(ev[0].has_traffic);
  EXPECT_EQ(ev[0].traffic.bytes_sent, 100U) << "the last poll's totals, less our SYN";
}

TEST_F(TrackerTest, UnusedAndHalfOpenSocketsMakeNoRecords) {
  poll(1000, {}, true);
  // Bound, never used, destroyed: remote unspecified.
  tracker_.destroyed(destroy_of(full(make_entry(AF_INET, 7, "10.0.0.5", 7000, "0.0.0.0", 0, 40)),
                                info(0, 0, 0, 0, 0, 0)),
                     listeners_, 1100);
  // A request socket appears after the baseline: the accepted socket will speak for it.
  SocketEntry request = make_entry(AF_INET, 3, "10.0.0.5", 22, "192.0.2.8", 1234, 41);
  poll(2000, {request});
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().unused_destroys, 1U);
}

TEST_F(TrackerTest, TimeWaitOfAnUnseenCloseIsReportedOnce) {
  poll(1000, {}, true);
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40000, "10.0.0.9", 443, 50);
  poll(2000, {tw});
  poll(3000, {tw});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].kind, EventKind::kClose);
  EXPECT_EQ(ev[0].entry.state, 6);
}

TEST_F(TrackerTest, TrackedSocketTurningIntoTimeWaitWithoutEventIsClosedOnce) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 60, info(101, 51, 5, 4, 30, 100))});
  take();
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40000, "10.0.0.9", 443, 60);
  poll(3000, {tw});
  poll(4000, {tw});
  poll(5000, {});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].kind, EventKind::kClose);
  EXPECT_EQ(ev[0].traffic.bytes_sent, 100U);
}

TEST_F(TrackerTest, PeriodicTrafficIsDeltaPlusCumulative) {
  poll(0, {}, true);
  poll(1000, {outbound(1, 70, info(101, 51, 5, 4, 30, 100))});
  take();
  tracker_.report_traffic(30000, 60000);
  EXPECT_TRUE(take().empty()) << "not due yet";
  poll(60000, {outbound(1, 70, info(301, 151, 9, 8, 30, 300))});
  tracker_.report_traffic(61000, 60000);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].kind, EventKind::kTraffic);
  EXPECT_EQ(ev[0].traffic.bytes_sent, 200U);
  EXPECT_EQ(ev[0].traffic.bytes_received, 100U);
  EXPECT_EQ(ev[0].cumulative.bytes_sent, 300U);
  EXPECT_EQ(ev[0].cumulative.bytes_received, 151U);
  tracker_.report_traffic(62000, 60000);
  EXPECT_TRUE(take().empty());
  tracker_.report_traffic(130000, 0);
  EXPECT_TRUE(take().empty()) << "interval 0 disables";
}

// As the daemon runs it: a close found by a poll needs the next poll to agree.
class ConfirmingTrackerTest : public TrackerTest {
 protected:
  ConfirmingTrackerTest() : TrackerTest(true) {}
};

TEST_F(ConfirmingTrackerTest, RemnantSeenBeforeItsDestroyEvent) {
  poll(1000, {listener(22, 1)}, true);
  poll(2000, {listener(22, 1), inbound(1, 2, info(10, 20, 3, 3, 50, 10))});
  take();
  // The poll finds the TIME-WAIT minisocket; the destroy event is still queued.
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 22, "192.0.2.7", 50000, 2);
  poll(3000, {listener(22, 1), tw});
  EXPECT_TRUE(take().empty());
  tracker_.destroyed(destroy_of(inbound(1, 2), info(301, 1001, 3, 6, 20, 300)), listeners_, 3100);
  poll(4000, {listener(22, 1), tw});
  poll(5000, {listener(22, 1)});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_TRUE(ev[0].from_destroy) << "the event's final totals, not the poll's";
  EXPECT_EQ(ev[0].traffic.bytes_received, 1000U);
}

TEST_F(ConfirmingTrackerTest, UntrackedRemnantThenItsEvent) {
  poll(1000, {listener(22, 1)}, true);
  take();
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 22, "192.0.2.7", 50000, 9);
  poll(2000, {listener(22, 1), tw});
  tracker_.destroyed(destroy_of(inbound(1, 9), info(301, 1001, 3, 6, 20, 300)), listeners_, 2100);
  poll(3000, {listener(22, 1), tw});
  poll(4000, {listener(22, 1)});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_TRUE(ev[0].from_destroy);
}

// Measured on 6.18: for a connection no poll saw, the TIME-WAIT minisocket and the
// destroy event carry different cookies (cookies are made on first request).
TEST_F(ConfirmingTrackerTest, RemnantUnderAnotherCookieIsMatchedByFlow) {
  poll(1000, {listener(22, 1)}, true);
  take();
  // The event first, then the remnant.
  tracker_.destroyed(destroy_of(inbound(1, 0x7a), info(11, 1, 3, 3, 20, 10)), listeners_, 1100);
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 22, "192.0.2.7", 50000, 0x7c);
  poll(2000, {listener(22, 1), tw});
  poll(3000, {listener(22, 1), tw});
  // The remnant first, then the event.
  SocketEntry tw2 = make_entry(AF_INET, 6, "10.0.0.5", 22, "192.0.2.8", 50001, 0x8c);
  poll(4000, {listener(22, 1), tw, tw2});
  SocketEntry other = inbound(1, 0x8a);
  other.remote_addr = testing::raw_address(AF_INET, "192.0.2.8");
  other.remote_port = 50001;
  tracker_.destroyed(destroy_of(other, info(11, 1, 3, 3, 20, 10)), listeners_, 4100);
  for (int i = 5; i < 9; ++i) {
    poll(i * 1000, {listener(22, 1), tw, tw2});
  }
  auto ev = take();
  ASSERT_EQ(ev.size(), 2U);
  EXPECT_TRUE(ev[0].from_destroy);
  EXPECT_TRUE(ev[1].from_destroy);
  EXPECT_EQ(tracker_.stats().closed_by_poll, 0U);
}

TEST_F(ConfirmingTrackerTest, NoEventThenTheNextPollReportsIt) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 60, info(101, 51, 5, 4, 30, 100))});
  take();
  poll(3000, {});
  EXPECT_TRUE(take().empty()) << "waits one poll for the event";
  poll(4000, {});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_FALSE(ev[0].from_destroy);
  EXPECT_EQ(ev[0].time_ms, 4000);
  // An untracked remnant with no event at all: reported once, a poll later.
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40001, "10.0.0.9", 443, 61);
  poll(5000, {tw});
  EXPECT_TRUE(take().empty());
  poll(6000, {tw});
  poll(7000, {tw});
  EXPECT_EQ(take().size(), 1U);
}

TEST_F(ConfirmingTrackerTest, OneDumpMissingASocketIsNotAClose) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 70, info(101, 51, 5, 4, 30, 100))});
  take();
  poll(3000, {});  // a dump that skipped it
  poll(4000, {outbound(1, 70, info(101, 51, 5, 4, 30, 100))});
  poll(5000, {outbound(1, 70, info(101, 51, 5, 4, 30, 100))});
  EXPECT_TRUE(take().empty());
}

TEST(FinalTraffic, MeasuredCloses) {
  // 6.18, loopback: client sent 1000 and received 300, then closed first.
  EXPECT_EQ(final_traffic(info(1002, 301, 6, 4, 31, 1000), true).bytes_sent, 1000U);
  EXPECT_EQ(final_traffic(info(1002, 301, 6, 4, 31, 1000), true).bytes_received, 300U);
  // Its server.
  EXPECT_EQ(final_traffic(info(301, 1001, 3, 6, 20, 300), false).bytes_sent, 300U);
  EXPECT_EQ(final_traffic(info(301, 1001, 3, 6, 20, 300), false).bytes_received, 1000U);
  // The server of a connection the client reset: no FIN either way.
  EXPECT_EQ(final_traffic(info(300, 1000, 2, 5, 21, 300), false).bytes_sent, 300U);
  EXPECT_EQ(final_traffic(info(300, 1000, 2, 5, 21, 300), false).bytes_received, 1000U);
  // Retransmissions are not sent twice.
  netlink::TcpInfo r = info(1002, 1, 9, 3, 40, 1400);
  r.bytes_retrans = 400;
  EXPECT_EQ(final_traffic(r, true).bytes_sent, 1000U);
}

}  // namespace
}  // namespace sockstate::tracking

// The tracker against the contract's daemon table: hand-fed polls and destroy events, each
// rule an assertion. Terminal records exactly once and nothing after them; traffic deltas
// that add up to what moved while watched; start time only when the start was seen;
// endpoints never unspecified.
#include "sockstate/tracking/tracker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <vector>

#include "socket_entries.h"

namespace sockstate::tracking {
namespace {

using flow::Activity;
using flow::Observation;
using flow::Status;
using netlink::SocketEntry;
using testing::info;
using Shape = flow::Orientation::Shape;
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

// Client side of a connection to 10.0.0.9:443, and an accepted one on :22.
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

bool terminal(const Observation& o) {
  return o.activity == Activity::kClose || o.activity == Activity::kFail ||
         o.activity == Activity::kRefuse;
}

class TrackerTest : public ::testing::Test {
 protected:
  explicit TrackerTest(bool confirm = false)
      : tracker_([this](const Observation& o) { record(o); }, options(confirm)) {}

  TrackerOptions options(bool confirm) {
    TrackerOptions o;
    o.confirm_poll_closes = confirm;
    o.route_source = [this](std::uint64_t, const flow::Address&) { return route_; };
    o.kernel_facts = [this](std::uint64_t cookie) -> const flow::KernelFacts* {
      const auto it = kernel_.find(cookie);
      return it == kernel_.end() ? nullptr : &it->second;
    };
    return o;
  }

  void record(const Observation& o) {
    // The contract's rule, checked on every observation every test makes (a summary of
    // short-lived sockets is about none of them alone: it has no cookie).
    EXPECT_FALSE(o.count == 0 && ended_.contains(o.socket.cookie))
        << "a record after the terminal one for cookie " << o.socket.cookie;
    if (terminal(o) && o.count == 0) {
      ended_.insert(o.socket.cookie);
    }
    EXPECT_FALSE(flow::is_unspecified(o.local.ip) && o.orientation.connected())
        << "an unspecified endpoint for cookie " << o.socket.cookie;
    all_.push_back(o);
    observations_.push_back(o);
  }

  void poll(std::int64_t now, const std::vector<SocketEntry>& sockets, bool baseline = false) {
    listeners_ = {};
    for (const auto& s : sockets) {
      if (s.state == netlink::kTcpListen) {
        listeners_.add(s);
      }
    }
    tracker_.begin_poll(now,
                        baseline ? Tracker::FirstSight::kBaseline : Tracker::FirstSight::kEvent);
    for (const auto& s : sockets) {
      tracker_.poll_socket(s, listeners_, perimeter());
    }
    tracker_.end_poll();
    if (pace_) {
      tracker_.begin_round();  // as the daemon does: what is owed (baselines), after the poll
      tracker_.report_paced(now, 0);
    }
  }

  // A round of what is owed with Traffic every interval_ms, as the daemon paces it.
  std::size_t report_traffic(std::int64_t now, std::int64_t interval_ms,
                             std::size_t budget = SIZE_MAX) {
    tracker_.begin_round();
    return tracker_.report_paced(now, interval_ms, budget);
  }

  void destroy(const SocketEntry& e, std::int64_t now) {
    tracker_.destroyed(e, listeners_, perimeter(), now);
  }

  flow::Perimeter perimeter() const { return flow::Perimeter{&host_}; }
  bool pace_ = true;  // write what is owed after each poll (false: leave it to the test)

  std::vector<Observation> take() { return std::exchange(observations_, {}); }

  // Sum of `traffic` over every record of one socket.
  flow::Traffic traffic_sum(std::uint64_t cookie) const {
    flow::Traffic sum;
    for (const auto& o : all_) {
      if (o.socket.cookie == cookie && o.traffic) {
        sum.bytes_sent += o.traffic->delta.bytes_sent;
        sum.bytes_received += o.traffic->delta.bytes_received;
        sum.segs_sent += o.traffic->delta.segs_sent;
        sum.segs_received += o.traffic->delta.segs_received;
      }
    }
    return sum;
  }

  Tracker tracker_;
  flow::ListenerTable listeners_;
  flow::HostAddresses host_;
  std::optional<flow::Address> route_;
  std::vector<Observation> observations_;
  std::vector<Observation> all_;
  std::set<std::uint64_t> ended_;
  std::map<std::uint64_t, flow::KernelFacts> kernel_;  // what kernel events said, by cookie
};

class ConfirmingTrackerTest : public TrackerTest {
 protected:
  ConfirmingTrackerTest() : TrackerTest(true) {}
};

TEST_F(TrackerTest, BaselineIsTheSnapshotTable) {
  poll(1000,
       {listener(22, 1), inbound(1, 2), outbound(4, 3), outbound(5, 4), inbound(9, 5),
        outbound(11, 6), inbound(8, 7),
        make_entry(AF_INET, 6, "10.0.0.5", 40001, "10.0.0.9", 443, 8)},
       true);
  auto ev = take();
  // Written paced, in no particular order (a TIME-WAIT socket, never tracked, at once).
  std::sort(ev.begin(), ev.end(), [](const Observation& a, const Observation& b) {
    return a.socket.cookie < b.socket.cookie;
  });
  const std::vector<Activity> want = {Activity::kListen,  Activity::kTraffic, Activity::kTraffic,
                                      Activity::kTraffic, Activity::kTraffic, Activity::kTraffic,
                                      Activity::kTraffic, Activity::kClose};
  ASSERT_EQ(ev.size(), want.size());
  for (std::size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].activity, want[i]) << i;
    EXPECT_EQ(ev[i].status, Status::kSuccess) << i;
    EXPECT_EQ(ev[i].start_ms, 0) << "existed before we started: age unknown";
    EXPECT_FALSE(ev[i].traffic) << "a baseline ends no period";
  }
  // Nothing changes: nothing to say.
  poll(2000, {listener(22, 1), inbound(1, 2), outbound(4, 3), outbound(5, 4), inbound(9, 5),
              outbound(11, 6), inbound(8, 7)});
  EXPECT_TRUE(take().empty());
}

TEST_F(TrackerTest, ChangesAfterTheBaseline) {
  poll(1000, {listener(22, 1), inbound(1, 2), outbound(1, 3)}, true);
  take();
  poll(3000, {listener(22, 1), listener(80, 4), inbound(8, 2), outbound(1, 3), outbound(2, 5)});
  auto ev = take();
  // Written paced, in the round's order: by cookie here.
  std::sort(ev.begin(), ev.end(), [](const Observation& a, const Observation& b) {
    return a.socket.cookie < b.socket.cookie;
  });
  ASSERT_EQ(ev.size(), 3U);
  std::swap(ev[0], ev[1]);  // the Listen (4) first, as this test always read them
  EXPECT_EQ(ev[0].activity, Activity::kListen);
  EXPECT_EQ(ev[0].start_ms, 0) << "start_time only on terminal records";
  EXPECT_EQ(ev[1].activity, Activity::kStateChange);
  EXPECT_EQ(ev[1].previous_state, 1);
  EXPECT_EQ(ev[1].socket.state, 8);
  EXPECT_EQ(ev[1].start_ms, 0) << "a baseline socket's start is unknown";
  EXPECT_EQ(ev[1].time_ms, 3000) << "as of the poll that found it";
  EXPECT_EQ(ev[1].status, Status::kSuccess);
  EXPECT_EQ(ev[2].activity, Activity::kOpen);
  EXPECT_EQ(ev[2].start_ms, 0);
  EXPECT_EQ(ev[2].time_ms, 3000);
  EXPECT_EQ(ev[2].orientation.shape, Shape::kInitiated);
  EXPECT_TRUE(ev[2].socket.uid);
  // One gone, found by a poll (no destroy events here).
  poll(4000, {listener(22, 1), listener(80, 4), inbound(8, 2), outbound(2, 5)});
  ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].socket.cookie, 3U);
  EXPECT_EQ(ev[0].status, Status::kUnknown) << "how it ended cannot be told";
  EXPECT_FALSE(ev[0].socket.queues);
  EXPECT_EQ(ev[0].time_ms, 4000);
  EXPECT_EQ(tracker_.stats().closed_by_poll, 1U);
}

TEST_F(TrackerTest, DestroyClosesOnceWithFinalDeltaAndPollOwner) {
  poll(1000, {listener(22, 1)}, true);
  take();
  poll(2000, {listener(22, 1), inbound(1, 2, info(11, 21, 3, 3, 50, 10))});
  ASSERT_EQ(take().size(), 1U);
  // Measured on 6.18: the accepting side sent 300, received 1000; orderly close.
  destroy(destroy_of(inbound(1, 2), info(301, 1001, 3, 6, 20, 300)), 2500);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  const Observation& c = ev[0];
  EXPECT_EQ(c.activity, Activity::kClose);
  EXPECT_EQ(c.status, Status::kSuccess) << "both FINs acknowledged";
  EXPECT_EQ(c.start_ms, 2000);
  EXPECT_EQ(c.end_ms, 2500);
  EXPECT_EQ(c.socket.inode, 1002U) << "owner from the poll";
  EXPECT_EQ(c.socket.uid, 33U);
  EXPECT_FALSE(c.socket.queues) << "no queues from a destroyed socket";
  EXPECT_EQ(c.orientation.shape, Shape::kAccepted);
  ASSERT_TRUE(c.cumulative);
  EXPECT_EQ(c.cumulative->bytes_sent, 300U);
  EXPECT_EQ(c.cumulative->bytes_received, 1000U);
  ASSERT_TRUE(c.traffic);
  EXPECT_EQ(c.traffic->delta.bytes_sent, 300U) << "all it moved: it began under the daemon";
  EXPECT_EQ(c.traffic->delta.bytes_received, 1000U);
  EXPECT_EQ(c.traffic->start_ms, 1000) << "no earlier than the poll before its Open's";
  EXPECT_EQ(c.traffic->end_ms, 2500);
  // The same destroy again, a late poll still listing the socket, its TIME-WAIT
  // minisocket (same cookie) for three polls: no more records.
  destroy(destroy_of(inbound(1, 2), info(301, 1001, 3, 6, 20, 300)), 2600);
  SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 22, "192.0.2.7", 50000, 2);
  for (int i = 0; i < 3; ++i) {
    poll(3000 + i * 1000, {listener(22, 1), tw});
  }
  poll(7000, {listener(22, 1)});
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().duplicate_destroys, 1U);
  EXPECT_EQ(tracker_.stats().closed_by_destroy, 1U);
}

// A baseline is owed, not written at once: the daemon writes it in step with its sinks.
// Whatever the pace, each socket's baseline record comes once, and before any other
// record of that socket (a change, a close, Traffic).
TEST_F(TrackerTest, TheBaselineIsPacedAndPrecedesEachSocketsNextRecord) {
  pace_ = false;
  poll(1000, {listener(22, 1), inbound(1, 2), outbound(1, 3), outbound(1, 4)}, true);
  EXPECT_TRUE(take().empty());  // owed, nothing written yet
  // Before any baseline is written: 4 is destroyed, and the next poll finds 3 closing.
  destroy(destroy_of(outbound(1, 4), info(1, 1, 1, 1, 30, 0)), 1800);
  poll(2000, {listener(22, 1), inbound(1, 2), outbound(netlink::kTcpFinWait1, 3)});
  auto ev = take();
  ASSERT_EQ(ev.size(), 3U);
  EXPECT_EQ(ev[0].socket.cookie, 4U);
  EXPECT_EQ(ev[0].activity, flow::snapshot_activity(1));  // its baseline, as first seen
  EXPECT_EQ(ev[0].time_ms, 1000);
  EXPECT_EQ(ev[1].socket.cookie, 4U);
  EXPECT_EQ(ev[1].activity, Activity::kClose);
  EXPECT_EQ(ev[2].socket.cookie, 3U);
  EXPECT_EQ(ev[2].activity, flow::snapshot_activity(1));
  EXPECT_EQ(ev[2].socket.state, 1U);  // the state the baseline found, not the new one
  // The rest, one record per call: each owed baseline once, and 3's State Change (owed
  // like an Open: paced, as of its poll).
  tracker_.begin_round();
  EXPECT_EQ(tracker_.report_paced(2100, 0, 1), 1U);
  ev = take();
  ASSERT_EQ(ev.size(), 1U);
  std::size_t more = 0;
  while (!tracker_.round_done()) {
    more += tracker_.report_paced(2100, 0, 1);
  }
  EXPECT_EQ(more, 2U);
  for (auto& o : take()) {
    ev.push_back(o);
  }
  ASSERT_EQ(ev.size(), 3U);
  const auto change = std::find_if(ev.begin(), ev.end(), [](const Observation& o) {
    return o.activity == Activity::kStateChange;
  });
  ASSERT_NE(change, ev.end());
  EXPECT_EQ(change->socket.cookie, 3U);
  EXPECT_EQ(change->time_ms, 2000);
  EXPECT_EQ(change->previous_state, 1);
  tracker_.begin_round();
  EXPECT_EQ(tracker_.report_paced(2200, 0), 0U);  // nothing owed twice
  EXPECT_TRUE(take().empty());
}

// A poll that finds sockets gone owes their Closes, written paced like the baseline, as of
// that poll; a destroy event that comes before the round writes one is the Close instead.
TEST_F(TrackerTest, ClosesFoundByAPollArePacedAndAnEventComingFirstWins) {
  poll(1000, {outbound(1, 3), outbound(1, 4), outbound(1, 5)});
  EXPECT_EQ(take().size(), 3U);  // Opens
  pace_ = false;
  poll(2000, {});  // all three gone: owed, nothing written yet
  EXPECT_TRUE(take().empty());
  destroy(destroy_of(outbound(1, 4), info(1, 1, 1, 1, 30, 0)), 2500);  // 4's event, late
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].socket.cookie, 4U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].end_ms, 2500);
  tracker_.begin_round();
  EXPECT_EQ(tracker_.report_paced(2600, 0, 1), 1U);
  std::size_t more = 0;
  while (!tracker_.round_done()) {
    more += tracker_.report_paced(2600, 0, 1);
  }
  EXPECT_EQ(more, 1U);
  ev = take();
  ASSERT_EQ(ev.size(), 2U);
  for (const Observation& o : ev) {
    EXPECT_TRUE(o.socket.cookie == 3 || o.socket.cookie == 5) << o.socket.cookie;
    EXPECT_EQ(o.activity, Activity::kClose);
    EXPECT_EQ(o.end_ms, 2000) << "as of the poll that found it gone";
  }
  EXPECT_EQ(tracker_.stats().tracked, 0U);
  tracker_.begin_round();
  EXPECT_EQ(tracker_.report_paced(2700, 0), 0U);  // nothing twice
  EXPECT_TRUE(take().empty());
}

// A paced baseline record carries the socket's counters as the baseline poll saw them
// (the tracker's totals: it keeps no copy of the counters with the socket).
TEST_F(TrackerTest, APacedBaselineCarriesTheTotalsItFound) {
  poll(1000, {outbound(1, 40, info(101, 51, 5, 4, 30, 100))}, true);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  ASSERT_TRUE(ev[0].cumulative);
  EXPECT_EQ(*ev[0].cumulative, (flow::Traffic{100, 51, 5, 4}));
}

// A bound socket found at a baseline that connects and is destroyed before its baseline is
// written: the baseline says what the baseline saw (bound, no peer), then the Close.
TEST_F(TrackerTest, AnOwedBaselineIsWrittenAsFoundBeforeTheEventThatChangesIt) {
  pace_ = false;
  const SocketEntry bound =
      full(make_entry(AF_INET, netlink::kTcpClose, "10.0.0.5", 40000, "0.0.0.0", 0, 60));
  poll(1000, {bound}, true);
  EXPECT_TRUE(take().empty());
  destroy(destroy_of(outbound(1, 60), info(101, 51, 5, 4, 30, 100)), 1500);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 2U);
  EXPECT_EQ(ev[0].activity, flow::snapshot_activity(netlink::kTcpClose));
  EXPECT_EQ(ev[0].orientation.shape, Shape::kUnconnected);
  EXPECT_EQ(ev[0].remote.port, 0U);
  EXPECT_TRUE(terminal(ev[1]));
}

// A poll without tcp_info (between Traffic ticks): the tracker asks for it where a record
// needs it now, and a socket seen without it keeps what the last poll with it said.
TEST_F(TrackerTest, APollWithoutTcpInfoAsksForItOnlyWhereARecordNeedsIt) {
  const auto bare = [](SocketEntry e) {
    e.has_tcp_info = false;
    e.info = {};
    return e;
  };
  poll(1000, {}, true);
  poll(2000, {outbound(1, 40, info(101, 51, 5, 4, 30, 100))});  // Open: 100 out, 51 in
  take();
  tracker_.begin_poll(3000, Tracker::FirstSight::kEvent);
  // Unchanged: no record owed, no need.
  EXPECT_FALSE(tracker_.wants_info(bare(outbound(1, 40))));
  // New (an Open), changed state (a State Change): needed.
  EXPECT_TRUE(tracker_.wants_info(bare(outbound(1, 41))));
  EXPECT_TRUE(tracker_.wants_info(bare(outbound(8, 40))));
  // It has it already; a minisocket has none to give; bound or listening: no Open record.
  EXPECT_FALSE(tracker_.wants_info(outbound(1, 41)));
  SocketEntry mini = bare(outbound(6, 42));
  mini.full_socket = false;
  EXPECT_FALSE(tracker_.wants_info(mini));
  EXPECT_FALSE(tracker_.wants_info(bare(outbound(7, 43))));
  EXPECT_FALSE(tracker_.wants_info(bare(listener(80, 44))));
  tracker_.poll_socket(bare(outbound(1, 40)), listeners_, perimeter());
  tracker_.end_poll();
  EXPECT_TRUE(take().empty());
  // The poll without tcp_info took nothing away: a Traffic tick's poll has it again, and
  // the Close found by a later poll carries the totals and RTT last known.
  poll(4000, {outbound(1, 40, info(701, 51, 9, 6, 30, 700))});
  report_traffic(4000, 1000);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].traffic->delta, (flow::Traffic{700, 51, 9, 6})) << "from its start";
  tracker_.begin_poll(5000, Tracker::FirstSight::kEvent);
  tracker_.poll_socket(bare(outbound(1, 40)), listeners_, perimeter());
  tracker_.end_poll();
  poll(6000, {});  // gone: its Close is owed, written by the round
  ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].cumulative, (flow::Traffic{700, 51, 9, 6}));
  ASSERT_TRUE(ev[0].socket.path);
  EXPECT_EQ(ev[0].socket.path->rtt_us, 30U);
}

// At a baseline every socket's record carries its totals: all are wanted.
TEST_F(TrackerTest, ABaselineWithoutTcpInfoWantsItForEverySocket) {
  SocketEntry e = outbound(1, 40);
  e.has_tcp_info = false;
  tracker_.begin_poll(1000, Tracker::FirstSight::kBaseline);
  EXPECT_TRUE(tracker_.wants_info(e));
  tracker_.set_first_sight(Tracker::FirstSight::kSilent);
  EXPECT_TRUE(tracker_.wants_info(e));
}

TEST_F(TrackerTest, TrafficDeltasAddUpAndIdleSocketsSayNothing) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 40, info(101, 51, 5, 4, 30, 100))});  // Open: 100 out, 51 in
  take();
  poll(3000, {outbound(1, 40, info(701, 51, 9, 6, 30, 700))});
  report_traffic(3000, 1000);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kTraffic);
  ASSERT_TRUE(ev[0].traffic);
  // Born while the daemon ran: the first period counts from its start (revision 3, rule
  // 1), which the poll before the one that found it bounds.
  EXPECT_EQ(ev[0].traffic->delta, (flow::Traffic{700, 51, 9, 6}));
  EXPECT_EQ(ev[0].traffic->start_ms, 1000);
  EXPECT_EQ(ev[0].traffic->end_ms, 3000);
  EXPECT_EQ(ev[0].cumulative, (flow::Traffic{700, 51, 9, 6}));
  // Idle: no record, however often asked.
  poll(4000, {outbound(1, 40, info(701, 51, 9, 6, 30, 700))});
  report_traffic(4000, 1000);
  poll(5000, {outbound(1, 40, info(701, 51, 9, 6, 30, 700))});
  report_traffic(5000, 1000);
  EXPECT_TRUE(take().empty());
  EXPECT_GE(tracker_.stats().quiet_traffic, 2U);
  // It moves again: the period runs from the last record that carried traffic.
  poll(6000, {outbound(1, 40, info(1001, 251, 12, 9, 30, 1000))});
  report_traffic(6000, 1000);
  ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].traffic->delta.bytes_sent, 300U);
  EXPECT_EQ(ev[0].traffic->start_ms, 3000);
  // Not yet an interval since: nothing.
  poll(6500, {outbound(1, 40, info(1101, 251, 13, 9, 30, 1100))});
  report_traffic(6500, 1000);
  EXPECT_TRUE(take().empty());
  // The close carries the last delta; everything adds up to its totals (1100 sent, 251
  // received; the peer's FIN is no data), since it was born under the daemon.
  destroy(destroy_of(outbound(1, 40), info(1102, 252, 14, 10, 30, 1100)), 7000);
  ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].traffic->delta.bytes_sent, 100U);
  const flow::Traffic sum = traffic_sum(40);
  EXPECT_EQ(sum.bytes_sent, 1100U);
  EXPECT_EQ(sum.bytes_received, 251U);
  EXPECT_EQ(sum, *ev[0].cumulative);
}

TEST_F(TrackerTest, ShortConnectionBetweenPollsHasAllItsBytesAsOneDelta) {
  poll(1000, {listener(22, 1)}, true);
  take();
  destroy(destroy_of(inbound(1, 9), info(301, 1001, 3, 6, 20, 300)), 1500);
  poll(2000, {listener(22, 1)});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].start_ms, 0) << "never seen open";
  EXPECT_EQ(ev[0].orientation.shape, Shape::kAccepted) << "listener decided";
  EXPECT_EQ(ev[0].traffic->delta.bytes_received, 1000U);
  EXPECT_EQ(ev[0].traffic->start_ms, 0) << "the period's start is unknown";
  EXPECT_EQ(ev[0].cumulative->bytes_received, 1000U);
  EXPECT_FALSE(ev[0].socket.uid) << "a destroy event's uid 0 is nobody's";
}

TEST_F(TrackerTest, FailedAttemptsRefuseAndFail) {
  poll(1000, {}, true);
  // Non-blocking connect refused by RST (6.18): segs_out 1, segs_in 1, rtt 0.
  destroy(destroy_of(outbound(2, 20), info(0, 0, 1, 1, 0, 0)), 1100);
  // SYNs never answered: segs_in 0, retransmissions.
  destroy(destroy_of(outbound(2, 21), info(0, 0, 3, 0, 0, 0)), 1200);
  // Blocking connect that failed: counters reset, remote port cleared.
  SocketEntry blocking = destroy_of(outbound(2, 22), info(0, 0, 0, 0, 0, 0));
  blocking.remote_port = 0;
  destroy(blocking, 1300);
  auto ev = take();
  ASSERT_EQ(ev.size(), 3U);
  EXPECT_EQ(ev[0].activity, Activity::kRefuse);
  EXPECT_EQ(ev[0].status_detail, "refused") << "the RST it counted";
  EXPECT_EQ(ev[1].activity, Activity::kFail);
  EXPECT_EQ(ev[1].status_detail, "") << "timeout or unreachable: the polls cannot tell";
  EXPECT_EQ(ev[1].traffic->delta.segs_sent, 3U);
  EXPECT_EQ(ev[2].activity, Activity::kFail);
  EXPECT_EQ(ev[2].remote.port, 0) << "address alone";
  for (const auto& o : ev) {
    EXPECT_EQ(o.status, Status::kFailure);
  }
}

TEST_F(TrackerTest, HowACloseEndedIsItsStatus) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 30, info(101, 51, 5, 4, 30, 100)),
              outbound(1, 31, info(101, 51, 5, 4, 30, 100))});
  take();
  // close() with SO_LINGER 0: tcp_disconnect() zeroed everything before the event.
  SocketEntry aborted = destroy_of(outbound(1, 30), info(0, 0, 0, 0, 0, 0));
  aborted.remote_port = 0;
  destroy(aborted, 2500);
  // The peer's RST: counters kept, our FIN never acknowledged.
  destroy(destroy_of(outbound(1, 31), info(101, 51, 6, 5, 30, 100)), 2600);
  auto ev = take();
  ASSERT_EQ(ev.size(), 2U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].status, Status::kUnknown);
  EXPECT_EQ(ev[0].status_detail, "aborted");
  EXPECT_EQ(ev[0].remote.port, 443) << "the port the poll saw";
  EXPECT_EQ(ev[0].cumulative->bytes_sent, 100U) << "the last poll's totals, less our SYN";
  EXPECT_EQ(ev[0].traffic->delta.bytes_sent, 100U) << "all it sent: it began under the daemon";
  ASSERT_TRUE(ev[0].socket.path);
  EXPECT_EQ(ev[0].socket.path->rtt_us, 30U) << "the last poll's RTT, which the abort zeroed";
  EXPECT_EQ(ev[1].status, Status::kUnknown);
  EXPECT_EQ(ev[1].status_detail, "reset");
}

// Revision 3, rule 1: 100,000 bytes sent before the first poll that sees the connection,
// then idle: its records' traffic sums to all of it, and to its final totals.
TEST_F(TrackerTest, AConnectionBornUnderTheDaemonSumsFromZero) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 50, info(100001, 1, 3, 2, 30, 100000))});
  poll(3000, {outbound(1, 50, info(100001, 1, 3, 2, 30, 100000))});
  report_traffic(62000, 60000);
  destroy(destroy_of(outbound(1, 50), info(100002, 2, 4, 3, 30, 100000)), 90000);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 3U);  // Open, Traffic, Close
  EXPECT_EQ(ev[1].activity, Activity::kTraffic);
  EXPECT_EQ(ev[1].traffic->delta.bytes_sent, 100000U);
  EXPECT_EQ(traffic_sum(50), *ev[2].cumulative);
  EXPECT_EQ(traffic_sum(50).bytes_sent, 100000U);
  // With the kernel's transition events, the period starts at the connect() itself.
  kernel_[51].start_ms = 1500;
  poll(91000, {outbound(1, 51, info(501, 1, 3, 2, 30, 500))});
  destroy(destroy_of(outbound(1, 51), info(501, 1, 3, 2, 30, 500)), 92000);
  const auto more = take();
  ASSERT_EQ(more.size(), 2U);
  EXPECT_EQ(more[1].traffic->start_ms, 1500);
  EXPECT_EQ(more[1].traffic->delta.bytes_sent, 500U);
  // A socket of the startup baseline counts from first seen: its past is unknown.
  poll(93000, {outbound(1, 52, info(801, 1, 3, 2, 30, 800))}, true);
  destroy(destroy_of(outbound(1, 52), info(901, 1, 3, 2, 30, 900)), 94000);
  const auto baseline = take();
  ASSERT_EQ(baseline.size(), 2U);
  EXPECT_EQ(baseline[1].traffic->delta.bytes_sent, 100U);
}

// Revision 3, rule 4: a pending handshake is no success; nothing but its SYNs moved.
TEST_F(TrackerTest, APendingHandshakeIsUnknownAndHasNoTraffic) {
  poll(1000, {}, true);
  poll(2000, {outbound(2, 60, info(0, 0, 1, 0, 0, 0))});
  poll(5000, {outbound(2, 60, info(0, 0, 3, 0, 0, 0))});
  report_traffic(5000, 1000);
  kernel_[60].ended = true;
  kernel_[60].error = ETIMEDOUT;
  destroy(destroy_of(outbound(2, 60), info(0, 0, 4, 0, 0, 0)), 9000);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 2U) << "Open and Fail, no Traffic for its SYNs";
  EXPECT_EQ(ev[0].activity, Activity::kOpen);
  EXPECT_EQ(ev[0].status, Status::kUnknown);
  EXPECT_EQ(ev[1].activity, Activity::kFail);
  EXPECT_EQ(ev[1].status, Status::kFailure);
  EXPECT_EQ(ev[1].status_detail, "timeout");
  // An Open found past its handshake is a success.
  poll(10000, {outbound(1, 61, info(1, 1, 2, 2, 30, 0))});
  const auto open = take();
  ASSERT_EQ(open.size(), 1U);
  EXPECT_EQ(open[0].status, Status::kSuccess);
}

// Where the kernel's events saw why an attempt ended (sk_err), the record says it.
TEST_F(TrackerTest, TheKernelsErrorSaysWhyAnAttemptFailed) {
  poll(1000, {}, true);
  const std::pair<std::uint16_t, const char*> cases[] = {
      {ECONNREFUSED, "refused"}, {EHOSTUNREACH, "unreachable"}, {ENETUNREACH, "unreachable"}};
  std::uint64_t cookie = 70;
  for (const auto& [error, detail] : cases) {
    kernel_[cookie].ended = true;
    kernel_[cookie].error = error;
    destroy(destroy_of(outbound(2, cookie), info(0, 0, 1, 0, 0, 0)), 2000);
    const auto ev = take();
    ASSERT_EQ(ev.size(), 1U);
    EXPECT_EQ(ev[0].activity, error == ECONNREFUSED ? Activity::kRefuse : Activity::kFail);
    EXPECT_EQ(ev[0].status_detail, detail);
    ++cookie;
  }
}

// Revision 3, rule 3: the kernel's events saw it connect(): known, not guessed, though no
// listener decides it and no poll saw it in SYN-SENT.
TEST_F(TrackerTest, TheKernelsEventsKnowWhoInitiated) {
  poll(1000, {}, true);
  // Port 22 to an ephemeral remote port: the guess would be Accepted.
  kernel_[80].opened = flow::KernelFacts::Opened::kActive;
  destroy(destroy_of(inbound(1, 80), info(11, 11, 3, 3, 30, 10)), 2000);
  destroy(destroy_of(inbound(1, 81), info(11, 11, 3, 3, 30, 10)), 2000);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 2U);
  EXPECT_EQ(ev[0].orientation.shape, Shape::kInitiated);
  EXPECT_TRUE(ev[0].orientation.assignment_known);
  EXPECT_EQ(ev[0].orientation.observation_point, flow::ObservationPoint::kSource);
  EXPECT_EQ(ev[1].orientation.shape, Shape::kAccepted) << "the guess";
  EXPECT_FALSE(ev[1].orientation.assignment_known);
}

TEST_F(TrackerTest, AbortedEndpointsKeepTheirAddresses) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 50, info(101, 51, 5, 4, 30, 100))});
  take();
  // The abort cleared the source address.
  SocketEntry cleared = destroy_of(outbound(1, 50), info(0, 0, 0, 0, 0, 0));
  cleared.local_addr = {};
  destroy(cleared, 2500);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].local, flow::local_endpoint(outbound(1, 50))) << "from the polls";
  EXPECT_FALSE(ev[0].local_inferred);
  // Never polled: the route's preferred source, marked inferred.
  route_ = flow::normalized_address(AF_INET, testing::raw_address(AF_INET, "10.0.0.6"));
  SocketEntry unseen = destroy_of(outbound(1, 51), info(11, 6, 3, 3, 30, 10));
  unseen.local_addr = {};
  destroy(unseen, 2600);
  ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].local.ip, *route_);
  EXPECT_TRUE(ev[0].local_inferred);
}

TEST_F(TrackerTest, UnusedAndHalfOpenSocketsMakeNoRecords) {
  poll(1000, {}, true);
  // Bound, never used, destroyed: remote unspecified.
  destroy(destroy_of(make_entry(AF_INET, 7, "0.0.0.0", 7000, "0.0.0.0", 0, 60), {}), 1100);
  // Seen bound at the baseline (a Bound record), destroyed unused: no terminal record.
  poll(2000, {full(make_entry(AF_INET, 7, "10.0.0.5", 7001, "0.0.0.0", 0, 61))}, true);
  EXPECT_EQ(take().size(), 1U);
  destroy(destroy_of(make_entry(AF_INET, 7, "10.0.0.5", 7001, "0.0.0.0", 0, 61), {}), 2100);
  // A request socket after the baseline: the accepted socket is reported instead.
  poll(3000, {make_entry(AF_INET, 3, "10.0.0.5", 22, "192.0.2.1", 5555, 62)});
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().unused_destroys, 2U);
}

TEST_F(TrackerTest, TimeWaitAtBaselineIsOneCloseAndNothingMore) {
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40001, "10.0.0.9", 443, 70);
  poll(1000, {tw}, true);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  poll(2000, {tw});
  poll(3000, {});
  poll(4000, {});
  EXPECT_TRUE(take().empty());
}

TEST_F(TrackerTest, FinWaitAtBaselineIsTrafficThenOneClose) {
  poll(1000,
       {outbound(4, 80, info(101, 51, 5, 4, 30, 100)), outbound(5, 81), inbound(9, 82),
        outbound(11, 83)},
       true);
  for (const auto& o : take()) {
    EXPECT_EQ(o.activity, Activity::kTraffic);
  }
  for (const std::uint64_t cookie : {80U, 81U, 82U, 83U}) {
    destroy(destroy_of(outbound(1, cookie), info(102, 52, 6, 5, 30, 100)), 2000);
  }
  // Their TIME-WAIT remnants, then nothing.
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40000, "10.0.0.9", 443, 80);
  poll(3000, {tw});
  poll(4000, {});
  report_traffic(5000, 1);
  auto ev = take();
  ASSERT_EQ(ev.size(), 4U);
  for (const auto& o : ev) {
    EXPECT_EQ(o.activity, Activity::kClose);
    EXPECT_EQ(o.start_ms, 0);
    EXPECT_EQ(o.end_ms, 2000);
  }
}

TEST_F(TrackerTest, FinWait2MinisocketAtBaselineClosesOnceWhenItEnds) {
  // The application closed before we started: only a FIN-WAIT-2 minisocket is left.
  const SocketEntry fw2 = make_entry(AF_INET, 5, "10.0.0.5", 40002, "10.0.0.9", 443, 90);
  SocketEntry tw = fw2;
  tw.state = netlink::kTcpTimeWait;
  poll(1000, {fw2}, true);
  ASSERT_EQ(take().size(), 1U);
  poll(2000, {fw2});
  EXPECT_TRUE(take().empty()) << "still FIN-WAIT-2";
  poll(3000, {tw});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].status, Status::kSuccess) << "the peer's FIN came: orderly";
  EXPECT_FALSE(ev[0].socket.uid);
  poll(4000, {tw});
  poll(5000, {});
  EXPECT_TRUE(take().empty());
}

TEST_F(ConfirmingTrackerTest, TimedOutConnectHeldByItsApplicationIsOneFail) {
  poll(1000, {}, true);
  poll(2000, {outbound(2, 100)});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kOpen);
  // The handshake timed out: the socket is unhashed (no dump shows it) while the
  // application holds it. Polls say nothing.
  for (int i = 3; i < 10; ++i) {
    poll(i * 1000, {});
  }
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().awaiting_destroy, 1U);
  // The application closes it: one Fail, with the poll's owner and start.
  destroy(destroy_of(outbound(2, 100), info(0, 0, 6, 0, 0, 0)), 10500);
  ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kFail);
  EXPECT_EQ(ev[0].status, Status::kFailure);
  EXPECT_EQ(ev[0].start_ms, 2000);
  EXPECT_EQ(ev[0].socket.inode, 1100U);
  EXPECT_TRUE(ev[0].socket.uid);
  poll(11000, {});
  EXPECT_TRUE(take().empty());
}

TEST_F(ConfirmingTrackerTest, CloseByPollThenALateDestroyEventIsNothingMore) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 110, info(101, 51, 5, 4, 30, 100))});
  take();
  poll(3000, {});
  poll(4000, {});  // confirmed: Close by poll
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  // Reset and held by the application: its destroy event comes much later.
  for (int i = 5; i < 20; ++i) {
    poll(i * 1000, {});
  }
  destroy(destroy_of(outbound(1, 110), info(0, 0, 0, 0, 0, 0)), 20000);
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().duplicate_destroys, 1U);
}

TEST_F(ConfirmingTrackerTest, RemnantSeenBeforeItsDestroyEvent) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 120, info(101, 51, 5, 4, 30, 100))});
  take();
  // The poll finds the TIME-WAIT minisocket before the destroy event arrives.
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40000, "10.0.0.9", 443, 120);
  poll(3000, {tw});
  EXPECT_TRUE(take().empty()) << "waits one poll for the event";
  destroy(destroy_of(outbound(1, 120), info(202, 52, 8, 6, 30, 200)), 3100);
  poll(4000, {tw});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].cumulative->bytes_sent, 200U) << "the event's final totals";
  EXPECT_EQ(ev[0].status, Status::kSuccess);
}

TEST_F(ConfirmingTrackerTest, RemnantUnderAnotherCookieIsMatchedByFlow) {
  poll(1000, {}, true);
  // Never polled: the minisocket got one cookie, the destroy event another.
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40000, "10.0.0.9", 443, 131);
  poll(2000, {tw});
  EXPECT_TRUE(take().empty());
  destroy(destroy_of(outbound(1, 130), info(202, 52, 8, 6, 30, 200)), 2100);
  poll(3000, {tw});
  poll(4000, {});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].socket.cookie, 130U);
}

TEST_F(ConfirmingTrackerTest, NoEventThenTheNextPollReportsIt) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 140, info(101, 51, 5, 4, 30, 100))});
  take();
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40000, "10.0.0.9", 443, 140);
  poll(3000, {tw});
  poll(4000, {tw});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].status, Status::kSuccess) << "TIME-WAIT: orderly";
  poll(5000, {tw});
  poll(6000, {});
  EXPECT_TRUE(take().empty());
}

TEST_F(ConfirmingTrackerTest, OneDumpMissingASocketIsNotAClose) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 150, info(101, 51, 5, 4, 30, 100))});
  take();
  poll(3000, {});
  poll(4000, {outbound(1, 150, info(101, 51, 5, 4, 30, 100))});
  EXPECT_TRUE(take().empty());
}

TEST_F(TrackerTest, ClosedFlowsAreForgotten) {
  poll(1000, {}, true);
  for (std::uint64_t c = 200; c < 300; ++c) {
    destroy(destroy_of(outbound(1, c), info(11, 6, 3, 3, 30, 10)), 1100);
  }
  EXPECT_EQ(take().size(), 100U);
  EXPECT_EQ(tracker_.stats().remembered, 101U) << "100 cookies and their one 4-tuple, for now";
  poll(2000, {});
  poll(3000, {});
  poll(4000, {});
  EXPECT_EQ(tracker_.stats().tracked, 0U);
  EXPECT_EQ(tracker_.stats().remembered, 0U) << "the probe: every closed flow kept forever";
  // A fresh connection on the same 4-tuple is reported again.
  destroy(destroy_of(outbound(1, 300), info(11, 6, 3, 3, 30, 10)), 3100);
  EXPECT_EQ(take().size(), 1U);
}

TEST_F(TrackerTest, ANewSocketsCloseCarriesTheStartItsOpenSaw) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 160, info(101, 51, 5, 4, 30, 100))});
  take();
  destroy(destroy_of(outbound(1, 160), info(102, 52, 6, 5, 30, 100)), 2500);
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].start_ms, 2000);
  EXPECT_EQ(ev[0].end_ms, 2500);
}

TEST_F(TrackerTest, WithoutABaselineExistingSocketsAreNoEvents) {
  tracker_.begin_poll(1000, Tracker::FirstSight::kSilent);
  for (const auto& e : {listener(22, 1), inbound(1, 2),
                        make_entry(AF_INET, 6, "10.0.0.5", 40001, "10.0.0.9", 443, 3)}) {
    tracker_.poll_socket(e, listeners_, perimeter());
  }
  tracker_.end_poll();
  EXPECT_TRUE(take().empty()) << "nothing opened or closed now";
  // They are tracked all the same: a change or an end is reported, without a start.
  poll(2000, {listener(22, 1), inbound(8, 2)});
  destroy(destroy_of(inbound(8, 2), info(301, 1001, 3, 6, 20, 300)), 2500);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 2U);
  EXPECT_EQ(ev[0].activity, Activity::kStateChange);
  EXPECT_EQ(ev[1].activity, Activity::kClose);
  EXPECT_EQ(ev[1].start_ms, 0);
}

TEST_F(TrackerTest, OneDumpMissingAClosedSocketsRemnantReportsNothingMore) {
  poll(1000, {}, true);
  poll(2000, {outbound(1, 170, info(101, 51, 5, 4, 30, 100))});
  take();
  destroy(destroy_of(outbound(1, 170), info(102, 52, 6, 5, 30, 100)), 2100);
  ASSERT_EQ(take().size(), 1U);
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40000, "10.0.0.9", 443, 170);
  poll(3000, {tw});
  poll(4000, {});  // one dump skips it
  poll(5000, {tw});
  poll(6000, {tw});
  poll(7000, {});
  poll(8000, {});
  EXPECT_TRUE(take().empty()) << "a second Close after one missed dump";
}

TEST_F(TrackerTest, ABoundSocketThatConnectsAndClosesBetweenPollsIsReported) {
  poll(1000, {full(make_entry(AF_INET, 7, "10.0.0.5", 7002, "0.0.0.0", 0, 180))}, true);
  EXPECT_EQ(take().size(), 1U) << "the baseline's Bound record";
  destroy(destroy_of(outbound(1, 180), info(102, 52, 6, 5, 30, 100)), 1500);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 1U);
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].orientation.shape, Shape::kInitiated);
  EXPECT_EQ(ev[0].orientation.direction, flow::Direction::kLateral);
}

// Every connection socket is counted once as new, however it is first seen: the count the
// daemon holds against the kernel's ActiveOpens + PassiveOpens. Baseline sockets,
// listeners and sockets that never connected do not count.
TEST_F(ConfirmingTrackerTest, EachNewConnectionCountsOnce) {
  const std::uint64_t ns = 0;  // make_entry()'s namespace
  const SocketEntry bound = full(make_entry(AF_INET, 7, "10.0.0.5", 7002, "0.0.0.0", 0, 3));
  poll(1000, {listener(22, 1), inbound(1, 2), bound}, true);
  EXPECT_EQ(tracker_.new_connections(ns), 0U) << "the baseline is not new";
  poll(2000, {listener(22, 1), inbound(1, 2), bound, outbound(1, 10), listener(8080, 11)});
  EXPECT_EQ(tracker_.new_connections(ns), 1U) << "a new connection, not a new listener";
  poll(3000, {listener(22, 1), inbound(1, 2), bound, outbound(1, 10)});
  EXPECT_EQ(tracker_.new_connections(ns), 1U) << "seen again is not new";
  // The bound socket connected and closed between polls.
  destroy(destroy_of(full(make_entry(AF_INET, 1, "10.0.0.5", 7002, "10.0.0.9", 80, 3)),
                     info(102, 52, 6, 5, 30, 100)),
          3100);
  EXPECT_EQ(tracker_.new_connections(ns), 2U);
  // A connection no poll saw: its destroy event; then its TIME-WAIT remnant under another
  // cookie, matched by flow.
  destroy(destroy_of(outbound(1, 20), info(102, 52, 6, 5, 30, 100)), 3200);
  EXPECT_EQ(tracker_.new_connections(ns), 3U);
  // The other order: remnant first (cookie 31), then its event (cookie 30).
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40001, "10.0.0.9", 443, 31);
  poll(4000, {listener(22, 1), inbound(1, 2), outbound(1, 10), tw});
  EXPECT_EQ(tracker_.new_connections(ns), 4U);
  SocketEntry event = outbound(1, 30);
  event.local_port = 40001;
  destroy(destroy_of(event, info(102, 52, 6, 5, 30, 100)), 4100);
  EXPECT_EQ(tracker_.new_connections(ns), 4U) << "the remnant's event is the same connection";
  // A second event for a socket already closed, and a bound socket never used.
  destroy(destroy_of(outbound(1, 20), info(102, 52, 6, 5, 30, 100)), 4200);
  destroy(destroy_of(full(make_entry(AF_INET, 7, "10.0.0.5", 7003, "0.0.0.0", 0, 40)), {}), 4300);
  EXPECT_EQ(tracker_.new_connections(ns), 4U);
  tracker_.forget_namespace(ns);
  EXPECT_EQ(tracker_.new_connections(ns), 0U);
}

// A remnant no poll saw as a full socket is reported closed by a poll once its event is
// late; the event, when it comes after all (under the full socket's cookie), is the same
// connection: no second Close, not a new connection.
TEST_F(ConfirmingTrackerTest, ALateEventForARemnantClosedByAPollIsNothingMore) {
  poll(1000, {}, true);
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40002, "10.0.0.9", 443, 151);
  poll(2000, {tw});
  poll(3000, {tw});
  auto ev = take();
  ASSERT_EQ(ev.size(), 1U) << "the poll reports the remnant's close";
  EXPECT_EQ(tracker_.new_connections(0), 1U);
  SocketEntry event = outbound(1, 150);
  event.local_port = 40002;
  destroy(destroy_of(event, info(102, 52, 6, 5, 30, 100)), 3500);
  EXPECT_TRUE(take().empty()) << "a second Close for one connection";
  EXPECT_EQ(tracker_.new_connections(0), 1U);
}

// With the kernel's events a TIME-WAIT remnant keeps its full socket's cookie (they asked
// for it at connect()). A port reused while destroy events wait (the daemon lags behind a
// close storm): the remnant a poll finds is the second connection's own, not the first's
// on the same 4-tuple, and each connection has its Close, once.
TEST_F(ConfirmingTrackerTest, APortReusedWhileEventsWaitIsTwoConnections) {
  kernel_[160] = flow::KernelFacts{.start_ms = 900, .ended = true};
  kernel_[161] = flow::KernelFacts{.start_ms = 1200, .ended = true};
  poll(1000, {}, true);
  SocketEntry first = outbound(1, 160);
  first.local_port = 40003;
  destroy(destroy_of(first, info(102, 52, 6, 5, 30, 100)), 1100);
  ASSERT_EQ(take().size(), 1U);
  const SocketEntry tw = make_entry(AF_INET, 6, "10.0.0.5", 40003, "10.0.0.9", 443, 161);
  poll(2000, {tw});
  EXPECT_TRUE(take().empty()) << "its destroy event is awaited";
  SocketEntry second = first;
  second.cookie = 161;
  destroy(destroy_of(second, info(102, 52, 6, 5, 30, 100)), 2100);
  const auto ev = take();
  ASSERT_EQ(ev.size(), 1U) << "the second connection's Close";
  EXPECT_EQ(ev[0].activity, Activity::kClose);
  EXPECT_EQ(ev[0].socket.cookie, 161U);
  EXPECT_EQ(tracker_.stats().duplicate_destroys, 0U);
  EXPECT_EQ(tracker_.new_connections(0), 2U);
  // A third on that 4-tuple, its remnant seen, then the event of a fourth before its own:
  // the fourth does not take the third's remnant.
  kernel_[162] = flow::KernelFacts{.start_ms = 2200, .ended = true};
  kernel_[163] = flow::KernelFacts{.start_ms = 2300, .ended = true};
  poll(3000, {make_entry(AF_INET, 6, "10.0.0.5", 40003, "10.0.0.9", 443, 162)});
  SocketEntry fourth = first;
  fourth.cookie = 163;
  destroy(destroy_of(fourth, info(102, 52, 6, 5, 30, 100)), 3100);
  SocketEntry third = first;
  third.cookie = 162;
  destroy(destroy_of(third, info(102, 52, 6, 5, 30, 100)), 3200);
  std::set<std::uint64_t> closed;
  for (const auto& o : take()) {
    EXPECT_EQ(o.activity, Activity::kClose);
    closed.insert(o.socket.cookie);
  }
  EXPECT_EQ(closed, (std::set<std::uint64_t>{162, 163}));
  EXPECT_EQ(tracker_.new_connections(0), 4U);
}

// UDP (issue 21): a bound socket is a Listen, a connected one an Open; connect() and
// connect(AF_UNSPEC) are State Changes; it ends in one Close, always a success. None of it
// counts as a TCP connection made (the kernel's count it is compared with is TCP's).
SocketEntry udp(std::uint8_t state, std::uint64_t cookie, const char* remote = "0.0.0.0",
                std::uint16_t remote_port = 0) {
  SocketEntry e = make_entry(AF_INET, state, "10.0.0.5", 5353, remote, remote_port, cookie);
  e.protocol = 17;
  e.full_socket = true;
  e.inode = 1000 + static_cast<std::uint32_t>(cookie);
  e.uid = 33;
  return e;
}

TEST_F(ConfirmingTrackerTest, UdpSocketListensChangesStateAndClosesOnce) {
  poll(1000, {});
  poll(2000, {udp(netlink::kTcpClose, 7)});
  auto obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].activity, Activity::kListen);
  EXPECT_EQ(obs[0].socket.protocol, 17);
  EXPECT_EQ(obs[0].orientation.shape, Shape::kListener);
  EXPECT_FALSE(tracker_.wants_info(udp(netlink::kTcpEstablished, 7, "10.0.0.9", 53)));

  poll(3000, {udp(netlink::kTcpEstablished, 7, "10.0.0.9", 53)});
  obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].activity, Activity::kStateChange);
  EXPECT_EQ(obs[0].previous_state, netlink::kTcpClose);
  EXPECT_EQ(obs[0].orientation.shape, Shape::kInitiated);
  EXPECT_EQ(obs[0].remote.port, 53);

  poll(4000, {udp(netlink::kTcpClose, 7)});
  obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].activity, Activity::kStateChange);
  EXPECT_EQ(obs[0].orientation.shape, Shape::kListener);

  SocketEntry gone = udp(netlink::kTcpClose, 7);
  gone.full_socket = false;  // as the kernel's message has it: no tcp_info, no inode
  gone.inode = 0;
  destroy(gone, 4500);
  obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].activity, Activity::kClose);
  EXPECT_EQ(obs[0].status, Status::kSuccess);
  EXPECT_EQ(obs[0].socket.protocol, 17);
  EXPECT_EQ(obs[0].socket.inode, 1007U) << "the polls' inode";
  poll(5000, {});
  poll(6000, {});
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.new_connections(0), 0U);
}

TEST_F(ConfirmingTrackerTest, UdpSocketNoPollSawClosesFromItsEvent) {
  poll(1000, {});
  destroy(udp(netlink::kTcpEstablished, 8, "10.0.0.9", 53), 1500);
  auto obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].activity, Activity::kClose);
  EXPECT_EQ(obs[0].status, Status::kSuccess);
  EXPECT_EQ(obs[0].orientation.shape, Shape::kInitiated);
  EXPECT_EQ(obs[0].remote.port, 53);
  EXPECT_EQ(tracker_.new_connections(0), 0U) << "TCP's count only";
  // Never bound (closed unused: no local port): no record.
  SocketEntry unused = udp(netlink::kTcpClose, 9);
  unused.local_port = 0;
  std::fill(unused.local_addr.begin(), unused.local_addr.end(), 0);
  destroy(unused, 1600);
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().unused_destroys, 1U);
  // Nothing of either is remembered past the poll.
  poll(2000, {});
  EXPECT_EQ(tracker_.stats().remembered, 0U);
}

TEST_F(ConfirmingTrackerTest, UdpSocketADumpReadBeforeItsEventIsNotReopened) {
  poll(1000, {});
  tracker_.begin_poll(2000, Tracker::FirstSight::kEvent);
  destroy(udp(netlink::kTcpEstablished, 10, "10.0.0.9", 53), 2000);  // drained mid-dump
  tracker_.poll_socket(udp(netlink::kTcpEstablished, 10, "10.0.0.9", 53), listeners_, perimeter());
  tracker_.end_poll();
  tracker_.begin_round();
  tracker_.report_paced(2000, 0);
  const auto obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].activity, Activity::kClose);
  EXPECT_FALSE(tracker_.tracks(10));
}

// A UDP socket the polls no longer find may be alive: connect(AF_UNSPEC) on a socket
// without a port bound of its own unhashes it (the kernel's __udp_disconnect()). It waits
// for its destroy event, and is found again if it connects again.
TEST_F(ConfirmingTrackerTest, UdpSocketGoneFromPollsWaitsForItsDestroyEvent) {
  poll(1000, {});
  poll(2000, {udp(netlink::kTcpEstablished, 11, "10.0.0.9", 123)});
  EXPECT_EQ(take().size(), 1U);  // the Open
  poll(3000, {});
  poll(4000, {});
  poll(5000, {});
  EXPECT_TRUE(take().empty()) << "hidden, perhaps: its event says";
  EXPECT_EQ(tracker_.stats().awaiting_destroy, 1U);
  poll(6000, {udp(netlink::kTcpEstablished, 11, "10.0.0.9", 123)});  // connected again
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().awaiting_destroy, 0U);
  destroy(udp(netlink::kTcpEstablished, 11, "10.0.0.9", 123), 6500);
  const auto obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].activity, Activity::kClose);
  EXPECT_EQ(obs[0].status, Status::kSuccess);
}

// Connected when the polls last saw it, disconnected (connect(AF_UNSPEC)) and closed
// before the next: its destroy event has no peer, and (its port the kernel's) no local port.
// Its Close is the local end's alone, with the port the polls saw; and the other way round.
TEST_F(ConfirmingTrackerTest, UdpSocketEndsAsItsDestroyEventSaysItWas) {
  poll(1000, {});
  poll(2000, {udp(netlink::kTcpEstablished, 14, "10.0.0.9", 123), udp(netlink::kTcpClose, 15)});
  EXPECT_EQ(take().size(), 2U);
  SocketEntry disconnected = udp(netlink::kTcpClose, 14);
  disconnected.local_port = 0;
  destroy(disconnected, 2500);
  destroy(udp(netlink::kTcpEstablished, 15, "10.0.0.9", 53), 2600);
  const auto obs = take();
  ASSERT_EQ(obs.size(), 2U);
  EXPECT_EQ(obs[0].activity, Activity::kClose);
  EXPECT_EQ(obs[0].orientation.shape, Shape::kListener) << "no peer at its end";
  EXPECT_EQ(obs[0].local.port, 5353) << "the polls' port";
  EXPECT_EQ(obs[1].activity, Activity::kClose);
  EXPECT_EQ(obs[1].orientation.shape, Shape::kInitiated) << "connected at its end";
  EXPECT_EQ(obs[1].remote.port, 53);
}

// Once the kernel dropped UDP destroy events, a socket gone from the polls may never get
// its own: the polls report its Close (connected, as they last saw it), once.
TEST_F(ConfirmingTrackerTest, UdpSocketGoneAfterLostEventsIsClosedByThePolls) {
  poll(1000, {});
  poll(2000, {udp(netlink::kTcpEstablished, 12, "10.0.0.9", 123), outbound(2, 13)});
  EXPECT_EQ(take().size(), 2U);
  poll(3000, {});
  poll(4000, {});
  EXPECT_TRUE(take().empty()) << "both wait for their events (the TCP one is SYN-SENT)";
  tracker_.destroy_events_lost(99, 17);
  poll(4500, {});
  EXPECT_TRUE(take().empty()) << "another namespace's loss";
  tracker_.destroy_events_lost(0, 17);
  poll(5000, {});
  const auto obs = take();
  ASSERT_EQ(obs.size(), 1U) << "the UDP socket only: TCP's events were not lost";
  EXPECT_EQ(obs[0].activity, Activity::kClose);
  EXPECT_EQ(obs[0].socket.protocol, 17);
  EXPECT_EQ(obs[0].socket.state, netlink::kTcpEstablished);
  EXPECT_EQ(obs[0].remote.port, 123);
  destroy(udp(netlink::kTcpEstablished, 12, "10.0.0.9", 123), 5500);  // late after all
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(tracker_.stats().duplicate_destroys, 1U);
}

// TIME-WAIT remnants are matched by 4-tuple, and UDP ports are another protocol's: a UDP
// socket on a remnant's ports neither claims it nor is taken for it.
TEST_F(ConfirmingTrackerTest, UdpSocketOnATcpRemnantsPortsIsAnotherFlow) {
  poll(1000, {});
  SocketEntry tw = outbound(netlink::kTcpTimeWait, 20);
  tw.full_socket = false;
  tw.has_tcp_info = false;
  poll(2000, {tw});  // a remnant no poll saw the socket of: pending its destroy event
  SocketEntry same_ports = udp(netlink::kTcpEstablished, 21, "10.0.0.9", 443);
  same_ports.local_port = 40000;
  destroy(same_ports, 2100);
  destroy(same_ports, 2200);  // delivered twice: counted, not written twice
  auto obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].socket.protocol, 17);
  EXPECT_EQ(tracker_.stats().duplicate_destroys, 1U);
  poll(3000, {tw});
  poll(4000, {});
  poll(5000, {});
  obs = take();
  ASSERT_EQ(obs.size(), 1U) << "the TCP connection's own Close, from its remnant";
  EXPECT_EQ(obs[0].socket.protocol, 6);
}

// A DNS resolver's sockets (issue 21): seen only in their destroy events, at most the
// limit a second get their own Close; the rest fold into one summary per peer whose count
// makes the total exact. Sockets a poll saw are never summarised.
class LimitedTrackerTest : public TrackerTest {
 protected:
  LimitedTrackerTest() { tracker_.set_short_lived_per_second({0, 10}); }
};

TEST_F(LimitedTrackerTest, ShortLivedUdpSocketsOverTheLimitAreSummarisedAndCounted) {
  poll(1000, {udp(netlink::kTcpClose, 1)});  // polled: always its own records
  take();
  std::uint64_t cookie = 100;
  for (int i = 0; i < 25; ++i) {  // 25 queries to one server in the second from 2000
    SocketEntry q = udp(netlink::kTcpEstablished, cookie++, "10.0.0.53", 53);
    q.local_port = static_cast<std::uint16_t>(40000 + i);
    destroy(q, 2000 + i);
  }
  for (int i = 0; i < 5; ++i) {  // and 5 to another
    destroy(udp(netlink::kTcpEstablished, cookie++, "10.0.0.54", 53), 2100 + i);
  }
  destroy(udp(netlink::kTcpClose, 1), 2200);  // the polled one: its own Close, over the limit
  auto obs = take();
  ASSERT_EQ(obs.size(), 11U) << "10 within the limit and the polled socket";
  EXPECT_EQ(obs.back().socket.cookie, 1U);
  EXPECT_TRUE(std::all_of(obs.begin(), obs.end(), [](const Observation& o) {
    return o.count == 0 && o.activity == Activity::kClose;
  }));
  EXPECT_EQ(tracker_.summaries_due_ms(), 3000);
  tracker_.flush_summaries(2999);
  EXPECT_TRUE(take().empty()) << "the second is not over";
  tracker_.flush_summaries(3000);
  obs = take();
  ASSERT_EQ(obs.size(), 2U);
  std::map<std::uint16_t, const Observation*> by_peer;
  std::uint64_t summarised = 0;
  for (const auto& o : obs) {
    EXPECT_EQ(o.activity, Activity::kClose);
    EXPECT_EQ(o.socket.cookie, 0U);
    EXPECT_EQ(o.local.port, 0);
    EXPECT_EQ(o.remote.port, 53);
    EXPECT_LE(o.start_ms, o.end_ms);
    summarised += o.count;
  }
  EXPECT_EQ(summarised, 20U);  // 15 + 5
  EXPECT_EQ(tracker_.stats().short_lived_summarised, 20U);
  EXPECT_EQ(tracker_.stats().summary_records, 2U);
  EXPECT_EQ(tracker_.summaries_due_ms(), 0);
  // The next second has its own limit.
  destroy(udp(netlink::kTcpEstablished, cookie++, "10.0.0.53", 53), 3500);
  obs = take();
  ASSERT_EQ(obs.size(), 1U);
  EXPECT_EQ(obs[0].count, 0U);
}

TEST_F(LimitedTrackerTest, PeersBeyondTheBoundFoldIntoOneSummaryWithoutARemoteEnd) {
  poll(1000, {});
  std::uint64_t cookie = 1;
  const std::size_t peers = ShortLivedLimit::kMaxPeers + 50;
  for (std::size_t i = 0; i < 10 + peers; ++i) {
    const std::string remote = "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250);
    destroy(udp(netlink::kTcpEstablished, cookie++, remote.c_str(), 53), 2000);
  }
  EXPECT_EQ(take().size(), 10U);
  tracker_.flush_summaries(0, true);
  const auto obs = take();
  ASSERT_EQ(obs.size(), ShortLivedLimit::kMaxPeers + 1);
  std::uint64_t total = 0;
  std::size_t remoteless = 0;
  for (const auto& o : obs) {
    total += o.count;
    if (o.remote.port == 0) {
      ++remoteless;
      EXPECT_EQ(o.count, peers - ShortLivedLimit::kMaxPeers);
      EXPECT_FALSE(o.orientation.connected());
    }
  }
  EXPECT_EQ(remoteless, 1U);
  EXPECT_EQ(total, peers);
}

TEST_F(TrackerTest, NoLimitWritesEverySocket) {
  poll(1000, {});
  for (std::uint64_t c = 1; c <= 3000; ++c) {
    destroy(udp(netlink::kTcpEstablished, c, "10.0.0.53", 53), 2000);
  }
  EXPECT_EQ(take().size(), 3000U);
  tracker_.flush_summaries(0, true);
  EXPECT_TRUE(take().empty());
}

}  // namespace
}  // namespace sockstate::tracking

#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "sockstate/netlink/types.h"
#include "sockstate/ocsf/direction.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/ocsf/tcp_state.h"

namespace sockstate::tracking {

// What happened to a socket, per the daemon table of the output contract.
enum class EventKind : std::uint8_t {
  kBaseline,     // seen at startup: the snapshot record
  kListen,       // a LISTEN socket appeared
  kOpen,         // a connected socket appeared
  kStateChange,  // a tracked socket's state changed between polls
  kTraffic,      // periodic report on a long-lived connection
  kClose,        // gone: destroyed (final totals) or missing from a poll
  kFail,         // an outbound attempt destroyed before the handshake, nothing came back
  kRefuse,       // an outbound attempt destroyed before the handshake, answered (RST)
};

struct Event {
  EventKind kind = EventKind::kOpen;
  netlink::SocketEntry entry;       // addresses, state, cookie; owner fields from polls
  ocsf::Orientation orientation;    // decided when the socket was first seen
  std::uint8_t previous_state = 0;  // kStateChange: the kernel state before
  std::int64_t time_ms = 0;         // when this was observed
  std::int64_t start_ms = 0;        // first seen by a poll; 0 when never seen
  bool from_destroy = false;        // kClose/kFail/kRefuse from a destroy event
  bool has_traffic = false;
  ocsf::Traffic traffic;     // kClose: final totals; kTraffic: since the last report
  ocsf::Traffic cumulative;  // kTraffic: totals
};

struct TrackerStats {
  std::uint64_t tracked = 0;             // sockets tracked now
  std::uint64_t closed_by_destroy = 0;   // closes reported from destroy events
  std::uint64_t closed_by_poll = 0;      // closes found by a poll (no destroy event seen)
  std::uint64_t duplicate_destroys = 0;  // destroy events for sockets already reported closed
  std::uint64_t unused_destroys = 0;     // bound-but-unused sockets destroyed: no record
};

// Keeps what the polls saw of each socket, keyed by kernel socket cookie, and turns polls
// and destroy events into events. Pure: no kernel, no clock; the daemon feeds it.
//
// Every socket is reported closed exactly once: a destroy event removes the socket and
// remembers its cookie until the socket (or the TIME-WAIT minisocket that inherits the
// cookie) is gone from a complete poll, so neither a late poll nor the minisocket reports
// it again.
class Tracker {
 public:
  using Sink = std::function<void(const Event&)>;

  // `confirm_poll_closes`: a close found by a poll (the socket gone, or already a
  // TIME-WAIT minisocket) is reported only when the next poll agrees. The kernel sends
  // destroy events from a work queue, so a poll can get there before the event, whose
  // final totals are better; and a dump is not atomic, so one poll can miss a socket
  // that is still there. The daemon always confirms; tests may not.
  explicit Tracker(Sink sink, bool confirm_poll_closes = false)
      : sink_(std::move(sink)), defer_(confirm_poll_closes) {}

  // One complete poll: begin, every socket of the dump, end. The listener table must hold
  // this poll's LISTEN sockets before any other socket is fed. The first poll, with
  // `baseline`, reports every socket as kBaseline.
  void begin_poll(std::int64_t now_ms, bool baseline);
  void poll_socket(const netlink::SocketEntry& entry, const ocsf::ListenerTable& listeners);
  void end_poll();

  // A destroy event (state CLOSE, final tcp_info, no owner).
  void destroyed(const netlink::SocketEntry& entry, const ocsf::ListenerTable& listeners,
                 std::int64_t now_ms);

  // Periodic Traffic for connections reported more than `interval_ms` ago (0: never).
  void report_traffic(std::int64_t now_ms, std::int64_t interval_ms);

  [[nodiscard]] TrackerStats stats() const;

  // This poll could not dump namespace `netns`: its sockets count as seen unchanged, so
  // a failed dump reports no closes.
  void keep_namespace(std::uint64_t netns);

  // Adds the inode of every tracked socket to `out`: the sockets whose owners a Close
  // may still need.
  void collect_inodes(std::unordered_set<std::uint32_t>& out) const;

 private:
  struct Tracked {
    netlink::SocketEntry last;
    ocsf::Orientation orientation;
    std::int64_t first_seen_ms = 0;
    std::uint64_t generation = 0;
    bool seen_established = false;
    bool reported_open = false;  // an Open/Listen/Baseline record was written
    std::int64_t last_traffic_ms = 0;
    ocsf::Traffic reported;  // totals at the last Traffic record
    // The generation of the poll that first found it gone or a minisocket; 0: alive.
    std::uint64_t suspect_since = 0;
    netlink::SocketEntry remnant;  // the minisocket that poll saw, if any
    bool has_remnant = false;
  };
  // A connection's 4-tuple. A TIME-WAIT minisocket copies its socket's cookie when it is
  // created, but cookies are made on first request: for a connection no poll ever saw,
  // the destroy event makes the socket's cookie later and the minisocket gets another.
  // The 4-tuple, which the minisocket holds alone, ties the two together.
  struct Flow {
    ocsf::Address local;
    ocsf::Address remote;
    std::uint16_t local_port = 0;
    std::uint16_t remote_port = 0;
    std::uint64_t netns = 0;  // one 4-tuple can live in many namespaces (127.0.0.1 in each)
    bool operator==(const Flow&) const = default;
  };
  struct FlowHash {
    std::size_t operator()(const Flow& f) const;
  };
  static Flow flow_of(const netlink::SocketEntry& e);

  struct Pending {  // a TIME-WAIT remnant of a socket we never tracked
    netlink::SocketEntry entry;
    ocsf::Orientation orientation;
    std::uint64_t first_generation = 0;
  };

  void emit(const Event& event) { sink_(event); }
  void close(Tracked& t, netlink::SocketEntry final_entry, bool from_destroy, std::int64_t now_ms);

  Sink sink_;
  std::unordered_map<std::uint64_t, Tracked> tracked_;
  // Cookies reported closed, and the generation of the last poll that still showed them.
  std::unordered_map<std::uint64_t, std::uint64_t> closed_;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::unordered_map<Flow, std::uint64_t, FlowHash> pending_flows_;  // -> pending cookie
  // Flows reported closed, and the generation that last refreshed them.
  std::unordered_map<Flow, std::uint64_t, FlowHash> closed_flows_;
  std::uint64_t generation_ = 0;
  std::int64_t poll_ms_ = 0;
  bool baseline_ = false;
  TrackerStats stats_;
  bool defer_ = false;
};

// Traffic from a destroy event's final tcp_info, where the state no longer tells which
// SYN and FIN the counters include: data sent is tcpi_bytes_sent less retransmissions;
// our FIN was acknowledged when bytes_acked passes that data (and our SYN, when we opened
// the connection), and then the close was orderly and the peer's FIN is in bytes_received.
ocsf::Traffic final_traffic(const netlink::TcpInfo& info, bool active_open);

}  // namespace sockstate::tracking

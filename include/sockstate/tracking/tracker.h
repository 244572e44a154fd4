#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sockstate/flow/address.h"
#include "sockstate/flow/kernel_facts.h"
#include "sockstate/flow/observation.h"
#include "sockstate/flow/orientation.h"
#include "sockstate/flow/traffic.h"
#include "sockstate/netlink/cookie_set.h"
#include "sockstate/netlink/types.h"
#include "sockstate/tracking/cookie_table.h"
#include "sockstate/tracking/short_lived.h"

namespace sockstate::tracking {

struct TrackerStats {
  std::uint64_t tracked = 0;                 // sockets tracked now
  std::uint64_t closed_by_destroy = 0;       // terminal records from destroy events
  std::uint64_t closed_by_poll = 0;          // terminal records from polls (no destroy event seen)
  std::uint64_t duplicate_destroys = 0;      // destroy events for sockets already terminal
  std::uint64_t unused_destroys = 0;         // bound-but-unused sockets destroyed: no record
  std::uint64_t awaiting_destroy = 0;        // gone from polls before their handshake: wait
  std::uint64_t quiet_traffic = 0;           // Traffic records not written: nothing moved
  std::uint64_t remembered = 0;              // ended sockets and flows still remembered
  std::uint64_t short_lived_summarised = 0;  // sockets no poll saw folded into summaries
  std::uint64_t summary_records = 0;         // the summary Closes written for them
};

struct TrackerOptions {
  // A socket a poll no longer finds is reported only when the next poll agrees, and one
  // that vanished before its handshake completed waits for its destroy event (the
  // application may hold a connect() that timed out). The kernel sends destroy events
  // from a work queue, so a poll can get there first; and a dump is not atomic. The
  // daemon confirms when it listens to destroy events; tests may not.
  bool confirm_poll_closes = false;
  // How long a socket waits for its destroy event before a poll reports it anyway, and
  // how long a cookie reported closed by a poll is remembered against a late event.
  std::int64_t await_destroy_ms = std::int64_t{3600} * 1000;
  // The preferred source address the kernel's route to `peer` gives in namespace `netns`,
  // for a destroyed socket no poll saw whose source the kernel cleared.
  std::function<std::optional<flow::Address>(std::uint64_t netns, const flow::Address& peer)>
      route_source;
  // What an exact source (the kernel's transition events) knows of a TCP socket; empty, or
  // nullptr for a cookie: nothing. Its start is the terminal record's start_time, and a
  // destroy event's entry gets what an abort cleared (flow::amend_final()).
  std::function<const flow::KernelFacts*(std::uint64_t cookie)> kernel_facts;
  // Called once a destroy event was taken (its record, if any, written).
  std::function<void(std::uint64_t cookie)> destroy_read;
  // Sockets of each protocol (TCP, UDP) seen only in their destroy event that get a Close of
  // their own a second; the rest are summarised (ShortLivedLimit). 0: every one.
  std::array<std::uint32_t, 2> short_lived_per_second{0, 0};
};

// Keeps what the polls saw of each socket, keyed by kernel socket cookie, and turns polls
// and destroy events into finished flow observations per the contract's daemon table.
// Pure: no kernel, no clock; the daemon feeds it and fills in owners.
//
// Terminal records (Close, Fail, Refuse) are written at most once per socket and nothing
// follows them: a cookie reported terminal is remembered while a poll still shows it (a
// TIME-WAIT minisocket keeps its cookie), and one reported by a poll is remembered
// against its late destroy event. A connection's TIME-WAIT minisocket that a poll finds
// under another cookie is matched by namespace and 4-tuple.
class Tracker {
 public:
  using Sink = std::function<void(const flow::Observation&)>;

  explicit Tracker(Sink sink, TrackerOptions options = {})
      : sink_(std::move(sink)), options_(std::move(options)) {
    set_short_lived_per_second(options_.short_lived_per_second);
  }

  // What a poll says about a socket it finds for the first time.
  enum class FirstSight : std::uint8_t {
    kEvent,     // it appeared: Listen or Open
    kBaseline,  // it was there before we looked: the one-shot snapshot record
    kSilent,    // it was there before we looked, and no baseline is wanted: nothing
  };

  // One complete poll: begin, every socket of the dump, end. The listener table must hold
  // this poll's LISTEN sockets before any other socket is fed. `first` says what sockets
  // seen for the first time are (the daemon's first poll: kBaseline or kSilent); it can be
  // changed between sockets with set_first_sight() (a namespace dumped for the first time).
  void begin_poll(std::int64_t now_ms, FirstSight first);
  void set_first_sight(FirstSight first) { first_ = first; }
  void poll_socket(const netlink::SocketEntry& entry, const flow::ListenerTable& listeners,
                   const flow::Perimeter& perimeter);
  void end_poll();
  // A poll may dump without tcp_info (the kernel's part of a poll is a quarter cheaper)
  // and fetch it for the few sockets whose records need it now: true for a full socket
  // without it that is new (an Open record), changed state (a State Change or Open), or
  // found at a baseline. Asked before poll_socket() with the same entry.
  [[nodiscard]] bool wants_info(const netlink::SocketEntry& entry) const;
  // Sockets polls found new or in another state since this tracker started (after a
  // baseline): what a poll without tcp_info would have looked up, counted either way.
  [[nodiscard]] std::uint64_t changes() const { return changes_; }

  // A destroy event (state CLOSE, final tcp_info, no owner).
  void destroyed(const netlink::SocketEntry& entry, const flow::ListenerTable& listeners,
                 const flow::Perimeter& perimeter, std::int64_t now_ms);

  // Whether a socket is tracked now (alive as the polls see it).
  [[nodiscard]] bool tracks(std::uint64_t cookie) const { return tracked_.contains(cookie); }

  // Records owed for tracked sockets, written in step with what the sinks take rather than
  // in one burst: the baseline records of sockets found at a baseline, and the Open, Listen
  // and State Change records a poll found (each goes out as of its poll, at the latest just
  // before any other record of its socket), the Close of sockets polls found
  // gone (as of that poll; a destroy event that comes first writes it), and Traffic for connections
  // whose counters moved since their last record that carried traffic, when that was at least
  // `interval_ms` ago (0: never). begin_round() starts a round over the sockets tracked now
  // (the daemon: after each poll); report_paced() writes at most `budget` records of the
  // round, going on where the last call stopped, and returns how many it wrote;
  // round_done() says when the round has visited every socket.
  void begin_round();
  std::size_t report_paced(std::int64_t now_ms, std::int64_t interval_ms,
                           std::size_t budget = SIZE_MAX);
  [[nodiscard]] bool round_done() const { return round_at_ >= round_end_; }

  // Summaries of short-lived sockets (TrackerOptions::short_lived_per_second) whose second
  // is over by `now_ms` (all of them, with `all`: at stop) are written now.
  void flush_summaries(std::int64_t now_ms, bool all = false);
  // When flush_summaries() has something to write (ms since the epoch); 0: nothing waits.
  [[nodiscard]] std::int64_t summaries_due_ms() const;
  void set_short_lived_per_second(const std::array<std::uint32_t, 2>& per_second);

  [[nodiscard]] TrackerStats stats() const;
  [[nodiscard]] std::size_t size() const { return tracked_.size(); }
  void set_confirm_poll_closes(bool confirm) { options_.confirm_poll_closes = confirm; }

  // Destroy events of `protocol` in namespace `netns` may have been lost (the kernel said
  // so, or the namespace's listener was closed while its sockets are kept): a socket the
  // polls no longer find may not get its event, so none waits for it (the polls report its
  // Close), from the sockets the last poll saw on.
  void destroy_events_lost(std::uint64_t netns, std::uint8_t protocol);

  // This poll could not dump namespace `netns`: its sockets count as seen unchanged, so
  // a failed dump reports no closes.
  void keep_namespace(std::uint64_t netns);

  // Connection sockets of namespace `netns` seen come into being since this tracker
  // started (not those found at a baseline): a new connected socket in a poll, a bound one
  // that connected, a remnant or destroy event of one no poll saw. Each connection socket
  // counts once, however it was first seen. The kernel counts the same thing (ActiveOpens
  // + PassiveOpens): the difference is what was never seen, so never reported.
  [[nodiscard]] std::uint64_t new_connections(std::uint64_t netns) const;
  // The namespace is gone: its count is no longer needed.
  void forget_namespace(std::uint64_t netns) { new_connections_.erase(netns); }

  // The inode of every tracked socket, sorted, each once: the sockets whose owners a
  // Close may still need.
  [[nodiscard]] std::vector<std::uint32_t> inodes() const;

 private:
  // A socket as the tracker keeps it: what its records need of the last poll's view, and
  // not the traffic counters (those are in Tracked's totals): 96 bytes, not 160.
  struct Seen {
    std::array<std::uint8_t, 16> local_addr{};
    std::array<std::uint8_t, 16> remote_addr{};
    std::uint64_t cookie = 0;
    std::uint64_t netns = 0;
    std::uint64_t cgroup_id = 0;
    std::uint32_t ifindex = 0;
    std::uint32_t inode = 0;
    std::uint32_t uid = 0;
    std::uint32_t recv_q = 0;
    std::uint32_t send_q = 0;
    std::uint32_t rtt_us = 0;
    std::uint32_t total_retrans = 0;
    std::uint16_t local_port = 0;
    std::uint16_t remote_port = 0;
    std::uint8_t family = 0;
    std::uint8_t protocol = 6;
    std::uint8_t state = 0;
    std::uint8_t shutdown = 0;
    bool full_socket = false;
    bool has_tcp_info = false;
    // Some poll's tcp_info showed the handshake done (an RTT, bytes acknowledged or
    // received): sticky, so a close found by a poll tells an attempt from a connection.
    bool handshake = false;
    static Seen of(const netlink::SocketEntry& e, bool handshake_before);
    [[nodiscard]] netlink::SocketEntry entry() const;
  };
  // Traffic totals as a tracked socket keeps them: the kernel counts segments in 32 bits
  // (tcpi_segs_out, tcpi_segs_in), so they are stored so: 24 bytes, not 32.
  struct Counters {
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint32_t segs_sent = 0;
    std::uint32_t segs_received = 0;
    static Counters of(const flow::Traffic& t);
    [[nodiscard]] flow::Traffic traffic() const;
  };
  // What a poll found that a record must say, written paced (report_paced) as of that poll.
  enum class Due : std::uint8_t { kNone, kBaseline, kOpen, kListen, kStateChange };
  static constexpr std::uint8_t kNoState = 0xFF;
  // One tracked socket (208 bytes; the members ordered so that none pads).
  struct Tracked {
    Seen last;                           // the last poll's view
    Counters reported;                   // totals when the traffic period under way began
    Counters totals;                     // the largest totals any poll saw
    std::int64_t start_ms = 0;           // its Open/Listen record's time; 0: before we started
    std::int64_t period_start_ms = 0;    // the traffic period under way began here
    std::int64_t awaiting_since_ms = 0;  // gone before its handshake: waits for its event
    std::int64_t seen_ms = 0;            // the poll that saw `last`
    std::int64_t close_due_ms = 0;       // polls found it gone then: its Close is owed
    std::uint32_t generation = 0;
    // The generation of the poll that first found it gone or a minisocket; 0: alive.
    std::uint32_t suspect_since = 0;
    flow::Orientation orientation;
    bool has_totals = false;
    bool seen_established = false;
    bool reported_open = false;            // a record was written (bound sockets get none)
    bool uid_known = false;                // a poll saw the full socket: last.uid is its owner
    bool has_remnant = false;              // a poll saw it as a minisocket: in remnants_
    Due due = Due::kNone;                  // a record its last poll owes, not yet written
    std::uint8_t due_previous = kNoState;  // that record's previous state (Open from bound,
                                           // State Change); kNoState: none
  };
  static_assert(sizeof(Tracked) == 208, "Tracked grew: the daemon's memory per socket with it");
  static std::uint64_t cookie_of(const Tracked& t) { return t.last.cookie; }

  // A connection's 4-tuple. A TIME-WAIT minisocket copies its socket's cookie when it is
  // created, but cookies are made on first request: for a connection no poll ever saw,
  // the destroy event makes the socket's cookie later and the minisocket gets another.
  struct Flow {
    flow::Address local;
    flow::Address remote;
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
    flow::Orientation orientation;
    std::uint32_t first_generation = 0;
  };

  void track_new(const netlink::SocketEntry& entry, const flow::ListenerTable& listeners,
                 const flow::Perimeter& perimeter);
  void track_remnant(const netlink::SocketEntry& entry, const flow::Orientation& o);
  void close_remnant(const Pending& p);
  bool claim_remnant(const netlink::SocketEntry& entry);
  void update(Tracked& t, const netlink::SocketEntry& entry, const flow::ListenerTable& listeners,
              const flow::Perimeter& perimeter);
  void judge_missing(Tracked& t);
  static bool may_be_hidden(const Tracked& t);
  // Destroy events of its namespace and protocol were lost since a poll last saw it (or
  // counted it seen: keep_namespace()).
  [[nodiscard]] bool event_may_be_lost(const Tracked& t) const;
  void close_gone(Tracked& t, std::int64_t now_ms);
  void owe_close(Tracked& t);
  void close(Tracked& t, const netlink::SocketEntry& final_entry, bool from_destroy,
             std::int64_t now_ms);
  // The Close (or Fail, Refuse) record of a tracked socket that ended.
  // The kernel's events are of TCP sockets (TrackerOptions::kernel_facts): none are asked
  // for another protocol's.
  [[nodiscard]] const flow::KernelFacts* kernel_facts(std::uint64_t cookie,
                                                      std::uint8_t protocol = 6) const {
    return options_.kernel_facts && flow::has_tcp_states(protocol) ? options_.kernel_facts(cookie)
                                                                   : nullptr;
  }
  // A minisocket under a cookie the kernel's events gave its full socket (they ask for it
  // at connect() and accept(), before TIME-WAIT inherits it): it is that socket's remnant,
  // matched by cookie, never by 4-tuple.
  [[nodiscard]] bool own_cookie(std::uint64_t cookie) const {
    return kernel_facts(cookie) != nullptr;
  }
  void destroyed_amended(const netlink::SocketEntry& entry, const flow::ListenerTable& listeners,
                         const flow::Perimeter& perimeter, std::int64_t now_ms);
  void reorient_at_end(Tracked& t, const netlink::SocketEntry& entry,
                       const flow::Perimeter& perimeter);
  flow::Observation closing(const Tracked& t, const netlink::SocketEntry& final_entry,
                            bool from_destroy, std::int64_t now_ms) const;
  void terminal(const Seen& socket, bool by_poll, std::int64_t now_ms);
  void track(const netlink::SocketEntry& entry, const flow::Orientation& o);
  void begin_first_period(Tracked& t);
  [[nodiscard]] flow::Orientation orient(const netlink::SocketEntry& entry,
                                         const flow::ListenerTable& listeners,
                                         const flow::Perimeter& perimeter) const;
  void settle_due(Tracked& t);
  void owe(Tracked& t, Due due, std::uint8_t previous);
  bool report_traffic(Tracked& t, std::int64_t now_ms, std::int64_t interval_ms);
  // `live`: a poll's view, whose queues mean something (a terminal record's are not).
  flow::Observation observe(const Tracked& t, flow::Activity activity, std::int64_t now_ms,
                            bool live = true) const;
  void repair(flow::Observation& obs, const Tracked& t,
              const netlink::SocketEntry& final_entry) const;

  Sink sink_;
  TrackerOptions options_;
  CookieTable<Tracked, &Tracker::cookie_of> tracked_;
  // The minisocket a poll saw for a tracked socket (its close is near): apart from
  // Tracked, which stays small for the many sockets that have none.
  std::unordered_map<std::uint64_t, netlink::SocketEntry> remnants_;
  // The paced round under way walks the table's places up to where they ended when it
  // began: no list of cookies to build and look up (that was 1.5 MB and 15 ms of each
  // 100,000-socket poll). A socket that comes after the round began may be visited by it
  // or not: it has nothing owed yet.
  std::uint32_t round_at_ = 0;
  std::uint32_t round_end_ = 0;
  std::size_t records_due_ = 0;  // sockets whose `due` is set
  std::size_t closes_due_ = 0;
  // Cookies reported terminal, the generation of the last poll that still showed them, and
  // their namespace. Kept until two polls in a row miss them: one dump can skip a socket.
  struct Closed {
    std::uint32_t generation = 0;
    std::uint64_t netns = 0;
  };
  std::unordered_map<std::uint64_t, Closed> closed_;
  // Cookies reported terminal by a poll, and when: their destroy event may still come.
  std::unordered_map<std::uint64_t, std::int64_t> closed_by_poll_;
  // Sockets without minisockets (UDP) whose destroy event was taken during this poll: a dump
  // under way may still deliver one it read before. None can appear in a later dump (the
  // kernel unhashes a socket before its destroy event), so they are not kept beyond the
  // poll: a DNS resolver's 20,000 sockets a second would be 400,000 cookies in closed_.
  netlink::CookieSet destroyed_this_poll_;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::unordered_map<Flow, std::uint64_t, FlowHash> pending_flows_;  // -> pending cookie
  // Flows reported closed, and the generation that last refreshed them.
  std::unordered_map<Flow, std::uint32_t, FlowHash> closed_flows_;
  // Remnants a poll reported closed (their event never came in time), by flow: a late
  // event under the full socket's cookie is the same connection, not a new one.
  std::unordered_map<Flow, std::uint32_t, FlowHash> remnant_flows_;
  std::uint64_t changes_ = 0;
  std::uint32_t generation_ = 0;  // polls so far: 136 years of one a second
  std::int64_t poll_ms_ = 0;
  std::int64_t previous_poll_ms_ = 0;  // the poll before this one (its time)
  FirstSight first_ = FirstSight::kEvent;
  TrackerStats stats_;
  std::array<ShortLivedLimit, 2> short_lived_;  // by protocol: TCP, UDP
  // By namespace and protocol: the poll under way (or last) when destroy events were lost.
  std::unordered_map<std::uint64_t, std::array<std::uint32_t, 2>> lost_generation_;
  static std::size_t protocol_slot(std::uint8_t protocol) {
    return flow::has_tcp_states(protocol) ? 0 : 1;
  }
  std::unordered_map<std::uint64_t, std::uint64_t> new_connections_;  // by netns
  // TCP only: the kernel's count it is compared with (ActiveOpens + PassiveOpens) is TCP's.
  void count_new(const netlink::SocketEntry& e) {
    if (flow::has_tcp_states(e.protocol)) {
      ++new_connections_[e.netns];
    }
  }
};

}  // namespace sockstate::tracking

#include "sockstate/tracking/tracker.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

namespace sockstate::tracking {
namespace {

using flow::Activity;
using flow::Status;
using netlink::SocketEntry;
using Shape = flow::Orientation::Shape;

// A half-open request socket: the accepted socket is reported instead.
bool request_socket(const SocketEntry& e) {
  return !e.full_socket && (e.state == netlink::kTcpSynRecv || e.state == netlink::kTcpNewSynRecv);
}

// How a socket ended, by the contract's daemon table and status table.
struct Ending {
  Activity activity = Activity::kClose;
  Status status = Status::kSuccess;
  std::string_view detail;
};

// An attempt whose handshake never completed: refused when the kernel says so (its error,
// or a reply it counted: the RST), a timeout or unreachable peer where its error tells.
Ending attempt_ending(std::uint16_t error, bool replied) {
  switch (error) {
    case ECONNREFUSED:
      return {Activity::kRefuse, Status::kFailure, "refused"};
    case ETIMEDOUT:
      return {Activity::kFail, Status::kFailure, "timeout"};
    case EHOSTUNREACH:
    case ENETUNREACH:
      return {Activity::kFail, Status::kFailure, "unreachable"};
    default:
      break;
  }
  if (error == 0 && replied) {
    return {Activity::kRefuse, Status::kFailure, "refused"};
  }
  return {Activity::kFail, Status::kFailure, {}};
}

Ending ending_from_destroy(bool listener, bool attempt, const netlink::TcpInfo& info,
                           const flow::FinalTraffic& final, std::uint16_t error) {
  if (listener) {
    return {};
  }
  if (attempt) {
    return attempt_ending(error, info.segs_in > 0);
  }
  if (final.reset) {
    return {Activity::kClose, Status::kUnknown, "aborted"};  // tcp_disconnect(): we reset it
  }
  if (!final.orderly) {
    return {Activity::kClose, Status::kUnknown, "reset"};  // our FIN never acknowledged
  }
  return {};
}

Ending ending_from_poll(bool listener, bool attempt, const SocketEntry& final,
                        std::uint16_t error) {
  if (listener) {
    return {};
  }
  if (attempt) {
    return attempt_ending(error, false);
  }
  if (final.state == netlink::kTcpTimeWait) {
    return {};  // both FINs acknowledged: orderly
  }
  return {Activity::kClose, Status::kUnknown, {}};  // how it ended cannot be told
}

// What a closing socket was: a listener, the side that connected, or an attempt whose
// handshake never completed.
struct Role {
  bool listener = false;
  bool initiated = false;
  bool attempt = false;
};

// How a socket ended: from its destroy event's final tcp_info when it has one (which also
// brings `totals` up to the kernel's last counters) and the error the kernel's events saw
// (0: none known), else from what the polls saw.
Ending ending_of(const Role& role, const SocketEntry& final_entry, bool from_destroy,
                 std::uint16_t error, std::optional<flow::Traffic>& totals) {
  if (!from_destroy || !final_entry.has_tcp_info) {
    return ending_from_poll(role.listener, role.attempt && !from_destroy, final_entry, error);
  }
  const flow::FinalTraffic final = flow::final_traffic(final_entry.info, role.initiated);
  if (!final.reset) {
    // Totals never go back, whatever the kernel zeroed at an abort.
    totals = totals ? flow::max_of(*totals, final.totals) : final.totals;
  }
  return ending_from_destroy(role.listener, role.attempt, final_entry.info, final, error);
}

}  // namespace

Tracker::Seen Tracker::Seen::of(const SocketEntry& e, bool handshake_before) {
  Seen s;
  s.local_addr = e.local_addr;
  s.remote_addr = e.remote_addr;
  s.cookie = e.cookie;
  s.netns = e.netns;
  s.cgroup_id = e.cgroup_id;
  s.ifindex = e.ifindex;
  s.inode = e.inode;
  s.uid = e.uid;
  s.recv_q = e.recv_q;
  s.send_q = e.send_q;
  s.local_port = e.local_port;
  s.remote_port = e.remote_port;
  s.family = e.family;
  s.protocol = e.protocol;
  s.state = e.state;
  s.shutdown = e.shutdown;
  s.full_socket = e.full_socket;
  s.has_tcp_info = e.has_tcp_info;
  if (e.has_tcp_info) {
    s.rtt_us = e.info.rtt_us;
    s.total_retrans = e.info.total_retrans;
  }
  s.handshake = handshake_before ||
                (e.has_tcp_info &&
                 (e.info.rtt_us > 0 || e.info.bytes_acked > 0 || e.info.bytes_received > 0));
  return s;
}

SocketEntry Tracker::Seen::entry() const {
  SocketEntry e;
  e.local_addr = local_addr;
  e.remote_addr = remote_addr;
  e.cookie = cookie;
  e.netns = netns;
  e.cgroup_id = cgroup_id;
  e.ifindex = ifindex;
  e.inode = inode;
  e.uid = uid;
  e.recv_q = recv_q;
  e.send_q = send_q;
  e.local_port = local_port;
  e.remote_port = remote_port;
  e.family = family;
  e.protocol = protocol;
  e.state = state;
  e.shutdown = shutdown;
  e.full_socket = full_socket;
  e.has_tcp_info = has_tcp_info;
  e.info.rtt_us = rtt_us;
  e.info.total_retrans = total_retrans;
  return e;
}

Tracker::Counters Tracker::Counters::of(const flow::Traffic& t) {
  return {t.bytes_sent, t.bytes_received, static_cast<std::uint32_t>(t.segs_sent),
          static_cast<std::uint32_t>(t.segs_received)};
}

flow::Traffic Tracker::Counters::traffic() const {
  return {bytes_sent, bytes_received, segs_sent, segs_received};
}

Tracker::Flow Tracker::flow_of(const SocketEntry& e) {
  return Flow{flow::normalized_address(e.family, e.local_addr),
              flow::normalized_address(e.family, e.remote_addr), e.local_port, e.remote_port,
              e.netns};
}

std::size_t Tracker::FlowHash::operator()(const Flow& f) const {
  std::uint64_t h = ((std::uint64_t{f.local_port} << 16) | f.remote_port) ^ (f.netns << 32);
  h = flow::mix_address(flow::mix_address(h, f.local), f.remote);
  return static_cast<std::size_t>(h ^ (h >> 29));
}

void Tracker::begin_poll(std::int64_t now_ms, FirstSight first) {
  ++generation_;
  previous_poll_ms_ = poll_ms_ != 0 ? poll_ms_ : now_ms;
  poll_ms_ = now_ms;
  first_ = first;
}

void Tracker::poll_socket(const SocketEntry& entry, const flow::ListenerTable& listeners,
                          const flow::Perimeter& perimeter) {
  if (auto c = closed_.find(entry.cookie); c != closed_.end()) {
    c->second.generation = generation_;  // reported terminal; still lingering (TIME-WAIT)
    if (!entry.full_socket) {
      if (auto f = closed_flows_.find(flow_of(entry)); f != closed_flows_.end()) {
        f->second = generation_;
      }
    }
    return;
  }
  if (closed_by_poll_.contains(entry.cookie)) {
    closed_[entry.cookie] = {generation_, entry.netns};  // a dump missed it: it ended already
    return;
  }
  if (destroyed_this_poll_.contains(entry.cookie)) {
    return;  // the dump read it before its destroy event was taken
  }
  Tracked* t = tracked_.find(entry.cookie);
  if (t == nullptr) {
    track_new(entry, listeners, perimeter);
    return;
  }
  update(*t, entry, listeners, perimeter);
}

bool Tracker::wants_info(const SocketEntry& entry) const {
  if (entry.has_tcp_info || !entry.full_socket || !flow::has_tcp_states(entry.protocol)) {
    return false;  // it has it, or a minisocket (or a UDP socket) has none to give
  }
  if (first_ != FirstSight::kEvent) {
    // Found at a baseline: its record, or (silent) the totals its first period starts from.
    return true;
  }
  if (const Tracked* t = tracked_.find(entry.cookie); t != nullptr) {
    return entry.state != t->last.state;  // a State Change or Open record, now
  }
  if (closed_.contains(entry.cookie) || closed_by_poll_.contains(entry.cookie)) {
    return false;  // reported terminal already: nothing more about it
  }
  return flow::appearance(entry.protocol, entry.state) == Activity::kOpen;
}

flow::Observation Tracker::observe(const Tracked& t, Activity activity, std::int64_t now_ms,
                                   bool live) const {
  flow::Observation obs;
  obs.activity = activity;
  obs.time_ms = now_ms;
  const SocketEntry last = t.last.entry();
  obs.socket = flow::facts_of(last, live, t.uid_known);
  obs.orientation = t.orientation;
  obs.local = flow::local_endpoint(last);
  obs.remote = flow::remote_endpoint(last);
  if (t.has_totals && t.orientation.connected()) {
    obs.cumulative = t.totals.traffic();
  }
  return obs;
}

void Tracker::track_new(const SocketEntry& entry, const flow::ListenerTable& listeners,
                        const flow::Perimeter& perimeter) {
  const flow::Orientation o = orient(entry, listeners, perimeter);
  if (first_ != FirstSight::kEvent) {
    const bool baseline = first_ == FirstSight::kBaseline;
    if (request_socket(entry) || entry.state == netlink::kTcpTimeWait) {
      if (baseline) {
        sink_(flow::observe_snapshot(entry, o, poll_ms_));  // not tracked: written now
      }
      if (entry.state == netlink::kTcpTimeWait) {
        closed_[entry.cookie] = {generation_, entry.netns};  // it has ended already
      }
      return;
    }
    track(entry, o);  // existed before we looked: its start is unknown
    if (baseline) {
      owe(*tracked_.find(entry.cookie), Due::kBaseline, kNoState);
    }
    return;
  }
  if (!entry.full_socket) {
    if (!request_socket(entry)) {
      track_remnant(entry, o);
    }
    return;
  }
  const Activity appears = flow::appearance(entry.protocol, entry.state);
  if (appears == Activity::kOpen && flow::has_tcp_states(entry.protocol)) {
    ++changes_;  // an Open record: what wants_info() asks for
  }
  track(entry, o);
  if (appears == Activity::kOpen) {
    count_new(entry);
  }
  if (appears != Activity::kBound) {
    Tracked& t = *tracked_.find(entry.cookie);
    t.start_ms = poll_ms_;  // we saw it begin
    begin_first_period(t);
    owe(t, appears == Activity::kListen ? Due::kListen : Due::kOpen, kNoState);
  }
}

// A connection born while we watch: its first traffic period counts from its start (the
// kernel's transition, or else the poll before the one that found it), not from the totals
// it had when first seen.
void Tracker::begin_first_period(Tracked& t) {
  t.reported = Counters{};
  const flow::KernelFacts* facts = kernel_facts(t.last.cookie, t.last.protocol);
  t.period_start_ms =
      facts != nullptr && facts->start_ms != 0 ? facts->start_ms : previous_poll_ms_;
}

// Who initiated, by flow::orient(), or where that can only guess, by how the kernel's
// events saw the connection begin (connect() or a passive open).
flow::Orientation Tracker::orient(const SocketEntry& entry, const flow::ListenerTable& listeners,
                                  const flow::Perimeter& perimeter) const {
  flow::Orientation o = flow::orient(entry, listeners, perimeter);
  const flow::KernelFacts* facts =
      o.assignment_known ? nullptr : kernel_facts(entry.cookie, entry.protocol);
  if (facts == nullptr || facts->opened == flow::KernelFacts::Opened::kUnknown || !o.connected()) {
    return o;
  }
  o.shape =
      facts->opened == flow::KernelFacts::Opened::kActive ? Shape::kInitiated : Shape::kAccepted;
  o.assignment_known = true;
  flow::classify(o, flow::remote_endpoint(entry).ip, perimeter);
  return o;
}

void Tracker::track(const SocketEntry& entry, const flow::Orientation& o) {
  Tracked t;
  t.last = Seen::of(entry, false);
  t.orientation = o;
  t.generation = generation_;
  t.seen_established = flow::handshake_done(entry.state);
  t.uid_known = entry.full_socket;
  t.period_start_ms = poll_ms_;
  t.seen_ms = poll_ms_;
  if (auto totals = flow::live_totals(entry, o)) {
    t.totals = t.reported = Counters::of(*totals);
    t.has_totals = true;
  }
  // A bound TCP socket is no flow until it listens or connects.
  t.reported_open = flow::appearance(entry.protocol, entry.state) != Activity::kBound;
  tracked_.insert_or_assign(entry.cookie, t);
}

// A TIME-WAIT (or FIN-WAIT-2) remnant of a connection we never tracked: its close is
// reported by its destroy event (under another cookie, matched by 4-tuple), or by a later
// poll if none comes.
void Tracker::track_remnant(const SocketEntry& entry, const flow::Orientation& o) {
  const Flow flow = flow_of(entry);
  if (auto f = closed_flows_.find(flow); f != closed_flows_.end() && !own_cookie(entry.cookie)) {
    f->second = generation_;
    closed_[entry.cookie] = {generation_, entry.netns};
    return;
  }
  if (options_.confirm_poll_closes) {
    if (pending_.try_emplace(entry.cookie, Pending{entry, o, generation_}).second) {
      pending_flows_[flow] = entry.cookie;
      count_new(entry);
    }
    return;
  }
  count_new(entry);
  close_remnant(Pending{entry, o, generation_});
}

void Tracker::close_remnant(const Pending& p) {
  Tracked t;
  t.last = Seen::of(p.entry, false);
  t.orientation = p.orientation;
  flow::Observation obs = observe(t, Activity::kClose, poll_ms_, false);
  const Ending end = ending_from_poll(false, false, p.entry, 0);
  obs.status = end.status;
  obs.status_detail = end.detail;
  obs.end_ms = poll_ms_;
  sink_(obs);
  ++stats_.closed_by_poll;
  terminal(t.last, true, poll_ms_);
  remnant_flows_[flow_of(p.entry)] = generation_;
}

void Tracker::update(Tracked& t, const SocketEntry& entry, const flow::ListenerTable& listeners,
                     const flow::Perimeter& perimeter) {
  t.generation = generation_;
  if (!entry.full_socket) {
    // A full socket that became a minisocket has closed, and so has a minisocket tracked
    // since startup that reached TIME-WAIT: end_poll() reports it if no event does.
    if (t.last.full_socket || entry.state == netlink::kTcpTimeWait) {
      remnants_.insert_or_assign(entry.cookie, entry);
      t.has_remnant = true;
    }
    return;
  }
  t.suspect_since = 0;
  t.awaiting_since_ms = 0;
  const std::uint8_t previous = t.last.state;
  if (entry.state != previous) {
    changes_ += flow::has_tcp_states(entry.protocol) ? 1U : 0U;  // (what wants tcp_info)
    settle_due(t);  // the socket as the baseline found it, before what changed
  } else if (t.due != Due::kBaseline) {
    settle_due(t);  // what an earlier poll owes, as that poll saw it (not paced meanwhile)
  }
  const Seen before = t.last;
  t.last = Seen::of(entry, before.handshake);
  if (!entry.has_tcp_info) {
    // A poll without tcp_info (it asks only where a record needs it): what the last one
    // that had it said stands.
    t.last.has_tcp_info = before.has_tcp_info;
    t.last.rtt_us = before.rtt_us;
    t.last.total_retrans = before.total_retrans;
  }
  t.seen_ms = poll_ms_;
  t.uid_known = true;
  t.seen_established = t.seen_established || flow::handshake_done(entry.state);
  if (auto totals = flow::live_totals(entry, t.orientation)) {
    t.totals = Counters::of(t.has_totals ? flow::max_of(t.totals.traffic(), *totals) : *totals);
    t.has_totals = true;
  }
  if (entry.state == previous) {
    return;
  }
  if (flow::appearance(entry.protocol, previous) == Activity::kBound) {
    // A bound socket that now listens or connects: it appears now.
    if (entry.state != netlink::kTcpListen) {
      count_new(entry);
    }
    t.orientation = orient(entry, listeners, perimeter);
    t.start_ms = poll_ms_;
    begin_first_period(t);
    t.reported_open = true;
    owe(t, entry.state == netlink::kTcpListen ? Due::kListen : Due::kOpen, previous);
    return;
  }
  if (!t.orientation.assignment_known || !flow::has_tcp_states(entry.protocol)) {
    // A listener seen since, at either end, may decide it now; a UDP socket's follows from
    // its state (connected or not).
    if (const flow::Orientation o = orient(entry, listeners, perimeter); o.assignment_known) {
      t.orientation = o;
    }
  }
  owe(t, Due::kStateChange, previous);
}

void Tracker::end_poll() {
  tracked_.for_each([this](Tracked& t) { judge_missing(t); });
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.first_generation == generation_) {
      ++it;
      continue;
    }
    pending_flows_.erase(flow_of(it->second.entry));
    const Pending p = it->second;
    it = pending_.erase(it);
    close_remnant(p);
  }
  // Forgotten once two polls in a row missed them (one dump can skip a socket).
  destroyed_this_poll_.clear();
  std::erase_if(closed_, [this](const auto& c) { return c.second.generation + 1 < generation_; });
  std::erase_if(closed_flows_, [this](const auto& f) { return f.second + 1 < generation_; });
  std::erase_if(remnant_flows_, [this](const auto& f) { return f.second + 2 < generation_; });
  std::erase_if(closed_by_poll_,
                [this](const auto& c) { return poll_ms_ - c.second >= options_.await_destroy_ms; });
  first_ = FirstSight::kEvent;
}

// After a poll: whether a socket it did not find (or found a minisocket) has closed.
void Tracker::judge_missing(Tracked& t) {
  const bool gone = t.generation != generation_;
  if ((!gone && !t.has_remnant) || t.close_due_ms != 0) {
    return;
  }
  if (t.awaiting_since_ms != 0) {
    if (poll_ms_ - t.awaiting_since_ms >= options_.await_destroy_ms || event_may_be_lost(t)) {
      owe_close(t);  // its event never came (lost, or destroy events are off)
    }
    return;
  }
  if (t.suspect_since == 0) {
    t.suspect_since = generation_;
  }
  if (!options_.confirm_poll_closes) {
    owe_close(t);
    return;
  }
  if (t.suspect_since == generation_) {
    return;  // its destroy event may still be on its way
  }
  if (gone && may_be_hidden(t) && !event_may_be_lost(t)) {
    t.awaiting_since_ms = poll_ms_;  // its destroy event comes when it is closed
    return;
  }
  owe_close(t);
}

// A socket the kernel unhashes while its application still holds it, so that no dump
// shows it and its destroy event comes at close(): a connect() that failed (SYN-SENT; that
// event is the Fail), and a UDP socket that disconnected (connect(AF_UNSPEC)) without a
// port bound of its own (the kernel's __udp_disconnect()), which a poll cannot tell from a
// destroyed one.
bool Tracker::may_be_hidden(const Tracked& t) {
  if (!flow::has_tcp_states(t.last.protocol)) {
    return true;
  }
  return !t.seen_established && t.orientation.shape == Shape::kInitiated &&
         t.last.state == netlink::kTcpSynSent;
}

void Tracker::destroy_events_lost(std::uint64_t netns, std::uint8_t protocol) {
  lost_generation_[netns][protocol_slot(protocol)] = std::max<std::uint32_t>(generation_, 1);
}

bool Tracker::event_may_be_lost(const Tracked& t) const {
  const auto it = lost_generation_.find(t.last.netns);
  if (it == lost_generation_.end()) {
    return false;
  }
  const std::uint32_t lost = it->second[protocol_slot(t.last.protocol)];
  return lost != 0 && lost >= t.generation;
}

// A poll found it gone: its Close is owed, written paced (report_paced) as of this poll.
void Tracker::owe_close(Tracked& t) {
  t.close_due_ms = poll_ms_;
  ++closes_due_;
}

void Tracker::close_gone(Tracked& t, std::int64_t now_ms) {
  SocketEntry final_entry = t.last.entry();
  if (t.has_remnant) {
    if (auto r = remnants_.find(t.last.cookie); r != remnants_.end()) {
      final_entry = r->second;
    }
  }
  if (t.has_remnant) {
    final_entry.has_tcp_info = false;  // a minisocket carries none
  } else if (flow::has_tcp_states(final_entry.protocol)) {
    final_entry.state = netlink::kTcpClose;  // (a UDP socket keeps its last: connected or not)
  }
  close(t, final_entry, false, now_ms);
}

void Tracker::destroyed(const SocketEntry& entry, const flow::ListenerTable& listeners,
                        const flow::Perimeter& perimeter, std::int64_t now_ms) {
  const flow::KernelFacts* facts = kernel_facts(entry.cookie, entry.protocol);
  if (facts == nullptr) {
    destroyed_amended(entry, listeners, perimeter, now_ms);
  } else {
    SocketEntry amended = entry;
    flow::amend_final(amended, *facts);
    destroyed_amended(amended, listeners, perimeter, now_ms);
  }
  if (options_.destroy_read) {
    options_.destroy_read(entry.cookie);
  }
}

void Tracker::destroyed_amended(const SocketEntry& entry, const flow::ListenerTable& listeners,
                                const flow::Perimeter& perimeter, std::int64_t now_ms) {
  if (closed_by_poll_.erase(entry.cookie) > 0 || closed_.contains(entry.cookie) ||
      destroyed_this_poll_.contains(entry.cookie)) {
    ++stats_.duplicate_destroys;
    return;
  }
  if (Tracked* found = tracked_.find(entry.cookie); found != nullptr) {
    Tracked& t = *found;
    settle_due(t);  // as its poll found it, before the event changes what it is
    reorient_at_end(t, entry, perimeter);
    close(t, entry, true, now_ms);
    return;
  }
  // Remnants (TIME-WAIT minisockets, matched by 4-tuple) are TCP's: a UDP socket on the
  // same ports is another flow.
  const bool tcp = flow::has_tcp_states(entry.protocol);
  if (tcp && remnant_flows_.erase(flow_of(entry)) > 0) {
    ++stats_.duplicate_destroys;  // its remnant was reported closed by a poll already
    return;
  }
  if (tcp && !claim_remnant(entry) && entry.state != netlink::kTcpListen &&
      !flow::is_unspecified(flow::remote_endpoint(entry).ip)) {
    count_new(entry);  // a connection no poll saw (not a listener, not merely bound)
  }
  Tracked t;
  t.last = Seen::of(entry, false);
  t.orientation = orient(entry, listeners, perimeter);
  t.reported_open = true;
  close(t, entry, true, now_ms);
}

// What a socket was when it ended, where its destroy event says more than the polls saw.
// A TCP socket bound when the polls saw it, then connected and gone between two polls,
// initiated a connection (an accepted socket is always a new one). A UDP socket's follows
// its state: connected, or disconnected (connect(AF_UNSPEC): no peer, the local end only),
// since the last poll.
void Tracker::reorient_at_end(Tracked& t, const SocketEntry& entry,
                              const flow::Perimeter& perimeter) {
  const bool peer = !flow::is_unspecified(flow::remote_endpoint(entry).ip);
  const bool udp = !flow::has_tcp_states(entry.protocol);
  const Shape shape = t.orientation.shape;
  if (peer && (shape == Shape::kUnconnected || (udp && shape == Shape::kListener))) {
    t.orientation = flow::Orientation{};
    t.orientation.shape = Shape::kInitiated;
    t.orientation.assignment_known = true;
    flow::classify(t.orientation, flow::remote_endpoint(entry).ip, perimeter);
    t.reported_open = true;
    begin_first_period(t);
    count_new(entry);
  } else if (udp && !peer && shape == Shape::kInitiated) {
    t.orientation = flow::Orientation{};
    t.orientation.shape = Shape::kListener;
    t.orientation.assignment_known = true;
    flow::classify(t.orientation, {}, perimeter);
  }
}

// Its TIME-WAIT remnant was seen first (counted new then): under this cookie, or, never
// polled, under another one matched by 4-tuple. Not a remnant whose cookie is its own
// socket's (own_cookie()): that one is another connection on the same 4-tuple, a port
// reused while this destroy event waited, and its own event is still to come.
bool Tracker::claim_remnant(const SocketEntry& entry) {
  if (auto p = pending_.find(entry.cookie); p != pending_.end()) {
    if (auto f = pending_flows_.find(flow_of(p->second.entry));
        f != pending_flows_.end() && f->second == entry.cookie) {
      pending_flows_.erase(f);
    }
    pending_.erase(p);
    return true;
  }
  auto f = pending_flows_.find(flow_of(entry));
  if (f == pending_flows_.end() || own_cookie(f->second)) {
    return false;
  }
  closed_[f->second] = {generation_, entry.netns};
  pending_.erase(f->second);
  pending_flows_.erase(f);
  return true;
}

void Tracker::close(Tracked& t, const SocketEntry& final_entry, bool from_destroy,
                    std::int64_t now_ms) {
  const std::uint64_t cookie = t.last.cookie;
  settle_due(t);
  if (t.close_due_ms != 0) {
    t.close_due_ms = 0;  // its event came first, or the round writes it now
    --closes_due_;
  }
  remnants_.erase(cookie);
  if (!t.reported_open || t.orientation.shape == Shape::kUnconnected) {
    ++stats_.unused_destroys;  // bound, never listened or connected: no record
    terminal(t.last, !from_destroy, now_ms);
    tracked_.erase(cookie);
    return;
  }
  const flow::Observation obs = closing(t, final_entry, from_destroy, now_ms);
  if (from_destroy && tracked_.find(cookie) == nullptr) {
    ShortLivedLimit& limit = short_lived_[protocol_slot(t.last.protocol)];
    limit.take(now_ms, false, sink_);  // a second that ended: its summaries first
    if (!limit.admit(obs, now_ms)) {
      terminal(t.last, false, now_ms);  // no poll saw it: summarised (flush_summaries())
      return;
    }
  }
  sink_(obs);
  ++(from_destroy ? stats_.closed_by_destroy : stats_.closed_by_poll);
  if (obs.remote.port != 0 && flow::has_tcp_states(t.last.protocol)) {
    SocketEntry written = final_entry;  // its TIME-WAIT minisocket may come under another cookie
    written.remote_port = obs.remote.port;
    closed_flows_[flow_of(written)] = generation_;
  }
  terminal(t.last, !from_destroy, now_ms);
  tracked_.erase(cookie);
}

flow::Observation Tracker::closing(const Tracked& t, const SocketEntry& final_entry,
                                   bool from_destroy, std::int64_t now_ms) const {
  const netlink::TcpInfo& info = final_entry.info;
  Role role;
  role.listener = t.orientation.shape == Shape::kListener;
  role.initiated = t.orientation.shape == Shape::kInitiated;
  const bool handshake = t.seen_established || t.last.handshake || info.rtt_us > 0 ||
                         info.bytes_acked > 0 || info.bytes_received > 0;
  role.attempt = !role.listener && !handshake && t.orientation.shape != Shape::kAccepted;
  std::optional<flow::Traffic> totals;
  if (t.has_totals) {
    totals = t.totals.traffic();
  }
  const flow::KernelFacts* facts = kernel_facts(t.last.cookie, t.last.protocol);
  const std::uint16_t error = facts != nullptr && facts->ended ? facts->error : 0;
  // A UDP socket has no handshake to fail and no way to end but being closed: a Close.
  const Ending end = flow::has_tcp_states(t.last.protocol)
                         ? ending_of(role, final_entry, from_destroy, error, totals)
                         : Ending{};

  flow::Observation obs = observe(t, end.activity, now_ms, false);
  obs.status = end.status;
  obs.status_detail = end.detail;
  obs.start_ms = facts != nullptr && facts->start_ms != 0 ? facts->start_ms : t.start_ms;
  obs.end_ms = now_ms;
  // What a destroy event lacks comes from what the polls saw under the same cookie.
  SocketEntry merged = final_entry;
  merged.inode = t.last.inode;
  merged.uid = t.last.uid;
  merged.cgroup_id = final_entry.cgroup_id != 0 ? final_entry.cgroup_id : t.last.cgroup_id;
  merged.full_socket = t.last.full_socket || final_entry.full_socket;
  merged.netns = t.last.netns;
  if (t.last.has_tcp_info) {
    // An abort (tcp_disconnect()) zeroes the path's RTT and retransmissions as it zeroes
    // the counters: the last poll's stand, as its totals do. Neither goes back otherwise.
    merged.info.rtt_us = merged.info.rtt_us != 0 ? merged.info.rtt_us : t.last.rtt_us;
    merged.info.total_retrans = std::max(merged.info.total_retrans, t.last.total_retrans);
  }
  obs.socket = flow::facts_of(merged, false, t.uid_known);
  if (t.orientation.connected() && totals) {
    obs.cumulative = *totals;
    // A socket first seen in its destroy event: its one period began with it.
    const std::int64_t period_start = t.period_start_ms != 0 ? t.period_start_ms : obs.start_ms;
    obs.traffic =
        flow::TrafficPeriod{flow::minus(*totals, t.reported.traffic()), period_start, now_ms};
  }
  repair(obs, t, final_entry);
  return obs;
}

void Tracker::repair(flow::Observation& obs, const Tracked& t,
                     const SocketEntry& final_entry) const {
  const flow::Endpoint remote = flow::remote_endpoint(final_entry);
  const SocketEntry last = t.last.entry();
  auto r =
      flow::repair_endpoints(flow::local_endpoint(final_entry), remote, flow::local_endpoint(last),
                             flow::remote_endpoint(last), [&]() -> std::optional<flow::Address> {
                               if (!options_.route_source || !obs.orientation.connected()) {
                                 return std::nullopt;
                               }
                               return options_.route_source(t.last.netns, remote.ip);
                             });
  obs.local = r.local;
  obs.remote = r.remote;
  obs.local_inferred = r.local_inferred;
}

void Tracker::terminal(const Seen& socket, bool by_poll, std::int64_t now_ms) {
  const std::uint64_t cookie = socket.cookie;
  if (!by_poll && !flow::has_tcp_states(socket.protocol)) {
    destroyed_this_poll_.insert(cookie);  // no minisocket lingers (see tracker.h)
    return;
  }
  closed_[cookie] = {generation_, socket.netns};
  if (by_poll) {
    closed_by_poll_[cookie] = now_ms;
  }
}

void Tracker::owe(Tracked& t, Due due, std::uint8_t previous) {
  if (t.due == Due::kNone) {
    ++records_due_;
  }
  t.due = due;
  t.due_previous = previous;
}

void Tracker::settle_due(Tracked& t) {
  const Due due = std::exchange(t.due, Due::kNone);
  if (due == Due::kNone) {
    return;
  }
  --records_due_;
  if (due != Due::kBaseline) {
    static constexpr std::array<Activity, 5> kActivity = {Activity::kUnknown, Activity::kUnknown,
                                                          Activity::kOpen, Activity::kListen,
                                                          Activity::kStateChange};
    flow::Observation obs = observe(t, kActivity[static_cast<std::size_t>(due)], t.seen_ms);
    if (due == Due::kOpen) {
      obs.status = flow::open_status(t.last.state);
    }
    if (t.due_previous != kNoState) {
      obs.previous_state = t.due_previous;
    }
    sink_(obs);
    return;
  }
  flow::Observation obs = flow::observe_snapshot(t.last.entry(), t.orientation, t.seen_ms);
  // Seen keeps no traffic counters: the totals are the tracker's (as of the same poll).
  obs.cumulative.reset();
  if (t.has_totals && t.orientation.connected()) {
    obs.cumulative = t.totals.traffic();
  }
  sink_(obs);
}

void Tracker::begin_round() {
  round_at_ = 0;
  round_end_ = tracked_.places();
}

// One connection's Traffic record, if its period is over and its counters moved.
bool Tracker::report_traffic(Tracked& t, std::int64_t now_ms, std::int64_t interval_ms) {
  // A socket that never reached ESTABLISHED moved no data, only its SYNs: no Traffic.
  if (interval_ms <= 0 || !t.reported_open || !t.has_totals || !t.orientation.connected() ||
      !t.seen_established || t.has_remnant || t.awaiting_since_ms != 0 ||
      now_ms - t.period_start_ms < interval_ms) {
    return false;
  }
  const flow::Traffic delta = flow::minus(t.totals.traffic(), t.reported.traffic());
  if (flow::is_zero(delta)) {
    ++stats_.quiet_traffic;  // nothing moved: no record, and the period goes on
    return false;
  }
  flow::Observation obs = observe(t, Activity::kTraffic, now_ms);
  obs.traffic = flow::TrafficPeriod{delta, t.period_start_ms, now_ms};
  sink_(obs);
  t.reported = t.totals;
  t.period_start_ms = now_ms;
  return true;
}

std::size_t Tracker::report_paced(std::int64_t now_ms, std::int64_t interval_ms,
                                  std::size_t budget) {
  std::size_t written = 0;
  if (interval_ms <= 0 && records_due_ == 0 && closes_due_ == 0) {
    round_at_ = round_end_;  // nothing can be owed
    return written;
  }
  while (written < budget && round_at_ < round_end_) {
    Tracked* found = tracked_.at_place(round_at_++);
    if (found == nullptr) {
      continue;  // no socket there now
    }
    Tracked& t = *found;
    if (t.due != Due::kNone) {
      settle_due(t);
      ++written;
    }
    if (t.close_due_ms != 0) {
      close_gone(t, t.close_due_ms);  // erases t
      ++written;
      continue;
    }
    if (report_traffic(t, now_ms, interval_ms)) {
      ++written;
    }
  }
  return written;
}

void Tracker::keep_namespace(std::uint64_t netns) {
  tracked_.for_each([&](Tracked& t) {
    if (t.last.netns == netns) {
      t.generation = generation_;
    }
  });
  for (auto& [cookie, p] : pending_) {
    if (p.entry.netns == netns) {
      p.first_generation = generation_;
    }
  }
  for (auto& [flow, generation] : closed_flows_) {
    if (flow.netns == netns) {
      generation = generation_;
    }
  }
  for (auto& [cookie, c] : closed_) {
    if (c.netns == netns) {
      c.generation = generation_;
    }
  }
}

std::vector<std::uint32_t> Tracker::inodes() const {
  std::vector<std::uint32_t> out;
  out.reserve(tracked_.size());
  tracked_.for_each([&out](const Tracked& t) {
    if (t.last.inode != 0) {
      out.push_back(t.last.inode);
    }
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::uint64_t Tracker::new_connections(std::uint64_t netns) const {
  const auto it = new_connections_.find(netns);
  return it == new_connections_.end() ? 0 : it->second;
}

void Tracker::flush_summaries(std::int64_t now_ms, bool all) {
  for (auto& limit : short_lived_) {
    limit.take(now_ms, all, sink_);
  }
}

std::int64_t Tracker::summaries_due_ms() const {
  std::int64_t due = 0;
  for (const auto& limit : short_lived_) {
    if (const std::int64_t d = limit.due_ms(); d != 0) {
      due = due == 0 ? d : std::min(due, d);
    }
  }
  return due;
}

void Tracker::set_short_lived_per_second(const std::array<std::uint32_t, 2>& per_second) {
  options_.short_lived_per_second = per_second;
  for (std::size_t i = 0; i < short_lived_.size(); ++i) {
    short_lived_[i].set_per_second(per_second[i]);
  }
}

TrackerStats Tracker::stats() const {
  TrackerStats s = stats_;
  for (const auto& limit : short_lived_) {
    s.short_lived_summarised += limit.summarised();
    s.summary_records += limit.summaries();
  }
  s.tracked = tracked_.size();
  s.remembered = closed_.size() + closed_flows_.size() + closed_by_poll_.size() + pending_.size() +
                 remnant_flows_.size();
  s.awaiting_destroy = 0;
  tracked_.for_each(
      [&s](const Tracked& t) { s.awaiting_destroy += t.awaiting_since_ms != 0 ? 1 : 0; });
  return s;
}

}  // namespace sockstate::tracking

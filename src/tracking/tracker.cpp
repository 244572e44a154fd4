#include "sockstate/tracking/tracker.h"

#include <cstring>

namespace sockstate::tracking {
namespace {

using netlink::SocketEntry;

// States a socket reaches only after its handshake completed.
bool past_handshake(std::uint8_t state) {
  return state != netlink::kTcpSynSent && state != netlink::kTcpSynRecv &&
         state != netlink::kTcpNewSynRecv && state != netlink::kTcpListen &&
         state != netlink::kTcpClose;
}

bool connected_shape(const ocsf::Orientation& o) {
  return o.shape == ocsf::Orientation::Shape::kInbound ||
         o.shape == ocsf::Orientation::Shape::kOutbound;
}

std::uint64_t less(std::uint64_t a, std::uint64_t b) {
  return a > b ? a - b : 0;
}

ocsf::Traffic minus(const ocsf::Traffic& now, const ocsf::Traffic& before) {
  return {less(now.bytes_sent, before.bytes_sent), less(now.bytes_received, before.bytes_received),
          less(now.segs_sent, before.segs_sent), less(now.segs_received, before.segs_received)};
}

// tcp_disconnect() (a blocking connect() that failed, close() with SO_LINGER 0) zeroes
// the counters before the socket is destroyed.
bool counters_reset(const netlink::TcpInfo& i) {
  return i.bytes_acked == 0 && i.bytes_received == 0 && i.segs_out == 0 && i.segs_in == 0 &&
         i.bytes_sent == 0;
}

}  // namespace

ocsf::Traffic final_traffic(const netlink::TcpInfo& info, bool active_open) {
  ocsf::Traffic t;
  t.segs_sent = info.segs_out;
  t.segs_received = info.segs_in;
  const std::uint64_t syn = active_open && info.bytes_acked > 0 ? 1 : 0;
  bool orderly = false;
  if (info.has_bytes_sent) {
    t.bytes_sent = less(info.bytes_sent, info.bytes_retrans);
    orderly = info.bytes_acked > t.bytes_sent + syn;
  } else {
    // Before Linux 4.19 there is no data-only counter: assume an orderly close, whose
    // FIN was acknowledged.
    orderly = info.bytes_acked > syn;
    t.bytes_sent = less(info.bytes_acked, syn + (orderly ? 1 : 0));
  }
  t.bytes_received = less(info.bytes_received, orderly ? 1 : 0);
  return t;
}

Tracker::Flow Tracker::flow_of(const SocketEntry& e) {
  return Flow{ocsf::normalized_address(e.family, e.local_addr),
              ocsf::normalized_address(e.family, e.remote_addr), e.local_port, e.remote_port,
              e.netns};
}

std::size_t Tracker::FlowHash::operator()(const Flow& f) const {
  std::uint64_t h = ((std::uint64_t{f.local_port} << 16) | f.remote_port) ^ (f.netns << 32);
  for (const auto* a : {&f.local, &f.remote}) {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    std::memcpy(&hi, a->data(), 8);
    std::memcpy(&lo, a->data() + 8, 8);
    h = (h ^ hi) * 0x9E3779B97F4A7C15U;
    h = (h ^ lo) * 0x9E3779B97F4A7C15U;
  }
  return static_cast<std::size_t>(h ^ (h >> 29));
}

void Tracker::begin_poll(std::int64_t now_ms, bool baseline) {
  ++generation_;
  poll_ms_ = now_ms;
  baseline_ = baseline;
}

void Tracker::poll_socket(const SocketEntry& entry, const ocsf::ListenerTable& listeners) {
  if (auto c = closed_.find(entry.cookie); c != closed_.end()) {
    c->second = generation_;  // reported closed; still lingering (e.g. TIME-WAIT)
    return;
  }
  auto it = tracked_.find(entry.cookie);
  if (it == tracked_.end()) {
    const ocsf::Orientation o = ocsf::orient(entry, listeners);
    Event ev{EventKind::kBaseline, entry, o, 0, poll_ms_, 0, false, false, {}, {}};
    if (baseline_) {
      emit(ev);
      if (!entry.full_socket) {
        // A minisocket's connection is over (TIME-WAIT) or not yet a socket (request):
        // nothing to follow.
        if (entry.state != netlink::kTcpSynRecv) {
          closed_[entry.cookie] = generation_;
        }
        return;
      }
    } else if (!entry.full_socket) {
      if (entry.state == netlink::kTcpSynRecv) {
        return;  // half-open request sockets: the accepted socket is reported instead
      }
      // A TIME-WAIT (or FIN-WAIT-2) remnant of a connection we never tracked: its close
      // is reported by its destroy event (under another cookie, matched by 4-tuple), or
      // by a later poll if none comes.
      const Flow flow = flow_of(entry);
      if (auto f = closed_flows_.find(flow); f != closed_flows_.end()) {
        f->second = generation_;
        closed_[entry.cookie] = generation_;
        return;
      }
      if (defer_) {
        if (pending_.try_emplace(entry.cookie, Pending{entry, o, generation_}).second) {
          pending_flows_[flow] = entry.cookie;
        }
        return;
      }
      ev.kind = EventKind::kClose;
      emit(ev);
      ++stats_.closed_by_poll;
      closed_[entry.cookie] = generation_;
      return;
    }
    Tracked t;
    t.last = entry;
    t.orientation = o;
    t.first_seen_ms = poll_ms_;
    t.generation = generation_;
    t.seen_established = past_handshake(entry.state);
    t.last_traffic_ms = poll_ms_;
    if (entry.has_tcp_info && connected_shape(o)) {
      t.reported = ocsf::application_traffic(entry, o.shape == ocsf::Orientation::Shape::kOutbound);
    }
    if (!baseline_ && entry.state != netlink::kTcpClose) {
      ev.kind = entry.state == netlink::kTcpListen ? EventKind::kListen : EventKind::kOpen;
      ev.start_ms = poll_ms_;
      emit(ev);
    }
    t.reported_open = baseline_ || entry.state != netlink::kTcpClose;
    tracked_.emplace(entry.cookie, t);
    return;
  }

  Tracked& t = it->second;
  t.generation = generation_;
  if (!entry.full_socket) {
    // Became a TIME-WAIT minisocket: closed. end_poll() reports it if no destroy
    // event does.
    t.remnant = entry;
    t.has_remnant = true;
    return;
  }
  t.suspect_since = 0;
  const std::uint8_t previous = t.last.state;
  t.last = entry;
  t.seen_established = t.seen_established || past_handshake(entry.state);
  if (entry.state == previous) {
    return;
  }
  if (previous == netlink::kTcpClose) {
    // A bound socket that now listens or connects: it appears now.
    t.orientation = ocsf::orient(entry, listeners);
    t.first_seen_ms = poll_ms_;
    t.reported_open = true;
    emit(Event{entry.state == netlink::kTcpListen ? EventKind::kListen : EventKind::kOpen,
               entry,
               t.orientation,
               previous,
               poll_ms_,
               poll_ms_,
               false,
               false,
               {},
               {}});
    return;
  }
  if (t.orientation.shape == ocsf::Orientation::Shape::kOutbound &&
      !t.orientation.assignment_known && listeners.accepts(entry)) {
    t.orientation = ocsf::orient(entry, listeners);  // a listener decides it now
  }
  emit(Event{EventKind::kStateChange,
             entry,
             t.orientation,
             previous,
             poll_ms_,
             t.first_seen_ms,
             false,
             false,
             {},
             {}});
}

void Tracker::end_poll() {
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    Tracked& t = it->second;
    ++it;  // close() erases t
    const bool gone = t.generation != generation_;
    if (!gone && !t.has_remnant) {
      continue;
    }
    if (t.suspect_since == 0) {
      t.suspect_since = generation_;
    }
    if (defer_ && t.suspect_since == generation_) {
      continue;  // its destroy event may still be on its way
    }
    // Gone (or a minisocket) and no destroy event reported it.
    SocketEntry final_entry = t.has_remnant ? t.remnant : t.last;
    if (t.has_remnant) {
      final_entry.has_tcp_info = false;
    } else {
      final_entry.state = netlink::kTcpClose;
    }
    close(t, final_entry, false, poll_ms_);
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.first_generation == generation_) {
      ++it;
      continue;
    }
    Event ev{EventKind::kClose,
             it->second.entry,
             it->second.orientation,
             0,
             poll_ms_,
             0,
             false,
             false,
             {},
             {}};
    emit(ev);
    ++stats_.closed_by_poll;
    closed_[it->first] = generation_;
    it = pending_.erase(it);
  }
  std::erase_if(closed_, [this](const auto& c) { return c.second < generation_; });
  baseline_ = false;
}

void Tracker::destroyed(const SocketEntry& entry, const ocsf::ListenerTable& listeners,
                        std::int64_t now_ms) {
  if (closed_.contains(entry.cookie)) {
    ++stats_.duplicate_destroys;
    return;
  }
  auto it = tracked_.find(entry.cookie);
  if (it != tracked_.end()) {
    close(it->second, entry, true, now_ms);
    return;
  }
  // Its TIME-WAIT remnant was seen first, under this cookie or (never polled) another.
  if (auto f = pending_flows_.find(flow_of(entry)); f != pending_flows_.end()) {
    closed_[f->second] = generation_;
    pending_.erase(f->second);
    pending_flows_.erase(f);
  }
  pending_.erase(entry.cookie);
  const ocsf::Address remote = ocsf::normalized_address(entry.family, entry.remote_addr);
  if (ocsf::is_unspecified(remote)) {
    // Bound and never used, or a listener no poll saw: nothing happened on the network.
    ++stats_.unused_destroys;
    closed_[entry.cookie] = generation_;
    return;
  }
  Tracked t;
  t.last = entry;
  t.orientation = ocsf::orient(entry, listeners);
  t.reported_open = true;
  auto [pos, inserted] = tracked_.emplace(entry.cookie, t);
  (void)inserted;
  close(pos->second, entry, true, now_ms);
}

void Tracker::close(Tracked& t, SocketEntry final_entry, bool from_destroy, std::int64_t now_ms) {
  const std::uint64_t cookie = t.last.cookie;
  const bool active = t.orientation.shape == ocsf::Orientation::Shape::kOutbound;
  Event ev{EventKind::kClose, final_entry,  t.orientation, 0,  now_ms,
           t.first_seen_ms,   from_destroy, false,         {}, {}};
  // What a destroy event lacks comes from what the polls saw under the same cookie.
  ev.entry.inode = t.last.inode;
  ev.entry.uid = t.last.uid;
  if (ev.entry.cgroup_id == 0) {
    ev.entry.cgroup_id = t.last.cgroup_id;
  }
  ev.entry.full_socket = t.last.full_socket || final_entry.full_socket;
  if (ev.entry.remote_port == 0 && t.last.remote_port != 0) {
    ev.entry.remote_port = t.last.remote_port;  // tcp_disconnect() cleared it
  }

  const bool was_listening = t.last.state == netlink::kTcpListen;
  const netlink::TcpInfo& info = final_entry.info;
  const bool handshake =
      t.seen_established || info.rtt_us > 0 || info.bytes_acked > 0 || info.bytes_received > 0;
  if (!t.reported_open) {
    // Bound, never listened or connected: no record.
    ++stats_.unused_destroys;
  } else {
    if (from_destroy && !was_listening && !handshake &&
        t.orientation.shape != ocsf::Orientation::Shape::kInbound) {
      ev.kind = info.segs_in > 0 ? EventKind::kRefuse : EventKind::kFail;
      ev.has_traffic = final_entry.has_tcp_info;
      ev.traffic = final_traffic(info, active);
    } else if (connected_shape(t.orientation)) {
      if (from_destroy && final_entry.has_tcp_info && !counters_reset(info)) {
        ev.has_traffic = true;
        ev.traffic = final_traffic(info, active);
      } else if (t.last.has_tcp_info) {
        ev.has_traffic = true;  // the last poll's totals: the best there is
        ev.traffic = ocsf::application_traffic(t.last, active);
      }
    }
    emit(ev);
    ++(from_destroy ? stats_.closed_by_destroy : stats_.closed_by_poll);
  }
  if (final_entry.remote_port != 0) {
    closed_flows_[flow_of(final_entry)] = generation_;
  }
  tracked_.erase(cookie);
  closed_[cookie] = generation_;
}

void Tracker::report_traffic(std::int64_t now_ms, std::int64_t interval_ms) {
  if (interval_ms <= 0) {
    return;
  }
  for (auto& [cookie, t] : tracked_) {
    if (!t.reported_open || !t.last.has_tcp_info || !connected_shape(t.orientation) ||
        now_ms - t.last_traffic_ms < interval_ms) {
      continue;
    }
    const ocsf::Traffic totals = ocsf::application_traffic(
        t.last, t.orientation.shape == ocsf::Orientation::Shape::kOutbound);
    Event ev{
        EventKind::kTraffic,       t.last, t.orientation, 0, now_ms, t.first_seen_ms, false, true,
        minus(totals, t.reported), totals};
    emit(ev);
    t.reported = totals;
    t.last_traffic_ms = now_ms;
  }
}

void Tracker::keep_namespace(std::uint64_t netns) {
  for (auto& [cookie, t] : tracked_) {
    if (t.last.netns == netns) {
      t.generation = generation_;
    }
  }
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
}

void Tracker::collect_inodes(std::unordered_set<std::uint32_t>& out) const {
  for (const auto& [cookie, t] : tracked_) {
    if (t.last.inode != 0) {
      out.insert(t.last.inode);
    }
  }
}

TrackerStats Tracker::stats() const {
  TrackerStats s = stats_;
  s.tracked = tracked_.size();
  return s;
}

}  // namespace sockstate::tracking

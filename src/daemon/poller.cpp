#include "poller.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "sockstate/collect/host.h"

namespace sockstate::daemon {
namespace {

bool refused(int errnum) {
  return errnum == EINVAL || errnum == ENOENT || errnum == EOPNOTSUPP;
}

bool contains(const std::vector<std::uint64_t>& inodes, std::uint64_t inode) {
  return std::find(inodes.begin(), inodes.end(), inode) != inodes.end();
}

}  // namespace

// What one namespace's dumps of a poll share.
struct Poller::DumpPass {
  Namespace& ns;
  bool with_info;  // asked of TCP's dumps (UDP has no tcp_info)
  std::uint8_t protocol = IPPROTO_TCP;
  netlink::CookieSet seen{};
  std::vector<netlink::SocketEntry> wanted{};  // sockets needing the tcp_info not asked for
  std::size_t dumped = 0;
  std::size_t since_drain = 0;
  Result<void> drained{};
};

void Poller::begin() {
  opens_.clear();
  for (auto& [inode, ns] : namespaces_.all()) {
    opens_[inode] = ns->view.tcp_opens();
  }
  plan();
}

// Whether this poll's dumps carry every socket's tcp_info, and whether its round writes
// Traffic records. tcp_info is a quarter of the kernel's work in a dump (100,000 sockets:
// 100 ms of CPU a poll with it, 78 without), and between Traffic records only a new
// socket or a changed state needs it: those are looked up after the dump. So a poll
// asks for it at a Traffic tick (every traffic_interval, give or take half a poll: the
// totals every connection's Traffic record needs), at the first poll (the baseline),
// and when the last poll found more new or changed sockets (lookups, or what would have
// been) than a dump with tcp_info would cost (a lookup is a round trip: about 1/32 of
// the table).
void Poller::plan() {
  const std::int64_t now = collect::monotonic_ms();
  const std::int64_t interval = config_.traffic_interval.count();
  if (last_tick_ms_ < 0) {
    last_tick_ms_ = now;  // the baseline starts every connection's first period
  }
  traffic_tick_ =
      interval > 0 && now - last_tick_ms_ >= interval - config_.poll_interval.count() / 2;
  if (traffic_tick_) {
    last_tick_ms_ = now;
  }
  const std::uint64_t busy = std::max<std::uint64_t>(256, tracker_.size() / 32);
  const std::uint64_t changes_last_poll = tracker_.changes() - changes_before_poll_;
  changes_before_poll_ = tracker_.changes();
  // Without destroy events every Close comes from a poll, with the totals polls saw: all
  // of them ask for tcp_info, as before.
  poll_info_ = first_poll_ || traffic_tick_ || changes_last_poll > busy || !config_.destroy_events;
  counters_.info_polls += poll_info_ ? 1 : 0;
}

// What a socket seen for the first time is. At the first poll it was there before we
// looked: the baseline (or nothing, without one). In a namespace found later, its
// sockets at its first dump were there before we looked too: they get the snapshot
// records (the namespace appears, so its sockets are news; their start is unknown).
tracking::Tracker::FirstSight Poller::first_sight(const Namespace& ns) const {
  using FirstSight = tracking::Tracker::FirstSight;
  if (first_poll_) {
    return config_.baseline ? FirstSight::kBaseline : FirstSight::kSilent;
  }
  return ns.dumped ? FirstSight::kEvent : FirstSight::kBaseline;
}

// Dumps one namespace's LISTEN sockets into its table, and into `listening` (tagged).
Result<void> Poller::dump_listeners(Namespace& ns, std::vector<netlink::SocketEntry>& listening) {
  if (auto refreshed = ns.view.refresh_addresses(); !refreshed) {
    return refreshed.error();
  }
  return ns.view.dump_listeners(true, true, dump_stats_,
                                [&](const netlink::SocketEntry& e) { listening.push_back(e); });
}

// Sockets a dump without tcp_info found that need it now: fetched one by one, then fed.
// Gone meanwhile (its destroy event tells the rest), or the lookup failed (one line a
// poll): the dump's view of it, without tcp_info.
void Poller::feed_looked_up(Namespace& ns, const std::vector<netlink::SocketEntry>& wanted) {
  const flow::Perimeter p = namespaces_.perimeter(ns);
  std::size_t failed = 0;
  std::string first_error;
  for (const netlink::SocketEntry& e : wanted) {
    ++counters_.info_lookups;
    auto found = ns.view.lookup(e, dump_stats_);
    if (!found && failed++ == 0) {
      first_error = found.error().message();
    }
    tracker_.poll_socket(found && *found ? **found : e, ns.view.listeners(), p);
  }
  if (failed > 0) {
    spdlog::warn(
        "tcp_info lookups of {} sockets failed in namespace {} ({}): their records "
        "carry what the dump saw",
        failed, ns.view.info().inode, first_error);
  }
}

// Dumps one namespace's other sockets, of each protocol asked for, into the tracker.
Result<void> Poller::dump_sockets(Namespace& ns, const Interleave& interleave) {
  const tracking::Tracker::FirstSight first = first_sight(ns);
  tracker_.set_first_sight(first);
  DumpPass pass{ns, poll_info_ || first != tracking::Tracker::FirstSight::kEvent};
  pass.seen.reserve(ns.sockets_dumped + ns.sockets_dumped / 8);  // as its last, and some
  for (const std::uint8_t protocol : config_.protocols) {
    pass.protocol = protocol;
    if (auto done = dump_protocol(pass, interleave); !done) {
      return finish_dump(pass, done);
    }
  }
  return finish_dump(pass, {});
}

// One protocol's sockets: TCP's both families in one walk of the kernel's socket hash (a
// dump per family walks all of it twice; see build_dump_request()), or one family at a
// time where the kernel refuses that; UDP's one family at a time (the kernel's UDP dump
// takes no AF_UNSPEC).
Result<void> Poller::dump_protocol(DumpPass& pass, const Interleave& interleave) {
  if (both_families_ && pass.protocol == IPPROTO_TCP) {
    auto done = dump_family(pass, AF_UNSPEC, interleave);
    if (done || !pass.drained || !refused(done.error().errnum)) {
      return done;
    }
    both_families_ = false;  // the socket cookies seen so far are not delivered again
    spdlog::info("the kernel refuses one dump of both families ({}): one each",
                 done.error().message());
  }
  for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
    if (auto done = dump_family(pass, family, interleave); !done) {
      return done;
    }
  }
  return {};
}

Result<void> Poller::dump_family(DumpPass& pass, std::uint8_t family,
                                 const Interleave& interleave) {
  // A dump of many sockets takes a while (0.7 s for 500,000): the event sources are read
  // during it, every kDrainEvery sockets, so that a close storm meanwhile does not
  // overflow their socket's buffer (measured: 100,000 closes/s during a 500,000-socket
  // poll overflowed it once, and 105,000 closes waited for polls).
  static constexpr std::size_t kDrainEvery = 2048;
  // TCP's listeners were dumped first (dump_listeners()); UDP's "listeners" (bound, not
  // connected) decide no direction and come here.
  std::uint32_t states = flow::kernel_states_for(pass.protocol, config_.states);
  if (flow::has_tcp_states(pass.protocol)) {
    states &= ~netlink::state_bit(netlink::kTcpListen);
  }
  if (states == 0) {
    return pass.drained;  // none of this protocol's states asked for
  }
  const flow::Perimeter p = namespaces_.perimeter(pass.ns);
  const bool with_info = pass.with_info && flow::has_tcp_states(pass.protocol);
  const netlink::DumpRequest request{family, states, with_info, {}, pass.protocol};
  auto done =
      pass.ns.view.dump(request, pass.seen, dump_stats_, [&](const netlink::SocketEntry& e) {
        ++pass.dumped;
        if (!with_info && tracker_.wants_info(e)) {
          pass.wanted.push_back(e);
        } else {
          tracker_.poll_socket(e, pass.ns.view.listeners(), p);
        }
        if (++pass.since_drain == kDrainEvery && pass.drained) {
          pass.since_drain = 0;
          pass.drained = interleave();
        }
      });
  if (!done) {
    return done.error();
  }
  return pass.drained;
}

Result<void> Poller::finish_dump(DumpPass& pass, const Result<void>& done) {
  if (!done) {
    return done.error();
  }
  feed_looked_up(pass.ns, pass.wanted);
  pass.ns.sockets_dumped = pass.dumped;
  return {};
}

// A dump failed. In our own namespace that ends the daemon; in another one, the namespace
// is dropped after this poll (the next discovery opens it again) and its sockets are kept
// as they were, so a failed dump reports no closes.
Result<void> Poller::dump_failed(const Namespace& ns, const Error& error,
                                 std::vector<std::uint64_t>& failed) {
  if (!config_.all_netns) {
    return error;
  }
  ++counters_.dump_errors;
  spdlog::warn("network namespace {}: {}", ns.view.info().inode, error.message());
  failed.push_back(ns.view.info().inode);
  return {};
}

Result<std::vector<std::uint64_t>> Poller::dump(const Interleave& interleave) {
  const bool want_listen = (config_.states & netlink::state_bit(netlink::kTcpListen)) != 0 &&
                           std::find(config_.protocols.begin(), config_.protocols.end(),
                                     IPPROTO_TCP) != config_.protocols.end();
  std::vector<std::uint64_t> failed;
  std::vector<netlink::SocketEntry> listening;
  for (auto& [inode, ns] : namespaces_.all()) {
    if (auto done = dump_listeners(*ns, listening); !done) {
      if (auto fatal = dump_failed(*ns, done.error(), failed); !fatal) {
        return fatal.error();
      }
    }
  }
  for (const auto& e : listening) {
    if (want_listen && !contains(failed, e.netns)) {
      const Namespace& ns = *namespaces_.find(e.netns);
      tracker_.set_first_sight(first_sight(ns));
      tracker_.poll_socket(e, ns.view.listeners(), namespaces_.perimeter(ns));
    }
  }
  for (auto& [inode, ns] : namespaces_.all()) {
    if (contains(failed, inode)) {
      continue;
    }
    if (auto done = dump_sockets(*ns, interleave); !done) {
      if (auto fatal = dump_failed(*ns, done.error(), failed); !fatal) {
        return fatal.error();
      }
    }
  }
  for (auto& [inode, ns] : namespaces_.all()) {
    ns->dumped = ns->dumped || !contains(failed, inode);
  }
  return failed;
}

void Poller::reconcile(const std::vector<std::uint64_t>& failed) {
  for (auto& [inode, ns] : namespaces_.all()) {
    reconcile(*ns, contains(failed, inode) ? std::nullopt : opens_[inode]);
  }
}

// Destroy events can be lost (the kernel drops them when the listener's buffer is full),
// and then a connection that opened and closed between two polls leaves no trace but
// the kernel's own count of connections made. The difference between that count and
// the connections the tracker saw come is what no record reported. Compared one poll
// late (`opens` is from before this poll's dump; the estimate uses the previous poll's),
// so that every connection the kernel counted has had a dump and its destroy event
// time to arrive. Counted only in a namespace where events were lost: elsewhere a
// difference has other causes (a refused socket its application still holds, whose
// event comes at close(); a connect() retried on one socket; the kernel's own sockets,
// which send no events). Recomputed each poll, so such a transient comes back down.
void Poller::reconcile(Namespace& ns, std::optional<std::uint64_t> opens) {
  const std::uint64_t inode = ns.view.info().inode;
  const std::uint64_t seen = tracker_.new_connections(inode);
  if (!opens) {
    ns.opens_lagged.reset();  // start the lag again
    return;
  }
  if (!ns.opens_base) {
    // After the first dump: what it found is the baseline, not new.
    ns.opens_base = ns.view.tcp_opens();
    ns.seen_base = seen;
    return;
  }
  // TCP's source comes first: the kernel's count compared here is of TCP connections.
  const std::uint64_t overflows = ns.events.empty() ? 0 : ns.events.front()->counters().overflows;
  if (ns.opens_lagged && *ns.opens_lagged >= *ns.opens_base && overflows > 0) {
    const std::uint64_t made = *ns.opens_lagged - *ns.opens_base;
    const std::uint64_t saw = seen - ns.seen_base;
    const std::uint64_t missing = made > saw ? made - saw : 0;
    if (missing > ns.unreported) {
      spdlog::warn(
          "{} connection(s) in network namespace {} were never reported: the kernel made "
          "them and neither a poll nor a destroy event showed them (destroy event "
          "overflows: {}; a larger event_buffer helps)",
          missing - ns.unreported, inode, overflows);
    }
    ns.unreported = missing;
  }
  ns.opens_lagged = opens;
}

void Poller::end(std::uint64_t took_ms) {
  first_poll_ = false;
  ++counters_.polls;
  counters_.last_ms = took_ms;
}

std::uint64_t Poller::connections_unreported() const {
  std::uint64_t n = unreported_gone_;
  for (const auto& [inode, ns] : namespaces_.all()) {
    n += ns->unreported;
  }
  return n;
}

Poller::Counters Poller::counters() const {
  Counters c = counters_;
  c.dump_redos = dump_stats_.redos;
  return c;
}

}  // namespace sockstate::daemon

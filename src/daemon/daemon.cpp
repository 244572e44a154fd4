#include "sockstate/daemon/daemon.h"

#include <netinet/in.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>

#include "destroy_events.h"
#include "emitter.h"
#include "sockstate/collect/collector.h"
#include "sockstate/collect/host.h"
#include "sockstate/common/fd.h"
#include "sockstate/daemon/telemetry.h"
#include "sockstate/log/log.h"
#include "sockstate/metrics/server.h"
#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/events.h"
#include "sockstate/proc/namespaces.h"
#include "sockstate/proc/socket_owners.h"
#include "sockstate/sink/sink_set.h"
#include "sockstate/tracking/tracker.h"

namespace sockstate::daemon {
namespace {

using std::chrono::milliseconds;

std::int64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

Result<config::Config> load_run_config(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& overrides) {
  return config::load_config(path, overrides);
}

// One network namespace the daemon watches: its sockets, addresses and listeners, and
// its destroy listener (direction is decided per namespace).
struct Namespace {
  explicit Namespace(collect::NamespaceView v) : view(std::move(v)) {}
  collect::NamespaceView view;
  bool found = true;                   // found by the latest discovery
  bool dumped = false;                 // a dump of it has completed: new sockets are new
  std::uint64_t foreign_reported = 0;  // forged datagrams already logged
  // Connections the kernel made that no record reported (see reconcile()).
  std::optional<std::uint64_t> opens_base;    // the kernel's count after the first dump
  std::uint64_t seen_base = 0;                // the tracker's count then
  std::optional<std::uint64_t> opens_lagged;  // the kernel's count before the previous poll
  std::uint64_t unreported = 0;
  std::size_t sockets_dumped = 0;       // by its last complete dump (sizes the next one's set)
  std::unique_ptr<EventSource> events;  // its destroy events (destroy_events)
};

struct Daemon::State {
  ConfigLoader loader;
  config::Config config;
  ocsf::RecordContext context;
  sink::SinkSet sinks;
  Emitter emitter{sinks};
  std::map<std::uint64_t, std::unique_ptr<Namespace>> namespaces;  // by nsfs inode
  std::map<int, EventSource*> sources;  // every event source, by the fd the loop waits on
  EventCounters gone_events;            // the counters of sources now closed
  tracking::Tracker tracker;
  flow::NetworkSet internal;               // internal_networks
  std::vector<std::uint64_t> unreachable;  // namespaces discovered but not opened this poll
  std::unique_ptr<metrics::MetricsServer> metrics_server;  // metrics_listen
  // Each sink's state last logged (1 delivering or connected, 0 not, -1 not looked at
  // yet) and its counters then, by name: a reload that keeps a sink keeps its history.
  std::map<std::string, std::pair<int, sink::SinkStats>> sink_state;
  Fd signal_fd;
  Fd epoll_fd;
  bool ready = false;
  bool first_poll = true;
  bool paced_pending = false;  // baseline or Traffic records still owed this round (pace())
  std::int64_t paced_since = 0;
  static constexpr std::int64_t kPaceMs = 1;
  static constexpr std::size_t kRecordBytes = 2048;  // a record is 1.2 to 2.5 KiB
  bool resync = false;
  std::uint64_t polls = 0;
  std::uint64_t last_dump_ms = 0;
  // Polls dump with tcp_info only when records need it for many sockets (see plan_poll());
  // otherwise the few that need it are looked up one by one after the dump.
  bool poll_info = true;
  bool traffic_tick = false;       // this poll's round writes Traffic records
  std::int64_t last_tick_ms = -1;  // monotonic time of the last Traffic tick's poll
  bool both_families = true;       // the kernel answers one dump of IPv4 and IPv6
  bool events_held = false;        // destroy events wait: a sink's queue is half full
  bool hold_expired = false;       // held for half a poll interval: no more until it drains
  std::int64_t held_since = 0;
  std::uint64_t event_holds = 0;  // times they were held
  std::uint64_t info_polls = 0;
  std::uint64_t info_lookups = 0;
  std::uint64_t changes_before_poll = 0;  // tracker.changes() when the last poll began
  std::uint64_t namespace_errors = 0;     // namespaces that could not be opened or dumped
  std::uint64_t namespaces_opened = 0;
  std::uint64_t namespaces_closed = 0;
  std::uint64_t unreported_gone = 0;  // connections_unreported of namespaces now gone
  std::uint64_t gone_forged = 0;      // forged datagrams of namespaces now gone
  netlink::DumpStats dump_stats;

  State(ConfigLoader l, ocsf::RecordContext c)
      : loader(std::move(l)),
        context(std::move(c)),
        tracker([this](const flow::Observation& obs) { emitter.observe(obs); }, tracker_options()) {
  }

  tracking::TrackerOptions tracker_options() {
    tracking::TrackerOptions o;
    o.confirm_poll_closes = true;
    o.route_source = [this](std::uint64_t netns, const flow::Address& peer) {
      const auto ns = namespaces.find(netns);
      return ns == namespaces.end() ? std::nullopt : ns->second->view.route_source(peer);
    };
    return o;
  }

  // Makes the namespace's sockets: here, or inside it through a short-lived thread.
  Result<std::unique_ptr<Namespace>> open_namespace(const proc::NetnsInfo& info, bool here) {
    collect::ViewOptions options;
    options.watch_addresses = true;
    options.destroy_buffer = config.destroy_events ? config.event_buffer_bytes : 0;
    // Only a poll of every state sees every connection the kernel counts; without destroy
    // events, short connections are unseen by design (no loss to count).
    options.tcp_counters = config.states == netlink::kAllStates && config.destroy_events;
    auto view = here ? collect::NamespaceView::open_here(info, options)
                     : collect::NamespaceView::open_in(info, options);
    if (!view) {
      return view.error();
    }
    return std::make_unique<Namespace>(std::move(*view));
  }

  [[nodiscard]] bool watch(int fd) const {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  Result<void> add_source(EventSource& source) {
    if (!events_held && !watch(source.fd())) {  // held: watched when released
      return errno_error("cannot watch the " + source.describe());
    }
    sources[source.fd()] = &source;
    return {};
  }

  // Its last events read, then out of the loop's set; its counters are kept.
  void remove_source(EventSource& source) {
    (void)drain_source(source, true);
    sources.erase(source.fd());
    (void)::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, source.fd(), nullptr);
    const EventCounters c = source.counters();
    gone_events.events += c.events;
    gone_events.overflows += c.overflows;
  }

  Result<void> add_namespace(std::unique_ptr<Namespace> ns) {
    if (ns->view.destroy() != nullptr) {
      Namespace* raw = ns.get();
      ns->events = std::make_unique<DestroyEventSource>(
          ns->view, [this, raw] { return perimeter(*raw); }, config.event_buffer_bytes);
      if (auto added = add_source(*ns->events); !added) {
        return added.error();
      }
    }
    const std::uint64_t inode = ns->view.info().inode;
    namespaces[inode] = std::move(ns);
    ++namespaces_opened;
    return {};
  }

  void remove_namespace(std::uint64_t inode) {
    auto it = namespaces.find(inode);
    if (it == namespaces.end()) {
      return;
    }
    Namespace& ns = *it->second;
    if (ns.events) {
      remove_source(*ns.events);  // its last closes
    }
    gone_forged += ns.view.foreign();
    emitter.flush();  // its records name its container: before it goes
    spdlog::info("network namespace {} is gone", inode);
    unreported_gone += ns.unreported;
    tracker.forget_namespace(inode);
    namespaces.erase(it);
    ++namespaces_closed;
  }

  // --all-netns: the namespaces as they are now. A new one is opened (its sockets then
  // come as Listen and Open); one no process or /run/netns name holds any more is closed
  // after its last destroy events (its sockets then close by the next polls).
  Result<void> sync_namespaces() {
    unreachable.clear();
    auto found = proc::discover_netns();
    if (!found) {
      return found.error();
    }
    for (auto& [inode, ns] : namespaces) {
      ns->found = false;
    }
    for (const auto& info : *found) {
      auto it = namespaces.find(info.inode);
      if (it != namespaces.end()) {
        it->second->found = true;
        it->second->view.info().container = info.container;
        continue;
      }
      auto opened = open_namespace(info, false);
      if (!opened) {
        // It went away since discovery, or we may not enter it: the next poll tries again,
        // and meanwhile its sockets are kept as they were (no false Close).
        unreachable.push_back(info.inode);
        ++namespace_errors;
        spdlog::debug("network namespace {}: {}", info.inode, opened.error().message());
        continue;
      }
      if (auto added = add_namespace(std::move(*opened)); !added) {
        return added.error();
      }
    }
    std::vector<std::uint64_t> gone;
    for (const auto& [inode, ns] : namespaces) {
      if (!ns->found) {
        gone.push_back(inode);
      }
    }
    for (const auto inode : gone) {
      remove_namespace(inode);
    }
    return {};
  }

  // A sink a reload removed or changed gets this long to deliver what it holds, in the
  // background; SIGTERM gives live sinks the same.
  static constexpr milliseconds kDeliverWithin{5000};

  Result<void> start_sinks(const config::Config& c) {
    sinks.set_context(sink::SinkContext{context.host.device_uid});
    if (auto applied = sinks.apply(c.sinks, kDeliverWithin); !applied) {
      return applied.error();
    }
    return {};
  }

  // Sinks a reload retired that have now finished: one line each, with what they lost.
  void log_retired_sinks() {
    for (const auto& ended : sinks.reap()) {
      if (ended.left == 0) {
        spdlog::info("sink {}: retired by reload after delivering its queue", ended.name);
      } else {
        spdlog::warn(
            "sink {}: retired by reload; {} queued records could not be delivered "
            "in {} s (counted as dropped)",
            ended.name, ended.left, kDeliverWithin.count() / 1000);
      }
    }
  }

  [[nodiscard]] flow::Perimeter perimeter(const Namespace& ns) const {
    return flow::Perimeter{&ns.view.addresses(), &internal};
  }

  // Dumps one namespace's LISTEN sockets into its table, and into `listening` (tagged).
  Result<void> dump_listeners(Namespace& ns, std::vector<netlink::SocketEntry>& listening) {
    if (auto refreshed = ns.view.refresh_addresses(); !refreshed) {
      return refreshed.error();
    }
    return ns.view.dump_listeners(true, true, dump_stats,
                                  [&](const netlink::SocketEntry& e) { listening.push_back(e); });
  }

  // What a socket seen for the first time is. At the first poll it was there before we
  // looked: the baseline (or nothing, without one). In a namespace found later, its
  // sockets at its first dump were there before we looked too: they get the snapshot
  // records (the namespace appears, so its sockets are news; their start is unknown).
  [[nodiscard]] tracking::Tracker::FirstSight first_sight(const Namespace& ns) const {
    using FirstSight = tracking::Tracker::FirstSight;
    if (first_poll) {
      return config.baseline ? FirstSight::kBaseline : FirstSight::kSilent;
    }
    return ns.dumped ? FirstSight::kEvent : FirstSight::kBaseline;
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
  void plan_poll() {
    const std::int64_t now = monotonic_ms();
    const std::int64_t interval = config.traffic_interval.count();
    if (last_tick_ms < 0) {
      last_tick_ms = now;  // the baseline starts every connection's first period
    }
    traffic_tick =
        interval > 0 && now - last_tick_ms >= interval - config.poll_interval.count() / 2;
    if (traffic_tick) {
      last_tick_ms = now;
    }
    const std::uint64_t busy = std::max<std::uint64_t>(256, tracker.size() / 32);
    const std::uint64_t changes_last_poll = tracker.changes() - changes_before_poll;
    changes_before_poll = tracker.changes();
    // Without destroy events every Close comes from a poll, with the totals polls saw: all
    // of them ask for tcp_info, as before.
    poll_info = first_poll || traffic_tick || changes_last_poll > busy || !config.destroy_events;
    info_polls += poll_info ? 1 : 0;
  }

  // Sockets a dump without tcp_info found that need it now: fetched one by one, then fed.
  // Gone meanwhile (its destroy event tells the rest), or the lookup failed (one line a
  // poll): the dump's view of it, without tcp_info.
  void feed_looked_up(Namespace& ns, const std::vector<netlink::SocketEntry>& wanted,
                      const flow::Perimeter& p) {
    std::size_t failed = 0;
    std::string first_error;
    for (const netlink::SocketEntry& e : wanted) {
      ++info_lookups;
      auto found = ns.view.lookup(e, dump_stats);
      if (!found && failed++ == 0) {
        first_error = found.error().message();
      }
      tracker.poll_socket(found && *found ? **found : e, ns.view.listeners(), p);
    }
    if (failed > 0) {
      spdlog::warn(
          "tcp_info lookups of {} sockets failed in namespace {} ({}): their records "
          "carry what the dump saw",
          failed, ns.view.info().inode, first_error);
    }
  }

  // Dumps one namespace's other sockets into the tracker: both families in one walk of
  // the kernel's socket hash (a dump per family walks all of it twice; see
  // build_dump_request()), or one family at a time where the kernel refuses that.
  Result<void> dump_sockets(Namespace& ns) {
    const tracking::Tracker::FirstSight first = first_sight(ns);
    tracker.set_first_sight(first);
    DumpPass pass{ns, poll_info || first != tracking::Tracker::FirstSight::kEvent};
    pass.seen.reserve(ns.sockets_dumped + ns.sockets_dumped / 8);  // as its last, and some
    if (both_families) {
      auto done = dump_family(pass, AF_UNSPEC);
      if (done || !pass.drained || !refused(done.error().errnum)) {
        return finish_dump(pass, done);
      }
      both_families = false;  // the socket cookies seen so far are not delivered again
      spdlog::info("the kernel refuses one dump of both families ({}): one each",
                   done.error().message());
    }
    for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
      if (auto done = dump_family(pass, family); !done) {
        return finish_dump(pass, done);
      }
    }
    return finish_dump(pass, {});
  }

  static bool refused(int errnum) {
    return errnum == EINVAL || errnum == ENOENT || errnum == EOPNOTSUPP;
  }

  // What one namespace's dumps of a poll share.
  struct DumpPass {
    Namespace& ns;
    bool with_info;
    netlink::CookieSet seen{};
    std::vector<netlink::SocketEntry> wanted{};  // sockets needing the tcp_info not asked for
    std::size_t dumped = 0;
    std::size_t since_drain = 0;
    Result<void> drained{};
  };

  Result<void> dump_family(DumpPass& pass, std::uint8_t family) {
    // A dump of many sockets takes a while (0.7 s for 500,000): destroy events are read
    // during it, every kDrainEvery sockets, so that a close storm meanwhile does not
    // overflow their socket's buffer (measured: 100,000 closes/s during a 500,000-socket
    // poll overflowed it once, and 105,000 closes waited for polls).
    static constexpr std::size_t kDrainEvery = 2048;
    const std::uint32_t states = config.states & ~netlink::state_bit(netlink::kTcpListen);
    const flow::Perimeter p = perimeter(pass.ns);
    const netlink::DumpRequest request{family, states, pass.with_info, {}};
    auto done =
        pass.ns.view.dump(request, pass.seen, dump_stats, [&](const netlink::SocketEntry& e) {
          ++pass.dumped;
          if (!pass.with_info && tracker.wants_info(e)) {
            pass.wanted.push_back(e);
          } else {
            tracker.poll_socket(e, pass.ns.view.listeners(), p);
          }
          if (++pass.since_drain == kDrainEvery && pass.drained) {
            pass.since_drain = 0;
            pass.drained = drain_all();
          }
        });
    if (!done) {
      return done.error();
    }
    return pass.drained;
  }

  Result<void> finish_dump(DumpPass& pass, const Result<void>& done) {
    if (!done) {
      return done.error();
    }
    feed_looked_up(pass.ns, pass.wanted, perimeter(pass.ns));
    pass.ns.sockets_dumped = pass.dumped;
    return {};
  }

  // A dump failed. In our own namespace that ends the daemon; in another one, the namespace
  // is dropped after this poll (the next discovery opens it again) and its sockets are kept
  // as they were, so a failed dump reports no closes.
  Result<void> dump_failed(const Namespace& ns, const Error& error,
                           std::vector<std::uint64_t>& failed) {
    if (!config.all_netns) {
      return error;
    }
    ++namespace_errors;
    spdlog::warn("network namespace {}: {}", ns.view.info().inode, error.message());
    failed.push_back(ns.view.info().inode);
    return {};
  }

  // Every namespace's listeners, then (the tables complete) their sockets. Namespaces
  // whose dump failed go to `failed`; a failure in our own namespace is an Error.
  Result<void> dump_namespaces(std::vector<std::uint64_t>& failed) {
    const bool want_listen = (config.states & netlink::state_bit(netlink::kTcpListen)) != 0;
    auto is_failed = [&failed](std::uint64_t inode) {
      return std::find(failed.begin(), failed.end(), inode) != failed.end();
    };
    std::vector<netlink::SocketEntry> listening;
    for (auto& [inode, ns] : namespaces) {
      if (auto done = dump_listeners(*ns, listening); !done) {
        if (auto fatal = dump_failed(*ns, done.error(), failed); !fatal) {
          return fatal.error();
        }
      }
    }
    for (const auto& e : listening) {
      if (want_listen && !is_failed(e.netns)) {
        const Namespace& ns = *namespaces.at(e.netns);
        tracker.set_first_sight(first_sight(ns));
        tracker.poll_socket(e, ns.view.listeners(), perimeter(ns));
      }
    }
    for (auto& [inode, ns] : namespaces) {
      if (is_failed(inode)) {
        continue;
      }
      if (auto done = dump_sockets(*ns); !done) {
        if (auto fatal = dump_failed(*ns, done.error(), failed); !fatal) {
          return fatal.error();
        }
      }
    }
    for (auto& [inode, ns] : namespaces) {
      ns->dumped = ns->dumped || !is_failed(inode);
    }
    return {};
  }

  // One complete poll: LISTEN sockets first (they decide direction), then the rest, then
  // the owners of new sockets, then the destroy events that came meanwhile, then what
  // vanished. A namespace not dumped this poll keeps its sockets as they were.
  Result<void> poll() {
    const std::int64_t started = monotonic_ms();
    if (config.all_netns) {
      if (auto synced = sync_namespaces(); !synced) {
        return synced.error();
      }
    }
    std::map<std::uint64_t, std::optional<std::uint64_t>> opens;  // before the dumps
    for (auto& [inode, ns] : namespaces) {
      opens[inode] = ns->view.tcp_opens();
    }
    plan_poll();
    tracker.begin_poll(collect::realtime_ms(), tracking::Tracker::FirstSight::kEvent);
    std::vector<std::uint64_t> failed;
    if (auto dumped = dump_namespaces(failed); !dumped) {
      return dumped.error();
    }
    for (const auto inode : failed) {
      tracker.keep_namespace(inode);
    }
    for (const auto inode : unreachable) {
      tracker.keep_namespace(inode);
    }
    emitter.flush();
    if (auto drained = drain_all(); !drained) {
      return drained.error();
    }
    report_forged();
    tracker.end_poll();
    for (auto& [inode, ns] : namespaces) {
      const bool dumped = std::find(failed.begin(), failed.end(), inode) == failed.end();
      reconcile(*ns, dumped ? opens[inode] : std::nullopt);
    }
    for (const auto inode : failed) {
      remove_namespace(inode);
    }
    // Forget the owners of sockets whose last record is written, once they are an eighth
    // more than the sockets tracked: listing, sorting and looking up every tracked inode
    // took 8% of a 100,000-socket poll's CPU when done each poll.
    emitter.prune_owners(tracker.size(), [this] { return tracker.inodes(); });
    first_poll = false;
    ++polls;
    last_dump_ms = static_cast<std::uint64_t>(monotonic_ms() - started);
    return {};
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
  void reconcile(Namespace& ns, std::optional<std::uint64_t> opens) {
    const std::uint64_t inode = ns.view.info().inode;
    const std::uint64_t seen = tracker.new_connections(inode);
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
    const std::uint64_t overflows = ns.events ? ns.events->counters().overflows : 0;
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

  [[nodiscard]] std::uint64_t connections_unreported() const {
    std::uint64_t n = unreported_gone;
    for (const auto& [inode, ns] : namespaces) {
      n += ns->unreported;
    }
    return n;
  }

  Result<void> drain_all() {
    for (const auto& [fd, source] : sources) {
      if (auto drained = drain_source(*source); !drained) {
        return drained.error();
      }
    }
    return {};
  }

  // While a sink's queue is half full, destroy events wait in the kernel's buffer for
  // their socket (up to event_buffer_bytes, a few hundred bytes an event where a record is
  // 1.5 KiB) instead of becoming records the sink would drop: a close storm faster than a
  // sink writes is held back there, and if that buffer overflows too the kernel says so
  // and a dump resyncs (its Closes paced). Measured before: 2,261 of 500,000 records
  // dropped at a stdout sink's queue in a 100,000 closes/s storm. As with paced records, a
  // sink still half full after half a poll interval holds them back no longer (until it
  // has drained below half): one stalled sink must not delay the others' records.
  void steer_events(std::int64_t now) {
    if (sinks.room_to_half(kRecordBytes) > 0) {
      hold_expired = false;
      hold_events(false);
    } else if (!events_held && !hold_expired) {
      held_since = now;
      hold_events(true);
    } else if (events_held && now - held_since >= config.poll_interval.count() / 2) {
      hold_expired = true;
      hold_events(false);
    }
  }

  void hold_events(bool hold) {
    if (hold == events_held) {
      return;
    }
    events_held = hold;
    event_holds += hold ? 1 : 0;
    // Out of the epoll set while held, not merely asked for no events: epoll reports
    // EPOLLERR whatever is asked, and a destroy socket that overflowed has its error set.
    for (const auto& [fd, source] : sources) {
      if (hold) {
        (void)::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, fd, nullptr);
      } else {
        (void)watch(fd);
      }
    }
  }

  // At stop: the destroy events still in the kernel's buffers (held back, or arrived since
  // the last look) become records for the sinks, which take what they can before their
  // deadline; what they cannot is dropped and counted. A drain reads a bounded number of
  // datagrams, so it is repeated until one reads nothing (at most 1,000 times).
  void drain_held() {
    hold_events(false);
    hold_expired = true;  // no budget: every event is read, whatever the sinks' room
    for (int pass = 0; pass < 1000; ++pass) {
      const std::uint64_t before = destroy_counts().events;
      if (!drain_all() || destroy_counts().events == before) {
        return;
      }
    }
  }

  // Reads a source, at most what every sink takes before half full (a record an event, at
  // most): the rest waits in the kernel's buffer (see steer_events()).
  Result<void> drain_source(EventSource& source, bool even_if_held = false) {
    if (events_held && !even_if_held) {
      return {};
    }
    const std::size_t budget =
        hold_expired || even_if_held ? SIZE_MAX : sinks.room_to_half(kRecordBytes);
    if (budget == 0) {
      return {};
    }
    auto drained = source.drain(tracker, budget);
    if (!drained) {
      return drained.error();
    }
    if (drained->lost) {
      // Events were lost: a dump now finds what closed (its Close comes from the poll).
      spdlog::warn("{} lost (receive buffer overflow {}): resyncing with a dump", source.describe(),
                   source.counters().overflows);
      resync = true;
    }
    return {};
  }

  // Datagrams another process sent to our netlink sockets: at most one line a poll, however
  // many a sender forges.
  void report_forged() {
    for (auto& [inode, ns] : namespaces) {
      if (const std::uint64_t foreign = ns->view.foreign(); foreign != ns->foreign_reported) {
        spdlog::warn("discarded {} netlink datagrams not sent by the kernel in namespace {}",
                     foreign - ns->foreign_reported, inode);
        ns->foreign_reported = foreign;
      }
    }
  }

  struct DestroyCounts {
    std::uint64_t events = 0;
    std::uint64_t overflows = 0;
    std::uint64_t forged = 0;
  };

  // Totals since start: what closed sources and namespaces counted stays counted.
  [[nodiscard]] DestroyCounts destroy_counts() const {
    DestroyCounts c{gone_events.events, gone_events.overflows, gone_forged};
    for (const auto& [fd, source] : sources) {
      const EventCounters e = source->counters();
      c.events += e.events;
      c.overflows += e.overflows;
    }
    for (const auto& [inode, ns] : namespaces) {
      c.forged += ns->view.foreign();
    }
    return c;
  }

  // Every part's counters at one moment, for the stats line, the metrics and STATUS=.
  [[nodiscard]] Readings read() const {
    const auto t = tracker.stats();
    const DestroyCounts d = destroy_counts();
    Readings r;
    r.tracked = t.tracked;
    r.records = emitter.records();
    r.polls = polls;
    r.poll_ms = last_dump_ms;
    r.destroy_events = d.events;
    r.overflows = d.overflows;
    r.closes_by_destroy = t.closed_by_destroy;
    r.closes_by_poll = t.closed_by_poll;
    r.awaiting_destroy = t.awaiting_destroy;
    r.dump_redos = dump_stats.redos;
    r.forged_datagrams = d.forged;
    r.namespaces = namespaces.size();
    r.namespace_errors = namespace_errors;
    r.owner_walks = emitter.owner_walks();
    r.pids_unreadable = emitter.owner_errors();
    r.connections_unreported = connections_unreported();
    r.log_lines_dropped = log::dropped_lines();
    r.info_polls = info_polls;
    r.info_lookups = info_lookups;
    r.event_holds = event_holds;
    r.by_activity = emitter.by_activity();
    r.sinks = sinks.views();
    r.sink_totals = sinks.totals();
    return r;
  }

  void log_stats() { spdlog::info("{}", stats_line(read())); }

  // A sink going down or coming back: one line per transition, with what the last failure
  // said (errno included), never one per retry or per dropped record. A socket sink is up
  // while connected; another sink is down while its writes fail (a full disk, journald
  // gone) and up again once one succeeds.
  void log_sink_transitions() {
    for (const auto& [name, reason] : sinks.take_failure_kinds()) {
      spdlog::warn("sink {}: records dropped: {} (logged once for each kind; every one is counted)",
                   name, reason);
    }
    std::map<std::string, sink::SinkStats> counts;  // by name, across reloads
    for (const auto& v : sinks.views()) {
      counts[v.name] = v.stats;
    }
    for (std::size_t i = 0; i < sinks.size(); ++i) {
      const sink::Sink& s = sinks.at(i);
      const sink::SinkStats now = counts[s.name()];
      auto [it, fresh] = sink_state.try_emplace(s.name(), -1, now);
      auto& [before, seen] = it->second;
      int up = before;
      if (now.connected >= 0) {
        up = now.connected;
      } else if (now.errors != seen.errors) {
        up = 0;
      } else if (now.written != seen.written || before < 0) {
        up = 1;
      }
      const bool socket = now.connected >= 0;
      const bool quiet = up == before || (before < 0 && up == 1 && !socket);
      before = up;
      seen = now;
      if (quiet) {
        continue;  // no change, or a file sink's first look: working, as expected
      }
      if (up == 1) {
        spdlog::info("sink {}: {}", s.name(), socket ? "connected" : "delivering again");
      } else if (socket) {
        spdlog::warn("sink {}: not connected: {} (records wait in its queue)", s.name(),
                     s.last_error());
      } else {
        spdlog::warn("sink {}: failing: {} (records are dropped and counted)", s.name(),
                     s.last_error());
      }
    }
  }

  // Everything `run` needs before its first poll; an Error says what failed.
  Result<void> start() {
    // log_name, device type, process, all_netns, community_id_seed and observables are
    // fixed for the life of the process: metadata.sequence must not restart.
    context.log_name = config.log_name;
    context.device_type_id = config.device_type_id;
    context.community_id_seed = config.community_id_seed;
    context.observables = config.observables;
    internal = flow::NetworkSet(config.internal_networks);
    // Without destroy events nothing is worth waiting for: a poll that misses a socket
    // twice reports it.
    tracker.set_confirm_poll_closes(config.destroy_events);
    if (auto signals = watch_signals(); !signals) {
      return signals.error();
    }
    if (auto opened = open_namespaces(); !opened) {
      return opened.error();
    }
    auto container_of = [this](std::uint64_t netns) -> const proc::Container* {
      const auto ns = namespaces.find(netns);
      if (ns == namespaces.end()) {
        return nullptr;
      }
      const auto& c = ns->second->view.info().container;
      return c ? &*c : nullptr;
    };
    if (auto started = emitter.start(context, config.process, container_of); !started) {
      return started.error();
    }
    if (!config.metrics_listen.empty()) {
      auto server = metrics::MetricsServer::start(config.metrics_listen);
      if (!server) {
        return server.error();
      }
      metrics_server = std::move(*server);
    }
    return start_sinks(config);
  }

  Result<void> watch_signals() {
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
      sigaddset(&mask, sig);
    }
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal_fd.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!signal_fd.valid() || !epoll_fd.valid() || !watch(signal_fd.get())) {
      return errno_error("cannot set up signals and epoll");
    }
    return {};
  }

  Result<void> open_namespaces() {
    if (config.all_netns) {
      if (auto synced = sync_namespaces(); !synced) {
        return synced.error();
      }
      if (namespaces.empty()) {
        return Error{0, "all_netns: no network namespace could be entered (CAP_SYS_ADMIN needed)"};
      }
      return {};
    }
    proc::NetnsInfo own;
    own.inode = context.netns_inode;
    auto opened = open_namespace(own, true);
    if (!opened) {
      return opened.error();
    }
    return add_namespace(std::move(*opened));
  }

  // When each periodic duty is next due (monotonic ms).
  struct Timers {
    std::int64_t poll = 0;
    std::int64_t stats = 0;
    std::int64_t watchdog = 0;
    std::int64_t status = 0;
    std::int64_t watchdog_every = 0;  // 0: no watchdog
  };

  // Traffic records for a whole table would come at once (100,000 connections: 100,000
  // records) and overflow the sinks' queues. They go out in chunks while the sinks have
  // room, between the loop's other duties; a sink still full after half a poll interval
  // (or when the next poll comes) holds them back no longer (what it cannot take is
  // dropped and counted, as any record).
  void pace(bool all_now = false) {
    static constexpr std::size_t kChunk = 1024;
    while (paced_pending) {
      const bool overdue =
          all_now || monotonic_ms() - paced_since >= config.poll_interval.count() / 2;
      const std::size_t chunk = overdue ? SIZE_MAX : std::min(kChunk, sinks.room(kRecordBytes));
      if (chunk == 0) {
        return;  // the loop comes back in kPaceMs
      }
      // At a tick, a connection whose period began at least half an interval ago: one
      // seen first just before it waits for the next (its period 0.5 to 1.5 intervals), and
      // the others' periods are the interval, whatever the polls' jitter.
      const std::int64_t due = traffic_tick ? config.traffic_interval.count() / 2 : 0;
      tracker.report_paced(collect::realtime_ms(), due, chunk);
      emitter.flush();
      paced_pending = !tracker.round_done();
    }
  }

  // One poll and what follows it: Traffic records, READY=1 once, STATUS= now and then.
  Result<void> poll_and_report(Timers& t) {
    resync = false;
    if (paced_pending) {
      pace(true);  // what the last round still owes, as of its poll, before the next poll
    }
    if (auto polled = poll(); !polled) {
      return polled.error();
    }
    tracker.begin_round();
    paced_pending = true;
    paced_since = monotonic_ms();
    pace();
    log_sink_transitions();
    log_retired_sinks();
    if (metrics_server) {
      metrics_server->publish(metrics_text(read()));
    }
    if (!ready) {
      ready = true;  // the first good dump is done and every sink is open
      (void)::sd_notify(0, "READY=1");
    }
    const std::int64_t now = monotonic_ms();
    if (now >= t.status) {
      // systemd shows the latest; every poll would be chatter.
      (void)::sd_notifyf(0, "STATUS=%s", status_text(read()).c_str());
      t.status = now + 5000;
    }
    t.poll = now + config.poll_interval.count();
    return {};
  }

  // Runs until a stopping signal (0) or a netlink failure (1).
  int loop() {
    Timers t;
    std::uint64_t watchdog_usec = 0;
    if (::sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
      t.watchdog_every = static_cast<std::int64_t>(watchdog_usec / 2000);
    }
    std::int64_t now = monotonic_ms();
    t.poll = now;
    t.stats = now + config.stats_interval.count();
    t.watchdog = now;
    t.status = now;
    for (;;) {
      now = monotonic_ms();
      if (now >= t.poll || resync) {
        if (auto done = poll_and_report(t); !done) {
          spdlog::error("{}", done.error().message());
          return 1;
        }
        now = monotonic_ms();
      }
      if (config.stats_interval.count() > 0 && now >= t.stats) {
        log_stats();
        t.stats = now + config.stats_interval.count();
      }
      if (t.watchdog_every > 0 && now >= t.watchdog) {
        (void)::sd_notify(0, "WATCHDOG=1");
        t.watchdog = now + t.watchdog_every;
      }
      pace();
      steer_events(now);
      const auto stop = wait_and_handle(t, now);
      emitter.flush();  // records that waited behind a walk, never inside a drain
      if (stop) {
        return *stop;
      }
    }
  }

  // Waits for a descriptor or the next duty; handles what is ready. An exit status when
  // the daemon must stop.
  std::optional<int> wait_and_handle(const Timers& t, std::int64_t now) {
    std::int64_t deadline = t.poll;
    if (config.stats_interval.count() > 0) {
      deadline = std::min(deadline, t.stats);
    }
    if (t.watchdog_every > 0) {
      deadline = std::min(deadline, t.watchdog);
    }
    if (paced_pending || events_held) {
      deadline = std::min(deadline, now + kPaceMs);  // look at the sinks again soon
    }
    std::array<epoll_event, 4> events{};
    const int timeout = static_cast<int>(std::max<std::int64_t>(0, deadline - now));
    const int n =
        ::epoll_wait(epoll_fd.get(), events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) {
      spdlog::error("{}", errno_error("epoll_wait").message());
      return 1;
    }
    std::optional<int> stop;
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (const auto source = sources.find(fd); source != sources.end()) {
        if (auto drained = drain_source(*source->second); !drained) {
          spdlog::error("{}", drained.error().message());
          stop = 1;
        }
      } else if (fd == signal_fd.get() && handle_signals()) {
        stop = stop.value_or(0);
      }
    }
    return stop;
  }

  // Reads the pending signals: true when one says stop.
  bool handle_signals() {
    bool stop = false;
    signalfd_siginfo info{};
    while (::read(signal_fd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      if (info.ssi_signo == SIGHUP) {
        (void)::sd_notify(0, "RELOADING=1");
        reload();
        (void)::sd_notify(0, "READY=1");
      } else {
        spdlog::info("signal {}: stopping", info.ssi_signo == SIGTERM ? "TERM" : "INT");
        stop = true;
      }
    }
    return stop;
  }

  void reload() {
    sinks.reopen();
    auto fresh = loader();
    if (!fresh) {
      spdlog::error("reload refused, keeping the running configuration: {}",
                    fresh.error().message());
      return;
    }
    if (fresh->sinks != config.sinks) {
      if (auto started = start_sinks(*fresh); !started) {
        spdlog::error("reload refused, keeping the running configuration: {}",
                      started.error().message());
        return;
      }
    }
    if (fresh->process != config.process || fresh->all_netns != config.all_netns ||
        fresh->community_id_seed != config.community_id_seed) {
      spdlog::warn("process, all_netns and community_id_seed apply at the next start");
      fresh->process = config.process;
      fresh->all_netns = config.all_netns;
      fresh->community_id_seed = config.community_id_seed;
    }
    if (fresh->observables != config.observables || fresh->states != config.states ||
        fresh->destroy_events != config.destroy_events ||
        fresh->metrics_listen != config.metrics_listen) {
      // Fewer states would make live sockets look gone; destroy events are per namespace.
      spdlog::warn(
          "observables, states, destroy_events and metrics_listen apply at the next start");
      fresh->observables = config.observables;
      fresh->states = config.states;
      fresh->destroy_events = config.destroy_events;
      fresh->metrics_listen = config.metrics_listen;
    }
    config = std::move(*fresh);
    internal = flow::NetworkSet(config.internal_networks);
    spdlog::set_level(spdlog::level::from_str(config.log_level));
    spdlog::info("configuration reloaded: {}", config::describe(config));
  }
};

Daemon::Daemon(ConfigLoader loader, ocsf::RecordContext context)
    : s_(std::make_unique<State>(std::move(loader), std::move(context))) {}

Daemon::~Daemon() = default;

int Daemon::run() {
  State& s = *s_;
  auto loaded = s.loader();
  if (!loaded) {
    spdlog::error("{}", loaded.error().message());
    return 2;
  }
  s.config = std::move(*loaded);
  spdlog::set_level(spdlog::level::from_str(s.config.log_level));
  if (auto started = s.start(); !started) {
    spdlog::error("{}", started.error().message());
    return 1;
  }
  spdlog::info("sockstate run: {}", config::describe(s.config));
  const int status = s.loop();
  (void)::sd_notify(0, "STOPPING=1");
  s.drain_held();
  if (s.paced_pending) {
    s.pace(true);  // owed records (a baseline still being paced) go to the sinks' queues
  }
  s.emitter.flush();
  s.log_retired_sinks();
  s.sinks.stop(State::kDeliverWithin);
  s.log_stats();
  return status;
}

}  // namespace sockstate::daemon

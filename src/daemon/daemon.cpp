#include "sockstate/daemon/daemon.h"

#include <poll.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <map>
#include <optional>

#include "emitter.h"
#include "kernel_source.h"
#include "namespace_set.h"
#include "poller.h"
#include "sockstate/collect/host.h"
#include "sockstate/common/fd.h"
#include "sockstate/daemon/telemetry.h"
#include "sockstate/log/log.h"
#include "sockstate/metrics/server.h"
#include "sockstate/sink/sink_set.h"
#include "sockstate/tracking/tracker.h"

namespace sockstate::daemon {
namespace {

using std::chrono::milliseconds;

}  // namespace

Result<config::Config> load_run_config(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& overrides) {
  return config::load_config(path, overrides);
}

struct Daemon::State {
  ConfigLoader loader;
  config::Config config;
  ocsf::RecordContext context;
  sink::SinkSet sinks;
  Emitter emitter{sinks};
  NamespaceSet namespaces{config};
  // The kernel's own events, where the kernel-event source loads (config `bpf`).
  std::optional<history::SocketHistory> history;
  std::unique_ptr<KernelEventSource> kernel_source;
  tracking::Tracker tracker;
  Poller poller{config, namespaces, tracker};
  std::map<int, EventSource*> sources;     // every event source that writes records, by its fd
  std::map<int, EventSource*> annotators;  // the others (EventSource::writes_records()), by fd
  EventCounters gone_events;               // the counters of sources now closed
  std::unique_ptr<metrics::MetricsServer> metrics_server;  // metrics_listen
  // Each sink's state last logged (1 delivering or connected, 0 not, -1 not looked at
  // yet) and its counters then, by name: a reload that keeps a sink keeps its history.
  std::map<std::string, std::pair<int, sink::SinkStats>> sink_state;
  Fd signal_fd;
  Fd epoll_fd;
  bool ready = false;
  static constexpr std::int64_t kPaceMs = 1;
  bool resync = false;
  bool events_held = false;   // event sources wait: a sink's queue is half full
  bool hold_expired = false;  // held for half a poll interval: no more until it drains
  std::int64_t held_since = 0;
  std::uint64_t event_holds = 0;  // times they were held
  // After a pass that read a record-writing source, its sources rest out of the epoll set
  // for kEventBatchMs: a churn of a few thousand destroy events a second then costs one
  // wakeup (a drain, a sink write) per 20 ms, not one per event (README: record latency).
  static constexpr std::int64_t kEventBatchMs = 20;
  std::int64_t rest_until = 0;  // monotonic ms; 0: not resting
  bool watching = true;         // the record-writing sources are in the epoll set

  State(ConfigLoader l, ocsf::RecordContext c)
      : loader(std::move(l)),
        context(std::move(c)),
        tracker([this](const flow::Observation& obs) { emitter.observe(obs); }, tracker_options()) {
  }

  tracking::TrackerOptions tracker_options() {
    tracking::TrackerOptions o;
    o.confirm_poll_closes = true;
    o.route_source = [this](std::uint64_t netns, const flow::Address& peer) {
      return namespaces.route_source(netns, peer);
    };
    o.kernel_facts = [this](std::uint64_t cookie) { return kernel_facts(cookie); };
    o.destroy_read = [this](std::uint64_t cookie) {
      if (history) {
        history->destroyed(cookie);
      }
    };
    return o;
  }

  // What the kernel's events said of a socket. One whose end they have not shown yet
  // (its destroy event was read after the ring buffer was): they are read now, since the
  // kernel wrote its transitions before it sent that destroy event.
  const flow::KernelFacts* kernel_facts(std::uint64_t cookie) {
    if (!history) {
      return nullptr;
    }
    const flow::KernelFacts* facts = history->facts(cookie);
    if (facts == nullptr || !facts->ended) {
      if (auto read = read_events(*kernel_source, SIZE_MAX); !read) {
        spdlog::warn("{}: {}", kernel_source->describe(), read.error().message());
      }
      facts = history->facts(cookie);
    }
    return facts;
  }

  [[nodiscard]] bool watch(int fd) const {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  Result<void> add_source(EventSource& source) {
    const bool held = !watching && source.writes_records();
    if (!held && !watch(source.fd())) {  // held or resting: watched when released
      return errno_error("cannot watch the " + source.describe());
    }
    (source.writes_records() ? sources : annotators)[source.fd()] = &source;
    return {};
  }

  // Its last events read, then out of the loop's set; its counters are kept.
  void remove_source(EventSource& source) {
    if (auto drained = drain_source(source, true); !drained) {
      // Its last events are lost with it; the next polls close what they no longer find.
      spdlog::warn("{}: last events not read: {}", source.describe(), drained.error().message());
    }
    sources.erase(source.fd());
    (void)::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, source.fd(), nullptr);
    const EventCounters c = source.counters();
    gone_events.events += c.events;
    gone_events.overflows += c.overflows;
    gone_events.dropped += c.dropped;
  }

  // A namespace opened: its event source joins the loop's.
  Result<void> added(const std::vector<Namespace*>& opened) {
    for (Namespace* ns : opened) {
      for (const auto& source : ns->events) {
        if (auto watched = add_source(*source); !watched) {
          return watched.error();
        }
      }
    }
    return {};
  }

  // A namespace gone: its last destroy events, the records that wait, then its sockets
  // are forgotten (they close by the next polls where still open).
  void remove_namespace(std::uint64_t inode) {
    Namespace* ns = namespaces.find(inode);
    if (ns == nullptr) {
      return;
    }
    for (const auto& source : ns->events) {
      remove_source(*source);  // its last closes
    }
    for (const std::uint8_t protocol : config.protocols) {
      // Its sockets are kept (a failed dump); until it is opened again, no event of theirs
      // comes: the polls close them.
      tracker.destroy_events_lost(inode, protocol);
    }
    tracker.flush_summaries(collect::realtime_ms(), true);  // they may name its container too
    emitter.flush();  // its records name its container: before it goes
    spdlog::info("network namespace {} is gone", inode);
    poller.forget(*ns);
    tracker.forget_namespace(inode);
    namespaces.erase(inode);
  }

  // --all-netns: the namespaces as they are now (NamespaceSet::sync()).
  Result<void> sync_namespaces() {
    auto changes = namespaces.sync();
    if (!changes) {
      return changes.error();
    }
    if (auto watched = added(changes->opened); !watched) {
      return watched.error();
    }
    for (const auto inode : changes->gone) {
      remove_namespace(inode);
    }
    return {};
  }

  // A sink a reload removed or changed gets this long to deliver what it holds, in the
  // background; SIGTERM gives live sinks the same.
  static constexpr milliseconds kDeliverWithin{5000};

  Result<void> start_sinks(const config::Config& c) {
    sinks.set_context(sink::SinkContext{context.host.device_uid});
    sinks.set_patience(c.poll_interval / 2);  // a sink that has not kept up this long: left out
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

  // One complete poll: LISTEN sockets first (they decide direction), then the rest, then
  // the owners of new sockets, then the events that came meanwhile, then what vanished.
  // A namespace not dumped this poll keeps its sockets as they were.
  Result<void> poll() {
    const std::int64_t started = collect::monotonic_ms();
    if (config.all_netns) {
      if (auto synced = sync_namespaces(); !synced) {
        return synced.error();
      }
    }
    poller.begin();
    tracker.begin_poll(collect::realtime_ms(), tracking::Tracker::FirstSight::kEvent);
    auto failed = poller.dump([this] { return drain_all(); });
    if (!failed) {
      return failed.error();
    }
    for (const auto inode : *failed) {
      tracker.keep_namespace(inode);
    }
    for (const auto inode : namespaces.unreachable()) {
      tracker.keep_namespace(inode);
    }
    emitter.flush();
    if (auto drained = drain_all(); !drained) {
      return drained.error();
    }
    report_forged();
    tracker.end_poll();
    if (history) {
      if (caught_up()) {
        history->caught_up();
      }
      history->end_poll([this](std::uint64_t cookie) { return tracker.tracks(cookie); });
    }
    poller.reconcile(*failed);
    for (const auto inode : *failed) {
      remove_namespace(inode);
    }
    emitter.prune_owners(tracker.size(), [this] { return tracker.inodes(); });
    poller.end(static_cast<std::uint64_t>(collect::monotonic_ms() - started));
    return {};
  }

  // No event waits in any source's buffer: every event the kernel sent so far was read.
  [[nodiscard]] bool caught_up() const {
    if (events_held) {
      return false;
    }
    std::vector<pollfd> fds;
    fds.reserve(sources.size());
    for (const auto& [fd, source] : sources) {
      fds.push_back(pollfd{fd, POLLIN, 0});
    }
    return ::poll(fds.data(), fds.size(), 0) == 0;
  }

  Result<void> drain_all() {
    if (auto read = drain_annotators(); !read) {
      return read.error();
    }
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
  // sink that has not kept up for half a poll interval is left out (SinkSet::watch), so one
  // stalled sink never delays the others' records; when none keeps up that long, the events
  // are held back no longer (until a sink has drained below half).
  void steer_events(std::int64_t now) {
    if (rest_until != 0 && now >= rest_until) {
      rest_until = 0;
      update_watching();
    }
    if (emitter.room_to_half() > 0) {
      hold_expired = false;
      hold_events(false);
    } else if (!events_held && !hold_expired) {
      held_since = now;
      hold_events(true);
    } else if (events_held && now - held_since >= config.poll_interval.count() / 2 &&
               !emitter.sinks_keep_up()) {
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
    update_watching();
  }

  // A pass read a record-writing source: they rest (steer_events() ends it).
  void rest(std::int64_t now) {
    rest_until = now + kEventBatchMs;
    update_watching();
  }

  // The record-writing sources are in the epoll set unless held or resting. Out of the set,
  // not merely asked for no events: epoll reports EPOLLERR whatever is asked, and a
  // destroy socket that overflowed has its error set.
  void update_watching() {
    const bool want = !events_held && rest_until == 0;
    if (want == watching) {
      return;
    }
    watching = want;
    for (const auto& [fd, source] : sources) {
      if (!want) {
        (void)::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, fd, nullptr);
      } else {
        if (!watch(fd)) {
          // Not silently: its events are then read only when a poll drains every source.
          spdlog::warn("{}", errno_error("cannot watch " + source->describe() +
                                         " again (read at polls only)")
                                 .message());
        }
      }
    }
  }

  // At stop, what waits (destroy events in the kernel's buffers, records a round still
  // owes) goes to the sinks at the pace of those that keep up, as in the loop, for up to
  // kDeliverWithin: a close storm at SIGTERM does not overflow a healthy sink's queue.
  // When no sink keeps up there is nothing to wait for; drain_held() then takes the rest.
  void finish_at_pace() {
    hold_events(false);
    rest_until = 0;
    update_watching();
    hold_expired = false;
    const std::int64_t deadline = collect::monotonic_ms() + kDeliverWithin.count();
    while (collect::monotonic_ms() < deadline) {
      emitter.pace();
      if (!emitter.sinks_keep_up()) {
        return;
      }
      const std::uint64_t before = destroy_counts().events;
      const bool room = emitter.room_to_half() > 0;
      if (room && !drain_all()) {
        return;  // drain_held() says why
      }
      emitter.flush();
      if (room && destroy_counts().events == before && !emitter.round_pending()) {
        return;  // nothing waits
      }
      std::this_thread::sleep_for(milliseconds(1));  // the sinks write meanwhile
    }
  }

  // At stop, after finish_at_pace(): the destroy events still in the kernel's buffers
  // become records for the sinks, which take what they can before their deadline; what
  // they cannot is dropped and counted. A drain reads a bounded number of datagrams, so it
  // is repeated until one reads nothing (at most 1,000 times).
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
    if (!source.writes_records()) {
      return read_events(source, SIZE_MAX);
    }
    if (events_held && !even_if_held) {
      return {};
    }
    // What the annotators say of a socket comes before its destroy event: read first.
    if (auto read = drain_annotators(); !read) {
      return read.error();
    }
    const std::size_t budget = hold_expired || even_if_held ? SIZE_MAX : emitter.room_to_half();
    if (budget == 0) {
      return {};
    }
    return read_events(source, budget);
  }

  Result<void> drain_annotators() {
    for (const auto& [fd, source] : annotators) {
      if (auto read = read_events(*source, SIZE_MAX); !read) {
        return read.error();
      }
    }
    return {};
  }

  Result<void> read_events(EventSource& source, std::size_t budget) {
    auto drained = source.drain(tracker, budget);
    if (!drained) {
      return drained.error();
    }
    if (drained->lost) {
      // Events were lost: a dump now finds what closed (its Close comes from the poll).
      spdlog::warn("{}: events lost (overflow {}): resyncing with a dump", source.describe(),
                   source.counters().overflows);
      resync = true;
    }
    return {};
  }

  // Datagrams another process sent to our netlink sockets: at most one line a poll, however
  // many a sender forges.
  void report_forged() {
    for (auto& [inode, ns] : namespaces.all()) {
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
    std::uint64_t dropped = 0;
  };

  // Totals since start: what closed sources and namespaces counted stays counted.
  [[nodiscard]] DestroyCounts destroy_counts() const {
    DestroyCounts c{gone_events.events, gone_events.overflows, namespaces.forged_gone(),
                    gone_events.dropped};
    for (const auto& [fd, source] : sources) {
      const EventCounters e = source->counters();
      c.events += e.events;
      c.overflows += e.overflows;
      c.dropped += e.dropped;
    }
    for (const auto& [inode, ns] : namespaces.all()) {
      c.forged += ns->view.foreign();
    }
    return c;
  }

  // Every part's counters at one moment, for the stats line, the metrics and STATUS=.
  [[nodiscard]] Readings read() const {
    const auto t = tracker.stats();
    const DestroyCounts d = destroy_counts();
    const Poller::Counters p = poller.counters();
    Readings r;
    r.tracked = t.tracked;
    r.records = emitter.records();
    r.polls = p.polls;
    r.poll_ms = p.last_ms;
    r.destroy_events = d.events;
    r.overflows = d.overflows;
    r.destroy_events_dropped = d.dropped;
    r.short_lived_summarised = t.short_lived_summarised;
    r.summary_records = t.summary_records;
    r.closes_by_destroy = t.closed_by_destroy;
    r.bound_closes = t.unused_destroys;
    r.duplicate_destroys = t.duplicate_destroys;
    r.closes_by_poll = t.closed_by_poll;
    r.awaiting_destroy = t.awaiting_destroy;
    r.dump_redos = p.dump_redos;
    r.forged_datagrams = d.forged;
    r.namespaces = namespaces.size();
    r.namespace_errors = namespaces.open_errors() + p.dump_errors;
    r.owner_walks = emitter.owner_walks();
    r.pids_unreadable = emitter.owner_errors();
    r.connections_unreported = poller.connections_unreported();
    r.log_lines_dropped = log::dropped_lines();
    r.info_polls = p.info_polls;
    r.info_lookups = p.info_lookups;
    r.event_holds = event_holds;
    r.metrics_cut = metrics_server ? metrics_server->connections_cut() : 0;
    r.kernel_events = kernel_source ? 1 : 0;
    if (kernel_source) {
      const auto h = history->stats();
      r.bpf_events = kernel_source->counters().events;
      r.bpf_events_lost = kernel_source->lost();
      r.bpf_owners = h.owners;
    }
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
    for (const auto& [name, text] : sinks.take_notices()) {
      spdlog::warn("sink {}: {}", name, text);
    }
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
    context.ocsf_version = config.ocsf_version;
    namespaces.set_internal(flow::NetworkSet(config.internal_networks));
    // Without destroy events nothing is worth waiting for: a poll that misses a socket
    // twice reports it.
    tracker.set_confirm_poll_closes(config.destroy_events);
    tracker.set_short_lived_per_second(config.short_lived_per_second);
    if (auto signals = watch_signals(); !signals) {
      return signals.error();
    }
    // Before the first dump and the /proc walk: nothing falls between them.
    if (auto kernel = open_kernel_events(); !kernel) {
      return kernel.error();
    }
    auto opened = namespaces.open_initial(context.netns_inode);
    if (!opened) {
      return opened.error();
    }
    if (auto watched = added(*opened); !watched) {
      return watched.error();
    }
    auto container_of = [this](std::uint64_t netns) { return namespaces.container_of(netns); };
    if (auto started = emitter.start(context, config.process, container_of,
                                     history ? &*history : nullptr, owner_walk(config.bpf));
        !started) {
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

  static collect::OwnerWalk owner_walk(config::BpfMode mode) {
    switch (mode) {
      case config::BpfMode::kOn:
        return collect::OwnerWalk::kBpf;
      case config::BpfMode::kOff:
        return collect::OwnerWalk::kProc;
      case config::BpfMode::kAuto:
        break;
    }
    return collect::OwnerWalk::kAuto;
  }

  // The kernel-event source as `bpf` says: where it loads ("auto": else one line saying
  // why, and sock_diag alone as before), required ("on": else the daemon does not start),
  // or not at all.
  Result<void> open_kernel_events() {
    if (config.bpf == config::BpfMode::kOff) {
      spdlog::info("kernel-event source: off (bpf \"off\"); owners from /proc walks");
      return {};
    }
    auto opened = bpf::KernelEvents::open(bpf::KernelEventsOptions{config.bpf_ring_bytes});
    if (!opened) {
      if (config.bpf == config::BpfMode::kOn) {
        return Error{opened.error().errnum,
                     "kernel-event source (bpf \"on\"): " + opened.error().message()};
      }
      spdlog::info(
          "kernel-event source not used: {}; sock_diag alone (owners from /proc walks, "
          "times from polls)",
          opened.error().message());
      return {};
    }
    history::HistoryOptions options;
    // A destroy event comes from a work queue, later than the socket's end by a little;
    // one not read two poll intervals past what was read will not come.
    options.destroy_grace_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(config.poll_interval).count() * 2);
    history.emplace(std::move(options));
    kernel_source = std::make_unique<KernelEventSource>(std::move(*opened), *history);
    if (auto watched = add_source(*kernel_source); !watched) {
      return watched.error();
    }
    spdlog::info("kernel-event source: on (BPF tracepoints, ring buffer {} MiB)",
                 config.bpf_ring_bytes >> 20U);
    return {};
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

  // When each periodic duty is next due (monotonic ms).
  struct Timers {
    std::int64_t poll = 0;
    std::int64_t stats = 0;
    std::int64_t watchdog = 0;
    std::int64_t status = 0;
    std::int64_t watchdog_every = 0;  // 0: no watchdog
  };

  // The round a poll owes (its baseline, or a tick's Traffic records), paced by the
  // emitter. At a tick, a connection whose period began at least half an interval ago: one
  // seen first just before it waits for the next (its period 0.5 to 1.5 intervals), and the
  // others' periods are the interval, whatever the polls' jitter.
  void begin_round() {
    tracker.begin_round();
    const std::int64_t due = poller.traffic_tick() ? config.traffic_interval.count() / 2 : 0;
    emitter.begin_round(
        [this, due](std::size_t chunk) {
          tracker.report_paced(collect::realtime_ms(), due, chunk);
          return tracker.round_done();
        },
        config.poll_interval / 2);
    emitter.pace();
  }

  // One poll and what follows it: Traffic records, READY=1 once, STATUS= now and then.
  Result<void> poll_and_report(Timers& t) {
    resync = false;
    emitter.pace(true);  // what the last round still owes, as of its poll, before the next
    if (auto polled = poll(); !polled) {
      return polled.error();
    }
    begin_round();
    log_sink_transitions();
    log_retired_sinks();
    if (metrics_server) {
      metrics_server->publish(metrics_text(read()));
    }
    if (!ready) {
      ready = true;  // the first good dump is done and every sink is open
      (void)::sd_notify(0, "READY=1");
    }
    const std::int64_t now = collect::monotonic_ms();
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
    std::int64_t now = collect::monotonic_ms();
    t.poll = now;
    t.stats = now + config.stats_interval.count();
    t.watchdog = now;
    t.status = now;
    for (;;) {
      now = collect::monotonic_ms();
      if (now >= t.poll || resync) {
        if (auto done = poll_and_report(t); !done) {
          spdlog::error("{}", done.error().message());
          return 1;
        }
        now = collect::monotonic_ms();
      }
      if (config.stats_interval.count() > 0 && now >= t.stats) {
        log_stats();
        t.stats = now + config.stats_interval.count();
      }
      if (t.watchdog_every > 0 && now >= t.watchdog) {
        (void)::sd_notify(0, "WATCHDOG=1");
        t.watchdog = now + t.watchdog_every;
      }
      tracker.flush_summaries(collect::realtime_ms());
      emitter.pace();
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
    if (emitter.round_pending() || events_held) {
      deadline = std::min(deadline, now + kPaceMs);  // look at the sinks again soon
    }
    if (rest_until != 0) {
      deadline = std::min(deadline, rest_until);
    }
    if (const std::int64_t due = tracker.summaries_due_ms(); due != 0) {
      // Summaries of short-lived sockets are written when their second is over.
      deadline = std::min(deadline, now + std::max<std::int64_t>(0, due - collect::realtime_ms()));
    }
    std::array<epoll_event, 4> events{};
    const int timeout = static_cast<int>(std::max<std::int64_t>(0, deadline - now));
    sinks.defer_wakeups(false);  // what this pass wrote is written while we wait
    const int n =
        ::epoll_wait(epoll_fd.get(), events.data(), static_cast<int>(events.size()), timeout);
    sinks.defer_wakeups(true);
    if (n < 0 && errno != EINTR) {
      spdlog::error("{}", errno_error("epoll_wait").message());
      return 1;
    }
    std::optional<int> stop;
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (EventSource* source = source_of(fd)) {
        if (auto drained = drain_source(*source); !drained) {
          spdlog::error("{}", drained.error().message());
          stop = 1;
        }
        if (source->writes_records()) {
          rest(collect::monotonic_ms());
        }
      } else if (fd == signal_fd.get() && handle_signals()) {
        stop = stop.value_or(0);
      }
    }
    return stop;
  }

  [[nodiscard]] EventSource* source_of(int fd) const {
    for (const auto* set : {&sources, &annotators}) {
      if (const auto it = set->find(fd); it != set->end()) {
        return it->second;
      }
    }
    return nullptr;
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
        fresh->protocols != config.protocols || fresh->destroy_events != config.destroy_events ||
        fresh->metrics_listen != config.metrics_listen || fresh->bpf != config.bpf ||
        fresh->bpf_ring_bytes != config.bpf_ring_bytes) {
      // Fewer states or protocols would make live sockets look gone; destroy events are
      // per namespace.
      spdlog::warn(
          "observables, states, protocols, destroy_events, metrics_listen, bpf and "
          "bpf_ring_buffer apply at the next start");
      fresh->observables = config.observables;
      fresh->states = config.states;
      fresh->protocols = config.protocols;
      fresh->destroy_events = config.destroy_events;
      fresh->metrics_listen = config.metrics_listen;
      fresh->bpf = config.bpf;
      fresh->bpf_ring_bytes = config.bpf_ring_bytes;
    }
    if (fresh->ocsf_version != config.ocsf_version) {
      // Records already queued keep theirs: each one says its version.
      emitter.set_ocsf_version(fresh->ocsf_version);
    }
    config = std::move(*fresh);
    tracker.set_short_lived_per_second(config.short_lived_per_second);
    namespaces.set_internal(flow::NetworkSet(config.internal_networks));
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
  s.sinks.defer_wakeups(false);
  (void)::sd_notify(0, "STOPPING=1");
  s.finish_at_pace();
  s.drain_held();
  s.tracker.flush_summaries(collect::realtime_ms(), true);  // the second under way too
  s.emitter.pace(true);  // owed records (a baseline still being paced) go to the queues
  s.emitter.flush();
  s.log_retired_sinks();
  s.sinks.stop(State::kDeliverWithin);
  s.log_stats();
  return status;
}

}  // namespace sockstate::daemon

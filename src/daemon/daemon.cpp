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
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "sockstate/common/fd.h"
#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/events.h"
#include "sockstate/tracking/tracker.h"

namespace sockstate::daemon {
namespace {

using std::chrono::milliseconds;

std::int64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

ocsf::RecordFields fields_for(const tracking::Event& ev) {
  using tracking::EventKind;
  ocsf::RecordFields f;
  f.time_ms = ev.time_ms;
  f.start_ms = ev.start_ms;
  switch (ev.kind) {
    case EventKind::kBaseline:
      f.activity = ocsf::kernel_state_row(ev.entry.state).snapshot_activity;
      f.start_ms = 0;
      break;
    case EventKind::kListen:
      f.activity = ocsf::Activity::kListen;
      f.start_ms = 0;
      break;
    case EventKind::kOpen:
      f.activity = ocsf::Activity::kOpen;
      break;
    case EventKind::kStateChange:
      f.activity = ocsf::Activity::kOther;
      f.previous_state = ev.previous_state;
      break;
    case EventKind::kTraffic:
      f.activity = ocsf::Activity::kTraffic;
      f.traffic = &ev.traffic;
      f.cumulative = &ev.cumulative;
      break;
    case EventKind::kClose:
    case EventKind::kFail:
    case EventKind::kRefuse:
      f.activity = ev.kind == EventKind::kClose  ? ocsf::Activity::kClose
                   : ev.kind == EventKind::kFail ? ocsf::Activity::kFail
                                                 : ocsf::Activity::kRefuse;
      f.status_id = ev.kind == EventKind::kClose ? 1 : 2;
      f.end_ms = ev.time_ms;
      f.traffic = ev.has_traffic ? &ev.traffic : nullptr;
      f.traffic_from_entry = false;
      break;
  }
  return f;
}

}  // namespace

Result<config::Config> load_run_config(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& overrides) {
  if (overrides.empty()) {
    return path.empty() ? config::parse_config("{}") : config::load_config(path);
  }
  std::string text = "{}";
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) {
      return errno_error("cannot read configuration file " + path);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false, true);
  if (doc.is_discarded() || !doc.is_object()) {
    return config::load_config(path);  // its error names the problem
  }
  for (const auto& [key, value] : overrides) {
    doc[key] = nlohmann::json::parse(value, nullptr, false);
  }
  auto parsed = config::parse_config(doc.dump());
  if (!parsed) {
    return Error{0, (path.empty() ? std::string("command line") : path + " with the command line") +
                        ": " + parsed.error().message()};
  }
  return parsed;
}

struct Daemon::State {
  ConfigLoader loader;
  config::Config config;
  ocsf::RecordContext context;
  std::optional<ocsf::RecordBuilder> builder;  // built once the configuration is known
  std::vector<std::unique_ptr<sink::Sink>> sinks;
  std::optional<netlink::NetlinkSocket> dump_socket;
  std::optional<netlink::DestroyListener> destroy;
  ocsf::ListenerTable listeners;
  tracking::Tracker tracker;
  std::string record;  // reused for every record
  Fd signal_fd;
  Fd epoll_fd;
  bool ready = false;
  bool first_poll = true;
  bool resync = false;
  std::uint64_t records = 0;
  std::uint64_t polls = 0;
  std::uint64_t last_dump_ms = 0;
  netlink::DumpStats dump_stats;

  State(ConfigLoader l, ocsf::RecordContext c)
      : loader(std::move(l)),
        context(std::move(c)),
        tracker([this](const tracking::Event& ev) { write(ev); }, /*confirm_poll_closes=*/true) {}

  void write(const tracking::Event& ev) {
    record.clear();
    builder->append_record(ev.entry, ev.orientation, fields_for(ev), record);
    ++records;
    for (auto& sink : sinks) {
      sink->submit(record);
    }
  }

  Result<void> start_sinks(const config::Config& c) {
    std::vector<std::unique_ptr<sink::Sink>> fresh;
    for (const auto& sc : c.sinks) {
      auto sink = sink::make_sink(sc);
      if (auto started = sink->start(); !started) {
        for (auto& s : fresh) {
          s->stop(milliseconds(1000));
        }
        return Error{started.error().errnum,
                     "sink " + sink->name() + ": " + started.error().message()};
      }
      fresh.push_back(std::move(sink));
    }
    for (auto& s : sinks) {
      s->stop(milliseconds(2000));
    }
    sinks = std::move(fresh);
    return {};
  }

  // One complete poll: LISTEN sockets first (they decide direction), then the rest,
  // then the destroy events that came meanwhile, then what vanished.
  Result<void> poll() {
    const std::int64_t started = monotonic_ms();
    const bool baseline = first_poll && config.baseline;
    tracker.begin_poll(ocsf::realtime_ms(), baseline);
    const bool want_listen = (config.states & netlink::state_bit(netlink::kTcpListen)) != 0;
    ocsf::ListenerTable fresh;
    ocsf::read_ephemeral_range(fresh);
    std::vector<netlink::SocketEntry> listening;
    for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
      netlink::CookieSet seen;
      const netlink::DumpRequest request{
          family, netlink::state_bit(netlink::kTcpListen), false, {}};
      auto done = netlink::run_dump(*dump_socket, request, seen, dump_stats,
                                    [&](const netlink::SocketEntry& e) {
                                      fresh.add(e);
                                      listening.push_back(e);
                                    });
      if (!done) {
        return done.error();
      }
    }
    listeners = std::move(fresh);
    if (want_listen) {
      for (const auto& e : listening) {
        tracker.poll_socket(e, listeners);
      }
    }
    const std::uint32_t states = config.states & ~netlink::state_bit(netlink::kTcpListen);
    netlink::CookieSet seen;
    for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
      const netlink::DumpRequest request{family, states, true, {}};
      auto done = netlink::run_dump(
          *dump_socket, request, seen, dump_stats,
          [&](const netlink::SocketEntry& e) { tracker.poll_socket(e, listeners); });
      if (!done) {
        return done.error();
      }
    }
    if (auto drained = drain_destroys(); !drained) {
      return drained.error();
    }
    tracker.end_poll();
    first_poll = false;
    ++polls;
    last_dump_ms = static_cast<std::uint64_t>(monotonic_ms() - started);
    return {};
  }

  Result<void> drain_destroys() {
    if (!destroy) {
      return {};
    }
    auto complete = destroy->drain(
        [this](const netlink::SocketEntry& e) {
          tracker.destroyed(e, listeners, ocsf::realtime_ms());
        },
        std::max<std::size_t>(config.event_buffer_bytes, 64U << 20));
    if (!complete) {
      return complete.error();
    }
    if (!*complete) {
      // Events were lost: a dump now finds what closed (its Close comes from the poll).
      spdlog::warn("destroy events lost (receive buffer overflow {}): resyncing with a dump",
                   destroy->overflows());
      resync = true;
    }
    return {};
  }

  sink::SinkStats sink_totals() const {
    sink::SinkStats total;
    for (const auto& s : sinks) {
      const auto st = s->stats();
      total.written += st.written;
      total.dropped += st.dropped;
      total.errors += st.errors;
    }
    return total;
  }

  void notify_status() {
    const auto t = tracker.stats();
    const auto k = sink_totals();
    (void)::sd_notifyf(0, "STATUS=tracking %llu sockets, %llu records, %llu dropped",
                       static_cast<unsigned long long>(t.tracked),
                       static_cast<unsigned long long>(records),
                       static_cast<unsigned long long>(k.dropped));
  }

  void log_stats() {
    const auto t = tracker.stats();
    std::string per_sink;
    for (const auto& s : sinks) {
      const auto st = s->stats();
      per_sink += fmt::format(" {}={}/{}", s->name(), st.written, st.dropped);
    }
    spdlog::info(
        "stats: {} sockets tracked, {} records, sinks written/dropped:{}, {} destroy events, "
        "{} overflows, {} closes by destroy, {} by poll, {} polls, last dump {} ms, "
        "{} dump redos",
        t.tracked, records, per_sink, destroy ? destroy->events() : 0,
        destroy ? destroy->overflows() : 0, t.closed_by_destroy, t.closed_by_poll, polls,
        last_dump_ms, dump_stats.redos);
  }

  void reload() {
    for (auto& s : sinks) {
      s->reopen();
    }
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
    config = std::move(*fresh);
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
  // log_name and device type are fixed for the life of the process (a reload that
  // changes them takes effect at the next start): metadata.sequence must not restart.
  s.context.log_name = s.config.log_name;
  s.context.device_type_id = s.config.device_type_id;
  s.builder.emplace(s.context);

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    sigaddset(&mask, sig);
  }
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  s.signal_fd.reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  s.epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!s.signal_fd.valid() || !s.epoll_fd.valid()) {
    spdlog::error("{}", errno_error("cannot set up signals and epoll").message());
    return 1;
  }

  auto sock = netlink::NetlinkSocket::open();
  if (!sock) {
    spdlog::error("{}", sock.error().message());
    return 1;
  }
  s.dump_socket.emplace(std::move(*sock));
  if (s.config.destroy_events) {
    // Joined before the first dump, so no close between the two goes unseen.
    auto listener = netlink::DestroyListener::open(s.config.event_buffer_bytes);
    if (!listener) {
      spdlog::error("{}", listener.error().message());
      return 1;
    }
    s.destroy.emplace(std::move(*listener));
  }
  if (auto started = s.start_sinks(s.config); !started) {
    spdlog::error("{}", started.error().message());
    return 1;
  }

  auto watch = [&s](int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return ::epoll_ctl(s.epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  if (!watch(s.signal_fd.get()) || (s.destroy && !watch(s.destroy->fd()))) {
    spdlog::error("{}", errno_error("cannot watch descriptors").message());
    return 1;
  }

  std::uint64_t watchdog_usec = 0;
  const bool watchdog = ::sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0;
  const std::int64_t watchdog_every =
      watchdog ? static_cast<std::int64_t>(watchdog_usec / 2000) : 0;

  spdlog::info("sockstate run: {}", config::describe(s.config));
  std::int64_t now = monotonic_ms();
  std::int64_t next_poll = now;
  std::int64_t next_stats = now + s.config.stats_interval.count();
  std::int64_t next_watchdog = now;
  std::int64_t next_status = now;
  int status = 0;
  bool running = true;

  while (running) {
    now = monotonic_ms();
    if (now >= next_poll || s.resync) {
      s.resync = false;
      if (auto polled = s.poll(); !polled) {
        spdlog::error("{}", polled.error().message());
        status = 1;
        break;
      }
      s.tracker.report_traffic(ocsf::realtime_ms(), s.config.traffic_interval.count());
      if (!s.ready) {
        s.ready = true;  // the first good dump is done and every sink is open
        (void)::sd_notify(0, "READY=1");
      }
      now = monotonic_ms();
      if (now >= next_status) {
        s.notify_status();  // systemd shows the latest; every poll would be chatter
        next_status = now + 5000;
      }
      next_poll = now + s.config.poll_interval.count();
    }
    if (s.config.stats_interval.count() > 0 && now >= next_stats) {
      s.log_stats();
      next_stats = now + s.config.stats_interval.count();
    }
    if (watchdog && now >= next_watchdog) {
      (void)::sd_notify(0, "WATCHDOG=1");
      next_watchdog = now + watchdog_every;
    }
    std::int64_t deadline = next_poll;
    if (s.config.stats_interval.count() > 0) {
      deadline = std::min(deadline, next_stats);
    }
    if (watchdog) {
      deadline = std::min(deadline, next_watchdog);
    }
    std::array<epoll_event, 4> ready{};
    const int timeout = static_cast<int>(std::max<std::int64_t>(0, deadline - now));
    const int n =
        ::epoll_wait(s.epoll_fd.get(), ready.data(), static_cast<int>(ready.size()), timeout);
    if (n < 0 && errno != EINTR) {
      spdlog::error("{}", errno_error("epoll_wait").message());
      status = 1;
      break;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = ready[static_cast<std::size_t>(i)].data.fd;
      if (s.destroy && fd == s.destroy->fd()) {
        if (auto drained = s.drain_destroys(); !drained) {
          spdlog::error("{}", drained.error().message());
          status = 1;
          running = false;
        }
      } else if (fd == s.signal_fd.get()) {
        signalfd_siginfo info{};
        while (::read(s.signal_fd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
          if (info.ssi_signo == SIGHUP) {
            (void)::sd_notify(0, "RELOADING=1");
            s.reload();
            (void)::sd_notify(0, "READY=1");
          } else {
            spdlog::info("signal {}: stopping", info.ssi_signo == SIGTERM ? "TERM" : "INT");
            running = false;
          }
        }
      }
    }
  }

  (void)::sd_notify(0, "STOPPING=1");
  for (auto& sink : s.sinks) {
    sink->stop(milliseconds(5000));
  }
  s.log_stats();
  return status;
}

}  // namespace sockstate::daemon

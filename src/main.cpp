// sockstate: a thin main. Parses the command line, sets up logging and dispatches.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>

#include "sockstate/cli/cli.h"
#include "sockstate/collect/host.h"
#include "sockstate/common/version.h"
#include "sockstate/config/config.h"
#include "sockstate/daemon/daemon.h"
#include "sockstate/log/log.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/sink/registry.h"
#include "sockstate/sink/sink.h"
#include "sockstate/snapshot/output.h"
#include "sockstate/snapshot/snapshot.h"

namespace {

using sockstate::cli::kExitOk;
using sockstate::cli::kExitRuntime;

sockstate::ocsf::RecordContext host_context() {
  sockstate::ocsf::RecordContext context;
  context.product_version = sockstate::kVersion;
  context.host = sockstate::collect::read_host_identity();
  context.host.ip = sockstate::collect::default_route_source();
  context.netns_inode = sockstate::collect::read_netns_inode();
  context.run_id = sockstate::collect::random_run_id();
  return context;
}

int run_daemon(const sockstate::cli::Invocation& inv) {
  sockstate::daemon::Daemon daemon(
      [&inv] { return sockstate::daemon::load_run_config(inv.config_path, inv.overrides); },
      host_context());
  return daemon.run();
}

int check_config(const sockstate::cli::Invocation& inv) {
  auto config = sockstate::config::load_config(inv.config_path);
  if (!config) {
    (void)std::fprintf(stderr, "sockstate: %s\n", config.error().message().c_str());
    return sockstate::cli::kExitUsage;
  }
  // What `run` would fail on at start that the document cannot say.
  for (const auto& sink : config->sinks) {
    if (auto ready = sockstate::sink::preflight(sink); !ready) {
      (void)std::fprintf(stderr, "sockstate: %s: sink %s: %s\n", inv.config_path.c_str(),
                         sockstate::sink::sink_name(sink).c_str(), ready.error().message().c_str());
      return sockstate::cli::kExitUsage;
    }
  }
  (void)std::printf("%s: valid: %s\n", inv.config_path.c_str(),
                    sockstate::config::describe(*config).c_str());
  return kExitOk;
}

// What --process found, and through which walk.
void log_owner_walk(const sockstate::snapshot::SnapshotStats& stats) {
  const auto& o = stats.owners;
  if (o.permission_errors > 0 || o.pid_errors > 0) {
    spdlog::warn(
        "--process: {} process(es) could not be read ({} denied, {} other errors): their "
        "sockets carry no actor",
        o.permission_errors + o.pid_errors, o.permission_errors, o.pid_errors);
  }
  if (!stats.iterator_unused.empty()) {
    spdlog::info("--process: the socket iterator (BPF) not used: {}; walking /proc",
                 stats.iterator_unused);
  }
  spdlog::info("--process: {} pids, {} sockets ({}), {} records with an owner, {} pids vanished",
               o.pids_scanned, o.sockets_found,
               stats.owners_by_iterator ? "from the kernel's task_file iterator" : "from /proc",
               stats.with_owner, o.vanished);
}

int run_snapshot(const sockstate::cli::Invocation& inv) {
  using sockstate::snapshot::RecordOutput;
  std::optional<RecordOutput> output;
  if (inv.output_path.empty()) {
    output.emplace(STDOUT_FILENO);
  } else {
    auto fd = RecordOutput::open_file(inv.output_path);
    if (!fd) {
      spdlog::error("{}", fd.error().message());
      return kExitRuntime;
    }
    output.emplace(std::move(*fd));
  }

  auto context = host_context();
  context.community_id_seed = inv.community_id_seed;
  context.observables = inv.observables;
  context.ocsf_version = inv.ocsf_version;
  sockstate::ocsf::RecordBuilder builder(std::move(context));

  auto stats = sockstate::snapshot::run_snapshot(inv.snapshot, builder, *output);
  if (!stats && stats.error().errnum == EPIPE && inv.output_path.empty()) {
    // The reader went away (`sockstate snapshot | head`): end as a filter does, quietly.
    (void)std::signal(SIGPIPE, SIG_DFL);
    (void)std::raise(SIGPIPE);
    return 128 + SIGPIPE;
  }
  if (!stats) {
    spdlog::error("{}", stats.error().message());
    return kExitRuntime;
  }
  if (stats->namespace_errors > 0) {
    spdlog::warn("{} network namespace(s) could not be dumped (first: {})", stats->namespace_errors,
                 stats->first_namespace_error);
  }
  if (inv.snapshot.process) {
    log_owner_walk(*stats);
  }
  const auto& d = stats->dump;
  if (d.inconsistent > 0) {
    spdlog::warn(
        "{} dump(s) still inconsistent after {} redo(s): a socket that changed during "
        "the snapshot may be missing",
        d.inconsistent, d.redos);
  }
  spdlog::info(
      "snapshot: {} records, {} listeners for direction, {} duplicate(s) dropped, "
      "{} redo(s), {} unknown attribute(s) skipped, {} datagrams, {} bytes",
      stats->records, stats->listeners_seen, d.duplicates, d.redos, d.unknown_attributes,
      d.datagrams, d.bytes);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // A closed stdout is reported as a write error (EPIPE) with one line, not a silent death.
  (void)std::signal(SIGPIPE, SIG_IGN);
  try {
    const auto inv = sockstate::cli::parse(std::vector<std::string>(argv, argv + argc));
    if (inv.command == sockstate::cli::Command::kExit) {
      if (!inv.error.empty()) {
        (void)std::fprintf(stderr, "sockstate: %s\n", inv.error.c_str());
      }
      if (!inv.out.empty()) {
        (void)std::fputs(inv.out.c_str(), stdout);
      }
      return inv.exit_code;
    }
    sockstate::log::setup(!inv.log_level.empty()                         ? inv.log_level
                          : inv.command == sockstate::cli::Command::kRun ? "info"
                                                                         : "warn");
    if (inv.command == sockstate::cli::Command::kRun) {
      return run_daemon(inv);
    }
    if (inv.command == sockstate::cli::Command::kCheckConfig) {
      return check_config(inv);
    }
    return run_snapshot(inv);
  } catch (const std::exception& e) {
    (void)std::fprintf(stderr, "sockstate: error: %s\n", e.what());
    return kExitRuntime;
  }
}

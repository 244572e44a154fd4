#include "sockstate/snapshot/snapshot.h"

#include <netinet/in.h>

#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "pipeline.h"
#include "sockstate/collect/collector.h"
#include "sockstate/collect/host.h"
#include "sockstate/flow/observation.h"
#include "sockstate/proc/namespaces.h"
#include "sockstate/snapshot/table.h"

namespace sockstate::snapshot {
namespace {

using netlink::state_bit;

// Direction needs the listeners unless only LISTEN or bound-inactive sockets are asked for.
bool needs_listeners(std::uint32_t states) {
  return (states & ~(state_bit(netlink::kTcpListen) | netlink::kBoundInactiveStates)) != 0;
}

Result<std::vector<proc::NetnsInfo>> namespaces_to_dump(const SnapshotOptions& options,
                                                        std::uint64_t own_inode) {
  if (options.all_netns) {
    return proc::discover_netns(options.proc_root, options.run_netns);
  }
  proc::NetnsInfo own;
  own.inode = own_inode;
  return std::vector<proc::NetnsInfo>{own};
}

// Everything a snapshot shares across namespaces.
struct Run {
  const SnapshotOptions& options;
  ocsf::RecordBuilder& builder;
  RecordOutput& output;
  collect::Attributor attributor;
  std::vector<std::uint8_t> bytecode;
  netlink::CookieSet written;
  std::int64_t now_ms = collect::realtime_ms();
  std::int32_t timezone_offset = collect::TimezoneOffset().at(now_ms);
  SnapshotStats stats;
  Result<void> write_status;

  std::atomic<bool> output_failed{false};  // write_status failed: the dump only drains

  // One socket, as a record (the renderer's thread).
  void render(const netlink::SocketEntry& e, collect::NamespaceView& view,
              const flow::Perimeter& perimeter, const proc::Container* container, bool owned_here) {
    if (!write_status) {
      return;  // output is gone; let the dump drain
    }
    flow::Observation obs =
        flow::observe_snapshot(e, flow::orient(e, view.listeners(), perimeter), now_ms);
    obs.timezone_offset_min = timezone_offset;
    obs.owner = attributor.owner_of(obs.socket, container);
    obs.owner.netns = owned_here ? 0 : e.netns;
    stats.with_owner += obs.owner.process != nullptr ? 1 : 0;
    if (options.table) {
      append_table_row(obs, output.buffer());
    } else {
      builder.append(obs, output.buffer());
    }
    ++stats.records;
    write_status = output.commit();
    if (!write_status) {
      output_failed.store(true, std::memory_order_relaxed);
    }
  }

  // One namespace: its listeners (for direction), then each protocol's and family's
  // sockets. The dump runs on this thread and the records are made on another (Pipeline).
  Result<void> dump(collect::NamespaceView& view) {
    const bool owned_here = !options.all_netns;
    const proc::Container* container = view.info().container ? &*view.info().container : nullptr;
    if (options.tcp && needs_listeners(options.states)) {  // UDP's direction needs none
      netlink::DumpStats listener_stats;
      auto done = view.dump_listeners(options.inet, options.inet6, listener_stats,
                                      [](const netlink::SocketEntry&) {});
      if (!done) {
        return done.error();
      }
      stats.listeners_seen += listener_stats.sockets;
    }
    const flow::Perimeter perimeter{&view.addresses(), options.internal_networks
                                                           ? &*options.internal_networks
                                                           : &flow::NetworkSet::default_internal()};
    Pipeline pipeline(
        [&](const netlink::SocketEntry& e) { render(e, view, perimeter, container, owned_here); });
    for (const auto& [protocol, wanted] : {std::pair{std::uint8_t{IPPROTO_TCP}, options.tcp},
                                           std::pair{std::uint8_t{IPPROTO_UDP}, options.udp}}) {
      if (wanted) {
        if (auto done = dump_protocol(view, pipeline, protocol); !done) {
          return done;
        }
      }
    }
    return {};
  }

  // One protocol's sockets of each family asked for (a request each: only TCP has one
  // request for both families), in the states --state names as that protocol has them.
  Result<void> dump_protocol(collect::NamespaceView& view, Pipeline& pipeline,
                             std::uint8_t protocol) {
    const std::uint32_t states = flow::kernel_states_for(protocol, options.states);
    if (states == 0) {
      return {};  // e.g. --state time-wait: no UDP socket is in it
    }
    for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
      if ((family == AF_INET && !options.inet) || (family == AF_INET6 && !options.inet6)) {
        continue;
      }
      const bool info = options.with_info && flow::has_tcp_states(protocol);
      const netlink::DumpRequest request{family, states, info, bytecode, protocol};
      auto done = view.dump(request, written, stats.dump, [&](const netlink::SocketEntry& e) {
        if (!output_failed.load(std::memory_order_relaxed)) {
          pipeline.push(e);
        }
      });
      pipeline.finish();  // every record of this family made: write_status is final
      if (!write_status) {
        return write_status.error();
      }
      if (!done) {
        // The records already built are whole: write them, then report the failure.
        (void)output.flush();
        return done.error();
      }
    }
    return {};
  }
};

}  // namespace

Result<SnapshotStats> run_snapshot(const SnapshotOptions& options, ocsf::RecordBuilder& builder,
                                   RecordOutput& output) {
  auto namespaces = namespaces_to_dump(options, builder.context().netns_inode);
  if (!namespaces) {
    return namespaces.error();
  }
  Run run{options,
          builder,
          output,
          collect::Attributor(
              {options.process, options.owner_walk, options.proc_root, options.cgroup_root, "/"}),
          netlink::compile_port_filter(options.ports),
          {},
          collect::realtime_ms(),
          0,
          {},
          {}};
  run.timezone_offset = collect::TimezoneOffset().at(run.now_ms);
  if (options.table) {
    append_table_header(output.buffer());
  }
  auto scanned = run.attributor.scan();
  if (!scanned) {
    return scanned.error();
  }
  if (*scanned) {
    run.stats.owners = **scanned;
    run.stats.owners_by_iterator = run.attributor.used_iterator();
    run.stats.iterator_unused = run.attributor.iterator_unused();
  }
  for (proc::NetnsInfo& netns : *namespaces) {
    auto view = options.all_netns ? collect::NamespaceView::open_in(std::move(netns), {})
                                  : collect::NamespaceView::open_here(std::move(netns), {});
    if (!view) {
      if (!options.all_netns) {
        return view.error();
      }
      if (run.stats.namespace_errors++ == 0) {
        run.stats.first_namespace_error = view.error().message();
      }
      continue;
    }
    ++run.stats.namespaces;
    if (auto done = run.dump(*view); !done) {
      return done.error();
    }
  }
  if (options.all_netns && run.stats.namespaces == 0) {
    // As `run` does: nothing entered is a failure, not an empty snapshot.
    return Error{EPERM,
                 "--all-netns: no network namespace could be entered (CAP_SYS_ADMIN "
                 "needed; first: " +
                     run.stats.first_namespace_error + ")"};
  }
  run.stats.cgroups = run.attributor.cgroups().stats();
  if (auto flushed = output.flush(); !flushed) {
    return flushed.error();
  }
  return run.stats;
}

}  // namespace sockstate::snapshot

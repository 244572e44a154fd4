#include "sockstate/snapshot/snapshot.h"

#include <netinet/in.h>

#include <optional>
#include <vector>

#include "sockstate/ocsf/direction.h"
#include "sockstate/ocsf/host.h"
#include "sockstate/proc/namespaces.h"

namespace sockstate::snapshot {
namespace {

using netlink::state_bit;

// Direction needs the listeners unless only LISTEN or bound-inactive sockets are asked for.
bool needs_listeners(std::uint32_t states) {
  return (states & ~(state_bit(netlink::kTcpListen) | netlink::kBoundInactiveStates)) != 0;
}

// A sock_diag socket in one namespace, and that namespace's ephemeral port range.
struct NamespaceSocket {
  netlink::NetlinkSocket sock;
  ocsf::ListenerTable empty_table;
};

Result<NamespaceSocket> open_here() {
  auto sock = netlink::NetlinkSocket::open();
  if (!sock) {
    return sock.error();
  }
  NamespaceSocket ns{std::move(*sock), {}};
  // /proc/sys/net shows the namespace of the thread that opens it.
  ocsf::read_ephemeral_range(ns.empty_table);
  return ns;
}

Result<NamespaceSocket> open_in(const proc::NetnsInfo& info) {
  auto fd = proc::open_netns(info.path, info.inode);
  if (!fd) {
    return fd.error();
  }
  auto ns = proc::run_in_netns(fd->get(), open_here);
  if (!ns) {
    return Error{ns.error().errnum,
                 "namespace " + std::to_string(info.inode) + ": " + ns.error().context};
  }
  return ns;
}

}  // namespace

Result<SnapshotStats> run_snapshot(const SnapshotOptions& options, ocsf::RecordBuilder& builder,
                                   RecordOutput& output) {
  SnapshotStats stats;
  std::vector<proc::NetnsInfo> namespaces;
  if (options.all_netns) {
    auto found = proc::discover_netns(options.proc_root, options.run_netns);
    if (!found) {
      return found.error();
    }
    namespaces = std::move(*found);
  } else {
    proc::NetnsInfo own;
    own.inode = builder.context().netns_inode;
    namespaces.push_back(std::move(own));
  }

  std::optional<proc::OwnerMap> owners;
  if (options.process) {
    owners.emplace(options.proc_root);
    auto scanned = owners->scan();
    if (!scanned) {
      return scanned.error();
    }
    stats.owners = *scanned;
  }
  proc::CgroupResolver cgroups(options.cgroup_root);

  const std::vector<std::uint8_t> bytecode = netlink::compile_port_filter(options.ports);
  netlink::CookieSet written;
  Result<void> write_status;

  for (const proc::NetnsInfo& netns : namespaces) {
    auto opened = options.all_netns ? open_in(netns) : open_here();
    if (!opened) {
      if (!options.all_netns) {
        return opened.error();
      }
      if (stats.namespace_errors++ == 0) {
        stats.first_namespace_error = opened.error().message();
      }
      continue;
    }
    ++stats.namespaces;
    netlink::NetlinkSocket& sock = opened->sock;
    ocsf::Attribution owner;
    owner.netns = options.all_netns ? netns.inode : 0;
    owner.netns_container = netns.container ? &*netns.container : nullptr;

    for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
      if ((family == AF_INET && !options.inet) || (family == AF_INET6 && !options.inet6)) {
        continue;
      }
      ocsf::ListenerTable listeners = opened->empty_table;
      if (needs_listeners(options.states)) {
        netlink::CookieSet seen;
        netlink::DumpStats listener_stats;
        const netlink::DumpRequest request{family, state_bit(netlink::kTcpListen), false, {}};
        auto done = netlink::run_dump(sock, request, seen, listener_stats,
                                      [&](const netlink::SocketEntry& e) { listeners.add(e); });
        if (!done) {
          (void)output.flush();
          return done.error();
        }
        stats.listeners_seen += listener_stats.sockets;
      }

      const netlink::DumpRequest request{family, options.states, options.with_info, bytecode};
      auto done =
          netlink::run_dump(sock, request, written, stats.dump, [&](const netlink::SocketEntry& e) {
            if (!write_status) {
              return;  // output is gone; let the dump drain
            }
            owner.process = owners && e.inode != 0 ? owners->owner(e.inode) : nullptr;
            owner.cgroup = cgroups.resolve(e.cgroup_id);
            stats.with_owner += owner.process != nullptr ? 1 : 0;
            builder.append_snapshot_record(e, ocsf::orient(e, listeners), output.buffer(), owner);
            ++stats.records;
            write_status = output.commit();
          });
      if (!write_status) {
        return write_status.error();
      }
      if (!done) {
        // The records already built are whole: write them, then report the failure.
        (void)output.flush();
        return done.error();
      }
    }
  }
  stats.cgroups = cgroups.stats();
  if (auto flushed = output.flush(); !flushed) {
    return flushed.error();
  }
  return stats;
}

}  // namespace sockstate::snapshot

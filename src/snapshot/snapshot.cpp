#include "sockstate/snapshot/snapshot.h"

#include <netinet/in.h>

#include "sockstate/ocsf/direction.h"

namespace sockstate::snapshot {
namespace {

using netlink::state_bit;

// Direction needs the listeners unless only LISTEN or bound-inactive sockets are asked for.
bool needs_listeners(std::uint32_t states) {
  return (states & ~(state_bit(netlink::kTcpListen) | netlink::kBoundInactiveStates)) != 0;
}

}  // namespace

Result<SnapshotStats> run_snapshot(const SnapshotOptions& options, ocsf::RecordBuilder& builder,
                                   RecordOutput& output) {
  auto sock = netlink::NetlinkSocket::open();
  if (!sock) {
    return sock.error();
  }
  SnapshotStats stats;
  const std::vector<std::uint8_t> bytecode = netlink::compile_port_filter(options.ports);
  netlink::CookieSet written;
  Result<void> write_status;

  for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
    if ((family == AF_INET && !options.inet) || (family == AF_INET6 && !options.inet6)) {
      continue;
    }
    ocsf::ListenerTable listeners;
    ocsf::read_ephemeral_range(listeners);
    if (needs_listeners(options.states)) {
      netlink::CookieSet seen;
      netlink::DumpStats listener_stats;
      const netlink::DumpRequest request{family, state_bit(netlink::kTcpListen), false, {}};
      auto done = netlink::run_dump(*sock, request, seen, listener_stats,
                                    [&](const netlink::SocketEntry& e) { listeners.add(e); });
      if (!done) {
        (void)output.flush();
        return done.error();
      }
      stats.listeners_seen += listener_stats.sockets;
    }

    const netlink::DumpRequest request{family, options.states, options.with_info, bytecode};
    auto done =
        netlink::run_dump(*sock, request, written, stats.dump, [&](const netlink::SocketEntry& e) {
          if (!write_status) {
            return;  // output is gone; let the dump drain
          }
          builder.append_snapshot_record(e, ocsf::orient(e, listeners), output.buffer());
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
  if (auto flushed = output.flush(); !flushed) {
    return flushed.error();
  }
  return stats;
}

}  // namespace sockstate::snapshot

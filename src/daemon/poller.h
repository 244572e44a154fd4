#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "namespace_set.h"
#include "sockstate/common/error.h"
#include "sockstate/config/config.h"
#include "sockstate/netlink/dumper.h"
#include "sockstate/tracking/tracker.h"

namespace sockstate::daemon {

// The dumps of a poll: every namespace's LISTEN sockets (they decide direction), then its
// other sockets into the tracker, with tcp_info only when records need it (plan()), and
// afterwards the comparison of the kernel's count of connections with what was reported
// (reconcile()). The loop runs the sequence; the poller never writes a record itself.
class Poller {
 public:
  Poller(const config::Config& config, NamespaceSet& namespaces, tracking::Tracker& tracker)
      : config_(config), namespaces_(namespaces), tracker_(tracker) {}

  // Before the dumps: each namespace's count of connections made, whether this poll asks
  // every socket's tcp_info and whether it is a Traffic tick.
  void begin();
  // What runs every few thousand sockets of a long dump (the loop reads its event sources).
  using Interleave = std::function<Result<void>()>;
  // Every namespace's listeners, then (the tables complete) their sockets. The inodes of
  // namespaces whose dump failed (all_netns), or an Error for our own namespace.
  Result<std::vector<std::uint64_t>> dump(const Interleave& interleave);
  // After the tracker's end_poll(): see the comment in poller.cpp.
  void reconcile(const std::vector<std::uint64_t>& failed);
  // The poll is complete; `took_ms` is how long it took.
  void end(std::uint64_t took_ms);
  // A namespace about to go: what it left unreported stays counted.
  void forget(const Namespace& ns) { unreported_gone_ += ns.unreported; }

  [[nodiscard]] bool first_poll() const { return first_poll_; }
  [[nodiscard]] bool traffic_tick() const { return traffic_tick_; }
  [[nodiscard]] std::uint64_t connections_unreported() const;

  struct Counters {
    std::uint64_t polls = 0;
    std::uint64_t last_ms = 0;
    std::uint64_t info_polls = 0;
    std::uint64_t info_lookups = 0;
    std::uint64_t dump_errors = 0;  // namespaces (not ours) whose dump failed
    std::uint64_t dump_redos = 0;
  };
  [[nodiscard]] Counters counters() const;

 private:
  struct DumpPass;
  void plan();
  [[nodiscard]] tracking::Tracker::FirstSight first_sight(const Namespace& ns) const;
  Result<void> dump_listeners(Namespace& ns, std::vector<netlink::SocketEntry>& listening);
  Result<void> dump_sockets(Namespace& ns, const Interleave& interleave);
  Result<void> dump_protocol(DumpPass& pass, const Interleave& interleave);
  Result<void> dump_family(DumpPass& pass, std::uint8_t family, const Interleave& interleave);
  Result<void> finish_dump(DumpPass& pass, const Result<void>& done);
  void feed_looked_up(Namespace& ns, const std::vector<netlink::SocketEntry>& wanted);
  Result<void> dump_failed(const Namespace& ns, const Error& error,
                           std::vector<std::uint64_t>& failed);
  void reconcile(Namespace& ns, std::optional<std::uint64_t> opens);

  const config::Config& config_;
  NamespaceSet& namespaces_;
  tracking::Tracker& tracker_;
  std::map<std::uint64_t, std::optional<std::uint64_t>> opens_;  // before this poll's dumps
  netlink::DumpStats dump_stats_;
  bool first_poll_ = true;
  // Polls dump with tcp_info only when records need it for many sockets (see plan());
  // otherwise the few that need it are looked up one by one after the dump.
  bool poll_info_ = true;
  bool traffic_tick_ = false;              // this poll's round writes Traffic records
  std::int64_t last_tick_ms_ = -1;         // monotonic time of the last Traffic tick's poll
  bool both_families_ = true;              // the kernel answers one dump of IPv4 and IPv6
  std::uint64_t changes_before_poll_ = 0;  // tracker.changes() when the last poll began
  std::uint64_t unreported_gone_ = 0;      // connections_unreported of namespaces now gone
  Counters counters_;
};

}  // namespace sockstate::daemon

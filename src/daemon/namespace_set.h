#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "event_source.h"
#include "sockstate/collect/collector.h"
#include "sockstate/common/error.h"
#include "sockstate/config/config.h"
#include "sockstate/flow/address.h"

namespace sockstate::daemon {

// One network namespace the daemon watches: its sockets, addresses and listeners, its
// destroy events (direction is decided per namespace), and what the poller keeps of it.
struct Namespace {
  explicit Namespace(collect::NamespaceView v) : view(std::move(v)) {}
  collect::NamespaceView view;
  bool found = true;                   // found by the latest discovery
  bool dumped = false;                 // a dump of it has completed: new sockets are new
  std::uint64_t foreign_reported = 0;  // forged datagrams already logged
  // Connections the kernel made that no record reported (see Poller::reconcile()).
  std::optional<std::uint64_t> opens_base;    // the kernel's count after the first dump
  std::uint64_t seen_base = 0;                // the tracker's count then
  std::optional<std::uint64_t> opens_lagged;  // the kernel's count before the previous poll
  std::uint64_t unreported = 0;
  std::size_t sockets_dumped = 0;  // by its last complete dump (sizes the next one's set)
  // Its destroy events (destroy_events), one source per protocol, TCP's first.
  std::vector<std::unique_ptr<EventSource>> events;
};

// The namespaces the daemon watches, by nsfs inode: our own, or with all_netns every one
// that a process or a /run/netns name holds. It opens and finds them; the loop decides
// what a namespace that comes or goes means for the tracker, the sources and the records.
class NamespaceSet {
 public:
  using Map = std::map<std::uint64_t, std::unique_ptr<Namespace>>;

  explicit NamespaceSet(const config::Config& config) : config_(config) {}

  // Our own namespace (`own_inode`), or with all_netns every one found.
  Result<std::vector<Namespace*>> open_initial(std::uint64_t own_inode);

  struct Changes {
    std::vector<Namespace*> opened;
    std::vector<std::uint64_t> gone;  // still in the set: the loop erases them
  };
  // all_netns: the namespaces as they are now. A new one is opened; one no process or
  // name holds any more is reported gone. One that cannot be opened is unreachable() until
  // the next sync (its sockets are kept as they were: no false Close).
  Result<Changes> sync();
  void erase(std::uint64_t inode);

  [[nodiscard]] Namespace* find(std::uint64_t inode);
  [[nodiscard]] const Namespace* find(std::uint64_t inode) const;
  [[nodiscard]] Map& all() { return namespaces_; }
  [[nodiscard]] const Map& all() const { return namespaces_; }
  [[nodiscard]] std::size_t size() const { return namespaces_.size(); }
  [[nodiscard]] const std::vector<std::uint64_t>& unreachable() const { return unreachable_; }

  // What is inside for a namespace's sockets: its addresses and the internal networks.
  [[nodiscard]] flow::Perimeter perimeter(const Namespace& ns) const;
  void set_internal(flow::NetworkSet internal) { internal_ = std::move(internal); }
  // For endpoint repair: the source address a namespace would use towards `peer`.
  std::optional<flow::Address> route_source(std::uint64_t netns, const flow::Address& peer);
  // For records: the container a namespace belongs to (nullptr: none).
  [[nodiscard]] const proc::Container* container_of(std::uint64_t netns) const;

  [[nodiscard]] std::uint64_t open_errors() const { return open_errors_; }
  [[nodiscard]] std::uint64_t forged_gone() const { return forged_gone_; }

 private:
  Result<std::unique_ptr<Namespace>> open(const proc::NetnsInfo& info, bool here);
  Namespace* add(std::unique_ptr<Namespace> ns);

  const config::Config& config_;
  Map namespaces_;
  std::vector<std::uint64_t> unreachable_;  // discovered but not opened this sync
  flow::NetworkSet internal_;               // internal_networks
  std::uint64_t open_errors_ = 0;           // namespaces found that could not be opened
  std::uint64_t forged_gone_ = 0;           // forged datagrams of namespaces now erased
};

}  // namespace sockstate::daemon

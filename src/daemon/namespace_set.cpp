#include "namespace_set.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "destroy_events.h"

namespace sockstate::daemon {
namespace {

bool ns_has_tcp(const std::vector<std::uint8_t>& protocols) {
  return std::find(protocols.begin(), protocols.end(), IPPROTO_TCP) != protocols.end();
}

}  // namespace

// Makes the namespace's sockets: here, or inside it through a short-lived thread.
Result<std::unique_ptr<Namespace>> NamespaceSet::open(const proc::NetnsInfo& info, bool here) {
  collect::ViewOptions options;
  options.watch_addresses = true;
  options.destroy_buffer = config_.destroy_events ? config_.event_buffer_bytes : 0;
  options.destroy_protocols = config_.protocols;
  // Only a poll of every state sees every connection the kernel counts; without destroy
  // events, short connections are unseen by design (no loss to count).
  options.tcp_counters = config_.states == netlink::kAllStates && config_.destroy_events &&
                         ns_has_tcp(config_.protocols);
  auto view = here ? collect::NamespaceView::open_here(info, options)
                   : collect::NamespaceView::open_in(info, options);
  if (!view) {
    return view.error();
  }
  auto ns = std::make_unique<Namespace>(std::move(*view));
  Namespace* raw = ns.get();
  for (const auto& listener : ns->view.destroy_listeners()) {
    ns->events.push_back(std::make_unique<DestroyEventSource>(
        ns->view, listener.protocol(), [this, raw] { return perimeter(*raw); },
        config_.event_buffer_bytes));
  }
  return ns;
}

Namespace* NamespaceSet::add(std::unique_ptr<Namespace> ns) {
  const std::uint64_t inode = ns->view.info().inode;
  Namespace* raw = ns.get();
  namespaces_[inode] = std::move(ns);
  return raw;
}

Result<std::vector<Namespace*>> NamespaceSet::open_initial(std::uint64_t own_inode) {
  if (config_.all_netns) {
    auto synced = sync();
    if (!synced) {
      return synced.error();
    }
    if (namespaces_.empty()) {
      return Error{0, "all_netns: no network namespace could be entered (CAP_SYS_ADMIN needed)"};
    }
    return std::move(synced->opened);
  }
  proc::NetnsInfo own;
  own.inode = own_inode;
  auto opened = open(own, true);
  if (!opened) {
    return opened.error();
  }
  return std::vector<Namespace*>{add(std::move(*opened))};
}

Result<NamespaceSet::Changes> NamespaceSet::sync() {
  unreachable_.clear();
  auto found = proc::discover_netns();
  if (!found) {
    return found.error();
  }
  for (auto& [inode, ns] : namespaces_) {
    ns->found = false;
  }
  Changes changes;
  for (const auto& info : *found) {
    if (Namespace* known = find(info.inode)) {
      known->found = true;
      known->view.info().container = info.container;
      continue;
    }
    auto opened = open(info, false);
    if (!opened) {
      // It went away since discovery, or we may not enter it: the next sync tries again.
      unreachable_.push_back(info.inode);
      ++open_errors_;
      spdlog::debug("network namespace {}: {}", info.inode, opened.error().message());
      continue;
    }
    changes.opened.push_back(add(std::move(*opened)));
  }
  for (const auto& [inode, ns] : namespaces_) {
    if (!ns->found) {
      changes.gone.push_back(inode);
    }
  }
  return changes;
}

void NamespaceSet::erase(std::uint64_t inode) {
  if (const auto it = namespaces_.find(inode); it != namespaces_.end()) {
    forged_gone_ += it->second->view.foreign();
    namespaces_.erase(it);
  }
}

Namespace* NamespaceSet::find(std::uint64_t inode) {
  const auto it = namespaces_.find(inode);
  return it == namespaces_.end() ? nullptr : it->second.get();
}

const Namespace* NamespaceSet::find(std::uint64_t inode) const {
  const auto it = namespaces_.find(inode);
  return it == namespaces_.end() ? nullptr : it->second.get();
}

flow::Perimeter NamespaceSet::perimeter(const Namespace& ns) const {
  return flow::Perimeter{&ns.view.addresses(), &internal_};
}

std::optional<flow::Address> NamespaceSet::route_source(std::uint64_t netns,
                                                        const flow::Address& peer) {
  Namespace* ns = find(netns);
  return ns == nullptr ? std::nullopt : ns->view.route_source(peer);
}

const proc::Container* NamespaceSet::container_of(std::uint64_t netns) const {
  const Namespace* ns = find(netns);
  if (ns == nullptr) {
    return nullptr;
  }
  const auto& c = ns->view.info().container;
  return c ? &*c : nullptr;
}

}  // namespace sockstate::daemon

#include "sockstate/collect/collector.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <sstream>

#include "sockstate/bpf/socket_holders.h"
#include "sockstate/collect/host.h"
#include "sockstate/netlink/rtnetlink.h"

namespace sockstate::collect {
namespace {

flow::Address to_flow(const netlink::IfAddress& a) {
  return flow::normalized_address(a.family, a.addr);
}

Result<void> make_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return errno_error("cannot make the address watch non-blocking");
  }
  return {};
}

}  // namespace

Result<NamespaceView> NamespaceView::open(proc::NetnsInfo info, const ViewOptions& options) {
  auto diag = netlink::NetlinkSocket::open();
  if (!diag) {
    return diag.error();
  }
  auto route = netlink::NetlinkSocket::open(0, NETLINK_ROUTE);
  if (!route) {
    return route.error();
  }
  NamespaceView view(std::move(info), std::move(*diag), std::move(*route));
  if (options.destroy_buffer > 0) {
    // Joined before the namespace's first dump, so no close between the two goes unseen.
    view.destroy_.reserve(options.destroy_protocols.size());
    for (const std::uint8_t protocol : options.destroy_protocols) {
      auto listener = netlink::DestroyListener::open(options.destroy_buffer, protocol);
      if (!listener) {
        return listener.error();
      }
      view.destroy_.push_back(std::move(*listener));
    }
  }
  if (options.watch_addresses) {
    // Joined before the first address dump, so no change between the two goes unseen.
    auto watch = netlink::NetlinkSocket::open(netlink::address_change_groups(), NETLINK_ROUTE);
    if (!watch) {
      return watch.error();
    }
    if (auto nb = make_nonblocking(watch->fd()); !nb) {
      return nb.error();
    }
    view.watch_.emplace(std::move(*watch));
  }
  if (options.tcp_counters) {
    // Opened on this thread, which is inside the namespace: the file keeps it. Without
    // /proc there are no counters, and nothing else changes.
    view.snmp_.reset(::open("/proc/thread-self/net/snmp", O_RDONLY | O_CLOEXEC));
  }
  read_ephemeral_range(view.base_);  // /proc/sys/net shows this thread's namespace
  view.listeners_ = view.base_;
  if (auto loaded = view.load_addresses(); !loaded) {
    return loaded.error();
  }
  return view;
}

std::optional<std::uint64_t> parse_tcp_opens(std::string_view snmp) {
  // Two lines: "Tcp: <names>" then "Tcp: <values>", in the same order.
  std::array<std::string_view, 2> tcp;
  std::size_t lines = 0;
  for (std::size_t at = 0; at < snmp.size() && lines < tcp.size();) {
    const std::size_t end = std::min(snmp.find('\n', at), snmp.size());
    const std::string_view line = snmp.substr(at, end - at);
    if (line.starts_with("Tcp: ")) {
      tcp[lines++] = line.substr(5);
    }
    at = end + 1;
  }
  if (lines != tcp.size()) {
    return std::nullopt;
  }
  std::istringstream names{std::string(tcp[0])};
  std::istringstream values{std::string(tcp[1])};
  std::uint64_t sum = 0;
  int found = 0;
  for (std::string name, value; names >> name && values >> value;) {
    if (name != "ActiveOpens" && name != "PassiveOpens") {
      continue;
    }
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size()) {
      return std::nullopt;
    }
    sum += n;
    ++found;
  }
  return found == 2 ? std::optional<std::uint64_t>(sum) : std::nullopt;
}

std::optional<std::uint64_t> NamespaceView::tcp_opens() {
  if (!snmp_.valid()) {
    return std::nullopt;
  }
  std::array<char, 8192> buf{};
  std::string text;
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(snmp_.get(), buf.data(), buf.size(), at);
    if (n < 0) {
      return std::nullopt;
    }
    if (n == 0 || text.size() > (1U << 20)) {
      break;
    }
    text.append(buf.data(), static_cast<std::size_t>(n));
    at += n;
  }
  return parse_tcp_opens(text);
}

Result<NamespaceView> NamespaceView::open_here(proc::NetnsInfo info, const ViewOptions& options) {
  return open(std::move(info), options);
}

Result<NamespaceView> NamespaceView::open_in(proc::NetnsInfo info, const ViewOptions& options) {
  auto fd = proc::open_netns(info.path, info.inode);
  if (!fd) {
    return fd.error();
  }
  const std::uint64_t inode = info.inode;
  auto view = proc::run_in_netns(fd->get(), [&]() { return open(std::move(info), options); });
  if (!view) {
    return Error{view.error().errnum,
                 "namespace " + std::to_string(inode) + ": " + view.error().context};
  }
  return view;
}

Result<void> NamespaceView::load_addresses() {
  auto found = netlink::dump_addresses(route_);
  if (!found) {
    return Error{found.error().errnum,
                 "cannot list the namespace's addresses: " + found.error().context};
  }
  addresses_.clear();
  for (const auto& a : *found) {
    addresses_.add(to_flow(a));
  }
  return {};
}

Result<bool> NamespaceView::refresh_addresses() {
  if (!watch_) {
    return false;
  }
  if (buf_.empty()) {
    buf_.resize(netlink::kDumpBufferSize);
  }
  auto changed = netlink::drain_changes(*watch_, buf_);
  if (!changed) {
    return changed.error();
  }
  if (!*changed) {
    return false;
  }
  if (auto loaded = load_addresses(); !loaded) {
    return loaded.error();
  }
  return true;
}

std::optional<flow::Address> NamespaceView::route_source(const flow::Address& peer) {
  netlink::IfAddress p;
  if (flow::is_ipv4_mapped(peer)) {
    p.family = AF_INET;
    std::copy(peer.begin() + 12, peer.end(), p.addr.begin());
  } else {
    p.family = AF_INET6;
    p.addr = peer;
  }
  auto source = netlink::route_source(route_, p);
  if (!source || !*source) {
    return std::nullopt;
  }
  return to_flow(**source);
}

Result<void> NamespaceView::dump_listeners(
    bool inet, bool inet6, netlink::DumpStats& stats,
    const std::function<void(const netlink::SocketEntry&)>& on_listener) {
  flow::ListenerTable fresh = base_;
  for (const std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
    if ((family == AF_INET && !inet) || (family == AF_INET6 && !inet6)) {
      continue;
    }
    netlink::CookieSet seen;
    const netlink::DumpRequest request{family, netlink::state_bit(netlink::kTcpListen), false, {}};
    auto done = dump(request, seen, stats, [&](const netlink::SocketEntry& e) {
      fresh.add(e);
      on_listener(e);
    });
    if (!done) {
      return done.error();
    }
  }
  listeners_ = std::move(fresh);
  return {};
}

Result<void> NamespaceView::dump(
    const netlink::DumpRequest& request, netlink::CookieSet& seen, netlink::DumpStats& stats,
    const std::function<void(const netlink::SocketEntry&)>& on_socket) {
  const std::uint64_t inode = info_.inode;
  return netlink::run_dump(diag_, request, seen, stats, [&](const netlink::SocketEntry& e) {
    netlink::SocketEntry tagged = e;
    tagged.netns = inode;
    tagged.protocol = request.protocol;
    on_socket(tagged);
  });
}

Result<std::optional<netlink::SocketEntry>> NamespaceView::lookup(
    const netlink::SocketEntry& socket, netlink::DumpStats& stats) {
  if (buf_.size() < netlink::kDumpBufferSize) {
    buf_.resize(netlink::kDumpBufferSize);
  }
  auto found = netlink::lookup_socket(diag_, socket, buf_, stats);
  if (found && *found) {
    (*found)->netns = info_.inode;
    (*found)->protocol = socket.protocol;
  }
  return found;
}

netlink::DestroyListener* NamespaceView::destroy(std::uint8_t protocol) {
  for (auto& listener : destroy_) {
    if (listener.protocol() == protocol) {
      return &listener;
    }
  }
  return nullptr;
}

std::uint64_t NamespaceView::foreign() const {
  std::uint64_t n = diag_.foreign() + route_.foreign();
  if (watch_) {
    n += watch_->foreign();
  }
  for (const auto& listener : destroy_) {
    n += listener.foreign();
  }
  return n;
}

Attributor::Attributor(const AttributorOptions& options)
    : walk_(options.walk), cgroups_(options.cgroup_root), users_(options.root) {
  if (options.process) {
    owners_.emplace(options.proc_root);
  }
}

Result<std::optional<proc::ScanStats>> Attributor::scan() {
  if (!owners_) {
    return std::optional<proc::ScanStats>{};
  }
  iterator_unused_.clear();
  used_iterator_ = false;
  if (walk_ != OwnerWalk::kProc) {
    auto holders = bpf::socket_holders();
    if (holders) {
      std::vector<proc::OwnerMap::Holder> pairs;
      pairs.reserve(holders->size());
      for (const auto& h : *holders) {
        pairs.push_back({h.pid, h.inode});
      }
      auto scanned = owners_->scan_holders(pairs);
      if (!scanned) {
        return scanned.error();
      }
      used_iterator_ = true;
      return std::optional<proc::ScanStats>(*scanned);
    }
    if (walk_ == OwnerWalk::kBpf) {
      return Error{holders.error().errnum,
                   "the socket iterator (bpf \"on\"): " + holders.error().context};
    }
    iterator_unused_ = holders.error().message();
  }
  auto scanned = owners_->scan();
  if (!scanned) {
    return scanned.error();
  }
  return std::optional<proc::ScanStats>(*scanned);
}

flow::Owner Attributor::owner_of(const flow::SocketFacts& e,
                                 const proc::Container* netns_container) {
  flow::Owner owner;
  owner.netns = e.netns;
  owner.netns_container = netns_container;
  owner.process = owners_ && e.inode != 0 ? owners_->owner(e.inode) : nullptr;
  owner.user = e.uid ? &users_.lookup(*e.uid) : nullptr;
  owner.cgroup = cgroups_.resolve(e.cgroup_id);
  return owner;
}

}  // namespace sockstate::collect

#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/common/fd.h"
#include "sockstate/flow/address.h"
#include "sockstate/flow/observation.h"
#include "sockstate/flow/orientation.h"
#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/events.h"
#include "sockstate/netlink/socket.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/namespaces.h"
#include "sockstate/proc/socket_owners.h"
#include "sockstate/proc/users.h"

namespace sockstate::collect {

struct ViewOptions {
  bool watch_addresses = false;    // join the address-change groups (the daemon)
  std::size_t destroy_buffer = 0;  // > 0: destroy listeners with this receive buffer
  std::vector<std::uint8_t> destroy_protocols{6};  // one listener each (IPPROTO_TCP, _UDP)
  bool tcp_counters = false;  // keep the namespace's /proc/net/snmp open (tcp_opens())
};

// ActiveOpens + PassiveOpens from the text of /proc/net/snmp: every TCP connection socket
// the namespace has made (connect() sent a SYN, or a handshake completed on a listener).
// nullopt when the text has no Tcp lines to read.
std::optional<std::uint64_t> parse_tcp_opens(std::string_view snmp);

// One network namespace as sockstate sees it, for `snapshot` and `run` alike: a sock_diag
// socket and an rtnetlink socket made inside it (so they keep it for their life), its
// addresses (kept current when watched), its LISTEN sockets and ephemeral port range,
// and optionally its destroy listeners (one per protocol: a storm of one protocol's
// destroy events cannot overflow another's buffer).
class NamespaceView {
 public:
  // In the calling thread's namespace (`info`: what is known of it, inode at least).
  static Result<NamespaceView> open_here(proc::NetnsInfo info, const ViewOptions& options);
  // Inside another namespace, entered on a short-lived thread (CAP_SYS_ADMIN).
  static Result<NamespaceView> open_in(proc::NetnsInfo info, const ViewOptions& options);

  [[nodiscard]] const proc::NetnsInfo& info() const { return info_; }
  proc::NetnsInfo& info() { return info_; }

  // This namespace's LISTEN sockets of `families` into listeners(), each also to on_listener.
  Result<void> dump_listeners(bool inet, bool inet6, netlink::DumpStats& stats,
                              const std::function<void(const netlink::SocketEntry&)>& on_listener);
  // A dump of one family, each socket tagged with this namespace's inode.
  Result<void> dump(const netlink::DumpRequest& request, netlink::CookieSet& seen,
                    netlink::DumpStats& stats,
                    const std::function<void(const netlink::SocketEntry&)>& on_socket);

  // One socket of a dump as the kernel has it now, with its tcp_info, tagged like dump()'s;
  // nullopt when it is gone. Not during a dump.
  Result<std::optional<netlink::SocketEntry>> lookup(const netlink::SocketEntry& socket,
                                                     netlink::DumpStats& stats);

  [[nodiscard]] const flow::ListenerTable& listeners() const { return listeners_; }
  [[nodiscard]] const flow::HostAddresses& addresses() const { return addresses_; }

  // Dumps the addresses again when the kernel announced a change since the last call.
  Result<bool> refresh_addresses();
  // The route's preferred source towards `peer` (endpoint repair); nullopt when none.
  std::optional<flow::Address> route_source(const flow::Address& peer);

  [[nodiscard]] int address_watch_fd() const { return watch_ ? watch_->fd() : -1; }
  // The destroy listener of `protocol`; nullptr when none was opened.
  netlink::DestroyListener* destroy(std::uint8_t protocol);
  [[nodiscard]] const std::vector<netlink::DestroyListener>& destroy_listeners() const {
    return destroy_;
  }
  // Datagrams discarded on this namespace's sockets because the kernel did not send them.
  [[nodiscard]] std::uint64_t foreign() const;

  // The namespace's TCP connections made so far (parse_tcp_opens()); nullopt without
  // ViewOptions::tcp_counters or when the file cannot be read.
  std::optional<std::uint64_t> tcp_opens();

 private:
  NamespaceView(proc::NetnsInfo info, netlink::NetlinkSocket diag, netlink::NetlinkSocket route)
      : info_(std::move(info)), diag_(std::move(diag)), route_(std::move(route)) {}
  static Result<NamespaceView> open(proc::NetnsInfo info, const ViewOptions& options);
  Result<void> load_addresses();

  proc::NetnsInfo info_;
  netlink::NetlinkSocket diag_;
  netlink::NetlinkSocket route_;
  std::optional<netlink::NetlinkSocket> watch_;
  std::vector<netlink::DestroyListener> destroy_;  // filled at open only: stable addresses
  Fd snmp_;  // /proc/thread-self/net/snmp opened inside the namespace: it stays bound to it
  flow::ListenerTable base_;  // empty, with the namespace's ephemeral port range
  flow::ListenerTable listeners_;
  flow::HostAddresses addresses_;
  std::vector<std::uint8_t> buf_;
};

// How the full owner walk lists who holds which socket: the kernel's task_file iterator
// (BPF) where it loads, else /proc/<pid>/fd; the iterator or nothing; /proc only.
enum class OwnerWalk : std::uint8_t { kAuto, kBpf, kProc };

struct AttributorOptions {
  bool process = false;  // actor.process from /proc/*/fd
  OwnerWalk walk = OwnerWalk::kAuto;
  std::string proc_root = "/proc";
  std::string cgroup_root;  // empty: the cgroup2 mount
  std::string root = "/";   // /etc below it (login.defs)
};

// Who is behind a socket: its owner uid as a user, its cgroup, and with `process` the
// process that holds it.
class Attributor {
 public:
  explicit Attributor(const AttributorOptions& options);

  // The full walk (`process` only; nullopt without): the holders from the kernel's
  // iterator, or from /proc (OwnerWalk), then each holder's attributes from /proc.
  Result<std::optional<proc::ScanStats>> scan();
  // Why the last scan() walked /proc where the options allowed the iterator ("": it did
  // not, or the iterator was used).
  [[nodiscard]] const std::string& iterator_unused() const { return iterator_unused_; }
  [[nodiscard]] bool used_iterator() const { return used_iterator_; }

  // The owner of a socket. Pointers stay valid until the next scan or refresh.
  flow::Owner owner_of(const flow::SocketFacts& e, const proc::Container* netns_container);

  [[nodiscard]] proc::OwnerMap* owners() { return owners_ ? &*owners_ : nullptr; }
  [[nodiscard]] const proc::CgroupResolver& cgroups() const { return cgroups_; }

 private:
  std::optional<proc::OwnerMap> owners_;
  OwnerWalk walk_ = OwnerWalk::kAuto;
  std::string iterator_unused_;
  bool used_iterator_ = false;
  proc::CgroupResolver cgroups_;
  proc::UserDirectory users_;
};

}  // namespace sockstate::collect

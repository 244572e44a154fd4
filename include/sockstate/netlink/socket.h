#pragma once

#include <cstdint>
#include <span>

#include "sockstate/common/error.h"

struct mnl_socket;

namespace sockstate::netlink {

// A NETLINK_SOCK_DIAG (or NETLINK_ROUTE) socket (libmnl), close-on-exec, bound to a kernel-assigned
// port id and connected to the kernel, so it accepts only the kernel's messages. It only sends and
// receives bytes; parsing is DumpParser's job. The socket keeps the network namespace it was
// created in.
class NetlinkSocket {
 public:
  // groups: multicast groups to join at bind time (0 for a dump-only socket);
  // protocol: NETLINK_SOCK_DIAG (4), or NETLINK_ROUTE (0) for rtnetlink.
  static Result<NetlinkSocket> open(unsigned groups = 0, int protocol = 4);

  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  NetlinkSocket(NetlinkSocket&& other) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& other) noexcept;
  ~NetlinkSocket();

  [[nodiscard]] int fd() const;
  [[nodiscard]] std::uint32_t portid() const;
  // A fresh sequence number for the next request.
  std::uint32_t next_seq() { return ++seq_; }

  Result<void> send(std::span<const std::uint8_t> message) const;
  // The next datagram the kernel sent into buf; retries EINTR. Datagrams from any other
  // sender (port id != 0) are discarded and counted in foreign(), whatever their size.
  // ENOSPC: a kernel datagram did not fit (MSG_TRUNC), and is gone. ENOBUFS: the kernel
  // dropped messages for this socket.
  Result<std::size_t> receive(std::span<std::uint8_t> buf);

  // Datagrams discarded because a process, not the kernel, sent them.
  [[nodiscard]] std::uint64_t foreign() const { return foreign_; }

 private:
  explicit NetlinkSocket(mnl_socket* nl);
  mnl_socket* nl_ = nullptr;
  std::uint32_t seq_ = 0;
  std::uint64_t foreign_ = 0;
};

}  // namespace sockstate::netlink

#pragma once

#include <cstdint>
#include <span>

#include "sockstate/common/error.h"

struct mnl_socket;

namespace sockstate::netlink {

// A NETLINK_SOCK_DIAG socket (libmnl), close-on-exec, bound to a kernel-assigned port id.
// It only sends and receives bytes; parsing is DumpParser's job. The socket keeps the
// network namespace it was created in.
class NetlinkSocket {
 public:
  // groups: multicast groups to join at bind time (0 for a dump-only socket).
  static Result<NetlinkSocket> open(unsigned groups = 0);

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
  // One datagram into buf; retries EINTR. ENOSPC means the datagram did not fit (MSG_TRUNC);
  // ENOBUFS means the kernel dropped messages for this socket.
  Result<std::size_t> receive(std::span<std::uint8_t> buf) const;

 private:
  explicit NetlinkSocket(mnl_socket* nl);
  mnl_socket* nl_ = nullptr;
  std::uint32_t seq_ = 0;
};

}  // namespace sockstate::netlink

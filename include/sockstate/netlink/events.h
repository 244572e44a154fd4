#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/netlink/socket.h"
#include "sockstate/netlink/types.h"

namespace sockstate::netlink {

// The kernel's socket-destroy notifications of one protocol (for TCP the groups
// SKNLGRP_INET_TCP_DESTROY and SKNLGRP_INET6_TCP_DESTROY; UDP has its own two) for the
// network namespace the listener was created in. One message per destroyed full socket,
// with its final tcp_info and cookie but inode and uid 0, in state CLOSE. Joining needs no
// privilege.
class DestroyListener {
 public:
  // Opens the socket, joins both groups and sets the receive buffer (SO_RCVBUFFORCE
  // when allowed, else SO_RCVBUF up to net.core.rmem_max). Non-blocking.
  // `protocol`: IPPROTO_TCP or IPPROTO_UDP (another is EPROTONOSUPPORT).
  static Result<DestroyListener> open(std::size_t receive_buffer, std::uint8_t protocol = 6);

  [[nodiscard]] std::uint8_t protocol() const { return protocol_; }

  [[nodiscard]] int fd() const { return sock_.fd(); }
  [[nodiscard]] std::size_t receive_buffer() const { return receive_buffer_; }

  // Reads the datagrams queued now (at most `max_datagrams`, and 4096, a call: whoever
  // floods the socket must not keep the daemon from its other duties) and calls
  // on_destroy for each socket. Returns false (and counts an overflow) when the kernel
  // dropped events since the last read (ENOBUFS): the caller must resync with a dump.
  // Doubles the receive buffer on overflow, up to max_buffer.
  Result<bool> drain(const std::function<void(const SocketEntry&)>& on_destroy,
                     std::size_t max_buffer, std::size_t max_datagrams = SIZE_MAX);

  [[nodiscard]] std::uint64_t events() const { return events_; }
  [[nodiscard]] std::uint64_t overflows() const { return overflows_; }
  // Destroy messages the kernel could not queue on this socket since it opened (its
  // sk_drops, SO_MEMINFO): one each, exactly; the kernel's 32-bit counter is widened here
  // (read at least once per 4 billion drops). What was read last when the kernel will not
  // say.
  std::uint64_t dropped();
  [[nodiscard]] std::uint64_t malformed() const { return malformed_; }
  // Datagrams another process sent (forged events): discarded, never parsed.
  [[nodiscard]] std::uint64_t foreign() const { return sock_.foreign(); }

 private:
  explicit DestroyListener(NetlinkSocket sock) : sock_(std::move(sock)) {}
  Result<void> set_receive_buffer(std::size_t bytes);

  NetlinkSocket sock_;
  std::size_t receive_buffer_ = 0;
  std::vector<std::uint8_t> buf_ = std::vector<std::uint8_t>(kDumpBufferSize);
  std::uint64_t events_ = 0;
  std::uint64_t overflows_ = 0;
  std::uint64_t malformed_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint32_t drops_raw_ = 0;  // sk_drops at the last read
  std::uint8_t protocol_ = 6;
};

// Decodes the destroy messages of one datagram (exposed for tests). Messages that are
// not SOCK_DIAG_BY_FAMILY are skipped; a malformed one is counted and skipped.
void parse_destroy_datagram(std::span<const std::uint8_t> datagram,
                            const std::function<void(const SocketEntry&)>& on_destroy,
                            std::uint64_t& malformed);

}  // namespace sockstate::netlink

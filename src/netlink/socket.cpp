#include "sockstate/netlink/socket.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>
#include <utility>

namespace sockstate::netlink {

NetlinkSocket::NetlinkSocket(mnl_socket* nl)
    // Start from the clock, as iproute2 does, so a reused port id is unlikely to accept a
    // stale answer meant for an earlier process.
    : nl_(nl), seq_(static_cast<std::uint32_t>(std::time(nullptr))) {}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : nl_(std::exchange(other.nl_, nullptr)), seq_(other.seq_) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
  if (this != &other) {
    if (nl_ != nullptr) {
      mnl_socket_close(nl_);
    }
    nl_ = std::exchange(other.nl_, nullptr);
    seq_ = other.seq_;
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() {
  if (nl_ != nullptr) {
    mnl_socket_close(nl_);
  }
}

Result<NetlinkSocket> NetlinkSocket::open(unsigned groups) {
  mnl_socket* nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
  if (nl == nullptr) {
    return errno_error("cannot open a NETLINK_SOCK_DIAG socket");
  }
  NetlinkSocket sock(nl);
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    return errno_error("cannot bind the NETLINK_SOCK_DIAG socket");
  }
  return sock;
}

int NetlinkSocket::fd() const {
  return mnl_socket_get_fd(nl_);
}

std::uint32_t NetlinkSocket::portid() const {
  return mnl_socket_get_portid(nl_);
}

Result<void> NetlinkSocket::send(std::span<const std::uint8_t> message) const {
  for (;;) {
    const ssize_t n = mnl_socket_sendto(nl_, message.data(), message.size());
    if (n >= 0) {
      return {};
    }
    if (errno != EINTR) {
      return errno_error("cannot send the sock_diag request");
    }
  }
}

Result<std::size_t> NetlinkSocket::receive(std::span<std::uint8_t> buf) const {
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n >= 0) {
      return static_cast<std::size_t>(n);
    }
    if (errno != EINTR) {
      return errno_error("cannot receive from the sock_diag socket");
    }
  }
}

}  // namespace sockstate::netlink

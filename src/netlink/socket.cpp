#include "sockstate/netlink/socket.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <ctime>
#include <string>
#include <utility>

namespace sockstate::netlink {

NetlinkSocket::NetlinkSocket(mnl_socket* nl)
    // Start from the clock, as iproute2 does, so a reused port id is unlikely to accept a
    // stale answer meant for an earlier process.
    : nl_(nl), seq_(static_cast<std::uint32_t>(std::time(nullptr))) {}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : nl_(std::exchange(other.nl_, nullptr)), seq_(other.seq_), foreign_(other.foreign_) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
  if (this != &other) {
    if (nl_ != nullptr) {
      mnl_socket_close(nl_);
    }
    nl_ = std::exchange(other.nl_, nullptr);
    seq_ = other.seq_;
    foreign_ = other.foreign_;
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() {
  if (nl_ != nullptr) {
    mnl_socket_close(nl_);
  }
}

Result<NetlinkSocket> NetlinkSocket::open(unsigned groups, int protocol) {
  static_assert(NETLINK_SOCK_DIAG == 4, "the default of open()");
  const char* name = protocol == NETLINK_ROUTE ? "NETLINK_ROUTE" : "NETLINK_SOCK_DIAG";
  mnl_socket* nl = mnl_socket_open2(protocol, SOCK_CLOEXEC);
  if (nl == nullptr) {
    return errno_error(std::string("cannot open a ") + name + " socket");
  }
  NetlinkSocket sock(nl);
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    return errno_error(std::string("cannot bind the ") + name + " socket");
  }
  // Connected to the kernel, the socket refuses unicast datagrams from other sockets
  // (netlink_getsockbyportid() answers ECONNREFUSED); multicast from a sender with
  // CAP_NET_ADMIN over the namespace still arrives, and receive() drops it.
  const sockaddr_nl kernel{.nl_family = AF_NETLINK, .nl_pad = 0, .nl_pid = 0, .nl_groups = 0};
  if (::connect(sock.fd(), reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) != 0) {
    return errno_error(std::string("cannot connect the ") + name + " socket to the kernel");
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

Result<std::size_t> NetlinkSocket::receive(std::span<std::uint8_t> buf) {
  // Not mnl_socket_recvfrom(): it neither says who sent the datagram nor lets a datagram
  // that does not fit be skipped. Any process that can send into this namespace's
  // netlink (an unprivileged user owns the namespaces made by `unshare -Urn`) could
  // otherwise feed the parser forged kernel messages.
  for (;;) {
    sockaddr_nl from{};
    iovec iov{.iov_base = buf.data(), .iov_len = buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(fd(), &msg, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error("cannot receive from the sock_diag socket");
    }
    if (msg.msg_namelen != sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) {
      ++foreign_;  // only the kernel sends from port id 0
      continue;
    }
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
      return Error{ENOSPC, "a sock_diag datagram did not fit the receive buffer"};
    }
    return static_cast<std::size_t>(n);
  }
}

}  // namespace sockstate::netlink

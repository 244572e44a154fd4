#include "sockstate/netlink/events.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "sockstate/netlink/parser.h"
#include "walk.h"

namespace sockstate::netlink {
namespace {

constexpr std::size_t kDrainBudget = 4096;

constexpr unsigned group_bit(unsigned group) {
  return 1U << (group - 1);
}

}  // namespace

void parse_destroy_datagram(std::span<const std::uint8_t> datagram,
                            const std::function<void(const SocketEntry&)>& on_destroy,
                            std::uint64_t& malformed) {
  auto event = [&](const nlmsghdr& nlh,
                   std::span<const std::uint8_t> payload) -> Result<detail::Walk> {
    if (nlh.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      auto entry = decode_socket(payload);
      if (entry) {
        on_destroy(*entry);
      } else {
        ++malformed;  // one bad event: the messages after it are still events
      }
    }
    return detail::Walk::kNext;
  };
  // A length that does not fit ends the datagram, counted once: nothing after it can be
  // found. Bytes too few for a header after the last message hold no event to count.
  if (auto walked = detail::for_each_message(datagram, event); !walked) {
    ++malformed;
  }
}

Result<DestroyListener> DestroyListener::open(std::size_t receive_buffer, std::uint8_t protocol) {
  std::uint32_t groups = 0;
  if (protocol == IPPROTO_TCP) {
    groups = group_bit(SKNLGRP_INET_TCP_DESTROY) | group_bit(SKNLGRP_INET6_TCP_DESTROY);
  } else if (protocol == IPPROTO_UDP) {
    groups = group_bit(SKNLGRP_INET_UDP_DESTROY) | group_bit(SKNLGRP_INET6_UDP_DESTROY);
  } else {
    return Error{EPROTONOSUPPORT,
                 "no socket-destroy groups for protocol " + std::to_string(protocol)};
  }
  auto sock = NetlinkSocket::open(groups);
  if (!sock) {
    return Error{sock.error().errnum,
                 "cannot join the socket-destroy groups: " + sock.error().message()};
  }
  DestroyListener listener(std::move(*sock));
  listener.protocol_ = protocol;
  const int flags = ::fcntl(listener.fd(), F_GETFL);
  if (flags < 0 || ::fcntl(listener.fd(), F_SETFL, flags | O_NONBLOCK) < 0) {
    return errno_error("cannot make the destroy listener non-blocking");
  }
  if (auto set = listener.set_receive_buffer(receive_buffer); !set) {
    return set.error();
  }
  return listener;
}

std::uint64_t DestroyListener::dropped() {
  std::array<std::uint32_t, SK_MEMINFO_VARS> meminfo{};
  socklen_t len = sizeof meminfo;
  if (::getsockopt(fd(), SOL_SOCKET, SO_MEMINFO, meminfo.data(), &len) == 0 &&
      len >= (SK_MEMINFO_DROPS + 1) * sizeof(std::uint32_t)) {
    const std::uint32_t raw = meminfo[SK_MEMINFO_DROPS];
    dropped_ += static_cast<std::uint32_t>(raw - drops_raw_);  // modulo 2^32: wraps counted
    drops_raw_ = raw;
  }
  return dropped_;
}

Result<void> DestroyListener::set_receive_buffer(std::size_t bytes) {
  const int value = static_cast<int>(std::min<std::size_t>(bytes, 1U << 30));
  // SO_RCVBUFFORCE (CAP_NET_ADMIN) passes net.core.rmem_max; without the capability
  // SO_RCVBUF is capped there, which is still better than the default.
  if (::setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &value, sizeof value) != 0 &&
      ::setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &value, sizeof value) != 0) {
    return errno_error("cannot set the destroy listener's receive buffer");
  }
  int actual = 0;
  socklen_t len = sizeof actual;
  if (::getsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &actual, &len) == 0) {
    receive_buffer_ = static_cast<std::size_t>(actual);  // the kernel reports it doubled
  }
  return {};
}

Result<bool> DestroyListener::drain(const std::function<void(const SocketEntry&)>& on_destroy,
                                    std::size_t max_buffer, std::size_t max_datagrams) {
  bool complete = true;
  auto count = [&](const SocketEntry& e) {
    ++events_;
    on_destroy(e);
  };
  // At most this many datagrams a call: whoever floods the socket (a namespace owner can
  // multicast to it) must not keep the daemon from its polls and watchdog; the socket
  // stays readable, so the loop comes back for the rest.
  for (std::size_t budget = std::min<std::size_t>(kDrainBudget, max_datagrams); budget > 0;
       --budget) {
    auto n = sock_.receive(buf_);
    if (!n) {
      const int err = n.error().errnum;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        return complete;
      }
      if (err == ENOSPC) {
        ++malformed_;  // a kernel datagram larger than any destroy message: skip it
        continue;
      }
      if (err == ENOBUFS) {
        // Events were lost. Reported once per overflow; what is queued after it is good.
        ++overflows_;
        complete = false;
        if (receive_buffer_ < max_buffer) {
          (void)set_receive_buffer(std::min(receive_buffer_ * 2, max_buffer));
        }
        continue;
      }
      return n.error();
    }
    parse_destroy_datagram(std::span(buf_.data(), *n), count, malformed_);
  }
  return complete;
}

}  // namespace sockstate::netlink

#include "sockstate/netlink/rtnetlink.h"

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/types.h"
#include "walk.h"

namespace sockstate::netlink {
namespace {

std::size_t address_size(std::uint8_t family) {
  return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

// What an rtnetlink payload is called in the walker's errors, which these decoders drop:
// an attribute that does not fit makes the message no address at all, and bytes after
// the last attribute too few for another are left alone.
constexpr std::string_view kMessage = "rtnetlink message";

std::optional<IfAddress> address_of(std::uint8_t family, std::span<const std::uint8_t> data) {
  const std::size_t size = address_size(family);
  if (size == 0 || data.size() != size) {
    return std::nullopt;
  }
  IfAddress a;
  a.family = family;
  std::memcpy(a.addr.data(), data.data(), size);
  return a;
}

}  // namespace

unsigned address_change_groups() {
  return RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
}

std::optional<IfAddress> decode_address(std::span<const std::uint8_t> payload) {
  if (payload.size() < sizeof(ifaddrmsg)) {
    return std::nullopt;
  }
  ifaddrmsg ifa{};
  std::memcpy(&ifa, payload.data(), sizeof ifa);
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on a
  // point-to-point link, and the only one IPv6 sends.
  std::optional<IfAddress> local;
  std::optional<IfAddress> address;
  const bool whole =
      detail::for_each_attribute(payload, sizeof ifa, kMessage, [&](unsigned type, auto data) {
        if (type == IFA_LOCAL) {
          local = address_of(ifa.ifa_family, data);
        } else if (type == IFA_ADDRESS) {
          address = address_of(ifa.ifa_family, data);
        }
      }).ok();
  if (!whole) {
    return std::nullopt;
  }
  return local ? local : address;
}

std::optional<IfAddress> decode_route_source(std::span<const std::uint8_t> payload) {
  if (payload.size() < sizeof(rtmsg)) {
    return std::nullopt;
  }
  rtmsg rtm{};
  std::memcpy(&rtm, payload.data(), sizeof rtm);
  std::optional<IfAddress> source;
  const bool whole =
      detail::for_each_attribute(payload, sizeof rtm, kMessage, [&](unsigned type, auto data) {
        if (type == RTA_PREFSRC) {
          source = address_of(rtm.rtm_family, data);
        }
      }).ok();
  return whole ? source : std::nullopt;
}

std::optional<DefaultRoute> decode_default_route(std::span<const std::uint8_t> payload) {
  if (payload.size() < sizeof(rtmsg)) {
    return std::nullopt;
  }
  rtmsg rtm{};
  std::memcpy(&rtm, payload.data(), sizeof rtm);
  if (rtm.rtm_dst_len != 0 || rtm.rtm_type != RTN_UNICAST) {
    return std::nullopt;
  }
  DefaultRoute route;
  unsigned table = rtm.rtm_table;
  const bool whole =
      detail::for_each_attribute(payload, sizeof rtm, kMessage, [&](unsigned type, auto data) {
        if (type == RTA_PREFSRC) {
          route.prefsrc = address_of(rtm.rtm_family, data);
        } else if (type == RTA_GATEWAY) {
          route.gateway = address_of(rtm.rtm_family, data);
        } else if (type == RTA_TABLE && data.size() == sizeof(std::uint32_t)) {
          std::uint32_t t = 0;
          std::memcpy(&t, data.data(), sizeof t);
          table = t;
        }
      }).ok();
  if (!whole || table != RT_TABLE_MAIN) {
    return std::nullopt;
  }
  return route;
}

Result<std::optional<DefaultRoute>> default_route(NetlinkSocket& sock, std::uint8_t family) {
  std::vector<std::uint8_t> buf(kDumpBufferSize);
  std::array<std::uint8_t, 64> request{};
  nlmsghdr* nlh = mnl_nlmsg_put_header(request.data());
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = sock.next_seq();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = family;
  std::optional<DefaultRoute> found;
  auto done =
      exchange(sock, std::span(request.data(), nlh->nlmsg_len), nlh->nlmsg_seq, buf,
               [&found](std::uint16_t type, std::span<const std::uint8_t> payload) -> Result<void> {
                 if (type == RTM_NEWROUTE && !found) {
                   found = decode_default_route(payload);
                 }
                 return {};
               });
  if (!done) {
    return done.error();
  }
  return found;
}

Result<std::vector<IfAddress>> dump_addresses(NetlinkSocket& sock) {
  std::vector<std::uint8_t> buf(kDumpBufferSize);
  for (int attempt = 0;; ++attempt) {
    std::vector<IfAddress> out;
    std::array<std::uint8_t, 64> request{};
    nlmsghdr* nlh = mnl_nlmsg_put_header(request.data());
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = sock.next_seq();
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_UNSPEC;
    auto done =
        exchange(sock, std::span(request.data(), nlh->nlmsg_len), nlh->nlmsg_seq, buf,
                 [&out](std::uint16_t type, std::span<const std::uint8_t> payload) -> Result<void> {
                   if (type == RTM_NEWADDR) {
                     if (auto a = decode_address(payload)) {
                       out.push_back(*a);
                     }
                   }
                   return {};
                 });
    if (!done) {
      return done.error();
    }
    if (done->complete() || attempt == kMaxRedos) {
      return out;
    }
  }
}

Result<std::optional<IfAddress>> route_source(NetlinkSocket& sock, const IfAddress& peer) {
  const std::size_t size = address_size(peer.family);
  if (size == 0) {
    return std::optional<IfAddress>{};
  }
  std::array<std::uint8_t, 128> request{};
  nlmsghdr* nlh = mnl_nlmsg_put_header(request.data());
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = sock.next_seq();
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = peer.family;
  rtm->rtm_dst_len = static_cast<unsigned char>(size * 8);
  mnl_attr_put(nlh, RTA_DST, size, peer.addr.data());
  std::optional<IfAddress> source;
  std::vector<std::uint8_t> buf(8192);
  auto done = exchange(
      sock, std::span(request.data(), nlh->nlmsg_len), nlh->nlmsg_seq, buf,
      [&source](std::uint16_t type, std::span<const std::uint8_t> payload) -> Result<void> {
        if (type == RTM_NEWROUTE) {
          source = decode_route_source(payload);
        }
        return {};
      });
  if (!done) {
    if (done.error().errnum == ENETUNREACH || done.error().errnum == EHOSTUNREACH) {
      return std::optional<IfAddress>{};
    }
    return done.error();
  }
  return source;
}

Result<bool> drain_changes(NetlinkSocket& sock, std::vector<std::uint8_t>& buf) {
  bool changed = false;
  // Bounded, like every drain: a namespace's owner can churn addresses without end. What
  // is left is read at the next call; the addresses are dumped again either way.
  for (int budget = 4096; budget > 0; --budget) {
    auto n = sock.receive(buf);
    if (!n) {
      const int err = n.error().errnum;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        return changed;
      }
      if (err == ENOBUFS || err == ENOSPC) {
        changed = true;  // announcements lost: dump again
        continue;
      }
      return n.error();
    }
    changed = true;
  }
  return true;
}

}  // namespace sockstate::netlink

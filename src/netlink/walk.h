#pragma once
// The one netlink message loop and the one attribute walker of src/netlink (not a public
// header): how a datagram splits into messages, and a message into attributes. What a
// message or an attribute means is each caller's business; only the framing is here.

#include <linux/netlink.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "sockstate/common/error.h"
#include "sockstate/netlink/types.h"

namespace sockstate::netlink::detail {

// Whether a message walk goes on after a message.
enum class Walk : std::uint8_t { kNext, kStop };

// Calls on_message(header, payload) for each whole message of `datagram`, in order, until
// it returns Walk::kStop or an Error (which ends the walk too). A message whose
// nlmsg_len does not fit what is left of the datagram ends it with an EBADMSG Error.
// Returns how many bytes are left after the last message when they are too few for a
// header: 0 for a datagram that ends with a message (or a walk that was stopped); the
// caller says whether that is malformed. Never reads past the datagram, even when the last
// message's length, aligned, would.
template <typename OnMessage>
Result<std::size_t> for_each_message(std::span<const std::uint8_t> datagram,
                                     OnMessage&& on_message) {
  std::size_t pos = 0;
  while (pos < datagram.size()) {
    const std::size_t left = datagram.size() - pos;
    if (left < sizeof(nlmsghdr)) {
      return left;
    }
    nlmsghdr nlh{};
    std::memcpy(&nlh, datagram.data() + pos, sizeof nlh);
    if (nlh.nlmsg_len < sizeof(nlmsghdr) || nlh.nlmsg_len > left) {
      return Error{EBADMSG, "netlink message length " + std::to_string(nlh.nlmsg_len) +
                                " does not fit the " + std::to_string(left) + " bytes received"};
    }
    Result<Walk> next =
        on_message(nlh, datagram.subspan(pos + NLMSG_HDRLEN, nlh.nlmsg_len - NLMSG_HDRLEN));
    if (!next) {
      return next.error();
    }
    if (*next == Walk::kStop) {
      return std::size_t{0};
    }
    pos += align4(nlh.nlmsg_len);
  }
  return std::size_t{0};
}

// Calls on_attribute(type, data) for each whole attribute after the message's fixed
// header of `header` bytes (type without the NLA_F_NESTED and NLA_F_NET_BYTEORDER bits).
// An attribute whose nla_len does not fit the rest of the payload ends the walk with an
// EBADMSG Error naming `message` (what the payload is, for the error). Returns how many
// bytes are left after the last attribute when they are too few for an attribute header:
// 0 for a payload that ends with an attribute; the caller says whether that is malformed.
// Walked by hand rather than with mnl_attr_parse(), which stops silently at a truncated
// attribute.
template <typename OnAttribute>
Result<std::size_t> for_each_attribute(std::span<const std::uint8_t> payload, std::size_t header,
                                       std::string_view message, OnAttribute&& on_attribute) {
  std::size_t pos = align4(header);
  while (pos < payload.size()) {
    const std::size_t left = payload.size() - pos;
    if (left < sizeof(nlattr)) {
      return left;
    }
    nlattr attr{};
    std::memcpy(&attr, payload.data() + pos, sizeof attr);
    if (attr.nla_len < sizeof(nlattr) || attr.nla_len > left) {
      return Error{EBADMSG, "attribute length " + std::to_string(attr.nla_len) +
                                " does not fit the " + std::string(message)};
    }
    on_attribute(
        static_cast<unsigned>(attr.nla_type) & static_cast<unsigned>(NLA_TYPE_MASK),
        payload.subspan(pos + align4(sizeof(nlattr)), attr.nla_len - align4(sizeof(nlattr))));
    pos += align4(attr.nla_len);
  }
  return std::size_t{0};
}

}  // namespace sockstate::netlink::detail

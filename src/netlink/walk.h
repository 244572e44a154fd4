#pragma once
// The one attribute walker of src/netlink (not a public header): how a message splits into
// attributes. What an attribute means is each caller's business; only the framing is here.

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

#include "sockstate/ocsf/tcp_state.h"

#include <string>

#include "sockstate/netlink/types.h"

namespace sockstate::ocsf {

namespace {

using netlink::state_bit;

struct NamedMask {
  std::string_view name;  // normalised: lower case, '_' for '-'
  std::uint32_t mask;
  bool alias = false;  // accepted, not listed (an `ss` spelling of a listed name)
};

// Names are the contract's captions; a few `ss` spellings are accepted as well.
// CLOSED selects the only TCP_CLOSE sockets the kernel dumps: bound-inactive ones.
constexpr std::array<NamedMask, 17> kNames = {{
    {"established", state_bit(netlink::kTcpEstablished)},
    {"syn_sent", state_bit(netlink::kTcpSynSent)},
    {"syn_received", state_bit(netlink::kTcpSynRecv) | state_bit(netlink::kTcpNewSynRecv)},
    {"syn_recv", state_bit(netlink::kTcpSynRecv) | state_bit(netlink::kTcpNewSynRecv), true},
    {"fin_wait_1", state_bit(netlink::kTcpFinWait1)},
    {"fin_wait_2", state_bit(netlink::kTcpFinWait2)},
    {"time_wait", state_bit(netlink::kTcpTimeWait)},
    {"closed", state_bit(netlink::kTcpClose) | netlink::kBoundInactiveStates},
    {"close_wait", state_bit(netlink::kTcpCloseWait)},
    {"last_ack", state_bit(netlink::kTcpLastAck)},
    {"listen", state_bit(netlink::kTcpListen)},
    {"listening", state_bit(netlink::kTcpListen), true},
    {"closing", state_bit(netlink::kTcpClosing)},
    {"all", netlink::kAllStates},
    // Every state with a peer: all but LISTEN and CLOSED (as `ss state connected`).
    {"connected",
     netlink::kAllStates & ~state_bit(netlink::kTcpListen) & ~state_bit(netlink::kTcpClose)},
    // Bound but never listened or connected (kernel >= 6.8; reported as CLOSED).
    {"bound", netlink::kBoundInactiveStates},
    {"bound_inactive", netlink::kBoundInactiveStates, true},
}};

}  // namespace

std::optional<std::uint32_t> state_mask_for_name(std::string_view name) {
  std::string norm(name);
  for (char& c : norm) {
    c = c == '-' ? '_' : static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  for (const auto& entry : kNames) {
    if (entry.name == norm) {
      return entry.mask;
    }
  }
  return std::nullopt;
}

std::string state_names() {
  std::string out;
  for (const auto& entry : kNames) {
    if (entry.alias) {
      continue;
    }
    out += out.empty() ? "" : ", ";
    for (const char c : entry.name) {
      out.push_back(c == '_' ? '-' : c);
    }
  }
  return out;
}

}  // namespace sockstate::ocsf

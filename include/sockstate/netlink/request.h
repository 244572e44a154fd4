#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "sockstate/netlink/types.h"

namespace sockstate::netlink {

// Port conditions run by the kernel (INET_DIAG_REQ_BYTECODE). All given conditions must
// hold. `local` and `remote` are the socket's own ends, as `ss sport`/`dport` use them;
// `either` matches a socket with that port at either end.
struct PortFilter {
  std::optional<std::uint16_t> either;
  std::optional<std::uint16_t> local;
  std::optional<std::uint16_t> remote;

  [[nodiscard]] bool empty() const { return !either && !local && !remote; }
};

// inet_diag bytecode for the filter: empty when the filter is empty. The program passes
// the kernel's inet_diag_bc_audit() (jumps word-aligned, every "no" target reachable).
std::vector<std::uint8_t> compile_port_filter(const PortFilter& filter);

struct DumpRequest {
  std::uint8_t family = 0;   // AF_INET, AF_INET6, or AF_UNSPEC: both in one walk
  std::uint32_t states = 0;  // bit (1 << kernel state)
  bool want_info = false;    // ask for INET_DIAG_INFO (struct tcp_info)
  std::vector<std::uint8_t> bytecode;
  std::uint8_t protocol = 6;  // IPPROTO_TCP; AF_UNSPEC is a TCP-only request (see .cpp)
};

// One SOCK_DIAG_BY_FAMILY dump request message, ready to send.
std::vector<std::uint8_t> build_dump_request(const DumpRequest& request, std::uint32_t seq);

// One SOCK_DIAG_BY_FAMILY request for the one socket `socket` names (its 4-tuple, bound
// device and cookie, as a dump gave them), with its tcp_info, acknowledged (NLM_F_ACK):
// the kernel answers with the socket and an acknowledgement, or with ENOENT (it is gone)
// or ESTALE (another socket has its 4-tuple now).
std::vector<std::uint8_t> build_lookup_request(const SocketEntry& socket, std::uint32_t seq);

}  // namespace sockstate::netlink

#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "sockstate/common/error.h"
#include "sockstate/netlink/types.h"

namespace sockstate::netlink {

// Parses the datagrams of one sock_diag dump from byte buffers, so it is tested from
// recorded dumps (`ss -D`) and hand-built buffers without a socket.
//
// Strict: a message with another sequence number or port id, a truncated message or
// attribute, an NLMSG_ERROR, or an NLMSG_DONE carrying an errno ends the dump with an
// Error. Attributes it does not know are skipped (newer kernels add more).
class DumpParser {
 public:
  using SocketCallback = std::function<void(const SocketEntry&)>;

  // portid 0 accepts any port id (fixtures recorded by another process).
  DumpParser(std::uint32_t seq, std::uint32_t portid) : seq_(seq), portid_(portid) {}

  // Parses one datagram. Returns true once NLMSG_DONE was seen (the dump is complete).
  Result<bool> parse(std::span<const std::uint8_t> datagram, const SocketCallback& on_socket);

  // NLM_F_DUMP_INTR was set on a message: the dump may be inconsistent and should be redone.
  [[nodiscard]] bool interrupted() const { return interrupted_; }
  [[nodiscard]] std::uint64_t sockets() const { return sockets_; }
  [[nodiscard]] std::uint64_t unknown_attributes() const { return unknown_attributes_; }

 private:
  std::uint32_t seq_;
  std::uint32_t portid_;
  bool interrupted_ = false;
  std::uint64_t sockets_ = 0;
  std::uint64_t unknown_attributes_ = 0;
};

// Decodes one SOCK_DIAG_BY_FAMILY payload (struct inet_diag_msg + attributes), as found
// in dump messages and in destroy events. Exposed for tests and the event listener.
Result<SocketEntry> decode_socket(std::span<const std::uint8_t> payload,
                                  std::uint64_t* unknown_attributes = nullptr);

}  // namespace sockstate::netlink

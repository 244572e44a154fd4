#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "sockstate/common/error.h"
#include "sockstate/netlink/types.h"

namespace sockstate::netlink {

// How a datagram of answers ended: more to come, NLMSG_DONE (a dump is complete), or an
// acknowledgement (NLMSG_ERROR 0: a request with NLM_F_ACK was done).
enum class MessagesEnd : std::uint8_t { kMore, kDone, kAcked };

using MessageCallback =
    std::function<Result<void>(std::uint16_t type, std::span<const std::uint8_t> payload)>;

// How every answer to a request is read, for sock_diag and rtnetlink alike (on the one
// message walker of src/netlink, which the destroy events' parser shares). Strict: a message
// with another sequence number or port id (portid 0 accepts any), a truncated message,
// an NLMSG_ERROR, or an NLMSG_DONE carrying an errno ends it with an Error; NLM_F_DUMP_INTR
// sets `interrupted`. Every other message (type >= NLMSG_MIN_TYPE) goes to on_message,
// whose Error ends the loop too.
Result<MessagesEnd> parse_messages(std::span<const std::uint8_t> datagram, std::uint32_t seq,
                                   std::uint32_t portid, bool& interrupted,
                                   const MessageCallback& on_message);

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

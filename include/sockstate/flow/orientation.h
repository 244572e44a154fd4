#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "sockstate/flow/address.h"
#include "sockstate/netlink/types.h"

namespace sockstate::flow {

// Whether the protocol's sockets have TCP's states (IPPROTO_TCP; UDP's have none: the
// kernel keeps them in TCP_CLOSE or TCP_ESTABLISHED, and records carry no tcp_state_id).
constexpr bool has_tcp_states(std::uint8_t protocol) {
  return protocol == 6;
}

// The protocols one word of `snapshot --protocol` or config `protocols` names: "tcp" {6},
// "udp" {17}, "all" {6, 17}; empty for any other word.
std::vector<std::uint8_t> protocols_named(std::string_view word);

// The LISTEN sockets of one network namespace. A connection whose local address and port
// match one (same address, or a wildcard listener on that port) was accepted here.
class ListenerTable {
 public:
  void add(const netlink::SocketEntry& listener);
  [[nodiscard]] bool accepts(const netlink::SocketEntry& connection) const;
  // Whether a listener here owns `addr`:`port` (that address, or the wildcard).
  [[nodiscard]] bool listens(const Address& addr, std::uint16_t port) const;
  [[nodiscard]] std::size_t size() const { return exact_.size() + wildcard_ports_.size(); }

  // The namespace's ephemeral port range (net.ipv4.ip_local_port_range), for guessing
  // the initiator of a connection no listener decides. Default 32768..60999.
  void set_ephemeral_range(std::uint16_t low, std::uint16_t high) {
    ephemeral_low_ = low;
    ephemeral_high_ = high;
  }
  [[nodiscard]] bool ephemeral(std::uint16_t port) const {
    return port >= ephemeral_low_ && port <= ephemeral_high_;
  }

 private:
  struct Key {
    Address addr;
    std::uint16_t port;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const;
  };
  std::unordered_set<Key, KeyHash> exact_;
  std::unordered_set<std::uint16_t> wildcard_ports_;
  std::uint16_t ephemeral_low_ = 32768;
  std::uint16_t ephemeral_high_ = 60999;
};

// network_connection_info.direction_id / boundary_id and observation_point_id values.
enum class Direction : std::uint8_t {
  kUnknown = 0,
  kInbound = 1,
  kOutbound = 2,
  kLateral = 3,
  kLocal = 4
};
enum class Boundary : std::uint8_t { kUnknown = 0, kLocalhost = 1, kInternal = 2, kExternal = 3 };
// Which end of its connection the record's socket is (so a same-host pair is 1 and 2).
enum class ObservationPoint : std::uint8_t { kUnknown = 0, kSource = 1, kDestination = 2 };

// Where a socket stands in its connection, per the output contract.
struct Orientation {
  enum class Shape : std::uint8_t {
    kListener,     // only dst_endpoint (the local end)
    kUnconnected,  // no peer (bound-inactive): only src_endpoint (the local end)
    kAccepted,     // src = remote peer, dst = local socket
    kInitiated,    // src = local socket, dst = remote peer
  };
  Shape shape = Shape::kInitiated;
  Direction direction = Direction::kUnknown;
  Boundary boundary = Boundary::kUnknown;
  ObservationPoint observation_point = ObservationPoint::kUnknown;
  bool assignment_known = false;  // is_src_dst_assignment_known

  [[nodiscard]] bool connected() const {
    return shape == Shape::kAccepted || shape == Shape::kInitiated;
  }
  [[nodiscard]] bool accepted() const { return shape == Shape::kAccepted; }
};

// Who initiated: SYN-SENT did, a request socket or a socket a listener accepts did not;
// otherwise a guess from which port the kernel picked from the ephemeral range.
Orientation initiator(const netlink::SocketEntry& entry, const ListenerTable& listeners);

// Direction, boundary and observation point of a connection of that shape with a peer at
// `remote`, by the contract's perimeter table (the local end is this host, so inside).
void classify(Orientation& o, const Address& remote, const Perimeter& perimeter);

// Both, from the socket's own addresses; a connection no local listener decides whose peer
// is a listener of the same namespace (a loopback pair) was initiated here.
Orientation orient(const netlink::SocketEntry& entry, const ListenerTable& listeners,
                   const Perimeter& perimeter);

}  // namespace sockstate::flow

#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_set>

#include "sockstate/netlink/types.h"

namespace sockstate::ocsf {

// An address in one form for both families: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
using Address = std::array<std::uint8_t, 16>;
Address normalized_address(std::uint8_t family, const std::array<std::uint8_t, 16>& raw);
bool is_ipv4_mapped(const Address& a);
bool is_unspecified(const Address& a);  // 0.0.0.0 or ::
bool is_loopback(const Address& a);     // 127.0.0.0/8 or ::1
// Private (RFC 1918), link-local, CGNAT (100.64/10) and ULA (fc00::/7): the contract's
// "Internal" boundary.
bool is_internal(const Address& a);

// The LISTEN sockets of one network namespace. A connection whose local address and port
// match one (same address, or a wildcard listener on that port) was accepted: inbound.
class ListenerTable {
 public:
  void add(const netlink::SocketEntry& listener);
  [[nodiscard]] bool accepts(const netlink::SocketEntry& connection) const;
  [[nodiscard]] std::size_t size() const { return exact_.size() + wildcard_ports_.size(); }

  // The namespace's ephemeral port range (net.ipv4.ip_local_port_range), for guessing
  // the direction of a connection no listener decides. Default 32768..60999.
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

// Reads net.ipv4.ip_local_port_range below `root` into the table; keeps the default
// when it cannot.
void read_ephemeral_range(ListenerTable& table, const std::string& root = "/");

// network_connection_info.direction_id / boundary_id and observation_point_id values.
enum class Direction : std::uint8_t { kUnknown = 0, kInbound = 1, kOutbound = 2, kLocal = 4 };
enum class Boundary : std::uint8_t { kUnknown = 0, kLocalhost = 1, kInternal = 2, kExternal = 3 };
enum class ObservationPoint : std::uint8_t {
  kUnknown = 0,
  kSource = 1,
  kDestination = 2,
  kBoth = 4
};

// Where a socket stands in its connection, per the output contract.
struct Orientation {
  enum class Shape : std::uint8_t {
    kListener,     // only dst_endpoint (the local end)
    kUnconnected,  // no peer (bound-inactive): only src_endpoint (the local end)
    kInbound,      // src = remote peer, dst = local socket
    kOutbound,     // src = local socket, dst = remote peer
  };
  Shape shape = Shape::kOutbound;
  Direction direction = Direction::kUnknown;
  Boundary boundary = Boundary::kUnknown;
  ObservationPoint observation_point = ObservationPoint::kUnknown;
  bool assignment_known = false;  // is_src_dst_assignment_known
};

Orientation orient(const netlink::SocketEntry& entry, const ListenerTable& listeners);

}  // namespace sockstate::ocsf

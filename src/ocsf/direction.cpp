#include "sockstate/ocsf/direction.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace sockstate::ocsf {

Address normalized_address(std::uint8_t family, const std::array<std::uint8_t, 16>& raw) {
  if (family == AF_INET6) {
    return raw;
  }
  Address a{};
  a[10] = 0xFF;
  a[11] = 0xFF;
  std::memcpy(a.data() + 12, raw.data(), 4);
  return a;
}

bool is_ipv4_mapped(const Address& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](std::uint8_t b) { return b == 0; }) &&
         a[10] == 0xFF && a[11] == 0xFF;
}

bool is_unspecified(const Address& a) {
  if (is_ipv4_mapped(a)) {
    return a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] == 0;
  }
  return std::all_of(a.begin(), a.end(), [](std::uint8_t b) { return b == 0; });
}

bool is_loopback(const Address& a) {
  if (is_ipv4_mapped(a)) {
    return a[12] == 127;
  }
  return std::all_of(a.begin(), a.begin() + 15, [](std::uint8_t b) { return b == 0; }) &&
         a[15] == 1;
}

bool is_internal(const Address& a) {
  if (is_ipv4_mapped(a)) {
    const std::uint8_t b0 = a[12];
    const std::uint8_t b1 = a[13];
    return b0 == 10 ||                          // 10/8
           (b0 == 172 && (b1 & 0xF0) == 16) ||  // 172.16/12
           (b0 == 192 && b1 == 168) ||          // 192.168/16
           (b0 == 169 && b1 == 254) ||          // 169.254/16 link-local
           (b0 == 100 && (b1 & 0xC0) == 64);    // 100.64/10 CGNAT
  }
  return (a[0] & 0xFE) == 0xFC ||                  // fc00::/7 ULA
         (a[0] == 0xFE && (a[1] & 0xC0) == 0x80);  // fe80::/10 link-local
}

std::size_t ListenerTable::KeyHash::operator()(const Key& k) const {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  std::memcpy(&hi, k.addr.data(), 8);
  std::memcpy(&lo, k.addr.data() + 8, 8);
  return std::hash<std::uint64_t>{}(hi * 0x9E3779B97F4A7C15ULL ^ lo ^ k.port);
}

void ListenerTable::add(const netlink::SocketEntry& listener) {
  const Address addr = normalized_address(listener.family, listener.local_addr);
  if (is_unspecified(addr)) {
    wildcard_ports_.insert(listener.local_port);
  } else {
    exact_.insert(Key{addr, listener.local_port});
  }
}

bool ListenerTable::accepts(const netlink::SocketEntry& connection) const {
  if (wildcard_ports_.contains(connection.local_port)) {
    return true;
  }
  if (exact_.empty()) {
    return false;
  }
  return exact_.contains(
      Key{normalized_address(connection.family, connection.local_addr), connection.local_port});
}

void read_ephemeral_range(ListenerTable& table, const std::string& root) {
  const std::string path =
      (root == "/" ? std::string() : root) + "/proc/sys/net/ipv4/ip_local_port_range";
  std::ifstream in(path);
  unsigned low = 0;
  unsigned high = 0;
  if (in >> low >> high && low > 0 && low <= high && high <= 65535) {
    table.set_ephemeral_range(static_cast<std::uint16_t>(low), static_cast<std::uint16_t>(high));
  }
}

Orientation orient(const netlink::SocketEntry& entry, const ListenerTable& listeners) {
  using Shape = Orientation::Shape;
  Orientation o;
  const Address local = normalized_address(entry.family, entry.local_addr);
  const Address remote = normalized_address(entry.family, entry.remote_addr);

  if (entry.state == netlink::kTcpListen) {
    o.shape = Shape::kListener;
    o.assignment_known = true;
    if (is_loopback(local)) {
      o.direction = Direction::kLocal;
      o.boundary = Boundary::kLocalhost;
      o.observation_point = ObservationPoint::kBoth;
    } else {
      o.direction = Direction::kInbound;
      o.observation_point = ObservationPoint::kDestination;
    }
    return o;
  }
  if (is_unspecified(remote) && entry.remote_port == 0) {
    // Bound, never connected: there is no flow to orient.
    o.shape = Shape::kUnconnected;
    if (is_loopback(local)) {
      o.boundary = Boundary::kLocalhost;
    }
    return o;
  }

  // SYN-SENT is an outbound attempt and a request socket an inbound one, whatever the
  // listener table says; otherwise a listener on the local end decides.
  if (entry.state == netlink::kTcpSynSent) {
    o.shape = Shape::kOutbound;
    o.assignment_known = true;
  } else if (entry.state == netlink::kTcpSynRecv || entry.state == netlink::kTcpNewSynRecv ||
             listeners.accepts(entry)) {
    o.shape = Shape::kInbound;
    o.assignment_known = true;
  } else {
    // A guess: the listener may be gone, or no poll has seen it yet. The side whose
    // port the kernel picked from the ephemeral range is the one that connected.
    const bool local_ephemeral = listeners.ephemeral(entry.local_port);
    const bool remote_ephemeral = listeners.ephemeral(entry.remote_port);
    o.shape = (!local_ephemeral && remote_ephemeral) ? Shape::kInbound : Shape::kOutbound;
    o.assignment_known = false;
  }

  if (is_loopback(local) && is_loopback(remote)) {
    o.direction = Direction::kLocal;
    o.boundary = Boundary::kLocalhost;
    o.observation_point = ObservationPoint::kBoth;
    return o;
  }
  const bool inbound = o.shape == Shape::kInbound;
  o.direction = inbound ? Direction::kInbound : Direction::kOutbound;
  o.observation_point = inbound ? ObservationPoint::kDestination : ObservationPoint::kSource;
  o.boundary = is_loopback(remote)   ? Boundary::kLocalhost
               : is_internal(remote) ? Boundary::kInternal
                                     : Boundary::kExternal;
  return o;
}

}  // namespace sockstate::ocsf

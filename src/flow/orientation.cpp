#include "sockstate/flow/orientation.h"

#include <cstring>
#include <functional>

namespace sockstate::flow {

std::vector<std::uint8_t> protocols_named(std::string_view word) {
  if (word == "tcp") {
    return {6};
  }
  if (word == "udp") {
    return {17};
  }
  if (word == "all") {
    return {6, 17};
  }
  return {};
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
  return listens(normalized_address(connection.family, connection.local_addr),
                 connection.local_port);
}

bool ListenerTable::listens(const Address& addr, std::uint16_t port) const {
  if (wildcard_ports_.contains(port)) {
    return true;
  }
  return !exact_.empty() && exact_.contains(Key{addr, port});
}

Orientation initiator(const netlink::SocketEntry& entry, const ListenerTable& listeners) {
  using Shape = Orientation::Shape;
  Orientation o;
  if (!has_tcp_states(entry.protocol)) {
    // UDP (observation.h): a connected socket's peer is the one its connect() named, so
    // it initiated; one not connected receives from anyone, a listener. One without a
    // local port was never bound (a destroy event of a socket closed unused): no flow.
    o.shape = entry.state == netlink::kTcpEstablished ? Shape::kInitiated : Shape::kListener;
    o.assignment_known = true;
    if (entry.local_port == 0) {
      o.shape = Shape::kUnconnected;
      o.assignment_known = false;
    }
    return o;
  }
  if (entry.state == netlink::kTcpListen) {
    o.shape = Shape::kListener;
    o.assignment_known = true;
    return o;
  }
  const Address remote = normalized_address(entry.family, entry.remote_addr);
  if (is_unspecified(remote) && entry.remote_port == 0) {
    o.shape = Shape::kUnconnected;  // bound, never connected: no flow
    return o;
  }
  if (entry.state == netlink::kTcpSynSent) {
    o.shape = Shape::kInitiated;
    o.assignment_known = true;
  } else if (entry.state == netlink::kTcpSynRecv || entry.state == netlink::kTcpNewSynRecv ||
             listeners.accepts(entry)) {
    o.shape = Shape::kAccepted;
    o.assignment_known = true;
  } else {
    // A guess: the listener may be gone, or no poll has seen it yet. The side whose
    // port the kernel picked from the ephemeral range is the one that connected.
    const bool local_ephemeral = listeners.ephemeral(entry.local_port);
    const bool remote_ephemeral = listeners.ephemeral(entry.remote_port);
    o.shape = (!local_ephemeral && remote_ephemeral) ? Shape::kAccepted : Shape::kInitiated;
    o.assignment_known = false;
  }
  return o;
}

void classify(Orientation& o, const Address& remote, const Perimeter& perimeter) {
  using Shape = Orientation::Shape;
  if (o.shape == Shape::kListener || o.shape == Shape::kUnconnected) {
    // No connection: nothing crosses any perimeter. The one endpoint is the local one.
    o.direction = Direction::kUnknown;
    o.boundary = Boundary::kUnknown;
    o.observation_point =
        o.shape == Shape::kListener ? ObservationPoint::kDestination : ObservationPoint::kSource;
    return;
  }
  // The local end is this host by definition (and so inside); only the peer varies.
  const Zone peer = perimeter.zone(remote);
  const bool accepted = o.shape == Shape::kAccepted;
  o.observation_point = accepted ? ObservationPoint::kDestination : ObservationPoint::kSource;
  switch (peer) {
    case Zone::kThisHost:
      o.direction = Direction::kLocal;  // each socket is still one end: 1 or 2
      o.boundary = Boundary::kLocalhost;
      break;
    case Zone::kInside:
      o.direction = Direction::kLateral;
      o.boundary = Boundary::kInternal;
      break;
    case Zone::kOutside:
      o.direction = accepted ? Direction::kInbound : Direction::kOutbound;
      o.boundary = Boundary::kExternal;
      break;
  }
}

Orientation orient(const netlink::SocketEntry& entry, const ListenerTable& listeners,
                   const Perimeter& perimeter) {
  Orientation o = initiator(entry, listeners);
  const Address remote = normalized_address(entry.family, entry.remote_addr);
  if (!o.assignment_known && o.connected() && perimeter.zone(remote) == Zone::kThisHost &&
      listeners.listens(remote, entry.remote_port)) {
    // The peer is a listener of this namespace (no local one owns our port): we connected.
    o.shape = Orientation::Shape::kInitiated;
    o.assignment_known = true;
  }
  classify(o, remote, perimeter);
  return o;
}

}  // namespace sockstate::flow

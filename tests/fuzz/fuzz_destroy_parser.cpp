// One datagram from the socket-destroy multicast groups, which any process that owns the
// network namespace can forge: parse_destroy_datagram must count what is malformed and
// never read outside the datagram. Seeds: the SOCK_DIAG_BY_FAMILY messages of the
// recorded dumps (a destroy event is the same message), cut by tests/fuzz/make-corpus.

#include <linux/inet_diag.h>
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.h"
#include "sockstate/netlink/events.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::uint64_t malformed = 0;
  std::size_t events = 0;
  sockstate::netlink::parse_destroy_datagram(
      std::span<const std::uint8_t>(data, size),
      [&](const sockstate::netlink::SocketEntry& e) {
        ++events;
        sockstate::fuzz::check(!e.has_tcp_info || e.full_socket, "tcp_info on a minisocket");
      },
      malformed);
  // Every event is a header and an inet_diag_msg of the datagram's own bytes: more events
  // than fit means messages were read from beyond it.
  sockstate::fuzz::check(events <= size / (NLMSG_HDRLEN + sizeof(inet_diag_msg)),
                         "more destroy events than the datagram can hold");
  return 0;
}

// One datagram of a sock_diag dump answer, as recvmsg() hands it over: the one netlink
// message loop (parse_messages) and the socket decoder behind every dump. Seeds: the
// datagrams `ss -D` recorded in tests/data/*.nldump, cut by tests/fuzz/make-corpus.

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.h"
#include "sockstate/netlink/parser.h"

namespace {

using sockstate::Result;
using sockstate::fuzz::check;

// iproute2's MAGIC_SEQ, which every recorded message carries; port id 0 accepts any, as
// for fixtures recorded by another process.
constexpr std::uint32_t kSeq = 123456;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> datagram(data, size);
  bool interrupted = false;
  std::uint64_t unknown_attributes = 0;
  const auto end = sockstate::netlink::parse_messages(
      datagram, kSeq, 0, interrupted,
      [&](std::uint16_t type, std::span<const std::uint8_t> payload) -> Result<void> {
        // ASan sees a read past the buffer only once it happens; a payload that merely
        // points past the datagram is caught here.
        check(type >= NLMSG_MIN_TYPE, "a control message reached the callback");
        check(payload.data() >= data && payload.data() + payload.size() <= data + size,
              "a payload outside the datagram");
        auto entry = sockstate::netlink::decode_socket(payload, &unknown_attributes);
        if (!entry) {
          return entry.error();
        }
        check(!entry->has_tcp_info || entry->full_socket, "tcp_info on a minisocket");
        return {};
      });
  if (!end) {
    check(!end.error().message().empty(), "an error without a message");
  }
  return 0;
}

#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/netlink/cookie_set.h"
#include "sockstate/netlink/parser.h"
#include "sockstate/netlink/request.h"
#include "sockstate/netlink/socket.h"
#include "sockstate/netlink/types.h"

namespace sockstate::netlink {

// What one or more dumps did; the numbers behind "nothing is silently lost".
struct DumpStats {
  std::uint64_t sockets = 0;             // delivered to the callback
  std::uint64_t duplicates = 0;          // repeated cookies dropped (chunk boundaries, redos)
  std::uint64_t redos = 0;               // dumps redone: NLM_F_DUMP_INTR or ENOBUFS
  std::uint64_t inconsistent = 0;        // dumps still interrupted after the last redo
  std::uint64_t unknown_attributes = 0;  // attributes newer than our headers, skipped
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
};

inline constexpr int kMaxRedos = 3;

struct Exchange {
  bool lost = false;         // the kernel dropped messages (ENOBUFS) meanwhile
  bool interrupted = false;  // NLM_F_DUMP_INTR: the dump may be inconsistent
  [[nodiscard]] bool complete() const { return !lost && !interrupted; }
};

// Sends one request and reads its answers through parse_messages() until NLMSG_DONE (a
// dump) or an acknowledgement (a request sent with NLM_F_ACK). For sock_diag and
// rtnetlink alike; `buf` is the receive buffer (kDumpBufferSize).
Result<Exchange> exchange(NetlinkSocket& sock, std::span<const std::uint8_t> request,
                          std::uint32_t seq, std::vector<std::uint8_t>& buf,
                          const MessageCallback& on_message, DumpStats* stats = nullptr);

// Runs one dump to completion over `sock`, calling on_socket once for each socket whose
// cookie is not yet in `seen` (and adding it). When the kernel flags the dump interrupted
// or drops messages, the dump is redone (at most kMaxRedos times); sockets already
// delivered are not delivered again.
Result<void> run_dump(NetlinkSocket& sock, const DumpRequest& request, CookieSet& seen,
                      DumpStats& stats, const std::function<void(const SocketEntry&)>& on_socket);

// The socket `socket` names as the kernel has it now, with its tcp_info (one request and
// its answers over `sock`, which no dump may be using); nullopt when it is gone.
Result<std::optional<SocketEntry>> lookup_socket(NetlinkSocket& sock, const SocketEntry& socket,
                                                 std::vector<std::uint8_t>& buf, DumpStats& stats);

}  // namespace sockstate::netlink

#include "sockstate/netlink/dumper.h"

#include <cerrno>
#include <vector>

#include "sockstate/netlink/parser.h"

namespace sockstate::netlink {
namespace {

enum class Outcome { kComplete, kInterrupted };

Result<Outcome> dump_once(NetlinkSocket& sock, const DumpRequest& request, CookieSet& seen,
                          DumpStats& stats, std::vector<std::uint8_t>& buf,
                          const std::function<void(const SocketEntry&)>& on_socket) {
  const std::uint32_t seq = sock.next_seq();
  if (auto sent = sock.send(build_dump_request(request, seq)); !sent) {
    return sent.error();
  }
  DumpParser parser(seq, sock.portid());
  auto deliver = [&](const SocketEntry& entry) {
    if (!seen.insert(entry.cookie).second) {
      ++stats.duplicates;
      return;
    }
    ++stats.sockets;
    on_socket(entry);
  };
  bool lost = false;
  for (;;) {
    auto n = sock.receive(buf);
    if (!n) {
      if (n.error().errnum == ENOBUFS) {
        // The kernel dropped messages for this socket and says so once; the dump itself
        // goes on, so read it to its end and redo it.
        lost = true;
        continue;
      }
      return n.error();
    }
    ++stats.datagrams;
    stats.bytes += *n;
    const std::uint64_t unknown_before = parser.unknown_attributes();
    auto done = parser.parse(std::span(buf.data(), *n), deliver);
    stats.unknown_attributes += parser.unknown_attributes() - unknown_before;
    if (!done) {
      return done.error();
    }
    if (*done) {
      return (lost || parser.interrupted()) ? Outcome::kInterrupted : Outcome::kComplete;
    }
  }
}

}  // namespace

Result<void> run_dump(NetlinkSocket& sock, const DumpRequest& request, CookieSet& seen,
                      DumpStats& stats, const std::function<void(const SocketEntry&)>& on_socket) {
  std::vector<std::uint8_t> buf(kDumpBufferSize);
  for (int attempt = 0;; ++attempt) {
    auto outcome = dump_once(sock, request, seen, stats, buf, on_socket);
    if (!outcome) {
      return outcome.error();
    }
    if (*outcome == Outcome::kComplete) {
      return {};
    }
    if (attempt == kMaxRedos) {
      ++stats.inconsistent;
      return {};
    }
    ++stats.redos;
  }
}

}  // namespace sockstate::netlink

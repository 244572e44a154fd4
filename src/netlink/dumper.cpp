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
  auto deliver = [&](std::uint16_t, std::span<const std::uint8_t> payload) -> Result<void> {
    auto entry = decode_socket(payload, &stats.unknown_attributes);
    if (!entry) {
      return entry.error();
    }
    if (!seen.insert(entry->cookie)) {
      ++stats.duplicates;
      return {};
    }
    ++stats.sockets;
    on_socket(*entry);
    return {};
  };
  auto done = exchange(sock, build_dump_request(request, seq), seq, buf, deliver, &stats);
  if (!done) {
    return done.error();
  }
  return done->complete() ? Outcome::kComplete : Outcome::kInterrupted;
}

}  // namespace

Result<Exchange> exchange(NetlinkSocket& sock, std::span<const std::uint8_t> request,
                          std::uint32_t seq, std::vector<std::uint8_t>& buf,
                          const MessageCallback& on_message, DumpStats* stats) {
  if (auto sent = sock.send(request); !sent) {
    return sent.error();
  }
  Exchange result;
  for (;;) {
    auto n = sock.receive(buf);
    if (!n) {
      if (n.error().errnum == ENOBUFS) {
        // The kernel dropped messages for this socket and says so once; the answer itself
        // goes on, so read it to its end and redo it.
        result.lost = true;
        continue;
      }
      return n.error();
    }
    if (stats != nullptr) {
      ++stats->datagrams;
      stats->bytes += *n;
    }
    auto end = parse_messages(std::span(buf.data(), *n), seq, sock.portid(), result.interrupted,
                              on_message);
    if (!end) {
      return end.error();
    }
    if (*end != MessagesEnd::kMore) {
      return result;
    }
  }
}

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

Result<std::optional<SocketEntry>> lookup_socket(NetlinkSocket& sock, const SocketEntry& socket,
                                                 std::vector<std::uint8_t>& buf, DumpStats& stats) {
  const std::uint32_t seq = sock.next_seq();
  std::optional<SocketEntry> found;
  std::optional<Error> bad;  // a reply that does not decode: said after its acknowledgement,
                             // which must still be read (the socket's next request follows)
  auto deliver = [&](std::uint16_t, std::span<const std::uint8_t> payload) -> Result<void> {
    auto entry = decode_socket(payload, &stats.unknown_attributes);
    if (!entry) {
      bad = entry.error();
      return {};
    }
    found = *entry;
    return {};
  };
  auto done = exchange(sock, build_lookup_request(socket, seq), seq, buf, deliver, &stats);
  if (!done) {
    if (done.error().errnum == ENOENT || done.error().errnum == ESTALE) {
      return std::optional<SocketEntry>{};  // closed meanwhile, or its 4-tuple reused
    }
    return done.error();
  }
  if (bad) {
    return *bad;
  }
  return found;
}

}  // namespace sockstate::netlink

// lookup_socket() against the real kernel: the one socket a dump without tcp_info named,
// asked again with its tcp_info (what the daemon does for new and changed sockets between
// Traffic ticks). Needs root (its own network namespace).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/socket.h"
#include "support/netns_test.h"
#include "support/unique_fd.h"

namespace sockstate::testing {
namespace {

class NetlinkLookup : public NetnsTest {};

// A connected pair over loopback of `family`: {listener, client, server}.
struct Pair {
  UniqueFd listener, client, server;
};
Pair connected_pair(int family, std::uint16_t port) {
  Pair p;
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  }
  const auto* addr = reinterpret_cast<const sockaddr*>(&ss);
  p.listener = UniqueFd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::bind(p.listener.get(), addr, len), 0);
  EXPECT_EQ(::listen(p.listener.get(), 8), 0);
  p.client = UniqueFd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(p.client.get(), addr, len), 0);
  p.server = UniqueFd(::accept4(p.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(p.server.valid());
  return p;
}

// The ESTABLISHED sockets of `family` on `port` (either end), from a dump without tcp_info.
std::vector<netlink::SocketEntry> dump_without_info(netlink::NetlinkSocket& sock, int family,
                                                    std::uint16_t port) {
  std::vector<netlink::SocketEntry> out;
  netlink::CookieSet seen;
  netlink::DumpStats stats;
  const netlink::DumpRequest request{
      static_cast<std::uint8_t>(family), netlink::state_bit(netlink::kTcpEstablished), false, {}};
  auto done = netlink::run_dump(sock, request, seen, stats, [&](const netlink::SocketEntry& e) {
    if (e.local_port == port || e.remote_port == port) {
      out.push_back(e);
    }
  });
  EXPECT_TRUE(done) << done.error().message();
  return out;
}

void abort_socket(UniqueFd& fd) {  // RST, no TIME-WAIT: the socket is gone at once
  const linger hard{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  fd.reset();
}

TEST_F(NetlinkLookup, FindsEachSocketWithItsTcpInfoAndNothingOnceGone) {
  for (const int family : {AF_INET, AF_INET6}) {
    SCOPED_TRACE(family == AF_INET ? "IPv4" : "IPv6");
    const std::uint16_t port = family == AF_INET ? 5301 : 5302;
    Pair p = connected_pair(family, port);
    const std::string data(1234, 'x');
    ASSERT_EQ(::write(p.client.get(), data.data(), data.size()), 1234);
    std::string got(1234, '\0');
    ASSERT_EQ(::recv(p.server.get(), got.data(), got.size(), MSG_WAITALL), 1234);

    auto sock = netlink::NetlinkSocket::open();
    ASSERT_TRUE(sock) << sock.error().message();
    const auto entries = dump_without_info(*sock, family, port);
    ASSERT_EQ(entries.size(), 2U);
    std::vector<std::uint8_t> buf(netlink::kDumpBufferSize);
    netlink::DumpStats stats;
    for (const auto& e : entries) {
      ASSERT_FALSE(e.has_tcp_info);
      auto found = netlink::lookup_socket(*sock, e, buf, stats);
      ASSERT_TRUE(found) << found.error().message();
      ASSERT_TRUE(found->has_value());
      const netlink::SocketEntry& f = **found;
      EXPECT_EQ(f.cookie, e.cookie);
      EXPECT_EQ(f.local_port, e.local_port);
      EXPECT_EQ(f.remote_port, e.remote_port);
      EXPECT_EQ(f.inode, e.inode);
      ASSERT_TRUE(f.has_tcp_info);
      EXPECT_GT(f.info.rtt_us, 0U);
      // The client sent 1234 bytes (and its SYN); the server received them.
      if (e.remote_port == port) {
        EXPECT_EQ(f.info.bytes_acked, 1235U);
      } else {
        EXPECT_EQ(f.info.bytes_received, 1234U);
      }
      // The same 4-tuple under another cookie is another socket: nothing.
      netlink::SocketEntry other = e;
      other.cookie = e.cookie + 1'000'000;
      auto stale = netlink::lookup_socket(*sock, other, buf, stats);
      ASSERT_TRUE(stale) << stale.error().message();
      EXPECT_FALSE(stale->has_value());
    }
    abort_socket(p.client);
    abort_socket(p.server);
    for (const auto& e : entries) {
      auto gone = netlink::lookup_socket(*sock, e, buf, stats);
      ASSERT_TRUE(gone) << gone.error().message();
      EXPECT_FALSE(gone->has_value()) << "cookie " << e.cookie;
    }
  }
}

// The daemon's poll: one dump of both families (TCPDIAG_GETSOCK, AF_UNSPEC) in one walk
// finds the IPv4 and the IPv6 sockets, each once, as the two dumps of one family each do.
TEST_F(NetlinkLookup, OneDumpOfBothFamiliesFindsWhatTwoDumpsFind) {
  Pair v4 = connected_pair(AF_INET, 5303);
  Pair v6 = connected_pair(AF_INET6, 5304);
  auto sock = netlink::NetlinkSocket::open();
  ASSERT_TRUE(sock) << sock.error().message();
  const auto dump = [&](std::uint8_t family) {
    std::vector<std::pair<std::uint64_t, int>> out;  // cookie, family
    netlink::CookieSet seen;
    netlink::DumpStats stats;
    const netlink::DumpRequest request{family, ~netlink::state_bit(netlink::kTcpListen), true, {}};
    auto done = netlink::run_dump(*sock, request, seen, stats, [&](const netlink::SocketEntry& e) {
      if (e.local_port == 5303 || e.remote_port == 5303 || e.local_port == 5304 ||
          e.remote_port == 5304) {
        EXPECT_TRUE(e.has_tcp_info);
        out.emplace_back(e.cookie, e.family);
      }
    });
    EXPECT_TRUE(done) << done.error().message();
    EXPECT_EQ(stats.duplicates, 0U);
    std::sort(out.begin(), out.end());
    return out;
  };
  const auto both = dump(AF_UNSPEC);
  auto each = dump(AF_INET);
  const auto v6_only = dump(AF_INET6);
  each.insert(each.end(), v6_only.begin(), v6_only.end());
  std::sort(each.begin(), each.end());
  ASSERT_EQ(both.size(), 4U);  // two ends of each connection
  EXPECT_EQ(both, each);
  EXPECT_EQ(
      std::count_if(both.begin(), both.end(), [](const auto& c) { return c.second == AF_INET6; }),
      2);
}

}  // namespace
}  // namespace sockstate::testing

// Forged sock_diag messages against the real kernel: a process that can send netlink into
// the collector's network namespace (an unprivileged user owns every namespace made by
// `unshare -Urn`) must not be able to make the destroy listener or a dump accept its
// datagrams, nor make either fail with a datagram too large for the buffer. Needs root
// (its own network namespace, and CAP_NET_ADMIN there to send to a multicast group).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "sockstate/netlink/dumper.h"
#include "sockstate/netlink/events.h"
#include "sockstate/netlink/socket.h"
#include "support/netns_test.h"
#include "support/unique_fd.h"
#include "unit/netlink_fixture.h"

namespace sockstate::testing {
namespace {

using netlink::testing::Bytes;
using netlink::testing::destroy_message;

class NetlinkForgery : public NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    forger_ = UniqueFd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    ASSERT_TRUE(forger_.valid());
    sockaddr_nl self{};
    self.nl_family = AF_NETLINK;
    ASSERT_EQ(::bind(forger_.get(), reinterpret_cast<sockaddr*>(&self), sizeof self), 0);
    const int big = 1 << 20;
    ::setsockopt(forger_.get(), SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  }

  // Sends to every member of the IPv4 destroy group, as a namespace owner can.
  void multicast(const Bytes& datagram) const {
    sockaddr_nl to{};
    to.nl_family = AF_NETLINK;
    to.nl_groups = 1U << (SKNLGRP_INET_TCP_DESTROY - 1);
    ASSERT_EQ(::sendto(forger_.get(), datagram.data(), datagram.size(), 0,
                       reinterpret_cast<const sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(datagram.size()))
        << errno;
  }

  // Sends straight to one socket's port id; returns the errno (0 if it was sent).
  int unicast(const Bytes& datagram, std::uint32_t portid) const {
    sockaddr_nl to{};
    to.nl_family = AF_NETLINK;
    to.nl_pid = portid;
    const ssize_t n = ::sendto(forger_.get(), datagram.data(), datagram.size(), 0,
                               reinterpret_cast<const sockaddr*>(&to), sizeof to);
    return n < 0 ? errno : 0;
  }

  UniqueFd forger_;
};

std::vector<std::uint64_t> drain(netlink::DestroyListener& listener) {
  std::vector<std::uint64_t> cookies;
  auto done =
      listener.drain([&](const netlink::SocketEntry& e) { cookies.push_back(e.cookie); }, 1 << 20);
  EXPECT_TRUE(done) << done.error().message();
  return cookies;
}

TEST_F(NetlinkForgery, DestroyListenerIgnoresForgedEventsAndSurvivesHugeOnes) {
  auto listener = netlink::DestroyListener::open(1 << 20);
  ASSERT_TRUE(listener) << listener.error().message();

  multicast(destroy_message(0xF0F0, 40000, 5099));
  Bytes huge(200 * 1024, 0);  // larger than the 32 KiB receive buffer
  const Bytes event = destroy_message(0xF1F1, 40001, 5099);
  std::copy(event.begin(), event.end(), huge.begin());
  multicast(huge);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(drain(*listener).empty()) << "a forged event was accepted";
  EXPECT_EQ(listener->foreign(), 2U);
  EXPECT_EQ(listener->malformed(), 0U);

  // Unicast to the listener is refused by the kernel: it is connected to port id 0.
  sockaddr_nl self{};
  socklen_t len = sizeof self;
  ASSERT_EQ(::getsockname(listener->fd(), reinterpret_cast<sockaddr*>(&self), &len), 0);
  EXPECT_EQ(unicast(destroy_message(0xF2F2, 40002, 5099), self.nl_pid), ECONNREFUSED);

  // The kernel's own events still arrive.
  UniqueFd server(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(5098);
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(server.get(), 4), 0);
  {
    UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  server.reset();  // destroys the listener and the unaccepted child
  std::vector<std::uint64_t> real;
  for (int i = 0; i < 100 && real.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    real = drain(*listener);
  }
  EXPECT_FALSE(real.empty()) << "no destroy event from the kernel";
  for (const auto c : real) {
    EXPECT_NE(c, 0xF0F0U);
    EXPECT_NE(c, 0xF1F1U);
  }
}

TEST_F(NetlinkForgery, DumpSocketAcceptsOnlyTheKernelsAnswer) {
  auto sock = netlink::NetlinkSocket::open();
  ASSERT_TRUE(sock) << sock.error().message();
  // A forged multicast cannot reach a dump socket (it joined no group), and unicast to it
  // is refused; a forged answer with the right sequence number is therefore never read.
  EXPECT_EQ(unicast(destroy_message(0xF3F3, 40003, 5099), sock->portid()), ECONNREFUSED);
  netlink::CookieSet seen;
  netlink::DumpStats stats;
  netlink::DumpRequest request;
  request.family = AF_INET;
  request.states = 0xFFF;
  std::vector<std::uint64_t> cookies;
  auto done = netlink::run_dump(*sock, request, seen, stats, [&](const netlink::SocketEntry& e) {
    cookies.push_back(e.cookie);
  });
  ASSERT_TRUE(done) << done.error().message();
  for (const auto c : cookies) {
    EXPECT_NE(c, 0xF3F3U);
  }
  EXPECT_EQ(sock->foreign(), 0U);
}

}  // namespace
}  // namespace sockstate::testing

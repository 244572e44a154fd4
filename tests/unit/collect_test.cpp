// The collector's reading of the kernel's TCP counters: the text of /proc/net/snmp, and
// a namespace's count moving when a connection is made (the real kernel, loopback).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockstate/collect/collector.h"
#include "support/unique_fd.h"

namespace sockstate::collect {
namespace {

using sockstate::testing::UniqueFd;

constexpr const char* kSnmp =
    "Ip: Forwarding DefaultTTL InReceives\n"
    "Ip: 1 64 5000\n"
    "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets\n"
    "Tcp: 1 200 120000 -1 655 263 1 148\n"
    "Udp: InDatagrams NoPorts\n"
    "Udp: 1 2\n";

TEST(TcpOpens, ActivePlusPassiveFromTheTcpLines) {
  EXPECT_EQ(parse_tcp_opens(kSnmp), 655U + 263U);
  EXPECT_EQ(parse_tcp_opens("Tcp: PassiveOpens ActiveOpens\nTcp: 7 5\n"), 12U) << "any order";
}

TEST(TcpOpens, AnythingElseIsNoCount) {
  for (const char* bad :
       {"", "Tcp: ActiveOpens PassiveOpens\n", "Ip: 1\nIp: 2\n",
        "Tcp: ActiveOpens PassiveOpens\nTcp: 5 x\n", "Tcp: ActiveOpens PassiveOpens\nTcp: 5 -1\n",
        "Tcp: ActiveOpens\nTcp: 5\n"}) {
    EXPECT_FALSE(parse_tcp_opens(bad)) << bad;
  }
}

TEST(TcpOpens, ANamespaceViewCountsTheConnectionsItsKernelMakes) {
  ViewOptions options;
  options.tcp_counters = true;
  auto view = NamespaceView::open_here(proc::NetnsInfo{}, options);
  ASSERT_TRUE(view) << view.error().message();
  const auto before = view->tcp_opens();
  ASSERT_TRUE(before);
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l.get(), 4), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(s.valid());
  const auto after = view->tcp_opens();
  ASSERT_TRUE(after);
  // Other processes on this host may connect meanwhile: at least our two sockets.
  EXPECT_GE(*after - *before, 2U);

  ViewOptions without;
  auto plain = NamespaceView::open_here(proc::NetnsInfo{}, without);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->tcp_opens()) << "not asked for";
}

}  // namespace
}  // namespace sockstate::collect

#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace sockstate::netlink {

// Receive buffer for dumps: the kernel caps one dump chunk near 32 KiB
// (netlink_dump() limits max_recvmsg_len to 32768), so a larger buffer gains nothing and a
// smaller one costs syscalls. libmnl 1.0.4 has no MNL_SOCKET_DUMP_SIZE.
inline constexpr std::size_t kDumpBufferSize = 32768;

// Kernel TCP states (include/net/tcp_states.h). Debian 12's UAPI headers predate
// TCP_BOUND_INACTIVE (Linux 6.8), so the numbers live here.
enum KernelTcpState : std::uint8_t {
  kTcpEstablished = 1,
  kTcpSynSent = 2,
  kTcpSynRecv = 3,
  kTcpFinWait1 = 4,
  kTcpFinWait2 = 5,
  kTcpTimeWait = 6,
  kTcpClose = 7,
  kTcpCloseWait = 8,
  kTcpLastAck = 9,
  kTcpListen = 10,
  kTcpClosing = 11,
  kTcpNewSynRecv = 12,
  kTcpBoundInactive = 13,
};

// Netlink's 4-byte alignment (NLMSG_ALIGN, NLA_ALIGN), without the sign-converting
// arithmetic of libmnl's MNL_ALIGN macro.
constexpr std::size_t align4(std::size_t n) {
  return (n + 3U) & ~std::size_t{3};
}

constexpr std::uint32_t state_bit(unsigned state) {
  return 1U << state;
}

// Every real state (bits 1..12). Bit 13 (bound-inactive) is left out: those sockets are
// returned only when asked for (kernel >= 6.8), as the issue and `ss` do.
inline constexpr std::uint32_t kAllStates = 0x1FFEU;
inline constexpr std::uint32_t kBoundInactiveStates = state_bit(kTcpBoundInactive);

// The part of struct tcp_info a record uses. Fields the kernel did not send (an older,
// shorter tcp_info) stay 0.
struct TcpInfo {
  std::uint64_t bytes_acked = 0;     // tcpi_bytes_acked: bytes sent and acknowledged
  std::uint64_t bytes_received = 0;  // tcpi_bytes_received
  std::uint32_t segs_out = 0;
  std::uint32_t segs_in = 0;
  std::uint32_t rtt_us = 0;
  std::uint32_t total_retrans = 0;
  // Data bytes transmitted, retransmissions included (Linux >= 4.19), and the
  // retransmitted part: their difference is the data sent, without SYN or FIN.
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_retrans = 0;
  bool has_bytes_sent = false;  // the kernel's tcp_info reached tcpi_bytes_retrans
};

// One socket as the kernel reported it in a sock_diag message. Addresses are in network
// byte order (IPv4 in the first 4 bytes); ports in host byte order.
struct SocketEntry {
  std::uint8_t family = 0;  // AF_INET or AF_INET6
  std::uint8_t state = 0;   // raw kernel idiag_state
  std::uint16_t local_port = 0;
  std::uint16_t remote_port = 0;
  std::array<std::uint8_t, 16> local_addr{};
  std::array<std::uint8_t, 16> remote_addr{};
  std::uint32_t ifindex = 0;
  std::uint64_t cookie = 0;
  std::uint32_t inode = 0;
  std::uint32_t uid = 0;
  std::uint32_t recv_q = 0;
  std::uint32_t send_q = 0;
  // True for a full socket. TIME-WAIT minisockets and request sockets carry no
  // attributes of their own, inode 0 and uid 0: their inode and uid mean nothing.
  bool full_socket = false;
  std::uint8_t shutdown = 0;  // INET_DIAG_SHUTDOWN: RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2
  // INET_DIAG_CGROUP_ID: the cgroup v2 id of the socket's creator (full sockets); 0: none.
  std::uint64_t cgroup_id = 0;
  // The network namespace (nsfs inode) the socket was dumped from. Not in the message:
  // set by whoever knows which namespace the netlink socket lives in; 0: unknown.
  std::uint64_t netns = 0;
  // The transport protocol (IPPROTO_TCP 6, IPPROTO_UDP 17). Not in the message either: the
  // request, or the destroy group, said which protocol's sockets come.
  std::uint8_t protocol = 6;
  bool has_tcp_info = false;
  TcpInfo info;
};

}  // namespace sockstate::netlink

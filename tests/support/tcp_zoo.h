#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/unique_fd.h"

namespace sockstate::testing {

// Kernel TCP states as sock_diag's idiag_state and `ss` report them (include/net/tcp_states.h).
inline constexpr int kTcpEstablished = 1;
inline constexpr int kTcpSynSent = 2;
inline constexpr int kTcpSynRecv = 3;  // also what request sockets (TCP_NEW_SYN_RECV) report
inline constexpr int kTcpFinWait1 = 4;
inline constexpr int kTcpFinWait2 = 5;
inline constexpr int kTcpTimeWait = 6;
inline constexpr int kTcpClose = 7;  // bound-inactive sockets report this
inline constexpr int kTcpCloseWait = 8;
inline constexpr int kTcpLastAck = 9;
inline constexpr int kTcpListen = 10;
inline constexpr int kTcpClosing = 11;
// Pseudo-state bit (kernel >= 6.8): idiag_states must include 1 << 13 for sock_diag to dump
// sockets that are bound but neither listening nor connected. They come back as kTcpClose.
inline constexpr int kTcpBoundInactiveBit = 13;

// "ESTABLISHED", "SYN-SENT", ..., "CLOSED" (7), "CLOSING"; "UNKNOWN" otherwise.
std::string_view tcp_state_name(int kernel_state);

// One socket a TcpZoo expects the kernel to show.
struct HeldSocket {
  int kernel_state = 0;  // 1..11, as `ss` / sock_diag report: 3 for the request socket
  int family = 0;        // AF_INET / AF_INET6
  std::string local_ip;  // "127.0.0.1" or "::1"
  uint16_t local_port = 0;
  std::string remote_ip;  // "" and 0 when none (listener, bound-inactive)
  uint16_t remote_port = 0;
  // True when this socket is the server/accepting side of a connection (expected direction:
  // inbound) or is the listener.
  bool accepted_side = false;
};

// One socket as `ss` (or our own sock_diag dump) showed it.
struct ObservedSocket {
  int kernel_state = 0;
  int family = 0;
  std::string local_ip;
  uint16_t local_port = 0;
  std::string remote_ip;  // "" for a wildcard peer ("0.0.0.0:*", "[::]:*", "*:*")
  uint16_t remote_port = 0;
};

// Parses `ss -tanH` output (one socket per line: State Recv-Q Send-Q Local Peer). Lines it
// does not understand are skipped.
std::vector<ObservedSocket> parse_ss_tcp(std::string_view ss_output);

// Runs `ss -tanH` in the current namespace and parses it. nullopt (and *error) on failure.
// iproute2 6.1 asks the kernel for states 0..11 only, so bound-inactive sockets never show.
std::optional<std::vector<ObservedSocket>> list_tcp_sockets_ss(std::string* error);

// Our own minimal sock_diag dump with only the bound-inactive bit set: the check for state 7
// that `ss` 6.1 cannot do. Empty on kernels < 6.8 (they ignore the bit).
std::optional<std::vector<ObservedSocket>> dump_bound_inactive(int family, std::string* error);

// Whether the running kernel dumps bound-inactive sockets (uname release >= 6.8).
bool kernel_dumps_bound_inactive();

bool matches(const HeldSocket& expected, const ObservedSocket& observed);
std::string describe(const HeldSocket& socket);
std::string describe(const ObservedSocket& socket);

// The entries of `sockets` in `kernel_state` (a free helper that needs no zoo or namespace).
std::vector<HeldSocket> expected_in_state(const std::vector<HeldSocket>& sockets, int kernel_state);

// The expected entries that `observed` lacks. State-7 entries are compared like the others,
// so pass dump_bound_inactive() results (not `ss` 6.1 output) when checking those.
std::vector<HeldSocket> missing_from(const std::vector<HeldSocket>& expected,
                                     const std::vector<ObservedSocket>& observed);

// Holds real kernel TCP sockets in all 11 states on loopback (127.0.0.1 or ::1), frozen with
// nftables drop rules. Must be created inside a private network namespace (see
// enter_private_netns()): it installs nft tables and relies on nothing else using its ports.
//
// Ports: server ports are base_port + 0..9, client ports base_port + 10..18 (the TIME-WAIT
// client uses an ephemeral port), so zoos need base ports kPortSpan apart. Keep them below
// the ephemeral range (net.ipv4.ip_local_port_range, 32768.. by default).
class TcpZoo {
 public:
  static constexpr uint16_t kPortSpan = 20;

  // Builds every state; nullptr and *error on failure (everything built so far is undone).
  static std::unique_ptr<TcpZoo> create(int family, uint16_t base_port, std::string* error);

  // Closes every socket with SO_LINGER {1, 0}, so connections end at once with RST rather
  // than lingering as orphans, then deletes the nft table; the request socket is dropped by
  // its client's RST. The TIME-WAIT minisocket has no fd: it is removed with `ss -K` where
  // the kernel allows it (6.18 does), otherwise it stays until its 60 s run out.
  ~TcpZoo();
  TcpZoo(const TcpZoo&) = delete;
  TcpZoo& operator=(const TcpZoo&) = delete;
  TcpZoo(TcpZoo&&) = delete;
  TcpZoo& operator=(TcpZoo&&) = delete;

  int family() const { return family_; }
  uint16_t base_port() const { return base_port_; }

  // Every socket the kernel should show, both ends of each connection with their own state,
  // plus the listeners used (LISTEN) and the bound-inactive socket (7).
  const std::vector<HeldSocket>& sockets() const { return sockets_; }
  std::vector<HeldSocket> expected_in_state(int kernel_state) const;

  // Polls `ss -tanH` (and dump_bound_inactive() for state 7) until every expected socket is
  // there in its state. nullopt once settled; otherwise what is missing and the last output.
  std::optional<std::string> wait_until_settled(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

  // The bound-inactive socket checked through its fd rather than sock_diag: bound to the
  // expected address (getsockname), not listening (SO_ACCEPTCONN 0), no peer (ENOTCONN).
  std::optional<std::string> check_bound_inactive_fd() const;

 private:
  TcpZoo(int family, uint16_t base_port);
  std::optional<std::string> build();

  int family_;
  uint16_t base_port_;
  std::string table_;  // "ip sockstate_zoo_<base>" / "ip6 ..."
  bool table_installed_ = false;
  std::vector<UniqueFd> fds_;
  int bound_inactive_fd_ = -1;  // owned by fds_
  UniqueFd syn_recv_client_;    // closed after the rules are gone (see the destructor)
  uint16_t time_wait_client_port_ = 0;
  std::vector<HeldSocket> sockets_;
};

}  // namespace sockstate::testing

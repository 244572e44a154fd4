#include "support/tcp_zoo.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include "support/netns.h"

namespace sockstate::testing {
namespace {

using Error = std::optional<std::string>;
using Clock = std::chrono::steady_clock;

// Server ports are base + offset; client ports base + kClientOffset + offset.
constexpr uint16_t kEstablishedOffset = 0;
constexpr uint16_t kSynSentOffset = 1;
constexpr uint16_t kSynRecvOffset = 2;
constexpr uint16_t kFinWait1Offset = 3;
constexpr uint16_t kHalfCloseOffset = 4;  // FIN-WAIT-2 client / CLOSE-WAIT server
constexpr uint16_t kTimeWaitOffset = 5;
constexpr uint16_t kBoundInactiveOffset = 6;
constexpr uint16_t kClosingOffset = 7;
constexpr uint16_t kLastAckOffset = 8;
constexpr uint16_t kListenOffset = 9;
constexpr uint16_t kClientOffset = 10;

constexpr int kStepTimeoutMs = 3000;
constexpr int kListenBacklog = 16;

// SYN-SENT dies after TCP_SYNCNT unanswered SYNs and a request socket after as many
// unanswered SYN-ACKs (a listener's TCP_SYNCNT overrides net.ipv4.tcp_synack_retries for its
// request sockets). The defaults (6 and 5) give ~127 s and ~63 s, and 6.x kernels make the
// first SYN retransmissions linear (net.ipv4.tcp_syn_linear_timeouts), so raise both to keep
// these states for minutes; RTO backoff is capped at 120 s.
constexpr int kSynRetries = 12;

std::string errno_text(const std::string& what, int err = errno) {
  return what + ": " + std::system_category().message(err);
}

std::string loopback_ip(int family) {
  return family == AF_INET ? "127.0.0.1" : "::1";
}

struct Endpoint {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Endpoint loopback_endpoint(int family, uint16_t port) {
  Endpoint ep;
  if (family == AF_INET) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::memcpy(&ep.storage, &sin, sizeof(sin));
    ep.length = sizeof(sin);
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    sin6.sin6_addr = in6addr_loopback;
    std::memcpy(&ep.storage, &sin6, sizeof(sin6));
    ep.length = sizeof(sin6);
  }
  return ep;
}

// Address and port of a sockaddr from getsockname/getpeername.
std::pair<std::string, uint16_t> split_sockaddr(const sockaddr_storage& ss) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin{};
    std::memcpy(&sin, &ss, sizeof(sin));
    ::inet_ntop(AF_INET, &sin.sin_addr, text.data(), static_cast<socklen_t>(text.size()));
    return {text.data(), ntohs(sin.sin_port)};
  }
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, &ss, sizeof(sin6));
    ::inet_ntop(AF_INET6, &sin6.sin6_addr, text.data(), static_cast<socklen_t>(text.size()));
    return {text.data(), ntohs(sin6.sin6_port)};
  }
  return {"", 0};
}

Error set_int_option(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return errno_text(std::string("setsockopt(") + what + ")");
  }
  return std::nullopt;
}

// Every socket is non-blocking so no step can hang; waits are poll()s with a deadline.
Error new_tcp_socket(int family, UniqueFd* out) {
  UniqueFd fd{::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP)};
  if (!fd) {
    return errno_text(family == AF_INET ? "socket(AF_INET)" : "socket(AF_INET6)");
  }
  *out = std::move(fd);
  return std::nullopt;
}

Error bind_loopback(int fd, int family, uint16_t port) {
  const Endpoint ep = loopback_endpoint(family, port);
  if (::bind(fd, ep.addr(), ep.length) != 0) {
    return errno_text("bind(" + loopback_ip(family) + " port " + std::to_string(port) + ")");
  }
  return std::nullopt;
}

Error open_listener(int family, uint16_t port, UniqueFd* out, bool long_synack_retries = false) {
  UniqueFd fd;
  if (auto e = new_tcp_socket(family, &fd))
    return e;
  if (auto e = set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"))
    return e;
  if (long_synack_retries) {
    if (auto e = set_int_option(fd.get(), IPPROTO_TCP, TCP_SYNCNT, kSynRetries, "TCP_SYNCNT")) {
      return e;
    }
  }
  if (auto e = bind_loopback(fd.get(), family, port))
    return e;
  if (::listen(fd.get(), kListenBacklog) != 0) {
    return errno_text("listen(port " + std::to_string(port) + ")");
  }
  *out = std::move(fd);
  return std::nullopt;
}

// Starts a non-blocking connect from `client_port` (0: ephemeral) to `server_port`.
Error start_connect(int family, uint16_t client_port, uint16_t server_port, UniqueFd* out,
                    bool long_syn_retries = false) {
  UniqueFd fd;
  if (auto e = new_tcp_socket(family, &fd))
    return e;
  if (long_syn_retries) {
    if (auto e = set_int_option(fd.get(), IPPROTO_TCP, TCP_SYNCNT, kSynRetries, "TCP_SYNCNT")) {
      return e;
    }
  }
  if (client_port != 0) {
    if (auto e = set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"))
      return e;
    if (auto e = bind_loopback(fd.get(), family, client_port))
      return e;
  }
  const Endpoint ep = loopback_endpoint(family, server_port);
  if (::connect(fd.get(), ep.addr(), ep.length) != 0 && errno != EINPROGRESS) {
    return errno_text("connect(port " + std::to_string(server_port) + ")");
  }
  *out = std::move(fd);
  return std::nullopt;
}

Error wait_connected(int fd, uint16_t server_port) {
  pollfd p{fd, POLLOUT, 0};
  int ready = 0;
  do {
    ready = ::poll(&p, 1, kStepTimeoutMs);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) {
    return "connect to port " + std::to_string(server_port) + " did not complete";
  }
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
    return errno_text("getsockopt(SO_ERROR)");
  }
  if (so_error != 0) {
    return errno_text("connect(port " + std::to_string(server_port) + ")", so_error);
  }
  return std::nullopt;
}

Error accept_one(int listener, uint16_t port, UniqueFd* out) {
  pollfd p{listener, POLLIN, 0};
  int ready = 0;
  do {
    ready = ::poll(&p, 1, kStepTimeoutMs);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) {
    return "nothing to accept on port " + std::to_string(port);
  }
  UniqueFd fd{::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)};
  if (!fd) {
    return errno_text("accept4(port " + std::to_string(port) + ")");
  }
  *out = std::move(fd);
  return std::nullopt;
}

// Waits until the peer's FIN has been processed: the socket reads EOF.
Error wait_eof(int fd, const std::string& what, int timeout_ms = kStepTimeoutMs) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    char byte = 0;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
    if (n == 0) {
      return std::nullopt;
    }
    if (n > 0) {
      return what + ": unexpected data instead of EOF";
    }
    if (errno != EAGAIN && errno != EINTR) {
      return errno_text(what + ": recv");
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return what + ": no FIN arrived within " + std::to_string(timeout_ms) + " ms";
    }
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
}

Error shutdown_write(int fd, const std::string& what) {
  if (::shutdown(fd, SHUT_WR) != 0) {
    return errno_text(what + ": shutdown(SHUT_WR)");
  }
  return std::nullopt;
}

Error local_port_of(int fd, uint16_t* port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return errno_text("getsockname");
  }
  *port = split_sockaddr(ss).second;
  return std::nullopt;
}

// A connected pair: client from `client_port` (0: ephemeral), server accepted on `listener`.
struct Connection {
  UniqueFd client;
  UniqueFd server;
  uint16_t client_port = 0;
};

Error connect_pair(int family, int listener, uint16_t server_port, uint16_t client_port,
                   Connection* out) {
  Connection c;
  if (auto e = start_connect(family, client_port, server_port, &c.client))
    return e;
  if (auto e = wait_connected(c.client.get(), server_port))
    return e;
  if (auto e = accept_one(listener, server_port, &c.server))
    return e;
  if (auto e = local_port_of(c.client.get(), &c.client_port))
    return e;
  *out = std::move(c);
  return std::nullopt;
}

// Splits "addr:port" as ss prints it ("127.0.0.1:80", "[::1]:80", "0.0.0.0:*", "*:*",
// "[fe80::1]%lo:80").
bool parse_ss_endpoint(std::string_view text, bool is_peer, std::string* ip, uint16_t* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (const size_t pct = host.find('%'); pct != std::string_view::npos) {
    host = host.substr(0, pct);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (port_text == "*") {
    *port = 0;
  } else {
    unsigned long value = 0;
    for (const char ch : port_text) {
      if (ch < '0' || ch > '9') {
        return false;
      }
      value = value * 10 + static_cast<unsigned long>(ch - '0');
      if (value > 65535) {
        return false;
      }
    }
    if (port_text.empty()) {
      return false;
    }
    *port = static_cast<uint16_t>(value);
  }
  if (host == "*" || (is_peer && (host == "0.0.0.0" || host == "::"))) {
    host = {};
  }
  *ip = std::string(host);
  return true;
}

int state_from_ss_name(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, int>, 13> kNames{{
      {"ESTAB", kTcpEstablished},
      {"SYN-SENT", kTcpSynSent},
      {"SYN-RECV", kTcpSynRecv},
      {"FIN-WAIT-1", kTcpFinWait1},
      {"FIN-WAIT-2", kTcpFinWait2},
      {"TIME-WAIT", kTcpTimeWait},
      {"UNCONN", kTcpClose},
      {"CLOSED", kTcpClose},
      {"CLOSE-WAIT", kTcpCloseWait},
      {"LAST-ACK", kTcpLastAck},
      {"LISTEN", kTcpListen},
      {"CLOSING", kTcpClosing},
      {"ESTABLISHED", kTcpEstablished},
  }};
  for (const auto& [text, state] : kNames) {
    if (text == name) {
      return state;
    }
  }
  return 0;
}

std::string format_endpoint(const std::string& ip, uint16_t port) {
  if (ip.empty() && port == 0) {
    return "*";
  }
  const std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
  return host + ":" + std::to_string(port);
}

// nlmsg alignment done by hand: the NLMSG_* macros are C casts that -Wold-style-cast rejects.
constexpr size_t nl_align(size_t len) {
  return (len + 3U) & ~size_t{3};
}
constexpr size_t kNlHeaderLength = nl_align(sizeof(nlmsghdr));

}  // namespace

std::string_view tcp_state_name(int kernel_state) {
  switch (kernel_state) {
    case kTcpEstablished:
      return "ESTABLISHED";
    case kTcpSynSent:
      return "SYN-SENT";
    case kTcpSynRecv:
      return "SYN-RECV";
    case kTcpFinWait1:
      return "FIN-WAIT-1";
    case kTcpFinWait2:
      return "FIN-WAIT-2";
    case kTcpTimeWait:
      return "TIME-WAIT";
    case kTcpClose:
      return "CLOSED";
    case kTcpCloseWait:
      return "CLOSE-WAIT";
    case kTcpLastAck:
      return "LAST-ACK";
    case kTcpListen:
      return "LISTEN";
    case kTcpClosing:
      return "CLOSING";
    default:
      return "UNKNOWN";
  }
}

std::vector<ObservedSocket> parse_ss_tcp(std::string_view ss_output) {
  std::vector<ObservedSocket> sockets;
  std::istringstream lines{std::string(ss_output)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields{line};
    std::string state;
    std::string recv_q;
    std::string send_q;
    std::string local;
    std::string peer;
    if (!(fields >> state >> recv_q >> send_q >> local >> peer)) {
      continue;
    }
    ObservedSocket s;
    s.kernel_state = state_from_ss_name(state);
    if (s.kernel_state == 0 ||
        !parse_ss_endpoint(local, /*is_peer=*/false, &s.local_ip, &s.local_port) ||
        !parse_ss_endpoint(peer, /*is_peer=*/true, &s.remote_ip, &s.remote_port)) {
      continue;
    }
    const std::string& any_ip = s.local_ip.empty() ? s.remote_ip : s.local_ip;
    s.family = any_ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    sockets.push_back(std::move(s));
  }
  return sockets;
}

std::optional<std::vector<ObservedSocket>> list_tcp_sockets_ss(std::string* error) {
  const CommandResult r = run_command("ss -tanH");
  if (r.exit_code != 0) {
    if (error != nullptr) {
      *error = "ss -tanH failed (exit " + std::to_string(r.exit_code) + "): " + r.error_output;
    }
    return std::nullopt;
  }
  return parse_ss_tcp(r.output);
}

std::optional<std::vector<ObservedSocket>> dump_bound_inactive(int family, std::string* error) {
  const auto fail = [error](const std::string& text) {
    if (error != nullptr) {
      *error = text;
    }
    return std::nullopt;
  };
  UniqueFd fd{::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (!fd) {
    return fail(errno_text("socket(NETLINK_SOCK_DIAG)"));
  }
  struct Request {
    nlmsghdr header;
    inet_diag_req_v2 body;
  };
  Request request{};
  constexpr uint32_t kSeq = 7;
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.header.nlmsg_seq = kSeq;
  request.body.sdiag_family = static_cast<uint8_t>(family);
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = 1U << kTcpBoundInactiveBit;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &request, sizeof(request), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) != static_cast<ssize_t>(sizeof(request))) {
    return fail(errno_text("sendto(sock_diag)"));
  }

  std::vector<ObservedSocket> sockets;
  alignas(nlmsghdr) std::array<char, 32768> buffer{};
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, kStepTimeoutMs) <= 0) {
      return fail("sock_diag dump: no answer");
    }
    const ssize_t received = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
    if (received < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(errno_text("recv(sock_diag)"));
    }
    const auto total = static_cast<size_t>(received);
    size_t offset = 0;
    while (offset + sizeof(nlmsghdr) <= total) {
      nlmsghdr header{};
      std::memcpy(&header, buffer.data() + offset, sizeof(header));
      if (header.nlmsg_len < sizeof(nlmsghdr) || offset + header.nlmsg_len > total) {
        return fail("sock_diag dump: truncated message");
      }
      const char* payload = buffer.data() + offset + kNlHeaderLength;
      const size_t payload_length = header.nlmsg_len - kNlHeaderLength;
      if (header.nlmsg_seq != kSeq) {
        // Not ours; cannot happen on a fresh socket, but never misread a stray message.
      } else if (header.nlmsg_type == NLMSG_DONE) {
        int status = 0;
        if (payload_length >= sizeof(status)) {
          std::memcpy(&status, payload, sizeof(status));
        }
        if (status < 0) {
          return fail(errno_text("sock_diag dump", -status));
        }
        return sockets;
      } else if (header.nlmsg_type == NLMSG_ERROR) {
        nlmsgerr err{};
        std::memcpy(&err, payload, std::min(payload_length, sizeof(err)));
        return fail(errno_text("sock_diag dump", -err.error));
      } else if (header.nlmsg_type == SOCK_DIAG_BY_FAMILY &&
                 payload_length >= sizeof(inet_diag_msg)) {
        inet_diag_msg msg{};
        std::memcpy(&msg, payload, sizeof(msg));
        ObservedSocket s;
        s.kernel_state = msg.idiag_state;
        s.family = msg.idiag_family;
        std::array<char, INET6_ADDRSTRLEN> text{};
        ::inet_ntop(msg.idiag_family, msg.id.idiag_src, text.data(),
                    static_cast<socklen_t>(text.size()));
        s.local_ip = text.data();
        s.local_port = ntohs(msg.id.idiag_sport);
        s.remote_port = ntohs(msg.id.idiag_dport);
        if (s.remote_port != 0) {
          ::inet_ntop(msg.idiag_family, msg.id.idiag_dst, text.data(),
                      static_cast<socklen_t>(text.size()));
          s.remote_ip = text.data();
        }
        sockets.push_back(std::move(s));
      }
      offset += nl_align(header.nlmsg_len);
    }
  }
}

bool kernel_dumps_bound_inactive() {
  utsname u{};
  if (::uname(&u) != 0) {
    return false;
  }
  int major = 0;
  int minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) {
    return false;
  }
  return major > 6 || (major == 6 && minor >= 8);
}

bool matches(const HeldSocket& expected, const ObservedSocket& observed) {
  return expected.kernel_state == observed.kernel_state && expected.family == observed.family &&
         expected.local_ip == observed.local_ip && expected.local_port == observed.local_port &&
         expected.remote_ip == observed.remote_ip && expected.remote_port == observed.remote_port;
}

std::string describe(const HeldSocket& socket) {
  return std::string(tcp_state_name(socket.kernel_state)) + " " +
         format_endpoint(socket.local_ip, socket.local_port) + " -> " +
         format_endpoint(socket.remote_ip, socket.remote_port) +
         (socket.accepted_side ? " (accepting side)" : " (initiating side)");
}

std::string describe(const ObservedSocket& socket) {
  return std::string(tcp_state_name(socket.kernel_state)) + " " +
         format_endpoint(socket.local_ip, socket.local_port) + " -> " +
         format_endpoint(socket.remote_ip, socket.remote_port);
}

std::vector<HeldSocket> expected_in_state(const std::vector<HeldSocket>& sockets,
                                          int kernel_state) {
  std::vector<HeldSocket> out;
  std::copy_if(sockets.begin(), sockets.end(), std::back_inserter(out),
               [kernel_state](const HeldSocket& s) { return s.kernel_state == kernel_state; });
  return out;
}

std::vector<HeldSocket> missing_from(const std::vector<HeldSocket>& expected,
                                     const std::vector<ObservedSocket>& observed) {
  std::vector<HeldSocket> missing;
  for (const HeldSocket& e : expected) {
    const bool found = std::any_of(observed.begin(), observed.end(),
                                   [&e](const ObservedSocket& o) { return matches(e, o); });
    if (!found) {
      missing.push_back(e);
    }
  }
  return missing;
}

TcpZoo::TcpZoo(int family, uint16_t base_port)
    : family_(family),
      base_port_(base_port),
      table_(std::string(family == AF_INET ? "ip" : "ip6") + " sockstate_zoo_" +
             std::to_string(base_port)) {}

std::unique_ptr<TcpZoo> TcpZoo::create(int family, uint16_t base_port, std::string* error) {
  const auto fail = [error](const std::string& text) -> std::unique_ptr<TcpZoo> {
    if (error != nullptr) {
      *error = text;
    }
    return nullptr;
  };
  if (family != AF_INET && family != AF_INET6) {
    return fail("TcpZoo: family must be AF_INET or AF_INET6");
  }
  if (base_port == 0 || base_port > 65535 - kPortSpan) {
    return fail("TcpZoo: base_port must be in 1.." + std::to_string(65535 - kPortSpan));
  }
  std::unique_ptr<TcpZoo> zoo{new TcpZoo(family, base_port)};
  if (auto e = zoo->build()) {
    return fail("TcpZoo(" + std::string(family == AF_INET ? "AF_INET" : "AF_INET6") + ", base " +
                std::to_string(base_port) + "): " + *e);
  }
  return zoo;
}

std::optional<std::string> TcpZoo::build() {
  const auto server_port = [this](uint16_t offset) {
    return static_cast<uint16_t>(base_port_ + offset);
  };
  const auto client_port = [this](uint16_t offset) {
    return static_cast<uint16_t>(base_port_ + kClientOffset + offset);
  };
  const std::string ip = loopback_ip(family_);
  const auto expect = [this, &ip](int state, uint16_t local_port, uint16_t remote_port,
                                  bool accepted_side) {
    sockets_.push_back(HeldSocket{state, family_, ip, local_port,
                                  remote_port == 0 ? std::string() : ip, remote_port,
                                  accepted_side});
  };
  const auto keep = [this](UniqueFd& fd) { fds_.push_back(std::move(fd)); };
  const auto p = [](uint16_t port) { return std::to_string(port); };

  // Drops happen on the input hook, i.e. after the sender's TCP has "sent" the segment: the
  // sender then follows its ordinary lost-segment path (RTO retransmissions with backoff).
  // On the output hook the drop would surface as -EPERM from the transmit and leave a FIN
  // unsent in the write queue, which is a different (probe-timer) path.
  // Only SYN-less (SYN-RECV) or FIN-carrying segments are dropped where the rule exists
  // before the handshake, so the handshakes themselves go through. Rules name both ports
  // so they cannot touch any other connection.
  const std::string table = table_;
  std::ostringstream rules;
  rules << "add table " << table << "\n"
        << "delete table " << table << "\n"
        << "table " << table << " {\n"
        << "  chain closing_c2s {\n"
        << "    tcp sport " << p(client_port(kClosingOffset)) << " tcp dport "
        << p(server_port(kClosingOffset)) << " tcp flags & fin == fin drop\n"
        << "  }\n"
        << "  chain input {\n"
        << "    type filter hook input priority 0; policy accept;\n"
        << "    tcp sport " << p(client_port(kSynSentOffset)) << " tcp dport "
        << p(server_port(kSynSentOffset)) << " drop\n"
        << "    tcp sport " << p(client_port(kSynRecvOffset)) << " tcp dport "
        << p(server_port(kSynRecvOffset)) << " tcp flags & syn == 0 drop\n"
        << "    tcp sport " << p(client_port(kFinWait1Offset)) << " tcp dport "
        << p(server_port(kFinWait1Offset)) << " tcp flags & fin == fin drop\n"
        << "    tcp sport " << p(server_port(kLastAckOffset)) << " tcp dport "
        << p(client_port(kLastAckOffset)) << " tcp flags & fin == fin drop\n"
        << "    tcp sport " << p(server_port(kClosingOffset)) << " tcp dport "
        << p(client_port(kClosingOffset)) << " tcp flags & fin == fin drop\n"
        << "    jump closing_c2s\n"
        << "  }\n"
        << "}\n";
  if (auto e = apply_nft(rules.str()))
    return e;
  table_installed_ = true;

  // LISTEN (10): a listener nobody connects to.
  {
    UniqueFd listener;
    if (auto e = open_listener(family_, server_port(kListenOffset), &listener))
      return e;
    keep(listener);
    expect(kTcpListen, server_port(kListenOffset), 0, true);
  }

  // CLOSED (7): bound, never listened or connected ("bound-inactive"). sock_diag shows it
  // only when the states mask has bit 13 (kernel >= 6.8), and reports it as state 7.
  {
    UniqueFd bound;
    if (auto e = new_tcp_socket(family_, &bound))
      return e;
    if (auto e = bind_loopback(bound.get(), family_, server_port(kBoundInactiveOffset))) {
      return e;
    }
    bound_inactive_fd_ = bound.get();
    keep(bound);
    expect(kTcpClose, server_port(kBoundInactiveOffset), 0, false);
  }

  // ESTABLISHED (1): a plain connected pair.
  {
    const uint16_t sp = server_port(kEstablishedOffset);
    UniqueFd listener;
    if (auto e = open_listener(family_, sp, &listener))
      return e;
    Connection c;
    if (auto e = connect_pair(family_, listener.get(), sp, client_port(kEstablishedOffset), &c)) {
      return e;
    }
    keep(listener);
    keep(c.client);
    keep(c.server);
    expect(kTcpListen, sp, 0, true);
    expect(kTcpEstablished, c.client_port, sp, false);
    expect(kTcpEstablished, sp, c.client_port, true);
  }

  // SYN-SENT (2): every SYN to this port is dropped; nothing listens there either.
  {
    const uint16_t sp = server_port(kSynSentOffset);
    const uint16_t cp = client_port(kSynSentOffset);
    UniqueFd client;
    if (auto e = start_connect(family_, cp, sp, &client, /*long_syn_retries=*/true))
      return e;
    keep(client);
    expect(kTcpSynSent, cp, sp, false);
  }

  // SYN-RECV (3): SYN and SYN-ACK pass, the client's handshake ACK is dropped. The client
  // is ESTABLISHED (it has seen the SYN-ACK; with nothing to send it never retransmits);
  // the listener holds a request socket that sock_diag reports as SYN-RECV.
  {
    const uint16_t sp = server_port(kSynRecvOffset);
    const uint16_t cp = client_port(kSynRecvOffset);
    UniqueFd listener;
    if (auto e = open_listener(family_, sp, &listener, /*long_synack_retries=*/true))
      return e;
    UniqueFd client;
    if (auto e = start_connect(family_, cp, sp, &client))
      return e;
    if (auto e = wait_connected(client.get(), sp))
      return e;
    keep(listener);
    syn_recv_client_ = std::move(client);
    expect(kTcpListen, sp, 0, true);
    expect(kTcpSynRecv, sp, cp, true);
    expect(kTcpEstablished, cp, sp, false);
  }

  // FIN-WAIT-1 (4): the client half-closes and its FIN is dropped; the server never sees
  // it and stays ESTABLISHED. The client's fd stays open, so the FIN is retransmitted for
  // net.ipv4.tcp_retries2 (15, ~15 min) rather than the orphan limit.
  {
    const uint16_t sp = server_port(kFinWait1Offset);
    UniqueFd listener;
    if (auto e = open_listener(family_, sp, &listener))
      return e;
    Connection c;
    if (auto e = connect_pair(family_, listener.get(), sp, client_port(kFinWait1Offset), &c)) {
      return e;
    }
    if (auto e = shutdown_write(c.client.get(), "FIN-WAIT-1 client"))
      return e;
    keep(listener);
    keep(c.client);
    keep(c.server);
    expect(kTcpListen, sp, 0, true);
    expect(kTcpFinWait1, c.client_port, sp, false);
    expect(kTcpEstablished, sp, c.client_port, true);
  }

  // FIN-WAIT-2 (5) / CLOSE-WAIT (8): the client half-closes, the server ACKs and does not
  // close. A FIN-WAIT-2 socket with its fd open has no timer (tcp_fin_timeout only applies
  // to orphans), so both states last as long as the zoo.
  {
    const uint16_t sp = server_port(kHalfCloseOffset);
    UniqueFd listener;
    if (auto e = open_listener(family_, sp, &listener))
      return e;
    Connection c;
    if (auto e = connect_pair(family_, listener.get(), sp, client_port(kHalfCloseOffset), &c)) {
      return e;
    }
    if (auto e = shutdown_write(c.client.get(), "FIN-WAIT-2 client"))
      return e;
    if (auto e = wait_eof(c.server.get(), "CLOSE-WAIT server"))
      return e;
    keep(listener);
    keep(c.client);
    keep(c.server);
    expect(kTcpListen, sp, 0, true);
    expect(kTcpFinWait2, c.client_port, sp, false);
    expect(kTcpCloseWait, sp, c.client_port, true);
  }

  // LAST-ACK (9): as above, then the server closes too and its FIN is dropped. The client
  // stays in FIN-WAIT-2 (it never gets the FIN); the server retransmits it for
  // tcp_retries2 (~15 min).
  {
    const uint16_t sp = server_port(kLastAckOffset);
    UniqueFd listener;
    if (auto e = open_listener(family_, sp, &listener))
      return e;
    Connection c;
    if (auto e = connect_pair(family_, listener.get(), sp, client_port(kLastAckOffset), &c)) {
      return e;
    }
    if (auto e = shutdown_write(c.client.get(), "LAST-ACK client"))
      return e;
    if (auto e = wait_eof(c.server.get(), "LAST-ACK server"))
      return e;
    if (auto e = shutdown_write(c.server.get(), "LAST-ACK server"))
      return e;
    keep(listener);
    keep(c.client);
    keep(c.server);
    expect(kTcpListen, sp, 0, true);
    expect(kTcpFinWait2, c.client_port, sp, false);
    expect(kTcpLastAck, sp, c.client_port, true);
  }

  // TIME-WAIT (6): the client closes first, the server then closes. The client ends in
  // TIME-WAIT for the fixed TCP_TIMEWAIT_LEN (60 s, no sysctl) and then vanishes; the
  // server's socket is gone once its FIN is ACKed. The client uses an ephemeral port: a
  // fixed one would collide with this TIME-WAIT if the zoo is rebuilt within 60 s.
  {
    const uint16_t sp = server_port(kTimeWaitOffset);
    UniqueFd listener;
    if (auto e = open_listener(family_, sp, &listener))
      return e;
    Connection c;
    if (auto e = connect_pair(family_, listener.get(), sp, 0, &c))
      return e;
    c.client.reset();
    if (auto e = wait_eof(c.server.get(), "TIME-WAIT server"))
      return e;
    c.server.reset();
    keep(listener);
    expect(kTcpListen, sp, 0, true);
    time_wait_client_port_ = c.client_port;
    expect(kTcpTimeWait, c.client_port, sp, false);
  }

  // CLOSING (11): both sides half-close while both FINs are dropped (both FIN-WAIT-1), then
  // the client's FIN is let through: the server, in FIN-WAIT-1, receives a FIN for which it
  // has no ACK yet and enters CLOSING. Its ACK of that FIN passes (only FINs are dropped),
  // so the client moves to FIN-WAIT-2; the server's own FIN stays dropped, so the server
  // retransmits it from CLOSING for tcp_retries2 (~15 min).
  {
    const uint16_t sp = server_port(kClosingOffset);
    UniqueFd listener;
    if (auto e = open_listener(family_, sp, &listener))
      return e;
    Connection c;
    if (auto e = connect_pair(family_, listener.get(), sp, client_port(kClosingOffset), &c)) {
      return e;
    }
    if (auto e = shutdown_write(c.client.get(), "CLOSING client"))
      return e;
    if (auto e = shutdown_write(c.server.get(), "CLOSING server"))
      return e;
    if (auto e = apply_nft("flush chain " + table + " closing_c2s\n"))
      return e;
    // The client's FIN comes back with its next retransmission (RTO >= 200 ms).
    if (auto e = wait_eof(c.server.get(), "CLOSING server", 2 * kStepTimeoutMs))
      return e;
    keep(listener);
    keep(c.client);
    keep(c.server);
    expect(kTcpListen, sp, 0, true);
    expect(kTcpFinWait2, c.client_port, sp, false);
    expect(kTcpClosing, sp, c.client_port, true);
  }
  return std::nullopt;
}

TcpZoo::~TcpZoo() {
  const auto abort_close = [](UniqueFd& fd) {
    // RST instead of FIN: no FIN-WAIT/LAST-ACK orphan or TIME-WAIT outlives the zoo.
    const linger abort_on_close{1, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
    fd.reset();
  };
  // Sockets go before the rules. Deleting the rules first would let a pending FIN
  // retransmission through before the close (e.g. the LAST-ACK server's FIN to its
  // FIN-WAIT-2 client), turning that client into a TIME-WAIT that outlives the zoo. The
  // rules drop only FINs there, so the RSTs get through.
  for (UniqueFd& fd : fds_) {
    abort_close(fd);
  }
  if (table_installed_) {
    run_command("nft delete table " + table_);
  }
  // The request socket does not go away with its listener: it sits in the established hash
  // until its next SYN-ACK timer (up to 120 s with backoff). Any segment for it from the
  // client drops it at once, and the client's RST passes now that the rules are gone.
  abort_close(syn_recv_client_);
  // Best effort: kernels with SOCK_DESTROY support for TIME-WAIT (6.18 here; needs
  // CONFIG_INET_DIAG_DESTROY) let `ss -K` drop our minisocket, so a later zoo or test does
  // not see it. Elsewhere it stays for its 60 s.
  if (time_wait_client_port_ != 0) {
    run_command(
        "ss -K -tanH state time-wait '( sport = :" + std::to_string(time_wait_client_port_) +
        " and dport = :" + std::to_string(base_port_ + kTimeWaitOffset) + " )'");
  }
}

std::vector<HeldSocket> TcpZoo::expected_in_state(int kernel_state) const {
  return testing::expected_in_state(sockets_, kernel_state);
}

std::optional<std::string> TcpZoo::check_bound_inactive_fd() const {
  if (bound_inactive_fd_ < 0) {
    return "no bound-inactive socket";
  }
  const int fd = bound_inactive_fd_;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return errno_text("getsockname(bound-inactive)");
  }
  const auto [ip, port] = split_sockaddr(ss);
  const auto want = expected_in_state(kTcpClose);
  if (want.empty() || ip != want.front().local_ip || port != want.front().local_port) {
    return "bound-inactive socket is bound to " + format_endpoint(ip, port);
  }
  int accepting = -1;
  socklen_t int_len = sizeof(accepting);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &int_len) != 0) {
    return errno_text("getsockopt(SO_ACCEPTCONN)");
  }
  if (accepting != 0) {
    return "bound-inactive socket is listening";
  }
  sockaddr_storage peer{};
  len = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 || errno != ENOTCONN) {
    return "bound-inactive socket has a peer";
  }
  tcp_info info{};
  socklen_t info_len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len) != 0) {
    return errno_text("getsockopt(TCP_INFO)");
  }
  if (info.tcpi_state != kTcpClose) {
    return "bound-inactive socket has tcpi_state " + std::to_string(info.tcpi_state);
  }
  return std::nullopt;
}

std::optional<std::string> TcpZoo::wait_until_settled(std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  std::vector<HeldSocket> via_ss;
  std::copy_if(sockets_.begin(), sockets_.end(), std::back_inserter(via_ss),
               [](const HeldSocket& s) { return s.kernel_state != kTcpClose; });
  const std::vector<HeldSocket> bound_inactive = expected_in_state(kTcpClose);
  const bool dumpable = kernel_dumps_bound_inactive();
  for (;;) {
    std::string problem;
    std::vector<HeldSocket> missing;
    std::string ss_error;
    const auto seen = list_tcp_sockets_ss(&ss_error);
    if (seen) {
      missing = missing_from(via_ss, *seen);
    } else {
      problem += ss_error + "\n";
      missing = via_ss;
    }
    if (dumpable) {
      std::string diag_error;
      const auto dumped = dump_bound_inactive(family_, &diag_error);
      if (dumped) {
        const auto lacking = missing_from(bound_inactive, *dumped);
        missing.insert(missing.end(), lacking.begin(), lacking.end());
      } else {
        problem += diag_error + "\n";
        missing.insert(missing.end(), bound_inactive.begin(), bound_inactive.end());
      }
    } else if (auto e = check_bound_inactive_fd()) {
      problem += *e + "\n";
      missing.insert(missing.end(), bound_inactive.begin(), bound_inactive.end());
    }
    if (missing.empty()) {
      return std::nullopt;
    }
    if (Clock::now() >= deadline) {
      std::string text = "TcpZoo(base " + std::to_string(base_port_) + ") not settled after " +
                         std::to_string(timeout.count()) + " ms; missing:\n";
      for (const HeldSocket& s : missing) {
        text += "  " + describe(s) + "\n";
      }
      text += problem;
      if (seen) {
        text += "ss -tanH showed:\n";
        for (const ObservedSocket& s : *seen) {
          text += "  " + describe(s) + "\n";
        }
      }
      return text;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace sockstate::testing

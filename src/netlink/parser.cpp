#include "sockstate/netlink/parser.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/tcp.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "walk.h"

namespace sockstate::netlink {
namespace {

// Reads a tcp_info field if the kernel's (possibly shorter) struct reaches it.
template <typename T>
T tcp_info_field(const std::uint8_t* data, std::size_t len, std::size_t offset) {
  T value{};
  if (offset + sizeof(T) <= len) {
    std::memcpy(&value, data + offset, sizeof(T));
  }
  return value;
}

#define SOCKSTATE_TCPI(type, field) \
  tcp_info_field<type>(data, len, offsetof(struct tcp_info, field))

TcpInfo decode_tcp_info(const std::uint8_t* data, std::size_t len) {
  TcpInfo info;
  info.bytes_acked = SOCKSTATE_TCPI(std::uint64_t, tcpi_bytes_acked);
  info.bytes_received = SOCKSTATE_TCPI(std::uint64_t, tcpi_bytes_received);
  info.segs_out = SOCKSTATE_TCPI(std::uint32_t, tcpi_segs_out);
  info.segs_in = SOCKSTATE_TCPI(std::uint32_t, tcpi_segs_in);
  info.rtt_us = SOCKSTATE_TCPI(std::uint32_t, tcpi_rtt);
  info.total_retrans = SOCKSTATE_TCPI(std::uint32_t, tcpi_total_retrans);
  info.bytes_sent = SOCKSTATE_TCPI(std::uint64_t, tcpi_bytes_sent);
  info.bytes_retrans = SOCKSTATE_TCPI(std::uint64_t, tcpi_bytes_retrans);
  info.has_bytes_sent =
      offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof(std::uint64_t) <= len;
  return info;
}

#undef SOCKSTATE_TCPI

// The kernel's errno values are 1..4095 (MAX_ERRNO); anything else is a corrupt message,
// and negating INT_MIN would overflow.
constexpr int kMaxErrno = 4095;

Error bad_message(std::string what) {
  return Error{EBADMSG, std::move(what)};
}

SocketEntry entry_of(const inet_diag_msg& msg) {
  SocketEntry e;
  e.family = msg.idiag_family;
  e.state = msg.idiag_state;
  e.local_port = ntohs(msg.id.idiag_sport);
  e.remote_port = ntohs(msg.id.idiag_dport);
  std::memcpy(e.local_addr.data(), msg.id.idiag_src, sizeof msg.id.idiag_src);
  std::memcpy(e.remote_addr.data(), msg.id.idiag_dst, sizeof msg.id.idiag_dst);
  e.ifindex = msg.id.idiag_if;
  e.cookie = (static_cast<std::uint64_t>(msg.id.idiag_cookie[1]) << 32) | msg.id.idiag_cookie[0];
  e.inode = msg.idiag_inode;
  e.uid = msg.idiag_uid;
  e.recv_q = msg.idiag_rqueue;
  e.send_q = msg.idiag_wqueue;
  return e;
}

// One attribute of a sock_diag message into `e`.
void apply_attribute(SocketEntry& e, unsigned type, std::span<const std::uint8_t> value,
                     std::uint64_t* unknown_attributes) {
  const std::uint8_t* data = value.data();
  const std::size_t len = value.size();
  switch (type) {
    case INET_DIAG_INFO:
      // Only full sockets have a tcp_info; destroy events carry it and little else.
      e.full_socket = true;
      e.has_tcp_info = true;
      e.info = decode_tcp_info(data, len);
      break;
    case INET_DIAG_SHUTDOWN:
      if (len >= 1) {
        e.shutdown = data[0];
      }
      // inet_diag_msg_attrs_fill() sends SHUTDOWN and SOCKOPT for every full socket,
      // never for TIME-WAIT or request minisockets.
      e.full_socket = true;
      break;
    case INET_DIAG_SOCKOPT:
      e.full_socket = true;
      break;
    case INET_DIAG_CGROUP_ID:
      if (len >= sizeof(std::uint64_t)) {
        std::memcpy(&e.cgroup_id, data, sizeof e.cgroup_id);
      }
      break;
    default:
      // Known attributes we do not use are skipped; newer ones are also counted.
      if (type > INET_DIAG_MAX && unknown_attributes != nullptr) {
        ++*unknown_attributes;
      }
      break;
  }
}

// A message's sequence number and port id against the answer expected.
Result<void> check_sender(const nlmsghdr& nlh, std::uint32_t seq, std::uint32_t portid) {
  if (nlh.nlmsg_seq != seq) {
    return Error{EPROTO, "netlink message with sequence " + std::to_string(nlh.nlmsg_seq) +
                             ", expected " + std::to_string(seq)};
  }
  if (portid != 0 && nlh.nlmsg_pid != 0 && nlh.nlmsg_pid != portid) {
    return Error{EPROTO, "netlink message for port id " + std::to_string(nlh.nlmsg_pid) +
                             ", expected " + std::to_string(portid)};
  }
  return {};
}

// What a message means for the answer it belongs to: kNone for a message of the request's
// own family, the others are netlink's control messages.
enum class Control : std::uint8_t { kNone, kSkip, kAcked, kDone };

Result<Control> error_message(std::span<const std::uint8_t> payload) {
  int err = 0;
  if (payload.size() < sizeof(int)) {
    return bad_message("truncated NLMSG_ERROR");
  }
  std::memcpy(&err, payload.data(), sizeof err);
  if (err == 0) {
    return Control::kAcked;  // an acknowledgement: the request was done
  }
  if (err > 0 || err < -kMaxErrno) {
    return bad_message("NLMSG_ERROR with error " + std::to_string(err));
  }
  return Error{-err, "the kernel refused the netlink request"};
}

Result<Control> done_message(std::span<const std::uint8_t> payload) {
  // The kernel reports a failure that happened mid-dump as an errno inside DONE;
  // libmnl's default callback ignores it.
  int err = 0;
  if (payload.size() >= sizeof(int)) {
    std::memcpy(&err, payload.data(), sizeof err);
  }
  if (err < -kMaxErrno) {
    return bad_message("NLMSG_DONE with error " + std::to_string(err));
  }
  if (err < 0) {
    return Error{-err, "the kernel ended the netlink dump with an error"};
  }
  return Control::kDone;
}

Result<Control> control_of(std::uint16_t type, std::span<const std::uint8_t> payload) {
  switch (type) {
    case NLMSG_NOOP:
      return Control::kSkip;
    case NLMSG_ERROR:
      return error_message(payload);
    case NLMSG_DONE:
      return done_message(payload);
    default:
      // Reserved control messages: nothing for us.
      return type < NLMSG_MIN_TYPE ? Control::kSkip : Control::kNone;
  }
}

}  // namespace

Result<SocketEntry> decode_socket(std::span<const std::uint8_t> payload,
                                  std::uint64_t* unknown_attributes) {
  if (payload.size() < sizeof(inet_diag_msg)) {
    return bad_message("sock_diag message shorter than inet_diag_msg (" +
                       std::to_string(payload.size()) + " bytes)");
  }
  inet_diag_msg msg{};
  std::memcpy(&msg, payload.data(), sizeof msg);
  SocketEntry e = entry_of(msg);

  auto left = detail::for_each_attribute(payload, sizeof(inet_diag_msg), "sock_diag message",
                                         [&](unsigned type, std::span<const std::uint8_t> value) {
                                           apply_attribute(e, type, value, unknown_attributes);
                                         });
  if (!left) {
    return left.error();
  }
  if (*left != 0) {
    return bad_message("truncated attribute header in sock_diag message");
  }
  return e;
}

Result<MessagesEnd> parse_messages(std::span<const std::uint8_t> datagram, std::uint32_t seq,
                                   std::uint32_t portid, bool& interrupted,
                                   const MessageCallback& on_message) {
  bool acked = false;
  bool done = false;
  auto answer = [&](const nlmsghdr& nlh,
                    std::span<const std::uint8_t> payload) -> Result<detail::Walk> {
    if (auto checked = check_sender(nlh, seq, portid); !checked) {
      return checked.error();
    }
    if ((nlh.nlmsg_flags & NLM_F_DUMP_INTR) != 0) {
      interrupted = true;
    }
    auto control = control_of(nlh.nlmsg_type, payload);
    if (!control) {
      return control.error();
    }
    if (*control == Control::kDone) {
      done = true;
      return detail::Walk::kStop;
    }
    acked = acked || *control == Control::kAcked;
    if (*control == Control::kNone) {
      if (auto handled = on_message(nlh.nlmsg_type, payload); !handled) {
        return handled.error();
      }
    }
    return detail::Walk::kNext;
  };
  auto left = detail::for_each_message(datagram, answer);
  if (!left) {
    return left.error();
  }
  if (done) {
    return MessagesEnd::kDone;
  }
  if (*left != 0) {
    return bad_message("truncated netlink header (" + std::to_string(*left) + " bytes left)");
  }
  return acked ? MessagesEnd::kAcked : MessagesEnd::kMore;
}

Result<bool> DumpParser::parse(std::span<const std::uint8_t> datagram,
                               const SocketCallback& on_socket) {
  // The counters by reference, not through `this`: clang-analyzer otherwise takes
  // decode_socket's null check of the counter's address for a null `this`.
  auto deliver = [&on_socket, &sockets = sockets_, &unknown = unknown_attributes_](
                     std::uint16_t, std::span<const std::uint8_t> payload) -> Result<void> {
    auto entry = decode_socket(payload, &unknown);
    if (!entry) {
      return entry.error();
    }
    ++sockets;
    on_socket(*entry);
    return {};
  };
  auto decoded = parse_messages(datagram, seq_, portid_, interrupted_, deliver);
  if (!decoded) {
    return decoded.error();
  }
  return *decoded == MessagesEnd::kDone;
}

}  // namespace sockstate::netlink

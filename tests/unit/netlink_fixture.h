#pragma once

// Helpers for the netlink unit tests: recorded `ss -D` fixtures (tests/data/*.nldump, see
// the .txt note beside each) and a builder for hand-made netlink buffers.

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "sockstate/netlink/types.h"

namespace sockstate::netlink::testing {

using Bytes = std::vector<std::uint8_t>;

// iproute2's MAGIC_SEQ: every message `ss -D` records carries it, for both families.
inline constexpr std::uint32_t kSsSeq = 123456;

inline std::string data_path(const std::string& name) {
  return std::string(SOCKSTATE_TEST_DATA_DIR) + "/" + name;
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot open " + path);
  }
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// <name>.datagrams: the size of each datagram `ss` received while recording, one a line.
inline std::vector<std::size_t> read_datagram_sizes(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("cannot open " + path);
  }
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; in >> n;) {
    sizes.push_back(n);
  }
  return sizes;
}

// Cuts a buffer of well-formed netlink messages into one span per message (padding
// included), trusting nlmsg_len. For recorded fixtures only.
inline std::vector<std::span<const std::uint8_t>> split_messages(
    std::span<const std::uint8_t> buf) {
  std::vector<std::span<const std::uint8_t>> out;
  std::size_t pos = 0;
  while (pos + sizeof(nlmsghdr) <= buf.size()) {
    nlmsghdr h{};
    std::memcpy(&h, buf.data() + pos, sizeof h);
    const std::size_t len = align4(h.nlmsg_len);
    if (h.nlmsg_len < sizeof(nlmsghdr) || pos + len > buf.size()) {
      throw std::runtime_error("malformed fixture at offset " + std::to_string(pos));
    }
    out.push_back(buf.subspan(pos, len));
    pos += len;
  }
  if (pos != buf.size()) {
    throw std::runtime_error("trailing bytes in fixture");
  }
  return out;
}

inline nlmsghdr header_of(std::span<const std::uint8_t> message) {
  nlmsghdr h{};
  std::memcpy(&h, message.data(), sizeof h);
  return h;
}

template <typename T>
Bytes bytes_of(const T& value) {
  Bytes out(sizeof value);
  std::memcpy(out.data(), &value, sizeof value);
  return out;
}

// Builds datagrams of netlink messages by hand. Lengths are filled in by end_message();
// payloads and attributes are padded to 4 bytes as the kernel does.
class NetlinkBuilder {
 public:
  NetlinkBuilder& begin_message(std::uint16_t type, std::uint16_t flags, std::uint32_t seq,
                                std::uint32_t portid) {
    start_ = buf_.size();
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    h.nlmsg_seq = seq;
    h.nlmsg_pid = portid;
    append(&h, sizeof h);
    return *this;
  }

  // Raw payload bytes, padded to 4.
  NetlinkBuilder& payload(const void* data, std::size_t len) {
    append(data, len);
    pad();
    return *this;
  }
  template <typename T>
  NetlinkBuilder& payload(const T& value) {
    return payload(&value, sizeof value);
  }

  // An attribute whose nla_len says `len + 4`; the data is padded to 4.
  NetlinkBuilder& attr(std::uint16_t type, const void* data, std::size_t len) {
    nlattr a{};
    a.nla_type = type;
    a.nla_len = static_cast<std::uint16_t>(sizeof(nlattr) + len);
    append(&a, sizeof a);
    append(data, len);
    pad();
    return *this;
  }
  NetlinkBuilder& attr(std::uint16_t type, const Bytes& data) {
    return attr(type, data.data(), data.size());
  }

  // An attribute header with any nla_len, followed by `data` as is (for broken input).
  NetlinkBuilder& raw_attr(std::uint16_t type, std::uint16_t nla_len, const Bytes& data = {}) {
    nlattr a{};
    a.nla_type = type;
    a.nla_len = nla_len;
    append(&a, sizeof a);
    append(data.data(), data.size());
    return *this;
  }

  // Sets nlmsg_len to the bytes written since begin_message().
  NetlinkBuilder& end_message() {
    return set_len(static_cast<std::uint32_t>(buf_.size() - start_));
  }

  // Sets the current message's nlmsg_len to any value (for broken input).
  NetlinkBuilder& set_len(std::uint32_t len) {
    std::memcpy(buf_.data() + start_ + offsetof(nlmsghdr, nlmsg_len), &len, sizeof len);
    return *this;
  }

  // NLMSG_DONE carrying `error` (0, or a negative errno), as netlink_dump_done() sends it.
  NetlinkBuilder& done(std::uint32_t seq, std::uint32_t portid, int error = 0,
                       std::uint16_t flags = NLM_F_MULTI) {
    return begin_message(NLMSG_DONE, flags, seq, portid).payload(error).end_message();
  }

  // NLMSG_ERROR with struct nlmsgerr (error and the offending request's header).
  NetlinkBuilder& error(std::uint32_t seq, std::uint32_t portid, int error) {
    nlmsgerr e{};
    e.error = error;
    e.msg.nlmsg_len = 72;
    e.msg.nlmsg_type = 20;  // SOCK_DIAG_BY_FAMILY
    e.msg.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    e.msg.nlmsg_seq = seq;
    return begin_message(NLMSG_ERROR, 0, seq, portid).payload(e).end_message();
  }

  [[nodiscard]] const Bytes& bytes() const { return buf_; }
  [[nodiscard]] std::span<const std::uint8_t> span() const { return buf_; }

 private:
  void append(const void* data, std::size_t len) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    buf_.insert(buf_.end(), p, p + len);
  }
  void pad() { buf_.resize(align4(buf_.size())); }

  Bytes buf_;
  std::size_t start_ = 0;
};

// One SOCK_DIAG_BY_FAMILY message as the kernel multicasts it when a full IPv4 socket
// is destroyed: 127.0.0.1:sport -> 127.0.0.1:dport in state CLOSE, a tcp_info that says
// the handshake completed and bytes moved, port id 0.
inline Bytes destroy_message(std::uint64_t cookie, std::uint16_t sport, std::uint16_t dport) {
  inet_diag_msg m{};
  m.idiag_family = AF_INET;
  m.idiag_state = 7;  // TCP_CLOSE
  m.id.idiag_sport = htons(sport);
  m.id.idiag_dport = htons(dport);
  m.id.idiag_src[0] = htonl(INADDR_LOOPBACK);
  m.id.idiag_dst[0] = htonl(INADDR_LOOPBACK);
  m.id.idiag_cookie[0] = static_cast<std::uint32_t>(cookie);
  m.id.idiag_cookie[1] = static_cast<std::uint32_t>(cookie >> 32);
  tcp_info info{};
  info.tcpi_rtt = 100;
  info.tcpi_bytes_acked = 1001;
  info.tcpi_bytes_sent = 1000;
  info.tcpi_bytes_received = 501;
  info.tcpi_segs_out = 5;
  info.tcpi_segs_in = 5;
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, 0, 0, 0)
      .payload(m)
      .attr(INET_DIAG_INFO, &info, sizeof info)
      .end_message();
  return b.bytes();
}

}  // namespace sockstate::netlink::testing

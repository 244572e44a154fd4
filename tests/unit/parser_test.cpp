// DumpParser and decode_socket against recorded `ss -D` dumps (tests/data/*.nldump, made by
// tests/data/record_fixtures.py; the .txt note beside each shows the sockets) and against
// hand-built buffers: kernel errors, truncation, unknown attributes, seq/portid checks.

#include "sockstate/netlink/parser.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <ostream>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "netlink_fixture.h"
#include "sockstate/netlink/types.h"

namespace sockstate::netlink {
namespace {

using testing::Bytes;
using testing::kSsSeq;
using testing::NetlinkBuilder;

using Address = std::array<std::uint8_t, 16>;
using Chunks = std::vector<std::span<const std::uint8_t>>;

Address addr(int family, const char* text) {
  Address a{};
  if (inet_pton(family, text, a.data()) != 1) {
    throw std::runtime_error(std::string("bad address ") + text);
  }
  return a;
}

// ---------------------------------------------------------------------------------------
// Recorded fixtures
// ---------------------------------------------------------------------------------------

struct ExpectedSocket {
  std::uint8_t family;
  std::uint8_t state;
  const char* local;
  std::uint16_t local_port;
  const char* remote;
  std::uint16_t remote_port;
  std::uint64_t cookie;  // `ss -tane` prints it as sk:%llx
  std::uint32_t inode;
  std::uint32_t recv_q;
  std::uint32_t send_q;  // for a listener, the max backlog (8 in the script)
  TcpInfo info;          // only in tcp_info.nldump: bytes_acked, bytes_received, segs_out,
                         // segs_in, rtt_us, total_retrans
};

constexpr std::uint8_t kEstab = kTcpEstablished;
constexpr std::uint8_t kListen = kTcpListen;
constexpr std::uint8_t kTimeWait = kTcpTimeWait;

// The sockets of both recordings (see tests/data/tcp_basic.txt and tcp_info.txt). The
// byte counts are what record_fixtures.py sent; tcpi_bytes_acked counts the SYN too on
// the side that connected (1000 bytes sent -> 1001 acked), not on the side that accepted.
// rtt and segment counts are as recorded (`ss -tani` in the note).
const std::vector<ExpectedSocket>& expected_sockets() {
  // clang-format off
  static const std::vector<ExpectedSocket> kSockets = {
      {AF_INET, kListen, "127.0.0.1", 40100, "0.0.0.0", 0, 0x82b6d, 1091547, 0, 8, {}},
      {AF_INET, kEstab, "127.0.0.1", 40100, "127.0.0.1", 40101, 0x82b6e, 1091549, 0, 0,
       {3000, 1000, 2, 4, 9, 0}},
      {AF_INET, kEstab, "127.0.0.1", 40301, "127.0.0.1", 40300, 0x82b6f, 1091558, 0, 0,
       {101, 0, 3, 2, 5, 0}},
      {AF_INET, kEstab, "127.0.0.1", 40101, "127.0.0.1", 40100, 0x82b70, 1091548, 0, 0,
       {1001, 3000, 4, 3, 10, 0}},
      {AF_INET, kTimeWait, "127.0.0.1", 40102, "127.0.0.1", 40100, 0x82b71, 0, 0, 0, {}},
      {AF_INET6, kListen, "::", 40300, "::", 0, 0x82b72, 1091557, 0, 8, {}},
      {AF_INET6, kListen, "::1", 40200, "::", 0, 0x82b73, 1091552, 0, 8, {}},
      {AF_INET6, kEstab, "::ffff:127.0.0.1", 40300, "::ffff:127.0.0.1", 40301, 0x82b74,
       1091559, 100, 0, {0, 100, 1, 3, 6, 0}},
      {AF_INET6, kEstab, "::1", 40201, "::1", 40200, 0x82b75, 1091553, 0, 0,
       {501, 700, 4, 3, 12, 0}},
      {AF_INET6, kTimeWait, "::1", 40202, "::1", 40200, 0x82b76, 0, 0, 0, {}},
      {AF_INET6, kEstab, "::1", 40200, "::1", 40201, 0x82b77, 1091554, 0, 0,
       {700, 500, 2, 4, 7, 0}},
  };
  // clang-format on
  return kSockets;
}

struct FixtureSpec {
  const char* name;
  std::uint32_t portid;  // ss's netlink port id during the recording
  bool with_info;
};

void PrintTo(const FixtureSpec& spec, std::ostream* os) {
  *os << spec.name;
}

// What one dump (one request, up to its NLMSG_DONE) yielded.
struct Dump {
  std::vector<SocketEntry> sockets;
  bool interrupted = false;
  std::uint64_t unknown_attributes = 0;
  std::size_t chunks = 0;
};

// Feeds the chunks in order, as datagrams; a new parser starts after each NLMSG_DONE, as
// `ss` sends a second request (same seq) after the first dump ends.
std::optional<std::vector<Dump>> parse_chunks(const Chunks& chunks, std::uint32_t seq,
                                              std::uint32_t portid) {
  std::vector<Dump> dumps;
  std::optional<DumpParser> parser;
  for (const auto& chunk : chunks) {
    if (!parser) {
      parser.emplace(seq, portid);
      dumps.emplace_back();
    }
    Dump& dump = dumps.back();
    ++dump.chunks;
    auto done = parser->parse(chunk, [&](const SocketEntry& e) { dump.sockets.push_back(e); });
    if (!done) {
      ADD_FAILURE() << "parse failed: " << done.error().message();
      return std::nullopt;
    }
    EXPECT_EQ(parser->sockets(), dump.sockets.size());
    if (*done) {
      dump.interrupted = parser->interrupted();
      dump.unknown_attributes = parser->unknown_attributes();
      parser.reset();
    }
  }
  if (parser) {
    ADD_FAILURE() << "the last dump has no NLMSG_DONE";
    return std::nullopt;
  }
  return dumps;
}

class RecordedDump : public ::testing::TestWithParam<FixtureSpec> {
 protected:
  void SetUp() override {
    const std::string name = GetParam().name;
    file_ = testing::read_bytes(testing::data_path(name + ".nldump"));
    sizes_ = testing::read_datagram_sizes(testing::data_path(name + ".datagrams"));
  }

  [[nodiscard]] Chunks datagrams() const {
    Chunks out;
    std::size_t pos = 0;
    for (std::size_t n : sizes_) {
      out.push_back(std::span<const std::uint8_t>(file_).subspan(pos, n));
      pos += n;
    }
    return out;
  }

  [[nodiscard]] Chunks messages() const { return testing::split_messages(file_); }

  // Every expected socket is found exactly once, with every field as recorded.
  void check_sockets(const std::vector<Dump>& dumps) const {
    ASSERT_EQ(dumps.size(), 2U) << "one dump per family, each with its own NLMSG_DONE";
    std::size_t total = 0;
    for (std::size_t i = 0; i < dumps.size(); ++i) {
      const auto family = static_cast<std::uint8_t>(i == 0 ? AF_INET : AF_INET6);  // AF_INET first
      for (const SocketEntry& e : dumps[i].sockets) {
        EXPECT_EQ(e.family, family);
      }
      EXPECT_FALSE(dumps[i].interrupted);
      // Every attribute 6.18 sent here (up to INET_DIAG_SOCKOPT, 22) is in our headers.
      EXPECT_EQ(dumps[i].unknown_attributes, 0U);
      total += dumps[i].sockets.size();
    }
    EXPECT_EQ(total, expected_sockets().size());

    std::vector<std::uint64_t> cookies;
    for (const ExpectedSocket& want : expected_sockets()) {
      SCOPED_TRACE(std::string(want.local) + ":" + std::to_string(want.local_port) + " -> " +
                   want.remote + ":" + std::to_string(want.remote_port));
      const SocketEntry* found = nullptr;
      int matches = 0;
      for (const Dump& dump : dumps) {
        for (const SocketEntry& e : dump.sockets) {
          if (e.family == want.family && e.local_port == want.local_port &&
              e.remote_port == want.remote_port) {
            found = &e;
            ++matches;
          }
        }
      }
      ASSERT_EQ(matches, 1);
      const SocketEntry& e = *found;
      EXPECT_EQ(e.state, want.state);
      EXPECT_EQ(e.local_addr, addr(want.family, want.local));
      EXPECT_EQ(e.remote_addr, addr(want.family, want.remote));
      EXPECT_EQ(e.cookie, want.cookie);
      EXPECT_NE(e.cookie, 0U);
      cookies.push_back(e.cookie);
      EXPECT_EQ(e.inode, want.inode);
      EXPECT_EQ(e.uid, 0U);  // recorded as root
      EXPECT_EQ(e.ifindex, 0U);
      EXPECT_EQ(e.recv_q, want.recv_q);
      EXPECT_EQ(e.send_q, want.send_q);
      if (want.state == kTimeWait) {
        // A TIME-WAIT minisocket: only INET_DIAG_MARK, no inode, no tcp_info.
        EXPECT_FALSE(e.full_socket);
        EXPECT_EQ(e.inode, 0U);
        EXPECT_FALSE(e.has_tcp_info);
        continue;
      }
      EXPECT_TRUE(e.full_socket);
      EXPECT_NE(e.inode, 0U);
      EXPECT_EQ(e.has_tcp_info, GetParam().with_info);
      if (!GetParam().with_info) {
        EXPECT_EQ(e.info.bytes_acked, 0U);
        EXPECT_EQ(e.info.rtt_us, 0U);
        continue;
      }
      EXPECT_EQ(e.info.bytes_acked, want.info.bytes_acked);
      EXPECT_EQ(e.info.bytes_received, want.info.bytes_received);
      EXPECT_EQ(e.info.segs_out, want.info.segs_out);
      EXPECT_EQ(e.info.segs_in, want.info.segs_in);
      EXPECT_EQ(e.info.rtt_us, want.info.rtt_us);
      EXPECT_EQ(e.info.total_retrans, want.info.total_retrans);
      if (want.state == kEstab) {
        // Plausible on loopback: a measured RTT under a millisecond, traffic both ways.
        EXPECT_GT(e.info.rtt_us, 0U);
        EXPECT_LT(e.info.rtt_us, 1000U);
        EXPECT_GT(e.info.segs_in, 0U);
        EXPECT_GT(e.info.segs_out, 0U);
      }
    }
    std::sort(cookies.begin(), cookies.end());
    EXPECT_EQ(std::adjacent_find(cookies.begin(), cookies.end()), cookies.end())
        << "cookies are unique";
  }

  Bytes file_;
  std::vector<std::size_t> sizes_;
};

TEST_P(RecordedDump, FileLayoutIsTwoDumpsWithSsSeqAndPortid) {
  std::size_t sum = 0;
  for (std::size_t n : sizes_) {
    sum += n;
  }
  EXPECT_EQ(sum, file_.size()) << "the file is the datagrams, concatenated";
  int dones = 0;
  for (const auto& m : messages()) {
    const nlmsghdr h = testing::header_of(m);
    EXPECT_EQ(h.nlmsg_seq, kSsSeq);
    EXPECT_EQ(h.nlmsg_pid, GetParam().portid);
    EXPECT_EQ(h.nlmsg_flags, NLM_F_MULTI);
    EXPECT_TRUE(h.nlmsg_type == SOCK_DIAG_BY_FAMILY || h.nlmsg_type == NLMSG_DONE);
    if (h.nlmsg_type == NLMSG_DONE) {
      ++dones;
      EXPECT_EQ(h.nlmsg_len, NLMSG_LENGTH(sizeof(int)));
    }
  }
  EXPECT_EQ(dones, 2);
  // The kernel sent each DONE in a datagram of its own.
  ASSERT_EQ(sizes_.size(), 4U);
  EXPECT_EQ(sizes_[1], NLMSG_LENGTH(sizeof(int)));
  EXPECT_EQ(sizes_[3], NLMSG_LENGTH(sizeof(int)));
}

TEST_P(RecordedDump, ParsesDatagramByDatagramAsDelivered) {
  auto dumps = parse_chunks(datagrams(), kSsSeq, GetParam().portid);
  ASSERT_TRUE(dumps);
  for (const Dump& d : *dumps) {
    EXPECT_EQ(d.chunks, 2U) << "the sockets' datagram, then DONE's";
  }
  check_sockets(*dumps);
}

TEST_P(RecordedDump, ParsesMessageByMessage) {
  auto dumps = parse_chunks(messages(), kSsSeq, GetParam().portid);
  ASSERT_TRUE(dumps);
  check_sockets(*dumps);
}

TEST_P(RecordedDump, AcceptsAnyPortidWhenGivenZero) {
  auto dumps = parse_chunks(datagrams(), kSsSeq, 0);
  ASSERT_TRUE(dumps);
  check_sockets(*dumps);
}

TEST_P(RecordedDump, OneDatagramWithSocketsAndDoneEndsTheDump) {
  // The first dump (AF_INET sockets and their DONE) in a single buffer; bytes after the
  // DONE (the AF_INET6 dump) belong to another request and are not read.
  DumpParser parser(kSsSeq, GetParam().portid);
  std::size_t n = 0;
  auto done = parser.parse(file_, [&](const SocketEntry& e) {
    EXPECT_EQ(e.family, AF_INET);
    ++n;
  });
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_TRUE(*done);
  EXPECT_EQ(n, 5U);
  EXPECT_EQ(parser.sockets(), 5U);
}

TEST_P(RecordedDump, RejectsAnotherPortid) {
  DumpParser parser(kSsSeq, GetParam().portid + 1);
  std::size_t n = 0;
  auto done = parser.parse(datagrams().front(), [&](const SocketEntry&) { ++n; });
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().errnum, EPROTO);
  EXPECT_EQ(n, 0U);
}

TEST_P(RecordedDump, RejectsAnotherSeq) {
  DumpParser parser(kSsSeq + 1, GetParam().portid);
  auto done = parser.parse(datagrams().front(), [](const SocketEntry&) {});
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().errnum, EPROTO);
}

TEST_P(RecordedDump, DecodeSocketOnEachPayload) {
  std::size_t sockets = 0;
  for (const auto& m : messages()) {
    const nlmsghdr h = testing::header_of(m);
    if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY) {
      continue;
    }
    std::uint64_t unknown = 0;
    auto e = decode_socket(m.subspan(NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN), &unknown);
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_NE(e->cookie, 0U);
    EXPECT_EQ(unknown, 0U);
    ++sockets;
  }
  EXPECT_EQ(sockets, expected_sockets().size());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RecordedDump,
                         ::testing::Values(FixtureSpec{"tcp_basic", 8948, false},
                                           FixtureSpec{"tcp_info", 8954, true}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// ---------------------------------------------------------------------------------------
// Hand-built buffers
// ---------------------------------------------------------------------------------------

constexpr std::uint32_t kSeq = 0x5eed;
constexpr std::uint32_t kPortid = 4242;

void put_be16(__be16& field, std::uint16_t host) {
  const std::array<std::uint8_t, 2> be{static_cast<std::uint8_t>(host >> 8),
                                       static_cast<std::uint8_t>(host & 0xFFU)};
  std::memcpy(&field, be.data(), be.size());
}

inet_diag_msg make_msg(std::uint8_t family, std::uint8_t state, std::uint16_t sport,
                       std::uint16_t dport, std::uint32_t cookie_lo = 1,
                       std::uint32_t cookie_hi = 0, std::uint32_t inode = 777) {
  inet_diag_msg m{};
  m.idiag_family = family;
  m.idiag_state = state;
  put_be16(m.id.idiag_sport, sport);
  put_be16(m.id.idiag_dport, dport);
  const Address src = addr(family, family == AF_INET ? "10.1.2.3" : "2001:db8::1");
  const Address dst = addr(family, family == AF_INET ? "192.0.2.9" : "2001:db8::2");
  std::memcpy(m.id.idiag_src, src.data(), sizeof m.id.idiag_src);
  std::memcpy(m.id.idiag_dst, dst.data(), sizeof m.id.idiag_dst);
  m.id.idiag_if = 3;
  m.id.idiag_cookie[0] = cookie_lo;
  m.id.idiag_cookie[1] = cookie_hi;
  m.idiag_rqueue = 11;
  m.idiag_wqueue = 22;
  m.idiag_uid = 1000;
  m.idiag_inode = inode;
  return m;
}

const std::uint8_t kShutdown = 0;

// A full socket as 6.18 sends it without extensions: inet_diag_msg, SHUTDOWN, SOCKOPT.
NetlinkBuilder& add_socket(NetlinkBuilder& b, const inet_diag_msg& m, std::uint32_t seq = kSeq,
                           std::uint32_t portid = kPortid, std::uint16_t flags = NLM_F_MULTI) {
  const std::uint16_t sockopt = 0;
  return b.begin_message(SOCK_DIAG_BY_FAMILY, flags, seq, portid)
      .payload(m)
      .attr(INET_DIAG_SHUTDOWN, &kShutdown, sizeof kShutdown)
      .attr(INET_DIAG_SOCKOPT, &sockopt, sizeof sockopt)
      .end_message();
}

struct Outcome {
  Result<bool> result = false;
  std::vector<SocketEntry> sockets;
  bool interrupted = false;
  std::uint64_t unknown = 0;
};

Outcome parse(std::span<const std::uint8_t> buf, std::uint32_t seq = kSeq,
              std::uint32_t portid = kPortid) {
  DumpParser parser(seq, portid);
  Outcome out;
  out.result = parser.parse(buf, [&](const SocketEntry& e) { out.sockets.push_back(e); });
  out.interrupted = parser.interrupted();
  out.unknown = parser.unknown_attributes();
  return out;
}

void expect_error(const Outcome& o, int errnum) {
  ASSERT_FALSE(o.result) << "expected an error";
  EXPECT_EQ(o.result.error().errnum, errnum) << o.result.error().message();
  EXPECT_FALSE(o.result.error().context.empty());
}

void expect_ok(const Outcome& o, bool done) {
  ASSERT_TRUE(o.result) << o.result.error().message();
  EXPECT_EQ(o.result.value(), done);
}

TEST(HandBuilt, DecodesEveryField) {
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET6, kTcpCloseWait, 0x1234, 443, 0x11, 0, 99));
  auto o = parse(b.span());
  expect_ok(o, false);
  ASSERT_EQ(o.sockets.size(), 1U);
  const SocketEntry& e = o.sockets[0];
  EXPECT_EQ(e.family, AF_INET6);
  EXPECT_EQ(e.state, kTcpCloseWait);
  EXPECT_EQ(e.local_port, 0x1234);  // host order
  EXPECT_EQ(e.remote_port, 443);
  EXPECT_EQ(e.local_addr, addr(AF_INET6, "2001:db8::1"));
  EXPECT_EQ(e.remote_addr, addr(AF_INET6, "2001:db8::2"));
  EXPECT_EQ(e.ifindex, 3U);
  EXPECT_EQ(e.cookie, 0x11U);
  EXPECT_EQ(e.inode, 99U);
  EXPECT_EQ(e.uid, 1000U);
  EXPECT_EQ(e.recv_q, 11U);
  EXPECT_EQ(e.send_q, 22U);
  EXPECT_TRUE(e.full_socket);
  EXPECT_FALSE(e.has_tcp_info);
}

TEST(HandBuilt, Ipv4AddressInTheFirstFourBytes) {
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
  auto o = parse(b.span());
  expect_ok(o, false);
  ASSERT_EQ(o.sockets.size(), 1U);
  const Address want{10, 1, 2, 3};
  EXPECT_EQ(o.sockets[0].local_addr, want);
}

TEST(HandBuilt, CookieHighWordIsIdiagCookieOne) {
  // ss prints sk:%llx of ((u64)idiag_cookie[1] << 32) | idiag_cookie[0].
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2, 0x89abcdefU, 0x01234567U));
  auto o = parse(b.span());
  expect_ok(o, false);
  ASSERT_EQ(o.sockets.size(), 1U);
  EXPECT_EQ(o.sockets[0].cookie, 0x0123456789abcdefULL);
  std::array<char, 32> text{};
  std::snprintf(text.data(), text.size(), "%llx",
                static_cast<unsigned long long>(o.sockets[0].cookie));
  EXPECT_STREQ(text.data(), "123456789abcdef");
}

TEST(HandBuilt, MinisocketWithoutShutdownOrSockoptIsNotFull) {
  // TIME-WAIT as 6.18 sends it to root: inet_diag_msg and INET_DIAG_MARK only.
  const std::uint32_t mark = 0;
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpTimeWait, 1, 2, 5, 0, 0))
      .attr(INET_DIAG_MARK, &mark, sizeof mark)
      .end_message();
  // And a request socket, with no attribute at all.
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpSynRecv, 1, 3, 6, 0, 0))
      .end_message();
  auto o = parse(b.span());
  expect_ok(o, false);
  ASSERT_EQ(o.sockets.size(), 2U);
  for (const SocketEntry& e : o.sockets) {
    EXPECT_FALSE(e.full_socket);
    EXPECT_EQ(e.inode, 0U);
  }
}

TEST(HandBuilt, NlmsgErrorCarriesTheErrno) {
  NetlinkBuilder b;
  b.error(kSeq, kPortid, -EPERM);
  expect_error(parse(b.span()), EPERM);
}

TEST(HandBuilt, NlmsgErrorZeroIsAnAcknowledgement) {
  NetlinkBuilder b;
  b.error(kSeq, kPortid, 0);
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
  b.done(kSeq, kPortid);
  auto o = parse(b.span());
  expect_ok(o, true);
  EXPECT_EQ(o.sockets.size(), 1U);
}

TEST(HandBuilt, TruncatedNlmsgErrorIsBadMessage) {
  NetlinkBuilder b;
  const std::uint16_t half = 0;
  b.begin_message(NLMSG_ERROR, 0, kSeq, kPortid).payload(&half, sizeof half).set_len(18);
  // nlmsg_len 18: 2 bytes of payload, less than the int error.
  Bytes buf = b.bytes();
  buf.resize(18);
  expect_error(parse(buf), EBADMSG);
}

TEST(HandBuilt, DoneCarryingAnErrnoIsThatError) {
  for (int err : {EINTR, ENOMEM, ENOBUFS}) {
    SCOPED_TRACE(err);
    NetlinkBuilder b;
    add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
    b.done(kSeq, kPortid, -err);
    auto o = parse(b.span());
    expect_error(o, err);
    EXPECT_EQ(o.sockets.size(), 1U) << "sockets before the DONE were delivered";
  }
}

TEST(HandBuilt, DoneWithZeroEndsTheDump) {
  NetlinkBuilder b;
  b.done(kSeq, kPortid, 0);
  expect_ok(parse(b.span()), true);
}

TEST(HandBuilt, EmptyDatagramIsNotTheEnd) {
  expect_ok(parse({}), false);
}

TEST(HandBuilt, NoopIsSkipped) {
  NetlinkBuilder b;
  b.begin_message(NLMSG_NOOP, 0, kSeq, kPortid).end_message();
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
  auto o = parse(b.span());
  expect_ok(o, false);
  EXPECT_EQ(o.sockets.size(), 1U);
}

TEST(HandBuilt, SeveralMessagesInOneDatagram) {
  NetlinkBuilder b;
  for (std::uint16_t port = 1; port <= 3; ++port) {
    add_socket(b, make_msg(AF_INET, kTcpEstablished, port, 80, port));
  }
  b.done(kSeq, kPortid);
  DumpParser parser(kSeq, kPortid);
  std::vector<std::uint16_t> ports;
  auto done = parser.parse(b.span(), [&](const SocketEntry& e) { ports.push_back(e.local_port); });
  ASSERT_TRUE(done);
  EXPECT_TRUE(*done);
  EXPECT_EQ(ports, (std::vector<std::uint16_t>{1, 2, 3}));
  EXPECT_EQ(parser.sockets(), 3U);
}

TEST(HandBuilt, ParserKeepsCountsAcrossDatagrams) {
  DumpParser parser(kSeq, kPortid);
  std::size_t n = 0;
  auto count = [&](const SocketEntry&) { ++n; };
  for (int i = 0; i < 3; ++i) {
    NetlinkBuilder b;
    add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
    add_socket(b, make_msg(AF_INET6, kTcpEstablished, 1, 2));
    auto done = parser.parse(b.span(), count);
    ASSERT_TRUE(done);
    EXPECT_FALSE(*done);
  }
  NetlinkBuilder end;
  end.done(kSeq, kPortid);
  auto done = parser.parse(end.span(), count);
  ASSERT_TRUE(done);
  EXPECT_TRUE(*done);
  EXPECT_EQ(n, 6U);
  EXPECT_EQ(parser.sockets(), 6U);
}

TEST(HandBuilt, UnpaddedLastMessageAndPaddedMiddleOne) {
  // nlmsg_len need not be a multiple of 4; the next message starts at NLMSG_ALIGN(len).
  const std::uint8_t proto = IPPROTO_TCP;
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 7, 8))
      .attr(INET_DIAG_SHUTDOWN, &kShutdown, sizeof kShutdown)
      .end_message()
      .set_len(NLMSG_HDRLEN + sizeof(inet_diag_msg) + 5);  // 93, then 3 bytes of padding
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 9, 10))
      .attr(INET_DIAG_PROTOCOL, &proto, sizeof proto)
      .end_message()
      .set_len(NLMSG_HDRLEN + sizeof(inet_diag_msg) + 5);
  Bytes buf = b.bytes();
  buf.resize(buf.size() - 3);  // the last message ends without its padding
  auto o = parse(buf);
  expect_ok(o, false);
  ASSERT_EQ(o.sockets.size(), 2U);
  EXPECT_EQ(o.sockets[0].local_port, 7);
  EXPECT_TRUE(o.sockets[0].full_socket);
  EXPECT_EQ(o.sockets[1].local_port, 9);
  EXPECT_FALSE(o.sockets[1].full_socket);
}

TEST(HandBuilt, TruncatedNetlinkHeaderIsBadMessage) {
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
  for (std::size_t len = 1; len < sizeof(nlmsghdr); ++len) {
    SCOPED_TRACE(len);
    expect_error(parse(std::span(b.bytes()).first(len)), EBADMSG);
  }
  // A whole message followed by a piece of a header: the first socket still arrives.
  Bytes buf = b.bytes();
  buf.insert(buf.end(), 8, 0);
  auto o = parse(buf);
  expect_error(o, EBADMSG);
  EXPECT_EQ(o.sockets.size(), 1U);
}

TEST(HandBuilt, NlmsgLenLargerThanTheBufferIsBadMessage) {
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
  const std::size_t size = b.bytes().size();
  for (std::uint32_t len : {static_cast<std::uint32_t>(size + 1),
                            static_cast<std::uint32_t>(size + 4), 65536U, 0xFFFFFFFFU}) {
    SCOPED_TRACE(len);
    NetlinkBuilder big;
    add_socket(big, make_msg(AF_INET, kTcpEstablished, 1, 2)).set_len(len);
    auto o = parse(big.span());
    expect_error(o, EBADMSG);
    EXPECT_TRUE(o.sockets.empty());
  }
}

TEST(HandBuilt, NlmsgLenShorterThanTheHeaderIsBadMessage) {
  // 0 would loop forever if it were trusted; anything under 16 overlaps the header.
  for (std::uint32_t len : {0U, 1U, 4U, 15U}) {
    SCOPED_TRACE(len);
    NetlinkBuilder b;
    add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2)).set_len(len);
    expect_error(parse(b.span()), EBADMSG);
    // A DONE that claims less than its header is no end of the dump.
    NetlinkBuilder d;
    d.done(kSeq, kPortid).set_len(len);
    expect_error(parse(d.span()), EBADMSG);
  }
}

TEST(HandBuilt, DiagMessageShorterThanInetDiagMsgIsBadMessage) {
  const inet_diag_msg m = make_msg(AF_INET, kTcpEstablished, 1, 2);
  for (std::size_t len : {std::size_t{0}, std::size_t{4}, std::size_t{40}, sizeof m - 1}) {
    SCOPED_TRACE(len);
    NetlinkBuilder b;
    b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
        .payload(&m, len)
        .set_len(static_cast<std::uint32_t>(NLMSG_HDRLEN + len));
    Bytes buf = b.bytes();
    buf.resize(NLMSG_HDRLEN + len);
    auto o = parse(buf);
    expect_error(o, EBADMSG);
    EXPECT_TRUE(o.sockets.empty());
    EXPECT_FALSE(decode_socket(std::span(buf).subspan(NLMSG_HDRLEN)));
  }
}

TEST(HandBuilt, AttributeRunningPastTheMessageIsBadMessage) {
  const std::uint32_t mark = 1;
  // nla_len 8 but only 4 bytes of the attribute are inside the message.
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 1, 2))
      .raw_attr(INET_DIAG_MARK, 8)
      .end_message();
  auto o = parse(b.span());
  expect_error(o, EBADMSG);
  EXPECT_TRUE(o.sockets.empty());

  // The attribute fits the datagram but not its own message: the next message's bytes are
  // not the attribute's.
  NetlinkBuilder two;
  two.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 1, 2))
      .raw_attr(INET_DIAG_MARK, 64, testing::bytes_of(mark))
      .end_message();
  two.done(kSeq, kPortid);
  expect_error(parse(two.span()), EBADMSG);
}

TEST(HandBuilt, AttributeShorterThanItsHeaderIsBadMessage) {
  for (std::uint16_t nla_len : std::array<std::uint16_t, 3>{0, 1, 3}) {
    SCOPED_TRACE(nla_len);
    NetlinkBuilder b;
    b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
        .payload(make_msg(AF_INET, kTcpEstablished, 1, 2))
        .raw_attr(INET_DIAG_MARK, nla_len, Bytes(4))
        .end_message();
    expect_error(parse(b.span()), EBADMSG);
  }
}

TEST(HandBuilt, TruncatedAttributeHeaderIsBadMessage) {
  // Two bytes after inet_diag_msg: not even an nlattr.
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 1, 2))
      .set_len(NLMSG_HDRLEN + sizeof(inet_diag_msg) + 2);
  Bytes buf = b.bytes();
  buf.resize(NLMSG_HDRLEN + sizeof(inet_diag_msg) + 2, 0xAB);
  const Bytes exact(buf.begin(), buf.end());  // no spare capacity: ASan sees over-reads
  expect_error(parse(exact), EBADMSG);
}

TEST(HandBuilt, UnknownAttributeIsSkippedAndCounted) {
  tcp_info ti{};
  ti.tcpi_rtt = 1234;
  ti.tcpi_bytes_acked = 5000;
  ti.tcpi_segs_in = 17;
  const Bytes junk{1, 2, 3, 4, 5, 6, 7};
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 1000, 2000, 42))
      .attr(60, junk)
      .attr(INET_DIAG_SHUTDOWN, &kShutdown, sizeof kShutdown)
      .attr(61, Bytes{})
      .attr(INET_DIAG_INFO, &ti, sizeof ti)
      .attr(60, junk)
      .end_message();
  auto o = parse(b.span());
  expect_ok(o, false);
  EXPECT_EQ(o.unknown, 3U);
  ASSERT_EQ(o.sockets.size(), 1U);
  const SocketEntry& e = o.sockets[0];
  EXPECT_EQ(e.local_port, 1000);
  EXPECT_EQ(e.remote_port, 2000);
  EXPECT_EQ(e.cookie, 42U);
  EXPECT_TRUE(e.full_socket);
  EXPECT_TRUE(e.has_tcp_info);
  EXPECT_EQ(e.info.rtt_us, 1234U);
  EXPECT_EQ(e.info.bytes_acked, 5000U);
  EXPECT_EQ(e.info.segs_in, 17U);

  // decode_socket counts into the caller's counter, and works without one.
  const auto payload = b.span().subspan(NLMSG_HDRLEN);
  std::uint64_t unknown = 10;
  ASSERT_TRUE(decode_socket(payload, &unknown));
  EXPECT_EQ(unknown, 13U);
  auto again = decode_socket(payload);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->info.rtt_us, 1234U);
}

TEST(HandBuilt, KnownAttributesWeDoNotUseAreNotCounted) {
  const std::uint32_t mark = 7;
  const char cong[] = "cubic";
  const std::uint64_t cgroup = 1;
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 1, 2))
      .attr(INET_DIAG_MARK, &mark, sizeof mark)
      .attr(INET_DIAG_CONG, cong, sizeof cong)
      .attr(INET_DIAG_CGROUP_ID, &cgroup, sizeof cgroup)
      .end_message();
  auto o = parse(b.span());
  expect_ok(o, false);
  EXPECT_EQ(o.unknown, 0U);
}

TEST(HandBuilt, WrongSeqIsProtocolError) {
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2), kSeq + 1);
  auto o = parse(b.span());
  expect_error(o, EPROTO);
  EXPECT_TRUE(o.sockets.empty());

  NetlinkBuilder d;
  d.done(kSeq - 1, kPortid);
  expect_error(parse(d.span()), EPROTO);
}

TEST(HandBuilt, WrongPortidIsProtocolError) {
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2), kSeq, kPortid + 1);
  auto o = parse(b.span());
  expect_error(o, EPROTO);
  EXPECT_TRUE(o.sockets.empty());

  NetlinkBuilder e;
  e.error(kSeq, kPortid + 1, -EPERM);
  expect_error(parse(e.span()), EPROTO);
}

TEST(HandBuilt, PortidZeroFollowsLibmnl) {
  // As mnl_nlmsg_portid_ok(): a message with nlmsg_pid 0 passes, and a parser built with
  // portid 0 accepts every port id.
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2), kSeq, 0);
  expect_ok(parse(b.span()), false);

  NetlinkBuilder any;
  add_socket(any, make_msg(AF_INET, kTcpEstablished, 1, 2), kSeq, 99);
  expect_ok(parse(any.span(), kSeq, 0), false);
}

TEST(HandBuilt, DumpIntrMarksTheDumpInterrupted) {
  NetlinkBuilder b;
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 1, 2));
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 3, 4), kSeq, kPortid,
             NLM_F_MULTI | NLM_F_DUMP_INTR);
  add_socket(b, make_msg(AF_INET, kTcpEstablished, 5, 6));
  b.done(kSeq, kPortid);
  auto o = parse(b.span());
  expect_ok(o, true);
  EXPECT_TRUE(o.interrupted);
  EXPECT_EQ(o.sockets.size(), 3U) << "an interrupted dump is still read to its end";

  NetlinkBuilder clean;
  add_socket(clean, make_msg(AF_INET, kTcpEstablished, 1, 2));
  clean.done(kSeq, kPortid);
  EXPECT_FALSE(parse(clean.span()).interrupted);

  // The flag on the DONE alone counts too (netlink_dump_done() runs
  // nl_dump_check_consistent() on it).
  NetlinkBuilder on_done;
  on_done.done(kSeq, kPortid, 0, NLM_F_MULTI | NLM_F_DUMP_INTR);
  auto d = parse(on_done.span());
  expect_ok(d, true);
  EXPECT_TRUE(d.interrupted);
}

TEST(HandBuilt, InterruptedStaysSetAcrossDatagrams) {
  DumpParser parser(kSeq, kPortid);
  NetlinkBuilder first;
  add_socket(first, make_msg(AF_INET, kTcpEstablished, 1, 2), kSeq, kPortid,
             NLM_F_MULTI | NLM_F_DUMP_INTR);
  ASSERT_TRUE(parser.parse(first.span(), [](const SocketEntry&) {}));
  NetlinkBuilder second;
  second.done(kSeq, kPortid);
  ASSERT_TRUE(parser.parse(second.span(), [](const SocketEntry&) {}));
  EXPECT_TRUE(parser.interrupted());
}

// tcp_info with every field we read set, cut to `len` bytes.
Bytes tcp_info_prefix(std::size_t len) {
  tcp_info ti{};
  ti.tcpi_rtt = 250;
  ti.tcpi_total_retrans = 3;
  ti.tcpi_bytes_acked = 0x1122334455ULL;
  ti.tcpi_bytes_received = 0x66778899AAULL;
  ti.tcpi_segs_out = 40;
  ti.tcpi_segs_in = 41;
  Bytes b = testing::bytes_of(ti);
  b.resize(len);  // longer than our struct: zeros, as a newer kernel's unknown tail
  return b;
}

SocketEntry decode_with_info(const Bytes& info) {
  NetlinkBuilder b;
  b.begin_message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, kSeq, kPortid)
      .payload(make_msg(AF_INET, kTcpEstablished, 1, 2))
      .attr(INET_DIAG_INFO, info)
      .end_message();
  auto o = parse(b.span());
  if (!o.result || o.sockets.size() != 1) {
    ADD_FAILURE() << "tcp_info of " << info.size() << " bytes did not decode";
    return {};
  }
  EXPECT_TRUE(o.sockets[0].has_tcp_info);
  // A destroy event carries tcp_info and almost nothing else: still a full socket.
  EXPECT_TRUE(o.sockets[0].full_socket);
  return o.sockets[0];
}

TEST(HandBuilt, FullTcpInfo) {
  for (std::size_t len : {sizeof(tcp_info), std::size_t{280}, std::size_t{400}}) {
    SCOPED_TRACE(len);
    const SocketEntry e = decode_with_info(tcp_info_prefix(len));
    EXPECT_EQ(e.info.rtt_us, 250U);
    EXPECT_EQ(e.info.total_retrans, 3U);
    EXPECT_EQ(e.info.bytes_acked, 0x1122334455ULL);
    EXPECT_EQ(e.info.bytes_received, 0x66778899AAULL);
    EXPECT_EQ(e.info.segs_out, 40U);
    EXPECT_EQ(e.info.segs_in, 41U);
  }
}

TEST(HandBuilt, ShortTcpInfoFromAnOlderKernel) {
  // Linux 3.x sent 104 bytes (up to tcpi_total_retrans); 4.1 added bytes_acked/received,
  // 4.2 segs_out/in. Fields past the end read 0, fields within are read, a field cut in
  // half is not read.
  static_assert(offsetof(tcp_info, tcpi_total_retrans) + 4 == 104);
  {
    const SocketEntry e = decode_with_info(tcp_info_prefix(104));
    EXPECT_EQ(e.info.rtt_us, 250U);
    EXPECT_EQ(e.info.total_retrans, 3U);
    EXPECT_EQ(e.info.bytes_acked, 0U);
    EXPECT_EQ(e.info.bytes_received, 0U);
    EXPECT_EQ(e.info.segs_out, 0U);
    EXPECT_EQ(e.info.segs_in, 0U);
  }
  {
    const SocketEntry e = decode_with_info(tcp_info_prefix(offsetof(tcp_info, tcpi_segs_out)));
    EXPECT_EQ(e.info.bytes_acked, 0x1122334455ULL);
    EXPECT_EQ(e.info.bytes_received, 0x66778899AAULL);
    EXPECT_EQ(e.info.segs_out, 0U);
    EXPECT_EQ(e.info.segs_in, 0U);
  }
  {
    const SocketEntry e =
        decode_with_info(tcp_info_prefix(offsetof(tcp_info, tcpi_bytes_acked) + 4));
    EXPECT_EQ(e.info.total_retrans, 3U);
    EXPECT_EQ(e.info.bytes_acked, 0U);
  }
  {
    const SocketEntry e = decode_with_info(tcp_info_prefix(offsetof(tcp_info, tcpi_rtt) + 2));
    EXPECT_EQ(e.info.rtt_us, 0U);
    EXPECT_EQ(e.info.total_retrans, 0U);
  }
  {
    const SocketEntry e = decode_with_info({});
    EXPECT_EQ(e.info.rtt_us, 0U);
    EXPECT_EQ(e.info.bytes_acked, 0U);
  }
}

// An errno in NLMSG_ERROR or NLMSG_DONE is negated; INT_MIN cannot be (signed overflow,
// caught by UBSan), and a positive value would give a negative errnum. The kernel never
// sends either, but the parser takes bytes from anywhere: both are EBADMSG.
TEST(HandBuilt, ErrnoOutOfRangeIsBadMessage) {
  for (int err : {INT_MIN, 5}) {
    SCOPED_TRACE(err);
    NetlinkBuilder e;
    e.error(kSeq, kPortid, err);
    auto o = parse(e.span());
    ASSERT_FALSE(o.result);
    EXPECT_EQ(o.result.error().errnum, EBADMSG);
    NetlinkBuilder d;
    d.done(kSeq, kPortid, err);
    auto od = parse(d.span());
    if (err < 0) {
      ASSERT_FALSE(od.result);
      EXPECT_EQ(od.result.error().errnum, EBADMSG);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Robustness: every truncation and deterministic corruption of recorded datagrams
// ---------------------------------------------------------------------------------------

class Mangled : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = testing::read_bytes(testing::data_path("tcp_info.nldump"));
    sizes_ = testing::read_datagram_sizes(testing::data_path("tcp_info.datagrams"));
    std::size_t pos = 0;
    for (std::size_t n : sizes_) {
      datagrams_.emplace_back(file_.begin() + static_cast<std::ptrdiff_t>(pos),
                              file_.begin() + static_cast<std::ptrdiff_t>(pos + n));
      pos += n;
    }
  }

  static Outcome run(std::span<const std::uint8_t> buf) { return parse(buf, kSsSeq, 0); }

  Bytes file_;
  std::vector<std::size_t> sizes_;
  std::vector<Bytes> datagrams_;
};

TEST_F(Mangled, EveryTruncationEndsCleanlyOrFailsWithBadMessage) {
  for (const Bytes& dgram : datagrams_) {
    std::vector<std::size_t> boundaries{0};
    for (const auto& m : testing::split_messages(dgram)) {
      boundaries.push_back(boundaries.back() + m.size());
    }
    for (std::size_t len = 0; len <= dgram.size(); ++len) {
      const auto o = run(std::span(dgram).first(len));
      const auto at = std::find(boundaries.begin(), boundaries.end(), len);
      if (at != boundaries.end()) {
        // Whole messages: all their sockets, and DONE only if it is in there.
        ASSERT_TRUE(o.result) << len << ": " << o.result.error().message();
        const auto whole = static_cast<std::size_t>(at - boundaries.begin());
        const bool is_done = dgram.size() == NLMSG_LENGTH(sizeof(int)) && len == dgram.size();
        EXPECT_EQ(o.result.value(), is_done) << len;
        EXPECT_EQ(o.sockets.size(), is_done ? 0 : whole) << len;
      } else {
        ASSERT_FALSE(o.result) << len;
        EXPECT_EQ(o.result.error().errnum, EBADMSG) << len;
      }
    }
  }
}

TEST_F(Mangled, EveryByteFlippedParsesOrFails) {
  std::size_t ok = 0;
  std::size_t failed = 0;
  for (const Bytes& dgram : datagrams_) {
    for (std::size_t i = 0; i < dgram.size(); ++i) {
      for (std::uint8_t mask : std::array<std::uint8_t, 5>{0x01, 0x02, 0x10, 0x80, 0xFF}) {
        Bytes copy = dgram;
        copy[i] = static_cast<std::uint8_t>(copy[i] ^ mask);
        const auto o = run(copy);
        if (o.result) {
          ++ok;
          // A shortened nlmsg_len can split a message, never make room for more sockets.
          EXPECT_LE(o.sockets.size(), dgram.size() / (NLMSG_HDRLEN + sizeof(inet_diag_msg)));
        } else {
          ++failed;
          EXPECT_NE(o.result.error().errnum, 0);
        }
      }
    }
  }
  // Most flips land in addresses, counters and tcp_info, which any bytes are valid for.
  EXPECT_GT(ok, failed);
  EXPECT_GT(failed, 0U);
}

TEST_F(Mangled, RandomMultiByteCorruption) {
  std::mt19937 rng(20261123);  // fixed seed: the same buffers on every run
  for (int round = 0; round < 20000; ++round) {
    Bytes copy = datagrams_[static_cast<std::size_t>(round) % datagrams_.size()];
    const auto edits = 1 + rng() % 8;
    for (std::uint32_t k = 0; k < edits; ++k) {
      copy[rng() % copy.size()] = static_cast<std::uint8_t>(rng());
    }
    if (rng() % 4 == 0) {
      copy.resize(rng() % (copy.size() + 1));
    }
    const auto o = run(copy);
    if (!o.result) {
      EXPECT_NE(o.result.error().errnum, 0);
    }
  }
}

TEST_F(Mangled, DecodeSocketOnEveryPayloadPrefix) {
  for (const auto& m : testing::split_messages(file_)) {
    const nlmsghdr h = testing::header_of(m);
    if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY) {
      continue;
    }
    const auto payload = m.subspan(NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN);
    for (std::size_t len = 0; len <= payload.size(); ++len) {
      std::uint64_t unknown = 0;
      auto e = decode_socket(payload.first(len), &unknown);
      if (len < sizeof(inet_diag_msg)) {
        EXPECT_FALSE(e);
      } else if (e) {
        EXPECT_NE(e->cookie, 0U);
      } else {
        EXPECT_EQ(e.error().errnum, EBADMSG);
      }
    }
  }
}

}  // namespace
}  // namespace sockstate::netlink

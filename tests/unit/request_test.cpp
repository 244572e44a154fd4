// build_dump_request() and compile_port_filter(). The bytecode is checked without a kernel
// by a userspace copy of the kernel's verifier and interpreter (below): every filter the
// compiler makes must pass inet_diag_bc_audit() and accept exactly the sockets it should.

#include "sockstate/netlink/request.h"

#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sockstate/netlink/types.h"

namespace sockstate::netlink {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------
// The kernel's bytecode rules, in userspace.
//
// A transcription of inet_diag_bc_run(), valid_cc(), valid_hostcond(), valid_devcond(),
// valid_port_comparison(), valid_markcond(), valid_cgroupcond() and inet_diag_bc_audit()
// from net/ipv4/inet_diag.c, read in torvalds/linux at commit 82ffd0454bd9 (a v5.x tree)
// and in a Linux >= 6.16 tree (inet_diag_bc_audit(cb_data, skb), after DCCP's removal),
// whose port, jump and audit logic is the same; the 6.x one adds INET_DIAG_BC_CGROUP_COND
// (Linux 5.9) and only records which entry fields a program needs. The kernel walks raw
// memory; here every read past the program yields zeros, and the interpreter refuses to
// loop, so a broken program fails a test instead of hanging it.
//
// The kernel's entry (inet_diag_bc_sk()): sport = inet_num, the socket's own port in host
// order; dport = ntohs(inet_dport), the peer's port. A port comparison reads its operand
// from the `no` field of the op that follows it, in host byte order.
// ---------------------------------------------------------------------------------------

struct BcEntry {
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  std::uint16_t family = AF_INET;
  std::array<std::uint8_t, 16> saddr{};
  std::array<std::uint8_t, 16> daddr{};
  std::uint32_t ifindex = 0;
  std::uint32_t userlocks = 0;
  std::uint32_t mark = 0;
  std::uint64_t cgroup_id = 0;
};

constexpr std::uint32_t kSockBindportLock = 8;  // SOCK_BINDPORT_LOCK, include/net/sock.h
// ::ffff:0:0/96: addr[0] == 0 && addr[1] == 0 && addr[2] == htonl(0xffff).
constexpr std::array<std::uint8_t, 12> kV4MappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
constexpr int kOpSize = sizeof(inet_diag_bc_op);

class Program {
 public:
  explicit Program(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  [[nodiscard]] int size() const { return static_cast<int>(bytes_.size()); }

  template <typename T>
  [[nodiscard]] T read(int offset) const {
    T value{};
    std::array<std::uint8_t, sizeof(T)> raw{};
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      const auto at = static_cast<std::size_t>(offset) + i;
      raw[i] = offset >= 0 && at < bytes_.size() ? bytes_[at] : 0;
    }
    std::memcpy(&value, raw.data(), sizeof value);
    return value;
  }
  [[nodiscard]] inet_diag_bc_op op(int offset) const { return read<inet_diag_bc_op>(offset); }

 private:
  std::span<const std::uint8_t> bytes_;
};

bool bitstring_match(const std::uint8_t* a1, const std::uint8_t* a2, int bits) {
  const int words = bits >> 5;
  bits &= 0x1f;
  if (words != 0 && std::memcmp(a1, a2, static_cast<std::size_t>(words) << 2) != 0) {
    return false;
  }
  if (bits != 0) {
    const std::size_t at = static_cast<std::size_t>(words) * 4;
    // mask = htonl(0xffffffff << (32 - bits)), compared on the big-endian bytes.
    const std::uint32_t mask = 0xFFFFFFFFU << (32 - bits);
    const std::uint32_t w1 = (std::uint32_t{a1[at]} << 24) | (std::uint32_t{a1[at + 1]} << 16) |
                             (std::uint32_t{a1[at + 2]} << 8) | a1[at + 3];
    const std::uint32_t w2 = (std::uint32_t{a2[at]} << 24) | (std::uint32_t{a2[at + 1]} << 16) |
                             (std::uint32_t{a2[at + 2]} << 8) | a2[at + 3];
    if (((w1 ^ w2) & mask) != 0) {
      return false;
    }
  }
  return true;
}

// inet_diag_bc_run(): true when the program accepts the socket.
bool bc_run(std::span<const std::uint8_t> bytes, const BcEntry& entry) {
  const Program bc(bytes);
  int len = bc.size();
  int pos = 0;
  for (int steps = 0; len > 0; ++steps) {
    if (steps > 10000) {
      ADD_FAILURE() << "bytecode does not terminate";
      return false;
    }
    bool yes = true;
    const inet_diag_bc_op op = bc.op(pos);
    const int arg = pos + kOpSize;
    switch (op.code) {
      case INET_DIAG_BC_NOP:
        break;
      case INET_DIAG_BC_JMP:
        yes = false;
        break;
      case INET_DIAG_BC_S_EQ:
        yes = entry.sport == bc.op(arg).no;
        break;
      case INET_DIAG_BC_S_GE:
        yes = entry.sport >= bc.op(arg).no;
        break;
      case INET_DIAG_BC_S_LE:
        yes = entry.sport <= bc.op(arg).no;
        break;
      case INET_DIAG_BC_D_EQ:
        yes = entry.dport == bc.op(arg).no;
        break;
      case INET_DIAG_BC_D_GE:
        yes = entry.dport >= bc.op(arg).no;
        break;
      case INET_DIAG_BC_D_LE:
        yes = entry.dport <= bc.op(arg).no;
        break;
      case INET_DIAG_BC_AUTO:
        yes = (entry.userlocks & kSockBindportLock) == 0;
        break;
      case INET_DIAG_BC_S_COND:
      case INET_DIAG_BC_D_COND: {
        const auto cond = bc.read<inet_diag_hostcond>(arg);
        const bool src = op.code == INET_DIAG_BC_S_COND;
        if (cond.port != -1 && cond.port != (src ? entry.sport : entry.dport)) {
          yes = false;
          break;
        }
        const std::uint8_t* address = src ? entry.saddr.data() : entry.daddr.data();
        std::array<std::uint8_t, 16> cond_addr{};
        for (std::size_t i = 0; i < cond_addr.size(); ++i) {
          cond_addr[i] = bc.read<std::uint8_t>(arg + static_cast<int>(sizeof cond + i));
        }
        if (cond.family != AF_UNSPEC && cond.family != entry.family) {
          if (entry.family == AF_INET6 && cond.family == AF_INET) {
            if (std::memcmp(address, kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0 &&
                bitstring_match(address + 12, cond_addr.data(), cond.prefix_len)) {
              break;
            }
          }
          yes = false;
          break;
        }
        if (cond.prefix_len == 0) {
          break;
        }
        if (bitstring_match(address, cond_addr.data(), cond.prefix_len)) {
          break;
        }
        yes = false;
        break;
      }
      case INET_DIAG_BC_DEV_COND:
        yes = bc.read<std::uint32_t>(arg) == entry.ifindex;
        break;
      case INET_DIAG_BC_MARK_COND: {
        const auto cond = bc.read<inet_diag_markcond>(arg);
        yes = (entry.mark & cond.mask) == cond.mark;
        break;
      }
      case INET_DIAG_BC_CGROUP_COND:
        yes = bc.read<std::uint64_t>(arg) == entry.cgroup_id;
        break;
      default:
        break;  // the kernel's switch has no default: the op counts as true
    }
    if (yes) {
      len -= op.yes;
      pos += op.yes;
    } else {
      len -= op.no;
      pos += op.no;
    }
  }
  return len == 0;
}

// valid_cc(): `cc` bytes before the end is the start of an op on the "yes" chain.
bool valid_cc(const Program& bc, int len, int cc) {
  int pos = 0;
  while (len >= 0) {
    if (cc > len) {
      return false;
    }
    if (cc == len) {
      return true;
    }
    const inet_diag_bc_op op = bc.op(pos);
    if (op.yes < 4 || (op.yes & 3) != 0) {
      return false;
    }
    len -= op.yes;
    pos += op.yes;
  }
  return false;
}

bool valid_hostcond(const Program& bc, int pos, int len, int* min_len) {
  *min_len += static_cast<int>(sizeof(inet_diag_hostcond));
  if (len < *min_len) {
    return false;
  }
  const auto cond = bc.read<inet_diag_hostcond>(pos + kOpSize);
  int addr_len = 0;
  switch (cond.family) {
    case AF_UNSPEC:
      addr_len = 0;
      break;
    case AF_INET:
      addr_len = 4;
      break;
    case AF_INET6:
      addr_len = 16;
      break;
    default:
      return false;
  }
  *min_len += addr_len;
  if (len < *min_len) {
    return false;
  }
  return cond.prefix_len <= 8 * addr_len;
}

// inet_diag_bc_audit(): 0, or the errno the kernel answers the dump request with.
int bc_audit(std::span<const std::uint8_t> bytes, bool net_admin = false) {
  const Program bc(bytes);
  if (bc.size() < kOpSize) {
    return -EINVAL;
  }
  const int bytecode_len = bc.size();
  int len = bytecode_len;
  int pos = 0;
  while (len > 0) {
    int min_len = kOpSize;
    const inet_diag_bc_op op = bc.op(pos);
    switch (op.code) {
      case INET_DIAG_BC_S_COND:
      case INET_DIAG_BC_D_COND:
        if (!valid_hostcond(bc, pos, len, &min_len)) {
          return -EINVAL;
        }
        break;
      case INET_DIAG_BC_DEV_COND:  // valid_devcond()
        min_len += static_cast<int>(sizeof(std::uint32_t));
        if (len < min_len) {
          return -EINVAL;
        }
        break;
      case INET_DIAG_BC_S_EQ:
      case INET_DIAG_BC_S_GE:
      case INET_DIAG_BC_S_LE:
      case INET_DIAG_BC_D_EQ:
      case INET_DIAG_BC_D_GE:
      case INET_DIAG_BC_D_LE:  // valid_port_comparison(): the port is in the next op
        min_len += kOpSize;
        if (len < min_len) {
          return -EINVAL;
        }
        break;
      case INET_DIAG_BC_MARK_COND:
        if (!net_admin) {
          return -EPERM;
        }
        min_len += static_cast<int>(sizeof(inet_diag_markcond));
        if (len < min_len) {
          return -EINVAL;
        }
        break;
      case INET_DIAG_BC_CGROUP_COND:  // CONFIG_SOCK_CGROUP_DATA
        min_len += static_cast<int>(sizeof(std::uint64_t));
        if (len < min_len) {
          return -EINVAL;
        }
        break;
      case INET_DIAG_BC_AUTO:
      case INET_DIAG_BC_JMP:
      case INET_DIAG_BC_NOP:
        break;
      default:
        return -EINVAL;
    }
    if (op.code != INET_DIAG_BC_NOP) {
      if (op.no < min_len || op.no > len + 4 || (op.no & 3) != 0) {
        return -EINVAL;
      }
      if (op.no < len && !valid_cc(bc, bytecode_len, len - op.no)) {
        return -EINVAL;
      }
    }
    if (op.yes < min_len || op.yes > len + 4 || (op.yes & 3) != 0) {
      return -EINVAL;
    }
    pos += op.yes;
    len -= op.yes;
  }
  return len == 0 ? 0 : -EINVAL;
}

// Hand-written programs, to check the interpreter itself.
class Asm {
 public:
  Asm& op(std::uint8_t code, std::uint8_t yes, std::uint16_t no) {
    const inet_diag_bc_op o{code, yes, no};
    const auto* p = reinterpret_cast<const std::uint8_t*>(&o);
    bytes_.insert(bytes_.end(), p, p + sizeof o);
    return *this;
  }
  template <typename T>
  Asm& data(const T& value) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof value);
    return *this;
  }
  [[nodiscard]] const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

BcEntry ports(std::uint16_t sport, std::uint16_t dport) {
  BcEntry e;
  e.sport = sport;
  e.dport = dport;
  return e;
}

TEST(KernelBytecodeModel, PortComparisonsAsIproute2WritesThem) {
  // `ss sport ge :1000`: S_GE, the port in the next op's `no`, reject = jump to len + 4.
  Asm ge;
  ge.op(INET_DIAG_BC_S_GE, 8, 12).op(INET_DIAG_BC_NOP, 0, 1000);
  EXPECT_EQ(bc_audit(ge.bytes()), 0);
  EXPECT_FALSE(bc_run(ge.bytes(), ports(999, 1)));
  EXPECT_TRUE(bc_run(ge.bytes(), ports(1000, 1)));
  EXPECT_TRUE(bc_run(ge.bytes(), ports(65535, 1)));

  // `dport le :10 or dport eq :80`.
  Asm either;
  either.op(INET_DIAG_BC_D_LE, 8, 12)
      .op(INET_DIAG_BC_NOP, 0, 10)
      .op(INET_DIAG_BC_JMP, 4, 12)
      .op(INET_DIAG_BC_D_EQ, 8, 12)
      .op(INET_DIAG_BC_NOP, 0, 80);
  EXPECT_EQ(bc_audit(either.bytes()), 0);
  EXPECT_TRUE(bc_run(either.bytes(), ports(1, 10)));
  EXPECT_FALSE(bc_run(either.bytes(), ports(1, 11)));
  EXPECT_TRUE(bc_run(either.bytes(), ports(1, 80)));
  EXPECT_FALSE(bc_run(either.bytes(), ports(80, 81)));
}

TEST(KernelBytecodeModel, HostAndDeviceConditions) {
  // `src 127.0.0.0/8`: accepts 127.x and ::ffff:127.x, not 10.x.
  inet_diag_hostcond cond{};
  cond.family = AF_INET;
  cond.prefix_len = 8;
  cond.port = -1;
  const std::array<std::uint8_t, 4> net{127, 0, 0, 0};
  Asm host;
  host.op(INET_DIAG_BC_S_COND, 16, 20).data(cond).data(net);
  EXPECT_EQ(bc_audit(host.bytes()), 0);
  BcEntry e;
  e.saddr = {127, 0, 0, 9};
  EXPECT_TRUE(bc_run(host.bytes(), e));
  e.saddr = {10, 0, 0, 9};
  EXPECT_FALSE(bc_run(host.bytes(), e));
  e.family = AF_INET6;
  e.saddr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 1, 2, 3};
  EXPECT_TRUE(bc_run(host.bytes(), e));

  // A hostcond cut short, or a prefix longer than the address, fails the audit.
  Asm cut;
  cut.op(INET_DIAG_BC_S_COND, 16, 20).data(cond);
  EXPECT_EQ(bc_audit(cut.bytes()), -EINVAL);
  inet_diag_hostcond long_prefix = cond;
  long_prefix.prefix_len = 33;
  Asm bad;
  bad.op(INET_DIAG_BC_S_COND, 16, 20).data(long_prefix).data(net);
  EXPECT_EQ(bc_audit(bad.bytes()), -EINVAL);

  Asm dev;
  dev.op(INET_DIAG_BC_DEV_COND, 8, 12).data(std::uint32_t{3});
  EXPECT_EQ(bc_audit(dev.bytes()), 0);
  BcEntry d;
  d.ifindex = 3;
  EXPECT_TRUE(bc_run(dev.bytes(), d));
  d.ifindex = 4;
  EXPECT_FALSE(bc_run(dev.bytes(), d));
}

TEST(KernelBytecodeModel, AuditRejectsWhatTheKernelRejects) {
  EXPECT_EQ(bc_audit({}), -EINVAL) << "shorter than one op";
  EXPECT_EQ(bc_audit(Bytes{0, 4}), -EINVAL);

  Asm no_operand;  // a port comparison without the op that holds the port
  no_operand.op(INET_DIAG_BC_S_EQ, 8, 12);
  EXPECT_EQ(bc_audit(no_operand.bytes()), -EINVAL);

  Asm into_operand;  // "no" lands on the operand op: shorter than the comparison itself
  into_operand.op(INET_DIAG_BC_S_EQ, 8, 4).op(INET_DIAG_BC_NOP, 0, 80);
  EXPECT_EQ(bc_audit(into_operand.bytes()), -EINVAL);

  Asm jump_into_operand;  // a jump to an op that is not on the "yes" chain (valid_cc)
  jump_into_operand.op(INET_DIAG_BC_JMP, 4, 8)
      .op(INET_DIAG_BC_S_EQ, 8, 12)
      .op(INET_DIAG_BC_NOP, 0, 80);
  EXPECT_EQ(bc_audit(jump_into_operand.bytes()), -EINVAL);

  Asm unaligned;
  unaligned.op(INET_DIAG_BC_JMP, 4, 6).op(INET_DIAG_BC_NOP, 4, 0);
  EXPECT_EQ(bc_audit(unaligned.bytes()), -EINVAL);

  Asm too_far;  // past len + 4
  too_far.op(INET_DIAG_BC_S_EQ, 8, 16).op(INET_DIAG_BC_NOP, 0, 80);
  EXPECT_EQ(bc_audit(too_far.bytes()), -EINVAL);

  Asm yes_past_end;  // the "yes" chain must end exactly at the end
  yes_past_end.op(INET_DIAG_BC_JMP, 8, 8);
  EXPECT_EQ(bc_audit(yes_past_end.bytes()), -EINVAL);

  Asm unknown;
  unknown.op(42, 4, 8);
  EXPECT_EQ(bc_audit(unknown.bytes()), -EINVAL);

  inet_diag_markcond mark{};
  Asm marked;
  marked.op(INET_DIAG_BC_MARK_COND, 12, 16).data(mark);
  EXPECT_EQ(bc_audit(marked.bytes()), -EPERM) << "mark filters need CAP_NET_ADMIN";
  EXPECT_EQ(bc_audit(marked.bytes(), true), 0);

  Asm nop_any_no;  // a NOP's "no" is never checked
  nop_any_no.op(INET_DIAG_BC_NOP, 4, 0xFFFF);
  EXPECT_EQ(bc_audit(nop_any_no.bytes()), 0);
}

// ---------------------------------------------------------------------------------------
// compile_port_filter against the model
// ---------------------------------------------------------------------------------------

bool should_match(const PortFilter& f, std::uint16_t local, std::uint16_t remote) {
  return (!f.either || local == *f.either || remote == *f.either) &&
         (!f.local || local == *f.local) && (!f.remote || remote == *f.remote);
}

std::string describe(const PortFilter& f) {
  auto one = [](const std::optional<std::uint16_t>& p) {
    return p ? std::to_string(*p) : std::string("-");
  };
  return "either=" + one(f.either) + " local=" + one(f.local) + " remote=" + one(f.remote);
}

TEST(CompilePortFilter, EmptyFilterIsNoProgram) {
  EXPECT_TRUE(PortFilter{}.empty());
  EXPECT_TRUE(compile_port_filter(PortFilter{}).empty());
}

TEST(CompilePortFilter, EveryCombinationPassesTheAuditAndMatchesExactly) {
  // Ports for the filters and for the sockets; 0 and 65535 are the edges, 22 matches none.
  const std::vector<std::uint16_t> filter_ports{0, 80, 443, 65535};
  const std::vector<std::uint16_t> socket_ports{0, 22, 80, 443, 65535};
  const std::vector<std::optional<std::uint16_t>> absent{std::nullopt};
  std::vector<std::optional<std::uint16_t>> present;
  for (std::uint16_t p : filter_ports) {
    present.emplace_back(p);
  }

  int programs = 0;
  int accepted = 0;
  int rejected = 0;
  for (unsigned mask = 1; mask < 8; ++mask) {
    for (const auto& either : (mask & 1U) != 0 ? present : absent) {
      for (const auto& local : (mask & 2U) != 0 ? present : absent) {
        for (const auto& remote : (mask & 4U) != 0 ? present : absent) {
          const PortFilter filter{either, local, remote};
          SCOPED_TRACE(describe(filter));
          ASSERT_FALSE(filter.empty());
          const Bytes program = compile_port_filter(filter);
          ++programs;
          ASSERT_FALSE(program.empty());
          ASSERT_EQ(program.size() % 4, 0U);
          ASSERT_EQ(bc_audit(program), 0);
          ASSERT_EQ(bc_audit(program, true), 0);
          for (std::uint16_t sport : socket_ports) {
            for (std::uint16_t dport : socket_ports) {
              const bool want = should_match(filter, sport, dport);
              EXPECT_EQ(bc_run(program, ports(sport, dport)), want)
                  << "local " << sport << " remote " << dport;
              ++(want ? accepted : rejected);
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(programs, 4 + 4 + 16 + 4 + 16 + 16 + 64);
  // The grid exercises both outcomes.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100);
}

TEST(CompilePortFilter, LocalIsTheSocketsOwnPort) {
  // ss's sport/dport: the kernel's entry.sport is the socket's own (local) port.
  const Bytes local = compile_port_filter(PortFilter{std::nullopt, 8080, std::nullopt});
  EXPECT_TRUE(bc_run(local, ports(8080, 40000)));
  EXPECT_FALSE(bc_run(local, ports(40000, 8080)));
  const Bytes remote = compile_port_filter(PortFilter{std::nullopt, std::nullopt, 8080});
  EXPECT_FALSE(bc_run(remote, ports(8080, 40000)));
  EXPECT_TRUE(bc_run(remote, ports(40000, 8080)));
}

TEST(CompilePortFilter, FitsTheOneByteYesOffsets) {
  // inet_diag_bc_op.yes is a u8: the largest program must keep every op's jump in range.
  const Bytes program = compile_port_filter(PortFilter{65535, 65535, 65535});
  EXPECT_LE(program.size(), 252U);
  EXPECT_EQ(bc_audit(program), 0);
}

// ---------------------------------------------------------------------------------------
// build_dump_request
// ---------------------------------------------------------------------------------------

static_assert(sizeof(inet_diag_req_v2) == 56);
constexpr std::size_t kRequestLen = NLMSG_HDRLEN + sizeof(inet_diag_req_v2);  // 72
// NLA_HDRLEN and NLA_ALIGN() mix int and size_t; types.h's align4() does not.
constexpr std::size_t kNlaHdrLen = align4(sizeof(nlattr));

struct ParsedRequest {
  nlmsghdr header{};
  inet_diag_req_v2 req{};
  std::optional<Bytes> bytecode;  // INET_DIAG_REQ_BYTECODE, found as the kernel finds it
  int attributes = 0;
};

// Reads the request as inet_diag_handler_cmd() does: nlmsg_len(h) >= sizeof(req_v2), then
// nlmsg_find_attr(h, sizeof(req_v2), INET_DIAG_REQ_BYTECODE) over well-formed attributes.
std::optional<ParsedRequest> parse_request(const Bytes& buf) {
  ParsedRequest out;
  if (buf.size() < kRequestLen) {
    ADD_FAILURE() << "request of " << buf.size() << " bytes";
    return std::nullopt;
  }
  std::memcpy(&out.header, buf.data(), sizeof out.header);
  std::memcpy(&out.req, buf.data() + NLMSG_HDRLEN, sizeof out.req);
  EXPECT_EQ(out.header.nlmsg_len, buf.size()) << "nlmsg_len is the whole buffer";
  std::size_t pos = NLMSG_HDRLEN + align4(sizeof(inet_diag_req_v2));
  while (pos + sizeof(nlattr) <= out.header.nlmsg_len) {
    nlattr a{};
    std::memcpy(&a, buf.data() + pos, sizeof a);
    if (a.nla_len < sizeof(nlattr) || pos + a.nla_len > out.header.nlmsg_len) {
      ADD_FAILURE() << "malformed attribute at " << pos;
      return std::nullopt;
    }
    ++out.attributes;
    if (a.nla_type == INET_DIAG_REQ_BYTECODE && !out.bytecode) {
      const auto* data = buf.data() + pos + kNlaHdrLen;
      out.bytecode = Bytes(data, data + (a.nla_len - kNlaHdrLen));
    }
    pos += align4(a.nla_len);
  }
  EXPECT_EQ(pos, out.header.nlmsg_len) << "attributes fill the message";
  return out;
}

void expect_zero_id(const inet_diag_sockid& id) {
  const Bytes zero(sizeof id, 0);
  Bytes raw(sizeof id);
  std::memcpy(raw.data(), &id, sizeof id);
  EXPECT_EQ(raw, zero) << "the kernel filters on idiag_sport/dport when non-zero";
}

TEST(BuildDumpRequest, HeaderAndRequestWithoutBytecode) {
  for (std::uint8_t family : std::array<std::uint8_t, 2>{AF_INET, AF_INET6}) {
    for (bool want_info : {false, true}) {
      SCOPED_TRACE(std::to_string(family) + (want_info ? " info" : ""));
      DumpRequest request;
      request.family = family;
      request.states = kAllStates;
      request.want_info = want_info;
      const Bytes buf = build_dump_request(request, 0xA1B2C3D4U);
      ASSERT_EQ(buf.size(), kRequestLen);
      auto parsed = parse_request(buf);
      ASSERT_TRUE(parsed);
      EXPECT_EQ(parsed->header.nlmsg_len, kRequestLen);
      EXPECT_EQ(parsed->header.nlmsg_type, SOCK_DIAG_BY_FAMILY);
      EXPECT_EQ(parsed->header.nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
      EXPECT_EQ(parsed->header.nlmsg_seq, 0xA1B2C3D4U);
      EXPECT_EQ(parsed->header.nlmsg_pid, 0U) << "the kernel fills in the sender";
      EXPECT_EQ(parsed->req.sdiag_family, family);
      EXPECT_EQ(parsed->req.sdiag_protocol, IPPROTO_TCP);
      EXPECT_EQ(parsed->req.idiag_states, kAllStates);
      EXPECT_EQ(parsed->req.idiag_ext, want_info ? 1U << (INET_DIAG_INFO - 1) : 0U);
      EXPECT_EQ(parsed->req.pad, 0U);
      expect_zero_id(parsed->req.id);
      EXPECT_FALSE(parsed->bytecode);
      EXPECT_EQ(parsed->attributes, 0);
    }
  }
}

TEST(BuildDumpRequest, StatesAreCopied) {
  for (std::uint32_t states : {kAllStates, kAllStates | kBoundInactiveStates, state_bit(kTcpListen),
                               state_bit(kTcpTimeWait) | state_bit(1)}) {
    DumpRequest request;
    request.family = AF_INET;
    request.states = states;
    auto parsed = parse_request(build_dump_request(request, 1));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->req.idiag_states, states);
  }
}

TEST(BuildDumpRequest, BytecodeAttributeIffBytecode) {
  const Bytes program = compile_port_filter(PortFilter{443, std::nullopt, 8443});
  ASSERT_FALSE(program.empty());
  DumpRequest request;
  request.family = AF_INET6;
  request.states = state_bit(kTcpEstablished);
  request.want_info = true;
  request.bytecode = program;
  const Bytes buf = build_dump_request(request, 77);
  EXPECT_EQ(buf.size(), kRequestLen + kNlaHdrLen + align4(program.size()));
  auto parsed = parse_request(buf);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->header.nlmsg_seq, 77U);
  EXPECT_EQ(parsed->attributes, 1);
  ASSERT_TRUE(parsed->bytecode);
  EXPECT_EQ(*parsed->bytecode, program);
  // What the kernel would then do with it.
  EXPECT_EQ(bc_audit(*parsed->bytecode), 0);
  EXPECT_TRUE(bc_run(*parsed->bytecode, ports(443, 8443)));
  EXPECT_FALSE(bc_run(*parsed->bytecode, ports(443, 443)));
}

TEST(BuildDumpRequest, UnalignedBytecodeIsPaddedWithZeros) {
  // Not a valid program; only the attribute framing is under test.
  DumpRequest request;
  request.family = AF_INET;
  request.bytecode = {1, 2, 3, 4, 5, 6};
  const Bytes buf = build_dump_request(request, 5);
  ASSERT_EQ(buf.size(), kRequestLen + kNlaHdrLen + 8);
  nlattr a{};
  std::memcpy(&a, buf.data() + kRequestLen, sizeof a);
  EXPECT_EQ(a.nla_type, INET_DIAG_REQ_BYTECODE);
  EXPECT_EQ(a.nla_len, kNlaHdrLen + 6);
  EXPECT_EQ(buf[buf.size() - 2], 0);
  EXPECT_EQ(buf[buf.size() - 1], 0);
  auto parsed = parse_request(buf);
  ASSERT_TRUE(parsed);
  ASSERT_TRUE(parsed->bytecode);
  EXPECT_EQ(*parsed->bytecode, request.bytecode);
}

// The protocol is the request's: a UDP dump asks for UDP sockets, and both families in one
// walk exist only for TCP (the old request names TCP by its message type), so a UDP
// AF_UNSPEC request is sock_diag's, which the kernel refuses (the caller then dumps each).
TEST(DumpRequest, TheProtocolIsTheRequests) {
  DumpRequest request;
  request.family = AF_INET6;
  request.states = kAllStates;
  request.protocol = IPPROTO_UDP;
  auto parsed = parse_request(build_dump_request(request, 1));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->header.nlmsg_type, SOCK_DIAG_BY_FAMILY);
  EXPECT_EQ(parsed->req.sdiag_protocol, IPPROTO_UDP);
  request.family = AF_UNSPEC;
  parsed = parse_request(build_dump_request(request, 2));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->header.nlmsg_type, SOCK_DIAG_BY_FAMILY);
  EXPECT_EQ(parsed->req.sdiag_family, AF_UNSPEC);
  EXPECT_EQ(parsed->req.sdiag_protocol, IPPROTO_UDP);

  SocketEntry socket;
  socket.family = AF_INET;
  socket.protocol = IPPROTO_UDP;
  const std::vector<std::uint8_t> lookup = build_lookup_request(socket, 3);
  inet_diag_req_v2 req{};
  ASSERT_GE(lookup.size(), NLMSG_HDRLEN + sizeof req);
  std::memcpy(&req, lookup.data() + NLMSG_HDRLEN, sizeof req);
  EXPECT_EQ(req.sdiag_protocol, IPPROTO_UDP);
}

}  // namespace
}  // namespace sockstate::netlink

namespace sockstate::netlink {
namespace {

// Both families in one dump: the older inet_diag request (TCPDIAG_GETSOCK, struct
// inet_diag_req), family AF_UNSPEC, with the states, the tcp_info bit and the bytecode.
TEST(DumpRequest, BothFamiliesIsTheCompatRequestWithFamilyUnspec) {
  PortFilter filter;
  filter.local = 22;
  const std::vector<std::uint8_t> code = compile_port_filter(filter);
  const DumpRequest request{AF_UNSPEC, state_bit(kTcpEstablished), true, code};
  const std::vector<std::uint8_t> msg = build_dump_request(request, 77);
  nlmsghdr nlh{};
  ASSERT_GE(msg.size(), sizeof nlh + sizeof(inet_diag_req));
  std::memcpy(&nlh, msg.data(), sizeof nlh);
  EXPECT_EQ(nlh.nlmsg_type, TCPDIAG_GETSOCK);
  EXPECT_EQ(nlh.nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
  EXPECT_EQ(nlh.nlmsg_seq, 77U);
  EXPECT_EQ(nlh.nlmsg_len, msg.size());
  inet_diag_req req{};
  std::memcpy(&req, msg.data() + NLMSG_HDRLEN, sizeof req);
  EXPECT_EQ(req.idiag_family, AF_UNSPEC);
  EXPECT_EQ(req.idiag_states, state_bit(kTcpEstablished));
  EXPECT_EQ(req.idiag_ext, 1U << (INET_DIAG_INFO - 1));
  nlattr attr{};
  const std::size_t at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof req);
  ASSERT_GE(msg.size(), at + sizeof attr + code.size());
  std::memcpy(&attr, msg.data() + at, sizeof attr);
  EXPECT_EQ(attr.nla_type, INET_DIAG_REQ_BYTECODE);
  EXPECT_EQ(attr.nla_len, sizeof attr + code.size());
  EXPECT_EQ(0, std::memcmp(msg.data() + at + sizeof attr, code.data(), code.size()));
}

}  // namespace
}  // namespace sockstate::netlink

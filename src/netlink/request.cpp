#include "sockstate/netlink/request.h"

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cstring>

#include "sockstate/netlink/types.h"

namespace sockstate::netlink {
namespace {

using Program = std::vector<std::uint8_t>;

constexpr std::uint16_t kOpSize = sizeof(inet_diag_bc_op);

void put_op(Program& p, std::uint8_t code, std::uint16_t yes, std::uint16_t no) {
  const inet_diag_bc_op op{code, static_cast<unsigned char>(yes), no};
  const std::size_t at = p.size();
  p.resize(at + sizeof op);
  std::memcpy(p.data() + at, &op, sizeof op);
}

// "port == N" for one end: the condition op and a second op whose `no` holds the port,
// as the kernel's valid_port_comparison() expects. True falls through, false jumps past
// the end of the program (len + 4), which the kernel reads as "reject".
Program port_equals(std::uint8_t code, std::uint16_t port) {
  Program p;
  put_op(p, code, 2 * kOpSize, 3 * kOpSize);
  put_op(p, 0, 0, port);
  return p;
}

// The rejecting jumps of `a` (those that land just past its end) are moved to land past
// the end of `a` followed by `reloc` more bytes. iproute2 calls this ssfilter_patch().
void patch_rejects(Program& a, std::size_t reloc) {
  std::size_t pos = 0;
  const std::size_t len = a.size();
  while (pos < len) {
    inet_diag_bc_op op{};
    std::memcpy(&op, a.data() + pos, sizeof op);
    if (op.no == len - pos + kOpSize) {
      op.no = static_cast<std::uint16_t>(op.no + reloc);
      std::memcpy(a.data() + pos, &op, sizeof op);
    }
    pos += op.yes;
  }
}

// a AND b: b runs where a accepted; a's rejections skip b too.
Program both(Program a, const Program& b) {
  patch_rejects(a, b.size());
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// a OR b: where a accepts, an unconditional jump skips b to accept; where a rejects, it
// lands on b (just past the jump), since a's rejecting jumps go len(a) + 4.
Program either(Program a, const Program& b) {
  put_op(a, INET_DIAG_BC_JMP, kOpSize, static_cast<std::uint16_t>(b.size() + kOpSize));
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

std::vector<std::uint8_t> compile_port_filter(const PortFilter& filter) {
  Program program;
  auto add = [&program](Program term) {
    program = program.empty() ? std::move(term) : both(std::move(program), term);
  };
  if (filter.either) {
    add(either(port_equals(INET_DIAG_BC_S_EQ, *filter.either),
               port_equals(INET_DIAG_BC_D_EQ, *filter.either)));
  }
  if (filter.local) {
    add(port_equals(INET_DIAG_BC_S_EQ, *filter.local));
  }
  if (filter.remote) {
    add(port_equals(INET_DIAG_BC_D_EQ, *filter.remote));
  }
  return program;
}

namespace {

// A dump request: the netlink header, a request header of type Req (sock_diag's
// inet_diag_req_v2, or inet_diag's older inet_diag_req) whose family `set_family` sets,
// the states and the tcp_info bit (both headers have them), and the bytecode.
template <typename Req, typename SetFamily>
std::vector<std::uint8_t> dump_message(std::uint16_t type, const DumpRequest& request,
                                       std::uint32_t seq, SetFamily set_family) {
  std::vector<std::uint8_t> buf(align4(sizeof(nlmsghdr)) + align4(sizeof(Req)) +
                                align4(sizeof(nlattr)) + align4(request.bytecode.size()));
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = seq;
  auto* req = static_cast<Req*>(mnl_nlmsg_put_extra_header(nlh, sizeof(Req)));
  set_family(*req);
  req->idiag_states = request.states;
  req->idiag_ext = request.want_info ? static_cast<std::uint8_t>(1U << (INET_DIAG_INFO - 1)) : 0;
  if (!request.bytecode.empty()) {
    mnl_attr_put(nlh, INET_DIAG_REQ_BYTECODE, request.bytecode.size(), request.bytecode.data());
  }
  buf.resize(nlh->nlmsg_len);
  return buf;
}

}  // namespace

std::vector<std::uint8_t> build_dump_request(const DumpRequest& request, std::uint32_t seq) {
  if (request.family == AF_UNSPEC && request.protocol == IPPROTO_TCP) {
    // Both families in one walk of the kernel's socket hash: the inet_diag request that
    // came before sock_diag (TCPDIAG_GETSOCK), which the kernel still answers with family
    // AF_UNSPEC. A dump per family walks the whole hash for each (100,000 IPv4 sockets:
    // 21 ms of CPU for an IPv6 dump that finds none). The old request names its protocol by
    // message type, and only TCP and DCCP have one: for another protocol, AF_UNSPEC goes out
    // as sock_diag's, which the kernel refuses, and the caller dumps one family at a time.
    return dump_message<inet_diag_req>(TCPDIAG_GETSOCK, request, seq,
                                       [](inet_diag_req& r) { r.idiag_family = AF_UNSPEC; });
  }
  return dump_message<inet_diag_req_v2>(SOCK_DIAG_BY_FAMILY, request, seq,
                                        [&request](inet_diag_req_v2& r) {
                                          r.sdiag_family = request.family;
                                          r.sdiag_protocol = request.protocol;
                                        });
}

std::vector<std::uint8_t> build_lookup_request(const SocketEntry& socket, std::uint32_t seq) {
  std::vector<std::uint8_t> buf(align4(sizeof(nlmsghdr)) + align4(sizeof(inet_diag_req_v2)));
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  auto* req =
      static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  req->sdiag_family = socket.family;
  req->sdiag_protocol = socket.protocol;
  req->idiag_states = ~0U;
  req->idiag_ext = static_cast<std::uint8_t>(1U << (INET_DIAG_INFO - 1));
  req->id.idiag_sport = htons(socket.local_port);
  req->id.idiag_dport = htons(socket.remote_port);
  std::memcpy(req->id.idiag_src, socket.local_addr.data(), sizeof req->id.idiag_src);
  std::memcpy(req->id.idiag_dst, socket.remote_addr.data(), sizeof req->id.idiag_dst);
  req->id.idiag_if = socket.ifindex;
  req->id.idiag_cookie[0] = static_cast<std::uint32_t>(socket.cookie);
  req->id.idiag_cookie[1] = static_cast<std::uint32_t>(socket.cookie >> 32);
  buf.resize(nlh->nlmsg_len);
  return buf;
}

}  // namespace sockstate::netlink

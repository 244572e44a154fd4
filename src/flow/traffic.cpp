#include "sockstate/flow/traffic.h"

#include <algorithm>

#include "sockstate/flow/kernel_facts.h"

namespace sockstate::flow {
namespace {

std::uint64_t less(std::uint64_t a, std::uint64_t b) {
  return a > b ? a - b : 0;
}

// tcp_disconnect() (a blocking connect() that failed, close() with SO_LINGER 0) zeroes
// the counters before the socket is destroyed.
bool counters_reset(const netlink::TcpInfo& i) {
  return i.bytes_acked == 0 && i.bytes_received == 0 && i.segs_out == 0 && i.segs_in == 0 &&
         i.bytes_sent == 0;
}

}  // namespace

Traffic application_traffic(const netlink::SocketEntry& e, bool active_open) {
  // tcpi_bytes_acked and tcpi_bytes_received advance with the sequence numbers acked and
  // received (tcp_snd_una_update(), tcp_rcv_nxt_update()), and SYN and FIN each take one:
  // the active opener's SYN is counted once the SYN-ACK arrives (a passive opener's
  // snd_una starts past its SYN), our FIN once acked, the peer's FIN once received.
  const bool our_fin_acked = e.state == netlink::kTcpFinWait2 || e.state == netlink::kTcpTimeWait;
  const bool peer_fin_received =
      e.state == netlink::kTcpCloseWait || e.state == netlink::kTcpLastAck ||
      e.state == netlink::kTcpClosing || e.state == netlink::kTcpTimeWait;
  Traffic t;
  t.bytes_sent = less(e.info.bytes_acked, (active_open ? 1U : 0U) + (our_fin_acked ? 1U : 0U));
  t.bytes_received = less(e.info.bytes_received, peer_fin_received ? 1U : 0U);
  t.segs_sent = e.info.segs_out;
  t.segs_received = e.info.segs_in;
  return t;
}

FinalTraffic final_traffic(const netlink::TcpInfo& info, bool active_open) {
  FinalTraffic f;
  f.reset = counters_reset(info);
  Traffic& t = f.totals;
  t.segs_sent = info.segs_out;
  t.segs_received = info.segs_in;
  const std::uint64_t syn = active_open && info.bytes_acked > 0 ? 1 : 0;
  if (info.has_bytes_sent) {
    t.bytes_sent = less(info.bytes_sent, info.bytes_retrans);
    f.orderly = info.bytes_acked > t.bytes_sent + syn;
  } else {
    // Before Linux 4.19 there is no data-only counter: assume an orderly close, whose
    // FIN was acknowledged.
    f.orderly = info.bytes_acked > syn;
    t.bytes_sent = less(info.bytes_acked, syn + (f.orderly ? 1 : 0));
  }
  t.bytes_received = less(info.bytes_received, f.orderly ? 1 : 0);
  return f;
}

Traffic minus(const Traffic& now, const Traffic& before) {
  return {less(now.bytes_sent, before.bytes_sent), less(now.bytes_received, before.bytes_received),
          less(now.segs_sent, before.segs_sent), less(now.segs_received, before.segs_received)};
}

Traffic max_of(const Traffic& a, const Traffic& b) {
  return {std::max(a.bytes_sent, b.bytes_sent), std::max(a.bytes_received, b.bytes_received),
          std::max(a.segs_sent, b.segs_sent), std::max(a.segs_received, b.segs_received)};
}

}  // namespace sockstate::flow

namespace sockstate::flow {

void amend_final(netlink::SocketEntry& entry, const KernelFacts& facts) {
  if (!facts.ended) {
    return;
  }
  netlink::TcpInfo& info = entry.info;
  if (!entry.has_tcp_info || counters_reset(info)) {
    entry.has_tcp_info = true;
    info.bytes_acked = std::max(info.bytes_acked, facts.bytes_acked);
    info.bytes_received = std::max(info.bytes_received, facts.bytes_received);
    info.bytes_sent = std::max(info.bytes_sent, facts.bytes_sent);
    info.bytes_retrans = std::max(info.bytes_retrans, facts.bytes_retrans);
    info.has_bytes_sent = true;
  }
  if (info.rtt_us == 0) {
    info.rtt_us = facts.rtt_us;
  }
  if (info.total_retrans == 0) {
    info.total_retrans = facts.total_retrans;
  }
  if (entry.remote_port == 0) {
    entry.remote_port = facts.remote_port;
  }
}

}  // namespace sockstate::flow

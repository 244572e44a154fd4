#include "sockstate/snapshot/table.h"

#include <algorithm>
#include <string_view>

#include "sockstate/ocsf/record.h"
#include "sockstate/ocsf/tcp_state.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/socket_owners.h"

namespace sockstate::snapshot {
namespace {

// Column widths: protocol, state, recv-q, send-q, local, peer; then process and container.
constexpr std::size_t kNetid = 6;
constexpr std::size_t kState = 12;
constexpr std::size_t kQueue = 7;
constexpr std::size_t kEndpoint = 42;

void cell(std::string& out, std::string_view text, std::size_t width, bool right = false) {
  const std::size_t pad = text.size() < width ? width - text.size() : 1;
  if (right) {
    out.append(pad, ' ');
    out.append(text);
    out.push_back(' ');
  } else {
    out.append(text);
    out.append(pad, ' ');
  }
}

std::string endpoint(const flow::Endpoint& e, bool wildcard_port) {
  std::string text = ocsf::address_text(e.ip);
  if (!flow::is_ipv4_mapped(e.ip)) {
    text = "[" + text + "]";
  }
  return text + ":" + (e.port == 0 && wildcard_port ? std::string("*") : std::to_string(e.port));
}

// Printable: a name from /proc is already sanitized, but a terminal also wants no spaces
// in a column.
std::string bare(std::string_view text) {
  std::string out(text);
  std::replace(out.begin(), out.end(), ' ', '_');
  return out;
}

// The state column: TCP's caption; UDP's as ss writes it (it has no TCP state).
std::string_view state_text(const flow::SocketFacts& e) {
  if (!flow::has_tcp_states(e.protocol)) {
    return e.state == netlink::kTcpEstablished ? "ESTAB" : "UNCONN";
  }
  return ocsf::kTcpStateCaptions[ocsf::tcp_state_id(e.state)];
}

}  // namespace

void append_table_header(std::string& out) {
  cell(out, "Netid", kNetid);
  cell(out, "State", kState);
  cell(out, "Recv-Q", kQueue, true);
  cell(out, "Send-Q", kQueue, true);
  cell(out, "Local Address:Port", kEndpoint);
  cell(out, "Peer Address:Port", kEndpoint);
  out.append("Process Container\n");
}

void append_table_row(const flow::Observation& obs, std::string& out) {
  const flow::SocketFacts& e = obs.socket;
  cell(out, flow::has_tcp_states(e.protocol) ? "tcp" : "udp", kNetid);
  cell(out, state_text(e), kState);
  cell(out, e.queues ? std::to_string(e.queues->recv) : "-", kQueue, true);
  cell(out, e.queues ? std::to_string(e.queues->send) : "-", kQueue, true);
  cell(out, endpoint(obs.local, true), kEndpoint);
  cell(out, endpoint(obs.remote, true), kEndpoint);
  const proc::ProcessInfo* p = obs.owner.process;
  out.append(p != nullptr ? bare(p->name) + "(" + std::to_string(p->pid) + ")" : "-");
  const proc::Container* c = p != nullptr && p->container ? &*p->container : nullptr;
  if (c == nullptr && obs.owner.cgroup != nullptr && obs.owner.cgroup->container) {
    c = &*obs.owner.cgroup->container;
  }
  if (c == nullptr) {
    c = obs.owner.netns_container;
  }
  out.push_back(' ');
  out.append(c == nullptr ? "-" : bare(!c->name.empty() ? c->name : c->uid.substr(0, 12)));
  out.push_back('\n');
}

}  // namespace sockstate::snapshot

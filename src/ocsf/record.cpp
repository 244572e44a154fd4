#include "sockstate/ocsf/record.h"

#include <arpa/inet.h>
#include <sys/random.h>
#include <unistd.h>

#include <charconv>
#include <ctime>

#include "sockstate/ocsf/community_id.h"
#include "sockstate/ocsf/json_writer.h"

namespace sockstate::ocsf {
namespace {

constexpr std::string_view kHex = "0123456789abcdef";

void append_hex(std::string& out, std::uint64_t v, int digits) {
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
    out.push_back(kHex[(v >> shift) & 0xF]);
  }
}

std::string_view direction_caption(Direction d) {
  switch (d) {
    case Direction::kInbound:
      return "Inbound";
    case Direction::kOutbound:
      return "Outbound";
    case Direction::kLocal:
      return "Local";
    case Direction::kUnknown:
      break;
  }
  return "Unknown";
}

std::string_view boundary_caption(Boundary b) {
  switch (b) {
    case Boundary::kLocalhost:
      return "Localhost";
    case Boundary::kInternal:
      return "Internal";
    case Boundary::kExternal:
      return "External";
    case Boundary::kUnknown:
      break;
  }
  return "Unknown";
}

std::string_view observation_point_caption(ObservationPoint p) {
  switch (p) {
    case ObservationPoint::kSource:
      return "Source";
    case ObservationPoint::kDestination:
      return "Destination";
    case ObservationPoint::kBoth:
      return "Both";
    case ObservationPoint::kUnknown:
      break;
  }
  return "Unknown";
}

// OCSF device type_id captions (1.8.0).
std::string_view device_type_caption(int type_id) {
  static constexpr std::array<std::string_view, 16> kCaptions = {
      "Unknown", "Server",   "Desktop", "Laptop", "Tablet", "Mobile", "Virtual", "IOT",
      "Browser", "Firewall", "Switch",  "Hub",    "Router", "IDS",    "IPS",     "Load Balancer"};
  if (type_id >= 0 && static_cast<std::size_t>(type_id) < kCaptions.size()) {
    return kCaptions[static_cast<std::size_t>(type_id)];
  }
  return "Other";
}

void append_endpoint_text(std::string& out, const Address& a, std::uint16_t port) {
  const bool v6 = !is_ipv4_mapped(a);
  if (v6) {
    out.push_back('[');
  }
  AddressBuffer buf{};
  out.append(format_address(a, buf));
  if (v6) {
    out.push_back(']');
  }
  if (port != 0) {
    out.push_back(':');
    auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), port);
    out.append(buf.data(), end);
  }
}

void write_container(JsonWriter& w, const proc::Container& c) {
  w.begin_object("container");
  if (!c.uid.empty()) {
    w.field_ascii("uid", c.uid);
  }
  if (!c.name.empty()) {
    w.field("name", c.name);
  }
  if (!c.runtime.empty()) {
    w.field_ascii("runtime", c.runtime);
  }
  if (!c.orchestrator.empty()) {
    w.field_ascii("orchestrator", c.orchestrator);
  }
  if (!c.pod_uuid.empty()) {
    w.field_ascii("pod_uuid", c.pod_uuid);
  }
  w.end_object();
}

// Port 0 is no TCP port: the kernel has cleared it (tcp_disconnect() after a failed
// blocking connect()), so the endpoint is written with its address alone.
void write_endpoint(JsonWriter& w, std::string_view key, const Address& a, std::uint16_t port,
                    const proc::Container* container = nullptr) {
  AddressBuffer buf{};
  w.begin_object(key);
  w.field_ascii("ip", format_address(a, buf));
  if (port != 0) {
    w.field("port", std::uint32_t{port});
  }
  if (container != nullptr) {
    write_container(w, *container);
  }
  w.end_object();
}

void write_user(JsonWriter& w, const proc::ProcessInfo& p) {
  w.begin_object("user");
  std::array<char, 16> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), p.uid);
  w.field_ascii("uid",
                std::string_view(digits.data(), static_cast<std::size_t>(end - digits.data())));
  if (!p.user.empty()) {
    w.field("name", p.user);
  }
  w.end_object();
}

}  // namespace

std::uint64_t random_run_id() {
  std::uint64_t id = 0;
  if (::getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) {
    // No entropy source: time and pid still make runs distinct on one host.
    constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15U;
    const auto ms = static_cast<std::uint64_t>(realtime_ms());
    const auto pid = static_cast<std::uint64_t>(::getpid());
    id = (ms * kGolden) ^ pid;
  }
  return id;
}

std::int64_t realtime_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string_view format_address(const Address& a, AddressBuffer& buf) {
  if (is_ipv4_mapped(a)) {
    // Hand-rolled: this runs for both ends of every record, and inet_ntop is slow for IPv4.
    char* p = buf.data();
    for (std::size_t i = 12; i < 16; ++i) {
      p = std::to_chars(p, buf.data() + buf.size(), a[i]).ptr;
      if (i != 15) {
        *p++ = '.';
      }
    }
    return {buf.data(), static_cast<std::size_t>(p - buf.data())};
  }
  ::inet_ntop(AF_INET6, a.data(), buf.data(), static_cast<socklen_t>(buf.size()));
  return buf.data();
}

std::string address_text(const Address& a) {
  AddressBuffer buf{};
  return std::string(format_address(a, buf));
}

namespace {

// The first 64 bits of the boot id as 8-4-4 hex digits and a '-' (zeros without one).
void append_boot_prefix(std::string& out, std::string_view boot_id) {
  std::size_t taken = 0;
  for (char c : boot_id) {
    if (taken == 16) {
      break;
    }
    if (c != '-') {
      out.push_back(c);
      if (++taken == 8 || taken == 12) {
        out.push_back('-');
      }
    }
  }
  while (taken < 16) {
    out.push_back('0');
    if (++taken == 8 || taken == 12) {
      out.push_back('-');
    }
  }
  out.push_back('-');
}

}  // namespace

void append_process_uid(std::string& out, std::string_view boot_id, std::int32_t pid,
                        std::uint64_t start_ticks) {
  // pid_max is at most 2^22; 40 bits of ticks last 348 years at USER_HZ 100.
  const auto p = static_cast<std::uint64_t>(pid) & 0xFFFFFFU;
  append_boot_prefix(out, boot_id);
  append_hex(out, p >> 8, 4);
  out.push_back('-');
  append_hex(out, p & 0xFFU, 2);
  append_hex(out, start_ticks & 0xFFFFFFFFFFULL, 10);
}

std::string correlation_uid(const std::string& boot_id, std::uint64_t cookie) {
  std::string out;
  append_correlation_uid(out, boot_id, cookie);
  return out;
}

void append_correlation_uid(std::string& out, std::string_view boot_id, std::uint64_t cookie) {
  // UUID-shaped: the first 64 bits of the boot id (random per boot), then the cookie
  // (unique per boot: the kernel's socket cookies come from one global counter).
  append_boot_prefix(out, boot_id);
  append_hex(out, cookie >> 48, 4);
  out.push_back('-');
  append_hex(out, cookie & 0xFFFFFFFFFFFFULL, 12);
}

Traffic application_traffic(const netlink::SocketEntry& e, bool active_open) {
  // tcpi_bytes_acked and tcpi_bytes_received advance with the sequence numbers acked and
  // received (tcp_snd_una_update(), tcp_rcv_nxt_update()), and SYN and FIN each take one:
  // the active opener's SYN is counted once the SYN-ACK arrives (a passive opener's
  // snd_una starts past its SYN), our FIN once acked, the peer's FIN once received.
  const bool our_fin_acked = e.state == netlink::kTcpFinWait2 || e.state == netlink::kTcpTimeWait;
  const bool peer_fin_received =
      e.state == netlink::kTcpCloseWait || e.state == netlink::kTcpLastAck ||
      e.state == netlink::kTcpClosing || e.state == netlink::kTcpTimeWait;
  auto less = [](std::uint64_t v, unsigned n) { return v >= n ? v - n : 0; };
  Traffic t;
  t.bytes_sent = less(e.info.bytes_acked, (active_open ? 1U : 0U) + (our_fin_acked ? 1U : 0U));
  t.bytes_received = less(e.info.bytes_received, peer_fin_received ? 1U : 0U);
  t.segs_sent = e.info.segs_out;
  t.segs_received = e.info.segs_in;
  return t;
}

RecordBuilder::RecordBuilder(RecordContext context) : context_(std::move(context)) {
  if (!context_.clock_ms) {
    context_.clock_ms = realtime_ms;
  }
  for (std::size_t a = 0; a < envelope_.size(); ++a) {
    const auto activity = static_cast<Activity>(a);
    envelope_[a] = members_of([activity](JsonWriter& w) {
      const auto id = static_cast<int>(activity);
      w.field("activity_id", id);
      w.field_ascii("activity_name", activity_caption(activity));
      w.field("category_uid", 4);
      w.field_ascii("category_name", "Network Activity");
      w.field("class_uid", 4001);
      w.field_ascii("class_name", "Network Activity");
      w.field("type_uid", 400100 + id);
      w.field_ascii("type_name", "Network Activity: " + std::string(activity_caption(activity)));
      w.field("severity_id", 1);
      w.field_ascii("severity", "Informational");
    });
  }
  state_change_envelope_ = members_of([](JsonWriter& w) {
    // activity 99 Other: the contract names it "State Change"; type_name keeps the
    // schema's caption for type_uid 400199.
    w.field("activity_id", 99);
    w.field_ascii("activity_name", "State Change");
    w.field("category_uid", 4);
    w.field_ascii("category_name", "Network Activity");
    w.field("class_uid", 4001);
    w.field_ascii("class_name", "Network Activity");
    w.field("type_uid", 400199);
    w.field_ascii("type_name", "Network Activity: Other");
    w.field("severity_id", 1);
    w.field_ascii("severity", "Informational");
  });
  for (const bool container : {false, true}) {
    metadata_head_[container ? 1 : 0] = members_of([this, container](JsonWriter& w) {
      w.field_ascii("version", "1.8.0");
      w.begin_object("product");
      w.field("name", "sockstate");
      w.field("vendor_name", context_.vendor_name);
      w.field("version", context_.product_version);
      w.end_object();
      w.raw_field("profiles", container ? "[\"host\",\"container\"]" : "[\"host\"]");
    });
  }
  for (const int version : {4, 6}) {
    connection_head_[version == 4 ? 0 : 1] = members_of([version](JsonWriter& w) {
      w.field("protocol_num", 6);
      w.field_ascii("protocol_name", "tcp");
      w.field("protocol_ver_id", version);
      w.field_ascii("protocol_ver", version == 4 ? "Internet Protocol version 4 (IPv4)"
                                                 : "Internet Protocol version 6 (IPv6)");
    });
  }
  {
    const HostIdentity& h = context_.host;
    JsonWriter w(device_json_);
    w.begin_object();
    w.field("type_id", context_.device_type_id);
    w.field("type", device_type_caption(context_.device_type_id));
    if (!h.hostname.empty()) {
      w.field("hostname", h.hostname);
    }
    if (!h.machine_id.empty()) {
      w.field("uid", h.machine_id);
    }
    if (!h.boot_id.empty()) {
      w.field("boot_uid", h.boot_id);
    }
    w.begin_object("os");
    w.field("name", "Linux");
    w.field("type_id", 200);
    w.field("type", "Linux");
    if (!h.kernel_release.empty()) {
      w.field("kernel_release", h.kernel_release);
    }
    w.end_object();
    w.end_object();
  }
}

void RecordBuilder::append_snapshot_record(const netlink::SocketEntry& e, const Orientation& o,
                                           std::string& out, const Attribution& owner) {
  RecordFields fields;
  fields.activity = kernel_state_row(e.state).snapshot_activity;
  fields.owner = owner;
  append_record(e, o, fields, out);
}

void RecordBuilder::append_record(const netlink::SocketEntry& e, const Orientation& o,
                                  const RecordFields& f, std::string& out) {
  using Shape = Orientation::Shape;
  const KernelStateRow row = kernel_state_row(e.state);
  const Activity activity = f.activity;
  const std::string_view state_caption = kTcpStateCaptions[row.tcp_state_id];
  const Address local = normalized_address(e.family, e.local_addr);
  const Address remote = normalized_address(e.family, e.remote_addr);
  const bool v4 = is_ipv4_mapped(local);
  const bool inbound = o.shape == Shape::kInbound;
  const Address& src = inbound ? remote : local;
  const Address& dst = inbound ? local : remote;
  const std::uint16_t src_port = inbound ? e.remote_port : e.local_port;
  const std::uint16_t dst_port = inbound ? e.local_port : e.remote_port;
  ++sequence_;

  JsonWriter w(out);
  w.begin_object();
  const auto index = static_cast<std::size_t>(activity);
  w.raw_members(index < envelope_.size() ? envelope_[index] : state_change_envelope_);
  w.field("time", f.time_ms != 0 ? f.time_ms : context_.clock_ms());
  if (f.start_ms > 0) {
    w.field("start_time", f.start_ms);
  }
  if (f.end_ms > 0) {
    w.field("end_time", f.end_ms);
    if (f.start_ms > 0 && f.end_ms >= f.start_ms) {
      w.field("duration", f.end_ms - f.start_ms);
    }
  }
  if (f.status_id >= 0) {
    w.field("status_id", f.status_id);
    w.field_ascii("status", f.status_id == 1   ? "Success"
                            : f.status_id == 2 ? "Failure"
                                               : "Unknown");
  }

  std::string& message = scratch_;
  message.assign("tcp ");
  switch (o.shape) {
    case Shape::kListener:
    case Shape::kUnconnected:
      append_endpoint_text(message, local, e.local_port);
      break;
    case Shape::kInbound:
    case Shape::kOutbound:
      append_endpoint_text(message, src, src_port);
      message.append(" -> ");
      append_endpoint_text(message, dst, dst_port);
      break;
  }
  message.push_back(' ');
  message.append(state_caption);
  if (activity != kernel_state_row(e.state).snapshot_activity) {
    message.append(" (");
    message.append(index < envelope_.size() ? activity_caption(activity) : "State Change");
    if (f.previous_state >= 0) {
      message.append(" from ");
      message.append(kTcpStateCaptions[tcp_state_id(static_cast<unsigned>(f.previous_state))]);
    }
    message.push_back(')');
  }
  w.field_ascii("message", message);

  const Attribution& a = f.owner;
  const proc::ProcessInfo* process = a.process;
  const proc::Container* process_container =
      process != nullptr && process->container ? &*process->container : nullptr;
  const proc::Container* socket_container =
      a.cgroup != nullptr && a.cgroup->container ? &*a.cgroup->container : a.netns_container;
  const bool with_container = process_container != nullptr || socket_container != nullptr;

  w.begin_object("metadata");
  w.raw_members(metadata_head_[with_container ? 1 : 0]);
  std::string& uid = scratch_;
  uid.clear();
  append_hex(uid, context_.run_id >> 32, 8);
  uid.push_back('-');
  append_hex(uid, context_.run_id >> 16, 4);
  uid.push_back('-');
  append_hex(uid, context_.run_id, 4);
  uid.push_back('-');
  append_hex(uid, sequence_ >> 48, 4);
  uid.push_back('-');
  append_hex(uid, sequence_, 12);
  w.field_ascii("uid", uid);
  scratch_.clear();
  append_correlation_uid(scratch_, context_.host.boot_id, e.cookie);
  w.field_ascii("correlation_uid", scratch_);
  w.field("sequence", sequence_);
  w.field("log_name", context_.log_name);
  w.end_object();

  w.raw_field("device", device_json_);

  w.begin_object("connection_info");
  w.raw_members(connection_head_[v4 ? 0 : 1]);
  w.field("direction_id", static_cast<int>(o.direction));
  w.field_ascii("direction", direction_caption(o.direction));
  w.field("boundary_id", static_cast<int>(o.boundary));
  w.field_ascii("boundary", boundary_caption(o.boundary));
  scratch_.clear();
  append_hex(scratch_, e.cookie, 16);
  w.field_ascii("uid", scratch_);
  const bool connected = o.shape == Shape::kInbound || o.shape == Shape::kOutbound;
  if (connected && src_port != 0 && dst_port != 0) {
    // The flow as a sensor on the wire hashes it; the spec orders the endpoints itself.
    scratch_.clear();
    if (append_community_id_v1(scratch_, src, src_port, dst, dst_port, 6,
                               context_.community_id_seed)) {
      w.field_ascii("community_uid", scratch_);
    }
  }
  w.end_object();

  if (process != nullptr) {
    w.begin_object("actor");
    w.begin_object("process");
    w.field("pid", process->pid);
    if (!process->name.empty()) {
      w.field("name", process->name);
    }
    if (!process->cmd_line.empty()) {
      w.field("cmd_line", process->cmd_line);
    }
    if (process->created_time_ms > 0) {
      w.field("created_time", process->created_time_ms);
    }
    if (process->start_ticks != 0) {
      scratch_.clear();
      append_process_uid(scratch_, context_.host.boot_id, process->pid, process->start_ticks);
      w.field_ascii("uid", scratch_);
    }
    if (process->uid != proc::kUnknownUid) {
      write_user(w, *process);
    }
    if (process_container != nullptr) {
      write_container(w, *process_container);
    }
    w.end_object();
    if (process->uid != proc::kUnknownUid) {
      write_user(w, *process);
    }
    w.end_object();
  }

  // The container goes on the endpoint that is this host's socket.
  switch (o.shape) {
    case Shape::kListener:
      write_endpoint(w, "dst_endpoint", local, e.local_port, socket_container);
      break;
    case Shape::kUnconnected:
      write_endpoint(w, "src_endpoint", local, e.local_port, socket_container);
      break;
    case Shape::kInbound:
    case Shape::kOutbound:
      write_endpoint(w, "src_endpoint", src, src_port, inbound ? nullptr : socket_container);
      write_endpoint(w, "dst_endpoint", dst, dst_port, inbound ? socket_container : nullptr);
      break;
  }
  w.field("observation_point_id", static_cast<int>(o.observation_point));
  w.field_ascii("observation_point", observation_point_caption(o.observation_point));
  w.field("is_src_dst_assignment_known", o.assignment_known);

  auto write_traffic = [&w, inbound](std::string_view key, const Traffic& t) {
    // bytes_out is src -> dst: for an inbound connection that is what we received.
    w.begin_object(key);
    w.field("bytes_in", inbound ? t.bytes_sent : t.bytes_received);
    w.field("bytes_out", inbound ? t.bytes_received : t.bytes_sent);
    w.field("bytes", t.bytes_sent + t.bytes_received);
    w.field("packets_in", inbound ? t.segs_sent : t.segs_received);
    w.field("packets_out", inbound ? t.segs_received : t.segs_sent);
    w.field("packets", t.segs_sent + t.segs_received);
    w.end_object();
  };
  if (connected) {
    if (f.traffic != nullptr) {
      write_traffic("traffic", *f.traffic);
    } else if (f.traffic_from_entry && e.has_tcp_info) {
      write_traffic("traffic", application_traffic(e, !inbound));
    }
    if (f.cumulative != nullptr) {
      write_traffic("cumulative_traffic", *f.cumulative);
    }
  }

  w.begin_object("unmapped");
  w.field("tcp_state_id", static_cast<int>(row.tcp_state_id));
  w.field_ascii("tcp_state", state_caption);
  w.field("kernel_tcp_state", static_cast<int>(e.state));
  if (f.previous_state >= 0) {
    const auto previous = tcp_state_id(static_cast<unsigned>(f.previous_state));
    w.field("previous_tcp_state_id", static_cast<int>(previous));
    w.field_ascii("previous_tcp_state", kTcpStateCaptions[previous]);
  }
  if (e.full_socket) {
    if (e.inode != 0) {
      w.field("inode", e.inode);
    }
    w.field("uid", e.uid);
    w.field("recv_q", e.recv_q);
    w.field("send_q", e.send_q);
  }
  if (e.has_tcp_info && e.state != netlink::kTcpListen) {
    w.field("rtt_us", e.info.rtt_us);
    w.field("total_retrans", e.info.total_retrans);
  }
  if (a.netns != 0 || context_.netns_inode != 0) {
    w.field("netns", a.netns != 0 ? a.netns : context_.netns_inode);
  }
  if (a.cgroup != nullptr) {
    w.field("cgroup", a.cgroup->path);
    if (!a.cgroup->unit.empty()) {
      w.field("systemd_unit", a.cgroup->unit);
    }
  }
  if (process != nullptr && process->cmd_line_truncated) {
    w.field("cmd_line_truncated", true);
  }
  w.end_object();

  w.end_object();
  out.push_back('\n');
}

}  // namespace sockstate::ocsf

#include "sockstate/ocsf/record.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <charconv>
#include <ctime>
#include <tuple>

#include "sockstate/ocsf/community_id.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/socket_owners.h"
#include "sockstate/proc/users.h"

namespace sockstate::ocsf {
namespace {

constexpr std::string_view kHex = "0123456789abcdef";

// flow::Activity -> activity_id, activity_name, and the caption type_name uses (the
// schema's: 99 is "Other" whatever the record calls it).
struct ActivityRow {
  int id;
  std::string_view caption;
  std::string_view type_caption;
};
constexpr std::array<ActivityRow, 9> kActivities = {{
    {0, "Unknown", "Unknown"},
    {1, "Open", "Open"},
    {2, "Close", "Close"},
    {4, "Fail", "Fail"},
    {5, "Refuse", "Refuse"},
    {6, "Traffic", "Traffic"},
    {7, "Listen", "Listen"},
    {99, "State Change", "Other"},
    {99, "Bound", "Other"},
}};
static_assert(kActivities.size() == static_cast<std::size_t>(flow::Activity::kBound) + 1,
              "one row per flow::Activity");

// connection_info.protocol_num / protocol_name by the socket's transport protocol
// (IANA numbers, the names OCSF's examples use). A protocol not listed is written as TCP
// would be: none reaches the renderer (the requests ask for these only).
struct ProtocolRow {
  std::uint8_t number;
  std::string_view name;
};
constexpr std::array<ProtocolRow, 2> kProtocols = {{{6, "tcp"}, {17, "udp"}}};

std::size_t protocol_index(std::uint8_t protocol) {
  for (std::size_t i = 0; i < kProtocols.size(); ++i) {
    if (kProtocols[i].number == protocol) {
      return i;
    }
  }
  return 0;
}

// OCSF user type_id captions (1.8.0).
std::string_view user_type_caption(int type_id) {
  static constexpr std::array<std::string_view, 5> kCaptions = {"Unknown", "User", "Admin",
                                                                "System", "Service"};
  return type_id >= 0 && static_cast<std::size_t>(type_id) < kCaptions.size()
             ? kCaptions[static_cast<std::size_t>(type_id)]
             : "Other";
}

// OCSF observable type_id captions (1.8.0) for the types records carry.
std::string_view observable_type_caption(int type_id) {
  switch (type_id) {
    case 1:
      return "Hostname";
    case 2:
      return "IP Address";
    case 4:
      return "User Name";
    case 9:
      return "Process Name";
    case 45:
      return "File Path";
    default:
      return "Other";
  }
}

void append_hex(std::string& out, std::uint64_t v, int digits) {
  const std::size_t at = out.size();
  out.resize(at + static_cast<std::size_t>(digits));
  for (char* p = out.data() + out.size(); p != out.data() + at; v >>= 4) {
    *--p = kHex[v & 0xF];
  }
}

std::string_view direction_caption(flow::Direction d) {
  switch (d) {
    case flow::Direction::kInbound:
      return "Inbound";
    case flow::Direction::kOutbound:
      return "Outbound";
    case flow::Direction::kLateral:
      return "Lateral";
    case flow::Direction::kLocal:
      return "Local";
    case flow::Direction::kUnknown:
      break;
  }
  return "Unknown";
}

std::string_view boundary_caption(flow::Boundary b) {
  switch (b) {
    case flow::Boundary::kLocalhost:
      return "Localhost";
    case flow::Boundary::kInternal:
      return "Internal";
    case flow::Boundary::kExternal:
      return "External";
    case flow::Boundary::kUnknown:
      break;
  }
  return "Unknown";
}

std::string_view observation_point_caption(flow::ObservationPoint p) {
  switch (p) {
    case flow::ObservationPoint::kSource:
      return "Source";
    case flow::ObservationPoint::kDestination:
      return "Destination";
    case flow::ObservationPoint::kUnknown:
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

void append_endpoint_text(std::string& out, const flow::Endpoint& e, std::string_view ip) {
  const bool v6 = !flow::is_ipv4_mapped(e.ip);
  if (v6) {
    out.push_back('[');
  }
  out.append(ip);
  if (v6) {
    out.push_back(']');
  }
  if (e.port != 0) {
    out.push_back(':');
    std::array<char, 8> buf{};
    auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), e.port);
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
// An unspecified address is never written as a connection's endpoint: when neither the
// polls nor the route could repair it, the endpoint has no ip.
void write_endpoint(JsonWriter& w, std::string_view key, const flow::Endpoint& e,
                    std::string_view ip, bool connected, const proc::Container* container) {
  w.begin_object(key);
  if (!connected || !flow::is_unspecified(e.ip)) {
    w.field_ascii("ip", ip);
  }
  if (e.port != 0) {
    w.field("port", std::uint32_t{e.port});
  }
  if (container != nullptr) {
    write_container(w, *container);
  }
  w.end_object();
}

void write_user(JsonWriter& w, std::string_view key, std::uint32_t uid, std::string_view name,
                int type_id) {
  w.begin_object(key);
  std::array<char, 16> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), uid);
  w.field_ascii("uid",
                std::string_view(digits.data(), static_cast<std::size_t>(end - digits.data())));
  if (!name.empty()) {
    w.field("name", name);
  }
  if (type_id > 0) {
    w.field("type_id", type_id);
    w.field_ascii("type", user_type_caption(type_id));
  }
  w.end_object();
}

void write_device(std::string& out, const RecordContext& context) {
  const flow::HostIdentity& h = context.host;
  JsonWriter w(out);
  w.begin_object();
  w.field("type_id", context.device_type_id);
  w.field("type", device_type_caption(context.device_type_id));
  if (!h.hostname.empty()) {
    w.field("hostname", h.hostname);
    w.field("name", h.hostname);  // what Splunk's CIM takes as dvc
  }
  if (!h.device_uid.empty()) {
    w.field("uid", h.device_uid);
  }
  if (!h.boot_id.empty() && has(context.ocsf_version, Feature::kBootUid)) {
    w.field("boot_uid", h.boot_id);
  }
  if (!h.ip.empty()) {
    w.field("ip", h.ip);
  }
  w.begin_object("os");
  w.field("name", "Linux");
  w.field("type_id", 200);
  w.field("type", "Linux");
  if (!h.kernel_release.empty() && has(context.ocsf_version, Feature::kKernelRelease)) {
    w.field("kernel_release", h.kernel_release);
  }
  w.end_object();
  w.end_object();
}

// The device fields the version mode has not, as `unmapped` members.
std::string device_unmapped(const RecordContext& context) {
  const flow::HostIdentity& h = context.host;
  return members_of([&](JsonWriter& w) {
    if (!h.kernel_release.empty() && !has(context.ocsf_version, Feature::kKernelRelease)) {
      w.field("kernel_release", h.kernel_release);
    }
    if (!h.boot_id.empty() && !has(context.ocsf_version, Feature::kBootUid)) {
      w.field("boot_uid", h.boot_id);
    }
  });
}

std::string device_json(const RecordContext& context) {
  std::string out;
  write_device(out, context);  // the writer is gone before `out` is returned
  return out;
}

void write_process(JsonWriter& w, const proc::ProcessInfo& p, std::string_view boot_id,
                   std::string& scratch) {
  w.begin_object("process");
  w.field("pid", p.pid);
  if (!p.name.empty()) {
    w.field("name", p.name);
  }
  if (!p.cmd_line.empty()) {
    w.field("cmd_line", p.cmd_line);
  }
  if (p.created_time_ms > 0) {
    w.field("created_time", p.created_time_ms);
  }
  if (p.start_ticks != 0) {
    scratch.clear();
    append_process_uid(scratch, boot_id, p.pid, p.start_ticks);
    w.field_ascii("uid", scratch);
  }
  if (p.uid != proc::kUnknownUid) {
    write_user(w, "user", p.uid, p.user, 0);
  }
  if (!p.exe.empty()) {
    w.begin_object("file");
    const auto slash = p.exe.rfind('/');
    w.field("name", slash == std::string::npos ? p.exe : p.exe.substr(slash + 1));
    w.field("path", p.exe);
    w.field("type_id", 1);
    w.field_ascii("type", "Regular File");
    w.end_object();
  }
  if (p.ppid > 0) {
    w.begin_object("parent_process");
    w.field("pid", p.ppid);
    if (!p.parent_name.empty()) {
      w.field("name", p.parent_name);
    }
    w.end_object();
  }
  if (p.container) {
    write_container(w, *p.container);
  }
  w.end_object();
}

// A traffic object's members, and the same as flat `unmapped` keys (the 1.1.0 mode).
constexpr std::array<std::string_view, 6> kTrafficKeys = {"bytes_in",   "bytes_out",   "bytes",
                                                          "packets_in", "packets_out", "packets"};
constexpr std::array<std::string_view, 6> kFlatTotalsKeys = {
    "cumulative_bytes_in",   "cumulative_bytes_out",   "cumulative_bytes",
    "cumulative_packets_in", "cumulative_packets_out", "cumulative_packets"};

// bytes_out is src -> dst: for an accepted connection that is what the local end received.
void write_traffic_members(JsonWriter& w, const std::array<std::string_view, 6>& keys,
                           const flow::Traffic& t, bool accepted) {
  const std::array<std::uint64_t, 6> values = {accepted ? t.bytes_sent : t.bytes_received,
                                               accepted ? t.bytes_received : t.bytes_sent,
                                               t.bytes_sent + t.bytes_received,
                                               accepted ? t.segs_sent : t.segs_received,
                                               accepted ? t.segs_received : t.segs_sent,
                                               t.segs_sent + t.segs_received};
  for (std::size_t i = 0; i < keys.size(); ++i) {
    w.field(keys[i], values[i]);
  }
}

void write_traffic(JsonWriter& w, std::string_view key, const flow::Traffic& t, bool accepted,
                   const flow::TrafficPeriod* period) {
  w.begin_object(key);
  write_traffic_members(w, kTrafficKeys, t, accepted);
  if (period != nullptr) {
    if (period->start_ms > 0) {  // unknown for a socket first seen in its destroy event
      w.field("start_time", period->start_ms);
    }
    w.field("end_time", period->end_ms);
  }
  w.end_object();
}

void write_observable(JsonWriter& w, std::string_view name, int type_id, std::string_view value) {
  w.begin_object();
  w.field_ascii("name", name);
  w.field("type_id", type_id);
  w.field_ascii("type", observable_type_caption(type_id));
  w.field("value", value);
  w.end_object();
}

// One observable as JSON, for the values rendered once and reused.
std::string observable_json(std::string_view name, int type_id, std::string_view value) {
  std::string out;
  {
    JsonWriter w(out);
    write_observable(w, name, type_id, value);
  }  // the writer is gone before `out` is returned
  return out;
}

// An IP address observable: the constant part of each is rendered at compile time.
constexpr std::string_view kSrcIpObservable =
    R"({"name":"src_endpoint.ip","type_id":2,"type":"IP Address","value":")";
constexpr std::string_view kDstIpObservable =
    R"({"name":"dst_endpoint.ip","type_id":2,"type":"IP Address","value":")";

}  // namespace

std::string_view format_address(const flow::Address& a, AddressBuffer& buf) {
  if (flow::is_ipv4_mapped(a)) {
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

std::string address_text(const flow::Address& a) {
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

namespace {

// The last 64 bits of a correlation_uid: the cookie as 4-12 hex digits.
void append_cookie_suffix(std::string& out, std::uint64_t cookie) {
  append_hex(out, cookie >> 48, 4);
  out.push_back('-');
  append_hex(out, cookie & 0xFFFFFFFFFFFFULL, 12);
}

}  // namespace

void append_correlation_uid(std::string& out, std::string_view boot_id, std::uint64_t cookie) {
  // UUID-shaped: the first 64 bits of the boot id (random per boot), then the cookie
  // (unique per boot: the kernel's socket cookies come from one global counter).
  append_boot_prefix(out, boot_id);
  append_cookie_suffix(out, cookie);
}

// Which endpoint is which in the record: the initiator is src.
struct RecordBuilder::Sides {
  Sides() = default;
  Sides(const Sides&) = delete;  // the views point into its own buffers
  Sides& operator=(const Sides&) = delete;
  const flow::Endpoint* src = nullptr;
  const flow::Endpoint* dst = nullptr;
  std::string_view src_ip;  // each address formatted once per record
  std::string_view dst_ip;
  AddressBuffer src_buf{};
  AddressBuffer dst_buf{};
  bool accepted = false;
  const proc::Container* socket_container = nullptr;   // on the local endpoint
  const proc::Container* process_container = nullptr;  // on actor.process
};

namespace {

void fill_sides(const flow::Observation& obs, RecordBuilder::Sides& sides) {
  using Shape = flow::Orientation::Shape;
  sides.accepted = obs.orientation.shape == Shape::kAccepted;
  switch (obs.orientation.shape) {
    case Shape::kListener:
      sides.dst = &obs.local;
      break;
    case Shape::kUnconnected:
      sides.src = &obs.local;
      break;
    case Shape::kAccepted:
      sides.src = &obs.remote;
      sides.dst = &obs.local;
      break;
    case Shape::kInitiated:
      sides.src = &obs.local;
      sides.dst = &obs.remote;
      break;
  }
  const flow::Owner& owner = obs.owner;
  const proc::ProcessInfo* process = owner.process;
  sides.process_container =
      process != nullptr && process->container ? &*process->container : nullptr;
  sides.socket_container = owner.cgroup != nullptr && owner.cgroup->container
                               ? &*owner.cgroup->container
                               : owner.netns_container;
  if (sides.src != nullptr) {
    sides.src_ip = format_address(sides.src->ip, sides.src_buf);
  }
  if (sides.dst != nullptr) {
    sides.dst_ip = format_address(sides.dst->ip, sides.dst_buf);
  }
}

}  // namespace

RecordBuilder::RecordBuilder(RecordContext context) : context_(std::move(context)) {
  render();
}

void RecordBuilder::set_ocsf_version(OcsfVersion v) {
  context_.ocsf_version = v;
  render();
}

void RecordBuilder::render() {
  for (const FeatureRow& row : kFeatures) {
    features_[static_cast<std::size_t>(row.feature)] =
        ocsf::has(context_.ocsf_version, row.feature);
  }
  render_envelope();
  for (const bool container : {false, true}) {
    metadata_head_[container ? 1 : 0] = members_of([this, container](JsonWriter& w) {
      w.field_ascii("version", to_string(context_.ocsf_version));
      w.begin_object("product");
      w.field("name", "sockstate");
      w.field("vendor_name", context_.vendor_name);
      w.field("version", context_.product_version);
      w.end_object();
      w.raw_field("profiles", container ? "[\"host\",\"container\"]" : "[\"host\"]");
    });
  }
  for (std::size_t p = 0; p < kProtocols.size(); ++p) {
    for (const int version : {4, 6}) {
      connection_head_[p][version == 4 ? 0 : 1] = members_of([p, version](JsonWriter& w) {
        w.field("protocol_num", kProtocols[p].number);
        w.field_ascii("protocol_name", kProtocols[p].name);
        w.field("protocol_ver_id", version);
        w.field_ascii("protocol_ver", version == 4 ? "Internet Protocol version 4 (IPv4)"
                                                   : "Internet Protocol version 6 (IPv6)");
      });
    }
  }
  device_json_ = device_json(context_);
  device_unmapped_ = device_unmapped(context_);
  // metadata.uid: the run id as 8-4-4 hex digits, then the sequence; correlation_uid: the
  // boot id's first 64 bits, then the cookie. The prefixes are the same for every record.
  uid_prefix_.clear();
  boot_prefix_.clear();
  append_hex(uid_prefix_, context_.run_id >> 32, 8);
  uid_prefix_.push_back('-');
  append_hex(uid_prefix_, context_.run_id >> 16, 4);
  uid_prefix_.push_back('-');
  append_hex(uid_prefix_, context_.run_id, 4);
  uid_prefix_.push_back('-');
  append_boot_prefix(boot_prefix_, context_.host.boot_id);
  render_constant_members();
  if (!context_.host.hostname.empty()) {
    hostname_observable_ = observable_json("device.hostname", 1, context_.host.hostname);
  }
}

void RecordBuilder::render_envelope() {
  for (std::size_t a = 0; a < envelope_.size(); ++a) {
    ActivityRow row = kActivities[a];
    if (row.id == 7 && !has(Feature::kListenActivity)) {
      row = {99, row.caption, "Other"};  // Listen, as versions before 1.3.0 can say it
    }
    envelope_[a] = members_of([row](JsonWriter& w) {
      w.field("activity_id", row.id);
      w.field_ascii("activity_name", row.caption);
      w.field("category_uid", 4);
      w.field_ascii("category_name", "Network Activity");
      w.field("class_uid", 4001);
      w.field_ascii("class_name", "Network Activity");
      w.field("type_uid", 400100 + row.id);
      w.field_ascii("type_name", "Network Activity: " + std::string(row.type_caption));
      w.field("severity_id", 1);
      w.field_ascii("severity", "Informational");
    });
  }
}

void RecordBuilder::render_constant_members() {
  for (std::size_t st = 0; st < status_json_.size(); ++st) {
    status_json_[st] = members_of([st](JsonWriter& w) {
      w.field("status_id", static_cast<int>(st));
      w.field_ascii("status", st == 1 ? "Success" : st == 2 ? "Failure" : "Unknown");
    });
  }
  for (std::size_t d = 0; d < direction_json_.size(); ++d) {
    for (std::size_t b = 0; b < direction_json_[d].size(); ++b) {
      const bool other = static_cast<flow::Direction>(d) == flow::Direction::kLocal &&
                         !has(Feature::kLocalDirection);
      direction_json_[d][b] = members_of([d, b, other](JsonWriter& w) {
        const auto direction = static_cast<flow::Direction>(d);
        const auto boundary = static_cast<flow::Boundary>(b);
        w.field("direction_id", other ? 99 : static_cast<int>(d));  // 99 Other: "Local"
        w.field_ascii("direction", direction_caption(direction));
        w.field("boundary_id", static_cast<int>(b));
        w.field_ascii("boundary", boundary_caption(boundary));
      });
    }
  }
  // Each part where the version mode has it: at the top, or in `unmapped`.
  for (std::size_t p = 0; p < point_json_.size(); ++p) {
    for (const bool known : {false, true}) {
      for (const bool top : {true, false}) {
        (top ? point_json_ : point_unmapped_)[p][known ? 1 : 0] =
            members_of([this, p, known, top](JsonWriter& w) {
              const auto point = static_cast<flow::ObservationPoint>(p);
              if (has(Feature::kObservationPoint) == top) {
                w.field("observation_point_id", static_cast<int>(p));
                w.field_ascii("observation_point", observation_point_caption(point));
              }
              if (has(Feature::kAssignmentKnown) == top) {
                write_flag(w, "is_src_dst_assignment_known", known);
              }
            });
      }
    }
  }
  for (std::size_t st = 0; st < state_json_.size(); ++st) {
    state_json_[st] = state_members(static_cast<std::uint8_t>(st));
  }
}

std::string RecordBuilder::state_members(std::uint8_t kernel_state) {
  return members_of([kernel_state](JsonWriter& w) {
    const std::uint8_t state_id = tcp_state_id(kernel_state);
    w.field("tcp_state_id", static_cast<int>(state_id));
    w.field_ascii("tcp_state", kTcpStateCaptions[state_id]);
    w.field("kernel_tcp_state", static_cast<int>(kernel_state));
  });
}

const RecordBuilder::RenderedUser& RecordBuilder::rendered(const proc::UserInfo& user) {
  auto it = users_.find(user.uid);
  if (it == users_.end() || it->second.name != user.name || it->second.type_id != user.type_id) {
    RenderedUser r;
    r.name = user.name;
    r.type_id = user.type_id;
    {
      JsonWriter w(r.user_json);
      w.begin_object();
      write_user(w, "user", user.uid, user.name, user.type_id);
      w.end_object();
    }
    r.user_json = r.user_json.substr(std::string_view(R"({"user":)").size());
    r.user_json.pop_back();
    if (!user.name.empty()) {
      r.observable_json = observable_json("actor.user.name", 4, user.name);
    }
    it = users_.insert_or_assign(user.uid, std::move(r)).first;
  }
  return it->second;
}

void RecordBuilder::append(const flow::Observation& obs, std::string& out) {
  const flow::Owner& owner = obs.owner;
  Sides sides;
  fill_sides(obs, sides);
  ++sequence_;

  JsonWriter w(out);
  w.begin_object();
  write_head(w, obs);
  write_message(w, obs, sides);
  write_metadata(w, obs, sides.process_container != nullptr || sides.socket_container != nullptr);
  w.raw_field("device", device_json_);
  write_connection_info(w, obs, sides);
  write_actor(w, owner);
  write_endpoints(w, obs, sides);
  const flow::Orientation& o = obs.orientation;
  w.raw_members(
      point_json_[static_cast<std::size_t>(o.observation_point)][o.assignment_known ? 1 : 0]);
  const bool totals = has(Feature::kTrafficTotals);
  if (obs.traffic) {
    write_traffic(w, "traffic", obs.traffic->delta, sides.accepted,
                  totals ? &*obs.traffic : nullptr);
  }
  if (obs.cumulative && totals) {
    write_traffic(w, "cumulative_traffic", *obs.cumulative, sides.accepted, nullptr);
  }
  if (context_.observables) {
    write_observables(w, obs, sides);
  }
  write_unmapped(w, obs, sides);
  w.end_object();
  w.raw("\n");
}

// The container goes on the endpoint that is this host's socket. A version that needs
// both endpoints (1.1.0) gets the local end as both on a record that has one (Listen,
// Bound), as the contract says.
void RecordBuilder::write_endpoints(JsonWriter& w, const flow::Observation& obs,
                                    const Sides& sides) const {
  const flow::Endpoint* src = sides.src;
  const flow::Endpoint* dst = sides.dst;
  std::string_view src_ip = sides.src_ip;
  std::string_view dst_ip = sides.dst_ip;
  if (!has(Feature::kOneEndpoint)) {
    if (src == nullptr) {
      src = dst;
      src_ip = dst_ip;
    } else if (dst == nullptr) {
      dst = src;
      dst_ip = src_ip;
    }
  }
  if (src != nullptr) {
    write_endpoint(w, "src_endpoint", *src, src_ip, obs.orientation.connected(),
                   src == &obs.local ? sides.socket_container : nullptr);
  }
  if (dst != nullptr) {
    write_endpoint(w, "dst_endpoint", *dst, dst_ip, obs.orientation.connected(),
                   dst == &obs.local ? sides.socket_container : nullptr);
  }
}

void RecordBuilder::write_head(JsonWriter& w, const flow::Observation& obs) {
  w.raw_members(envelope_[static_cast<std::size_t>(obs.activity)]);
  w.field("time", obs.time_ms);
  w.field("timezone_offset", obs.timezone_offset_min);
  if (obs.count > 0) {
    w.field("count", std::uint64_t{obs.count});  // a summary of this many sockets
  }
  if (obs.start_ms > 0) {
    w.field("start_time", obs.start_ms);
  }
  if (obs.end_ms > 0) {
    w.field("end_time", obs.end_ms);
    if (obs.start_ms > 0 && obs.end_ms >= obs.start_ms) {
      w.field("duration", obs.end_ms - obs.start_ms);
    }
  }
  w.raw_members(status_json_[static_cast<std::size_t>(obs.status)]);
  if (!obs.status_detail.empty()) {
    w.field_ascii("status_detail", obs.status_detail);
  }
  // The state's caption again, in a field every OCSF version has: for consumers that drop
  // `unmapped` (the Zeek -> OCSF mappings keep connection state here too). UDP has none.
  if (flow::has_tcp_states(obs.socket.protocol)) {
    w.field_ascii("status_code", kTcpStateCaptions[tcp_state_id(obs.socket.state)]);
  }
}

namespace {

// The message's last word: the TCP state's caption; for UDP, which has no states, whether
// the socket is connected.
std::string_view state_word(std::uint8_t protocol, unsigned state) {
  if (!flow::has_tcp_states(protocol)) {
    return state == netlink::kTcpEstablished ? "connected" : "unconnected";
  }
  return kTcpStateCaptions[tcp_state_id(state)];
}

}  // namespace

void RecordBuilder::write_message(JsonWriter& w, const flow::Observation& obs, const Sides& sides) {
  std::string& message = scratch_;
  message.assign(kProtocols[protocol_index(obs.socket.protocol)].name);
  message.push_back(' ');
  if (sides.src != nullptr && sides.dst != nullptr) {
    append_endpoint_text(message, *sides.src, sides.src_ip);
    message.append(" -> ");
    append_endpoint_text(message, *sides.dst, sides.dst_ip);
  } else if (sides.src != nullptr) {
    append_endpoint_text(message, *sides.src, sides.src_ip);
  } else if (sides.dst != nullptr) {
    append_endpoint_text(message, *sides.dst, sides.dst_ip);
  }
  message.push_back(' ');
  message.append(state_word(obs.socket.protocol, obs.socket.state));
  if (obs.activity != flow::snapshot_activity(obs.socket.protocol, obs.socket.state)) {
    message.append(" (");
    message.append(kActivities[static_cast<std::size_t>(obs.activity)].caption);
    if (obs.previous_state >= 0) {
      message.append(" from ");
      message.append(state_word(obs.socket.protocol, static_cast<unsigned>(obs.previous_state)));
    }
    if (obs.count > 0) {
      message.append(", ");
      message.append(std::to_string(obs.count));
      message.append(" sockets summarised");
    }
    message.push_back(')');
  }
  w.field_ascii("message", message);
}

void RecordBuilder::write_metadata(JsonWriter& w, const flow::Observation& obs,
                                   bool with_container) {
  w.begin_object("metadata");
  w.raw_members(metadata_head_[with_container ? 1 : 0]);
  std::string& uid = scratch_;
  uid.assign(uid_prefix_);
  append_hex(uid, sequence_ >> 48, 4);
  uid.push_back('-');
  append_hex(uid, sequence_, 12);
  w.field_ascii("uid", uid);
  if (obs.count == 0) {  // a summary is about many sockets: no one socket's identity
    scratch_.assign(boot_prefix_);
    append_cookie_suffix(scratch_, obs.socket.cookie);
    w.field_ascii("correlation_uid", scratch_);
  }
  w.field("sequence", sequence_);
  w.field("log_name", context_.log_name);
  w.end_object();
}

void RecordBuilder::write_connection_info(JsonWriter& w, const flow::Observation& obs,
                                          const Sides& sides) {
  const flow::Orientation& o = obs.orientation;
  w.begin_object("connection_info");
  w.raw_members(connection_head_[protocol_index(obs.socket.protocol)]
                                [flow::is_ipv4_mapped(obs.local.ip) ? 0 : 1]);
  w.raw_members(
      direction_json_[static_cast<std::size_t>(o.direction)][static_cast<std::size_t>(o.boundary)]);
  if (obs.count == 0) {
    scratch_.clear();
    append_hex(scratch_, obs.socket.cookie, 16);
    w.field_ascii("uid", scratch_);
  }
  if (has(Feature::kCommunityUid) && community_uid(obs, sides)) {
    w.field_ascii("community_uid", scratch_);
  }
  w.end_object();
}

bool RecordBuilder::community_uid(const flow::Observation& obs, const Sides& sides) {
  if (!obs.orientation.connected() || sides.src->port == 0 || sides.dst->port == 0 ||
      flow::is_unspecified(sides.src->ip) || flow::is_unspecified(sides.dst->ip)) {
    return false;
  }
  // The flow as a sensor on the wire hashes it; the spec orders the endpoints itself.
  scratch_.clear();
  append_community_id_v1(scratch_, sides.src->ip, sides.src->port, sides.dst->ip, sides.dst->port,
                         obs.socket.protocol, context_.community_id_seed);
  return true;
}

void RecordBuilder::write_actor(JsonWriter& w, const flow::Owner& owner) {
  const proc::ProcessInfo* process = owner.process;
  if (process == nullptr && owner.user == nullptr) {
    return;
  }
  w.begin_object("actor");
  if (process != nullptr) {
    write_process(w, *process, context_.host.boot_id, scratch_);
  }
  if (owner.user != nullptr) {
    w.raw_field("user", rendered(*owner.user).user_json);
  }
  w.end_object();
}

void RecordBuilder::write_observables(JsonWriter& w, const flow::Observation& obs,
                                      const Sides& sides) {
  w.begin_array("observables");
  // A wildcard listener's 0.0.0.0 or :: is nothing to pivot on.
  const std::array<std::tuple<const flow::Endpoint*, std::string_view, std::string_view>, 2> ips = {
      {{sides.src, sides.src_ip, kSrcIpObservable}, {sides.dst, sides.dst_ip, kDstIpObservable}}};
  for (const auto& [end, text, prefix] : ips) {
    if (end != nullptr && !flow::is_unspecified(end->ip)) {
      scratch_.assign(prefix);
      scratch_.append(text);
      scratch_.append("\"}");
      w.raw_element(scratch_);
    }
  }
  if (!hostname_observable_.empty()) {
    w.raw_element(hostname_observable_);
  }
  const flow::Owner& owner = obs.owner;
  if (owner.user != nullptr && !owner.user->name.empty()) {
    w.raw_element(rendered(*owner.user).observable_json);
  }
  if (owner.process != nullptr && !owner.process->name.empty()) {
    write_observable(w, "actor.process.name", 9, owner.process->name);
  }
  if (owner.process != nullptr && !owner.process->exe.empty() &&
      has(Feature::kFilePathObservable)) {
    write_observable(w, "actor.process.file.path", 45, owner.process->exe);
  }
  w.end_array();
}

void RecordBuilder::write_unmapped(JsonWriter& w, const flow::Observation& obs,
                                   const Sides& sides) {
  const flow::SocketFacts& e = obs.socket;
  w.begin_object("unmapped");
  if (flow::has_tcp_states(e.protocol)) {  // UDP has no TCP state (README: UDP)
    if (e.state < state_json_.size()) {
      w.raw_members(state_json_[e.state]);
    } else {
      w.raw_members(state_members(e.state));
    }
  }
  if (obs.previous_state >= 0 && flow::has_tcp_states(e.protocol)) {
    const auto previous = tcp_state_id(static_cast<unsigned>(obs.previous_state));
    w.field("previous_tcp_state_id", static_cast<int>(previous));
    w.field_ascii("previous_tcp_state", kTcpStateCaptions[previous]);
  }
  if (e.inode != 0) {
    w.field("inode", e.inode);
  }
  if (e.queues) {
    w.field("recv_q", e.queues->recv);
    w.field("send_q", e.queues->send);
  }
  if (e.path) {
    w.field("rtt_us", e.path->rtt_us);
    w.field("total_retrans", e.path->total_retrans);
  }
  if (obs.local_inferred) {
    write_flag(w, "src_ip_inferred", true);
  }
  const flow::Owner& a = obs.owner;
  if (a.netns != 0 || context_.netns_inode != 0) {
    w.field("netns", a.netns != 0 ? a.netns : context_.netns_inode);
  }
  if (a.cgroup != nullptr) {
    w.field("cgroup", a.cgroup->path);
    if (!a.cgroup->unit.empty()) {
      w.field("systemd_unit", a.cgroup->unit);
    }
  }
  if (a.process != nullptr && a.process->cmd_line_truncated) {
    write_flag(w, "cmd_line_truncated", true);
  }
  write_moved(w, obs, sides);
  w.end_object();
}

void RecordBuilder::write_moved(JsonWriter& w, const flow::Observation& obs, const Sides& sides) {
  const flow::Orientation& o = obs.orientation;
  w.raw_members(
      point_unmapped_[static_cast<std::size_t>(o.observation_point)][o.assignment_known ? 1 : 0]);
  w.raw_members(device_unmapped_);
  if (!has(Feature::kCommunityUid) && community_uid(obs, sides)) {
    w.field_ascii("community_uid", scratch_);
  }
  if (has(Feature::kTrafficTotals)) {
    return;
  }
  if (obs.traffic) {  // the period of traffic's deltas
    if (obs.traffic->start_ms > 0) {
      w.field("traffic_start_time", obs.traffic->start_ms);
    }
    w.field("traffic_end_time", obs.traffic->end_ms);
  }
  if (obs.cumulative && flat_unmapped(context_.ocsf_version)) {
    write_traffic_members(w, kFlatTotalsKeys, *obs.cumulative, sides.accepted);
  } else if (obs.cumulative) {
    write_traffic(w, "cumulative_traffic", *obs.cumulative, sides.accepted, nullptr);
  }
}

void RecordBuilder::write_flag(JsonWriter& w, std::string_view key, bool value) const {
  if (flat_unmapped(context_.ocsf_version)) {
    w.field_ascii(key, value ? "true" : "false");
  } else {
    w.field(key, value);
  }
}

}  // namespace sockstate::ocsf

// The record builder's string handling. Every free-text field a local user controls (a
// process's comm, cmdline and exe path, its parent's comm, user names, cgroup paths and
// what they name: systemd unit, container) comes from the input as raw bytes, not
// sanitized as /proc readers do: the JSON writer alone must keep the record one line of
// valid UTF-8 JSON. Then the JsonWriter directly, in shapes records never take. Seeds:
// the strings of tests/data/golden/attributed_records.jsonl, from tests/fuzz/make-corpus.

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "sockstate/flow/observation.h"
#include "sockstate/ocsf/json_writer.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/socket_owners.h"
#include "sockstate/proc/users.h"

namespace {

using nlohmann::json;
using sockstate::fuzz::check;
using sockstate::fuzz::finding;
namespace flow = sockstate::flow;
namespace ocsf = sockstate::ocsf;
namespace proc = sockstate::proc;
namespace netlink = sockstate::netlink;

// /proc gives at most this much of one field (cmdline is cut at 1 KiB, paths at 4 KiB).
constexpr std::size_t kMaxText = 4096;

std::string text(FuzzedDataProvider& in) {
  return in.ConsumeRandomLengthString(kMaxText);
}

// nlohmann's serializer validates UTF-8 on its own (strict: it throws on a bad byte): a
// second opinion on which strings must come back from a record byte for byte.
bool valid_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

json parse_line(std::string_view line) {
  try {
    return json::parse(line);
  } catch (const json::exception& e) {
    finding(std::string("output is not JSON: ") + e.what(), line);
  }
}

// A value the record writes verbatim must come back verbatim when it was valid UTF-8
// (invalid bytes become U+FFFD, which the parse already proved is valid).
void check_value(const json& record, const json::json_pointer& at, const std::string& expected) {
  if (!valid_utf8(expected)) {
    return;
  }
  check(record.contains(at) && record[at] == expected, "a string not written as given",
        at.to_string());
}

// A connection's address: IPv4 (mapped) or IPv6, any bytes.
flow::Address address(FuzzedDataProvider& in) {
  flow::Address a{};
  if (in.ConsumeBool()) {
    a[10] = 0xff;
    a[11] = 0xff;
    for (std::size_t i = 12; i < a.size(); ++i) {
      a[i] = in.ConsumeIntegral<std::uint8_t>();
    }
  } else {
    for (auto& b : a) {
      b = in.ConsumeIntegral<std::uint8_t>();
    }
  }
  return a;
}

flow::Traffic traffic(FuzzedDataProvider& in) {
  return {in.ConsumeIntegral<std::uint64_t>(), in.ConsumeIntegral<std::uint64_t>(),
          in.ConsumeIntegral<std::uint64_t>(), in.ConsumeIntegral<std::uint64_t>()};
}

// What a record says apart from the free text: every enum within its range (the builder
// indexes tables with them), every number anything.
void fill_numbers(FuzzedDataProvider& in, flow::Observation& obs) {
  static constexpr std::array<std::string_view, 6> kDetails = {"",        "reset",   "aborted",
                                                               "refused", "timeout", "unreachable"};
  static constexpr std::array<flow::ObservationPoint, 3> kPoints = {
      flow::ObservationPoint::kUnknown, flow::ObservationPoint::kSource,
      flow::ObservationPoint::kDestination};
  obs.activity = static_cast<flow::Activity>(in.ConsumeIntegralInRange<int>(0, 8));
  obs.status = static_cast<flow::Status>(in.ConsumeIntegralInRange<int>(0, 2));
  obs.status_detail = in.PickValueInArray(kDetails);
  obs.time_ms = in.ConsumeIntegral<std::int64_t>();
  obs.timezone_offset_min = in.ConsumeIntegral<std::int32_t>();
  obs.start_ms = in.ConsumeIntegral<std::int64_t>();
  obs.end_ms = in.ConsumeIntegral<std::int64_t>();
  obs.previous_state = in.ConsumeIntegralInRange<int>(-1, 255);
  const bool live = in.ConsumeBool();
  const bool uid_known = in.ConsumeBool();
  obs.local_inferred = in.ConsumeBool();
  auto& o = obs.orientation;
  o.shape = static_cast<flow::Orientation::Shape>(in.ConsumeIntegralInRange<int>(0, 3));
  o.direction = static_cast<flow::Direction>(in.ConsumeIntegralInRange<int>(0, 4));
  o.boundary = static_cast<flow::Boundary>(in.ConsumeIntegralInRange<int>(0, 3));
  o.observation_point = in.PickValueInArray(kPoints);
  o.assignment_known = in.ConsumeBool();
  netlink::SocketEntry s;
  s.state = in.ConsumeIntegral<std::uint8_t>();
  s.cookie = in.ConsumeIntegral<std::uint64_t>();
  s.inode = in.ConsumeIntegral<std::uint32_t>();
  s.full_socket = in.ConsumeBool();
  s.has_tcp_info = in.ConsumeBool();
  s.info.rtt_us = in.ConsumeIntegral<std::uint32_t>();
  obs.socket = flow::facts_of(s, live, uid_known);
  obs.local = {address(in), in.ConsumeIntegral<std::uint16_t>()};
  obs.remote = {address(in), in.ConsumeIntegral<std::uint16_t>()};
  if (in.ConsumeBool()) {
    obs.cumulative = traffic(in);
  }
  if (in.ConsumeBool()) {
    obs.traffic = flow::TrafficPeriod{traffic(in), in.ConsumeIntegral<std::int64_t>(),
                                      in.ConsumeIntegral<std::int64_t>()};
  }
}

// The strings behind one record, owned here: Owner only points at them.
struct Strings {
  proc::ProcessInfo process;
  proc::UserInfo user;
  proc::CgroupInfo cgroup;
  std::optional<proc::Container> netns_container;
};

// A container as the record gets it: read from a cgroup path (uid, runtime and pod are
// made of known characters there), its LXC name raw.
std::optional<proc::Container> container(FuzzedDataProvider& in, const std::string& cgroup) {
  auto c = proc::container_from_cgroup(cgroup);
  if (c && in.ConsumeBool()) {
    c->name = text(in);
  }
  return c;
}

void fill_strings(FuzzedDataProvider& in, Strings& s) {
  proc::ProcessInfo& p = s.process;
  p.name = text(in);
  p.cmd_line = text(in);
  p.exe = text(in);
  p.parent_name = text(in);
  p.user = text(in);
  p.cgroup = text(in);
  p.container = container(in, p.cgroup);
  p.pid = in.ConsumeIntegral<std::int32_t>();
  p.ppid = in.ConsumeIntegral<std::int32_t>();
  p.uid = in.ConsumeIntegral<std::uint32_t>();
  p.start_ticks = in.ConsumeIntegral<std::uint64_t>();
  p.created_time_ms = in.ConsumeIntegral<std::int64_t>();
  p.cmd_line_truncated = in.ConsumeBool();
  s.user.name = text(in);
  s.user.uid = in.ConsumeIntegral<std::uint32_t>();
  s.user.type_id = in.ConsumeIntegralInRange<int>(-1, 5);
  s.cgroup.path = text(in);
  s.cgroup.unit = in.ConsumeBool() ? proc::systemd_unit_from_cgroup(s.cgroup.path) : text(in);
  s.cgroup.container = container(in, s.cgroup.path);
  s.netns_container = container(in, text(in));
}

// The free text must reach the record as given. Only what the record writes whatever the
// other fields say is checked; the rest is held to being valid JSON.
void check_strings(const json& r, const flow::Owner& owner, const Strings& s) {
  using Ptr = json::json_pointer;
  if (owner.process != nullptr) {
    const proc::ProcessInfo& p = s.process;
    if (!p.name.empty()) {
      check_value(r, Ptr("/actor/process/name"), p.name);
    }
    if (!p.cmd_line.empty()) {
      check_value(r, Ptr("/actor/process/cmd_line"), p.cmd_line);
    }
    if (!p.exe.empty()) {
      check_value(r, Ptr("/actor/process/file/path"), p.exe);
    }
    if (p.ppid > 0 && !p.parent_name.empty()) {
      check_value(r, Ptr("/actor/process/parent_process/name"), p.parent_name);
    }
    if (p.uid != proc::kUnknownUid && !p.user.empty()) {
      check_value(r, Ptr("/actor/process/user/name"), p.user);
    }
    if (p.container && !p.container->name.empty()) {
      check_value(r, Ptr("/actor/process/container/name"), p.container->name);
    }
  }
  if (owner.user != nullptr && !s.user.name.empty()) {
    check_value(r, Ptr("/actor/user/name"), s.user.name);
  }
  if (owner.cgroup != nullptr) {
    check_value(r, Ptr("/unmapped/cgroup"), s.cgroup.path);
    if (!s.cgroup.unit.empty()) {
      check_value(r, Ptr("/unmapped/systemd_unit"), s.cgroup.unit);
    }
  }
}

// One record: one line, JSON, ending in the '\n' append() adds.
json check_record(std::string_view out) {
  check(!out.empty() && out.back() == '\n', "a record without its newline", out);
  out.remove_suffix(1);
  check(out.find('\n') == std::string_view::npos, "a record of more than one line", out);
  return parse_line(out);
}

void fuzz_record(FuzzedDataProvider& in) {
  ocsf::RecordContext context;
  context.product_version = "0.1.0-fuzz";
  // The boot id is the kernel's UUID (uids are cut from it); the host name is whatever
  // the namespace's root set.
  context.host = {text(in), "0123456789abcdef0123456789abcdef",
                  "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11", text(in), ""};
  context.log_name = text(in);
  context.device_type_id = in.ConsumeIntegralInRange<int>(-1, 100);
  context.netns_inode = in.ConsumeIntegral<std::uint64_t>();
  context.community_id_seed = in.ConsumeIntegral<std::uint16_t>();
  context.run_id = in.ConsumeIntegral<std::uint64_t>();
  context.observables = in.ConsumeBool();

  Strings strings;
  fill_strings(in, strings);
  flow::Observation obs;
  fill_numbers(in, obs);
  flow::Owner& owner = obs.owner;
  owner.process = in.ConsumeBool() ? &strings.process : nullptr;
  owner.user = in.ConsumeBool() ? &strings.user : nullptr;
  owner.cgroup = in.ConsumeBool() ? &strings.cgroup : nullptr;
  owner.netns_container = strings.netns_container ? &*strings.netns_container : nullptr;
  owner.netns = in.ConsumeIntegral<std::uint64_t>();

  ocsf::RecordBuilder builder(context);
  // Twice: the second record takes actor.user from the builder's cache.
  for (int i = 0; i < 2; ++i) {
    std::string out;
    builder.append(obs, out);
    const json record = check_record(out);
    check_strings(record, owner, strings);
    if (!context.host.hostname.empty()) {
      check_value(record, json::json_pointer("/device/hostname"), context.host.hostname);
    }
  }
}

// The writer's own rules: keys are the program's identifiers (here unique per object,
// [a-z_], some longer than its 64-byte fast path), objects balanced, nesting far below
// the 64 levels its comma bits hold. Everything else is the input's.
class WriterDriver {
 public:
  explicit WriterDriver(FuzzedDataProvider& in) : in_(in), w_(out_) {}

  void run() {
    w_.begin_object();
    for (int op = 0; op < 256 && in_.remaining_bytes() > 0; ++op) {
      step();
    }
    while (stack_.size() > 1) {
      close();
    }
    w_.end_object();
    w_.finish();  // the writer keeps room at the end of out_ until then
    const json parsed = parse_line(out_);
    check(lossy_ || parsed == expected_, "the writer wrote other values", out_);
  }

 private:
  static constexpr std::size_t kMaxDepth = 32;

  std::string key() {
    std::string k;
    for (unsigned n = keys_++;; n /= 26) {
      k.push_back(static_cast<char>('a' + n % 26));
      if (n < 26) {
        break;
      }
    }
    k.append(in_.ConsumeIntegralInRange<std::size_t>(0, 80), '_');
    return k;
  }

  std::string value_text() {
    std::string s = text(in_);
    lossy_ = lossy_ || !valid_utf8(s);
    return s;
  }

  json& top() { return *stack_.back(); }

  void add(json value) {
    if (top().is_array()) {
      top().push_back(std::move(value));
    } else {
      top()[pending_key_] = std::move(value);
    }
  }

  void open(bool array) {
    json& parent = top();
    json child = array ? json::array() : json::object();
    if (parent.is_array()) {
      parent.push_back(std::move(child));
      stack_.push_back(&parent.back());
    } else {
      parent[pending_key_] = std::move(child);
      stack_.push_back(&parent[pending_key_]);
    }
  }

  void close() {
    if (top().is_array()) {
      w_.end_array();
    } else {
      w_.end_object();
    }
    stack_.pop_back();
  }

  void step() {
    const bool in_array = top().is_array();
    switch (in_.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: {
        const std::string s = value_text();
        if (in_array) {
          w_.element(s);
        } else {
          w_.field(pending_key_ = key(), s);
        }
        add(s);
        break;
      }
      case 1:
      case 2:
      case 3:
        if (!in_array) {
          scalar(in_.ConsumeIntegralInRange<int>(1, 3));
        }
        break;
      case 4:
        if (stack_.size() < kMaxDepth) {
          if (in_array) {
            w_.begin_object();
          } else {
            w_.begin_object(pending_key_ = key());
          }
          open(false);
        }
        break;
      case 5:
        if (!in_array && stack_.size() < kMaxDepth) {
          w_.begin_array(pending_key_ = key());
          open(true);
        }
        break;
      case 6:
        if (stack_.size() > 1) {
          close();
        }
        break;
      default:
        raw();
        break;
    }
  }

  void scalar(int kind) {
    pending_key_ = key();
    if (kind == 1) {
      const auto v = in_.ConsumeIntegral<std::uint64_t>();
      w_.field(pending_key_, v);
      add(v);
    } else if (kind == 2) {
      const auto v = in_.ConsumeIntegral<std::int64_t>();
      w_.field(pending_key_, v);
      add(v);
    } else {
      const bool v = in_.ConsumeBool();
      w_.field(pending_key_, v);
      add(v);
    }
  }

  // Pre-rendered JSON, as the builder splices its constant parts.
  void raw() {
    if (top().is_array()) {
      const std::string s = value_text();
      std::string element;
      ocsf::append_json_string(element, s);
      w_.raw_element(element);
      add(s);
      return;
    }
    const std::string first = key();
    const std::string second = key();
    const std::string s = value_text();
    const auto n = in_.ConsumeIntegral<std::int64_t>();
    w_.raw_members(ocsf::members_of([&](ocsf::JsonWriter& m) {
      m.field(first, s);
      m.field(second, n);
    }));
    top()[first] = s;
    top()[second] = n;
  }

  FuzzedDataProvider& in_;
  std::string out_;
  ocsf::JsonWriter w_;
  json expected_ = json::object();
  std::vector<json*> stack_{&expected_};  // the open containers; a parent is never
                                          // changed while a child is open
  std::string pending_key_;
  unsigned keys_ = 0;
  bool lossy_ = false;  // a string was not valid UTF-8: U+FFFD replaced some of it
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  fuzz_record(in);
  WriterDriver(in).run();
  return 0;
}

// The OCSF renderer: golden records of one-shot snapshots and of daemon observations,
// reviewed field by field against the output contract (revision 2).
#include "sockstate/ocsf/record.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "golden.h"
#include "socket_entries.h"
#include "sockstate/flow/observation.h"
#include "sockstate/ocsf/community_id.h"
#include "sockstate/proc/users.h"

namespace sockstate::ocsf {
namespace {

using flow::Activity;
using flow::Observation;
using flow::Status;
using netlink::SocketEntry;
using nlohmann::json;

const char* const kGoldenPath = SOCKSTATE_TEST_DATA_DIR "/golden/snapshot_records.jsonl";
const char* const kDaemonGoldenPath = SOCKSTATE_TEST_DATA_DIR "/golden/daemon_records.jsonl";
constexpr std::int64_t kNow = 1763925000123;

using testing::make_entry;

SocketEntry entry(int family, std::uint8_t state, const std::string& local, std::uint16_t lport,
                  const std::string& remote, std::uint16_t rport, std::uint64_t cookie) {
  return make_entry(family, state, local, lport, remote, rport, cookie);
}

SocketEntry full(SocketEntry e, std::uint32_t inode, std::uint32_t uid, bool info) {
  e.full_socket = true;
  e.inode = inode;
  e.uid = uid;
  e.recv_q = 3;
  e.send_q = 7;
  if (info) {
    e.has_tcp_info = true;
    e.info = {5300, 1200, 12, 10, 250, 1};
  }
  return e;
}

RecordContext golden_context() {
  RecordContext c;
  c.product_version = "0.1.0-test";
  c.host = {"web01", "0123456789abcdef0123456789abcdef", "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11",
            "6.18.0-test", ""};
  c.netns_inode = 4026531840;
  c.run_id = 0x0123456789abcdefULL;
  return c;
}

// The namespace's own addresses: 10.0.0.5 and 2001:db8::5.
const flow::HostAddresses& host_addresses() {
  static const flow::HostAddresses kHost = [] {
    flow::HostAddresses h;
    h.add(flow::normalized_address(AF_INET, testing::raw_address(AF_INET, "10.0.0.5")));
    h.add(flow::normalized_address(AF_INET6, testing::raw_address(AF_INET6, "2001:db8::5")));
    return h;
  }();
  return kHost;
}

// The sockets behind the golden file, one per line, in order.
std::vector<SocketEntry> golden_entries(flow::ListenerTable& listeners) {
  const SocketEntry listener =
      full(entry(AF_INET, 10, "0.0.0.0", 22, "0.0.0.0", 0, 0x1001), 1234, 0, true);
  listeners.add(listener);
  const SocketEntry v6_listener =
      full(entry(AF_INET6, 10, "::", 8080, "::", 0, 0x1002), 1235, 33, false);
  listeners.add(v6_listener);
  SocketEntry bound =
      full(entry(AF_INET, 7, "127.0.0.1", 7000, "0.0.0.0", 0, 0x1008), 99, 1000, false);
  SocketEntry odd = full(entry(AF_INET, 42, "10.0.0.5", 9, "10.0.0.6", 9, 0x1009), 100, 0, false);
  return {
      listener,
      v6_listener,
      // inbound ESTABLISHED from the Internet
      full(entry(AF_INET, 1, "10.0.0.5", 22, "192.0.2.10", 51514, 0x1003), 5678, 1000, true),
      // outbound ESTABLISHED over IPv6, no listener on 40000
      full(entry(AF_INET6, 1, "2001:db8::5", 40000, "2606:4700::1", 443, 0x1004), 5679, 1000, true),
      // TIME-WAIT minisocket to another inside host: no inode, uid, queues or tcp_info
      entry(AF_INET, 6, "10.0.0.5", 40001, "10.0.0.9", 5432, 0x1005),
      // request socket on the dual-stack listener, IPv4-mapped, from CGNAT space
      entry(AF_INET6, 3, "::ffff:10.0.0.5", 8080, "::ffff:100.64.1.1", 6000, 0x1006),
      // loopback, accepted side
      full(entry(AF_INET, 8, "127.0.0.1", 22, "127.0.0.1", 45000, 0xffffffff00000007ULL), 5680, 0,
           true),
      bound,
      odd,
      // FIN-WAIT-1 to the host's own address: a live connection, and Local
      full(entry(AF_INET, 4, "10.0.0.5", 40002, "10.0.0.5", 22, 0x100a), 5681, 1000, true),
  };
}

std::string build_golden(const RecordContext& context = golden_context()) {
  flow::ListenerTable listeners;
  auto entries = golden_entries(listeners);
  RecordBuilder builder(context);
  const flow::Perimeter perimeter{&host_addresses()};
  proc::UserDirectory users("/", [](std::uint32_t uid) {
    return uid == 0 ? std::string("root") : uid == 1000 ? std::string("alice") : std::string();
  });
  std::string out;
  for (const auto& e : entries) {
    Observation obs = flow::observe_snapshot(e, flow::orient(e, listeners, perimeter), kNow);
    obs.timezone_offset_min = 60;
    if (obs.socket.uid) {
      obs.owner.user = &users.lookup(*obs.socket.uid);
    }
    builder.append(obs, out);
  }
  return out;
}

std::vector<json> parse_lines(const std::string& text) {
  std::vector<json> records;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    records.push_back(json::parse(line));
  }
  return records;
}

TEST(Record, GoldenByteExact) {
  testing::expect_golden(kGoldenPath, build_golden());
}

TEST(Record, OneLineEachAndEnvelope) {
  const std::string text = build_golden();
  flow::ListenerTable unused;
  EXPECT_EQ(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')),
            golden_entries(unused).size());
  std::set<std::string> uids;
  std::int64_t last_sequence = 0;
  for (const json& r : parse_lines(text)) {
    SCOPED_TRACE(r.dump());
    EXPECT_EQ(r["class_uid"], 4001);
    EXPECT_EQ(r["category_uid"], 4);
    EXPECT_EQ(r["type_uid"].get<int>(), 400100 + r["activity_id"].get<int>());
    EXPECT_EQ(r["severity_id"], 1);
    EXPECT_EQ(r["time"], kNow);
    EXPECT_EQ(r["timezone_offset"], 60);
    // Status on every record; a pending handshake's outcome is not known (revision 3).
    const bool pending = r["activity_id"] == 1;
    EXPECT_EQ(r["status_id"], pending ? 0 : 1);
    EXPECT_EQ(r["status"], pending ? "Unknown" : "Success");
    EXPECT_EQ(r["status_code"], r["unmapped"]["tcp_state"]) << "the state's caption again";
    EXPECT_FALSE(r.contains("start_time")) << "a snapshot saw no start";
    // A TIME-WAIT socket's end was observed: every terminal record has end_time.
    EXPECT_EQ(r.contains("end_time"), r["activity_id"] == 2);
    EXPECT_EQ(r.value("end_time", kNow), kNow);
    EXPECT_FALSE(r.contains("traffic")) << "a snapshot ends no period";
    EXPECT_EQ(r["metadata"]["version"], "1.8.0");
    EXPECT_EQ(r["metadata"]["profiles"], json::array({"host"}));
    EXPECT_EQ(r["metadata"]["product"]["version"], "0.1.0-test");
    EXPECT_EQ(r["metadata"]["log_name"], "sockstate");
    EXPECT_GT(r["metadata"]["sequence"].get<std::int64_t>(), last_sequence);
    last_sequence = r["metadata"]["sequence"].get<std::int64_t>();
    EXPECT_TRUE(uids.insert(r["metadata"]["uid"].get<std::string>()).second);
    EXPECT_EQ(r["device"]["hostname"], "web01");
    EXPECT_EQ(r["device"]["name"], "web01") << "Splunk's dvc";
    EXPECT_EQ(r["device"]["uid"], "0123456789abcdef0123456789abcdef");
    EXPECT_EQ(r["device"]["boot_uid"], "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11");
    EXPECT_EQ(r["device"]["os"]["kernel_release"], "6.18.0-test");
    EXPECT_EQ(r["connection_info"]["protocol_num"], 6);
    EXPECT_EQ(r["unmapped"]["netns"], 4026531840U);
    EXPECT_FALSE(r["unmapped"].contains("uid")) << "the owner is actor.user now";
  }
}

// The contract's one-shot snapshot table.
// protocol_num, protocol_name, the message and the Community ID follow the socket's
// protocol (a parameter from the request to the record).
TEST(Record, TheProtocolIsTheSockets) {
  flow::ListenerTable listeners;
  auto entries = golden_entries(listeners);
  const flow::Perimeter perimeter{&host_addresses()};
  std::map<int, std::set<std::string>> flows_by_protocol;
  for (const std::uint8_t protocol : {std::uint8_t{6}, std::uint8_t{17}}) {
    RecordBuilder builder(golden_context());
    std::string out;
    for (auto e : entries) {
      e.protocol = protocol;
      builder.append(flow::observe_snapshot(e, flow::orient(e, listeners, perimeter), kNow), out);
    }
    std::set<std::string> flows;
    for (const json& r : parse_lines(out)) {
      SCOPED_TRACE(r.dump());
      EXPECT_EQ(r["connection_info"]["protocol_num"], protocol);
      EXPECT_EQ(r["connection_info"]["protocol_name"], protocol == 6 ? "tcp" : "udp");
      EXPECT_EQ(r["message"].get<std::string>().rfind(protocol == 6 ? "tcp " : "udp ", 0), 0U);
      if (r["connection_info"].contains("community_uid")) {
        flows.insert(r["connection_info"]["community_uid"].get<std::string>());
      }
    }
    EXPECT_FALSE(flows.empty());
    flows_by_protocol[protocol] = flows;
  }
  for (const auto& f : flows_by_protocol[17]) {
    EXPECT_EQ(flows_by_protocol[6].count(f), 0U) << "the protocol is hashed: " << f;
  }
}

TEST(Record, SnapshotActivityTable) {
  const auto r = parse_lines(build_golden());
  const std::vector<std::pair<int, int>> want = {{10, 7}, {10, 7}, {1, 6},  {1, 6}, {6, 2},
                                                 {3, 1},  {8, 6},  {7, 99}, {0, 0}, {4, 6}};
  ASSERT_EQ(r.size(), want.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i]["unmapped"]["tcp_state_id"], want[i].first) << i;
    EXPECT_EQ(r[i]["activity_id"], want[i].second) << i;
  }
  EXPECT_EQ(r[7]["activity_name"], "Bound");
  EXPECT_EQ(r[7]["type_name"], "Network Activity: Other");
  EXPECT_EQ(r[8]["unmapped"]["kernel_tcp_state"], 42);
  EXPECT_EQ(r[8]["unmapped"]["tcp_state"], "Unknown");
  for (const int state : {1, 4, 5, 8, 9, 11}) {
    EXPECT_EQ(flow::snapshot_activity(static_cast<std::uint8_t>(state)), Activity::kTraffic)
        << state;
  }
}

// The contract's one-shot snapshot table, written out apart from flow's, every kernel
// state (request and bound-inactive sockets as the states they are written as).
TEST(Record, SnapshotActivityPerContract) {
  const std::array<Activity, 15> want = {
      Activity::kUnknown, Activity::kTraffic, Activity::kOpen,   Activity::kOpen,
      Activity::kTraffic, Activity::kTraffic, Activity::kClose,  Activity::kBound,
      Activity::kTraffic, Activity::kTraffic, Activity::kListen, Activity::kTraffic,
      Activity::kOpen,    Activity::kBound,   Activity::kUnknown};
  for (std::size_t state = 0; state < want.size(); ++state) {
    EXPECT_EQ(flow::snapshot_activity(static_cast<std::uint8_t>(state)), want[state]) << state;
  }
}

TEST(Record, OrientationAndCumulativeTraffic) {
  const auto r = parse_lines(build_golden());
  // Listener: only the local end, as dst; no direction, no counters.
  EXPECT_FALSE(r[0].contains("src_endpoint"));
  EXPECT_EQ(r[0]["dst_endpoint"], json({{"ip", "0.0.0.0"}, {"port", 22}}));
  EXPECT_EQ(r[0]["connection_info"]["direction_id"], 0);
  EXPECT_EQ(r[0]["connection_info"]["boundary_id"], 0);
  EXPECT_FALSE(r[0].contains("cumulative_traffic"));
  // Inbound from the Internet: src is the remote peer; bytes_out (src->dst) is what we
  // received, as a running total in cumulative_traffic.
  EXPECT_EQ(r[2]["src_endpoint"], json({{"ip", "192.0.2.10"}, {"port", 51514}}));
  EXPECT_EQ(r[2]["dst_endpoint"], json({{"ip", "10.0.0.5"}, {"port", 22}}));
  EXPECT_EQ(r[2]["connection_info"]["direction"], "Inbound");
  EXPECT_EQ(r[2]["connection_info"]["boundary"], "External");
  EXPECT_EQ(r[2]["observation_point_id"], 2);
  EXPECT_EQ(r[2]["is_src_dst_assignment_known"], true);
  const json& c = r[2]["cumulative_traffic"];
  EXPECT_EQ(c["bytes_out"], 1200);
  EXPECT_EQ(c["bytes_in"], 5300);
  EXPECT_EQ(c["packets_out"], 10);
  EXPECT_EQ(c["packets_in"], 12);
  EXPECT_EQ(c["bytes"], 6500);
  EXPECT_EQ(c["packets"], 22);
  EXPECT_EQ(r[2]["message"], "tcp 192.0.2.10:51514 -> 10.0.0.5:22 ESTABLISHED");
  // Outbound to the Internet: src is us.
  EXPECT_EQ(r[3]["src_endpoint"], json({{"ip", "2001:db8::5"}, {"port", 40000}}));
  EXPECT_EQ(r[3]["connection_info"]["direction"], "Outbound");
  EXPECT_EQ(r[3]["connection_info"]["boundary"], "External");
  EXPECT_EQ(r[3]["observation_point_id"], 1);
  EXPECT_EQ(r[3]["connection_info"]["protocol_ver_id"], 6);
  EXPECT_EQ(r[3]["is_src_dst_assignment_known"], false);
  EXPECT_EQ(r[3]["cumulative_traffic"]["bytes_out"], 5299) << "our SYN is not data";
  // TIME-WAIT minisocket to an inside host: Lateral, no counters, no owner.
  EXPECT_FALSE(r[4].contains("cumulative_traffic"));
  EXPECT_FALSE(r[4]["unmapped"].contains("inode"));
  EXPECT_FALSE(r[4].contains("actor"));
  EXPECT_EQ(r[4]["connection_info"]["direction"], "Lateral");
  EXPECT_EQ(r[4]["connection_info"]["boundary"], "Internal");
  // IPv4-mapped: written as IPv4, protocol_ver_id 4; a CGNAT peer is inside.
  EXPECT_EQ(r[5]["src_endpoint"], json({{"ip", "100.64.1.1"}, {"port", 6000}}));
  EXPECT_EQ(r[5]["dst_endpoint"], json({{"ip", "10.0.0.5"}, {"port", 8080}}));
  EXPECT_EQ(r[5]["connection_info"]["protocol_ver_id"], 4);
  EXPECT_EQ(r[5]["connection_info"]["direction"], "Lateral");
  // Loopback.
  EXPECT_EQ(r[6]["connection_info"]["direction"], "Local");
  EXPECT_EQ(r[6]["connection_info"]["boundary"], "Localhost");
  EXPECT_EQ(r[6]["observation_point_id"], 2) << "the accepted end of a loopback pair";
  EXPECT_EQ(r[6]["is_src_dst_assignment_known"], true);
  EXPECT_EQ(r[6]["cumulative_traffic"]["bytes_out"], 1199) << "the peer's FIN is no data";
  EXPECT_EQ(r[6]["connection_info"]["uid"], "ffffffff00000007");
  // Bound-inactive: the local end only.
  EXPECT_EQ(r[7]["src_endpoint"], json({{"ip", "127.0.0.1"}, {"port", 7000}}));
  EXPECT_FALSE(r[7].contains("dst_endpoint"));
  // To this host's own non-loopback address: Local, whatever the perimeter says.
  EXPECT_EQ(r[9]["connection_info"]["direction"], "Local");
  // Its peer is this namespace's listener on port 22: this socket initiated (rule 3).
  EXPECT_EQ(r[9]["observation_point"], "Source");
  EXPECT_EQ(r[9]["is_src_dst_assignment_known"], true);
}

TEST(Record, ActorUserFromTheSocketOwner) {
  const auto r = parse_lines(build_golden());
  EXPECT_EQ(r[2]["actor"]["user"],
            json({{"uid", "1000"}, {"name", "alice"}, {"type_id", 1}, {"type", "User"}}));
  EXPECT_EQ(r[0]["actor"]["user"],
            json({{"uid", "0"}, {"name", "root"}, {"type_id", 2}, {"type", "Admin"}}));
  EXPECT_EQ(r[1]["actor"]["user"], json({{"uid", "33"}, {"type_id", 3}, {"type", "System"}}));
  EXPECT_FALSE(r[2]["actor"].contains("process")) << "process only with --process";
}

TEST(Record, ObservablesIndexWhatIsPresent) {
  const auto r = parse_lines(build_golden());
  const json want = json::array(
      {{{"name", "src_endpoint.ip"},
        {"type_id", 2},
        {"type", "IP Address"},
        {"value", "192.0.2.10"}},
       {{"name", "dst_endpoint.ip"}, {"type_id", 2}, {"type", "IP Address"}, {"value", "10.0.0.5"}},
       {{"name", "device.hostname"}, {"type_id", 1}, {"type", "Hostname"}, {"value", "web01"}},
       {{"name", "actor.user.name"}, {"type_id", 4}, {"type", "User Name"}, {"value", "alice"}}});
  EXPECT_EQ(r[2]["observables"], want);
  // A loopback pair lists 127.0.0.1 twice, under its two names.
  EXPECT_EQ(r[6]["observables"][0]["value"], "127.0.0.1");
  EXPECT_EQ(r[6]["observables"][1]["value"], "127.0.0.1");
  // A wildcard listener's 0.0.0.0 is nothing to pivot on.
  EXPECT_EQ(r[0]["observables"][0]["name"], "device.hostname");

  RecordContext c = golden_context();
  c.observables = false;
  RecordBuilder builder(std::move(c));
  std::string out;
  Observation obs;
  const SocketEntry e = entry(AF_INET, 1, "10.0.0.5", 1, "10.0.0.6", 2, 7);
  obs.socket = flow::facts_of(e, true, false);
  obs.local = flow::local_endpoint(e);
  obs.remote = flow::remote_endpoint(e);
  builder.append(obs, out);
  EXPECT_FALSE(json::parse(out).contains("observables"));
}

// Daemon observations as the tracker finishes them: the renderer writes what it is told.
std::string build_daemon_golden(const RecordContext& context = golden_context()) {
  RecordBuilder builder(context);
  std::string out;
  const proc::UserInfo alice{1000, "alice", 1};
  SocketEntry e =
      full(entry(AF_INET, 1, "10.0.0.5", 40000, "192.0.2.10", 443, 0x2001), 77, 1000, true);
  Observation open;
  open.activity = Activity::kOpen;
  open.time_ms = kNow;
  open.socket = flow::facts_of(e, true, true);
  open.orientation = flow::orient(e, flow::ListenerTable{}, flow::Perimeter{&host_addresses()});
  open.local = flow::local_endpoint(e);
  open.remote = flow::remote_endpoint(e);
  open.cumulative = flow::Traffic{10, 20, 3, 4};
  open.owner.user = &alice;
  builder.append(open, out);

  Observation traffic = open;
  traffic.activity = Activity::kTraffic;
  traffic.time_ms = kNow + 60000;
  traffic.cumulative = flow::Traffic{1010, 520, 13, 14};
  traffic.traffic = flow::TrafficPeriod{flow::Traffic{1000, 500, 10, 10}, kNow, kNow + 60000};
  builder.append(traffic, out);

  // Aborted: the kernel cleared the source; the route's preferred source stands in.
  Observation close = traffic;
  close.activity = Activity::kClose;
  close.status = Status::kUnknown;
  close.status_detail = "aborted";
  close.time_ms = kNow + 61000;
  close.start_ms = kNow;
  close.end_ms = kNow + 61000;
  close.socket.queues.reset();  // a terminal record's queues mean nothing
  close.socket.state = netlink::kTcpClose;
  close.local.ip = flow::normalized_address(AF_INET, testing::raw_address(AF_INET, "10.0.0.5"));
  close.local_inferred = true;
  close.traffic = flow::TrafficPeriod{flow::Traffic{5, 0, 1, 0}, kNow + 60000, kNow + 61000};
  close.cumulative = flow::Traffic{1015, 520, 14, 14};
  builder.append(close, out);

  // A connect() that got no answer.
  SocketEntry f =
      full(entry(AF_INET6, 2, "2001:db8::5", 40001, "2001:db8::99", 80, 0x2002), 78, 1000, false);
  Observation fail;
  fail.activity = Activity::kFail;
  fail.status = Status::kFailure;
  fail.status_detail = "timeout";
  fail.time_ms = kNow;
  fail.end_ms = kNow;
  fail.socket = flow::facts_of(f, false, false);
  fail.socket.state = netlink::kTcpClose;
  fail.orientation = flow::orient(f, flow::ListenerTable{}, flow::Perimeter{&host_addresses()});
  fail.local = flow::local_endpoint(f);
  fail.remote = flow::remote_endpoint(f);
  fail.remote.port = 0;  // cleared by tcp_disconnect(): written without
  builder.append(fail, out);

  Observation change = open;
  change.activity = Activity::kStateChange;
  change.socket.state = netlink::kTcpCloseWait;
  change.previous_state = netlink::kTcpEstablished;
  builder.append(change, out);
  return out;
}

TEST(Record, DaemonGoldenByteExact) {
  testing::expect_golden(kDaemonGoldenPath, build_daemon_golden());
}

TEST(Record, DaemonRecordsSayWhatTheObservationSays) {
  const auto r = parse_lines(build_daemon_golden());
  ASSERT_EQ(r.size(), 5U);
  // Open: totals, no period; start_time is for terminal records.
  EXPECT_EQ(r[0]["activity_name"], "Open");
  EXPECT_FALSE(r[0].contains("start_time"));
  EXPECT_FALSE(r[0].contains("end_time"));
  EXPECT_FALSE(r[0].contains("traffic"));
  EXPECT_EQ(r[0]["cumulative_traffic"]["bytes_out"], 10);
  EXPECT_EQ(r[0]["unmapped"]["recv_q"], 3);
  // Traffic: the delta and its period, and the totals.
  EXPECT_EQ(r[1]["traffic"]["bytes_out"], 1000);
  EXPECT_EQ(r[1]["traffic"]["bytes_in"], 500);
  EXPECT_EQ(r[1]["traffic"]["start_time"], kNow);
  EXPECT_EQ(r[1]["traffic"]["end_time"], kNow + 60000);
  EXPECT_EQ(r[1]["cumulative_traffic"]["bytes_out"], 1010);
  // Close: status Unknown with what is known; the inferred source is marked; no queues.
  EXPECT_EQ(r[2]["status_id"], 0);
  EXPECT_EQ(r[2]["status"], "Unknown");
  EXPECT_EQ(r[2]["status_detail"], "aborted");
  EXPECT_EQ(r[2]["duration"], 61000);
  EXPECT_EQ(r[2]["src_endpoint"]["ip"], "10.0.0.5");
  EXPECT_EQ(r[2]["unmapped"]["src_ip_inferred"], true);
  EXPECT_FALSE(r[2]["unmapped"].contains("recv_q"));
  EXPECT_EQ(r[2]["connection_info"]["community_uid"], r[0]["connection_info"]["community_uid"]);
  // Fail: Failure, remote address alone, no community id without both ports.
  EXPECT_EQ(r[3]["status_id"], 2);
  EXPECT_EQ(r[3]["dst_endpoint"], json({{"ip", "2001:db8::99"}}));
  EXPECT_FALSE(r[3]["connection_info"].contains("community_uid"));
  EXPECT_EQ(r[3]["connection_info"]["direction"], "Outbound") << "2001:db8::/32 is not inside";
  // State Change.
  EXPECT_EQ(r[4]["activity_id"], 99);
  EXPECT_EQ(r[4]["activity_name"], "State Change");
  EXPECT_EQ(r[4]["unmapped"]["previous_tcp_state"], "ESTABLISHED");
  EXPECT_EQ(r[4]["message"],
            "tcp 10.0.0.5:40000 -> 192.0.2.10:443 CLOSE-WAIT (State Change from ESTABLISHED)");
}

TEST(Record, AnUnrepairedEndpointHasNoIp) {
  RecordBuilder builder(golden_context());
  Observation obs;
  obs.activity = Activity::kFail;
  const SocketEntry e = entry(AF_INET, 7, "0.0.0.0", 40000, "192.0.2.10", 443, 7);
  obs.socket = flow::facts_of(e, true, false);
  obs.orientation.shape = flow::Orientation::Shape::kInitiated;
  obs.local = flow::local_endpoint(e);
  obs.remote = flow::remote_endpoint(e);
  std::string out;
  builder.append(obs, out);
  const json r = json::parse(out);
  EXPECT_EQ(r["src_endpoint"], json({{"port", 40000}}));
  EXPECT_FALSE(r["connection_info"].contains("community_uid"));
  EXPECT_EQ(r["observables"][0]["name"], "dst_endpoint.ip");
}

TEST(Record, CorrelationUidPerSocket) {
  const std::string boot = "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11";
  EXPECT_EQ(correlation_uid(boot, 0x1003), "6b1f1a6e-2f7e-4f3c-0000-000000001003");
  EXPECT_EQ(correlation_uid(boot, 0xfedcba9876543210ULL), "6b1f1a6e-2f7e-4f3c-fedc-ba9876543210");
  EXPECT_NE(correlation_uid("00000000-0000-0000-0000-000000000000", 1), correlation_uid(boot, 1));
  EXPECT_EQ(correlation_uid("", 1).size(), 36U);
  const auto r = parse_lines(build_golden());
  EXPECT_EQ(r[2]["metadata"]["correlation_uid"], correlation_uid(boot, 0x1003));
}

TEST(Record, SequenceContinuesAcrossCalls) {
  RecordBuilder builder(golden_context());
  Observation obs;
  obs.socket = flow::facts_of(entry(AF_INET, 1, "10.0.0.5", 1, "10.0.0.6", 2, 7), true, false);
  std::string out;
  for (int i = 0; i < 3; ++i) {
    builder.append(obs, out);
  }
  EXPECT_EQ(builder.last_sequence(), 3U);
}

TEST(Record, HostStringsAreEscaped) {
  RecordContext c = golden_context();
  c.host.hostname = "we\"b\n\xff";
  RecordBuilder builder(std::move(c));
  Observation obs;
  obs.socket = flow::facts_of(entry(AF_INET, 1, "10.0.0.5", 1, "10.0.0.6", 2, 7), true, false);
  std::string out;
  builder.append(obs, out);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(json::parse(out)["device"]["hostname"], "we\"b\n\xEF\xBF\xBD");
}

// Version modes: the same observations in each version we write. Every record passes
// that version's schema; the older modes' goldens are byte-exact like the default's.
RecordContext context_in(OcsfVersion v) {
  RecordContext c = golden_context();
  c.ocsf_version = v;
  return c;
}

std::string all_records(OcsfVersion v) {
  return build_golden(context_in(v)) + build_daemon_golden(context_in(v));
}

TEST(RecordVersions, EveryModePassesItsVersionsSchema) {
  for (const OcsfVersion v : kOcsfVersions) {
    const std::string path = ::testing::TempDir() + "records-" + to_string(v) + ".jsonl";
    std::ofstream(path) << all_records(v);
    const std::string cmd = std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK +
                            " --ocsf-version " + to_string(v) + " --require-tcp-state " + path;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    for (const json& r : parse_lines(all_records(v))) {
      EXPECT_EQ(r["metadata"]["version"], to_string(v));
    }
  }
}

TEST(RecordVersions, OlderModesGoldenByteExact) {
  for (const OcsfVersion v : {kOcsf150, kOcsf110}) {
    testing::expect_golden(
        std::string(SOCKSTATE_TEST_DATA_DIR) + "/golden/records-" + to_string(v) + ".jsonl",
        all_records(v));
  }
}

// UDP has no TCP state (README: UDP records): a socket bound and not connected is a Listen
// with only its local end; a connected one is a Traffic its own socket initiated, with a
// protocol-17 Community ID. No tcp_state_id, status_code or traffic (the kernel counts no
// bytes of a UDP socket). Each passes the check in every version mode.
TEST(Record, UdpSocketsHaveNoTcpState) {
  SocketEntry resolver =
      full(entry(AF_INET, 7, "0.0.0.0", 53, "0.0.0.0", 0, 0x2001), 4321, 0, false);
  SocketEntry client = full(entry(AF_INET6, 1, "2001:db8::5", 40000, "2606:4700::1", 443, 0x2002),
                            4322, 1000, false);
  flow::ListenerTable listeners;
  const flow::Perimeter perimeter{&host_addresses()};
  for (const OcsfVersion v : kOcsfVersions) {
    RecordBuilder builder(context_in(v));
    std::string out;
    for (SocketEntry e : {resolver, client}) {
      e.protocol = 17;
      builder.append(flow::observe_snapshot(e, flow::orient(e, listeners, perimeter), kNow), out);
    }
    const auto r = parse_lines(out);
    ASSERT_EQ(r.size(), 2U);
    for (const json& rec : r) {
      SCOPED_TRACE(rec.dump());
      EXPECT_EQ(rec["connection_info"]["protocol_num"], 17);
      for (const char* key : {"tcp_state_id", "tcp_state", "kernel_tcp_state"}) {
        EXPECT_FALSE(rec["unmapped"].contains(key)) << key;
      }
      EXPECT_FALSE(rec.contains("status_code"));
      EXPECT_FALSE(rec.contains("traffic"));
      EXPECT_FALSE(rec.contains("cumulative_traffic"));
      EXPECT_EQ(rec["status_id"], 1);
    }
    EXPECT_EQ(r[0]["activity_name"], "Listen");
    EXPECT_EQ(r[0]["dst_endpoint"]["port"], 53);
    EXPECT_EQ(r[0]["message"], "udp 0.0.0.0:53 unconnected");
    EXPECT_FALSE(r[0]["connection_info"].contains("community_uid"));
    EXPECT_EQ(r[1]["activity_id"], 6);
    EXPECT_EQ(r[1]["src_endpoint"]["port"], 40000) << "the connected socket initiated";
    EXPECT_EQ(r[1]["dst_endpoint"]["port"], 443);
    EXPECT_EQ(r[1]["message"], "udp [2001:db8::5]:40000 -> [2606:4700::1]:443 connected");
    if (v == kOcsf180) {
      EXPECT_EQ(r[0]["activity_id"], 7);
      EXPECT_EQ(
          r[1]["connection_info"]["community_uid"],
          community_id_v1(flow::normalized_address(AF_INET6, client.local_addr), 40000,
                          flow::normalized_address(AF_INET6, client.remote_addr), 443, 17, 0));
      EXPECT_TRUE(r[1]["is_src_dst_assignment_known"].get<bool>());
    }
    const std::string path = ::testing::TempDir() + "udp-" + to_string(v) + ".jsonl";
    std::ofstream(path) << out;
    const std::string cmd = std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK +
                            " --ocsf-version " + to_string(v) + " --require-tcp-state " + path;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

// A summary of short-lived UDP sockets (tracking::ShortLivedLimit): OCSF `count`, the span
// of their ends, no one socket's identity (no correlation_uid, connection_info.uid, source
// port or Community ID), and valid in every version mode.
TEST(Record, SummaryOfShortLivedSocketsHasACountAndNoSocketIdentity) {
  SocketEntry query = full(entry(AF_INET, 1, "10.0.0.5", 0, "10.0.0.53", 53, 0), 0, 0, false);
  query.protocol = 17;
  flow::ListenerTable listeners;
  const flow::Perimeter perimeter{&host_addresses()};
  flow::Observation obs =
      flow::observe_snapshot(query, flow::orient(query, listeners, perimeter), kNow);
  obs.orientation.shape = flow::Orientation::Shape::kInitiated;
  obs.activity = flow::Activity::kClose;
  obs.count = 1234;
  obs.start_ms = kNow - 900;
  obs.end_ms = kNow;
  for (const OcsfVersion v : kOcsfVersions) {
    RecordBuilder builder(context_in(v));
    std::string out;
    builder.append(obs, out);
    const auto r = parse_lines(out);
    ASSERT_EQ(r.size(), 1U);
    const json& rec = r[0];
    SCOPED_TRACE(rec.dump());
    EXPECT_EQ(rec["count"], 1234);
    EXPECT_EQ(rec["activity_name"], "Close");
    EXPECT_EQ(rec["start_time"], kNow - 900);
    EXPECT_EQ(rec["end_time"], kNow);
    EXPECT_FALSE(rec["metadata"].contains("correlation_uid"));
    EXPECT_FALSE(rec["connection_info"].contains("uid"));
    EXPECT_FALSE(rec["connection_info"].contains("community_uid"));
    EXPECT_FALSE(rec["src_endpoint"].contains("port"));
    EXPECT_EQ(rec["src_endpoint"]["ip"], "10.0.0.5");
    EXPECT_EQ(rec["dst_endpoint"]["port"], 53);
    EXPECT_EQ(rec["message"],
              "udp 10.0.0.5 -> 10.0.0.53:53 connected (Close, 1234 sockets summarised)");
    const std::string path = ::testing::TempDir() + "summary-" + to_string(v) + ".jsonl";
    std::ofstream(path) << out;
    const std::string cmd = std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK +
                            " --ocsf-version " + to_string(v) + " --require-tcp-state " + path;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

// What 1.1.0 lacks is moved, never lost: `unmapped` holds scalars only (AWS Security Lake
// reads it as a map of strings), and each moved value is there.
TEST(RecordVersions, TheOldestModeMovesWhatItLacksIntoFlatUnmapped) {
  const auto latest = parse_lines(all_records(kOcsf180));
  const auto oldest = parse_lines(all_records(kOcsf110));
  ASSERT_EQ(latest.size(), oldest.size());
  std::size_t listens = 0;
  std::size_t locals = 0;
  std::size_t communities = 0;
  for (std::size_t i = 0; i < latest.size(); ++i) {
    const json& n = latest[i];
    const json& o = oldest[i];
    for (const auto& [key, value] : o["unmapped"].items()) {
      EXPECT_FALSE(value.is_object() || value.is_array() || value.is_boolean())
          << key << " in record " << i;
    }
    EXPECT_TRUE(o.contains("src_endpoint") && o.contains("dst_endpoint")) << i;
    EXPECT_EQ(o["device"]["os"].contains("kernel_release"), false);
    EXPECT_EQ(o["unmapped"]["kernel_release"], n["device"]["os"]["kernel_release"]);
    EXPECT_EQ(o["unmapped"]["boot_uid"], n["device"]["boot_uid"]);
    EXPECT_EQ(o["unmapped"]["observation_point_id"], n["observation_point_id"]);
    EXPECT_EQ(o["unmapped"]["is_src_dst_assignment_known"],
              n["is_src_dst_assignment_known"].get<bool>() ? "true" : "false");
    EXPECT_FALSE(o.contains("cumulative_traffic"));
    if (n.contains("cumulative_traffic")) {
      EXPECT_EQ(o["unmapped"]["cumulative_bytes"], n["cumulative_traffic"]["bytes"]) << i;
    }
    if (n["activity_id"] == 7) {
      ++listens;
      EXPECT_EQ(o["activity_id"], 99);
      EXPECT_EQ(o["activity_name"], "Listen");
      EXPECT_EQ(o["type_uid"], 400199);
      EXPECT_EQ(o["src_endpoint"], o["dst_endpoint"]) << "the local end as both";
    }
    if (n["connection_info"]["direction_id"] == 4) {
      ++locals;
      EXPECT_EQ(o["connection_info"]["direction_id"], 99);
      EXPECT_EQ(o["connection_info"]["direction"], "Local");
    }
    if (n["connection_info"].contains("community_uid")) {
      ++communities;
      EXPECT_FALSE(o["connection_info"].contains("community_uid"));
      EXPECT_EQ(o["unmapped"]["community_uid"], n["connection_info"]["community_uid"]);
    }
    for (const json& ob : o.value("observables", json::array())) {
      EXPECT_NE(ob["type_id"], 45) << "File Path is 1.5.0's";
    }
  }
  EXPECT_GT(listens, 0U);
  EXPECT_GT(locals, 0U);
  EXPECT_GT(communities, 0U);
}

// 1.5.0 keeps what it has (Listen, community_uid, boot_uid) and nests what it lacks.
TEST(RecordVersions, TheMiddleModeKeepsWhatItHas) {
  const auto latest = parse_lines(all_records(kOcsf180));
  const auto middle = parse_lines(all_records(kOcsf150));
  ASSERT_EQ(latest.size(), middle.size());
  for (std::size_t i = 0; i < latest.size(); ++i) {
    const json& n = latest[i];
    const json& m = middle[i];
    EXPECT_EQ(m["activity_id"], n["activity_id"]);
    EXPECT_EQ(m["device"], n["device"]);
    EXPECT_EQ(m["connection_info"].contains("community_uid"),
              n["connection_info"].contains("community_uid"));
    EXPECT_FALSE(m.contains("observation_point_id"));
    EXPECT_EQ(m["unmapped"]["is_src_dst_assignment_known"], n["is_src_dst_assignment_known"]);
    EXPECT_EQ(m["unmapped"].value("cumulative_traffic", json()),
              n.value("cumulative_traffic", json()));
    if (n.contains("traffic")) {
      EXPECT_FALSE(m["traffic"].contains("end_time"));
      EXPECT_EQ(m["unmapped"]["traffic_end_time"], n["traffic"]["end_time"]);
    }
  }
}

}  // namespace
}  // namespace sockstate::ocsf

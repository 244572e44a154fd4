#include "sockstate/ocsf/record.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "golden.h"
#include "socket_entries.h"

namespace sockstate::ocsf {
namespace {

using netlink::SocketEntry;
using nlohmann::json;

const char* const kGoldenPath = SOCKSTATE_TEST_DATA_DIR "/golden/snapshot_records.jsonl";

using testing::make_entry;
using testing::raw_address;

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
            "6.18.0-test"};
  c.netns_inode = 4026531840;
  c.run_id = 0x0123456789abcdefULL;
  c.clock_ms = [] { return std::int64_t{1763925000123}; };
  return c;
}

// The sockets behind the golden file, one per line, in order.
std::vector<SocketEntry> golden_entries(ListenerTable& listeners) {
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
      // TIME-WAIT minisocket: no inode, uid, queues or tcp_info
      entry(AF_INET, 6, "10.0.0.5", 40001, "10.0.0.9", 5432, 0x1005),
      // request socket on the dual-stack listener, IPv4-mapped
      entry(AF_INET6, 3, "::ffff:10.0.0.5", 8080, "::ffff:100.64.1.1", 6000, 0x1006),
      // loopback, accepted side
      full(entry(AF_INET, 8, "127.0.0.1", 22, "127.0.0.1", 45000, 0xffffffff00000007ULL), 5680, 0,
           true),
      bound,
      odd,
  };
}

std::string build_golden() {
  ListenerTable listeners;
  auto entries = golden_entries(listeners);
  RecordBuilder builder(golden_context());
  std::string out;
  for (const auto& e : entries) {
    builder.append_snapshot_record(e, orient(e, listeners), out);
  }
  return out;
}

TEST(Record, GoldenByteExact) {
  testing::expect_golden(kGoldenPath, build_golden());
}

std::vector<json> golden_records() {
  std::vector<json> records;
  std::istringstream lines(build_golden());
  for (std::string line; std::getline(lines, line);) {
    records.push_back(json::parse(line));
  }
  return records;
}

TEST(Record, OneLineEachAndEnvelope) {
  const std::string text = build_golden();
  ListenerTable unused;
  EXPECT_EQ(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')),
            golden_entries(unused).size());
  std::set<std::string> uids;
  std::int64_t last_sequence = 0;
  for (const json& r : golden_records()) {
    EXPECT_EQ(r["class_uid"], 4001);
    EXPECT_EQ(r["category_uid"], 4);
    EXPECT_EQ(r["type_uid"].get<int>(), 400100 + r["activity_id"].get<int>());
    EXPECT_EQ(r["severity_id"], 1);
    EXPECT_EQ(r["time"], 1763925000123);
    EXPECT_EQ(r["metadata"]["version"], "1.8.0");
    EXPECT_EQ(r["metadata"]["profiles"], json::array({"host"}));
    EXPECT_EQ(r["metadata"]["product"]["version"], "0.1.0-test");
    EXPECT_EQ(r["metadata"]["log_name"], "sockstate");
    EXPECT_GT(r["metadata"]["sequence"].get<std::int64_t>(), last_sequence);
    last_sequence = r["metadata"]["sequence"].get<std::int64_t>();
    EXPECT_TRUE(uids.insert(r["metadata"]["uid"].get<std::string>()).second);
    EXPECT_EQ(r["device"]["hostname"], "web01");
    EXPECT_EQ(r["device"]["uid"], "0123456789abcdef0123456789abcdef");
    EXPECT_EQ(r["device"]["boot_uid"], "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11");
    EXPECT_EQ(r["device"]["os"]["kernel_release"], "6.18.0-test");
    EXPECT_EQ(r["connection_info"]["protocol_num"], 6);
    EXPECT_EQ(r["unmapped"]["netns"], 4026531840U);
  }
}

TEST(Record, StatesAndActivities) {
  const auto r = golden_records();
  const std::vector<std::pair<int, int>> want = {{10, 7}, {10, 7}, {1, 6}, {1, 6}, {6, 2},
                                                 {3, 1},  {8, 6},  {7, 2}, {0, 0}};
  ASSERT_EQ(r.size(), want.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i]["unmapped"]["tcp_state_id"], want[i].first) << i;
    EXPECT_EQ(r[i]["activity_id"], want[i].second) << i;
  }
  EXPECT_EQ(r[8]["unmapped"]["kernel_tcp_state"], 42);
  EXPECT_EQ(r[8]["unmapped"]["tcp_state"], "Unknown");
}

TEST(Record, OrientationAndTraffic) {
  const auto r = golden_records();
  // Listener: only the local end, as dst.
  EXPECT_FALSE(r[0].contains("src_endpoint"));
  EXPECT_EQ(r[0]["dst_endpoint"], json({{"ip", "0.0.0.0"}, {"port", 22}}));
  EXPECT_FALSE(r[0].contains("traffic"));
  // Inbound: src is the remote peer; bytes_out (src->dst) is what we received.
  EXPECT_EQ(r[2]["src_endpoint"], json({{"ip", "192.0.2.10"}, {"port", 51514}}));
  EXPECT_EQ(r[2]["dst_endpoint"], json({{"ip", "10.0.0.5"}, {"port", 22}}));
  EXPECT_EQ(r[2]["connection_info"]["direction_id"], 1);
  EXPECT_EQ(r[2]["connection_info"]["boundary_id"], 3);
  EXPECT_EQ(r[2]["observation_point_id"], 2);
  EXPECT_EQ(r[2]["is_src_dst_assignment_known"], true);
  EXPECT_EQ(r[2]["traffic"]["bytes_out"], 1200);
  EXPECT_EQ(r[2]["traffic"]["bytes_in"], 5300);
  EXPECT_EQ(r[2]["traffic"]["packets_out"], 10);
  EXPECT_EQ(r[2]["traffic"]["packets_in"], 12);
  EXPECT_EQ(r[2]["traffic"]["bytes"], 6500);
  EXPECT_EQ(r[2]["traffic"]["packets"], 22);
  EXPECT_EQ(r[2]["message"], "tcp 192.0.2.10:51514 -> 10.0.0.5:22 ESTABLISHED");
  // Outbound: src is us; bytes_out is what we sent.
  EXPECT_EQ(r[3]["src_endpoint"], json({{"ip", "2001:db8::5"}, {"port", 40000}}));
  EXPECT_EQ(r[3]["connection_info"]["direction_id"], 2);
  EXPECT_EQ(r[3]["connection_info"]["protocol_ver_id"], 6);
  EXPECT_EQ(r[3]["is_src_dst_assignment_known"], false);
  // We opened it: the kernel's bytes_acked (5300) counts our SYN.
  EXPECT_EQ(r[3]["traffic"]["bytes_out"], 5299);
  EXPECT_EQ(r[3]["traffic"]["bytes_in"], 1200);
  EXPECT_EQ(r[3]["message"], "tcp [2001:db8::5]:40000 -> [2606:4700::1]:443 ESTABLISHED");
  // TIME-WAIT minisocket: no traffic, no inode/uid/queues.
  EXPECT_FALSE(r[4].contains("traffic"));
  EXPECT_FALSE(r[4]["unmapped"].contains("inode"));
  EXPECT_FALSE(r[4]["unmapped"].contains("uid"));
  EXPECT_EQ(r[4]["connection_info"]["boundary_id"], 2);
  // IPv4-mapped: written as IPv4, protocol_ver_id 4, CGNAT peer is Internal.
  EXPECT_EQ(r[5]["src_endpoint"], json({{"ip", "100.64.1.1"}, {"port", 6000}}));
  EXPECT_EQ(r[5]["dst_endpoint"], json({{"ip", "10.0.0.5"}, {"port", 8080}}));
  EXPECT_EQ(r[5]["connection_info"]["protocol_ver_id"], 4);
  EXPECT_EQ(r[5]["connection_info"]["boundary_id"], 2);
  // Loopback.
  EXPECT_EQ(r[6]["connection_info"]["direction_id"], 4);
  EXPECT_EQ(r[6]["connection_info"]["boundary_id"], 1);
  EXPECT_EQ(r[6]["observation_point_id"], 4);
  EXPECT_EQ(r[6]["src_endpoint"]["port"], 45000);
  // CLOSE-WAIT: the peer's FIN is in bytes_received (1200).
  EXPECT_EQ(r[6]["traffic"]["bytes_out"], 1199);
  EXPECT_EQ(r[6]["traffic"]["bytes_in"], 5300);
  EXPECT_EQ(r[6]["connection_info"]["uid"], "ffffffff00000007");
  // Bound-inactive: the local end only.
  EXPECT_EQ(r[7]["src_endpoint"], json({{"ip", "127.0.0.1"}, {"port", 7000}}));
  EXPECT_FALSE(r[7].contains("dst_endpoint"));
}

TEST(Record, ApplicationTrafficLeavesOutSynAndFin) {
  SocketEntry e = entry(AF_INET, 1, "10.0.0.5", 1, "10.0.0.6", 2, 7);
  e.has_tcp_info = true;
  e.info = {101, 51, 5, 4, 0, 0};
  auto t = application_traffic(e, /*active_open=*/true);
  EXPECT_EQ(t.bytes_sent, 100U);
  EXPECT_EQ(t.bytes_received, 51U);
  EXPECT_EQ(t.segs_sent, 5U);
  t = application_traffic(e, /*active_open=*/false);
  EXPECT_EQ(t.bytes_sent, 101U);
  const std::pair<std::uint8_t, std::pair<std::uint64_t, std::uint64_t>> cases[] = {
      {4, {100, 51}},   // FIN-WAIT-1: our FIN not yet acked
      {5, {99, 51}},    // FIN-WAIT-2: our FIN acked
      {8, {100, 50}},   // CLOSE-WAIT: their FIN received
      {9, {100, 50}},   // LAST-ACK: theirs received, ours not acked
      {11, {100, 50}},  // CLOSING: theirs received, ours not acked
  };
  for (const auto& [state, want] : cases) {
    e.state = state;
    t = application_traffic(e, true);
    EXPECT_EQ(t.bytes_sent, want.first) << int{state};
    EXPECT_EQ(t.bytes_received, want.second) << int{state};
  }
  e.state = 5;
  e.info = {0, 0, 1, 0, 0, 0};  // never below zero
  t = application_traffic(e, true);
  EXPECT_EQ(t.bytes_sent, 0U);
}

TEST(Record, CorrelationUidPerSocket) {
  const std::string boot = "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11";
  EXPECT_EQ(correlation_uid(boot, 0x1003), "6b1f1a6e-2f7e-4f3c-0000-000000001003");
  EXPECT_EQ(correlation_uid(boot, 0xfedcba9876543210ULL), "6b1f1a6e-2f7e-4f3c-fedc-ba9876543210");
  EXPECT_NE(correlation_uid("00000000-0000-0000-0000-000000000000", 1), correlation_uid(boot, 1));
  EXPECT_EQ(correlation_uid("", 1).size(), 36U);
  const auto r = golden_records();
  EXPECT_EQ(r[2]["metadata"]["correlation_uid"], correlation_uid(boot, 0x1003));
}

TEST(Record, SequenceContinuesAcrossCalls) {
  RecordBuilder builder(golden_context());
  ListenerTable none;
  const SocketEntry e = entry(AF_INET, 1, "10.0.0.5", 1, "10.0.0.6", 2, 7);
  std::string out;
  for (int i = 0; i < 3; ++i) {
    builder.append_snapshot_record(e, orient(e, none), out);
  }
  EXPECT_EQ(builder.last_sequence(), 3U);
}

TEST(Record, HostStringsAreEscaped) {
  RecordContext c = golden_context();
  c.host.hostname = "we\"b\n\xff";
  RecordBuilder builder(std::move(c));
  ListenerTable none;
  const SocketEntry e = entry(AF_INET, 1, "10.0.0.5", 1, "10.0.0.6", 2, 7);
  std::string out;
  builder.append_snapshot_record(e, orient(e, none), out);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_EQ(json::parse(out)["device"]["hostname"], "we\"b\n\xEF\xBF\xBD");
}

}  // namespace
}  // namespace sockstate::ocsf

// Records with owners: actor.process / actor.user, containers (and the OCSF container
// profile), the socket's cgroup, the namespace, and connection_info.community_uid.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "golden.h"
#include "socket_entries.h"
#include "sockstate/ocsf/community_id.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/ocsf/version.h"
#include "sockstate/proc/cgroup.h"
#include "sockstate/proc/socket_owners.h"
#include "sockstate/proc/users.h"
#include "support/netns.h"

namespace sockstate::ocsf {
namespace {

using netlink::SocketEntry;
using nlohmann::json;
using testing::make_entry;

const char* const kGoldenPath = SOCKSTATE_TEST_DATA_DIR "/golden/attributed_records.jsonl";
constexpr const char* kBoot = "6b1f1a6e-2f7e-4f3c-9d2a-5c1e9b0d7a11";

RecordContext context() {
  RecordContext c;
  c.product_version = "0.1.0-test";
  c.host = {"web01", "0123456789abcdef0123456789abcdef", kBoot, "6.18.0-test", ""};
  c.netns_inode = 4026531840;
  c.run_id = 0x0123456789abcdefULL;
  return c;
}

SocketEntry full(SocketEntry e, std::uint32_t inode) {
  e.full_socket = true;
  e.inode = inode;
  e.has_tcp_info = true;
  e.info = {5300, 1200, 12, 10, 250, 1};
  return e;
}

proc::ProcessInfo nginx() {
  proc::ProcessInfo p;
  p.pid = 4242;
  p.name = "nginx";
  p.cmd_line = "nginx: worker process";
  p.created_time_ms = 1763920000000;
  p.uid = 33;
  p.user = "www-data";
  p.start_ticks = 123456;
  p.exe = "/usr/sbin/nginx";
  p.ppid = 4200;
  p.parent_name = "nginx";
  p.cgroup = "/system.slice/nginx.service";
  return p;
}

proc::ProcessInfo containerized() {
  proc::ProcessInfo p;
  p.pid = 777;
  p.name = "redis-server";
  p.cmd_line = "redis-server *:6379";
  p.created_time_ms = 1763921000000;
  p.uid = 999;  // no passwd entry on the host
  p.start_ticks = 98765;
  p.cgroup = "/system.slice/docker-" + std::string(64, 'c') + ".scope";
  p.container = proc::container_from_cgroup(p.cgroup);
  return p;
}

proc::CgroupInfo cgroup_info(const std::string& path) {
  return {path, proc::systemd_unit_from_cgroup(path), proc::container_from_cgroup(path)};
}

struct Case {
  SocketEntry entry;
  flow::Owner owner;
};

std::string build(const std::vector<SocketEntry>& listener_entries, const std::vector<Case>& cases,
                  RecordContext c = context()) {
  flow::ListenerTable listeners;
  for (const auto& l : listener_entries) {
    listeners.add(l);
  }
  RecordBuilder builder(std::move(c));
  std::string out;
  for (const auto& k : cases) {
    flow::Observation obs = flow::observe_snapshot(
        k.entry, flow::orient(k.entry, listeners, flow::Perimeter{}), 1763925000123);
    obs.owner = k.owner;
    builder.append(obs, out);
  }
  return out;
}

std::vector<json> lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(json::parse(line));
  }
  return out;
}

// The golden records: a host service, a container's listener and connection, a pod's
// socket found only through its namespace, and a TIME-WAIT socket (no owner at all).
std::string build_golden(RecordContext c = context()) {
  static const proc::ProcessInfo web = nginx();
  static const proc::ProcessInfo redis = containerized();
  static const proc::CgroupInfo web_cgroup = cgroup_info("/system.slice/nginx.service");
  static const proc::CgroupInfo redis_cgroup = cgroup_info(redis.cgroup);
  static const proc::UserInfo www{33, "www-data", 3};
  static const proc::UserInfo redis_user{999, "", 1};
  static const proc::Container pod{std::string(64, 'd'), "", "containerd", "Kubernetes",
                                   "8d4f1f5e-1c1b-4a6e-9f3e-2b7c9d0e1a2b"};
  const SocketEntry web_listen = full(make_entry(AF_INET, 10, "0.0.0.0", 80, "0.0.0.0", 0, 1), 10);
  const SocketEntry redis_listen = full(make_entry(AF_INET6, 10, "::", 6379, "::", 0, 2), 20);
  return build(
      {web_listen, redis_listen},
      {
          {web_listen, {&web, &www, &web_cgroup, nullptr, 0}},
          {full(make_entry(AF_INET, 1, "10.0.0.5", 80, "192.0.2.10", 51514, 3), 11),
           {&web, &www, &web_cgroup, nullptr, 0}},
          {redis_listen, {&redis, &redis_user, &redis_cgroup, nullptr, 4026532300}},
          {full(make_entry(AF_INET6, 1, "::ffff:172.17.0.2", 6379, "::ffff:172.17.0.1", 40000, 4),
                21),
           {&redis, &redis_user, &redis_cgroup, nullptr, 4026532300}},
          // a socket whose process we could not read, in a pod's namespace
          {full(make_entry(AF_INET, 2, "10.244.0.7", 43210, "10.96.0.1", 443, 5), 30),
           {nullptr, nullptr, nullptr, &pod, 4026532400}},
          {make_entry(AF_INET, 6, "10.0.0.5", 80, "192.0.2.11", 51515, 6), {}},
      },
      std::move(c));
}

TEST(Attribution, GoldenByteExact) {
  testing::expect_golden(kGoldenPath, build_golden());
}

TEST(Attribution, ActorProcessAndUser) {
  const auto r = lines(build_golden());
  const json& web = r[1]["actor"];
  EXPECT_EQ(web["process"]["pid"], 4242);
  EXPECT_EQ(web["process"]["name"], "nginx");
  EXPECT_EQ(web["process"]["cmd_line"], "nginx: worker process");
  EXPECT_EQ(web["process"]["created_time"], 1763920000000);
  EXPECT_EQ(web["process"]["uid"], "6b1f1a6e-2f7e-4f3c-0010-92000001e240");
  EXPECT_EQ(web["process"]["user"], (json{{"uid", "33"}, {"name", "www-data"}}));
  EXPECT_EQ(web["process"]["file"], (json{{"name", "nginx"},
                                          {"path", "/usr/sbin/nginx"},
                                          {"type_id", 1},
                                          {"type", "Regular File"}}));
  EXPECT_EQ(web["process"]["parent_process"], (json{{"pid", 4200}, {"name", "nginx"}}));
  // actor.user is the socket's owner, with its type.
  EXPECT_EQ(web["user"],
            (json{{"uid", "33"}, {"name", "www-data"}, {"type_id", 3}, {"type", "System"}}));
  // Observables: the process name and its executable's path.
  bool name = false;
  bool path = false;
  for (const auto& o : r[1]["observables"]) {
    name = name || (o["name"] == "actor.process.name" && o["value"] == "nginx");
    path = path || (o["name"] == "actor.process.file.path" && o["value"] == "/usr/sbin/nginx");
  }
  EXPECT_TRUE(name);
  EXPECT_TRUE(path);
  EXPECT_FALSE(web["process"].contains("container"));
  EXPECT_EQ(r[1]["unmapped"]["cgroup"], "/system.slice/nginx.service");
  EXPECT_EQ(r[1]["unmapped"]["systemd_unit"], "nginx.service");
  // A uid with no passwd name: the number alone.
  EXPECT_EQ(r[2]["actor"]["process"]["user"], (json{{"uid", "999"}}));
  EXPECT_EQ(r[2]["actor"]["user"], (json{{"uid", "999"}, {"type_id", 1}, {"type", "User"}}));
  // TIME-WAIT: no actor, no cgroup.
  EXPECT_FALSE(r[5].contains("actor"));
  EXPECT_FALSE(r[5]["unmapped"].contains("cgroup"));
}

TEST(Attribution, ProcessUidIsStableAndDistinct) {
  std::string a;
  std::string b;
  std::string c;
  append_process_uid(a, kBoot, 4242, 123456);
  append_process_uid(b, kBoot, 4242, 123457);  // the pid recycled later
  append_process_uid(c, kBoot, 4243, 123456);
  EXPECT_EQ(a.size(), 36U);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  std::string again;
  append_process_uid(again, kBoot, 4242, 123456);
  EXPECT_EQ(a, again);
}

TEST(Attribution, ContainerProfileOnlyWithContainer) {
  const auto r = lines(build_golden());
  const json host_only = json::array({"host"});
  const json with_container = json::array({"host", "container"});
  EXPECT_EQ(r[0]["metadata"]["profiles"], host_only);
  EXPECT_EQ(r[1]["metadata"]["profiles"], host_only);
  EXPECT_EQ(r[5]["metadata"]["profiles"], host_only);
  const std::string redis_id(64, 'c');
  // Listener: the container is on dst_endpoint, the local end, and on the process.
  EXPECT_EQ(r[2]["metadata"]["profiles"], with_container);
  EXPECT_EQ(r[2]["dst_endpoint"]["container"], (json{{"uid", redis_id}, {"runtime", "docker"}}));
  EXPECT_EQ(r[2]["actor"]["process"]["container"]["uid"], redis_id);
  // Inbound connection: dst is local, src (the peer) has none.
  EXPECT_EQ(r[3]["dst_endpoint"]["container"]["uid"], redis_id);
  EXPECT_FALSE(r[3]["src_endpoint"].contains("container"));
  EXPECT_EQ(r[3]["unmapped"]["netns"], 4026532300U);
  // docker's systemd cgroup driver makes each container a scope unit.
  EXPECT_EQ(r[3]["unmapped"]["systemd_unit"], "docker-" + redis_id + ".scope");
  // Outbound, container from the namespace: on src_endpoint.
  EXPECT_EQ(r[4]["metadata"]["profiles"], with_container);
  EXPECT_EQ(r[4]["src_endpoint"]["container"]["orchestrator"], "Kubernetes");
  EXPECT_EQ(r[4]["src_endpoint"]["container"]["pod_uuid"], "8d4f1f5e-1c1b-4a6e-9f3e-2b7c9d0e1a2b");
  EXPECT_FALSE(r[4].contains("actor"));
  EXPECT_EQ(r[4]["unmapped"]["netns"], 4026532400U);
  EXPECT_EQ(r[0]["unmapped"]["netns"], 4026531840U);  // the context's when not given
}

TEST(Attribution, CommunityIdOfTheFlow) {
  const auto r = lines(build_golden());
  EXPECT_FALSE(r[0]["connection_info"].contains("community_uid"));  // a listener is no flow
  for (std::size_t i : {1U, 3U, 4U, 5U}) {
    const json& rec = r[i];
    Address src{};
    Address dst{};
    const auto parse = [](const std::string& ip, Address& a) {
      if (ip.find(':') == std::string::npos) {
        a = flow::normalized_address(AF_INET, testing::raw_address(AF_INET, ip));
      } else {
        a = flow::normalized_address(AF_INET6, testing::raw_address(AF_INET6, ip));
      }
    };
    parse(rec["src_endpoint"]["ip"], src);
    parse(rec["dst_endpoint"]["ip"], dst);
    const std::string want =
        community_id_v1(src, rec["src_endpoint"]["port"], dst, rec["dst_endpoint"]["port"], 6);
    ASSERT_EQ(want.size(), kCommunityIdLength);
    EXPECT_EQ(rec["connection_info"]["community_uid"], want) << i;
    // Either direction of one flow, the same ID.
    EXPECT_EQ(
        community_id_v1(dst, rec["dst_endpoint"]["port"], src, rec["src_endpoint"]["port"], 6),
        want);
  }
}

TEST(Attribution, CommunityIdSeedAndNoPort) {
  const SocketEntry e = make_entry(AF_INET, 1, "10.0.0.5", 40000, "10.0.0.6", 443, 1);
  RecordContext seeded = context();
  seeded.community_id_seed = 1;
  const auto zero = lines(build({}, {{e, {}}}));
  const auto one = lines(build({}, {{e, {}}}, seeded));
  EXPECT_NE(zero[0]["connection_info"]["community_uid"],
            one[0]["connection_info"]["community_uid"]);
  Address src = flow::normalized_address(AF_INET, e.local_addr);
  Address dst = flow::normalized_address(AF_INET, e.remote_addr);
  EXPECT_EQ(one[0]["connection_info"]["community_uid"],
            community_id_v1(src, 40000, dst, 443, 6, 1));
  // A failed blocking connect() whose ports the kernel cleared is no flow on the wire.
  SocketEntry cleared = e;
  cleared.remote_port = 0;
  EXPECT_FALSE(lines(build({}, {{cleared, {}}}))[0]["connection_info"].contains("community_uid"));
}

TEST(Attribution, WorstCaseRecordStaysUnder8KiB) {
  // The longest strings /proc and cgroupfs can hand us, after the bounds, all of characters
  // JSON must escape: the record stays one valid line under 8 KiB.
  proc::ProcessInfo p = nginx();
  bool cut = false;
  p.cmd_line = proc::sanitize_text(std::string(100000, '"'), proc::kMaxCmdLineBytes, &cut);
  p.cmd_line_truncated = cut;
  p.name = proc::sanitize_text(std::string(64, '\\'), 64, nullptr);
  p.user = std::string(32, '"');
  p.cgroup = "/lxc.payload." + std::string(600, '\\');
  p.container = proc::container_from_cgroup(
      proc::sanitize_text(p.cgroup, proc::kMaxCgroupPathBytes, nullptr));
  ASSERT_TRUE(p.container.has_value());
  proc::CgroupInfo cg{proc::sanitize_text(p.cgroup, proc::kMaxCgroupPathBytes, nullptr), "",
                      p.container};
  const SocketEntry e =
      full(make_entry(AF_INET6, 1, "2001:db8::5", 40000, "2606:4700::1", 443, 1), 5);
  p.exe = proc::sanitize_text(std::string(2000, '"'), 128, nullptr);
  const proc::UserInfo user{7, std::string(32, '"'), 3};
  const std::string out = build({}, {{e, {&p, &user, &cg, nullptr, 4026532300}}});
  EXPECT_LT(out.size(), 8192U);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  const json r = json::parse(out);
  EXPECT_EQ(r["actor"]["process"]["cmd_line"], std::string(proc::kMaxCmdLineBytes, '"'));
  EXPECT_EQ(r["unmapped"]["cmd_line_truncated"], true);
}

TEST(Attribution, EveryRecordPassesTheOcsfCheck) {
  const std::string text = build_golden();
  const std::string path = ::testing::TempDir() + "attributed.jsonl";
  std::ofstream(path) << text;
  const auto result = sockstate::testing::run_command(
      std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK + " --require-tcp-state " + path);
  EXPECT_EQ(result.exit_code, 0) << result.output << result.error_output;
  EXPECT_NE(result.output.find("6 passed, 0 failed"), std::string::npos) << result.output;
}

// The same owners in the older version modes: byte-exact goldens (what the consumer
// recipes' field check reads for those versions), each valid for its version.
TEST(Attribution, OlderModesGoldenByteExactAndValid) {
  for (const OcsfVersion v : {kOcsf150, kOcsf110}) {
    SCOPED_TRACE(to_string(v));
    RecordContext c = context();
    c.ocsf_version = v;
    const std::string text = build_golden(std::move(c));
    const std::string golden = std::string(SOCKSTATE_TEST_DATA_DIR) +
                               "/golden/attributed_records-" + to_string(v) + ".jsonl";
    testing::expect_golden(golden, text);
    const auto result = sockstate::testing::run_command(
        std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK + " --ocsf-version " +
        to_string(v) + " --require-tcp-state " + golden);
    EXPECT_EQ(result.exit_code, 0) << result.output << result.error_output;
    EXPECT_NE(result.output.find("6 passed, 0 failed"), std::string::npos) << result.output;
  }
}

}  // namespace
}  // namespace sockstate::ocsf

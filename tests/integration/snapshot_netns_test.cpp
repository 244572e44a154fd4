// `sockstate snapshot` against real kernel sockets held in every TCP state (IPv4 and IPv6)
// in the test's own network namespace. Needs root; skips without it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "sockstate/ocsf/tcp_state.h"
#include "support/netns.h"
#include "support/tcp_zoo.h"

namespace sockstate::testing {
namespace {

using nlohmann::json;

constexpr std::uint16_t kV4Base = 2000;
constexpr std::uint16_t kV6Base = 3000;

// The contract's snapshot activity for a kernel state.
// The contract's one-shot snapshot table: a snapshot reports no event that did not happen.
int expected_activity(int state) {
  switch (state) {
    case kTcpListen:
      return 7;
    case kTcpSynSent:
    case kTcpSynRecv:
      return 1;
    case kTcpTimeWait:
      return 2;  // the connection has ended; the kernel only lingers
    case kTcpClose:
      return 99;  // bound, never used
    default:
      return 6;  // ESTABLISHED, CLOSE-WAIT, FIN-WAIT-1/2, CLOSING, LAST-ACK: live
  }
}

std::string endpoint(const std::string& ip, std::uint16_t port) {
  return ip + ":" + std::to_string(port);
}

// A record's flow as "src>dst" ("" for an end it does not have).
std::string flow_of(const json& r) {
  auto end = [&r](const char* key) {
    if (!r.contains(key)) {
      return std::string();
    }
    return endpoint(r[key]["ip"].get<std::string>(), r[key]["port"].get<std::uint16_t>());
  };
  return end("src_endpoint") + ">" + end("dst_endpoint");
}

// The flow the contract says the record for `s` carries: src is the initiator.
std::string expected_flow(const HeldSocket& s) {
  const std::string local = endpoint(s.local_ip, s.local_port);
  if (s.kernel_state == kTcpListen) {
    return ">" + local;
  }
  if (s.remote_ip.empty()) {
    return local + ">";  // bound-inactive
  }
  const std::string remote = endpoint(s.remote_ip, s.remote_port);
  return s.accepted_side ? remote + ">" + local : local + ">" + remote;
}

// A listener decided it, or the state did (SYN-SENT, SYN-RECV, LISTEN).
// Revision 3, rule 3: known when a local listener accepted it, when it is in a handshake,
// or when its peer is a listener held here (a loopback pair: this end connected to it).
bool expected_known(const HeldSocket& s, const std::vector<HeldSocket>& held) {
  if (s.remote_ip.empty()) {
    return s.kernel_state == kTcpListen;
  }
  if (s.accepted_side || s.kernel_state == kTcpSynSent || s.kernel_state == kTcpSynRecv) {
    return true;
  }
  return std::any_of(held.begin(), held.end(), [&s](const HeldSocket& h) {
    return h.kernel_state == kTcpListen && h.local_port == s.remote_port &&
           (h.local_ip == s.remote_ip || h.local_ip == "0.0.0.0" || h.local_ip == "::");
  });
}

struct SnapshotRun {
  int exit_code = -1;
  std::vector<json> records;
  std::string text;
  std::string error_output;
};

SnapshotRun snapshot(const std::string& args) {
  const CommandResult res = run_command(std::string(SOCKSTATE_BINARY) + " snapshot " + args);
  SnapshotRun run{res.exit_code, {}, res.output, res.error_output};
  std::istringstream lines(res.output);
  for (std::string line; std::getline(lines, line);) {
    run.records.push_back(json::parse(line));
  }
  return run;
}

class SnapshotNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!is_root()) {
      return;
    }
    if (auto err = enter_private_netns()) {
      setup_error_ = *err;
      return;
    }
    std::string error;
    v4_ = TcpZoo::create(AF_INET, kV4Base, &error);
    if (v4_) {
      v6_ = TcpZoo::create(AF_INET6, kV6Base, &error);
    }
    if (!v4_ || !v6_) {
      setup_error_ = "zoo: " + error;
      return;
    }
    for (const TcpZoo* zoo : {v4_.get(), v6_.get()}) {
      if (auto missing = zoo->wait_until_settled()) {
        setup_error_ = "zoo did not settle: " + *missing;
        return;
      }
    }
  }
  static void TearDownTestSuite() {
    v6_.reset();
    v4_.reset();
  }
  void SetUp() override {
    if (!is_root()) {
      GTEST_SKIP() << "needs root (network namespaces, nftables)";
    }
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static std::vector<HeldSocket> all_held() {
    std::vector<HeldSocket> all = v4_->sockets();
    all.insert(all.end(), v6_->sockets().begin(), v6_->sockets().end());
    return all;
  }

  // The records for exactly these held sockets: each found once, nothing else reported.
  static void expect_exactly(const std::vector<json>& records, const std::vector<HeldSocket>& held,
                             const std::string& what) {
    std::multiset<std::string> got;
    for (const json& r : records) {
      got.insert(flow_of(r) + " " + r["unmapped"]["tcp_state"].get<std::string>());
    }
    std::multiset<std::string> want;
    for (const HeldSocket& s : held) {
      want.insert(expected_flow(s) + " " +
                  std::string(ocsf::kTcpStateCaptions[static_cast<std::size_t>(s.kernel_state)]));
    }
    EXPECT_EQ(got, want) << what;
  }

  static inline std::string setup_error_;
  static inline std::unique_ptr<TcpZoo> v4_;
  static inline std::unique_ptr<TcpZoo> v6_;
};

TEST_F(SnapshotNetns, EveryStateReportedCorrectly) {
  const SnapshotRun run = snapshot("--state all,bound");
  ASSERT_EQ(run.exit_code, 0) << run.error_output;
  EXPECT_TRUE(run.error_output.empty()) << run.error_output;
  const auto held = all_held();
  expect_exactly(run.records, held, "--state all,bound");

  std::set<int> states_seen;
  for (const HeldSocket& s : held) {
    SCOPED_TRACE(describe(s));
    const std::string flow = expected_flow(s);
    const json* match = nullptr;
    for (const json& r : run.records) {
      if (flow_of(r) == flow && r["unmapped"]["kernel_tcp_state"] == s.kernel_state &&
          r["observation_point_id"] == (s.accepted_side ? 2 : 1)) {
        EXPECT_EQ(match, nullptr) << "two records for one socket";
        match = &r;
      }
    }
    ASSERT_NE(match, nullptr) << "no record for " << flow;
    const json& r = *match;
    EXPECT_EQ(r["is_src_dst_assignment_known"], expected_known(s, held)) << r.dump();
    states_seen.insert(s.kernel_state);
    EXPECT_EQ(r["unmapped"]["tcp_state_id"], s.kernel_state);  // 1..11 map to themselves
    EXPECT_EQ(r["unmapped"]["tcp_state"],
              std::string(ocsf::kTcpStateCaptions[static_cast<std::size_t>(s.kernel_state)]));
    EXPECT_EQ(r["activity_id"], expected_activity(s.kernel_state));
    EXPECT_EQ(r["connection_info"]["protocol_ver_id"], s.family == AF_INET ? 4 : 6);
    // A pending handshake's outcome is not known yet (revision 3, rule 4).
    EXPECT_EQ(r["status_id"], r["activity_id"] == 1 ? 0 : 1);
    EXPECT_EQ(r["status_code"], r["unmapped"]["tcp_state"]);
    // A TIME-WAIT socket has ended: its Close says when it was seen ended.
    EXPECT_EQ(r.contains("end_time"), s.kernel_state == kTcpTimeWait) << r.dump();
    EXPECT_FALSE(r.contains("traffic")) << "a snapshot ends no observation period";
    if (s.remote_ip.empty()) {
      // Listen and Bound: no connection, so no direction or boundary.
      EXPECT_EQ(r["connection_info"]["direction_id"], 0);
      EXPECT_EQ(r["connection_info"]["boundary_id"], 0);
    } else {
      // Everything here is on loopback.
      EXPECT_EQ(r["connection_info"]["boundary_id"], 1);
      EXPECT_EQ(r["connection_info"]["direction_id"], 4);
      // Each socket is one end of its pair (revision 3, rule 2): matched by it above.
    }
    EXPECT_EQ(r["metadata"]["correlation_uid"].get<std::string>().substr(19, 4) +
                  r["metadata"]["correlation_uid"].get<std::string>().substr(24),
              r["connection_info"]["uid"]);
  }
  EXPECT_EQ(states_seen.size(), 11U) << "all eleven states held and found";
}

TEST_F(SnapshotNetns, DefaultLeavesOutBoundInactive) {
  const SnapshotRun run = snapshot("");
  ASSERT_EQ(run.exit_code, 0) << run.error_output;
  std::vector<HeldSocket> held;
  for (const HeldSocket& s : all_held()) {
    if (s.kernel_state != kTcpClose) {
      held.push_back(s);
    }
  }
  expect_exactly(run.records, held, "default states");
}

TEST_F(SnapshotNetns, EachStateFilterReturnsExactlyItsSockets) {
  const std::map<int, std::string> names = {
      {1, "established"}, {2, "SYN-SENT"},  {3, "syn_received"}, {4, "fin-wait-1"},
      {5, "FIN_WAIT_2"},  {6, "time-wait"}, {7, "closed"},       {8, "close-wait"},
      {9, "last-ack"},    {10, "listen"},   {11, "closing"}};
  for (const auto& [state, name] : names) {
    const SnapshotRun run = snapshot("--state " + name);
    ASSERT_EQ(run.exit_code, 0) << name << ": " << run.error_output;
    std::vector<HeldSocket> held = v4_->expected_in_state(state);
    const auto v6 = v6_->expected_in_state(state);
    held.insert(held.end(), v6.begin(), v6.end());
    ASSERT_FALSE(held.empty()) << name;
    expect_exactly(run.records, held, "--state " + name);
  }
}

TEST_F(SnapshotNetns, ConnectedAndListCombine) {
  SnapshotRun run = snapshot("--state connected");
  ASSERT_EQ(run.exit_code, 0);
  std::vector<HeldSocket> held;
  for (const HeldSocket& s : all_held()) {
    if (s.kernel_state != kTcpListen && s.kernel_state != kTcpClose) {
      held.push_back(s);
    }
  }
  expect_exactly(run.records, held, "--state connected");

  run = snapshot("--state listen,time-wait --family inet6");
  ASSERT_EQ(run.exit_code, 0);
  held = v6_->expected_in_state(kTcpListen);
  const auto tw = v6_->expected_in_state(kTcpTimeWait);
  held.insert(held.end(), tw.begin(), tw.end());
  expect_exactly(run.records, held, "--state listen,time-wait --family inet6");
}

TEST_F(SnapshotNetns, FamilyFilter) {
  for (const auto& [family, zoo] : {std::pair{"inet", v4_.get()}, std::pair{"inet6", v6_.get()}}) {
    const SnapshotRun run = snapshot(std::string("--state all,bound --family ") + family);
    ASSERT_EQ(run.exit_code, 0);
    expect_exactly(run.records, zoo->sockets(), family);
  }
}

TEST_F(SnapshotNetns, PortFiltersRunInTheKernelAndMatchExactly) {
  const auto held = all_held();
  // Every port in use, plus one nobody uses.
  std::set<std::uint16_t> ports = {1};
  for (const HeldSocket& s : held) {
    ports.insert(s.local_port);
    if (s.remote_port != 0) {
      ports.insert(s.remote_port);
    }
  }
  auto select = [&held](auto pred) {
    std::vector<HeldSocket> out;
    for (const HeldSocket& s : held) {
      if (pred(s)) {
        out.push_back(s);
      }
    }
    return out;
  };
  for (const std::uint16_t p : ports) {
    if (p >= 32768) {
      continue;  // the TIME-WAIT client's ephemeral port: covered by --port below
    }
    const std::string ps = std::to_string(p);
    SnapshotRun run = snapshot("--state all,bound --port " + ps);
    ASSERT_EQ(run.exit_code, 0) << run.error_output;
    expect_exactly(run.records, select([p](const HeldSocket& s) {
                     return s.local_port == p || (s.remote_port == p && !s.remote_ip.empty());
                   }),
                   "--port " + ps);
    run = snapshot("--state all,bound --sport " + ps);
    ASSERT_EQ(run.exit_code, 0);
    expect_exactly(run.records, select([p](const HeldSocket& s) { return s.local_port == p; }),
                   "--sport " + ps);
    run = snapshot("--state all,bound --dport " + ps);
    ASSERT_EQ(run.exit_code, 0);
    expect_exactly(run.records, select([p](const HeldSocket& s) {
                     return s.remote_port == p && !s.remote_ip.empty();
                   }),
                   "--dport " + ps);
  }
  // Two conditions together: the established pair's server end only.
  for (const HeldSocket& s : held) {
    if (s.kernel_state != kTcpEstablished || s.remote_ip.empty()) {
      continue;
    }
    const std::string args = "--sport " + std::to_string(s.local_port) + " --dport " +
                             std::to_string(s.remote_port) + " --port " +
                             std::to_string(s.remote_port);
    const SnapshotRun run =
        snapshot(args + " --family " + (s.family == AF_INET ? "inet" : "inet6"));
    ASSERT_EQ(run.exit_code, 0);
    expect_exactly(run.records, {s}, args);
  }
}

TEST_F(SnapshotNetns, TrafficIsExactAndOriented) {
  // A connection of our own with known bytes each way.
  const std::uint16_t port = 4400;
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  const int cfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const int sfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(sfd, 0);
  const std::string up(1000, 'u');
  const std::string down(300, 'd');
  ASSERT_EQ(::write(cfd, up.data(), up.size()), 1000);
  ASSERT_EQ(::write(sfd, down.data(), down.size()), 300);
  std::string buf(2000, '\0');
  ASSERT_EQ(::read(sfd, buf.data(), buf.size()), 1000);
  ASSERT_EQ(::read(cfd, buf.data(), buf.size()), 300);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the ACKs land

  const SnapshotRun run = snapshot("--state established --port " + std::to_string(port));
  ASSERT_EQ(run.exit_code, 0);
  ASSERT_EQ(run.records.size(), 2U) << run.text;
  for (const json& r : run.records) {
    // Both records describe the same flow, client -> server.
    EXPECT_EQ(r["dst_endpoint"]["port"], port);
    EXPECT_FALSE(r.contains("traffic")) << "running totals are cumulative_traffic";
    EXPECT_EQ(r["cumulative_traffic"]["bytes_out"], 1000) << r.dump();
    EXPECT_EQ(r["cumulative_traffic"]["bytes_in"], 300) << r.dump();
    EXPECT_EQ(r["cumulative_traffic"]["bytes"], 1300);
    EXPECT_GE(r["cumulative_traffic"]["packets_out"].get<int>(), 2);
    EXPECT_GT(r["unmapped"]["rtt_us"].get<int>(), 0);
    EXPECT_GT(r["unmapped"]["inode"].get<long>(), 0);
    EXPECT_EQ(r["actor"]["user"]["uid"], "0") << "the socket's owner, without --process";
    EXPECT_EQ(r["actor"]["user"]["type_id"], 2);
  }
  // One end accepted, the other connected to this namespace's listener: both known, and
  // each record says which end it is.
  EXPECT_EQ(run.records[0]["is_src_dst_assignment_known"], true);
  EXPECT_EQ(run.records[1]["is_src_dst_assignment_known"], true);
  EXPECT_NE(run.records[0]["observation_point_id"], run.records[1]["observation_point_id"]);

  // Half-close: the client's FIN is acked (FIN-WAIT-2), the server has received it
  // (CLOSE-WAIT). The kernel counts each FIN as a byte; the records must not.
  ASSERT_EQ(::shutdown(cfd, SHUT_WR), 0);
  ASSERT_EQ(::read(sfd, buf.data(), buf.size()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const SnapshotRun half =
      snapshot("--port " + std::to_string(port) + " --state fin-wait-2,close-wait");
  ASSERT_EQ(half.records.size(), 2U) << half.text;
  for (const json& r : half.records) {
    EXPECT_EQ(r["cumulative_traffic"]["bytes_out"], 1000) << r.dump();
    EXPECT_EQ(r["cumulative_traffic"]["bytes_in"], 300) << r.dump();
    EXPECT_EQ(r["activity_id"], 6) << "a half-closed connection is live";
  }

  const SnapshotRun bare =
      snapshot("--state fin-wait-2,close-wait --no-info --port " + std::to_string(port));
  ASSERT_EQ(bare.records.size(), 2U);
  for (const json& r : bare.records) {
    EXPECT_FALSE(r.contains("cumulative_traffic"));
    EXPECT_FALSE(r["unmapped"].contains("rtt_us"));
  }
  ::close(sfd);
  ::close(cfd);
  ::close(lfd);
}

// Every state, with and without --process, in each OCSF version mode, through the checker
// for that version (its schema, and metadata.version equal to it).
TEST_F(SnapshotNetns, EveryRecordOfEveryModePassesTheOcsfCheck) {
  for (const char* version : {"1.8.0", "1.5.0", "1.1.0"}) {
    SCOPED_TRACE(version);
    std::string all;
    for (const char* args : {"--state all,bound", "--state all,bound --process", "--no-info",
                             "--family inet6 --state listen"}) {
      const SnapshotRun run = snapshot(std::string(args) + " --ocsf-version " + version);
      ASSERT_EQ(run.exit_code, 0) << run.error_output;
      all += run.text;
    }
    // For a look by hand, or another checker: SOCKSTATE_KEEP_RECORDS=FILE keeps them.
    if (const char* keep = std::getenv("SOCKSTATE_KEEP_RECORDS")) {
      std::ofstream(std::string(keep) + "." + version) << all;
    }
    const CommandResult check =
        run_command(std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK +
                        " --ocsf-version " + version + " --require-tcp-state",
                    all, std::chrono::seconds(60));
    EXPECT_EQ(check.exit_code, 0) << check.output << check.error_output;
    const auto lines = static_cast<std::size_t>(std::count(all.begin(), all.end(), '\n'));
    EXPECT_GT(lines, 40U) << "the zoo's sockets, four times";
    EXPECT_NE(check.output.find(std::to_string(lines) + " passed, 0 failed"), std::string::npos)
        << check.output;
  }
}

TEST_F(SnapshotNetns, OutputFileAndWriteErrors) {
  char dir[] = "/tmp/sockstate-snap-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/records.jsonl";
  SnapshotRun run = snapshot("--output " + path);
  ASSERT_EQ(run.exit_code, 0) << run.error_output;
  EXPECT_TRUE(run.text.empty()) << "records go to the file, not stdout";
  std::ifstream in(path);
  std::size_t lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    EXPECT_TRUE(json::accept(line)) << line;
  }
  EXPECT_EQ(lines, snapshot("").records.size());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640U & ~0022U & 0777U);
  ::unlink(path.c_str());
  ::rmdir(dir);

  // A runtime failure: one line on stderr, exit 1, nothing on stdout.
  run = snapshot("--output /nonexistent-dir/x.jsonl");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(run.text.empty());
  EXPECT_EQ(std::count(run.error_output.begin(), run.error_output.end(), '\n'), 1)
      << run.error_output;
  EXPECT_NE(run.error_output.find("/nonexistent-dir/x.jsonl"), std::string::npos);
  // A full disk: a 16 KiB tmpfs in a mount namespace of its own.
  const CommandResult full = run_command(
      "unshare -m sh -c 'd=$(mktemp -d) && mount -t tmpfs -o size=16k none \"$d\" && " +
      std::string(SOCKSTATE_BINARY) + " snapshot --state all,bound --output \"$d/x.jsonl\"'");
  EXPECT_EQ(full.exit_code, 1) << full.error_output;
  EXPECT_NE(full.error_output.find("No space left"), std::string::npos) << full.error_output;
  EXPECT_EQ(std::count(full.error_output.begin(), full.error_output.end(), '\n'), 1);
  // A usage error: exit 2, one line.
  run = snapshot("--state nonsense");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(std::count(run.error_output.begin(), run.error_output.end(), '\n'), 1);
}

}  // namespace
}  // namespace sockstate::testing

namespace sockstate::testing {
namespace {

// --format table: a header and one line per socket, with the state, the socket's own
// local and peer ends, and the process (here: this test, which holds the zoo).
TEST_F(SnapshotNetns, TableForPeopleAtATerminal) {
  const CommandResult r = run_command(std::string(SOCKSTATE_BINARY) +
                                      " snapshot --format table --process --state all,bound");
  ASSERT_EQ(r.exit_code, 0) << r.error_output;
  std::vector<std::string> lines;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  const auto held = all_held();
  ASSERT_EQ(lines.size(), held.size() + 1) << r.output;
  EXPECT_EQ(lines[0].rfind("Netid", 0), 0U) << lines[0];
  EXPECT_NE(lines[0].find(" State "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("Local Address:Port"), std::string::npos);
  for (const HeldSocket& s : held) {
    const std::string state(ocsf::kTcpStateCaptions[static_cast<std::size_t>(s.kernel_state)]);
    const std::string local = (s.family == AF_INET6 ? "[" + s.local_ip + "]" : s.local_ip) + ":" +
                              std::to_string(s.local_port);
    const bool found = std::any_of(lines.begin() + 1, lines.end(), [&](const std::string& l) {
      return l.rfind("tcp ", 0) == 0 && l.find(" " + state + " ") != std::string::npos &&
             l.find(local + " ") != std::string::npos;
    });
    EXPECT_TRUE(found) << describe(s) << "\n" << r.output;
  }
  EXPECT_NE(r.output.find("(" + std::to_string(::getpid()) + ")"), std::string::npos)
      << "the process holding the sockets";
}

}  // namespace
}  // namespace sockstate::testing

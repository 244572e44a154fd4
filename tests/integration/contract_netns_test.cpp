// Output contract revision 2, rule by rule, with the real binary against real sockets: a
// private network namespace for the collector, and a second one joined by a veth pair for
// a peer that is not this host (198.51.100.0/24 and 2001:db8:51::/64, documentation
// networks no default calls inside). Needs root.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "support/daemon_harness.h"
#include "support/netns.h"
#include "support/process.h"
#include "support/tcp_zoo.h"
#include "support/unique_fd.h"

namespace sockstate::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kHere4 = "198.51.100.1";
constexpr const char* kPeer4 = "198.51.100.2";
constexpr const char* kHere6 = "2001:db8:51::1";
constexpr const char* kPeer6 = "2001:db8:51::2";

// A socket's inode, as sock_diag reports it (unmapped.inode).
std::uint64_t socket_inode(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

// Either family's socket address.
struct Address {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = 0;
};

Address address(const std::string& ip, std::uint16_t port) {
  Address a;
  if (ip.find(':') == std::string::npos) {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    EXPECT_EQ(::inet_pton(AF_INET, ip.c_str(), &in->sin_addr), 1) << ip;
    a.len = sizeof(sockaddr_in);
    a.family = AF_INET;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    EXPECT_EQ(::inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr), 1) << ip;
    a.len = sizeof(sockaddr_in6);
    a.family = AF_INET6;
  }
  return a;
}

UniqueFd listen_at(const std::string& ip, std::uint16_t port) {
  const Address a = address(ip, port);
  UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.storage), a.len), 0)
      << ip << " " << port << ": " << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), 64), 0);
  return fd;
}

// A blocking connect from an unbound socket: the kernel picks the source.
UniqueFd connect_at(const std::string& ip, std::uint16_t port) {
  const Address a = address(ip, port);
  UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.storage), a.len), 0)
      << ip << " " << port << ": " << std::strerror(errno);
  return fd;
}

UniqueFd accept_one(int listener) {
  return UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

// close() with SO_LINGER {1, 0}: an RST, and tcp_disconnect() clears what it can.
void abort_socket(UniqueFd& fd) {
  const linger l{1, 0};
  ASSERT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
  fd.reset();
}

std::string cid(const json& r) {
  return r["connection_info"]["uid"].get<std::string>();
}

// Per socket (connection_info.uid): the sum of its records' traffic.bytes_out, and its last
// cumulative_traffic.bytes_out.
struct BytesOut {
  std::int64_t sum = 0;
  std::int64_t total = 0;
};
std::map<std::string, BytesOut> bytes_out_by_socket(const std::vector<json>& records) {
  std::map<std::string, BytesOut> out;
  for (const auto& x : records) {
    if (x.contains("traffic")) {
      out[cid(x)].sum += x["traffic"]["bytes_out"].get<std::int64_t>();
    }
    if (x.contains("cumulative_traffic")) {
      out[cid(x)].total = x["cumulative_traffic"]["bytes_out"].get<std::int64_t>();
    }
  }
  return out;
}

bool terminal(const json& r) {
  const int a = r["activity_id"].get<int>();
  return a == kClose || a == kFail || a == kRefuse;
}

bool unspecified(const json& endpoint) {
  const std::string ip = endpoint.value("ip", std::string());
  return ip == "0.0.0.0" || ip == "::";
}

// The contract's terminal rule over a whole run: per socket, at most one terminal record
// and none after it; no connection endpoint unspecified.
void expect_terminal_once(const std::vector<json>& records) {
  std::map<std::string, int> terminals;
  for (const auto& r : records) {
    SCOPED_TRACE(r.dump());
    const std::string id = cid(r);
    EXPECT_EQ(terminals[id], 0) << "a record after the terminal one";
    if (terminal(r)) {
      ++terminals[id];
    }
    if (r.contains("src_endpoint") && r.contains("dst_endpoint")) {
      EXPECT_FALSE(unspecified(r["src_endpoint"]));
      EXPECT_FALSE(unspecified(r["dst_endpoint"]));
    }
  }
}

// The suite's own namespace (the collector's) joined to a peer namespace by a veth pair.
class ContractNetns : public DaemonNetns {
 protected:
  static void SetUpTestSuite() {
    DaemonNetns::SetUpTestSuite();
    if (!is_root() || !setup_error_.empty()) {
      return;
    }
    peer_ = "sockstate-peer-" + std::to_string(::getpid());
    const std::string script =
        "set -e; ip netns add " + peer_ + "; ip link add sk0 type veth peer name sk1 netns " +
        peer_ + "; ip addr add " + kHere4 + "/24 dev sk0; ip addr add " + kHere6 +
        "/64 dev sk0 nodad; ip link set sk0 up; ip -n " + peer_ + " addr add " + kPeer4 +
        "/24 dev sk1; ip -n " + peer_ + " addr add " + kPeer6 + "/64 dev sk1 nodad; ip -n " +
        peer_ + " link set sk1 up; ip -n " + peer_ + " link set lo up";
    const CommandResult r = run_command(script);
    if (r.exit_code != 0) {
      setup_error_ = "veth peer: " + r.error_output;
    }
  }
  static void TearDownTestSuite() {
    if (!peer_.empty()) {
      (void)run_command("ip netns del " + peer_);
    }
  }

  // Runs f with the calling thread in the peer namespace: sockets made there stay there.
  template <typename F>
  static auto in_peer(F&& f) {
    using R = decltype(f());
    R result{};
    std::thread worker([&] {
      const int ns = ::open(("/run/netns/" + peer_).c_str(), O_RDONLY | O_CLOEXEC);
      EXPECT_GE(ns, 0);
      EXPECT_EQ(::setns(ns, CLONE_NEWNET), 0) << std::strerror(errno);
      ::close(ns);
      result = f();
    });
    worker.join();
    return result;
  }

  // One `sockstate snapshot` in this namespace, its records.
  std::vector<json> snapshot(const std::string& args) const {
    const CommandResult r = run_command(std::string(SOCKSTATE_BINARY) + " snapshot " + args);
    EXPECT_EQ(r.exit_code, 0) << r.error_output;
    std::vector<json> out;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      out.push_back(json::parse(line));
    }
    return out;
  }

  static inline std::string peer_;
};

std::vector<json> on_port(const std::vector<json>& records, int port) {
  std::vector<json> out;
  for (const auto& r : records) {
    const bool src = r.contains("src_endpoint") && r["src_endpoint"].value("port", 0) == port;
    if (dst_port(r) == port || src) {
      out.push_back(r);
    }
  }
  return out;
}

TEST_F(ContractNetns, IntraHostOverNonLoopbackAddressesIsLocal) {
  for (const char* ip : {kHere4, kHere6}) {
    SCOPED_TRACE(ip);
    UniqueFd l = listen_at(ip, 6001);
    UniqueFd c = connect_at(ip, 6001);
    UniqueFd s = accept_one(l.get());
    const auto r = snapshot("--state established --port 6001");
    ASSERT_EQ(r.size(), 2U);
    std::set<int> points;
    for (const auto& x : r) {
      EXPECT_EQ(x["connection_info"]["direction"], "Local") << x.dump();
      EXPECT_EQ(x["connection_info"]["boundary"], "Localhost");
      // Revision 3, rule 2: each record says which end its socket is; rule 3: known.
      EXPECT_EQ(x["is_src_dst_assignment_known"], true) << x.dump();
      points.insert(x["observation_point_id"].get<int>());
      // The client's socket is the source, the server's (port 6001) the destination.
      const bool server = x["unmapped"]["inode"] == socket_inode(s.get());
      EXPECT_EQ(x["observation_point_id"], server ? 2 : 1) << x.dump();
    }
    EXPECT_EQ(points, (std::set<int>{1, 2}));
  }
}

TEST_F(ContractNetns, PerimeterFollowsInternalNetworks) {
  for (const auto& [here, peer] : {std::pair{kHere4, kPeer4}, std::pair{kHere6, kPeer6}}) {
    SCOPED_TRACE(here);
    // Inbound: the peer connects to us. Outbound: we connect to the peer.
    UniqueFd l = listen_at(here, 6002);
    UniqueFd in = in_peer([&] { return connect_at(here, 6002); });
    UniqueFd accepted = accept_one(l.get());
    UniqueFd remote_l = in_peer([&] { return listen_at(peer, 6003); });
    UniqueFd out = connect_at(peer, 6003);

    auto r = snapshot("--state established --port 6002");
    ASSERT_EQ(r.size(), 1U) << "the peer's end is in the other namespace";
    EXPECT_EQ(r[0]["connection_info"]["direction"], "Inbound");
    EXPECT_EQ(r[0]["connection_info"]["boundary"], "External");
    EXPECT_EQ(r[0]["observation_point"], "Destination");
    EXPECT_EQ(r[0]["src_endpoint"]["ip"], peer);
    r = snapshot("--state established --port 6003");
    ASSERT_EQ(r.size(), 1U);
    EXPECT_EQ(r[0]["connection_info"]["direction"], "Outbound");
    EXPECT_EQ(r[0]["observation_point"], "Source");

    const std::string inside = "--internal-network 198.51.100.0/24,2001:db8:51::/64";
    for (const int port : {6002, 6003}) {
      r = snapshot(inside + " --state established --port " + std::to_string(port));
      ASSERT_EQ(r.size(), 1U);
      EXPECT_EQ(r[0]["connection_info"]["direction"], "Lateral") << port;
      EXPECT_EQ(r[0]["connection_info"]["boundary"], "Internal");
    }
  }
}

TEST_F(ContractNetns, DaemonTakesInternalNetworksFromItsConfiguration) {
  start(json{{"internal_networks", json::array({"198.51.100.0/24"})}});
  UniqueFd remote_l = in_peer([&] { return listen_at(kPeer4, 6004); });
  UniqueFd out = connect_at(kPeer4, 6004);
  auto r = wait_for([](const auto& all) { return !with(all, kOpen, 6004).empty(); });
  ASSERT_EQ(with(r, kOpen, 6004).size(), 1U);
  EXPECT_EQ(with(r, kOpen, 6004)[0]["connection_info"]["direction"], "Lateral");
  stop();
}

// The daemon follows the namespace's addresses: one added after it started is this host.
TEST_F(ContractNetns, DaemonKeepsTheHostAddressesCurrent) {
  start(json{{"poll_interval", "200ms"}});
  ASSERT_EQ(run_command("ip addr add 203.0.113.7/32 dev lo").exit_code, 0);
  UniqueFd l = listen_at("203.0.113.7", 6007);
  UniqueFd c = connect_at("203.0.113.7", 6007);
  UniqueFd s = accept_one(l.get());
  auto r = wait_for([](const auto& all) { return with(all, kOpen, 6007).size() >= 2; });
  stop();
  (void)run_command("ip addr del 203.0.113.7/32 dev lo");
  const auto opens = with(r, kOpen, 6007);
  ASSERT_EQ(opens.size(), 2U);
  for (const auto& o : opens) {
    EXPECT_EQ(o["connection_info"]["direction"], "Local") << o.dump();
    EXPECT_EQ(o["connection_info"]["boundary"], "Localhost");
  }
}

TEST_F(ContractNetns, TwoSnapshotsReportALiveConnectionAsTrafficBothTimes) {
  UniqueFd l = listen_at("127.0.0.1", 6005);
  UniqueFd c = connect_at("127.0.0.1", 6005);
  UniqueFd s = accept_one(l.get());
  ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);  // FIN-WAIT-2 / CLOSE-WAIT: still live
  std::this_thread::sleep_for(milliseconds(100));
  for (int run = 0; run < 2; ++run) {
    const auto r = snapshot("--port 6005 --state connected");
    ASSERT_EQ(r.size(), 2U);
    for (const auto& x : r) {
      EXPECT_EQ(x["activity_id"], 6) << x.dump();
      EXPECT_EQ(x["status_id"], 1);
      EXPECT_FALSE(x.contains("traffic"));
      EXPECT_TRUE(x.contains("cumulative_traffic"));
      EXPECT_FALSE(x.contains("start_time"));
    }
  }
}

// A socket made by `nobody` (65534, above UID_MAX of login.defs) is a System user's, not a
// regular User's; device.name is the host name (Splunk's dvc); status_code the state.
TEST_F(ContractNetns, ANobodyListenerIsSystemAndTheDeviceHasAName) {
  // The socket's owner is the creating thread's fsuid (sock_alloc()); setfsuid() is per
  // thread, so the rest of the test process stays root.
  ::setfsuid(65534);
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ::setfsuid(0);
  ASSERT_TRUE(l.valid());
  const sockaddr_in a = loopback(6007);
  ASSERT_EQ(::bind(l.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l.get(), 4), 0);
  const auto r = snapshot("--port 6007 --state listening");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0]["actor"]["user"]["uid"], "65534") << r[0].dump();
  EXPECT_EQ(r[0]["actor"]["user"]["type_id"], 3);
  EXPECT_EQ(r[0]["actor"]["user"]["type"], "System");
  EXPECT_EQ(r[0]["device"]["name"], r[0]["device"]["hostname"]);
  EXPECT_FALSE(r[0]["device"]["name"].get<std::string>().empty());
  EXPECT_EQ(r[0]["status_code"], "LISTEN");
}

TEST_F(ContractNetns, DeviceUidIsTheAppSpecificIdNotTheMachineId) {
  UniqueFd l = listen_at("127.0.0.1", 6006);
  const auto r = snapshot("--state listen --port 6006");
  ASSERT_EQ(r.size(), 1U);
  const std::string uid = r[0]["device"]["uid"];
  std::ifstream in("/etc/machine-id");
  std::string machine_id;
  std::getline(in, machine_id);
  ASSERT_EQ(machine_id.size(), 32U) << "this host has a machine id";
  EXPECT_NE(uid, machine_id);
  EXPECT_EQ(uid.find(machine_id.substr(0, 8)), std::string::npos);
  // systemd's derivation, done independently: HMAC-SHA256 keyed by the machine id over
  // the app id, the first 16 bytes as a v4 UUID.
  const CommandResult want = run_command(
      "/usr/bin/python3 -c 'import hmac,hashlib,sys;"
      "k=bytes.fromhex(open(\"/etc/machine-id\").read().strip());"
      "a=bytes.fromhex(\"2a54fd2202f0451987824b8e17711400\");"
      "d=bytearray(hmac.new(k,a,hashlib.sha256).digest()[:16]);"
      "d[6]=(d[6]&0x0F)|0x40;d[8]=(d[8]&0x3F)|0x80;print(d.hex())'");
  ASSERT_EQ(want.exit_code, 0) << want.error_output;
  EXPECT_EQ(uid + "\n", want.output);
}

// RST aborts of unbound client sockets and of wildcard-accepted server sockets, IPv4 and
// IPv6: the kernel clears the source address; the records keep the real one and the
// flow's Community ID.
TEST_F(ContractNetns, AbortsKeepRealAddressesAndCommunityId) {
  start(json{{"poll_interval", "200ms"}});
  std::vector<UniqueFd> listeners;
  std::uint16_t port = 6010;
  for (const char* wildcard : {"0.0.0.0", "::"}) {
    listeners.push_back(listen_at(wildcard, port));
    const char* target = std::string(wildcard) == "::" ? "::1" : "127.0.0.1";
    UniqueFd client_aborts = connect_at(target, port);
    UniqueFd accepted1 = accept_one(listeners.back().get());
    UniqueFd client = connect_at(target, port);
    UniqueFd server_aborts = accept_one(listeners.back().get());
    auto r = wait_for([&](const auto& all) { return with(all, kOpen, port).size() >= 4; });
    ASSERT_EQ(with(r, kOpen, port).size(), 4U) << "every end polled before the aborts";
    abort_socket(client_aborts);
    abort_socket(server_aborts);
    ++port;
  }
  auto r = wait_for([&](const auto& all) {
    return with(all, kClose, 6010).size() + with(all, kClose, 6011).size() >= 8;
  });
  stop();
  r = records();
  expect_terminal_once(r);
  std::map<std::string, std::string> open_cid;
  for (const int p : {6010, 6011}) {
    for (const auto& o : with(r, kOpen, p)) {
      open_cid[cid(o)] = o["connection_info"]["community_uid"];
    }
    const auto closes = with(r, kClose, p);
    ASSERT_EQ(closes.size(), 4U) << p;
    for (const auto& x : closes) {
      SCOPED_TRACE(x.dump());
      EXPECT_FALSE(unspecified(x["src_endpoint"]));
      EXPECT_FALSE(unspecified(x["dst_endpoint"]));
      ASSERT_TRUE(open_cid.contains(cid(x)));
      EXPECT_EQ(x["connection_info"]["community_uid"], open_cid[cid(x)]);
      EXPECT_FALSE(x["unmapped"].contains("recv_q")) << "no queues from a destroy event";
    }
  }
  expect_valid_ocsf();
}

// Never polled: the aborting end's source comes from the route, marked inferred.
TEST_F(ContractNetns, AnAbortNoPollSawTakesTheRoutesSource) {
  start(json{{"poll_interval", "1h"}, {"baseline", false}});
  UniqueFd l = listen_at("0.0.0.0", 6020);
  UniqueFd c = connect_at(kHere4, 6020);
  UniqueFd s = accept_one(l.get());
  abort_socket(c);
  s.reset();  // reset by the peer, then let go: its own destroy event
  auto r = wait_for([](const auto& all) { return all.size() >= 2; });
  stop();
  r = records();
  expect_terminal_once(r);
  bool inferred = false;
  for (const auto& x : r) {
    SCOPED_TRACE(x.dump());
    if (x["unmapped"].value("src_ip_inferred", false)) {
      inferred = true;
      EXPECT_EQ(x["src_endpoint"]["ip"], kHere4) << "the route's preferred source";
    }
  }
  EXPECT_TRUE(inferred) << "the aborting end had no address left";
  ASSERT_EQ(r.size(), 2U) << "one terminal record per end, nothing else";
  for (const auto& x : r) {
    // No poll saw either begin; the kernel's transitions did, where that source runs.
    EXPECT_EQ(x.contains("start_time"), kernel_events()) << x.dump();
  }
}

TEST_F(ContractNetns, TerminalOnceForSocketsClosingAtStartup) {
  // FIN-WAIT-2 / CLOSE-WAIT, FIN-WAIT-1 / LAST-ACK (FINs dropped), TIME-WAIT, all made
  // before the daemon starts.
  ASSERT_FALSE(
      apply_nft("table inet sockstate_contract {\n chain output {\n"
                "  type filter hook output priority 0;\n"
                "  tcp sport 6031 tcp flags fin drop\n  tcp dport 6031 tcp flags fin drop\n"
                " }\n}\n"));
  UniqueFd l1 = listen_at("127.0.0.1", 6030);
  UniqueFd c1 = connect_at("127.0.0.1", 6030);
  UniqueFd s1 = accept_one(l1.get());
  ASSERT_EQ(::shutdown(c1.get(), SHUT_WR), 0);  // c1 FIN-WAIT-2, s1 CLOSE-WAIT
  UniqueFd l2 = listen_at("127.0.0.1", 6031);
  UniqueFd c2 = connect_at("127.0.0.1", 6031);
  UniqueFd s2 = accept_one(l2.get());
  ASSERT_EQ(::shutdown(c2.get(), SHUT_WR), 0);  // FIN dropped: c2 FIN-WAIT-1
  UniqueFd l3 = listen_at("127.0.0.1", 6032);
  {
    UniqueFd c3 = connect_at("127.0.0.1", 6032);
    UniqueFd s3 = accept_one(l3.get());
    c3.reset();  // the client closes first: TIME-WAIT
    char b;
    ASSERT_EQ(::read(s3.get(), &b, 1), 0);
  }
  std::this_thread::sleep_for(milliseconds(200));
  start(json{{"poll_interval", "200ms"}});
  auto r = wait_for([](const auto& all) { return all.size() >= 8; });
  std::map<int, int> baseline;         // kernel state -> activity
  std::set<std::string> ended_before;  // the baseline's TIME-WAIT: its Close, already
  for (const auto& x : r) {
    baseline[x["unmapped"]["kernel_tcp_state"].get<int>()] = x["activity_id"].get<int>();
    if (x["unmapped"]["kernel_tcp_state"] == 6) {
      EXPECT_TRUE(x.contains("end_time")) << "a terminal record: its end was seen";
      ended_before.insert(cid(x));
    }
  }
  EXPECT_EQ(ended_before.size(), 1U);
  EXPECT_EQ(baseline[5], 6) << "FIN-WAIT-2 is live: Traffic";
  EXPECT_EQ(baseline[8], 6) << "CLOSE-WAIT: Traffic";
  EXPECT_EQ(baseline[4], 6) << "FIN-WAIT-1: Traffic";
  EXPECT_EQ(baseline[6], 2) << "TIME-WAIT: Close";
  // Now everything ends.
  s1.reset();
  c1.reset();
  ASSERT_FALSE(apply_nft("delete table inet sockstate_contract\n"));
  c2.reset();
  s2.reset();
  r = wait_for([&](const auto& all) {
    int closes = 0;
    for (const auto& x : all) {
      closes += (x["activity_id"] == kClose && !ended_before.contains(cid(x))) ? 1 : 0;
    }
    return closes >= 4;
  });
  std::this_thread::sleep_for(milliseconds(1500));  // several polls and the TIME-WAITs
  stop();
  r = records();
  expect_terminal_once(r);
  int ended = 0;
  for (const auto& x : r) {
    if (terminal(x) && !ended_before.contains(cid(x))) {
      EXPECT_TRUE(x.contains("end_time")) << x.dump();
      ++ended;
      EXPECT_FALSE(x.contains("start_time")) << "existed at startup: age unknown";
      EXPECT_FALSE(x.contains("duration"));
    }
  }
  EXPECT_EQ(ended, 4) << "c1, s1, c2, s2 each closed once";
  expect_valid_ocsf();
}

// Every TCP state at startup, both families (the zoo freezes them with nftables), then
// every socket ends at once (RST): one terminal record per socket at most, nothing after
// it, and each live connection's end reported exactly once.
TEST_F(ContractNetns, EveryStateAtStartupEndsOnce) {
  std::string error;
  auto v4 = TcpZoo::create(AF_INET, 7000, &error);
  ASSERT_TRUE(v4) << error;
  auto v6 = TcpZoo::create(AF_INET6, 7000 + TcpZoo::kPortSpan, &error);
  ASSERT_TRUE(v6) << error;
  for (const TcpZoo* zoo : {v4.get(), v6.get()}) {
    const auto missing = zoo->wait_until_settled();
    ASSERT_FALSE(missing) << *missing;
  }
  start(json{{"poll_interval", "200ms"}, {"states", json::array({"all", "bound"})}});
  auto r = wait_for([](const auto& all) { return all.size() >= 40; });
  std::map<int, std::set<int>> baseline;  // kernel state -> activities
  for (const auto& x : r) {
    baseline[x["unmapped"]["kernel_tcp_state"].get<int>()].insert(x["activity_id"].get<int>());
  }
  for (const int state :
       {kTcpEstablished, kTcpFinWait1, kTcpFinWait2, kTcpCloseWait, kTcpLastAck, kTcpClosing}) {
    EXPECT_EQ(baseline[state], std::set<int>{6}) << tcp_state_name(state) << " is live";
  }
  EXPECT_EQ(baseline[kTcpTimeWait], std::set<int>{2});
  EXPECT_EQ(baseline[kTcpSynSent], std::set<int>{1});
  EXPECT_EQ(baseline[kTcpListen], std::set<int>{7});
  std::set<std::string> live;  // sockets whose end is still to come
  for (const auto& x : r) {
    const int state = x["unmapped"]["kernel_tcp_state"].get<int>();
    if (state != kTcpListen && state != kTcpTimeWait && state != kTcpClose &&
        state != kTcpSynRecv && x["unmapped"].contains("inode")) {
      live.insert(cid(x));
    }
  }
  ASSERT_GE(live.size(), 14U) << "seven live states' full sockets, two families";
  v4.reset();
  v6.reset();
  r = wait_for([&](const auto& all) {
    std::set<std::string> ended;
    for (const auto& x : all) {
      if (terminal(x) && live.contains(cid(x))) {
        ended.insert(cid(x));
      }
    }
    return ended.size() == live.size();
  });
  std::this_thread::sleep_for(milliseconds(1000));  // more polls: still nothing more
  stop();
  r = records();
  expect_terminal_once(r);
  std::map<std::string, int> ends;
  for (const auto& x : r) {
    if (terminal(x)) {
      ++ends[cid(x)];
      EXPECT_FALSE(x.contains("start_time")) << "existed at startup: " << x.dump();
    }
  }
  for (const auto& id : live) {
    EXPECT_EQ(ends[id], 1) << id;
  }
  expect_valid_ocsf();
}

TEST_F(ContractNetns, TimedOutConnectHeldByItsApplicationIsOneFail) {
  ASSERT_FALSE(
      apply_nft("table inet sockstate_syn {\n chain input {\n"
                "  type filter hook input priority 0;\n  tcp dport 6040 tcp flags syn drop\n"
                " }\n}\n"));
  start(json{{"poll_interval", "200ms"}, {"traffic_interval", "500ms"}});
  UniqueFd l = listen_at("127.0.0.1", 6040);
  UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  const int one_retry = 1;
  ASSERT_EQ(::setsockopt(c.get(), IPPROTO_TCP, TCP_SYNCNT, &one_retry, sizeof one_retry), 0);
  const sockaddr_in a = loopback(6040);
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), -1);
  auto r = wait_for([](const auto& all) { return !with(all, kOpen, 6040).empty(); });
  ASSERT_EQ(with(r, kOpen, 6040).size(), 1U);
  // SYN, one retry after 1 s, gives up after 3 s; the application still holds it.
  std::this_thread::sleep_for(milliseconds(4500));
  int err = 0;
  socklen_t len = sizeof err;
  ASSERT_EQ(::getsockopt(c.get(), SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, ETIMEDOUT);
  r = records();
  for (const auto& x : on_port(r, 6040)) {
    EXPECT_FALSE(terminal(x)) << "nothing before the application lets go: " << x.dump();
  }
  c.reset();
  r = wait_for([](const auto& all) { return !with(all, kFail, 6040).empty(); });
  std::this_thread::sleep_for(milliseconds(1000));
  stop();
  r = records();
  expect_terminal_once(r);
  const auto fails = with(r, kFail, 6040);
  ASSERT_EQ(fails.size(), 1U);
  EXPECT_EQ(fails[0]["status_id"], 2);
  // Revision 3, rule 4: the Open of a pending handshake is Unknown, its SYN retries are no
  // Traffic, and the Fail says why where the kernel told (its events carry sk_err).
  const auto opens = with(r, kOpen, 6040);
  ASSERT_EQ(opens.size(), 1U);
  EXPECT_EQ(opens[0]["status_id"], 0) << opens[0].dump();
  EXPECT_EQ(opens[0]["status"], "Unknown");
  EXPECT_EQ(with(r, 6, 6040).size(), 0U) << "no Traffic before ESTABLISHED";
  EXPECT_EQ(fails[0].value("status_detail", ""), kernel_events() ? "timeout" : "")
      << fails[0].dump();
  EXPECT_TRUE(fails[0]["actor"].contains("process")) << "the owner the polls saw";
  EXPECT_TRUE(fails[0].contains("start_time")) << "the Open was seen";
  EXPECT_EQ(with(r, kClose, 6040).size(), 0U);
  (void)apply_nft("delete table inet sockstate_syn\n");
}

// Revision 3, rule 1, the case: 100,000 bytes before the first poll that sees the
// connection, then idle. Revision 2 summed this to 0 of 100,000 (its first period began at
// that poll); now each end's traffic sums to the 100,000 its cumulative_traffic says.
TEST_F(ContractNetns, AConnectionBornBetweenPollsSumsExactly) {
  start(json{{"poll_interval", "1s"}, {"traffic_interval", "1s"}});
  UniqueFd l = listen_at("127.0.0.1", 6055);
  UniqueFd c = connect_at("127.0.0.1", 6055);
  UniqueFd s = accept_one(l.get());
  write_all(c.get(), 100000);
  read_exactly(s.get(), 100000);
  auto r = wait_for([](const auto& all) { return with(all, kOpen, 6055).size() >= 2; });
  std::this_thread::sleep_for(milliseconds(2500));  // idle over two polls
  c.reset();
  char b;
  ASSERT_EQ(::read(s.get(), &b, 1), 0);
  s.reset();
  r = wait_for([](const auto& all) { return with(all, kClose, 6055).size() >= 2; });
  stop();
  r = records();
  expect_terminal_once(r);
  const auto by_socket = bytes_out_by_socket(on_port(r, 6055));
  ASSERT_EQ(by_socket.size(), 2U) << "one per end";
  for (const auto& [id, bytes] : by_socket) {
    EXPECT_EQ(bytes.total, 100000) << id;
    EXPECT_EQ(bytes.sum, 100000) << id << ": traffic sums to the totals";
  }
  expect_valid_ocsf();
}

TEST_F(ContractNetns, TrafficAddsUpToWhatMovedWhileWatched) {
  start(json{{"poll_interval", "200ms"}, {"traffic_interval", "500ms"}});
  UniqueFd l = listen_at("127.0.0.1", 6050);
  UniqueFd c = connect_at("127.0.0.1", 6050);
  UniqueFd s = accept_one(l.get());
  write_all(c.get(), 100);
  read_exactly(s.get(), 100);
  auto r = wait_for([](const auto& all) { return with(all, kOpen, 6050).size() >= 2; });
  std::map<std::string, std::int64_t> at_open;
  for (const auto& o : with(r, kOpen, 6050)) {
    at_open[cid(o)] = o["cumulative_traffic"]["bytes_out"].get<std::int64_t>();
  }
  for (int i = 0; i < 6; ++i) {
    write_all(c.get(), 1000);
    read_exactly(s.get(), 1000);
    std::this_thread::sleep_for(milliseconds(300));
  }
  std::this_thread::sleep_for(milliseconds(1200));  // idle: no zero-delta Traffic
  c.reset();
  char b;
  ASSERT_EQ(::read(s.get(), &b, 1), 0);
  s.reset();
  r = wait_for([](const auto& all) { return with(all, kClose, 6050).size() >= 2; });
  stop();
  r = records();
  expect_terminal_once(r);
  for (const auto& x : on_port(r, 6050)) {
    EXPECT_TRUE(!x.contains("traffic") || x["traffic"]["bytes"].get<std::int64_t>() +
                                                  x["traffic"]["packets"].get<std::int64_t>() >
                                              0)
        << "no zero-delta Traffic: " << x.dump();
  }
  auto by_socket = bytes_out_by_socket(on_port(r, 6050));
  ASSERT_EQ(at_open.size(), 2U);
  for (const auto& [id, open] : at_open) {
    EXPECT_EQ(by_socket[id].total, 6100) << id;
    // Born under the daemon: its first period counts from its start (revision 3, rule 1),
    // not from the totals its Open saw.
    EXPECT_EQ(by_socket[id].sum, 6100)
        << id << ": everything it moved, " << open << " before its Open";
  }
  EXPECT_GE(with(r, 6, 6050).size(), 2U) << "Traffic records while data moved";
  expect_valid_ocsf();
}

}  // namespace
}  // namespace sockstate::testing

// `sockstate snapshot` of UDP sockets held by this process in its own network namespace:
// bound (IPv4, IPv6, wildcard, a specific address, dual-stack) and connected, each reported
// once with the right endpoints, activity, owner and Community ID, with `ss -uanp` as the
// oracle and Python's hashlib as an independent Community ID. Needs root; skips without it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sockstate/common/fd.h"
#include "support/netns.h"

namespace sockstate::testing {
namespace {

using nlohmann::json;

struct UdpSocket {
  std::string local;   // "ip:port" as records write it
  std::string remote;  // "" when not connected
  Fd fd;
};

// A UDP socket bound to ip:port (AF_INET6 when ip has a ':'), connected to peer:peer_port
// when peer_port is not 0; v6only 0 makes a wildcard IPv6 socket dual-stack.
Fd udp_socket(const std::string& ip, std::uint16_t port, const std::string& peer = {},
              std::uint16_t peer_port = 0, int v6only = 1) {
  const bool v6 = ip.find(':') != std::string::npos;
  Fd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid());
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto fill = [&](const std::string& a, std::uint16_t p) {
    ss = {};
    if (v6) {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
      sa->sin6_family = AF_INET6;
      sa->sin6_port = htons(p);
      EXPECT_EQ(::inet_pton(AF_INET6, a.c_str(), &sa->sin6_addr), 1) << a;
      len = sizeof(sockaddr_in6);
    } else {
      auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(p);
      EXPECT_EQ(::inet_pton(AF_INET, a.c_str(), &sa->sin_addr), 1) << a;
      len = sizeof(sockaddr_in);
    }
  };
  if (v6) {
    EXPECT_EQ(::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)), 0);
  }
  fill(ip, port);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << ip << ":" << port;
  if (peer_port != 0) {
    fill(peer, peer_port);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << peer;
  }
  return fd;
}

std::vector<json> records_of(const std::string& args, int* exit_code = nullptr) {
  const CommandResult res = run_command(std::string(SOCKSTATE_BINARY) + " snapshot " + args);
  if (exit_code != nullptr) {
    *exit_code = res.exit_code;
  } else {
    EXPECT_EQ(res.exit_code, 0) << res.error_output;
  }
  std::vector<json> out;
  std::istringstream lines(res.output);
  for (std::string line; std::getline(lines, line);) {
    out.push_back(json::parse(line));
  }
  return out;
}

std::string end_of(const json& r, const char* key) {
  if (!r.contains(key)) {
    return "";
  }
  const std::string ip = r[key]["ip"].get<std::string>();
  const std::string port = std::to_string(r[key]["port"].get<int>());
  return ip.find(':') != std::string::npos ? "[" + ip + "]:" + port : ip + ":" + port;
}

// The spec's Community ID v1 (seed 0), by Python's hashlib: independent of ours.
std::string community_id(const std::string& src, int sport, const std::string& dst, int dport) {
  const std::string py =
      "import base64,hashlib,socket,struct,sys\n"
      "s,sp,d,dp=sys.argv[1],int(sys.argv[2]),sys.argv[3],int(sys.argv[4])\n"
      "fam=socket.AF_INET6 if ':' in s else socket.AF_INET\n"
      "a,b=socket.inet_pton(fam,s),socket.inet_pton(fam,d)\n"
      "if (a,sp)>(b,dp): a,b,sp,dp=b,a,dp,sp\n"
      "h=hashlib.sha1(struct.pack('!H',0)+a+b+struct.pack('!BB',17,0)+struct.pack('!HH',sp,dp))\n"
      "print('1:'+base64.b64encode(h.digest()).decode())\n";
  const CommandResult res = run_command("/usr/bin/python3 - " + src + " " + std::to_string(sport) +
                                            " " + dst + " " + std::to_string(dport),
                                        py);
  EXPECT_EQ(res.exit_code, 0) << res.error_output;
  std::string id = res.output;
  while (!id.empty() && id.back() == '\n') {
    id.pop_back();
  }
  return id;
}

class UdpSnapshotNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!is_root()) {
      return;
    }
    if (auto err = enter_private_netns()) {
      setup_error_ = *err;
      return;
    }
    auto hold = [](std::string local, std::string remote, Fd fd) {
      held_.push_back(UdpSocket{std::move(local), std::move(remote), std::move(fd)});
    };
    hold("127.0.0.1:5301", "", udp_socket("127.0.0.1", 5301));  // a specific address
    hold("0.0.0.0:5302", "", udp_socket("0.0.0.0", 5302));      // IPv4 wildcard
    hold("[::1]:5303", "", udp_socket("::1", 5303));            // IPv6
    hold("[::]:5304", "", udp_socket("::", 5304, {}, 0, 0));    // dual-stack wildcard
    hold("127.0.0.1:5305", "127.0.0.1:5301", udp_socket("127.0.0.1", 5305, "127.0.0.1", 5301));
    hold("[::1]:5306", "[::1]:5303", udp_socket("::1", 5306, "::1", 5303));
    // A dual-stack socket connected to an IPv4 peer: written as IPv4 (the contract).
    hold("127.0.0.1:5307", "127.0.0.1:5302", udp_socket("::", 5307, "::ffff:127.0.0.1", 5302, 0));
  }
  static void TearDownTestSuite() { held_.clear(); }
  void SetUp() override {
    if (!is_root()) {
      GTEST_SKIP() << "needs root (network namespaces)";
    }
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static inline std::string setup_error_;
  static inline std::vector<UdpSocket> held_;
};

// Every socket once, with its ends as the contract says: a bound one is a Listen with only
// its local end (dst), a connected one a Traffic from its local end (src) to its peer; no
// TCP state; its owner is this process; a connected one's Community ID is protocol 17's.
TEST_F(UdpSnapshotNetns, EachSocketOnceWithItsEndsOwnerAndCommunityId) {
  const auto records = records_of("--protocol udp --process");
  std::multiset<std::string> got;
  std::multiset<std::string> want;
  for (const auto& s : held_) {
    want.insert(s.remote.empty() ? ">" + s.local : s.local + ">" + s.remote);
  }
  for (const json& r : records) {
    SCOPED_TRACE(r.dump());
    got.insert(end_of(r, "src_endpoint") + ">" + end_of(r, "dst_endpoint"));
    EXPECT_EQ(r["connection_info"]["protocol_num"], 17);
    EXPECT_EQ(r["connection_info"]["protocol_name"], "udp");
    EXPECT_FALSE(r["unmapped"].contains("tcp_state_id"));
    EXPECT_FALSE(r.contains("cumulative_traffic")) << "the kernel counts no UDP bytes";
    EXPECT_EQ(r["actor"]["process"]["pid"], static_cast<int>(::getpid()));
    const bool connected = r.contains("src_endpoint");
    EXPECT_EQ(r["activity_id"], connected ? 6 : 7);
    if (connected) {
      EXPECT_TRUE(r["is_src_dst_assignment_known"].get<bool>());
      EXPECT_EQ(r["observation_point_id"], 1) << "the connected socket is the source";
      EXPECT_EQ(r["connection_info"]["community_uid"],
                community_id(r["src_endpoint"]["ip"].get<std::string>(),
                             r["src_endpoint"]["port"].get<int>(),
                             r["dst_endpoint"]["ip"].get<std::string>(),
                             r["dst_endpoint"]["port"].get<int>()));
    } else {
      EXPECT_FALSE(r["connection_info"].contains("community_uid"));
    }
  }
  EXPECT_EQ(got, want);
}

// ss -uanp, the oracle: the same sockets (local and peer ends), the same holder.
TEST_F(UdpSnapshotNetns, SameSocketsAsSs) {
  const CommandResult ss = run_command("ss -uanpH");
  ASSERT_EQ(ss.exit_code, 0) << ss.error_output;
  std::multiset<std::string> oracle;
  std::istringstream lines(ss.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream f(line);
    std::string state, recv_q, send_q, local, peer, users;
    f >> state >> recv_q >> send_q >> local >> peer >> users;
    EXPECT_NE(users.find("pid=" + std::to_string(::getpid())), std::string::npos) << line;
    // ss writes a dual-stack socket's IPv4 peer as [::ffff:a.b.c.d], the wildcard as *.
    oracle.insert(state + " " + local.substr(local.rfind(':') + 1) + " " +
                  (peer.ends_with(":*") ? "*" : peer.substr(peer.rfind(':') + 1)));
  }
  std::multiset<std::string> ours;
  for (const json& r : records_of("--protocol udp --process")) {
    const bool connected = r.contains("src_endpoint");
    const json& local = connected ? r["src_endpoint"] : r["dst_endpoint"];
    ours.insert(std::string(connected ? "ESTAB" : "UNCONN") + " " +
                std::to_string(local["port"].get<int>()) + " " +
                (connected ? std::to_string(r["dst_endpoint"]["port"].get<int>()) : "*"));
  }
  EXPECT_EQ(ours, oracle);
  EXPECT_EQ(ours.size(), held_.size());
}

// --state listen is the bound ones, established the connected ones; a TCP-only state has
// no UDP socket; --protocol tcp none of them; the port filter runs in the kernel for UDP too.
TEST_F(UdpSnapshotNetns, FiltersApplyToUdp) {
  EXPECT_EQ(records_of("--protocol udp --state listen").size(), 4U);
  EXPECT_EQ(records_of("--protocol udp --state established").size(), 3U);
  EXPECT_EQ(records_of("--protocol udp --state connected").size(), 3U);
  EXPECT_TRUE(records_of("--protocol udp --state time-wait").empty());
  EXPECT_TRUE(records_of("--protocol tcp").empty()) << "this namespace holds no TCP socket";
  EXPECT_EQ(records_of("--state listen").size(), 4U) << "both protocols by default";
  // 5301 bound, and 5305 connected to it.
  EXPECT_EQ(records_of("--protocol udp --port 5301").size(), 2U);
  EXPECT_EQ(records_of("--protocol udp --family inet6").size(), 4U);  // 5303, 5304, 5306, 5307
  int code = 0;
  records_of("--protocol sctp", &code);
  EXPECT_EQ(code, 2) << "an unknown protocol is a usage error";
}

// The table says which protocol, and UDP's states as ss does.
TEST_F(UdpSnapshotNetns, TableShowsTheProtocol) {
  const CommandResult res =
      run_command(std::string(SOCKSTATE_BINARY) + " snapshot --protocol udp --format table");
  ASSERT_EQ(res.exit_code, 0) << res.error_output;
  std::istringstream lines(res.output);
  std::string header;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("Netid", 0), 0U) << header;
  std::map<std::string, int> states;
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.rfind("udp ", 0), 0U) << line;
    std::istringstream f(line);
    std::string netid, state;
    f >> netid >> state;
    ++states[state];
  }
  EXPECT_EQ(states["UNCONN"], 4);
  EXPECT_EQ(states["ESTAB"], 3);
}

// Every record passes the project's check in each version mode (which requires a TCP
// state of TCP records only: README, UDP records).
TEST_F(UdpSnapshotNetns, EveryModePassesTheCheck) {
  for (const char* v : {"1.8.0", "1.5.0", "1.1.0"}) {
    const std::string path = ::testing::TempDir() + "udp-snapshot-" + v + ".jsonl";
    const CommandResult res = run_command(std::string(SOCKSTATE_BINARY) +
                                          " snapshot --ocsf-version " + v + " --output " + path);
    ASSERT_EQ(res.exit_code, 0) << res.error_output;
    const CommandResult check =
        run_command(std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK +
                    " --ocsf-version " + v + " --require-tcp-state " + path);
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_NE(check.output.find(std::to_string(held_.size()) + " passed, 0 failed"),
              std::string::npos)
        << check.output;
  }
}

}  // namespace
}  // namespace sockstate::testing

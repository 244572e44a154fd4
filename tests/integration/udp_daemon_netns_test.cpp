// `sockstate run` and UDP (issue 21) against real sockets in the test's own network
// namespace: a bound socket's Listen, connect() and connect(AF_UNSPEC) as State Changes,
// one Close; 1,000 sockets that live between two polls, each closed once from its destroy
// event; a DNS-like burst of 20,000 sockets in about a second, what is not written on its
// own summarised and everything counted. Needs root.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "support/daemon_harness.h"
#include "support/unique_fd.h"

namespace sockstate::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

UniqueFd udp_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid());
  return fd;
}

void bind_to(int fd, std::uint16_t port) {
  const sockaddr_in a = loopback(port);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0) << port;
}

void connect_udp(int fd, std::uint16_t port) {
  const sockaddr_in a = loopback(port);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0) << port;
}

bool is_udp(const json& r) {
  return r["connection_info"]["protocol_num"] == 17;
}

std::vector<json> about(const std::vector<json>& all, const std::string& correlation_uid) {
  std::vector<json> out;
  for (const auto& r : all) {
    if (r["metadata"].value("correlation_uid", "") == correlation_uid) {
      out.push_back(r);
    }
  }
  return out;
}

// The value of `key` in the daemon's last stats line (the one it logs at stop).
std::uint64_t last_stat(const std::string& log, const std::string& key) {
  const auto at = log.rfind("stats:");
  EXPECT_NE(at, std::string::npos) << log;
  if (at == std::string::npos) {
    return 0;
  }
  const std::string line = log.substr(at, log.find('\n', at) - at);
  std::smatch m;
  const std::regex re("[ .]" + key + "=([0-9]+)");
  EXPECT_TRUE(std::regex_search(line, m, re)) << key << " in " << line;
  return m.empty() ? 0 : std::stoull(m[1]);
}

TEST_F(DaemonNetns, UdpSocketListensConnectsDisconnectsAndClosesOnce) {
  start(json{{"poll_interval", "200ms"}});
  constexpr std::uint16_t kPort = 5301;
  constexpr std::uint16_t kPeer = 5399;
  UniqueFd peer = udp_socket();
  bind_to(peer.get(), kPeer);
  UniqueFd s = udp_socket();
  bind_to(s.get(), kPort);
  auto r = wait_for([&](const auto& all) { return !with(all, kListen, kPort).empty(); });
  const auto listens = with(r, kListen, kPort);
  ASSERT_EQ(listens.size(), 1U);
  const std::string id = listens[0]["metadata"]["correlation_uid"];
  EXPECT_TRUE(is_udp(listens[0]));
  EXPECT_EQ(listens[0]["connection_info"]["protocol_name"], "udp");

  connect_udp(s.get(), kPeer);
  r = wait_for([&](const auto& all) { return about(all, id).size() >= 2; });
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  ASSERT_EQ(::connect(s.get(), &unspec, sizeof unspec), 0);
  r = wait_for([&](const auto& all) { return about(all, id).size() >= 3; });
  s.reset();
  r = wait_for([&](const auto& all) { return about(all, id).size() >= 4; });
  std::this_thread::sleep_for(milliseconds(700));  // polls that might write more: none must
  stop();
  const auto mine = about(records(), id);
  ASSERT_EQ(mine.size(), 4U);
  EXPECT_EQ(mine[0]["activity_id"], kListen);
  EXPECT_EQ(mine[1]["activity_id"], kOther);  // State Change: connected
  EXPECT_EQ(mine[1]["activity_name"], "State Change");
  EXPECT_EQ(mine[1]["src_endpoint"]["port"], kPort) << "the connected socket initiated";
  EXPECT_EQ(mine[1]["dst_endpoint"]["port"], kPeer);
  EXPECT_EQ(mine[1]["message"],
            "udp 127.0.0.1:5301 -> 127.0.0.1:5399 connected (State Change from unconnected)");
  EXPECT_EQ(mine[2]["activity_id"], kOther);  // disconnected: a listener again
  EXPECT_EQ(dst_port(mine[2]), kPort);
  EXPECT_EQ(mine[3]["activity_id"], kClose);
  EXPECT_EQ(mine[3]["status_id"], 1);
  for (const auto& x : mine) {
    EXPECT_TRUE(is_udp(x)) << x.dump();
    EXPECT_FALSE(x["unmapped"].contains("tcp_state_id")) << x.dump();
  }
  expect_valid_ocsf();
}

// connect(AF_UNSPEC) on a socket whose port the kernel picked unhashes it while it lives
// (the kernel's __udp_disconnect()): no dump shows it, and no Close is written until its
// destroy event, however many polls miss it; connected again, it is the same socket.
TEST_F(DaemonNetns, AutoBoundUdpSocketThatDisconnectsIsClosedOnceByItsEvent) {
  start(json{{"poll_interval", "200ms"}});
  constexpr std::uint16_t kPeer = 5398;
  UniqueFd peer = udp_socket();
  bind_to(peer.get(), kPeer);
  UniqueFd s = udp_socket();
  connect_udp(s.get(), kPeer);  // the kernel picks its port
  auto r = wait_for([&](const auto& all) { return !with(all, kOpen, kPeer).empty(); });
  const std::string id = with(r, kOpen, kPeer)[0]["metadata"]["correlation_uid"];
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  ASSERT_EQ(::connect(s.get(), &unspec, sizeof unspec), 0);
  std::this_thread::sleep_for(milliseconds(1200));  // six polls that do not find it
  EXPECT_EQ(about(records(), id).size(), 1U) << "no Close while it lives";
  connect_udp(s.get(), kPeer);
  std::this_thread::sleep_for(milliseconds(600));
  s.reset();
  r = wait_for([&](const auto& all) { return about(all, id).size() >= 2; });
  std::this_thread::sleep_for(milliseconds(600));
  stop();
  const auto mine = about(records(), id);
  ASSERT_EQ(mine.size(), 2U);
  EXPECT_EQ(mine[0]["activity_id"], kOpen);
  EXPECT_EQ(mine[1]["activity_id"], kClose);
}

// Disconnected and closed while no poll could see it (unhashed): its destroy event has
// no peer and no local port; its Close is the local end's, with the port the polls saw,
// and valid OCSF (no empty endpoint).
TEST_F(DaemonNetns, UdpSocketDisconnectedThenClosedEndsWithItsLocalEnd) {
  start(json{{"poll_interval", "200ms"}});
  constexpr std::uint16_t kPeer = 5397;
  UniqueFd peer = udp_socket();
  bind_to(peer.get(), kPeer);
  UniqueFd s = udp_socket();
  connect_udp(s.get(), kPeer);
  auto r = wait_for([&](const auto& all) { return !with(all, kOpen, kPeer).empty(); });
  const json open = with(r, kOpen, kPeer)[0];
  const std::string id = open["metadata"]["correlation_uid"];
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  ASSERT_EQ(::connect(s.get(), &unspec, sizeof unspec), 0);
  s.reset();
  r = wait_for([&](const auto& all) { return about(all, id).size() >= 2; });
  stop();
  const auto mine = about(records(), id);
  ASSERT_EQ(mine.size(), 2U);
  EXPECT_EQ(mine[1]["activity_id"], kClose);
  EXPECT_EQ(mine[1]["dst_endpoint"]["port"], open["src_endpoint"]["port"]) << mine[1].dump();
  expect_valid_ocsf();
}

TEST_F(DaemonNetns, ThousandUdpSocketsBetweenTwoPollsCloseOnceEach) {
  // One poll at startup and none for an hour: every socket lives between two polls.
  constexpr std::uint16_t kServer = 5302;
  constexpr int kSockets = 1000;
  UniqueFd server = udp_socket();
  bind_to(server.get(), kServer);
  start(json{{"poll_interval", "1h"}, {"stats_interval", "1h"}});
  wait_for([&](const auto& all) { return !with(all, kListen, kServer).empty(); });
  for (int i = 0; i < kSockets; ++i) {
    UniqueFd c = udp_socket();
    connect_udp(c.get(), kServer);
    ASSERT_EQ(::send(c.get(), "q", 1, 0), 1);
  }
  EXPECT_TRUE(wait_for_lines(1 + kSockets, milliseconds(30000)));
  std::this_thread::sleep_for(milliseconds(500));
  stop();
  const auto r = records();
  const auto closes = with(r, kClose, kServer);
  std::set<std::string> ids;
  for (const auto& x : closes) {
    EXPECT_TRUE(is_udp(x));
    EXPECT_FALSE(x.contains("count")) << "within the default limit: no summary";
    EXPECT_TRUE(ids.insert(x["metadata"]["correlation_uid"].get<std::string>()).second)
        << "duplicate close " << x.dump();
  }
  EXPECT_EQ(closes.size(), static_cast<std::size_t>(kSockets));
  EXPECT_TRUE(with(r, kOpen, kServer).empty()) << "no poll saw them";
  const std::string log = file(dir_ + "/stderr");
  EXPECT_EQ(last_stat(log, "overflows"), 0U) << log;
  EXPECT_EQ(last_stat(log, "destroy_events_dropped"), 0U) << log;
  expect_valid_ocsf();
}

// A destroy listener with a small buffer while the daemon reads nothing: the kernel drops
// UDP destroy events. The kernel keeps no count of UDP sockets made, but it counts each
// message it could not queue (the listener's sk_drops): every socket is closed once in the
// records or counted in destroy_events_dropped, exactly.
TEST_F(DaemonNetns, UdpOverflowIsCountedExactly) {
  constexpr std::uint16_t kServer = 5303;
  constexpr int kSockets = 3000;
  UniqueFd server = udp_socket();
  bind_to(server.get(), kServer);
  start(json{{"poll_interval", "1h"},
             {"stats_interval", "1h"},
             {"event_buffer", "64KiB"},
             {"short_lived_per_second", {{"udp", 0}}}});
  wait_for([&](const auto& all) { return !with(all, kListen, kServer).empty(); });
  ASSERT_TRUE(daemon_->signal(SIGSTOP));
  for (int i = 0; i < kSockets; ++i) {
    UniqueFd c = udp_socket();
    connect_udp(c.get(), kServer);
  }
  const std::uint64_t kernel_drops = await_destroy_drops();
  ASSERT_GT(kernel_drops, 0U) << "the kernel dropped no event for the stopped daemon";
  ASSERT_TRUE(daemon_->signal(SIGCONT));
  std::this_thread::sleep_for(milliseconds(2000));
  stop();
  const auto closes = with(records(), kClose, kServer);
  std::set<std::string> ids;
  for (const auto& x : closes) {
    EXPECT_TRUE(ids.insert(x["metadata"]["correlation_uid"].get<std::string>()).second);
  }
  const std::string log = file(dir_ + "/stderr");
  const std::uint64_t dropped = last_stat(log, "destroy_events_dropped");
  EXPECT_EQ(dropped, kernel_drops) << "the kernel's own count";
  EXPECT_GT(last_stat(log, "overflows"), 0U) << log;
  EXPECT_EQ(closes.size() + dropped, static_cast<std::uint64_t>(kSockets)) << log;
  RecordProperty("closes", std::to_string(closes.size()));
  RecordProperty("dropped", std::to_string(dropped));
}

// A resolver's socket per query (socket, connect, send, recv, close) to a server on :53, 20,000
// in about a second: at most short_lived_per_second (default 1,000 for UDP) Closes of their own
// a second, the rest in per-peer summaries whose count, with what the kernel dropped, makes
// up every socket; no sink drops anything.
TEST_F(DaemonNetns, UdpDnsBurstIsSummarisedAndCounted) {
  constexpr std::uint16_t kDns = 53;
  constexpr int kQueries = 20000;
  UniqueFd server = udp_socket();
  bind_to(server.get(), kDns);
  std::atomic<bool> done{false};
  std::thread responder([&] {
    timeval tv{0, 100000};
    ::setsockopt(server.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::array<char, 64> buf{};
    while (!done) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t n = ::recvfrom(server.get(), buf.data(), buf.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &len);
      if (n > 0) {
        (void)::sendto(server.get(), buf.data(), static_cast<std::size_t>(n), 0,
                       reinterpret_cast<const sockaddr*>(&from), len);
      }
    }
  });
  start(json{{"poll_interval", "1h"}, {"stats_interval", "1h"}});
  wait_for([&](const auto& all) { return !with(all, kListen, kDns).empty(); });
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kQueries; ++i) {
    UniqueFd c = udp_socket();
    connect_udp(c.get(), kDns);
    ASSERT_EQ(::send(c.get(), "query", 5, 0), 5);
    std::array<char, 64> answer{};
    timeval tv{1, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::recv(c.get(), answer.data(), answer.size(), 0), 5);
  }
  const auto burst_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::this_thread::sleep_for(milliseconds(2500));  // the last second's summaries are due
  stop();
  done = true;
  responder.join();
  const auto r = records();
  std::size_t individual = 0;
  std::uint64_t summarised = 0;
  std::size_t summaries = 0;
  std::set<std::string> ids;
  for (const auto& x : with(r, kClose, kDns)) {
    ASSERT_TRUE(is_udp(x));
    if (x.contains("count")) {
      ++summaries;
      summarised += x["count"].get<std::uint64_t>();
      EXPECT_FALSE(x["src_endpoint"].contains("port")) << x.dump();
      EXPECT_FALSE(x["metadata"].contains("correlation_uid")) << x.dump();
      EXPECT_LE(x["start_time"].get<std::int64_t>(), x["end_time"].get<std::int64_t>());
    } else {
      ++individual;
      EXPECT_TRUE(ids.insert(x["metadata"]["correlation_uid"].get<std::string>()).second)
          << "duplicate close " << x.dump();
    }
  }
  const std::string log = file(dir_ + "/stderr");
  const std::uint64_t dropped = last_stat(log, "destroy_events_dropped");
  const auto seconds = static_cast<std::size_t>(burst_ms / 1000 + 1);
  RecordProperty("burst_ms", std::to_string(burst_ms));
  RecordProperty("individual", std::to_string(individual));
  RecordProperty("summarised", std::to_string(summarised));
  RecordProperty("summaries", std::to_string(summaries));
  RecordProperty("dropped", std::to_string(dropped));
  EXPECT_LE(individual, 1000U * (seconds + 1)) << burst_ms << " ms";
  EXPECT_GT(summarised, 0U) << "the burst was not over the limit: the test proves nothing ("
                            << burst_ms << " ms)";
  EXPECT_EQ(individual + summarised + dropped, static_cast<std::uint64_t>(kQueries)) << log;
  EXPECT_EQ(last_stat(log, "short_lived_summarised"), summarised) << log;
  EXPECT_EQ(last_stat(log, "summary_records"), summaries) << log;
  EXPECT_EQ(last_stat(log, "dropped"), 0U) << "a sink dropped records: " << log;
  expect_valid_ocsf();
}

// Every kind of UDP record the daemon writes (Listen, Open, State Change, Close, a summary
// Close with its count), in each OCSF version mode, through the checker for that version.
class UdpEveryMode : public DaemonNetns, public ::testing::WithParamInterface<const char*> {};

TEST_P(UdpEveryMode, EveryUdpRecordKindPassesItsVersionsCheck) {
  const std::string version = GetParam();
  constexpr std::uint16_t kServer = 5304;
  start(json{{"ocsf_version", version},
             {"poll_interval", "200ms"},
             {"short_lived_per_second", {{"udp", 10}}}});
  UniqueFd server = udp_socket();
  bind_to(server.get(), kServer);  // Listen
  UniqueFd client = udp_socket();
  connect_udp(client.get(), kServer);  // Open
  UniqueFd later = udp_socket();
  bind_to(later.get(), kServer + 1);
  // By name: 1.1.0 has no Listen activity id (it is 99 Other there).
  const auto listening = [&](const std::vector<json>& all) {
    return std::any_of(all.begin(), all.end(), [](const json& x) {
      return x["activity_name"] == "Listen" && dst_port(x) == kServer + 1;
    });
  };
  ASSERT_TRUE(listening(wait_for(listening)));
  connect_udp(later.get(), kServer);  // State Change
  wait_for([&](const auto& all) {
    return std::any_of(all.begin(), all.end(),
                       [](const json& x) { return x["activity_name"] == "State Change"; });
  });
  for (int i = 0; i < 100; ++i) {  // short-lived: 10 Closes of their own, 90 in a summary
    UniqueFd c = udp_socket();
    connect_udp(c.get(), kServer);
  }
  client.reset();
  later.reset();
  server.reset();
  std::this_thread::sleep_for(milliseconds(1500));  // the second's summary is due
  stop();
  std::set<std::string> kinds;
  std::uint64_t summarised = 0;
  for (const auto& x : records()) {
    EXPECT_EQ(x["metadata"]["version"], version);
    EXPECT_TRUE(is_udp(x)) << x.dump();
    kinds.insert(x["activity_name"].get<std::string>() + (x.contains("count") ? " (summary)" : ""));
    summarised += x.value("count", 0U);
  }
  EXPECT_EQ(kinds,
            (std::set<std::string>{"Listen", "Open", "State Change", "Close", "Close (summary)"}));
  EXPECT_EQ(summarised, 90U);
  expect_valid_ocsf({}, version);
}

INSTANTIATE_TEST_SUITE_P(Versions, UdpEveryMode, ::testing::Values("1.8.0", "1.5.0", "1.1.0"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return "v" + name;
                         });

}  // namespace
}  // namespace sockstate::testing

// The daemon with the kernel-event source (BPF tracepoints beside sock_diag), against the
// real kernel and real short-lived processes: every connection's owner, also when it lived
// between two polls and its process has exited; start_time from the transition; an
// abort's real bytes and port; losses of a ring buffer too small; the fallback.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "support/daemon_harness.h"

namespace sockstate::testing {
namespace {

using std::chrono::milliseconds;

std::int64_t now_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Accepts `count` connections on `listener`, reads each to its end and closes it.
class Acceptor {
 public:
  Acceptor(int listener, int count)
      : thread_([this, listener, count] {
          for (int i = 0; i < count; ++i) {
            UniqueFd s(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
            if (!s.valid()) {
              return;
            }
            char buf[65536];
            while (::read(s.get(), buf, sizeof buf) > 0) {
            }
            ++accepted_;
          }
        }) {}
  ~Acceptor() { join(); }
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;
  int join() {
    if (thread_.joinable()) {
      thread_.join();
    }
    return accepted_.load();
  }

 private:
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

int src_port(const json& r) {
  return r.contains("src_endpoint") ? r["src_endpoint"].value("port", -1) : -1;
}

class KernelAttribution : public DaemonNetns {
 protected:
  void SetUp() override {
    DaemonNetns::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    if (!SOCKSTATE_HAVE_BPF) {
      GTEST_SKIP() << "built without the kernel-event source (SOCKSTATE_BPF)";
    }
    if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
      GTEST_SKIP() << "this kernel has no BTF: the kernel-event source cannot load";
    }
    if (test_bpf_mode() == "off") {
      GTEST_SKIP() << "the kernel-event source's own tests (SOCKSTATE_TEST_BPF=off)";
    }
  }

  // The daemon with the source required ("on": it does not start without it), at polls
  // too far apart to see the connections the tests make.
  void start_exact(json config = json::object()) {
    config["bpf"] = "on";
    config["baseline"] = false;
    if (!config.contains("poll_interval")) {
      config["poll_interval"] = "10s";
    }
    start(config);
    ASSERT_TRUE(kernel_events()) << file(dir_ + "/stderr");
  }

  std::string stats_after_stop() const {
    const std::string log = file(dir_ + "/stderr");
    const auto at = log.rfind("stats: ");
    return at == std::string::npos ? std::string() : log.substr(at, log.find('\n', at) - at);
  }

  static std::uint64_t stat_value(const std::string& line, const std::string& key) {
    const auto at = line.find(" " + key + "=");
    return at == std::string::npos ? 0 : std::stoull(line.substr(at + key.size() + 2));
  }
};

TEST_F(KernelAttribution, ShortLivedProcessesEveryCloseNamesItsOwner) {
  constexpr int kPort = 6601, kProcesses = 10, kEach = 100;
  start_exact();
  UniqueFd l = listen_on(kPort);
  Acceptor acceptor(l.get(), kProcesses * kEach);
  char real[PATH_MAX];
  ASSERT_NE(::realpath(SOCKSTATE_TEST_CONNECTOR, real), nullptr);
  std::map<int, int> expected;  // pid -> connections
  for (int i = 0; i < kProcesses; ++i) {
    std::string error;
    auto p = BackgroundProcess::start(
        {SOCKSTATE_TEST_CONNECTOR, std::to_string(kPort), std::to_string(kEach), "64"}, {},
        "/dev/null", "/dev/null", &error);
    ASSERT_TRUE(p) << error;
    const int pid = p->pid();
    ASSERT_EQ(p->wait(milliseconds(10000)), std::optional<int>(0)) << "connector " << i;
    expected[pid] = kEach;
  }
  ASSERT_EQ(acceptor.join(), kProcesses * kEach);
  auto r = wait_for(
      [&](const auto& all) { return with(all, kClose, kPort).size() >= 2U * kProcesses * kEach; });
  stop();
  r = records();
  const auto closes = with(r, kClose, kPort);
  ASSERT_EQ(closes.size(), 2U * kProcesses * kEach) << "each end of each connection once";
  std::map<int, int> made;
  int accepted = 0;
  const std::string cmd_prefix = std::string(SOCKSTATE_TEST_CONNECTOR) + " " +
                                 std::to_string(kPort) + " " + std::to_string(kEach) + " 64";
  for (const auto& x : closes) {
    SCOPED_TRACE(x.dump());
    ASSERT_TRUE(x["actor"].contains("process"));
    const json& p = x["actor"]["process"];
    const int pid = p["pid"].get<int>();
    if (pid == ::getpid()) {
      ++accepted;  // the accepting end: this test's process
      continue;
    }
    ++made[pid];
    EXPECT_EQ(p["name"], "ss-connector");
    EXPECT_EQ(p["file"]["path"], real);
    EXPECT_EQ(p["cmd_line"], cmd_prefix);
    EXPECT_EQ(p["user"]["uid"], std::to_string(::getuid()));
    EXPECT_TRUE(x.contains("start_time")) << "the transition's time";
  }
  EXPECT_EQ(accepted, kProcesses * kEach) << "the acceptor's pid on the accepting end";
  EXPECT_EQ(made, expected) << "each connection named by the process that made it";
  const std::string stats = stats_after_stop();
  EXPECT_EQ(stat_value(stats, "kernel_events"), 1U) << stats;
  EXPECT_EQ(stat_value(stats, "bpf_events_lost"), 0U) << stats;
  expect_valid_ocsf();
}

TEST_F(KernelAttribution, StartTimeIsTheConnectAndTrafficAddsUp) {
  constexpr int kPort = 6602, kConnections = 100, kBytes = 1000;
  start_exact();
  UniqueFd l = listen_on(kPort);
  Acceptor acceptor(l.get(), kConnections);
  std::map<int, std::int64_t> connected_at;  // local port -> ms before connect()
  for (int i = 0; i < kConnections; ++i) {
    const std::int64_t before = now_ms();
    UniqueFd c = connect_to(kPort);
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ASSERT_EQ(::getsockname(c.get(), reinterpret_cast<sockaddr*>(&local), &len), 0);
    connected_at[ntohs(local.sin_port)] = before;
    write_all(c.get(), kBytes);
  }
  ASSERT_EQ(acceptor.join(), kConnections);
  auto r = wait_for(
      [&](const auto& all) { return with(all, kClose, kPort).size() >= 2U * kConnections; });
  stop();
  r = records();
  std::map<int, std::int64_t> sent;  // by the initiator's port: traffic.bytes_out summed
  for (const auto& x : r) {
    if (dst_port(x) != kPort) {
      continue;
    }
    SCOPED_TRACE(x.dump());
    EXPECT_EQ(x["activity_id"], kClose) << "no poll saw them: nothing but the Closes";
    const int port = src_port(x);
    ASSERT_TRUE(connected_at.contains(port));
    ASSERT_TRUE(x.contains("start_time"));
    const std::int64_t start = x["start_time"].get<std::int64_t>();
    EXPECT_GE(start, connected_at[port] - 5);
    EXPECT_LE(start, connected_at[port] + 5) << "within 5 ms of the connect() timed";
    sent[port] += x["traffic"]["bytes_out"].get<std::int64_t>();
  }
  ASSERT_EQ(sent.size(), static_cast<std::size_t>(kConnections));
  for (const auto& [port, bytes] : sent) {
    EXPECT_EQ(bytes, 2 * kBytes) << port << ": each end's records sum to what was sent";
  }
  expect_valid_ocsf();
}

TEST_F(KernelAttribution, AnAbortiveCloseCarriesTheRealBytesAndPort) {
  constexpr int kPort = 6603, kBytes = 100000;
  start_exact();
  UniqueFd l = listen_on(kPort);
  UniqueFd c = connect_to(kPort);
  UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(s.valid());
  write_all(c.get(), kBytes);
  read_exactly(s.get(), kBytes);
  std::this_thread::sleep_for(milliseconds(50));  // every byte acknowledged
  const linger abort_now{1, 0};
  ASSERT_EQ(::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &abort_now, sizeof abort_now), 0);
  c.reset();  // RST; tcp_disconnect() zeroes the counters and the remote port
  auto r = wait_for([&](const auto& all) { return !with(all, kClose, kPort).empty(); });
  s.reset();
  stop();
  r = records();
  std::optional<json> aborted;
  for (const auto& x : with(r, kClose, kPort)) {
    const bool ours = x.contains("actor") && x["actor"].contains("process") &&
                      x["actor"]["process"]["pid"] == ::getpid();
    if (ours && x.contains("traffic") && x["traffic"]["bytes_out"] == kBytes) {
      aborted = x;
    }
  }
  ASSERT_TRUE(aborted) << "a Close with the 100,000 bytes sent and port " << kPort << "; records:\n"
                       << file(records_path_);
  EXPECT_EQ((*aborted)["cumulative_traffic"]["bytes_out"], kBytes) << aborted->dump();
  expect_valid_ocsf();
}

TEST_F(KernelAttribution, ATinyRingBufferLosesEventsYetEveryCloseIsWrittenOnce) {
  constexpr int kPort = 6604, kConnections = 400;
  start_exact(json{{"bpf_ring_buffer", "4KiB"}, {"poll_interval", "300ms"}});
  UniqueFd l = listen_on(kPort);
  Acceptor acceptor(l.get(), kConnections);
  // Stopped, the daemon reads nothing: the ring overflows for sure (read as it runs, it
  // may keep up with 400 connections on a quiet machine), while the destroy events wait
  // in their own, larger buffer.
  ASSERT_TRUE(daemon_->signal(SIGSTOP));
  std::string error;
  auto p = BackgroundProcess::start(
      {SOCKSTATE_TEST_CONNECTOR, std::to_string(kPort), std::to_string(kConnections), "10"}, {},
      "/dev/null", "/dev/null", &error);
  ASSERT_TRUE(p) << error;
  ASSERT_EQ(p->wait(milliseconds(20000)), std::optional<int>(0));
  ASSERT_EQ(acceptor.join(), kConnections);
  std::this_thread::sleep_for(milliseconds(500));  // the destroy work queue's stragglers
  ASSERT_TRUE(daemon_->signal(SIGCONT));
  auto r = wait_for(
      [&](const auto& all) { return with(all, kClose, kPort).size() >= 2U * kConnections; });
  std::this_thread::sleep_for(milliseconds(1000));  // polls resync: nothing more may come
  stop();
  r = records();
  std::map<int, int> per_flow;  // initiator's port -> Close records
  for (const auto& x : with(r, kClose, kPort)) {
    ++per_flow[src_port(x)];
  }
  EXPECT_EQ(per_flow.size(), static_cast<std::size_t>(kConnections));
  for (const auto& [port, n] : per_flow) {
    EXPECT_EQ(n, 2) << port << ": each end's Close once";
  }
  const std::string stats = stats_after_stop();
  EXPECT_GT(stat_value(stats, "bpf_events_lost"), 0U) << "4 KiB holds some 25 events; " << stats;
  EXPECT_NE(file(dir_ + "/stderr").find("events lost"), std::string::npos) << "the loss is logged";
  expect_valid_ocsf();
}

// "on" where it cannot load (no CAP_BPF): one line and exit 1; "auto" there: one info line
// naming why, and the daemon runs on sock_diag alone.
TEST_F(KernelAttribution, WithoutPrivilegeOnRefusesAndAutoFallsBack) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups " +
                                std::string(SOCKSTATE_BINARY) + " run --output " + dir_ +
                                "/nobody.jsonl --no-process --poll-interval 200ms";
  const CommandResult on = run_command(as_nobody + " --bpf on");
  EXPECT_EQ(on.exit_code, 1) << on.error_output;
  EXPECT_EQ(std::count(on.error_output.begin(), on.error_output.end(), '\n'), 1) << on.error_output;
  EXPECT_NE(on.error_output.find("kernel-event source (bpf \"on\")"), std::string::npos)
      << on.error_output;
  EXPECT_NE(on.error_output.find("CAP_BPF"), std::string::npos) << on.error_output;
  const CommandResult fallback = run_command(
      "timeout --preserve-status -s INT 2 " + as_nobody + " --bpf auto", {}, milliseconds(10000));
  EXPECT_EQ(fallback.exit_code, 0) << fallback.error_output;
  EXPECT_NE(fallback.error_output.find("kernel-event source not used: "), std::string::npos)
      << fallback.error_output;
  EXPECT_NE(fallback.error_output.find(" kernel_events=0 "), std::string::npos)
      << fallback.error_output;
}

// snapshot --process with the kernel's task_file iterator names the same owners as the
// /proc walk; "on" where it cannot load is one line and exit 1.
TEST_F(KernelAttribution, SnapshotOwnersFromTheIteratorAreTheProcWalks) {
  constexpr int kPort = 6605;
  UniqueFd l = listen_on(kPort);
  UniqueFd c = connect_to(kPort);
  UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(s.valid());
  std::map<std::string, std::vector<std::string>> owners;  // mode -> "pid port/port" sorted
  for (const std::string mode : {"on", "off"}) {
    const CommandResult r =
        run_command(std::string(SOCKSTATE_BINARY) + " --log-level info snapshot --process --bpf " +
                    mode + " --port " + std::to_string(kPort));
    ASSERT_EQ(r.exit_code, 0) << r.error_output;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      const json x = json::parse(line);
      ASSERT_TRUE(x["actor"].contains("process")) << mode << ": " << line;
      EXPECT_EQ(x["actor"]["process"]["pid"], ::getpid());
      owners[mode].push_back(std::to_string(x["actor"]["process"]["pid"].get<int>()) + " " +
                             std::to_string(src_port(x)) + "/" + std::to_string(dst_port(x)));
    }
    std::sort(owners[mode].begin(), owners[mode].end());
    EXPECT_NE(
        r.error_output.find(mode == "on" ? "from the kernel's task_file iterator" : "(from /proc)"),
        std::string::npos)
        << r.error_output;
  }
  EXPECT_EQ(owners["on"].size(), 3U) << "the listener and both ends";
  EXPECT_EQ(owners["on"], owners["off"]);
  const CommandResult denied =
      run_command("setpriv --reuid=65534 --regid=65534 --clear-groups " +
                  std::string(SOCKSTATE_BINARY) + " snapshot --process --bpf on");
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_EQ(std::count(denied.error_output.begin(), denied.error_output.end(), '\n'), 1)
      << denied.error_output;
  EXPECT_NE(denied.error_output.find("CAP_BPF"), std::string::npos) << denied.error_output;
}

}  // namespace
}  // namespace sockstate::testing

#pragma once
// `sockstate run` as a test drives it: the daemon started on a configuration in a
// temporary directory, READY=1 awaited through a real NOTIFY_SOCKET, its records read
// back; sockets on loopback to feed it. For tests whose suite runs in its own network
// namespace (root).

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/netns.h"
#include "support/netns_test.h"
#include "support/process.h"
#include "support/unique_fd.h"

namespace sockstate::testing {

using nlohmann::json;
using std::chrono::milliseconds;

inline constexpr int kListen = 7, kOpen = 1, kClose = 2, kFail = 4, kRefuse = 5, kOther = 99;

inline sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

inline UniqueFd listen_on(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in a = loopback(port);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0) << port;
  EXPECT_EQ(::listen(fd.get(), 4096), 0);
  return fd;
}

inline UniqueFd connect_to(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in a = loopback(port);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0) << port;
  return fd;
}

inline void write_all(int fd, std::size_t n) {
  const std::string data(n, 'x');
  ASSERT_EQ(::write(fd, data.data(), n), static_cast<ssize_t>(n));
}

inline void read_exactly(int fd, std::size_t n) {
  std::string buf(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf.data() + got, n - got);
    ASSERT_GT(r, 0);
    got += static_cast<std::size_t>(r);
  }
}

inline int dst_port(const json& r) {
  return r.contains("dst_endpoint") && r["dst_endpoint"].contains("port")
             ? r["dst_endpoint"]["port"].get<int>()
             : -1;
}

// The daemon's `bpf` for the tests: SOCKSTATE_TEST_BPF ("off" for the fallback suite, the
// same tests on sock_diag alone), else "auto".
inline std::string test_bpf_mode() {
  const char* mode = std::getenv("SOCKSTATE_TEST_BPF");
  return mode != nullptr && *mode != '\0' ? mode : "auto";
}

// Destroy events the kernel dropped in this network namespace so far: the Drops column of
// /proc/self/net/netlink for the sock_diag sockets (protocol 4) that joined groups.
inline std::uint64_t destroy_events_dropped_here() {
  std::ifstream in("/proc/self/net/netlink");
  std::string line;
  std::getline(in, line);  // header
  std::uint64_t drops = 0;
  for (std::string sk, eth, pid, groups, rmem, wmem, dump, locks, d, inode;
       in >> sk >> eth >> pid >> groups >> rmem >> wmem >> dump >> locks >> d >> inode;) {
    if (eth == "4" && groups != "00000000") {
      drops += std::stoull(d);
    }
  }
  return drops;
}

// The kernel sends destroy events from a work queue, which may lag behind on a busy
// machine: waits (up to 20 s) until it has dropped some for a stopped daemon, then half a
// second for the work queue's stragglers. The count then (0: it dropped none).
inline std::uint64_t await_destroy_drops() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(20000);
  while (destroy_events_dropped_here() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  return destroy_events_dropped_here();
}

// Whether a daemon's log says the kernel-event source runs.
inline bool kernel_events_in(const std::string& log) {
  return log.find("kernel-event source: on") != std::string::npos;
}

class DaemonNetns : public NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    char dir[] = "/tmp/sockstate-daemon-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    records_path_ = dir_ + "/records.jsonl";
  }

  void TearDown() override {
    if (daemon_ && daemon_->running()) {
      stop();
    }
    if (!dir_.empty()) {
      run_command("rm -rf " + dir_);
    }
  }

  // Starts the daemon with this configuration (sinks default to the records file) and
  // waits for READY=1.
  void start(json config = json::object(), std::vector<std::string> env = {}) {
    if (!config.contains("sinks")) {
      config["sinks"] = json::array({{{"type", "file"}, {"path", records_path_}}});
    }
    const json defaults = {{"poll_interval", "300ms"},
                           {"stats_interval", "0"},
                           {"traffic_interval", "0"},
                           {"event_buffer", "64MiB"},
                           {"bpf", test_bpf_mode()}};
    for (const auto& [k, v] : defaults.items()) {
      if (!config.contains(k)) {
        config[k] = v;
      }
    }
    config_path_ = dir_ + "/sockstate.json";
    std::ofstream(config_path_) << config.dump(2);
    std::string error;
    notify_ = NotifySocket::create(&error);
    ASSERT_TRUE(notify_) << error;
    env.push_back("NOTIFY_SOCKET=" + notify_->path());
    if (stderr_path_.empty()) {
      stderr_path_ = dir_ + "/stderr";
    }
    auto daemon = BackgroundProcess::start({SOCKSTATE_BINARY, "run", "--config", config_path_}, env,
                                           dir_ + "/stdout", stderr_path_, &error);
    ASSERT_TRUE(daemon) << error;
    daemon_.emplace(std::move(*daemon));
    ASSERT_TRUE(notify_->wait_for("READY=1", milliseconds(10000)))
        << "no READY=1; stderr: " << file(stderr_path_);
  }

  // The running daemon's kernel-event source is on (its log said so at start).
  [[nodiscard]] bool kernel_events() const { return kernel_events_in(file(stderr_path_)); }

  void stop() {
    ASSERT_TRUE(daemon_->signal(SIGTERM));
    const auto status = daemon_->wait(milliseconds(15000));
    ASSERT_TRUE(status) << "did not stop on SIGTERM";
    EXPECT_EQ(*status, 0) << file(dir_ + "/stderr");
  }

  // A failure message reads files with it: never one that could block (a FIFO some tests
  // give the daemon as stderr has a writer that never closes).
  static std::string file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return "(" + path + " is not a regular file: not read)";
    }
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Every complete line of the records file(s), parsed.
  std::vector<json> records(const std::vector<std::string>& paths = {}) const {
    std::vector<json> out;
    for (const auto& p : paths.empty() ? std::vector<std::string>{records_path_} : paths) {
      std::istringstream lines(file(p));
      for (std::string line; std::getline(lines, line);) {
        if (!lines.eof()) {
          out.push_back(json::parse(line));
        }
      }
    }
    return out;
  }

  // Waits until the records file has at least `n` complete lines, counted without parsing
  // them (parsing tens of thousands of records every 50 ms would slow the daemon it
  // waits for, on a machine of two cores); false on timeout.
  bool wait_for_lines(std::size_t n, milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const std::string all = file(records_path_);
      if (static_cast<std::size_t>(std::count(all.begin(), all.end(), '\n')) >= n) {
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  // Waits until `pred` holds for the records so far, returning them.
  std::vector<json> wait_for(const std::function<bool(const std::vector<json>&)>& pred,
                             milliseconds timeout = milliseconds(10000)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto r = records();
      if (pred(r) || std::chrono::steady_clock::now() >= deadline) {
        return r;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  static std::vector<json> with(const std::vector<json>& all, int activity, int port) {
    std::vector<json> out;
    for (const auto& r : all) {
      if (r["activity_id"] == activity && (port < 0 || dst_port(r) == port)) {
        out.push_back(r);
      }
    }
    return out;
  }

  // Every record of the files passes the checker for `version` (its schema, and
  // metadata.version equal to it).
  void expect_valid_ocsf(const std::vector<std::string>& paths = {},
                         const std::string& version = "1.8.0") const {
    std::string all;
    for (const auto& p : paths.empty() ? std::vector<std::string>{records_path_} : paths) {
      all += file(p);
    }
    expect_valid_ocsf_text(all, version);
  }

  static void expect_valid_ocsf_text(const std::string& records, const std::string& version) {
    const CommandResult check =
        run_command(std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK +
                        " --ocsf-version " + version + " --require-tcp-state",
                    records, milliseconds(120000));
    EXPECT_EQ(check.exit_code, 0) << version << ": " << check.output.substr(0, 2000);
  }

  std::string dir_;
  std::string records_path_;
  std::string config_path_;
  std::string stderr_path_;  // where the daemon's stderr goes; default dir_/stderr
  std::unique_ptr<NotifySocket> notify_;
  std::optional<BackgroundProcess> daemon_;
};

}  // namespace sockstate::testing

// OwnerMap against real processes holding real sockets in the test's own network namespace:
// each socket `ss -tanep` reports (inode and pid, from sock_diag) must be attributed to
// that pid with the right name, command line, uid and user. Needs root; skips without it.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "sockstate/proc/socket_owners.h"
#include "support/holders.h"
#include "support/holders_test.h"
#include "support/netns.h"
#include "support/netns_test.h"
#include "support/process.h"

namespace sockstate::testing {
namespace {

using namespace std::chrono_literals;
using proc::OwnerMap;
using proc::ProcessInfo;

// What `ss -tanep` says about one socket.
struct SsSocket {
  std::string local;
  std::string peer;
  std::uint32_t inode = 0;
  std::vector<int> pids;
};

std::vector<SsSocket> ss_sockets() {
  const auto r = run_command("ss -tanepH");
  std::vector<SsSocket> out;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string state;
    std::string recvq;
    std::string sendq;
    SsSocket s;
    words >> state >> recvq >> sendq >> s.local >> s.peer;
    std::size_t at = 0;
    while ((at = line.find("pid=", at)) != std::string::npos) {
      at += 4;
      s.pids.push_back(std::stoi(line.substr(at)));
    }
    const std::size_t ino = line.find("ino:");
    if (ino != std::string::npos) {
      s.inode = static_cast<std::uint32_t>(std::stoul(line.substr(ino + 4)));
    }
    out.push_back(s);
  }
  return out;
}

std::string expected_cmd_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    out += (out.empty() ? "" : " ") + a;
  }
  for (char& c : out) {
    if (c == '\n' || c == '\t') {
      c = ' ';
    }
  }
  return out;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class SocketOwnersNetns : public HoldersNetnsTest {
 protected:
  using Holder = Holders::Holder;

  // A holder on `port`, as `uid` (through setpriv) when not 0.
  std::optional<Holder> start_holder(std::uint16_t port, std::uint32_t uid, bool fork_child) {
    std::vector<std::string> wrapper;
    if (uid != 0) {
      const std::string id = std::to_string(uid);
      wrapper = {kSetpriv, "--reuid=" + id, "--regid=" + id, "--clear-groups"};
    }
    auto h = holders_->start(port, wrapper, fork_child);
    if (!h) {
      ADD_FAILURE() << holders_->error();
    }
    return h;
  }
};

TEST_F(SocketOwnersNetns, AttributesRealSocketsToTheirProcesses) {
  const std::int64_t started = now_ms();
  auto root_holder = start_holder(5001, 0, false);
  ASSERT_TRUE(root_holder);
  auto nobody_holder = start_holder(5002, 65534, false);
  ASSERT_TRUE(nobody_holder);
  const std::int64_t ready = now_ms();

  OwnerMap map;
  auto stats = map.scan();
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_GT(stats->pids_scanned, 2U);
  EXPECT_GE(stats->sockets_found, 6U);
  // Not asserted: a process with capabilities we lack (a sandbox's pid 1 here) refuses
  // readlink of its fds even to root; the holders are root's or nobody's and readable.
  std::cout << "real /proc: " << stats->pids_scanned << " pids, " << stats->sockets_found
            << " sockets, " << stats->permission_errors << " permission errors\n";

  const auto sockets = ss_sockets();
  std::map<int, int> seen;  // pid -> sockets checked
  for (const auto& s : sockets) {
    if (s.pids.empty()) {
      continue;  // TIME-WAIT and other kernel-held sockets have no owner
    }
    SCOPED_TRACE(s.local + " " + s.peer + " ino:" + std::to_string(s.inode));
    const ProcessInfo* p = map.owner(s.inode);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->pid, s.pids.front());
    for (const Holder* h : {&*root_holder, &*nobody_holder}) {
      if (p->pid != h->pid) {
        continue;
      }
      ++seen[p->pid];
      EXPECT_EQ(p->name, "python3");
      EXPECT_EQ(p->cmd_line, expected_cmd_line(h->argv));
      EXPECT_FALSE(p->cmd_line_truncated);
      const bool is_root_holder = h == &*root_holder;
      EXPECT_EQ(p->uid, is_root_holder ? 0U : 65534U);
      EXPECT_EQ(p->user, is_root_holder ? "root" : "nobody");
      // btime has whole seconds: allow a second either side.
      EXPECT_GE(p->created_time_ms, started - 1500);
      EXPECT_LE(p->created_time_ms, ready + 1500);
    }
  }
  EXPECT_EQ(seen[root_holder->pid], 3);  // listener, client end, accepted end
  EXPECT_EQ(seen[nobody_holder->pid], 3);
}

TEST_F(SocketOwnersNetns, ForkedChildSharesItsParentsSockets) {
  auto holder = start_holder(5003, 0, true);
  ASSERT_TRUE(holder);
  ASSERT_GT(holder->child, 0);

  OwnerMap map;
  auto stats = map.scan();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->shared_sockets, 3U);
  int checked = 0;
  for (const auto& s : ss_sockets()) {
    if (s.local != "127.0.0.1:5003" && s.peer != "127.0.0.1:5003") {
      continue;
    }
    ASSERT_EQ(s.pids.size(), 2U) << "ino:" << s.inode;
    const ProcessInfo* p = map.owner(s.inode);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->pid, std::min(holder->pid, holder->child));
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// Processes that make a socket and exit at once, while the map is built again and again:
// every walk succeeds and the long-lived holder's sockets are always found.
TEST_F(SocketOwnersNetns, ProcessesExitingMidScanDoNotBreakIt) {
  auto holder = start_holder(5004, 0, false);
  ASSERT_TRUE(holder);
  std::vector<std::uint32_t> holder_inodes;
  for (const auto& s : ss_sockets()) {
    if (!s.pids.empty() && s.pids.front() == holder->pid) {
      holder_inodes.push_back(s.inode);
    }
  }
  ASSERT_EQ(holder_inodes.size(), 3U);

  std::atomic<bool> stop{false};
  std::atomic<int> spawned{0};
  std::thread churn([&stop, &spawned] {
    while (!stop.load()) {
      const pid_t child = ::fork();
      if (child == 0) {
        // Only async-signal-safe calls in the child of a threaded process.
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        ::usleep(static_cast<useconds_t>(200 + ::getpid() % 2000));
        ::_exit(fd >= 0 ? 0 : 1);
      }
      if (child > 0) {
        ::waitpid(child, nullptr, 0);
        ++spawned;
      }
    }
  });

  std::uint64_t vanished = 0;
  std::uint64_t walks = 0;
  OwnerMap map;
  for (int i = 0; i < 40; ++i) {
    auto stats = i % 2 == 0 ? map.scan() : map.refresh(holder_inodes);
    ASSERT_TRUE(stats.ok()) << stats.error().message();
    EXPECT_TRUE(stats->complete);
    vanished += stats->vanished;
    walks += stats->walked ? 1U : 0U;
    for (const std::uint32_t inode : holder_inodes) {
      const ProcessInfo* p = map.owner(inode);
      ASSERT_NE(p, nullptr) << "walk " << i;
      EXPECT_EQ(p->pid, holder->pid);
    }
  }
  stop = true;
  churn.join();
  EXPECT_GT(spawned.load(), 0);
  EXPECT_EQ(walks, 20U);  // the refresh()es had nothing to look for
  RecordProperty("vanished", std::to_string(vanished));
  RecordProperty("spawned", std::to_string(spawned.load()));
  std::cout << "churn: " << spawned.load() << " short-lived processes, " << vanished
            << " vanished mid-walk over " << walks << " walks\n";
}

TEST_F(SocketOwnersNetns, RefreshFindsANewConnectionOfAKnownProcess) {
  auto holder = start_holder(5005, 0, false);
  ASSERT_TRUE(holder);
  OwnerMap map;
  ASSERT_TRUE(map.scan().ok());
  // A new connection from the test process itself: an inode the map has not seen, held by
  // a pid it may know already (ours holds sockets too, e.g. none yet: both cases work).
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  const auto inode = static_cast<std::uint32_t>(st.st_ino);
  EXPECT_EQ(map.owner(inode), nullptr);
  auto r = map.refresh({inode});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->walked);
  const ProcessInfo* p = map.owner(inode);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->pid, ::getpid());
  ::close(fd);
}

// A process with more fds than one thread reads (proc::OwnerMap reads the links of a pid
// with over 4,096 fds on two threads, half each): every socket is found, once, with its
// owner, whether its fd falls in the first half or the second.
TEST_F(SocketOwnersNetns, AProcessWithThousandsOfSocketsHasEveryOneAttributed) {
  rlimit nofile{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
  constexpr std::size_t kSockets = 9000;
  ASSERT_GE(nofile.rlim_max, kSockets + 64) << "hard RLIMIT_NOFILE too low";
  const rlimit before = nofile;
  nofile.rlim_cur = nofile.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &nofile), 0);
  std::vector<int> fds;
  std::vector<std::uint32_t> inodes;
  for (std::size_t i = 0; i < kSockets; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    inodes.push_back(static_cast<std::uint32_t>(st.st_ino));
  }
  OwnerMap map;
  const auto scanned = map.scan();
  ASSERT_TRUE(scanned.ok()) << scanned.error().message();
  EXPECT_GE(scanned->fds_read, kSockets);
  std::size_t found = 0;
  for (const std::uint32_t inode : inodes) {
    const ProcessInfo* p = map.owner(inode);
    found += (p != nullptr && p->pid == ::getpid()) ? 1U : 0U;
  }
  EXPECT_EQ(found, kSockets) << "every socket, both halves";
  for (const int fd : fds) {
    ::close(fd);
  }
  ::setrlimit(RLIMIT_NOFILE, &before);
}

}  // namespace
}  // namespace sockstate::testing

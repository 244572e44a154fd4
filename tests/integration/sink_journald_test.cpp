// The journald sink against a real systemd-journald. The test starts journald itself (it
// runs without systemd as PID 1) in a private mount namespace, with tmpfs over /run and
// /var/log/journal, so the host's /run/systemd/journal/socket and journal are untouched
// and the sink's fixed socket path reaches the test's journald. Needs root (label netns);
// skips without it or without /lib/systemd/systemd-journald.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sockstate/sink/sink.h"
#include "support/netns.h"

namespace sockstate::sink {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kJournald = "/lib/systemd/systemd-journald";

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) {
      return condition();
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Moves the calling thread (the main thread: gtest runs tests there) into a private mount
// namespace with empty tmpfs over /run and /var/log/journal. Threads and processes started
// afterwards inherit it. Once per process.
std::optional<std::string> private_run() {
  static std::optional<std::string> result = []() -> std::optional<std::string> {
    if (::unshare(CLONE_NEWNS) != 0) {
      return errno_text("unshare(CLONE_NEWNS)");
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return errno_text("mount --make-rprivate /");
    }
    if (::mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
      return errno_text("mount tmpfs /run");
    }
    if (fs::is_directory("/var/log/journal") &&
        ::mount("tmpfs", "/var/log/journal", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
      return errno_text("mount tmpfs /var/log/journal");
    }
    std::error_code ec;
    fs::create_directories("/run/systemd/journal", ec);
    fs::create_directories("/run/log/journal", ec);
    return std::nullopt;
  }();
  return result;
}

// systemd-journald as a child process, stopped (SIGTERM) on destruction.
class Journald {
 public:
  Journald() = default;
  Journald(const Journald&) = delete;
  Journald& operator=(const Journald&) = delete;
  ~Journald() { stop(); }

  std::optional<std::string> start() {
    // A journald that was stopped leaves its socket behind; the new one replaces it, and
    // waiting for the path to exist must wait for the new one.
    std::error_code ec;
    fs::remove(std::string(kJournalSocket), ec);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (const int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
      posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0);
    }
    std::string path = kJournald;
    std::vector<char*> argv{path.data(), nullptr};
    const int err = ::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) {
      pid_ = -1;
      return std::string("posix_spawn ") + kJournald + ": " + std::strerror(err);
    }
    if (!eventually([] { return fs::exists(std::string(kJournalSocket)); })) {
      return "journald did not create " + std::string(kJournalSocket);
    }
    return std::nullopt;
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
};

// Entries journald holds for `identifier`, as journalctl -o json prints them.
std::vector<json> journal_entries(const std::string& identifier) {
  const auto r =
      testing::run_command("journalctl --no-pager -o json SYSLOG_IDENTIFIER=" + identifier);
  std::vector<json> entries;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) {
      entries.push_back(json::parse(line));
    }
  }
  return entries;
}

// Real records: the first lines of the golden snapshot output.
std::vector<std::string> golden_records(std::size_t count) {
  std::ifstream in(std::string(SOCKSTATE_TEST_DATA_DIR) + "/golden/snapshot_records.jsonl");
  std::vector<std::string> out;
  for (std::string line; out.size() < count && std::getline(in, line);) {
    out.push_back(line + "\n");
  }
  return out;
}

// The tests of one process share its journal: each gets a SYSLOG_IDENTIFIER of its own.
std::string unique_identifier() {
  static int n = 0;
  return "sockstate-it-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

SinkConfig journald_config(const std::string& identifier) {
  SinkConfig c;
  c.type = SinkType::kJournald;
  c.syslog_identifier = identifier;
  c.queue_records = 1000;
  c.reconnect_min = 5ms;
  c.reconnect_max = 20ms;
  return c;
}

class JournaldSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::is_root()) {
      GTEST_SKIP() << "needs root (a mount namespace and journald)";
    }
    if (::access(kJournald, X_OK) != 0) {
      GTEST_SKIP() << kJournald << " is not installed";
    }
    if (auto err = private_run()) {
      GTEST_SKIP() << "cannot make a private /run: " << *err;
    }
    if (auto err = journald_.start()) {
      FAIL() << *err;
    }
  }

  Journald journald_;
};

TEST_F(JournaldSinkTest, EachRecordBecomesAnEntryWithItsFields) {
  const auto records = golden_records(3);
  ASSERT_EQ(records.size(), 3U);
  const std::string identifier = unique_identifier();
  auto sink = make_sink(journald_config(identifier));
  ASSERT_TRUE(sink->start());
  for (const auto& r : records) {
    sink->submit(r);
  }
  sink->stop(5s);
  EXPECT_EQ(sink->stats().written, 3U);
  EXPECT_EQ(sink->stats().errors, 0U) << sink->last_error();

  std::vector<json> entries;
  ASSERT_TRUE(eventually([&] {
    entries = journal_entries(identifier);
    return entries.size() >= 3;
  })) << "journal has "
      << entries.size() << " entries";
  ASSERT_EQ(entries.size(), 3U);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto record = json::parse(records[i]);
    const auto& e = entries[i];
    EXPECT_EQ(e["MESSAGE"], records[i].substr(0, records[i].size() - 1));
    EXPECT_EQ(e["PRIORITY"], "6");
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], identifier);
    EXPECT_EQ(e["_TRANSPORT"], "journal");
    EXPECT_EQ(e["OCSF_CLASS_UID"], std::to_string(record["class_uid"].get<int>()));
    EXPECT_EQ(e["OCSF_ACTIVITY_ID"], std::to_string(record["activity_id"].get<int>()));
    EXPECT_EQ(e["OCSF_TYPE_UID"], std::to_string(record["type_uid"].get<int>()));
    EXPECT_EQ(e["OCSF_SEVERITY_ID"], std::to_string(record["severity_id"].get<int>()));
  }
}

TEST_F(JournaldSinkTest, AStoppedJournaldMeansCountedDropsAndARestartedOneIsFollowed) {
  const auto records = golden_records(3);
  ASSERT_EQ(records.size(), 3U);
  const std::string identifier = unique_identifier();
  auto sink = make_sink(journald_config(identifier));
  ASSERT_TRUE(sink->start());
  sink->submit(records[0]);
  ASSERT_TRUE(eventually([&] { return sink->stats().written == 1; }));

  journald_.stop();
  sink->submit(records[1]);
  ASSERT_TRUE(eventually([&] { return sink->stats().dropped == 1; }));
  EXPECT_GE(sink->stats().errors, 1U);
  EXPECT_NE(sink->last_error().find(std::string(kJournalSocket)), std::string::npos)
      << sink->last_error();

  ASSERT_EQ(journald_.start(), std::nullopt);
  // Records submitted before the sink's next connection attempt are dropped (journald is
  // local: they are not held); keep submitting the same record until one gets through.
  // One at a time, so that exactly one gets through.
  std::uint64_t submitted = 2;
  ASSERT_TRUE(eventually([&] {
    const auto s = sink->stats();
    if (s.written + s.dropped < submitted) {
      return false;  // the last one is still queued
    }
    if (s.written == 2) {
      return true;
    }
    sink->submit(records[2]);
    ++submitted;
    return false;
  }));
  sink->stop(5s);
  const auto s = sink->stats();
  EXPECT_EQ(s.written + s.dropped, submitted);

  std::vector<json> entries;
  ASSERT_TRUE(eventually([&] {
    entries = journal_entries(identifier);
    return entries.size() >= 2;
  }));
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(entries[0]["MESSAGE"], records[0].substr(0, records[0].size() - 1));
  EXPECT_EQ(entries[1]["MESSAGE"], records[2].substr(0, records[2].size() - 1));
}

}  // namespace
}  // namespace sockstate::sink

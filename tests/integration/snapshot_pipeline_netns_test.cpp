// `sockstate snapshot` of thousands of sockets, where the dump and the records are made on
// two threads (src/snapshot/pipeline.h): every socket once, in the kernel's dump order (as
// `ss` lists them), and a write failure midway still one line and exit 1. Each test runs
// in its own network namespace (root); skips without it.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/daemon_harness.h"

namespace sockstate::testing {
namespace {

// 2,000 connections on loopback, both ends held: 4,000 ESTABLISHED sockets and a
// listener, many batches of the pipeline.
class SnapshotPipelineNetns : public NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    rlimit nofile{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
    ASSERT_GE(nofile.rlim_max, 2 * kConnections + 64) << "hard RLIMIT_NOFILE too low";
    nofile.rlim_cur = nofile.rlim_max;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &nofile), 0);
    listener_ = listen_on(kPort);
    for (std::size_t i = 0; i < kConnections; ++i) {
      held_.push_back(connect_to(kPort));
      held_.emplace_back(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      ASSERT_TRUE(held_.back().valid());
    }
  }

  static constexpr std::size_t kConnections = 2000;
  static constexpr std::uint16_t kPort = 4100;
  UniqueFd listener_;
  std::vector<UniqueFd> held_;
};

TEST_F(SnapshotPipelineNetns, ThousandsOfSocketsEachOnceInTheKernelsOrder) {
  const CommandResult snap =
      run_command(std::string(SOCKSTATE_BINARY) + " snapshot --family inet --state all");
  ASSERT_EQ(snap.exit_code, 0) << snap.error_output;
  std::vector<std::uint64_t> ours;
  std::int64_t last_sequence = 0;
  std::istringstream lines(snap.output);
  for (std::string line; std::getline(lines, line);) {
    const json r = json::parse(line);
    ours.push_back(std::stoull(r["connection_info"]["uid"].get<std::string>(), nullptr, 16));
    const auto seq = r["metadata"]["sequence"].get<std::int64_t>();
    EXPECT_GT(seq, last_sequence);
    last_sequence = seq;
  }
  EXPECT_EQ(ours.size(), 2 * kConnections + 1);
  EXPECT_EQ(std::set<std::uint64_t>(ours.begin(), ours.end()).size(), ours.size()) << "once each";
  // ss lists the same dump in the kernel's order; "sk:" is the cookie (unpadded hex).
  const CommandResult ss = run_command("ss -H -4 -tane state all");
  ASSERT_EQ(ss.exit_code, 0) << ss.error_output;
  std::vector<std::uint64_t> theirs;
  std::istringstream ss_lines(ss.output);
  for (std::string line; std::getline(ss_lines, line);) {
    const auto at = line.find(" sk:");
    ASSERT_NE(at, std::string::npos) << line;
    const auto end = line.find(' ', at + 4);
    theirs.push_back(std::stoull(line.substr(at + 4, end == std::string::npos ? end : end - at - 4),
                                 nullptr, 16));
  }
  EXPECT_EQ(ours, theirs) << "records in the kernel's dump order";
}

TEST_F(SnapshotPipelineNetns, AFullDiskMidwayIsOneLineAndExitOne) {
  const CommandResult full =
      run_command("unshare -m sh -c 'd=$(mktemp -d) && mount -t tmpfs -o size=64k none \"$d\" && " +
                  std::string(SOCKSTATE_BINARY) + " snapshot --state all --output \"$d/x.jsonl\"'");
  EXPECT_EQ(full.exit_code, 1) << full.error_output;
  EXPECT_NE(full.error_output.find("No space left"), std::string::npos) << full.error_output;
  EXPECT_EQ(std::count(full.error_output.begin(), full.error_output.end(), '\n'), 1)
      << full.error_output;
}

}  // namespace
}  // namespace sockstate::testing

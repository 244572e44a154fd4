#include "sockstate/cli/cli.h"

#include <gtest/gtest.h>

#include "sockstate/common/version.h"
#include "sockstate/netlink/types.h"

namespace sockstate::cli {
namespace {

using netlink::state_bit;

Invocation run(std::vector<std::string> args) {
  args.insert(args.begin(), "sockstate");
  return parse(args);
}

void expect_usage_error(const std::vector<std::string>& args, const std::string& needle) {
  const Invocation inv = run(args);
  EXPECT_EQ(inv.command, Command::kExit);
  EXPECT_EQ(inv.exit_code, kExitUsage);
  EXPECT_NE(inv.error.find(needle), std::string::npos) << inv.error;
  EXPECT_EQ(inv.error.find('\n'), std::string::npos) << "one line: " << inv.error;
  EXPECT_TRUE(inv.out.empty());
}

TEST(Cli, SnapshotDefaults) {
  const Invocation inv = run({"snapshot"});
  ASSERT_EQ(inv.command, Command::kSnapshot);
  EXPECT_EQ(inv.snapshot.states, netlink::kAllStates);
  EXPECT_TRUE(inv.snapshot.inet);
  EXPECT_TRUE(inv.snapshot.inet6);
  EXPECT_TRUE(inv.snapshot.ports.empty());
  EXPECT_TRUE(inv.snapshot.with_info);
  EXPECT_TRUE(inv.output_path.empty());
}

TEST(Cli, StatesListAndRepeats) {
  Invocation inv = run({"snapshot", "--state", "LISTEN,time_wait", "--state", "Syn-Sent"});
  ASSERT_EQ(inv.command, Command::kSnapshot);
  EXPECT_EQ(inv.snapshot.states, state_bit(10) | state_bit(6) | state_bit(2));
  inv = run({"snapshot", "--state", "bound"});
  EXPECT_EQ(inv.snapshot.states, state_bit(13));
  inv = run({"snapshot", "--state=all,bound"});
  EXPECT_EQ(inv.snapshot.states, netlink::kAllStates | state_bit(13));
}

TEST(Cli, FamilyPortsInfoOutput) {
  const Invocation inv = run({"snapshot", "--family", "inet6", "--port", "443", "--sport", "0",
                              "--dport", "65535", "--no-info", "--output", "/tmp/x.jsonl"});
  ASSERT_EQ(inv.command, Command::kSnapshot);
  EXPECT_FALSE(inv.snapshot.inet);
  EXPECT_TRUE(inv.snapshot.inet6);
  EXPECT_EQ(inv.snapshot.ports.either, 443);
  EXPECT_EQ(inv.snapshot.ports.local, 0);
  EXPECT_EQ(inv.snapshot.ports.remote, 65535);
  EXPECT_FALSE(inv.snapshot.with_info);
  EXPECT_EQ(inv.output_path, "/tmp/x.jsonl");
  EXPECT_FALSE(run({"snapshot", "--family", "inet"}).snapshot.inet6);
}

TEST(Cli, BadInputIsOneLineExitTwo) {
  expect_usage_error({"snapshot", "--state", "establish"}, "establish");
  expect_usage_error({"snapshot", "--state", "listen,bogus"}, "bogus");
  expect_usage_error({"snapshot", "--port", "65536"}, "65536");
  expect_usage_error({"snapshot", "--port", "-1"}, "-1");
  expect_usage_error({"snapshot", "--sport", "http"}, "http");
  expect_usage_error({"snapshot", "--dport"}, "dport");
  expect_usage_error({"snapshot", "--family", "unix"}, "unix");
  expect_usage_error({"snapshot", "--frobnicate"}, "frobnicate");
  expect_usage_error({"snapshot", "extra"}, "extra");
  expect_usage_error({"explode"}, "explode");
  expect_usage_error({}, "subcommand");
  expect_usage_error({"--log-level", "loud", "snapshot"}, "loud");
}

TEST(Cli, HelpAndVersion) {
  Invocation inv = run({"--help"});
  EXPECT_EQ(inv.command, Command::kExit);
  EXPECT_EQ(inv.exit_code, kExitOk);
  EXPECT_NE(inv.out.find("snapshot"), std::string::npos);
  inv = run({"snapshot", "--help"});
  EXPECT_EQ(inv.exit_code, kExitOk);
  for (const char* opt :
       {"--state", "--family", "--port", "--sport", "--dport", "--no-info", "--output"}) {
    EXPECT_NE(inv.out.find(opt), std::string::npos) << opt;
  }
  inv = run({"--version"});
  EXPECT_EQ(inv.exit_code, kExitOk);
  EXPECT_EQ(inv.out, std::string("sockstate ") + kVersion + "\n");
}

}  // namespace
}  // namespace sockstate::cli

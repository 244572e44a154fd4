#include "sockstate/cli/cli.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "sockstate/common/version.h"
#include "sockstate/netlink/types.h"
#include "sockstate/ocsf/tcp_state.h"

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
  EXPECT_TRUE(inv.snapshot.tcp);
  EXPECT_TRUE(inv.snapshot.udp);
  EXPECT_TRUE(inv.snapshot.ports.empty());
  EXPECT_TRUE(inv.snapshot.with_info);
  EXPECT_FALSE(inv.snapshot.process);
  EXPECT_FALSE(inv.snapshot.all_netns);
  EXPECT_EQ(inv.community_id_seed, 0);
  EXPECT_TRUE(inv.output_path.empty());
}

// --protocol, like --state: a comma-separated list, repeatable; an unknown word is a
// usage error of one line.
TEST(Cli, ProtocolList) {
  Invocation inv = run({"snapshot", "--protocol", "udp"});
  ASSERT_EQ(inv.command, Command::kSnapshot);
  EXPECT_FALSE(inv.snapshot.tcp);
  EXPECT_TRUE(inv.snapshot.udp);
  inv = run({"snapshot", "--protocol", "tcp"});
  EXPECT_TRUE(inv.snapshot.tcp);
  EXPECT_FALSE(inv.snapshot.udp);
  inv = run({"snapshot", "--protocol", "udp,tcp"});
  EXPECT_TRUE(inv.snapshot.tcp && inv.snapshot.udp);
  inv = run({"snapshot", "--protocol", "tcp", "--protocol", "all"});
  EXPECT_TRUE(inv.snapshot.tcp && inv.snapshot.udp);
  inv = run({"snapshot", "--protocol", "sctp"});
  EXPECT_EQ(inv.exit_code, kExitUsage);
  EXPECT_NE(inv.error.find("--protocol: unknown protocol 'sctp'"), std::string::npos) << inv.error;
  EXPECT_EQ(inv.error.find('\n'), std::string::npos) << "one line: " << inv.error;
}

TEST(Cli, OwnersNamespacesAndSeed) {
  const Invocation inv =
      run({"snapshot", "--process", "--all-netns", "--community-id-seed", "65535"});
  ASSERT_EQ(inv.command, Command::kSnapshot);
  EXPECT_TRUE(inv.snapshot.process);
  EXPECT_TRUE(inv.snapshot.all_netns);
  EXPECT_EQ(inv.community_id_seed, 65535);
  expect_usage_error({"snapshot", "--community-id-seed", "65536"}, "65536");
  expect_usage_error({"snapshot", "--community-id-seed", "x"}, "--community-id-seed");
  const Invocation daemon = run({"run", "--no-process", "--all-netns"});
  ASSERT_EQ(daemon.command, Command::kRun);
  const std::vector<std::pair<std::string, std::string>> want = {{"process", "false"},
                                                                 {"all_netns", "true"}};
  EXPECT_EQ(daemon.overrides, want);
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
  for (const char* opt : {"--state", "--protocol", "--family", "--port", "--sport", "--dport",
                          "--no-info", "--output"}) {
    EXPECT_NE(inv.out.find(opt), std::string::npos) << opt;
  }
  inv = run({"--version"});
  EXPECT_EQ(inv.exit_code, kExitOk);
  EXPECT_EQ(inv.out, std::string("sockstate ") + kVersion + "\n");
}

TEST(Cli, RunTakesAConfigAndOverrides) {
  Invocation inv = run({"run"});
  ASSERT_EQ(inv.command, Command::kRun);
  EXPECT_TRUE(inv.config_path.empty());
  EXPECT_TRUE(inv.overrides.empty());
  inv = run({"--log-level", "debug", "run", "--config", "/etc/sockstate/sockstate.json",
             "--poll-interval", "2s", "--traffic-interval", "0", "--no-baseline",
             "--no-destroy-events", "--output", "/var/log/a \"b\".jsonl"});
  ASSERT_EQ(inv.command, Command::kRun);
  EXPECT_EQ(inv.config_path, "/etc/sockstate/sockstate.json");
  const std::vector<std::pair<std::string, std::string>> want = {
      {"poll_interval", "\"2s\""},
      {"traffic_interval", "\"0\""},
      {"baseline", "false"},
      {"destroy_events", "false"},
      {"log_level", "\"debug\""},
      {"sinks", "[{\"type\":\"file\",\"path\":\"/var/log/a \\\"b\\\".jsonl\"}]"},
  };
  EXPECT_EQ(inv.overrides, want);
  // A list option becomes a JSON array: the configuration's parser judges its words.
  inv = run({"run", "--protocol", "udp", "--protocol", "tcp,all"});
  const std::vector<std::pair<std::string, std::string>> protocols = {
      {"protocols", "[\"udp\",\"tcp\",\"all\"]"}};
  EXPECT_EQ(inv.overrides, protocols);
  expect_usage_error({"run", "--poll"}, "--poll");
  expect_usage_error({"run", "extra"}, "extra");
}

TEST(Cli, CheckConfigNeedsAFile) {
  const Invocation inv = run({"check-config", "/tmp/x.json"});
  ASSERT_EQ(inv.command, Command::kCheckConfig);
  EXPECT_EQ(inv.config_path, "/tmp/x.json");
  expect_usage_error({"check-config"}, "file");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every option and state name --help offers is documented in the README and the man page.
TEST(Cli, HelpReadmeAndManPageAgree) {
  const std::string readme = read_file(SOCKSTATE_SOURCE_DIR "/README.md");
  std::string man = read_file(SOCKSTATE_SOURCE_DIR "/packaging/man/sockstate.8");
  ASSERT_FALSE(readme.empty());
  ASSERT_FALSE(man.empty());
  man.erase(std::remove(man.begin(), man.end(), '\\'), man.end());  // roff's \- is -
  const std::string help = run({"--help"}).out + run({"snapshot", "--help"}).out +
                           run({"run", "--help"}).out + run({"check-config", "--help"}).out;
  const std::regex option("--[a-z][a-z-]+");
  std::set<std::string> options;
  for (auto it = std::sregex_iterator(help.begin(), help.end(), option);
       it != std::sregex_iterator(); ++it) {
    options.insert(it->str());
  }
  EXPECT_GE(options.size(), 10U);
  for (const std::string& opt : options) {
    EXPECT_NE(readme.find(opt), std::string::npos) << opt << " is not in README.md";
    EXPECT_NE(man.find(opt), std::string::npos) << opt << " is not in sockstate.8";
  }
  for (const char* state :
       {"established", "syn-sent", "syn-received", "fin-wait-1", "fin-wait-2", "time-wait",
        "closed", "close-wait", "last-ack", "listen", "closing", "all", "connected", "bound"}) {
    EXPECT_TRUE(ocsf::state_mask_for_name(state)) << state;
    EXPECT_NE(help.find(state), std::string::npos) << state << " is not in --help";
    EXPECT_NE(readme.find(std::string("`") + state + "`"), std::string::npos) << state;
    EXPECT_NE(man.find(state), std::string::npos) << state;
  }
}

}  // namespace
}  // namespace sockstate::cli

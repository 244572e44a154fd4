// The built binary as a user runs it: exit codes, one-line errors, nothing half-written.
// Needs no privilege: dumping the current namespace's sockets is open to everyone.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "support/netns.h"

namespace sockstate::testing {
namespace {

CommandResult sockstate(const std::string& args) {
  return run_command(std::string(SOCKSTATE_BINARY) + " " + args);
}

long lines(const std::string& s) {
  return std::count(s.begin(), s.end(), '\n');
}

TEST(CliE2e, UsageErrorsAreOneLineExitTwo) {
  for (const char* args :
       {"", "frobnicate", "snapshot --bogus", "snapshot --state establish", "snapshot --port 70000",
        "snapshot --family ipx", "snapshot extra", "--log-level chatty snapshot"}) {
    SCOPED_TRACE(args);
    const CommandResult r = sockstate(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(r.output.empty()) << r.output;
    EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
    EXPECT_EQ(r.error_output.rfind("sockstate: ", 0), 0U) << r.error_output;
  }
}

TEST(CliE2e, HelpAndVersionGoToStdout) {
  CommandResult r = sockstate("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.rfind("sockstate ", 0), 0U);
  EXPECT_TRUE(r.error_output.empty());
  r = sockstate("snapshot --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--state"), std::string::npos);
}

TEST(CliE2e, SnapshotOfThisNamespaceIsValidOcsf) {
  const CommandResult r = sockstate("snapshot --state all,bound");
  ASSERT_EQ(r.exit_code, 0) << r.error_output;
  EXPECT_TRUE(r.error_output.empty()) << r.error_output;
  if (r.output.empty()) {
    GTEST_SKIP() << "no TCP socket in this namespace to check";
  }
  EXPECT_EQ(r.output.back(), '\n');
  const CommandResult check = run_command(
      std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK + " --require-tcp-state",
      r.output, std::chrono::seconds(60));
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

// Each version mode from the real binary, through that version's schema.
TEST(CliE2e, SnapshotInEachOcsfVersionIsValidForIt) {
  for (const char* version : {"1.8.0", "1.5.0", "1.1.0"}) {
    const CommandResult r = sockstate(std::string("snapshot --ocsf-version ") + version);
    ASSERT_EQ(r.exit_code, 0) << r.error_output;
    if (r.output.empty()) {
      GTEST_SKIP() << "no TCP socket in this namespace to check";
    }
    EXPECT_NE(r.output.find(std::string("\"version\":\"") + version + "\""), std::string::npos);
    const CommandResult check =
        run_command(std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK +
                        " --ocsf-version " + version + " --require-tcp-state",
                    r.output, std::chrono::seconds(60));
    EXPECT_EQ(check.exit_code, 0) << version << ": " << check.output;
  }
  const CommandResult bad = sockstate("snapshot --ocsf-version 1.3.0");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.error_output, "sockstate: --ocsf-version: '1.3.0' is not 1.8.0, 1.5.0 or 1.1.0\n");
  EXPECT_TRUE(bad.output.empty());
}

TEST(CliE2e, SummaryLineAtInfoLevel) {
  const CommandResult r = sockstate("--log-level info snapshot");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
  EXPECT_NE(r.error_output.find("records"), std::string::npos) << r.error_output;
  EXPECT_NE(r.error_output.find(std::to_string(lines(r.output)) + " records"), std::string::npos)
      << r.error_output;
}

// A real netlink failure: with every inherited descriptor above 2 closed and four
// allowed, stdin, stdout, stderr and the --output file use them all (the dynamic loader
// needs one free until then, so the limit cannot be lower), and the NETLINK_SOCK_DIAG
// socket cannot be opened (EMFILE).
TEST(CliE2e, NetlinkFailureIsOneLineExitOne) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under the sanitizers their runtime needs descriptors this test takes away "
                  "(UBSan opens a pipe to check memory): the plain build runs it";
#endif
  char dir[] = "/tmp/sockstate-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string out = std::string(dir) + "/out.jsonl";
  const std::string script =
      "import os, resource, sys\n"
      "os.closerange(3, 1 << 20)\n"
      "resource.setrlimit(resource.RLIMIT_NOFILE, (4, 4))\n"
      "os.execv(sys.argv[1], [sys.argv[1], 'snapshot', '--output', sys.argv[2]])\n";
  const CommandResult r =
      run_command(std::string(SOCKSTATE_PYTHON3) + " - " + SOCKSTATE_BINARY + " " + out, script);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
  EXPECT_NE(r.error_output.find("NETLINK_SOCK_DIAG"), std::string::npos) << r.error_output;
  EXPECT_NE(r.error_output.find("Too many open files"), std::string::npos) << r.error_output;
  EXPECT_EQ(run_command("cat " + out).output, "");
  ::unlink(out.c_str());
  ::rmdir(dir);
}

// stdout is a pipe nobody reads: the write fails (EPIPE) and is reported, never a silent
// death by SIGPIPE.
// `sockstate snapshot | head`: the reader goes away; it ends as a filter does, killed by
// SIGPIPE, with nothing on stderr.
TEST(CliE2e, ClosedStdoutEndsQuietlyAsAFilterDoes) {
  if (sockstate("snapshot --state all,bound").output.empty()) {
    GTEST_SKIP() << "no TCP socket in this namespace: nothing would be written";
  }
  const std::string script =
      "import os, subprocess, sys\n"
      "r, w = os.pipe()\n"
      "os.close(r)\n"
      "p = subprocess.run([sys.argv[1], 'snapshot', '--state', 'all,bound'], stdout=w,\n"
      "                   stderr=subprocess.PIPE)\n"
      "sys.stdout.write('%d\\n%s' % (p.returncode, p.stderr.decode()))\n";
  const CommandResult r =
      run_command(std::string(SOCKSTATE_PYTHON3) + " - " + SOCKSTATE_BINARY, script);
  EXPECT_EQ(r.output, "-13\n") << "killed by SIGPIPE, stderr empty: " << r.output << r.error_output;
}

// --output never follows a symbolic link, never opens a FIFO or a device.
TEST(CliE2e, OutputIsARegularFileNeverALink) {
  char dir[] = "/tmp/sockstate-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string link = std::string(dir) + "/link";
  const std::string target = std::string(dir) + "/target";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  CommandResult r = sockstate("snapshot --output " + link);
  EXPECT_EQ(r.exit_code, 1) << r.error_output;
  EXPECT_NE(r.error_output.find("a symbolic link; refused"), std::string::npos) << r.error_output;
  EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
  EXPECT_NE(::access(target.c_str(), F_OK), 0) << "nothing created through the link";
  r = sockstate("snapshot --output /dev/full");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error_output.find("not a regular file"), std::string::npos) << r.error_output;
  const std::string fifo = std::string(dir) + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  r = sockstate("snapshot --output " + fifo);  // at once: no reader is waited for
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.error_output.find("not a regular file"), std::string::npos) << r.error_output;
  run_command("rm -rf " + std::string(dir));
}

TEST(CliE2e, HelpVersionAndGlobalOptionsAnywhere) {
  EXPECT_EQ(sockstate("-V").output, sockstate("--version").output);
  EXPECT_NE(sockstate("help").output.find("SUBCOMMAND"), std::string::npos);
  const CommandResult snap_help = sockstate("help snapshot");
  EXPECT_EQ(snap_help.exit_code, 0);
  EXPECT_NE(snap_help.output.find("--state"), std::string::npos) << snap_help.output;
  const CommandResult late = sockstate("snapshot --state listen --log-level info");
  EXPECT_EQ(late.exit_code, 0) << late.error_output;
  EXPECT_NE(late.error_output.find("snapshot:"), std::string::npos) << "the info summary";
}

TEST(CliE2e, CheckConfigChecksWhatRunWouldFailOn) {
  char dir[] = "/tmp/sockstate-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/c.json";
  auto with_sink = [&](const std::string& sink) {
    std::ofstream(path) << "{\"sinks\": [" << sink << "]}";
    return sockstate("check-config " + path);
  };
  CommandResult r = with_sink(R"({"type": "file", "path": ")" + std::string(dir) + R"(/r.jsonl"})");
  EXPECT_EQ(r.exit_code, 0) << r.error_output;
  r = with_sink(R"({"type": "file", "path": ")" + std::string(dir) + R"(/missing/r.jsonl"})");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.error_output.find("No such file or directory"), std::string::npos) << r.error_output;
  EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
  r = with_sink(R"({"type": "file", "path": ")" + std::string(dir) +
                R"(/r.jsonl", "group": "no-such-group-here"})");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.error_output.find("no such group"), std::string::npos) << r.error_output;
  run_command("rm -rf " + std::string(dir));
}

// The probe's crash: with any command-line override, a document nested 100,000 deep was
// re-serialised and overflowed the stack (SIGSEGV). Now one line and exit 2.
TEST(CliE2e, HostileConfigWithOverridesIsOneLineExitTwo) {
  char dir[] = "/tmp/sockstate-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string deep = std::string(dir) + "/deep.json";
  std::ofstream(deep) << "{\"sinks\": " << std::string(100000, '[') << std::string(100000, ']')
                      << "}";
  CommandResult r = sockstate("run --poll-interval 1s --config " + deep);
  EXPECT_EQ(r.exit_code, 2) << r.error_output;
  EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
  EXPECT_NE(r.error_output.find("nested deeper than 16 levels"), std::string::npos)
      << r.error_output;
  const std::string fifo = std::string(dir) + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  r = sockstate("run --config " + fifo);  // returns at once: no writer is waited for
  EXPECT_EQ(r.exit_code, 2) << r.error_output;
  EXPECT_NE(r.error_output.find("not a regular file"), std::string::npos) << r.error_output;
  r = sockstate("run --poll-interval 1s --config /dev/zero");
  EXPECT_EQ(r.exit_code, 2) << r.error_output;
  run_command("rm -rf " + std::string(dir));
}

TEST(CliE2e, CheckConfig) {
  char dir[] = "/tmp/sockstate-e2e-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  // The example, its file sink moved to a directory that exists here.
  const std::string example = std::string(dir) + "/example.json";
  run_command("sed 's|/var/log/sockstate/|" + std::string(dir) +
              "/|' " SOCKSTATE_SOURCE_DIR "/packaging/sockstate.example.json > " + example);
  CommandResult r = sockstate("check-config " + example);
  EXPECT_EQ(r.exit_code, 0) << r.error_output;
  EXPECT_NE(r.output.find("valid"), std::string::npos) << r.output;
  const std::string bad = std::string(dir) + "/bad.json";
  run_command(
      "printf '{\"sinks\": [{\"type\": \"tcp\", \"host\": \"127.0.0.1\", "
      "\"port\": 70000}]}' > " +
      bad);
  r = sockstate("check-config " + bad);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.output.empty());
  EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
  EXPECT_NE(r.error_output.find("sinks[0].port"), std::string::npos) << r.error_output;
  // A file sink in a directory that does not exist (the example's /var/log/sockstate on a
  // machine without the package): one line that says so and what to do.
  const std::string nodir = std::string(dir) + "/nodir.json";
  run_command("printf '{\"sinks\": [{\"type\": \"file\", \"path\": \"" + std::string(dir) +
              "/absent/x.jsonl\"}]}' > " + nodir);
  r = sockstate("check-config " + nodir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(lines(r.error_output), 1) << r.error_output;
  EXPECT_NE(r.error_output.find("/absent of "), std::string::npos) << r.error_output;
  EXPECT_NE(r.error_output.find("No such file or directory (the package creates"),
            std::string::npos)
      << r.error_output;
  r = sockstate("check-config " + std::string(dir) + "/missing.json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.error_output.find("missing.json"), std::string::npos) << r.error_output;
  // run refuses the same bad file before doing anything, with the same line.
  r = sockstate("run --config " + bad);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.error_output.find("sinks[0].port"), std::string::npos) << r.error_output;
  EXPECT_TRUE(r.output.empty());
  run_command("rm -rf " + std::string(dir));
}

}  // namespace
}  // namespace sockstate::testing

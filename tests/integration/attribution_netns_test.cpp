// `sockstate snapshot --process --all-netns` and `sockstate run` against real processes
// in namespaces the test makes, one of them in a fake docker container cgroup: each
// socket found once, in its own namespace, with its process, user and container; every
// record passes the OCSF check with the profiles it declares. Needs root; skips without.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sockstate/proc/cgroup.h"
#include "support/holders.h"
#include "support/holders_test.h"
#include "support/netns.h"
#include "support/netns_test.h"
#include "support/process.h"

namespace sockstate::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::vector<json> parse_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      out.push_back(json::parse(line));
    }
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint64_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

void expect_ocsf_valid(const std::string& path) {
  const auto r = run_command(
      std::string(SOCKSTATE_PYTHON3) + " " + SOCKSTATE_OCSF_CHECK + " --require-tcp-state " + path,
      {}, 60s);
  EXPECT_EQ(r.exit_code, 0) << r.output << r.error_output;
}

class AttributionNetns : public HoldersNetnsTest {
 protected:
  void SetUp() override {
    HoldersNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    ASSERT_EQ(run_command("ip link set lo up").exit_code, 0);
  }

  void TearDown() override {
    holders_.reset();  // the processes go first: a cgroup with members cannot be removed
    for (const auto& name : netns_names_) {
      run_command("ip netns del " + name);
    }
    for (auto it = cgroups_.rbegin(); it != cgroups_.rend(); ++it) {
      for (int i = 0; i < 50 && ::rmdir(it->c_str()) != 0; ++i) {
        std::this_thread::sleep_for(20ms);  // the killed members are still leaving
      }
    }
    HoldersNetnsTest::TearDown();
  }

  // A named namespace (ip netns) with loopback up; returns its inode.
  std::uint64_t add_netns(const std::string& name) {
    const auto r = run_command("ip netns add " + name + " && ip -n " + name + " link set lo up");
    EXPECT_EQ(r.exit_code, 0) << r.error_output;
    netns_names_.push_back(name);
    return inode_of("/run/netns/" + name);
  }

  // A fake docker container's cgroup (systemd driver naming) under the cgroup v2 root;
  // returns its path, or empty (and skips) where cgroup v2 is not mounted writable.
  std::string make_container_cgroup(const std::string& id) {
    const std::string root = proc::find_cgroup2_mount();
    if (root.empty()) {
      return {};
    }
    // Under a slice, as systemd lays cgroups out: the scope is then the systemd unit.
    const std::string parent = root + "/sockstate-test-" + std::to_string(::getpid()) + ".slice";
    const std::string scope = parent + "/docker-" + id + ".scope";
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
      return {};
    }
    cgroups_.push_back(parent);
    if (::mkdir(scope.c_str(), 0755) != 0) {
      return {};
    }
    cgroups_.push_back(scope);
    return scope;
  }

  // Runs a holder in namespace `name` (and in `cgroup` when given): the shell moves itself
  // into the cgroup, then ip netns exec execs python there.
  std::optional<Holders::Holder> start_in(const std::string& name, std::uint16_t port,
                                          const std::string& cgroup = {}) {
    std::vector<std::string> wrapper;
    if (!cgroup.empty()) {
      wrapper = {"/bin/sh", "-c", "echo $$ > '" + cgroup + "/cgroup.procs' && exec \"$@\"", "sh"};
    }
    wrapper.insert(wrapper.end(), {"/usr/sbin/ip", "netns", "exec", name});
    auto h = holders_->start(port, wrapper);
    if (!h) {
      ADD_FAILURE() << holders_->error();
    }
    return h;
  }

  std::string snapshot(const std::string& args, const std::string& name) {
    const std::string out = dir_ + "/" + name + ".jsonl";
    const auto r =
        run_command(std::string(SOCKSTATE_BINARY) + " snapshot " + args + " > " + out, {}, 120s);
    EXPECT_EQ(r.exit_code, 0) << r.error_output;
    EXPECT_EQ(r.error_output.find("sockstate: error"), std::string::npos) << r.error_output;
    return out;
  }

  std::vector<std::string> netns_names_;
  std::vector<std::string> cgroups_;
};

TEST_F(AttributionNetns, SnapshotNamesProcessCommandLineAndUser) {
  const std::uint16_t port = 6101;
  auto root_holder = holders_->start(port, {}, false, {"--marker", "tab\there", "\xff\xfe"});
  ASSERT_TRUE(root_holder) << holders_->error();
  auto nobody = holders_->start(
      port + 1, {kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}, false);
  ASSERT_TRUE(nobody) << holders_->error();

  const auto a =
      parse_lines(read_file(snapshot("--process --port " + std::to_string(port), "process-a")));
  const auto b =
      parse_lines(read_file(snapshot("--process --port " + std::to_string(port + 1), "process-b")));
  ASSERT_EQ(a.size(), 3U);  // the listener and both ends of the connection
  ASSERT_EQ(b.size(), 3U);
  for (const json& r : a) {
    const json& p = r["actor"]["process"];
    EXPECT_EQ(p["pid"], root_holder->pid) << r.dump();
    EXPECT_EQ(p["name"], "python3");
    // NUL separators and the tab become spaces; the invalid bytes U+FFFD each.
    const std::string cmd = p["cmd_line"];
    EXPECT_EQ(cmd.substr(0, std::string(kPython).size()), kPython);
    EXPECT_NE(cmd.find(" --marker tab here \xEF\xBF\xBD\xEF\xBF\xBD"), std::string::npos) << cmd;
    EXPECT_EQ(p["user"], (json{{"uid", "0"}, {"name", "root"}}));
    EXPECT_EQ(r["actor"]["user"],
              (json{{"uid", "0"}, {"name", "root"}, {"type_id", 2}, {"type", "Admin"}}));
    EXPECT_EQ(p["file"]["path"], std::filesystem::canonical(
                                     std::string(kPython).substr(0, std::string(kPython).find(' ')))
                                     .string())
        << "the executable, from /proc/PID/exe";
    EXPECT_GT(p["parent_process"]["pid"].get<int>(), 0);
    EXPECT_TRUE(p.contains("created_time"));
    EXPECT_EQ(r["unmapped"]["inode"].get<std::uint64_t>() != 0, true);
    EXPECT_FALSE(r["metadata"]["profiles"].dump().find("container") != std::string::npos);
    EXPECT_TRUE(r["unmapped"].contains("cgroup")) << r.dump();
  }
  for (const json& r : b) {
    EXPECT_EQ(r["actor"]["process"]["pid"], nobody->pid);
    EXPECT_EQ(r["actor"]["process"]["user"], (json{{"uid", "65534"}, {"name", "nobody"}}));
    EXPECT_EQ(r["actor"]["user"]["uid"], "65534") << "the socket's owner";
  }
  // One process, one process uid; two processes, two.
  EXPECT_EQ(a[0]["actor"]["process"]["uid"], a[1]["actor"]["process"]["uid"]);
  EXPECT_NE(a[0]["actor"]["process"]["uid"], b[0]["actor"]["process"]["uid"]);
  // Community ID: both ends of the one connection name the same flow.
  std::set<std::string> flows;
  for (const json& r : a) {
    if (r["connection_info"].contains("community_uid")) {
      flows.insert(r["connection_info"]["community_uid"].get<std::string>());
    }
  }
  EXPECT_EQ(flows.size(), 1U);
  expect_ocsf_valid(dir_ + "/process-a.jsonl");
  expect_ocsf_valid(dir_ + "/process-b.jsonl");
}

TEST_F(AttributionNetns, ProcessesExitingMidScanDoNotBreakTheSnapshot) {
  // A shell that keeps starting short-lived processes that hold sockets: some are gone
  // between the listing of /proc and the reading of their fds or attributes.
  const std::string churn =
      "while :; do " + std::string(kPython) +
      " -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen()' & "
      "sleep 0.01; done";
  std::string error;
  auto p = BackgroundProcess::start({"/bin/sh", "-c", churn}, {}, dir_ + "/churn.out",
                                    dir_ + "/churn.err", &error);
  ASSERT_TRUE(p) << error;
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 10; ++i) {
    const auto r = run_command(std::string(SOCKSTATE_BINARY) + " snapshot --process", {}, 60s);
    ASSERT_EQ(r.exit_code, 0) << r.error_output;
    for (const json& rec : parse_lines(r.output)) {
      EXPECT_EQ(rec["class_uid"], 4001);
    }
  }
  p->signal(SIGKILL);
  run_command("pkill -f 'import socket; s=socket.socket(); s.bind'");
}

TEST_F(AttributionNetns, AllNamespacesEachSocketOnceWithItsContainer) {
  const std::string tag = std::to_string(::getpid());
  const std::string id(64, 'e');
  const std::string cgroup = make_container_cgroup(id);
  if (cgroup.empty()) {
    GTEST_SKIP() << "no writable cgroup v2 hierarchy";
  }
  // Three namespaces, the same port in each: the 4-tuples repeat, the sockets do not.
  const std::uint16_t port = 6201;
  std::map<std::uint64_t, std::string> names;
  std::map<std::uint64_t, pid_t> pids;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "sst-" + tag + "-" + std::to_string(i);
    const std::uint64_t inode = add_netns(name);
    ASSERT_NE(inode, 0U);
    names[inode] = name;
    auto h = start_in(name, port, i == 0 ? cgroup : std::string());
    ASSERT_TRUE(h);
    pids[inode] = h->pid;
  }
  const std::uint64_t container_ns = inode_of("/run/netns/sst-" + tag + "-0");

  const std::string out =
      snapshot("--all-netns --process --port " + std::to_string(port), "all-netns");
  const auto records = parse_lines(read_file(out));
  std::map<std::uint64_t, int> per_ns;
  std::set<std::string> cookies;
  for (const json& r : records) {
    const auto ns = r["unmapped"]["netns"].get<std::uint64_t>();
    if (names.count(ns) == 0) {
      continue;  // another test's namespace
    }
    ++per_ns[ns];
    EXPECT_TRUE(cookies.insert(r["connection_info"]["uid"].get<std::string>()).second)
        << "socket written twice: " << r.dump();
    EXPECT_EQ(r["actor"]["process"]["pid"], pids[ns]) << r.dump();
    const bool contained = ns == container_ns;
    const std::string text = r.dump();
    if (contained) {
      EXPECT_EQ(r["metadata"]["profiles"], json::array({"host", "container"}));
      EXPECT_EQ(r["actor"]["process"]["container"], (json{{"uid", id}, {"runtime", "docker"}}));
      // The socket's own cgroup (INET_DIAG_CGROUP_ID) is the container's.
      const std::string path = r["unmapped"]["cgroup"];
      EXPECT_NE(path.find("/docker-" + id + ".scope"), std::string::npos) << path;
      EXPECT_EQ(r["unmapped"]["systemd_unit"], "docker-" + id + ".scope");
      // The local endpoint carries it (a listener's and an accepted socket's is dst, a
      // connecting socket's src); the peer's does not.
      const int with = (r.contains("src_endpoint") && r["src_endpoint"].contains("container")) +
                       (r.contains("dst_endpoint") && r["dst_endpoint"].contains("container"));
      EXPECT_EQ(with, 1) << text;
      const json& local = r["activity_id"] == 7 || !r["src_endpoint"].contains("container")
                              ? r["dst_endpoint"]
                              : r["src_endpoint"];
      EXPECT_EQ(local["container"], (json{{"uid", id}, {"runtime", "docker"}})) << text;
    } else {
      EXPECT_EQ(r["metadata"]["profiles"], json::array({"host"}));
      EXPECT_EQ(text.find("\"container\""), std::string::npos) << text;
    }
  }
  ASSERT_EQ(per_ns.size(), 3U) << read_file(out);
  for (const auto& [ns, n] : per_ns) {
    EXPECT_EQ(n, 3) << names[ns];  // listener + both ends, each once
  }
  expect_ocsf_valid(out);
}

// Waits until `path` holds a record for which `match` is true; returns it.
std::optional<json> wait_for_record(const std::string& path,
                                    const std::function<bool(const json&)>& match,
                                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::istringstream in(read_file(path));
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) {
        continue;
      }
      const json r = json::parse(line, nullptr, false);
      if (!r.is_discarded() && match(r)) {
        return r;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

// The records of `path` about namespace `netns`, for a failure's message.
std::string lines_about(const std::string& path, std::uint64_t netns) {
  std::istringstream in(read_file(path));
  std::string about;
  for (std::string line; std::getline(in, line);) {
    const json r = json::parse(line, nullptr, false);
    if (!r.is_discarded() && r["unmapped"].value("netns", 0ULL) == netns) {
      about += line + "\n";
    }
  }
  return about;
}

TEST_F(AttributionNetns, DaemonFollowsNamespacesAndNamesOwners) {
  const std::string tag = std::to_string(::getpid());
  const std::string id(64, 'f');
  const std::string cgroup = make_container_cgroup(id);
  if (cgroup.empty()) {
    GTEST_SKIP() << "no writable cgroup v2 hierarchy";
  }
  const std::string out = dir_ + "/daemon.jsonl";
  std::string error;
  auto notify = NotifySocket::create(&error);
  ASSERT_TRUE(notify) << error;
  auto daemon = BackgroundProcess::start({SOCKSTATE_BINARY, "run", "--all-netns", "--poll-interval",
                                          "200ms", "--no-baseline", "--output", out},
                                         {"NOTIFY_SOCKET=" + notify->path()}, dir_ + "/daemon.out",
                                         dir_ + "/daemon.err", &error);
  ASSERT_TRUE(daemon) << error;
  // Its first poll is done: what comes now comes after it (under load, and under the
  // sanitizers, that first poll can take longer than any fixed wait).
  ASSERT_TRUE(notify->wait_for("READY=1", 20s)) << read_file(dir_ + "/daemon.err");

  // A namespace that comes after the daemon, with a container's process in it.
  const std::string name = "sst-" + tag + "-late";
  const std::uint64_t ns = add_netns(name);
  const std::uint16_t port = 6301;
  auto h = start_in(name, port, cgroup);
  ASSERT_TRUE(h);
  // Ours: in the namespace and on the holder's port. A namespace's inode is reused once the
  // namespace is gone, and the daemon follows every namespace of the machine: records of
  // another test's namespace that had this inode before ours (-j2) must not count.
  auto in_ns = [ns, port](const json& r) {
    const auto on_port = [&r, port](const char* end) {
      return r.contains(end) && r[end].value("port", 0) == port;
    };
    return r["unmapped"].value("netns", 0ULL) == ns &&
           (on_port("dst_endpoint") || on_port("src_endpoint"));
  };
  auto listen = wait_for_record(
      out, [&](const json& r) { return in_ns(r) && r["activity_id"] == 7; }, 10s);
  ASSERT_TRUE(listen) << read_file(dir_ + "/daemon.err") << "records of namespace " << ns << ":\n"
                      << lines_about(out, ns);
  EXPECT_EQ((*listen)["actor"]["process"]["pid"], h->pid);
  EXPECT_EQ((*listen)["dst_endpoint"]["container"]["uid"], id);
  EXPECT_EQ((*listen)["metadata"]["profiles"], json::array({"host", "container"}));
  // Open, or Traffic when the connection was there at the namespace's first dump.
  auto open = wait_for_record(
      out,
      [&](const json& r) {
        return in_ns(r) && (r["activity_id"] == 1 || r["activity_id"] == 6) &&
               r.contains("src_endpoint");
      },
      10s);
  ASSERT_TRUE(open);
  EXPECT_FALSE(open->contains("start_time"));
  EXPECT_EQ((*open)["actor"]["process"]["pid"], h->pid);

  // The process dies: its sockets close in that namespace (destroy events from the
  // listener made inside it), each Close naming the owner the polls saw.
  holders_->processes().back().signal(SIGKILL);
  (void)holders_->processes().back().wait(5s);
  // Until the three Closes are there (a loaded machine may take more than a few polls).
  for (int i = 0; i < 200; ++i) {
    int seen = 0;
    for (const json& r : parse_lines(read_file(out))) {
      seen += (in_ns(r) && r["activity_id"] == 2) ? 1 : 0;
    }
    if (seen >= 3) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(500ms);  // and no more after them
  const auto records = parse_lines(read_file(out));
  int closes = 0;
  std::set<std::string> closed;
  for (const json& r : records) {
    if (in_ns(r) && r["activity_id"] == 2) {
      ++closes;
      EXPECT_TRUE(closed.insert(r["metadata"]["correlation_uid"].get<std::string>()).second);
      EXPECT_EQ(r["actor"]["process"]["pid"], h->pid) << r.dump();
      EXPECT_EQ(r["actor"]["process"]["container"]["uid"], id);
    }
  }
  EXPECT_EQ(closes, 3) << "listener and both ends";

  // The namespace goes away: the daemon lets it go and goes on.
  run_command("ip netns del " + name);
  std::this_thread::sleep_for(800ms);
  daemon->signal(SIGTERM);
  ASSERT_EQ(daemon->wait(10s), std::optional<int>(0)) << read_file(dir_ + "/daemon.err");
  const std::string log = read_file(dir_ + "/daemon.err");
  EXPECT_NE(log.find("network namespace " + std::to_string(ns) + " is gone"), std::string::npos)
      << log;
  expect_ocsf_valid(out);
}

TEST_F(AttributionNetns, DaemonNamesTheOwnerOfAConnectionMadeAfterItStarted) {
  const std::string out = dir_ + "/own.jsonl";
  std::string error;
  auto notify = NotifySocket::create(&error);
  ASSERT_TRUE(notify) << error;
  auto daemon = BackgroundProcess::start(
      {SOCKSTATE_BINARY, "run", "--poll-interval", "200ms", "--output", out},
      {"NOTIFY_SOCKET=" + notify->path()}, dir_ + "/own.out", dir_ + "/own.err", &error);
  ASSERT_TRUE(daemon) << error;
  ASSERT_TRUE(notify->wait_for("READY=1", 20s)) << read_file(dir_ + "/own.err");  // polled once
  auto h = holders_->start(6401, {kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups"});
  ASSERT_TRUE(h) << holders_->error();
  auto open = wait_for_record(
      out,
      [](const json& r) {
        return r["activity_id"] == 1 && r.dump().find("\"port\":6401") != std::string::npos;
      },
      10s);
  ASSERT_TRUE(open) << read_file(dir_ + "/own.err");
  EXPECT_EQ((*open)["actor"]["process"]["pid"], h->pid);
  EXPECT_EQ((*open)["actor"]["user"]["name"], "nobody");
  daemon->signal(SIGTERM);
  ASSERT_EQ(daemon->wait(10s), std::optional<int>(0));
  expect_ocsf_valid(out);
}

}  // namespace
}  // namespace sockstate::testing

namespace sockstate::testing {
namespace {

// Without the privilege to enter namespaces, --all-netns is a failure as for `run`: one
// line and exit 1, not an empty snapshot that says everything is fine.
TEST_F(AttributionNetns, AllNetnsWithoutPrivilegeIsAnError) {
  const CommandResult r = run_command("setpriv --reuid=65534 --regid=65534 --clear-groups " +
                                      std::string(SOCKSTATE_BINARY) + " snapshot --all-netns");
  EXPECT_EQ(r.exit_code, 1) << r.output << r.error_output;
  EXPECT_TRUE(r.output.empty());
  EXPECT_NE(r.error_output.find("no network namespace could be entered"), std::string::npos)
      << r.error_output;
  EXPECT_EQ(std::count(r.error_output.begin(), r.error_output.end(), '\n'), 1) << r.error_output;
}

}  // namespace
}  // namespace sockstate::testing

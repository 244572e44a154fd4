// `sockstate run` under faults, with the real binary in the test's own network namespace:
// sinks that stall, go away or fill their disk, reloads that change sinks or fail, SIGHUP
// storms, a stderr nobody reads. Each time the collector keeps collecting, memory stays
// bounded in bytes, what is lost is counted, and delivery resumes.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <map>
#include <set>

#include "support/daemon_harness.h"

namespace sockstate::testing {
namespace {

using Stats = std::map<std::string, std::uint64_t>;

// The last "stats:" line of a log, as key -> value. Sink keys are spelled out in full:
// "sink.file:/x.written", "sink.file:/x.dropped", ...
Stats last_stats(const std::string& log) {
  Stats out;
  const auto at = log.rfind("stats: ");
  if (at == std::string::npos) {
    return out;
  }
  std::istringstream words(log.substr(at + 7, log.find('\n', at) - at - 7));
  std::string sink;
  for (std::string word; words >> word;) {
    const auto eq = word.rfind('=');
    if (eq == std::string::npos) {
      continue;
    }
    std::string key = word.substr(0, eq);
    if (key.rfind("sink.", 0) == 0) {
      sink = key.substr(0, key.rfind('.'));
    } else if (key[0] == '.') {
      key = sink + key;
    }
    out[key] = std::stoull(word.substr(eq + 1));
  }
  return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// `n` connections to `port` (accepted and closed at once): 2n Close records to come.
void churn(int listener, std::uint16_t port, int n) {
  for (int i = 0; i < n; ++i) {
    UniqueFd c = connect_to(port);
    UniqueFd s(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  }
}

UniqueFd unix_listener(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strncpy(un.sun_path, path.c_str(), sizeof un.sun_path - 1);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&un), sizeof un), 0) << path;
  EXPECT_EQ(::listen(fd.get(), 16), 0);
  return fd;
}

// Reads a shipper's end of a socket sink until `want` Close records of `port` came (their
// correlation uids into `closes`) or `timeout`: every line that arrives must be whole JSON.
void read_closes(int fd, std::uint16_t port, std::size_t want, milliseconds timeout,
                 std::set<std::string>& closes) {
  std::string got;
  std::array<char, 65536> buf{};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (closes.size() < want && std::chrono::steady_clock::now() < deadline) {
    pollfd r{fd, POLLIN, 0};
    if (::poll(&r, 1, 100) != 1) {
      continue;
    }
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    ASSERT_GT(n, 0);
    got.append(buf.data(), static_cast<std::size_t>(n));
    for (auto nl = got.find('\n'); nl != std::string::npos; nl = got.find('\n')) {
      const json rec = json::parse(got.substr(0, nl), nullptr, false);
      ASSERT_FALSE(rec.is_discarded()) << got.substr(0, nl);
      if (rec["activity_id"] == kClose && dst_port(rec) == port) {
        closes.insert(rec["metadata"]["correlation_uid"].get<std::string>());
      }
      got.erase(0, nl + 1);
    }
  }
}

class DaemonFaults : public DaemonNetns {
 protected:
  std::string log() const { return file(stderr_path_); }

  // Waits until the log has `what` (true), or the timeout.
  bool log_has(const std::string& what, milliseconds timeout = milliseconds(10000)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (log().find(what) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return true;
  }

  // Waits for a stats line newer than the log's current end, and returns it.
  Stats next_stats() const {
    const std::size_t from = log().size();
    const auto deadline = std::chrono::steady_clock::now() + milliseconds(5000);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string l = log();
      if (l.size() > from && l.find("stats: ", from) != std::string::npos && l.back() == '\n') {
        return last_stats(l);
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    ADD_FAILURE() << "no stats line";
    return {};
  }

  void write_config(json config) {
    if (!config.contains("poll_interval")) {
      config["poll_interval"] = "300ms";
    }
    config["traffic_interval"] = "0";
    std::ofstream(config_path_ + ".new") << config.dump(2);
    ASSERT_EQ(::rename((config_path_ + ".new").c_str(), config_path_.c_str()), 0);
  }
};

// A unix sink whose reader stalls: memory stays within its queue_size, the other sink and
// the collector go on. A reload that drops it returns at once (it delivers in the
// background and says what it could not), and no counter starts again from zero.
TEST_F(DaemonFaults, ReloadRetiresAStalledSinkWithoutBlockingOrResettingCounters) {
  const std::string stall_path = dir_ + "/stall.sock";
  UniqueFd shipper = unix_listener(stall_path);
  const json file_sink = {{"type", "file"}, {"path", records_path_}};
  const json stalled_sink = {{"type", "unix"}, {"path", stall_path}, {"queue_size", "64KiB"}};
  start(json{{"stats_interval", "1s"}, {"sinks", json::array({file_sink, stalled_sink})}});
  const std::uint16_t port = 5030;
  UniqueFd l = listen_on(port);  // its Listen record makes the unix sink connect
  UniqueFd conn(::accept4(shipper.get(), nullptr, nullptr, SOCK_CLOEXEC));  // never read
  ASSERT_TRUE(conn.valid());
  const std::string stalled = "sink.unix:" + stall_path;
  const std::string filed = "sink.file:" + records_path_;
  Stats before;
  for (int round = 0; round < 40 && before[stalled + ".dropped"] == 0; ++round) {
    churn(l.get(), port, 200);
    before = next_stats();
  }
  ASSERT_GT(before[stalled + ".dropped"], 0U) << "the unix sink never filled";
  EXPECT_LE(before[stalled + ".queued_bytes"], 64U * 1024) << "memory beyond queue_size";
  EXPECT_GT(before[stalled + ".queued"], 0U);
  EXPECT_EQ(before[filed + ".dropped"], 0U) << "the stalled sink held up the other one";

  write_config(
      json{{"stats_interval", "1s"},
           {"sinks", json::array({file_sink, {{"type", "file"}, {"path", dir_ + "/b"}}})}});
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(daemon_->signal(SIGHUP));
  ASSERT_TRUE(log_has("configuration reloaded", milliseconds(3000))) << log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(1000)) << "the reload blocked";
  churn(l.get(), port, 50);
  ASSERT_TRUE(log_has("sink unix:" + stall_path + ": retired by reload; ", milliseconds(10000)))
      << log();
  Stats after = next_stats();
  EXPECT_GE(after[filed + ".written"], before[filed + ".written"] + 100) << "counter restarted";
  EXPECT_GE(after[stalled + ".dropped"], before[stalled + ".dropped"] + 1);
  EXPECT_EQ(after[stalled + ".queued"], 0U);
  // Every record the stalled sink was given is accounted for: the connection's socket
  // buffer took some (written), the rest dropped; its count stops at the reload.
  EXPECT_LT(after[stalled + ".written"] + after[stalled + ".dropped"], after["records"]);
  stop();
}

// Refused reloads (a bad value, a sink that cannot start) keep the configuration, the
// sinks and their counters; the records go on.
TEST_F(DaemonFaults, AFailedReloadKeepsTheConfigurationAndItsCounters) {
  start(json{{"stats_interval", "1s"}});
  const std::uint16_t port = 5031;
  UniqueFd l = listen_on(port);
  churn(l.get(), port, 20);
  wait_for([&](const auto& all) { return with(all, kClose, port).size() >= 40; });
  const std::string filed = "sink.file:" + records_path_;
  const Stats before = next_stats();
  ASSERT_GE(before.at(filed + ".written"), 40U);

  write_config(json{{"poll_interval", "soon"}});
  ASSERT_TRUE(daemon_->signal(SIGHUP));
  ASSERT_TRUE(log_has("reload refused")) << log();
  write_config(json{{"sinks", json::array({{{"type", "file"}, {"path", dir_ + "/no/such/x"}}})}});
  ASSERT_TRUE(daemon_->signal(SIGHUP));
  const auto refused = [&] { return count_of(log(), "reload refused"); };
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(5000);
  while (refused() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(refused(), 2U) << log();
  EXPECT_EQ(count_of(log(), "configuration reloaded"), 0U);

  churn(l.get(), port, 20);
  auto all = wait_for([&](const auto& r) { return with(r, kClose, port).size() >= 80; });
  EXPECT_EQ(with(all, kClose, port).size(), 80U);
  const Stats after = next_stats();
  EXPECT_GE(after.at(filed + ".written"), before.at(filed + ".written") + 40);
  EXPECT_EQ(after.count("sink.file:" + dir_ + "/no/such/x.written"), 0U);
  stop();
}

// A storm of SIGHUPs while connections come and go: every connection closes once, in a
// file that was reopened all along; the daemon stops cleanly.
TEST_F(DaemonFaults, SighupStormLosesAndRepeatsNothing) {
  start();
  const std::uint16_t port = 5032;
  UniqueFd l = listen_on(port);
  std::atomic<bool> done{false};
  std::thread storm([&] {
    while (!done.load()) {
      daemon_->signal(SIGHUP);
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  constexpr int kConnections = 400;
  churn(l.get(), port, kConnections);
  std::this_thread::sleep_for(milliseconds(500));
  done = true;
  storm.join();
  auto all =
      wait_for([&](const auto& r) { return with(r, kClose, port).size() >= 2 * kConnections; });
  EXPECT_TRUE(daemon_->running());
  stop();
  all = records();
  std::set<std::string> ids;
  for (const auto& r : with(all, kClose, port)) {
    EXPECT_TRUE(ids.insert(r["metadata"]["correlation_uid"].get<std::string>()).second);
  }
  EXPECT_EQ(ids.size(), 2U * kConnections);
  EXPECT_GE(count_of(log(), "configuration reloaded"), 10U);
}

// stderr is a pipe nobody reads: collection goes on and SIGTERM is obeyed; the lines that
// could not be written are counted and, once stderr takes lines again, reported.
TEST_F(DaemonFaults, AStalledStderrStopsNeitherCollectionNorSigterm) {
  const std::string fifo = dir_ + "/stderr.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  UniqueFd pipe(::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));  // the reader, asleep
  ASSERT_TRUE(pipe.valid());
  ASSERT_GT(::fcntl(pipe.get(), F_SETPIPE_SZ, 4096), 0);
  stderr_path_ = fifo;
  start(json{{"log_level", "info"}});
  std::array<char, 4096> buf{};
  while (::read(pipe.get(), buf.data(), buf.size()) > 0) {  // the startup lines
  }
  const std::string filler(64, '#');
  while (::write(pipe.get(), filler.data(), filler.size()) > 0) {
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(daemon_->signal(SIGHUP));  // each logs "configuration reloaded": nowhere to go
  }
  const std::uint16_t port = 5033;
  UniqueFd l = listen_on(port);
  churn(l.get(), port, 10);
  auto all = wait_for([&](const auto& r) { return with(r, kClose, port).size() >= 20; });
  EXPECT_EQ(with(all, kClose, port).size(), 20U) << "collection stopped on stderr";

  ASSERT_TRUE(daemon_->signal(SIGTERM));
  const auto status = daemon_->wait(milliseconds(8000));
  ASSERT_TRUE(status) << "SIGTERM waited on stderr";
  EXPECT_EQ(*status, 0);
  // Now read what got through: the filler, then (room was made only by us reading, after
  // the daemon ended) nothing, or the lines written once there was room.
  std::string got;
  for (ssize_t n; (n = ::read(pipe.get(), buf.data(), buf.size())) > 0;) {
    got.append(buf.data(), static_cast<std::size_t>(n));
  }
  EXPECT_EQ(got.find(filler), 0U);
  EXPECT_EQ(count_of(got, "configuration reloaded"), 0U) << "a line was written into a full pipe";
}

// The same, but the reader wakes up: the next line says how many were lost.
TEST_F(DaemonFaults, LogLinesLostToAStalledStderrAreReported) {
  const std::string fifo = dir_ + "/stderr.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  UniqueFd pipe(::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(pipe.valid());
  ASSERT_GT(::fcntl(pipe.get(), F_SETPIPE_SZ, 4096), 0);
  stderr_path_ = fifo;
  start(json{{"log_level", "info"}});
  std::string got;
  std::array<char, 65536> buf{};
  auto drain = [&] {
    for (ssize_t n; (n = ::read(pipe.get(), buf.data(), buf.size())) > 0;) {
      got.append(buf.data(), static_cast<std::size_t>(n));
    }
  };
  drain();
  const std::string filler(64, '#');
  while (::write(pipe.get(), filler.data(), filler.size()) > 0) {
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(daemon_->signal(SIGHUP));
    std::this_thread::sleep_for(milliseconds(100));
  }
  drain();
  ASSERT_GT(::fcntl(pipe.get(), F_SETPIPE_SZ, 1 << 20), 0);
  ASSERT_TRUE(daemon_->signal(SIGHUP));  // this line gets through, after the count
  std::this_thread::sleep_for(milliseconds(300));
  stop();
  drain();
  const auto lost =
      got.find("sockstate: warning: 3 log line(s) dropped: stderr was not writable\n");
  ASSERT_NE(lost, std::string::npos) << got;
  EXPECT_NE(got.find("configuration reloaded", lost), std::string::npos) << got;
  EXPECT_NE(last_stats(got).count("log_lines_dropped"), 0U) << got;
  EXPECT_EQ(last_stats(got)["log_lines_dropped"], 3U) << got;
}

// A tmpfs the test fills: the file sink's writes fail (ENOSPC), the collector goes on,
// drops are counted and logged once; room again, delivery resumes, lines stay whole.
TEST_F(DaemonFaults, AFullDiskDropsAreCountedAndDeliveryResumes) {
  const std::string mnt = dir_ + "/full";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  // Room for the startup records (the suite's earlier tests leave sockets in the namespace);
  // the filler takes the rest, and gives it back when removed.
  ASSERT_EQ(run_command("mount -t tmpfs -o size=4m tmpfs " + mnt).exit_code, 0);
  struct Unmount {
    std::string at;
    ~Unmount() { run_command("umount " + at); }
  } unmount{mnt};
  const std::string full_path = mnt + "/records.jsonl";
  start(json{{"stats_interval", "1s"},
             {"sinks", json::array({{{"type", "file"}, {"path", records_path_}},
                                    {{"type", "file"}, {"path", full_path}}})}});
  {
    UniqueFd filler(::open((mnt + "/filler").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    const std::string block(4096, 'f');
    while (::write(filler.get(), block.data(), block.size()) > 0) {
    }
    ASSERT_EQ(errno, ENOSPC);
  }
  const std::uint16_t port = 5034;
  UniqueFd l = listen_on(port);
  churn(l.get(), port, 30);
  ASSERT_TRUE(log_has("sink file:" + full_path + ": failing: write " + full_path +
                      ": No space left on device (records are dropped and counted)"))
      << log();
  const std::string full = "sink.file:" + full_path;
  const Stats during = next_stats();
  EXPECT_GT(during.at(full + ".dropped"), 0U);
  EXPECT_GT(during.at(full + ".errors"), 0U);
  EXPECT_TRUE(daemon_->running());

  ASSERT_EQ(::unlink((mnt + "/filler").c_str()), 0);
  const std::uint16_t later = 5035;
  UniqueFd l2 = listen_on(later);
  churn(l2.get(), later, 30);
  ASSERT_TRUE(log_has("sink file:" + full_path + ": delivering again")) << log();
  wait_for([&](const auto& all) { return with(all, kClose, later).size() >= 60; });
  stop();
  EXPECT_EQ(count_of(log(), ": failing: "), 1U) << "one line per transition, not per record";
  const auto resumed = records({full_path});  // parses every line: none is cut
  EXPECT_EQ(with(resumed, kClose, later).size(), 60U);
  const Stats end = last_stats(log());
  EXPECT_EQ(end.at(full + ".written") + end.at(full + ".dropped"),
            end.at("sink.file:" + records_path_ + ".written"))
      << "a record neither written nor counted as dropped";
}

// A unix sink's shipper goes away and comes back: records wait in the queue meanwhile
// and arrive, every one, when it returns; one log line each way.
TEST_F(DaemonFaults, ASinkThatGoesAwayAndReturnsGetsWhatWasQueued) {
  const std::string path = dir_ + "/shipper.sock";
  auto shipper = std::make_optional(unix_listener(path));
  start(json{
      {"sinks", json::array({{{"type", "file"}, {"path", records_path_}},
                             {{"type", "unix"}, {"path", path}, {"reconnect_max", "200ms"}}})}});
  const std::uint16_t port = 5036;
  UniqueFd l = listen_on(port);  // its Listen record makes the unix sink connect
  UniqueFd first(::accept4(shipper->get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(first.valid());
  first = UniqueFd();
  shipper.reset();
  ::unlink(path.c_str());
  churn(l.get(), port, 25);
  wait_for([&](const auto& all) { return with(all, kClose, port).size() >= 50; });
  ASSERT_TRUE(log_has("sink unix:" + path + ": not connected: ")) << log();

  shipper.emplace(unix_listener(path));
  UniqueFd second(::accept4(shipper->get(), nullptr, nullptr, SOCK_CLOEXEC));  // reconnects
  ASSERT_TRUE(second.valid());
  // Every line that arrives is whole; the Closes of the connections made while the shipper
  // was away are among them (with other records: earlier tests' TIME-WAIT expiring).
  std::set<std::string> closes;
  read_closes(second.get(), port, 50, milliseconds(10000), closes);
  EXPECT_EQ(closes.size(), 50U);
  ASSERT_TRUE(log_has("sink unix:" + path + ": connected")) << log();
  stop();
  EXPECT_EQ(count_of(log(), "sink unix:" + path + ": not connected"), 1U) << log();
}

// A close burst faster than a sink takes it: while the sink's queue is half full the
// destroy events wait in the kernel's buffer, so a queue of 200 records carries 2,000
// Closes, none dropped, once its reader reads again (within half a poll interval).
TEST_F(DaemonFaults, DestroyEventsWaitWhileASinkIsHalfFull) {
  const std::string path = dir_ + "/slow.sock";
  UniqueFd shipper = unix_listener(path);
  const std::uint16_t port = 5039;
  UniqueFd l = listen_on(port);  // its baseline record makes the sink connect
  // Polls 10 s apart: the Closes come from destroy events, held for at most 5 s.
  start(json{{"poll_interval", "10s"},
             {"stats_interval", "1s"},
             {"sinks", json::array({{{"type", "unix"}, {"path", path}, {"queue", 200}}})}});
  UniqueFd reader(::accept4(shipper.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  churn(l.get(), port, 1000);  // 2,000 Closes, about 3 MB: far more than the socket holds
  std::this_thread::sleep_for(milliseconds(1000));  // the reader stalls meanwhile
  std::set<std::string> closes;
  read_closes(reader.get(), port, 2000, milliseconds(20000), closes);
  EXPECT_EQ(closes.size(), 2000U);
  const Stats st = next_stats();
  const std::string sink = "sink.unix:" + path;
  EXPECT_EQ(st.at(sink + ".dropped"), 0U) << log();
  EXPECT_GE(st.at("event_holds"), 1U) << "the queue never reached half: the test proves nothing";
  stop();
}

// Destroy events held back when SIGTERM comes are read at stop and handed to the sinks:
// what the stalled sink cannot take by its deadline is dropped and counted, none vanishes.
TEST_F(DaemonFaults, HeldDestroyEventsAreReadAtStop) {
  const std::string path = dir_ + "/stuck.sock";
  UniqueFd shipper = unix_listener(path);
  const std::uint16_t port = 5040;
  UniqueFd l = listen_on(port);
  start(json{{"poll_interval", "10s"},
             {"stats_interval", "1s"},
             {"sinks", json::array({{{"type", "unix"}, {"path", path}, {"queue", 200}}})}});
  UniqueFd reader(::accept4(shipper.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  churn(l.get(), port, 1000);  // 2,000 destroy events; the reader never reads
  const Stats held = next_stats();
  EXPECT_GE(held.at("event_holds"), 1U) << log();
  EXPECT_LT(held.at("destroy_events"), 2000U) << "nothing was held: the test proves nothing";
  stop();
  const Stats last = last_stats(log());
  const std::string sink = "sink.unix:" + path;
  EXPECT_GE(last.at("destroy_events"), 2000U) << log();
  EXPECT_EQ(last.at(sink + ".written") + last.at(sink + ".dropped"), last.at("records")) << log();
  EXPECT_GT(last.at(sink + ".dropped"), 0U) << log();
}

// Processes that connect and exit at once while the daemon walks /proc for owners: their
// /proc entries vanish mid-walk. The daemon goes on, and every connection closes once.
TEST_F(DaemonFaults, ProcessesVanishingFromProcMidWalk) {
  start(json{{"process", true}, {"stats_interval", "1s"}});
  const std::uint16_t port = 5037;
  UniqueFd l = listen_on(port);
  constexpr int kChildren = 150;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Only async-signal-safe calls after fork() in a threaded test process.
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      const sockaddr_in a = loopback(port);
      const int ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
      ::_exit(ok == 0 ? 0 : 1);
    }
    UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto all =
      wait_for([&](const auto& r) { return with(r, kClose, port).size() >= 2U * kChildren; });
  EXPECT_TRUE(daemon_->running());
  stop();
  std::set<std::string> ids;
  for (const auto& r : with(records(), kClose, port)) {
    EXPECT_TRUE(ids.insert(r["metadata"]["correlation_uid"].get<std::string>()).second);
  }
  EXPECT_EQ(ids.size(), 2U * kChildren);
  expect_valid_ocsf();
}

// A Traffic interval turns every connection that moved into a record at once. They go to
// the sinks as fast as the sinks take them, never all at once into a queue too small for
// them: thousands of Traffic records through a 64 KiB queue, none dropped.
TEST_F(DaemonFaults, ATrafficBurstIsPacedToWhatTheSinksTake) {
  // The connections exist before the daemon, which takes no baseline: the only burst is
  // the Traffic one.
  const std::uint16_t port = 5038;
  UniqueFd l = listen_on(port);
  constexpr int kConnections = 1500;
  std::vector<UniqueFd> clients;
  std::vector<UniqueFd> servers;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(connect_to(port));
    servers.emplace_back(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  json sink = {{"type", "file"}, {"path", records_path_}, {"queue_size", "64KiB"}};
  start(json{{"poll_interval", "1s"},
             {"traffic_interval", "1s"},
             {"stats_interval", "1s"},
             {"baseline", false},
             {"sinks", json::array({sink})}});
  for (int i = 0; i < kConnections; ++i) {
    write_all(clients[static_cast<std::size_t>(i)].get(), 10);
    read_exactly(servers[static_cast<std::size_t>(i)].get(), 10);
  }
  constexpr int kTraffic = 6;
  const auto traffic = [&](const std::vector<json>& all) {
    std::set<std::string> ids;
    for (const auto& r : with(all, kTraffic, port)) {
      ids.insert(r["metadata"]["correlation_uid"].get<std::string>());
    }
    return ids.size();
  };
  const auto all =
      wait_for([&](const auto& r) { return traffic(r) >= 2U * kConnections; }, milliseconds(20000));
  EXPECT_EQ(traffic(all), 2U * kConnections) << "a Traffic record for every socket that moved";
  const Stats s = next_stats();
  EXPECT_EQ(s.at("sink.file:" + records_path_ + ".dropped"), 0U) << "the burst overflowed";
  stop();
}

// What a throttled shipper read from a socket sink: `bytes_per_s` at most, until the
// daemon closes its end (EOF) or `stop` is set and nothing more comes.
class SlowReader {
 public:
  SlowReader(UniqueFd fd, std::size_t bytes_per_s)
      : fd_(std::move(fd)), thread_([this, bytes_per_s] { run(bytes_per_s / 10); }) {}
  ~SlowReader() { finish(); }
  SlowReader(const SlowReader&) = delete;
  SlowReader& operator=(const SlowReader&) = delete;

  // Reads on at full speed until EOF, then returns everything read.
  std::string finish() {
    fast_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
    return got_;
  }

 private:
  void run(std::size_t per_tick) {
    std::vector<char> buf(65536);
    for (;;) {
      pollfd r{fd_.get(), POLLIN, 0};
      if (::poll(&r, 1, fast_ ? 2000 : 100) != 1) {
        if (fast_) {
          return;  // nothing for 2 s after the daemon stopped: done
        }
        continue;
      }
      const std::size_t want = fast_ ? buf.size() : std::min(per_tick, buf.size());
      const ssize_t n = ::read(fd_.get(), buf.data(), want);
      if (n <= 0) {
        return;
      }
      got_.append(buf.data(), static_cast<std::size_t>(n));
      if (!fast_) {
        std::this_thread::sleep_for(milliseconds(100));
      }
    }
  }
  UniqueFd fd_;
  std::atomic<bool> fast_{false};
  std::string got_;
  std::thread thread_;
};

// metadata.sequence of every line of `text` (each line must be whole JSON).
std::vector<std::uint64_t> sequences(const std::string& text) {
  std::vector<std::uint64_t> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const json rec = json::parse(line, nullptr, false);
    EXPECT_FALSE(rec.is_discarded()) << line.substr(0, 200);
    if (!rec.is_discarded()) {
      out.push_back(rec["metadata"]["sequence"].get<std::uint64_t>());
    }
  }
  return out;
}

// One slow sink beside a healthy one: a unix sink whose shipper reads 300 KB/s and a file
// sink, a baseline of 24,000 sockets and then 12,000 Closes at once. The slow sink is left
// out of pacing once it has not kept up for half a poll interval: the file sink gets every
// record (it dropped thousands when a round older than half an interval went to every
// sink at once), and the slow sink's drops are exactly what it did not get.
TEST_F(DaemonFaults, ASlowSinkDropsOnlyItsOwnRecords) {
  const std::string path = dir_ + "/slow.sock";
  UniqueFd shipper = unix_listener(path);
  const std::uint16_t port = 5041;
  UniqueFd l = listen_on(port);
  constexpr int kConnections = 12000;  // 24,000 sockets
  // Half of them held by a child, so that neither process passes a 20,000-file limit.
  int ready[2] = {-1, -1};
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t holder = ::fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {
    // Only async-signal-safe calls after fork() in a threaded test process.
    const sockaddr_in a = loopback(port);
    for (int i = 0; i < kConnections / 2; ++i) {
      const int c = ::socket(AF_INET, SOCK_STREAM, 0);
      if (c < 0 || ::connect(c, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
          ::accept4(l.get(), nullptr, nullptr, 0) < 0) {
        ::_exit(1);
      }
    }
    const char byte = 1;
    (void)::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the child could not hold its connections";
  ::close(ready[0]);
  std::vector<UniqueFd> clients;
  std::vector<UniqueFd> servers;
  for (int i = 0; i < kConnections / 2; ++i) {
    clients.push_back(connect_to(port));
    servers.emplace_back(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(servers.back().valid()) << i;
  }
  start(json{{"poll_interval", "2s"},
             {"stats_interval", "1s"},
             {"sinks", json::array({{{"type", "unix"}, {"path", path}},
                                    {{"type", "file"}, {"path", records_path_}}})}});
  UniqueFd accepted(::accept4(shipper.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted.valid());
  SlowReader reader(std::move(accepted), 300 * 1000);
  const std::string file_sink = "sink.file:" + records_path_;
  const std::string slow_sink = "sink.unix:" + path;
  const auto file_has = [&](std::uint64_t n) {
    for (int i = 0; i < 60; ++i) {
      const Stats st = next_stats();
      if (st.count(file_sink + ".written") != 0 && st.at(file_sink + ".written") >= n) {
        return true;
      }
    }
    return false;
  };
  constexpr std::uint64_t kBaseline = 2 * kConnections + 1;  // and the listener
  ASSERT_TRUE(file_has(kBaseline)) << log().substr(0, 4000);
  const std::size_t closing = clients.size();  // 12,000 Closes
  clients.clear();
  servers.clear();
  ASSERT_TRUE(file_has(kBaseline + 2 * closing)) << log().substr(0, 4000);
  stop();
  ::kill(holder, SIGKILL);
  ASSERT_EQ(::waitpid(holder, nullptr, 0), holder);
  const std::string received = reader.finish();
  const Stats last = last_stats(log());
  EXPECT_EQ(last.at(file_sink + ".dropped"), 0U) << "the slow sink made the file sink drop";
  EXPECT_GE(last.at(slow_sink + ".left_out"), 1U) << "never left out: the test proves nothing";
  EXPECT_GT(last.at(slow_sink + ".dropped"), 0U) << "the slow sink took it all: proves nothing";
  // Every record is in the file, in order; the slow sink's gap is exactly its drops.
  const std::vector<std::uint64_t> all = sequences(file(records_path_));
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.size(), all.back()) << "the file sink's sequence has a gap";
  EXPECT_EQ(all.size(), last.at("records"));
  const std::vector<std::uint64_t> got = sequences(received);
  EXPECT_EQ(got.size(), last.at(slow_sink + ".written"));
  EXPECT_EQ(all.size() - got.size(), last.at(slow_sink + ".dropped"))
      << "the slow sink's drops are not its sequence gap";
}

// Opens are paced like every other record: 5,000 connections opened between two polls
// (10,000 Open records, each socket's own) into a 256 KiB queue, then closed: none
// dropped. Before, one poll's Opens went out at once and 12,338 of 22,001 were dropped.
TEST_F(DaemonFaults, OneBurstOfOpensIsPacedToWhatTheSinkTakes) {
  const std::uint16_t port = 5042;
  UniqueFd l = listen_on(port);
  json sink = {{"type", "file"}, {"path", records_path_}, {"queue_size", "256KiB"}};
  start(json{{"poll_interval", "2s"}, {"stats_interval", "1s"}, {"sinks", json::array({sink})}});
  constexpr int kConnections = 5000;
  std::vector<UniqueFd> clients;
  std::vector<UniqueFd> servers;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(connect_to(port));
    servers.emplace_back(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(servers.back().valid()) << i;
  }
  const auto opens = [&](const std::vector<json>& all) {
    std::set<std::string> ids;
    for (const auto& r : all) {
      if (r["activity_id"] == kOpen && dst_port(r) == port) {
        ids.insert(r["metadata"]["correlation_uid"].get<std::string>());
      }
    }
    return ids.size();
  };
  auto all =
      wait_for([&](const auto& r) { return opens(r) >= 2U * kConnections; }, milliseconds(30000));
  EXPECT_EQ(opens(all), 2U * kConnections) << "an Open for every socket";
  clients.clear();
  servers.clear();
  all = wait_for([&](const auto& r) { return with(r, kClose, port).size() >= 2U * kConnections; },
                 milliseconds(30000));
  EXPECT_EQ(with(all, kClose, port).size(), 2U * kConnections);
  const Stats s = next_stats();
  EXPECT_EQ(s.at("sink.file:" + records_path_ + ".dropped"), 0U) << "the Opens overflowed";
  stop();
}

// A listener that lived only while the daemon was stopped (SIGSTOP): no poll saw it. Its
// connection's destroy events waited in the kernel's buffer and become Closes; the
// listener's own event (state CLOSE, no peer: the kernel cannot say it listened) is counted
// in bound_closes, never silently lost.
TEST_F(DaemonFaults, AListenerWhileStoppedIsCountedAndItsConnectionReported) {
  start(json{{"poll_interval", "300ms"}, {"stats_interval", "1s"}});
  const Stats before = next_stats();
  ASSERT_TRUE(daemon_->signal(SIGSTOP));
  const std::uint16_t port = 5043;
  {
    UniqueFd l = listen_on(port);
    UniqueFd c = connect_to(port);
    UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(s.valid());
  }
  std::this_thread::sleep_for(milliseconds(2000));
  ASSERT_TRUE(daemon_->signal(SIGCONT));
  const auto all = wait_for([&](const auto& r) { return with(r, kClose, port).size() >= 2U; });
  EXPECT_EQ(with(all, kClose, port).size(), 2U) << "both ends of its connection, once each";
  EXPECT_TRUE(with(all, kListen, port).empty()) << "no poll saw it listen";
  const Stats after = next_stats();
  EXPECT_GE(after.at("bound_closes"), before.at("bound_closes") + 1) << log();
  stop();
}

// SIGTERM during a close storm: the destroy events still waiting in the kernel's buffer go
// to a healthy sink at its pace (it has 5 s), not all at once into its 64 KiB queue.
TEST_F(DaemonFaults, TheStopPathIsPacedToWhatTheSinkTakes) {
  const std::uint16_t port = 5044;
  UniqueFd l = listen_on(port);
  json sink = {{"type", "file"}, {"path", records_path_}, {"queue_size", "64KiB"}};
  start(json{{"poll_interval", "10s"}, {"stats_interval", "0"}, {"sinks", json::array({sink})}});
  constexpr int kConnections = 2000;
  churn(l.get(), port, kConnections);  // 4,000 destroy events, SIGTERM at once
  stop();
  const Stats last = last_stats(log());
  const std::string name = "sink.file:" + records_path_;
  EXPECT_EQ(last.at(name + ".dropped"), 0U) << "the stop path overflowed the queue";
  EXPECT_EQ(with(records(), kClose, port).size(), 2U * kConnections);
}

}  // namespace
}  // namespace sockstate::testing

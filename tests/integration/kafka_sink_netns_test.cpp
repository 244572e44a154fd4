// The kafka sink against librdkafka's mock cluster (3 brokers on real TCP ports of the
// test's own network namespace), read back by a librdkafka consumer: the sink alone, then
// the real daemon. No Kafka broker package exists in Debian, so the broker is librdkafka's
// own test broker; the client code under test is the real librdkafka.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sockstate/config/config.h"
#include "sockstate/sink/sink.h"
#include "support/daemon_harness.h"
#include "support/kafka_mock.h"

namespace sockstate::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kPartitions = 3;

class KafkaNetns : public DaemonNetns {
 protected:
  void SetUp() override {
    DaemonNetns::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    kafka_.emplace(3, "ocsf", kPartitions);
    ASSERT_TRUE(kafka_->ok()) << kafka_->error;
  }

  sink::SinkConfig sink_config() const {
    sink::SinkConfig c;
    c.type = sink::SinkType::kKafka;
    c.brokers = kafka_->brokers();
    c.topic = "ocsf";
    return c;
  }

  json kafka_sink_json(const json& extra = json::object()) const {
    json s = {{"type", "kafka"}, {"brokers", kafka_->brokers()}, {"topic", "ocsf"}};
    for (const auto& [k, v] : extra.items()) {
      s[k] = v;
    }
    return s;
  }

  // Waits until the sink holds nothing (every record acknowledged or dropped).
  static void wait_idle(const sink::Sink& s, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (s.stats().queued > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
  }

  // The daemon's last stats line's numbers for the kafka sink: written, dropped.
  std::pair<std::uint64_t, std::uint64_t> kafka_counts() const {
    const std::string log = file(stderr_path_);
    const std::regex re(R"re(sink\.kafka:\S+?\.written=([0-9]+) \.dropped=([0-9]+))re");
    std::pair<std::uint64_t, std::uint64_t> last{0, 0};
    bool found = false;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
         ++it) {
      last = {std::stoull((*it)[1]), std::stoull((*it)[2])};
      found = true;
    }
    EXPECT_TRUE(found) << log;
    return last;
  }

  static std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
  }

  std::optional<MockKafka> kafka_;
};

// ---- the sink alone -----------------------------------------------------------------------

TEST_F(KafkaNetns, SinkDeliversEveryRecordOnceInOrderAcrossALeaderOutage) {
  TopicReader reader(kafka_->bootstraps(), "ocsf", kPartitions);
  ASSERT_TRUE(reader.error.empty()) << reader.error;
  auto sink = sink::make_sink(sink_config(), sink::SinkContext{"host-uid-1"});
  ASSERT_TRUE(sink->start().ok());
  constexpr int kRecords = 30000;
  const std::string pad(200, 'x');
  std::uint64_t written_while_down = 0;
  for (int i = 0; i < kRecords; ++i) {
    if (i == 10000) {
      kafka_->set_down(1);  // the leader of every partition, for a second of records
    }
    if (i == 20000) {
      written_while_down = sink->stats().written;
      kafka_->set_up(1);
    }
    sink->submit(json{{"seq", i}, {"pad", pad}}.dump() + "\n");
    if (i % 100 == 99) {
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  wait_idle(*sink, milliseconds(60000));
  sink->stop(milliseconds(5000));
  const sink::SinkStats st = sink->stats();
  EXPECT_LT(written_while_down, 12000U) << "the outage held records back: a real outage";
  EXPECT_EQ(st.written, static_cast<std::uint64_t>(kRecords));
  EXPECT_EQ(st.dropped, 0U);
  EXPECT_EQ(st.queued, 0U);
  EXPECT_EQ(st.queued_bytes, 0U);
  ASSERT_EQ(reader.wait_for(kRecords, milliseconds(60000)), static_cast<std::size_t>(kRecords));
  const auto messages = reader.messages();
  int next = 0;
  std::set<int> partitions;
  for (const auto& m : messages) {
    partitions.insert(m.partition);
    EXPECT_EQ(m.key, "host-uid-1");
    const json r = json::parse(m.value);  // whole: no newline, one record a message
    ASSERT_EQ(r["seq"].get<int>(), next) << "order or once broken at offset " << m.offset;
    ++next;
  }
  EXPECT_EQ(partitions.size(), 1U) << "one key, one partition";
}

// A fatal error of the idempotent producer (a broker answering with an out-of-order
// sequence number) would fail every later record: the sink replaces the producer, counts
// what the old one held as dropped, says so once, and delivers again.
TEST_F(KafkaNetns, SinkReplacesAProducerAfterAFatalError) {
  TopicReader reader(kafka_->bootstraps(), "ocsf", kPartitions);
  ASSERT_TRUE(reader.error.empty()) << reader.error;
  auto sink = sink::make_sink(sink_config(), sink::SinkContext{"host-uid-3"});
  ASSERT_TRUE(sink->start().ok());
  int seq = 0;
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i) {
      sink->submit(json{{"seq", seq++}}.dump() + "\n");
    }
  };
  send(1000);
  wait_idle(*sink, milliseconds(30000));
  ASSERT_EQ(sink->stats().written, 1000U);
  kafka_->fail_produce(1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
  send(1000);
  wait_idle(*sink, milliseconds(30000));
  // Wait for the new producer (the old one's records are all reported by now).
  const auto deadline = Clock::now() + milliseconds(10000);
  while (sink->stats().reconnects == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(sink->stats().reconnects, 1U);
  const std::uint64_t written_before = sink->stats().written;
  send(1000);
  wait_idle(*sink, milliseconds(30000));
  sink->stop(milliseconds(5000));
  const sink::SinkStats st = sink->stats();
  EXPECT_GT(st.dropped, 0U) << "the fatal error failed records";
  EXPECT_EQ(st.written - written_before, 1000U) << "the new producer delivers every record";
  EXPECT_EQ(st.written + st.dropped, 3000U) << "every record accounted for";
  EXPECT_EQ(st.queued, 0U);
  // Records produced or failing before the error callback ran may add kinds of their own
  // ("Local: Fatal error", the broker's error): the fatal error is one of the kinds.
  const auto kinds = sink->take_failure_kinds();
  std::string all_kinds;
  for (const auto& k : kinds) {
    all_kinds += k + "\n";
  }
  EXPECT_TRUE(std::regex_search(all_kinds, std::regex("fatal: .*the producer is restarted")))
      << all_kinds;
  ASSERT_EQ(reader.wait_for(st.written, milliseconds(30000)), st.written)
      << "exactly the acknowledged records are in the topic";
  int last = -1;
  for (const auto& m : reader.messages()) {
    const int s = json::parse(m.value)["seq"].get<int>();
    EXPECT_GT(s, last) << "in order";
    last = s;
  }
  EXPECT_EQ(last, 2999);
}

TEST_F(KafkaNetns, DeadClusterNeverBlocksBoundsTheQueueAndCountsEveryDrop) {
  // A listener that never accepts: connections complete in its backlog, no reply comes.
  const std::uint16_t port = 5401;
  UniqueFd silent = listen_on(port);
  sink::SinkConfig c = sink_config();
  c.brokers = {"127.0.0.1:" + std::to_string(port)};
  c.delivery_timeout = milliseconds(1000);
  c.queue_bytes = 256 * 1024;
  auto sink = sink::make_sink(c, sink::SinkContext{"host-uid-2"});
  ASSERT_TRUE(sink->start().ok());
  constexpr int kRecords = 20000;
  const std::string record = json{{"pad", std::string(300, 'y')}}.dump() + "\n";
  std::size_t most_queued_bytes = 0;
  auto slowest = Clock::duration::zero();
  for (int i = 0; i < kRecords; ++i) {
    const auto before = Clock::now();
    sink->submit(record);
    slowest = std::max(slowest, Clock::now() - before);
    most_queued_bytes = std::max(most_queued_bytes, sink->stats().queued_bytes);
    if (i % 1000 == 999) {
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  EXPECT_LE(most_queued_bytes, c.queue_bytes) << "the queue is bounded in bytes";
  EXPECT_LT(slowest, milliseconds(100)) << "submit() must not wait for the cluster";
  std::this_thread::sleep_for(milliseconds(1500));  // what was queued times out
  const auto kinds = sink->take_failure_kinds();
  ASSERT_FALSE(kinds.empty());
  EXPECT_NE(kinds[0].find("timed out"), std::string::npos) << kinds[0];
  EXPECT_TRUE(sink->take_failure_kinds().empty()) << "each kind once";
  const auto stop_start = Clock::now();
  sink->stop(milliseconds(1000));
  EXPECT_LT(Clock::now() - stop_start, milliseconds(5000)) << "stop() keeps its deadline";
  const sink::SinkStats st = sink->stats();
  EXPECT_EQ(st.written, 0U);
  EXPECT_EQ(st.dropped, static_cast<std::uint64_t>(kRecords)) << "every record accounted for";
  EXPECT_EQ(st.queued, 0U);
  EXPECT_EQ(st.connected, 0);
  EXPECT_EQ(st.brokers_up, 0);
}

// ---- the daemon ---------------------------------------------------------------------------

// Every record of a daemon workload, with the leader down for a second in the middle,
// arrives once, whole, valid OCSF, in sequence order, keyed by device.uid; written ==
// consumed == what the file sink beside it wrote.
TEST_F(KafkaNetns, DaemonWorkloadArrivesExactlyOnceInOrderAcrossABrokerOutage) {
  TopicReader reader(kafka_->bootstraps(), "ocsf", kPartitions);
  ASSERT_TRUE(reader.error.empty()) << reader.error;
  json config;
  config["sinks"] = json::array({{{"type", "file"}, {"path", records_path_}}, kafka_sink_json()});
  config["stats_interval"] = "1s";
  start(config);
  const std::uint16_t port = 5402;
  UniqueFd l = listen_on(port);
  for (int i = 0; i < 300; ++i) {
    if (i == 100) {
      kafka_->set_down(1);
    }
    if (i == 200) {
      kafka_->set_up(1);
    }
    UniqueFd c = connect_to(port);
    UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    write_all(c.get(), 100);
    read_exactly(s.get(), 100);
    std::this_thread::sleep_for(milliseconds(10));
  }
  wait_for([&](const auto& all) { return with(all, kClose, port).size() >= 600; });
  std::this_thread::sleep_for(milliseconds(1000));
  stop();
  const auto [written, dropped] = kafka_counts();
  EXPECT_EQ(dropped, 0U) << file(stderr_path_);
  const auto from_file = records();
  EXPECT_EQ(written, from_file.size()) << "the kafka sink wrote what the file sink wrote";
  ASSERT_EQ(reader.wait_for(written, milliseconds(30000)), written);
  std::set<std::string> file_uids;
  for (const auto& r : from_file) {
    file_uids.insert(r["metadata"]["uid"].get<std::string>());
  }
  std::set<std::string> kafka_uids;
  std::map<int, std::int64_t> last_sequence;
  std::string all;
  for (const auto& m : reader.messages()) {
    ASSERT_EQ(m.value.find('\n'), std::string::npos);
    const json r = json::parse(m.value);
    EXPECT_EQ(m.key, r["device"]["uid"].get<std::string>());
    EXPECT_TRUE(kafka_uids.insert(r["metadata"]["uid"].get<std::string>()).second) << "twice";
    const auto seq = r["metadata"]["sequence"].get<std::int64_t>();
    auto [it, first] = last_sequence.try_emplace(m.partition, seq);
    if (!first) {
      EXPECT_GT(seq, it->second) << "sequence order within partition " << m.partition;
      it->second = seq;
    }
    all += m.value + "\n";
  }
  EXPECT_EQ(kafka_uids, file_uids);
  EXPECT_EQ(last_sequence.size(), 1U) << "one host, one key, one partition";
  const std::string consumed = dir_ + "/consumed.jsonl";
  std::ofstream(consumed) << all;
  expect_valid_ocsf({consumed});
}

// A cluster that never answers: the daemon and its file sink go on, memory stays bounded,
// the kafka sink's drops are counted and reported once per kind.
TEST_F(KafkaNetns, DaemonGoesOnWhenTheClusterNeverAnswers) {
  const std::uint16_t silent_port = 5403;
  UniqueFd silent = listen_on(silent_port);
  json config;
  config["sinks"] = json::array({{{"type", "file"}, {"path", records_path_}},
                                 {{"type", "kafka"},
                                  {"brokers", {"127.0.0.1:" + std::to_string(silent_port)}},
                                  {"topic", "ocsf"},
                                  {"delivery_timeout", "1s"},
                                  {"queue_size", "256KiB"}}});
  start(config);
  const auto status_kib = [&](const std::string& field) -> std::uint64_t {
    const std::string status = file("/proc/" + std::to_string(daemon_->pid()) + "/status");
    std::smatch m;
    if (!std::regex_search(status, m, std::regex(field + R"(:\s+([0-9]+) kB)"))) {
      ADD_FAILURE() << "no " << field << " in " << status;
      return 0;
    }
    return std::stoull(m[1]);
  };
  const std::uint64_t at_start = status_kib("VmRSS");
  const std::uint16_t port = 5404;
  UniqueFd l = listen_on(port);
  std::vector<UniqueFd> held;
  for (int i = 0; i < 2000; ++i) {
    UniqueFd c = connect_to(port);
    held.emplace_back(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  held.clear();  // 2000 Opens and 4000 Closes: ~6 MB of records against a 256 KiB queue
  const auto all = wait_for([&](const auto& r) { return with(r, kClose, port).size() >= 2000; },
                            milliseconds(20000));
  EXPECT_GE(with(all, kClose, port).size(), 2000U) << "the file sink kept writing";
  std::this_thread::sleep_for(milliseconds(2500));  // drops time out; a stats line
  // ~6 MB of records went to a 256 KiB queue: the peak grows by far less than they
  // would have. Under AddressSanitizer freed memory waits in its quarantine, resident.
#ifdef __SANITIZE_ADDRESS__
  constexpr std::uint64_t kGrowthKib = 64UL * 1024;
#else
  constexpr std::uint64_t kGrowthKib = 12UL * 1024;
#endif
  const std::uint64_t peak = status_kib("VmHWM");
  EXPECT_LT(peak, at_start + kGrowthKib)
      << "peak RSS, kB, over " << at_start << " kB at start (the kernel-event source's ring "
      << "buffer is mapped then)";
  const auto stop_start = Clock::now();
  stop();
  EXPECT_LT(Clock::now() - stop_start, milliseconds(9000));
  const auto [written, dropped] = kafka_counts();
  EXPECT_EQ(written, 0U);
  EXPECT_EQ(dropped, records().size()) << "every record the file got, the kafka sink dropped";
  const std::string log = file(stderr_path_);
  EXPECT_EQ(count_of(log, "records dropped: Local: Message timed out"), 1U) << log;
  EXPECT_EQ(count_of(log, "not connected: no broker up (127.0.0.1:5403/bootstrap: "), 1U) << log;
}

// Wrong TLS or SASL settings: one clear line, not one per retry.
TEST_F(KafkaNetns, WrongTlsOrSaslSettingsGiveOneClearLine) {
  // A CA file that is not a certificate: check-config and run both refuse it, in a line.
  const std::string bad_ca = dir_ + "/ca.pem";
  std::ofstream(bad_ca) << "not a certificate\n";
  json config = {{"sinks", json::array({kafka_sink_json({{"tls_ca", bad_ca}})})}};
  const std::string path = dir_ + "/bad-tls.json";
  std::ofstream(path) << config.dump();
  const CommandResult check =
      run_command(std::string(SOCKSTATE_BINARY) + " check-config " + path + " 2>&1");
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_EQ(count_of(check.output, "\n"), 1U) << check.output;
  EXPECT_NE(check.output.find("ssl.ca.location"), std::string::npos) << check.output;
  // An unknown librdkafka property: check-config asks librdkafka.
  config = {{"sinks", json::array({kafka_sink_json({{"properties", {{"lingr.ms", "5"}}}})})}};
  std::ofstream(path) << config.dump();
  const CommandResult unknown =
      run_command(std::string(SOCKSTATE_BINARY) + " check-config " + path + " 2>&1");
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("lingr.ms"), std::string::npos) << unknown.output;
  // TLS against plaintext brokers, then SCRAM against brokers without SASL: the daemon
  // runs, says once what is wrong, and keeps trying.
  for (const json& wrong : {json{{"tls", true}}, json{{"sasl_mechanism", "SCRAM-SHA-256"},
                                                      {"sasl_username", "u"},
                                                      {"sasl_password", "p"}}}) {
    stderr_path_ = dir_ + "/stderr-" + std::to_string(wrong.size());
    start({{"sinks",
            json::array({{{"type", "file"}, {"path", records_path_}}, kafka_sink_json(wrong)})}});
    std::this_thread::sleep_for(milliseconds(4000));  // librdkafka retries several times
    stop();
    const std::string log = file(stderr_path_);
    EXPECT_EQ(count_of(log, ": not connected: "), 1U) << wrong.dump() << "\n" << log;
    std::smatch line;
    ASSERT_TRUE(std::regex_search(log, line, std::regex("sink kafka:[^\n]*not connected: [^\n]*")))
        << log;
    EXPECT_TRUE(std::regex_search(line.str(), std::regex("SSL|TLS|SASL|[Aa]uthentication")))
        << line.str();
  }
}

// The block of README.md after `marker` (its first fenced block), without the fences.
std::string readme_block(const std::string& marker) {
  std::ifstream in(std::string(SOCKSTATE_SOURCE_DIR) + "/README.md");
  std::string line;
  std::string block;
  bool found = false;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!found) {
      found = line == "<!-- " + marker + " -->";
      continue;
    }
    if (line.rfind("```", 0) == 0) {
      if (inside) {
        return block;
      }
      inside = true;
      continue;
    }
    if (inside) {
      block += line + "\n";
    }
  }
  ADD_FAILURE() << "no block after <!-- " << marker << " --> in README.md";
  return {};
}

// The README's fleet section as written: its configuration passes check-config and, with
// its brokers pointed at the mock cluster (the only change), delivers the daemon's
// records, which the README's kcat line reads back, keyed by device.uid.
TEST_F(KafkaNetns, ReadmeFleetSectionWorksAsWritten) {
  const std::string fleet = readme_block("fleet-config");
  ASSERT_FALSE(fleet.empty());
  const std::string fleet_path = dir_ + "/fleet.json";
  std::ofstream(fleet_path) << fleet;
  const CommandResult check =
      run_command(std::string(SOCKSTATE_BINARY) + " check-config " + fleet_path + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  // The TLS + SCRAM variant parses (its CA file exists only on a real host).
  const auto tls = config::parse_config(readme_block("fleet-config-tls"));
  ASSERT_TRUE(tls.ok()) << tls.error().message();
  ASSERT_EQ(tls->sinks.size(), 1U);
  EXPECT_TRUE(tls->sinks[0].tls);
  EXPECT_EQ(tls->sinks[0].sasl_mechanism, "SCRAM-SHA-512");

  json config = json::parse(fleet);
  const std::string topic = config["sinks"][0]["topic"].get<std::string>();
  MockKafka cluster(3, topic, kPartitions);
  ASSERT_TRUE(cluster.ok()) << cluster.error;
  config["sinks"][0]["brokers"] = cluster.brokers();
  start(config);
  const std::uint16_t port = 5405;
  UniqueFd l = listen_on(port);
  for (int i = 0; i < 20; ++i) {
    UniqueFd c = connect_to(port);
    UniqueFd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  std::this_thread::sleep_for(milliseconds(1500));
  stop();
  const auto [written, dropped] = kafka_counts();
  EXPECT_GE(written, 40U) << "20 connections: at least an Open and a Close each";
  EXPECT_EQ(dropped, 0U);

  std::string verify = readme_block("fleet-verify");
  const std::string example_broker = "kafka-1.example.net:9092";
  const auto at = verify.find(example_broker);
  ASSERT_NE(at, std::string::npos) << verify;
  verify.replace(at, example_broker.size(), cluster.brokers().front());
  const CommandResult read = run_command(verify, "", milliseconds(30000));
  ASSERT_EQ(read.exit_code, 0) << verify << "\n" << read.output;
  ASSERT_EQ(count_of(read.output, "\n"), 1U) << read.output;
  const auto space = read.output.find(' ');
  ASSERT_NE(space, std::string::npos) << read.output;
  const json record = json::parse(read.output.substr(space + 1));
  EXPECT_EQ(read.output.substr(0, space), record["device"]["uid"].get<std::string>());
  EXPECT_EQ(record["class_uid"], 4001);
}

}  // namespace
}  // namespace sockstate::testing

// The kafka sink: records to a Kafka topic through librdkafka, each counted as written only
// when its delivery report says the broker acknowledged it.
//
// librdkafka keeps its own queue and threads, so this sink has no QueuedSink: submit()
// hands a record to rd_kafka_produce() (which never blocks), and one thread of ours serves
// delivery reports, errors and statistics with rd_kafka_poll(). What is queued is counted
// here, from submit() to the record's delivery report, and bounded by the sink's queue
// limits (librdkafka's own limits sit just above them, as a backstop).
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "kafka_policy.h"
#include "queued_sink.h"
#include "rdkafka_api.h"
#include "sink_keys.h"
#include "sockstate/sink/registry.h"
#include "sockstate/sink/sink.h"

namespace sockstate::sink::detail {
namespace {

using std::chrono::milliseconds;

// How often librdkafka reports broker states (stats().brokers_up).
constexpr const char* kStatisticsMs = "1000";
// After the stop deadline: how long purged records may take to report (they fail at once).
constexpr milliseconds kPurgeWait{500};

// The loaded library; only called once rdkafka() has succeeded (make_conf() checks).
const Rdkafka& api() {
  return **rdkafka();
}

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { api().destroy(rk); }
  void operator()(rd_kafka_topic_t* t) const { api().topic_destroy(t); }
  void operator()(rd_kafka_conf_t* c) const { api().conf_destroy(c); }
};
using Handle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using Topic = std::unique_ptr<rd_kafka_topic_t, KafkaDeleter>;
using Conf = std::unique_ptr<rd_kafka_conf_t, KafkaDeleter>;

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    out += (out.empty() ? "" : ",") + i;
  }
  return out;
}

// The librdkafka properties a configuration entry means, in the order they are set (the
// passthrough last, so that its checks see ours).
std::vector<std::pair<std::string, std::string>> properties(const SinkConfig& c) {
  const bool sasl = !c.sasl_mechanism.empty();
  std::vector<std::pair<std::string, std::string>> p = {
      {"bootstrap.servers", joined(c.brokers)},
      {"client.id", "sockstate"},
      {"compression.type", c.compression},
      {"acks", c.acks},
      {"message.max.bytes", std::to_string(c.message_max_bytes)},
      {"message.timeout.ms", std::to_string(c.delivery_timeout.count())},
      // Backstops above the sink's own limits (what is charged per record differs).
      {"queue.buffering.max.messages", std::to_string(c.queue_records + 1)},
      {"queue.buffering.max.kbytes", std::to_string(c.queue_bytes / 1024 + 1)},
      {"statistics.interval.ms", kStatisticsMs},
      {"security.protocol", std::string(sasl ? "SASL_" : "") + (c.tls ? "SSL" : "PLAINTEXT")},
  };
  if (c.acks == "all") {
    // In order, once each, across retries and broker failovers.
    p.emplace_back("enable.idempotence", "true");
  } else {
    // Without idempotence, only one request in flight keeps retries in order.
    p.emplace_back("max.in.flight.requests.per.connection", "1");
  }
  const std::array<std::pair<const char*, const std::string*>, 6> optional = {{
      {"ssl.ca.location", &c.tls_ca},
      {"ssl.certificate.location", &c.tls_cert},
      {"ssl.key.location", &c.tls_key},
      {"sasl.mechanisms", &c.sasl_mechanism},
      {"sasl.username", &c.sasl_username},
      {"sasl.password", &c.sasl_password},
  }};
  for (const auto& [name, value] : optional) {
    if (!value->empty()) {
      p.emplace_back(name, *value);
    }
  }
  p.insert(p.end(), c.properties.begin(), c.properties.end());
  return p;
}

Result<Conf> make_conf(const SinkConfig& c) {
  if (auto loaded = rdkafka(); !loaded) {
    return loaded.error();
  }
  Conf conf(api().conf_new());
  std::array<char, 512> err{};
  for (const auto& [name, value] : properties(c)) {
    if (api().conf_set(conf.get(), name.c_str(), value.c_str(), err.data(), err.size()) !=
        RD_KAFKA_CONF_OK) {
      return Error{0, "librdkafka property " + name + ": " + err.data()};
    }
  }
  // librdkafka logs every retry; its errors reach us through the error callback instead.
  api().conf_set_log_cb(conf.get(), [](const rd_kafka_t*, int, const char*, const char*) {});
  return conf;
}

// A handle made from `conf` (which it takes); loads certificates and keys.
Result<Handle> make_handle(Conf conf) {
  std::array<char, 512> err{};
  Handle rk(api().kafka_new(RD_KAFKA_PRODUCER, conf.get(), err.data(), err.size()));
  if (!rk) {
    return Error{0, std::string("librdkafka: ") + err.data()};
  }
  (void)conf.release();  // api().kafka_new() owns it now
  return rk;
}

class KafkaSink final : public Sink {
 public:
  // librdkafka delivers as soon as a record is produced: a predecessor of the same name
  // (follow()) is not waited for (see the README: a reload that changes a kafka sink).
  KafkaSink(SinkConfig config, std::string key)
      : Sink(sink_name(config), queue_limit(config)),
        config_(std::move(config)),
        key_(std::move(key)) {
    ledger().set_brokers_up(0);
  }
  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;
  ~KafkaSink() override { stop(milliseconds(0)); }

  Result<void> start() override;
  void submit(std::string_view record) override;
  void request_stop(milliseconds timeout) override;
  void stop(milliseconds timeout) override;

 private:
  struct Producer {
    Handle rk;
    Topic topic;
  };
  Result<Producer> make_producer();
  void restart_producer();
  void run();
  void drain_at_stop();
  void delivered(const rd_kafka_message_t& message);
  void failed(rd_kafka_resp_err_t err, const std::string& reason, bool drop_kind);
  void broker_states(std::string_view statistics);

  const SinkConfig config_;
  const std::string key_;  // "" for none

  // Guards the handle against stop() while submit() produces; submit() never waits long.
  std::mutex produce_mutex_;
  Handle rk_;
  Topic topic_;
  bool stopped_ = false;  // guarded by produce_mutex_: request_stop() was called
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> drained_{false};
  std::atomic<bool> fatal_{false};  // the producer had a fatal error: run() replaces it  // what
                                    // was left is counted: reports count no more
  std::atomic<Clock::rep> deadline_{0};
  std::thread poller_;
};

// A producer with this sink's callbacks: at start, and after a fatal error.
Result<KafkaSink::Producer> KafkaSink::make_producer() {
  auto conf = make_conf(config_);
  if (!conf) {
    return conf.error();
  }
  api().conf_set_opaque(conf->get(), this);
  api().conf_set_dr_msg_cb(conf->get(), [](rd_kafka_t*, const rd_kafka_message_t* m, void* self) {
    static_cast<KafkaSink*>(self)->delivered(*m);
  });
  api().conf_set_error_cb(conf->get(), [](rd_kafka_t* rk, int err, const char* reason, void* self) {
    auto* sink = static_cast<KafkaSink*>(self);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      // The idempotent producer cannot go on (its sequence is lost): run() makes another.
      std::array<char, 512> why{};
      err = api().fatal_error(rk, why.data(), why.size());
      sink->failed(static_cast<rd_kafka_resp_err_t>(err),
                   std::string("fatal: ") + why.data() + " (the producer is restarted)", true);
      sink->fatal_.store(true, std::memory_order_release);
      return;
    }
    sink->failed(static_cast<rd_kafka_resp_err_t>(err), reason, false);
  });
  api().conf_set_stats_cb(conf->get(), [](rd_kafka_t*, char* json, size_t len, void* self) {
    static_cast<KafkaSink*>(self)->broker_states(std::string_view(json, len));
    return 0;  // librdkafka frees `json`
  });
  auto rk = make_handle(std::move(*conf));
  if (!rk) {
    return rk.error();
  }
  Topic topic(api().topic_new(rk->get(), config_.topic.c_str(), nullptr));
  if (!topic) {
    return Error{0,
                 "librdkafka: topic " + config_.topic + ": " + api().err2str(api().last_error())};
  }
  return Producer{std::move(*rk), std::move(topic)};
}

Result<void> KafkaSink::start() {
  if (rk_ || stopped_) {
    return Error{0, name() + ": already started"};
  }
  auto made = make_producer();
  if (!made) {
    return made.error();
  }
  std::lock_guard lock(produce_mutex_);
  rk_ = std::move(made->rk);
  topic_ = std::move(made->topic);
  set_finished(false);
  try {
    poller_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    set_finished(true);
    topic_.reset();
    rk_.reset();
    return Error{e.code().value(), name() + ": starting the delivery thread"};
  }
  return {};
}

// After a fatal error every record the old producer holds fails (counted dropped, the kind
// logged once) and so would every new one: a new producer takes over, the old one is
// purged (its records report failure) and destroyed. On the poller thread, the only one
// that changes rk_, so run() may use rk_ without the lock.
void KafkaSink::restart_producer() {
  auto made = make_producer();
  if (!made) {
    failed(RD_KAFKA_RESP_ERR__FATAL, made.error().message(), false);
    return;  // fatal_ stays set: tried again on the next turn of run()
  }
  Producer old;
  {
    std::lock_guard lock(produce_mutex_);
    old.rk = std::exchange(rk_, std::move(made->rk));
    old.topic = std::exchange(topic_, std::move(made->topic));
  }
  fatal_.store(false, std::memory_order_release);
  ledger().count_reconnect();  // a producer replaced after a fatal error
  (void)api().purge(old.rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  (void)api().flush(old.rk.get(), static_cast<int>(kPurgeWait.count()));
}

void KafkaSink::submit(std::string_view record) {
  if (!record.empty() && record.back() == '\n') {
    record.remove_suffix(1);  // a Kafka message is one record; no line framing
  }
  const std::size_t cost = charge_of(record.size());
  std::lock_guard lock(produce_mutex_);
  if (stopped_ || !rk_) {
    ledger().count_dropped();
    return;
  }
  // Charged before producing: the delivery report may come before produce() returns.
  if (!ledger().charge(cost)) {
    return;
  }
  // rd_kafka_produce(), not producev(): its macros are C casts -Wold-style-cast refuses.
  const int produced = api().produce(topic_.get(), RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                     const_cast<char*>(record.data()), record.size(),
                                     key_.empty() ? nullptr : key_.data(), key_.size(), nullptr);
  const rd_kafka_resp_err_t err = produced == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR : api().last_error();
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ledger().settle(1, cost, false);
    failed(err, api().err2str(err), true);
  }
}

void KafkaSink::delivered(const rd_kafka_message_t& message) {
  if (drained_.load(std::memory_order_relaxed)) {
    return;  // counted dropped by drain_at_stop() already (librdkafka's destroy)
  }
  const bool written = message.err == RD_KAFKA_RESP_ERR_NO_ERROR;
  ledger().settle(1, charge_of(message.len), written);
  if (!written) {
    failed(message.err, api().err2str(message.err), true);
  }
}

// `drop_kind`: records were lost for this reason (reported once per kind); otherwise a
// connection or cluster error (librdkafka retries; the daemon logs the sink going down).
void KafkaSink::failed(rd_kafka_resp_err_t err, const std::string& reason, bool drop_kind) {
  if (drop_kind) {
    ledger().drop_reason(static_cast<int>(err), reason);
    return;
  }
  ledger().count_error(reason);
  if (ledger().stats().brokers_up == 0) {
    ledger().set_connected(false);
  }
}

// librdkafka's statistics: how many brokers have a connection up. Brokers it learned from
// metadata count; before any, the bootstrap brokers it was given.
void KafkaSink::broker_states(std::string_view statistics) {
  const auto doc = nlohmann::json::parse(statistics, nullptr, false);
  if (doc.is_discarded() || !doc.contains("brokers") || !doc["brokers"].is_object()) {
    return;
  }
  int learned = 0;
  int configured = 0;
  std::string waiting;  // a broker that is not up, and its state, for last_error()
  for (const auto& [name, broker] : doc["brokers"].items()) {
    if (!broker.is_object() || broker.value("state", "") != "UP") {
      const std::string source = broker.is_object() ? broker.value("source", "") : "";
      if (waiting.empty() && (source == "learned" || source == "configured")) {
        waiting = name + ": " + broker.value("state", "?");
      }
      continue;
    }
    const std::string source = broker.value("source", "");
    learned += source == "learned" ? 1 : 0;
    configured += source == "configured" ? 1 : 0;
  }
  const int up = learned > 0 ? learned : std::min(configured, 1);
  ledger().set_brokers_up(up);
  ledger().set_connected(up > 0);
  // A cluster that accepts connections and never answers raises no connection error:
  // last_error() says where librdkafka is waiting instead.
  ledger().set_waiting(up == 0 && !waiting.empty() ? "no broker up (" + waiting + ")" : "");
}

void KafkaSink::run() {
  while (!stop_requested_.load(std::memory_order_acquire)) {
    api().poll(rk_.get(), 100);
    if (fatal_.load(std::memory_order_acquire)) {
      restart_producer();
    }
  }
  drain_at_stop();
  {
    std::lock_guard lock(produce_mutex_);
    topic_.reset();
    rk_.reset();
  }
  set_finished(true);
}

// Delivers what is queued until the deadline, then gives up on the rest: purged records
// report failure (counted dropped); any that librdkafka still holds after that are too.
void KafkaSink::drain_at_stop() {
  const auto deadline = Clock::time_point(Clock::duration(deadline_.load()));
  const int left = poll_timeout_ms(Clock::now(), deadline);
  (void)api().flush(rk_.get(), left);
  if (api().outq_len(rk_.get()) > 0) {
    (void)api().purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    const auto until = Clock::now() + kPurgeWait;
    while (ledger().stats().queued > 0 && Clock::now() < until) {
      api().poll(rk_.get(), 10);
    }
  }
  drained_.store(true, std::memory_order_relaxed);
  ledger().drop_queued();
}

void KafkaSink::request_stop(milliseconds timeout) {
  std::lock_guard lock(produce_mutex_);
  if (stopped_) {
    return;
  }
  stopped_ = true;  // from here on, submit() drops
  deadline_.store((Clock::now() + timeout).time_since_epoch().count());
  stop_requested_.store(true, std::memory_order_release);
}

void KafkaSink::stop(milliseconds timeout) {
  request_stop(timeout);
  if (poller_.joinable()) {
    poller_.join();
  }
}

std::unique_ptr<Sink> make_kafka_sink(const SinkConfig& config, const SinkContext& context) {
  std::string key = config.key == KafkaKey::kDeviceUid ? context.device_uid : "";
  return std::make_unique<KafkaSink>(config, std::move(key));
}

Result<void> kafka_preflight(const SinkConfig& config) {
  auto conf = make_conf(config);
  if (!conf) {
    return conf.error();
  }
  // Makes the handle (properties, certificates and keys are checked) and drops it before
  // it has done anything.
  auto rk = make_handle(std::move(*conf));
  if (!rk) {
    return rk.error();
  }
  return {};
}

// ---- the kafka sink type ------------------------------------------------------------------

using document::as_bool;
using document::as_choice;
using document::as_duration;
using document::as_size;
using document::as_text;
using document::fail;
using document::json;
using document::kKiB;
using document::kMiB;
using namespace std::chrono_literals;

std::string kafka_destination(const SinkConfig& sink) {
  return sink.topic + "@" + (sink.brokers.empty() ? "" : sink.brokers.front());
}

// Every record twice into one topic.
bool same_topic(const SinkConfig& sink, const SinkConfig& earlier) {
  return kafka_destination(sink) == kafka_destination(earlier);
}

constexpr std::array<SinkKey, 15> kKeys = {{
    {"brokers",
     [](const json& v, const std::string& p, SinkConfig& s) { s.brokers = as_brokers(v, p); }},
    {"topic", [](const json& v, const std::string& p, SinkConfig& s) { s.topic = as_topic(v, p); }},
    {"key",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.key = as_choice(v, p, std::array<std::string_view, 2>{"device.uid", "none"}) == "none"
                   ? KafkaKey::kNone
                   : KafkaKey::kDeviceUid;
     }},
    {"compression",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.compression = as_choice(
           v, p, std::array<std::string_view, 5>{"none", "gzip", "snappy", "lz4", "zstd"});
     }},
    {"acks",
     [](const json& v, const std::string& p, SinkConfig& s) {
       if (v.is_string() && v.get_ref<const std::string&>() == "0") {
         fail(p,
              "must be \"all\" or \"1\": with 0 no broker acknowledges a record, so none "
              "could be counted as delivered");
       }
       s.acks = as_choice(v, p, std::array<std::string_view, 2>{"all", "1"});
     }},
    {"message_max_bytes",
     [](const json& v, const std::string& p, SinkConfig& s) {
       // librdkafka's own range is 1000 to 1000000000.
       s.message_max_bytes = static_cast<std::size_t>(as_size(v, p, {4 * kKiB, 512 * kMiB, {}}));
     }},
    {"delivery_timeout",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.delivery_timeout = as_duration(v, p, {100ms, {}});
     }},
    {"tls", [](const json& v, const std::string& p, SinkConfig& s) { s.tls = as_bool(v, p); }},
    {"tls_ca", [](const json& v, const std::string& p,
                  SinkConfig& s) { s.tls_ca = as_path(v, p, SinkType::kFile); }},
    {"tls_cert", [](const json& v, const std::string& p,
                    SinkConfig& s) { s.tls_cert = as_path(v, p, SinkType::kFile); }},
    {"tls_key", [](const json& v, const std::string& p,
                   SinkConfig& s) { s.tls_key = as_path(v, p, SinkType::kFile); }},
    {"sasl_mechanism",
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.sasl_mechanism = as_choice(
           v, p, std::array<std::string_view, 3>{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"});
     }},
    {"sasl_username", [](const json& v, const std::string& p,
                         SinkConfig& s) { s.sasl_username = as_text(v, p, 1024); }},
    {"sasl_password", [](const json& v, const std::string& p,
                         SinkConfig& s) { s.sasl_password = as_text(v, p, 1024); }},
    {"properties", [](const json& v, const std::string& p,
                      SinkConfig& s) { s.properties = as_properties(v, p); }},
}};

}  // namespace

extern constexpr SinkKind kKafkaKind = {
    .type = SinkType::kKafka,
    .word = "kafka",
    .keys = kKeys,
    .required = {"brokers", "topic"},
    .check = check_kafka,
    .same_destination = {.same = same_topic, .key = "topic", .what = "the same topic and brokers"},
    .destination = kafka_destination,
    .make = make_kafka_sink,
    .preflight = kafka_preflight,
};

}  // namespace sockstate::sink::detail

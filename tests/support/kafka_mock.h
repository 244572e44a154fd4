#pragma once
// A Kafka cluster for tests: librdkafka's mock cluster (rdkafka_mock.h), which speaks the
// Kafka protocol on real TCP ports of 127.0.0.1, and a librdkafka consumer that reads a
// topic back while it is written (the mock cluster keeps a limited log). No Kafka broker
// package exists in Debian; this is the real client library against its own test broker.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sockstate::testing {

class MockKafka {
 public:
  // `brokers` brokers (ids 1..brokers) and `topic` with `partitions` partitions, each on
  // every broker, led by broker 1. `error` says why when ok() is false.
  MockKafka(int brokers, const std::string& topic, int partitions) : topic_(topic) {
    std::array<char, 512> err{};
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {});
    owner_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size());
    if (owner_ == nullptr) {
      error = err.data();
      rd_kafka_conf_destroy(conf);
      return;
    }
    cluster_ = rd_kafka_mock_cluster_new(owner_, brokers);
    if (cluster_ == nullptr) {
      error = "rd_kafka_mock_cluster_new failed";
      return;
    }
    if (rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, brokers) != 0) {
      error = "rd_kafka_mock_topic_create failed";
      return;
    }
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), p, 1);
    }
  }
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;
  ~MockKafka() {
    if (cluster_ != nullptr) {
      rd_kafka_mock_cluster_destroy(cluster_);
    }
    if (owner_ != nullptr) {
      rd_kafka_destroy(owner_);
    }
  }

  [[nodiscard]] bool ok() const { return error.empty(); }
  [[nodiscard]] std::string bootstraps() const {
    return rd_kafka_mock_cluster_bootstraps(cluster_);
  }
  // The brokers as a kafka sink's "brokers" key wants them.
  [[nodiscard]] std::vector<std::string> brokers() const {
    std::vector<std::string> out;
    std::string all = bootstraps();
    for (std::size_t start = 0; start <= all.size();) {
      const auto comma = all.find(',', start);
      const auto end = comma == std::string::npos ? all.size() : comma;
      out.push_back(all.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }
  void set_down(int broker) { rd_kafka_mock_broker_set_down(cluster_, broker); }
  void set_up(int broker) { rd_kafka_mock_broker_set_up(cluster_, broker); }
  // The next `count` Produce requests, whichever broker gets them, fail with `err`.
  void fail_produce(int count, rd_kafka_resp_err_t err) {
    std::vector<rd_kafka_resp_err_t> errors(static_cast<std::size_t>(count), err);
    rd_kafka_mock_push_request_errors_array(cluster_, 0 /* Produce */, errors.size(),
                                            errors.data());
  }
  [[nodiscard]] const std::string& topic() const { return topic_; }

  std::string error;

 private:
  std::string topic_;
  rd_kafka_t* owner_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

// One message as a consumer read it.
struct Consumed {
  int partition = -1;
  std::int64_t offset = -1;
  std::string key;
  std::string value;
};

// Reads every partition of a topic from its beginning, on a thread of its own, until
// stopped. Messages are kept in the order read (which is offset order per partition).
class TopicReader {
 public:
  TopicReader(const std::string& bootstraps, const std::string& topic, int partitions) {
    std::array<char, 512> err{};
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {});
    const std::array<std::pair<const char*, std::string>, 4> props = {{
        {"bootstrap.servers", bootstraps},
        {"group.id", "sockstate-test-reader"},
        {"enable.auto.commit", "false"},
        {"auto.offset.reset", "earliest"},
    }};
    for (const auto& [k, v] : props) {
      rd_kafka_conf_set(conf, k, v.c_str(), err.data(), err.size());
    }
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err.data(), err.size());
    if (rk_ == nullptr) {
      error = err.data();
      rd_kafka_conf_destroy(conf);
      return;
    }
    rd_kafka_poll_set_consumer(rk_);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    thread_ = std::thread([this] { run(); });
  }
  TopicReader(const TopicReader&) = delete;
  TopicReader& operator=(const TopicReader&) = delete;
  ~TopicReader() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
    if (rk_ != nullptr) {
      rd_kafka_consumer_close(rk_);
      rd_kafka_destroy(rk_);
    }
  }

  [[nodiscard]] std::vector<Consumed> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  [[nodiscard]] std::size_t count() const {
    std::lock_guard lock(mutex_);
    return messages_.size();
  }
  // Waits until at least `n` messages were read, or `timeout` passed, then for `settle`
  // more (so that a duplicate would show). Returns the count.
  std::size_t wait_for(std::size_t n, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds settle = std::chrono::milliseconds(1000)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (count() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(settle);
    return count();
  }

  std::string error;

 private:
  void run() {
    while (!stop_) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 100);
      if (m == nullptr) {
        continue;
      }
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        Consumed c;
        c.partition = m->partition;
        c.offset = m->offset;
        if (m->key != nullptr) {
          c.key.assign(static_cast<const char*>(m->key), m->key_len);
        }
        c.value.assign(static_cast<const char*>(m->payload), m->len);
        std::lock_guard lock(mutex_);
        messages_.push_back(std::move(c));
      }
      rd_kafka_message_destroy(m);
    }
  }

  rd_kafka_t* rk_ = nullptr;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Consumed> messages_;
  std::thread thread_;
};

}  // namespace sockstate::testing

// The kafka sink's librdkafka policy (kafka_policy.h); librdkafka itself is only used by
// kafka_sink.cpp.
#include "kafka_policy.h"

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "sink_keys.h"

namespace sockstate::sink::detail {
namespace {

using document::as_text;
using document::element_path;
using document::fail;
using document::json;
using document::member_path;
using document::quote_text;
using document::wrong_type;

// "host:port", "[v6]:port": what bootstrap.servers takes, checked here so that a typo is
// a configuration error instead of a sink that never connects.
std::string as_broker(const json& v, const std::string& path) {
  std::string s = as_text(v, path, 261);
  const std::string shape = "must be HOST:PORT (\"[IPv6]:PORT\" for an IPv6 address), not ";
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    fail(path, shape + quote_text(s));
  }
  std::string host = s.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) {
      fail(path, shape + quote_text(s));
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    fail(path, shape + quote_text(s));
  }
  (void)as_host(json(host), path);
  const std::string port = s.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) < 1 || std::stoul(port) > 65535) {
    fail(path, "port must be 1 to 65535, in " + quote_text(s));
  }
  return s;
}

}  // namespace

std::vector<std::string> as_brokers(const json& v, const std::string& path) {
  if (!v.is_array() || v.empty()) {
    wrong_type(path, v, "a non-empty array of \"HOST:PORT\" strings");
  }
  if (v.size() > 64) {
    fail(path, "must list at most 64 brokers (librdkafka finds the rest)");
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    out.push_back(as_broker(v[i], element_path(path, i)));
  }
  return out;
}

// Kafka's own rule for topic names.
std::string as_topic(const json& v, const std::string& path) {
  std::string s = as_text(v, path, 249);
  const bool ok = s.find_first_not_of(
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") == std::string::npos;
  if (!ok || s == "." || s == "..") {
    fail(path, "must be a Kafka topic name (letters, digits, '.', '_', '-'), not " + quote_text(s));
  }
  return s;
}

std::vector<std::pair<std::string, std::string>> as_properties(const json& v,
                                                               const std::string& path) {
  if (!v.is_object()) {
    wrong_type(path, v, "an object of librdkafka properties, such as {\"linger.ms\": \"20\"}");
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& item : v.items()) {
    const std::string at = member_path(path, item.key());
    const bool name_ok =
        !item.key().empty() && item.key().size() <= 128 &&
        item.key().find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._") == std::string::npos;
    if (!name_ok) {
      fail(at, "is not a librdkafka property name");
    }
    if (const std::string why = kafka_reserved_property(item.key()); !why.empty()) {
      fail(at, why);
    }
    out.emplace_back(item.key(), as_text(item.value(), at, 4096));
  }
  return out;
}

// What a kafka sink's keys must say together.
void check_kafka(const json& v, const std::string& path, SinkConfig& sink) {
  if (sink.tls_cert.empty() != sink.tls_key.empty()) {
    fail(member_path(path, sink.tls_cert.empty() ? "tls_cert" : "tls_key"),
         "required with " + std::string(sink.tls_cert.empty() ? "tls_key" : "tls_cert") +
             ": a client certificate needs its key");
  }
  const bool tls_files = !sink.tls_ca.empty() || !sink.tls_cert.empty();
  if (tls_files && v.contains("tls") && !sink.tls) {
    fail(member_path(path, "tls"), "is false, but tls_ca, tls_cert or tls_key is set");
  }
  sink.tls = sink.tls || tls_files;
  const bool mechanism = !sink.sasl_mechanism.empty();
  for (const std::string_view key : {"sasl_username", "sasl_password"}) {
    if (mechanism && !v.contains(std::string(key))) {
      fail(member_path(path, key), "required with sasl_mechanism");
    }
    if (!mechanism && v.contains(std::string(key))) {
      fail(member_path(path, key), "needs sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)");
    }
  }
  if (sink.sasl_mechanism == "PLAIN" && !sink.tls) {
    fail(member_path(path, "sasl_mechanism"),
         "PLAIN sends the password as it is: it needs \"tls\": true");
  }
  if (v.contains("message_max_bytes") && sink.message_max_bytes > sink.queue_bytes) {
    fail(member_path(path, "message_max_bytes"), "must not be larger than queue_size");
  }
}

std::string kafka_reserved_property(std::string_view name) {
  // Set from the sink's own keys: one way to say each thing.
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 24> kOwn = {{
      {"bootstrap.servers", "brokers"},
      {"metadata.broker.list", "brokers"},
      {"compression.type", "compression"},
      {"compression.codec", "compression"},
      {"acks", "acks"},
      {"request.required.acks", "acks"},
      {"enable.idempotence", "acks"},
      {"message.max.bytes", "message_max_bytes"},
      {"message.timeout.ms", "delivery_timeout"},
      {"delivery.timeout.ms", "delivery_timeout"},
      {"security.protocol", "tls and sasl_mechanism"},
      {"ssl.ca.location", "tls_ca"},
      {"ssl.certificate.location", "tls_cert"},
      {"ssl.key.location", "tls_key"},
      {"ssl.ca.pem", "tls_ca"},
      {"ssl.certificate.pem", "tls_cert"},
      {"ssl.key.pem", "tls_key"},
      {"sasl.mechanism", "sasl_mechanism"},
      {"sasl.mechanisms", "sasl_mechanism"},
      {"sasl.username", "sasl_username"},
      {"sasl.password", "sasl_password"},
      {"queue.buffering.max.messages", "queue"},
      {"queue.buffering.max.kbytes", "queue_size"},
      {"partitioner", "key"},
  }};
  for (const auto& [property, key] : kOwn) {
    if (name == property) {
      return "is set by the sink's \"" + std::string(key) + "\" key";
    }
  }
  // Delivery reports are how records are counted, in order and exactly once.
  static constexpr std::array<std::string_view, 11> kCounting = {
      "delivery.report.only.error",
      "max.in.flight.requests.per.connection",
      "max.in.flight",
      "retries",
      "message.send.max.retries",
      "enable.gapless.guarantee",
      "statistics.interval.ms",
      "produce.offset.report",
      "queue.buffering.backpressure.threshold",
      "transactional.id",
      "enable.auto.commit"};
  for (const auto property : kCounting) {
    if (name == property) {
      return "cannot be changed: sockstate counts a record as written from its delivery report, "
             "in order (the idempotent producer)";
    }
  }
  if (name.ends_with("_cb") || name == "opaque" || name == "plugin.library.paths" ||
      name == "debug" || name == "log_level" || name.starts_with("log.")) {
    return "cannot be set: callbacks, plugins and librdkafka's own log belong to sockstate";
  }
  return {};
}

}  // namespace sockstate::sink::detail

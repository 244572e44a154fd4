// What one entry of the configuration's `sinks` says: the value a sink is made from, and
// that a reload compares to tell whether a sink must be restarted.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sockstate::sink {

// Where records go. Several sinks may run at once; each has its own bounded queue. Each
// type is a SinkKind (registry.h) defined beside its writer and listed in sink_kinds.def;
// its value here is what a SinkConfig carries to name it.
enum class SinkType {
#define SOCKSTATE_SINK_KIND(Name) k##Name,
#include "sockstate/sink/sink_kinds.def"
#undef SOCKSTATE_SINK_KIND
};

// The message key of a kafka sink's records.
enum class KafkaKey {
  kDeviceUid,  // device.uid: one host's records in one partition, in order
  kNone,       // no key: records spread over partitions (no order between them)
};

// One entry of `sinks`. Only the fields of its type mean anything; parse_sinks() refuses a
// document that sets another type's key, so the others keep their defaults. A sink type
// with settings of its own keeps them here (one field, or a struct of them): this one value
// is what make_sink(), reloads (operator==) and the kinds' key rows share.
struct SinkConfig {
  SinkType type = SinkType::kStdout;
  std::string path;        // file: the log file; unix: the socket path (absolute)
  std::string host;        // tcp: address or name of the shipper's listener
  std::uint16_t port = 0;  // tcp
  // The bounded queue: a record that would pass either limit is dropped (and counted).
  // Bytes are what bound memory (a record is 1 to 4 KiB); the record limit is a backstop.
  std::size_t queue_records = 65536;
  std::size_t queue_bytes = 16U << 20;
  // file
  unsigned file_mode = 0640;
  std::string file_group;          // chown the file to this group when set ("adm")
  std::uint64_t rotate_bytes = 0;  // rotate when the file would pass this size; 0: never
  unsigned rotate_keep = 5;        // rotated files kept: FILE.1 .. FILE.N
  // unix, tcp
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{30000};
  // journald
  std::string syslog_identifier = "sockstate";
  // kafka (librdkafka property names in comments)
  std::vector<std::string> brokers;  // "host:port" each (bootstrap.servers)
  std::string topic;
  KafkaKey key = KafkaKey::kDeviceUid;
  std::string compression = "lz4";                     // compression.type
  std::string acks = "all";                            // "all" (idempotent producer) or "1"
  std::size_t message_max_bytes = 1000000;             // message.max.bytes
  std::chrono::milliseconds delivery_timeout{300000};  // message.timeout.ms
  bool tls = false;                                    // security.protocol SSL / SASL_SSL
  std::string tls_ca;                                  // ssl.ca.location ("": system CAs)
  std::string tls_cert;                                // ssl.certificate.location
  std::string tls_key;                                 // ssl.key.location
  std::string sasl_mechanism;                          // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
  std::string sasl_username;
  std::string sasl_password;
  // Other librdkafka properties, in the document's order; never one that the keys above
  // set or that would break delivery accounting (kafka_reserved_property(), kafka_policy.h).
  std::vector<std::pair<std::string, std::string>> properties;

  // Every field, so a reload can tell whether a sink must be restarted (describe() is for
  // people and leaves most fields out).
  friend bool operator==(const SinkConfig&, const SinkConfig&) = default;
};

}  // namespace sockstate::sink

// Private to the sink library: the kafka sink's librdkafka policy. What its keys may say
// (brokers, topic, and the librdkafka properties a document may pass through) and what
// they must say together, so that every record is counted from its delivery report and
// a configuration librdkafka would refuse is refused with the key's name instead.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sockstate/document/reader.h"
#include "sockstate/sink/sink_config.h"

namespace sockstate::sink::detail {

// Why a kafka sink's `properties` may not set librdkafka property `name`, or "" when it
// may: the sink's own keys set it, or it would break delivery accounting, ordering or the
// collector (callbacks, plugins, librdkafka's own log).
std::string kafka_reserved_property(std::string_view name);

// `brokers`: at most 64 "HOST:PORT" ("[IPv6]:PORT"), as bootstrap.servers takes them.
std::vector<std::string> as_brokers(const document::json& v, const std::string& path);

// `topic`: a name Kafka allows.
std::string as_topic(const document::json& v, const std::string& path);

// `properties`: librdkafka property names and string values, none of them reserved.
std::vector<std::pair<std::string, std::string>> as_properties(const document::json& v,
                                                               const std::string& path);

// What a kafka sink's keys must say together (TLS files and `tls`, SASL, message size);
// a TLS file turns `tls` on.
void check_kafka(const document::json& v, const std::string& path, SinkConfig& sink);

}  // namespace sockstate::sink::detail

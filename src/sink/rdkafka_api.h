// Private to the sink library: librdkafka, loaded with dlopen() the first time a kafka sink
// is made or checked. Linked, it would bring OpenSSL, Cyrus SASL, zstd and lz4 into every
// `sockstate snapshot` (+2.4 MiB peak RSS measured on a snapshot of the listening sockets)
// for a sink most hosts never configure. The header is librdkafka's own: the pointers have
// its functions' exact types.
#pragma once

#include <librdkafka/rdkafka.h>

#include "sockstate/common/error.h"

namespace sockstate::sink::detail {

// The sonames tried, in order (Debian 12 ships librdkafka1, soname librdkafka.so.1).
inline constexpr const char* kRdkafkaSoname = "librdkafka.so.1";

struct Rdkafka {
  decltype(&rd_kafka_conf_new) conf_new = nullptr;
  decltype(&rd_kafka_conf_set) conf_set = nullptr;
  decltype(&rd_kafka_conf_destroy) conf_destroy = nullptr;
  decltype(&rd_kafka_conf_set_log_cb) conf_set_log_cb = nullptr;
  decltype(&rd_kafka_conf_set_opaque) conf_set_opaque = nullptr;
  decltype(&rd_kafka_conf_set_dr_msg_cb) conf_set_dr_msg_cb = nullptr;
  decltype(&rd_kafka_conf_set_error_cb) conf_set_error_cb = nullptr;
  decltype(&rd_kafka_conf_set_stats_cb) conf_set_stats_cb = nullptr;
  decltype(&rd_kafka_new) kafka_new = nullptr;
  decltype(&rd_kafka_destroy) destroy = nullptr;
  decltype(&rd_kafka_topic_new) topic_new = nullptr;
  decltype(&rd_kafka_topic_destroy) topic_destroy = nullptr;
  decltype(&rd_kafka_last_error) last_error = nullptr;
  decltype(&rd_kafka_err2str) err2str = nullptr;
  decltype(&rd_kafka_produce) produce = nullptr;
  decltype(&rd_kafka_fatal_error) fatal_error = nullptr;
  decltype(&rd_kafka_poll) poll = nullptr;
  decltype(&rd_kafka_flush) flush = nullptr;
  decltype(&rd_kafka_purge) purge = nullptr;
  decltype(&rd_kafka_outq_len) outq_len = nullptr;
};

// The loaded library (loaded once, never unloaded), or an Error saying it is missing.
Result<const Rdkafka*> rdkafka();

}  // namespace sockstate::sink::detail

#include "rdkafka_api.h"

#include <string>

#include "sockstate/common/shared_library.h"

namespace sockstate::sink::detail {
namespace {

// Every function, or nullptr with why in *missing.
const Rdkafka* load(std::string* missing) {
  auto lib = SharedLibrary::open(kRdkafkaSoname);
  if (!lib) {
    *missing = lib.error().context;
    return nullptr;
  }
  static Rdkafka r;
  lib->bind("rd_kafka_conf_new", r.conf_new);
  lib->bind("rd_kafka_conf_set", r.conf_set);
  lib->bind("rd_kafka_conf_destroy", r.conf_destroy);
  lib->bind("rd_kafka_conf_set_log_cb", r.conf_set_log_cb);
  lib->bind("rd_kafka_conf_set_opaque", r.conf_set_opaque);
  lib->bind("rd_kafka_conf_set_dr_msg_cb", r.conf_set_dr_msg_cb);
  lib->bind("rd_kafka_conf_set_error_cb", r.conf_set_error_cb);
  lib->bind("rd_kafka_conf_set_stats_cb", r.conf_set_stats_cb);
  lib->bind("rd_kafka_new", r.kafka_new);
  lib->bind("rd_kafka_destroy", r.destroy);
  lib->bind("rd_kafka_topic_new", r.topic_new);
  lib->bind("rd_kafka_topic_destroy", r.topic_destroy);
  lib->bind("rd_kafka_last_error", r.last_error);
  lib->bind("rd_kafka_err2str", r.err2str);
  lib->bind("rd_kafka_produce", r.produce);
  lib->bind("rd_kafka_fatal_error", r.fatal_error);
  lib->bind("rd_kafka_poll", r.poll);
  lib->bind("rd_kafka_flush", r.flush);
  lib->bind("rd_kafka_purge", r.purge);
  lib->bind("rd_kafka_outq_len", r.outq_len);
  if (!lib->missing().empty()) {
    *missing =
        std::string(kRdkafkaSoname) + " has no " + lib->missing() + " (librdkafka 1.9 or later)";
    return nullptr;
  }
  return &r;
}

}  // namespace

Result<const Rdkafka*> rdkafka() {
  static std::string missing;
  static const Rdkafka* const kLoaded = load(&missing);
  if (kLoaded == nullptr) {
    return Error{
        0, "the kafka sink needs librdkafka (Debian: apt-get install librdkafka1): " + missing};
  }
  return kLoaded;
}

}  // namespace sockstate::sink::detail

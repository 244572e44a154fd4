#include "rdkafka_api.h"

#include <dlfcn.h>

#include <string>

namespace sockstate::sink::detail {
namespace {

template <typename F>
bool bind(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(::dlsym(lib, name));
  return out != nullptr;
}

// Every function, or nullptr with the first one missing in *missing.
const Rdkafka* load(std::string* missing) {
  void* lib = ::dlopen(kRdkafkaSoname, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    *missing = why != nullptr ? why : kRdkafkaSoname;
    return nullptr;
  }
  static Rdkafka r;
  const std::pair<const char*, bool> steps[] = {
      {"rd_kafka_conf_new", bind(lib, "rd_kafka_conf_new", r.conf_new)},
      {"rd_kafka_conf_set", bind(lib, "rd_kafka_conf_set", r.conf_set)},
      {"rd_kafka_conf_destroy", bind(lib, "rd_kafka_conf_destroy", r.conf_destroy)},
      {"rd_kafka_conf_set_log_cb", bind(lib, "rd_kafka_conf_set_log_cb", r.conf_set_log_cb)},
      {"rd_kafka_conf_set_opaque", bind(lib, "rd_kafka_conf_set_opaque", r.conf_set_opaque)},
      {"rd_kafka_conf_set_dr_msg_cb",
       bind(lib, "rd_kafka_conf_set_dr_msg_cb", r.conf_set_dr_msg_cb)},
      {"rd_kafka_conf_set_error_cb", bind(lib, "rd_kafka_conf_set_error_cb", r.conf_set_error_cb)},
      {"rd_kafka_conf_set_stats_cb", bind(lib, "rd_kafka_conf_set_stats_cb", r.conf_set_stats_cb)},
      {"rd_kafka_new", bind(lib, "rd_kafka_new", r.kafka_new)},
      {"rd_kafka_destroy", bind(lib, "rd_kafka_destroy", r.destroy)},
      {"rd_kafka_topic_new", bind(lib, "rd_kafka_topic_new", r.topic_new)},
      {"rd_kafka_topic_destroy", bind(lib, "rd_kafka_topic_destroy", r.topic_destroy)},
      {"rd_kafka_last_error", bind(lib, "rd_kafka_last_error", r.last_error)},
      {"rd_kafka_err2str", bind(lib, "rd_kafka_err2str", r.err2str)},
      {"rd_kafka_produce", bind(lib, "rd_kafka_produce", r.produce)},
      {"rd_kafka_fatal_error", bind(lib, "rd_kafka_fatal_error", r.fatal_error)},
      {"rd_kafka_poll", bind(lib, "rd_kafka_poll", r.poll)},
      {"rd_kafka_flush", bind(lib, "rd_kafka_flush", r.flush)},
      {"rd_kafka_purge", bind(lib, "rd_kafka_purge", r.purge)},
      {"rd_kafka_outq_len", bind(lib, "rd_kafka_outq_len", r.outq_len)},
  };
  for (const auto& [name, found] : steps) {
    if (!found) {
      *missing = std::string(kRdkafkaSoname) + " has no " + name + " (librdkafka 1.9 or later)";
      return nullptr;
    }
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

#include "sockstate/config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <exception>
#include <filesystem>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sockstate/common/fd.h"
#include "sockstate/document/reader.h"
#include "sockstate/metrics/server.h"
#include "sockstate/ocsf/tcp_state.h"

namespace sockstate::config {

using sink::KafkaKey;
using sink::SinkConfig;
using sink::SinkType;

namespace {

using document::as_bool;
using document::as_choice;
using document::as_duration;
using document::as_integer;
using document::as_size;
using document::as_text;
using document::element_path;
using document::fail;
using document::format_duration;
using document::Invalid;
using document::json;
using document::kGiB;
using document::kind_of;
using document::kKiB;
using document::kMiB;
using document::member_path;
using document::one_line;
using document::quote_text;
using document::unknown_key;
using document::wrong_type;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

// ---- top-level keys -----------------------------------------------------------------------

std::uint32_t as_states(const json& v, const std::string& path) {
  if (!v.is_array()) {
    wrong_type(path, v, "an array of state names such as [\"all\"]");
  }
  if (v.empty()) {
    fail(path, "must not be empty (no socket would be reported)");
  }
  std::uint32_t mask = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = element_path(path, i);
    if (!v[i].is_string()) {
      wrong_type(at, v[i], "a state name");
    }
    const auto& name = v[i].get_ref<const std::string&>();
    const auto bits = ocsf::state_mask_for_name(name);
    if (!bits) {
      fail(at, "unknown state " + quote_text(name) + " (names: " + ocsf::state_names() + ")");
    }
    mask |= *bits;
  }
  return mask;
}

std::string as_log_level(const json& v, const std::string& path) {
  static constexpr std::array<std::string_view, 4> kLevels = {"error", "warn", "info", "debug"};
  if (v.is_string()) {
    for (const auto level : kLevels) {
      if (v.get_ref<const std::string&>() == level) {
        return std::string(level);
      }
    }
  }
  fail(path, "must be one of error, warn, info, debug");
}

std::vector<flow::Cidr> as_networks(const json& v, const std::string& path) {
  if (!v.is_array()) {
    wrong_type(path, v, "an array of networks such as [\"10.0.0.0/8\", \"2001:db8::/32\"]");
  }
  std::vector<flow::Cidr> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = element_path(path, i);
    if (!v[i].is_string()) {
      wrong_type(at, v[i], "a network in CIDR form");
    }
    const auto& text = v[i].get_ref<const std::string&>();
    const auto cidr = flow::parse_cidr(text);
    if (!cidr) {
      fail(at, "must be a network in CIDR form with no host bits set (\"10.0.0.0/8\"), not " +
                   quote_text(text));
    }
    out.push_back(*cidr);
  }
  return out;
}

void parse_sinks(const json& v, const std::string& path, Config& c);

using TopHandler = void (*)(const json&, const std::string&, Config&);

struct TopKey {
  std::string_view name;
  TopHandler apply;
};

// Every top-level key, in the order they are checked (and documented in the example).
constexpr std::array<TopKey, 17> kTopKeys = {{
    {"poll_interval",
     [](const json& v, const std::string& p, Config& c) {
       c.poll_interval = as_duration(v, p, {100ms, {}});
     }},
    {"traffic_interval",
     [](const json& v, const std::string& p, Config& c) {
       c.traffic_interval = as_duration(v, p, {100ms, "off"});
     }},
    {"stats_interval",
     [](const json& v, const std::string& p, Config& c) {
       c.stats_interval = as_duration(v, p, {1s, "off"});
     }},
    {"baseline",
     [](const json& v, const std::string& p, Config& c) { c.baseline = as_bool(v, p); }},
    {"destroy_events",
     [](const json& v, const std::string& p, Config& c) { c.destroy_events = as_bool(v, p); }},
    {"states", [](const json& v, const std::string& p, Config& c) { c.states = as_states(v, p); }},
    {"process", [](const json& v, const std::string& p, Config& c) { c.process = as_bool(v, p); }},
    {"all_netns",
     [](const json& v, const std::string& p, Config& c) { c.all_netns = as_bool(v, p); }},
    {"community_id_seed",
     [](const json& v, const std::string& p, Config& c) {
       c.community_id_seed =
           static_cast<std::uint16_t>(as_integer(v, p, 0, 65535, "must be 0 to 65535"));
     }},
    {"event_buffer",
     [](const json& v, const std::string& p, Config& c) {
       // The listener caps SO_RCVBUF at 1 GiB (it is an int, and the kernel doubles it).
       c.event_buffer_bytes = static_cast<std::size_t>(as_size(v, p, {64 * kKiB, kGiB, {}}));
     }},
    {"log_name",
     [](const json& v, const std::string& p, Config& c) { c.log_name = as_text(v, p, 256); }},
    {"device_type_id",
     [](const json& v, const std::string& p, Config& c) {
       const std::string range = "must be an OCSF device type id: 0 to 15, or 99 (Other)";
       const auto id = as_integer(v, p, 0, 99, range);
       if (id > 15 && id != 99) {
         fail(p, range);
       }
       c.device_type_id = static_cast<int>(id);
     }},
    {"log_level",
     [](const json& v, const std::string& p, Config& c) { c.log_level = as_log_level(v, p); }},
    {"internal_networks", [](const json& v, const std::string& p,
                             Config& c) { c.internal_networks = as_networks(v, p); }},
    {"observables",
     [](const json& v, const std::string& p, Config& c) { c.observables = as_bool(v, p); }},
    {"metrics_listen",
     [](const json& v, const std::string& p, Config& c) {
       if (!v.is_string()) {
         wrong_type(p, v, "\"IP:PORT\" such as \"127.0.0.1:9465\", or \"\" for none");
       }
       const auto& text = v.get_ref<const std::string&>();
       if (!text.empty()) {
         // inet_pton() reads the address up to a NUL: "127.0.0.1\u0000\n..." passed, and
         // its newline broke describe()'s log line. No control characters, as in names.
         (void)as_text(v, p, 255);
         if (auto a = metrics::parse_listen_address(text); !a) {
           fail(p, "must be \"IP:PORT\" or \"[IPv6]:PORT\": " + a.error().context);
         }
       }
       c.metrics_listen = text;
     }},
    {"sinks", parse_sinks},
}};

// ---- sinks --------------------------------------------------------------------------------

void check_file(const json& v, const std::string& path, SinkConfig& sink);
void check_kafka(const json& v, const std::string& path, SinkConfig& sink);

// A sink type as the document names it: its word, the keys it cannot do without, what its
// keys must say together, and whether a second sink of the type would duplicate the first
// (two writers on one stream). The keys each type takes are kSinkKeys' `types`; a new
// sink type is a row here, its keys there, and its writer in src/sink (kSinkMakers).
struct SinkTypeRow {
  SinkType type;
  std::string_view name;
  std::array<std::string_view, 2> required;  // "" for none
  void (*check)(const json& v, const std::string& path, SinkConfig& sink);
  bool at_most_one;
};
constexpr std::array<SinkTypeRow, 6> kSinkTypeRows = {{
    {SinkType::kStdout, "stdout", {}, nullptr, true},
    {SinkType::kFile, "file", {"path", ""}, check_file, false},
    {SinkType::kUnix, "unix", {"path", ""}, nullptr, false},
    {SinkType::kTcp, "tcp", {"host", "port"}, nullptr, false},
    {SinkType::kJournald, "journald", {}, nullptr, true},
    {SinkType::kKafka, "kafka", {"brokers", "topic"}, check_kafka, false},
}};

const SinkTypeRow& type_row(SinkType type) {
  for (const auto& row : kSinkTypeRows) {
    if (row.type == type) {
      return row;
    }
  }
  return kSinkTypeRows[0];  // every SinkType has a row (sink_type_name's test)
}

// "stdout, file, unix, tcp, journald, kafka", with `last` before the last word.
std::string type_words(std::string_view last) {
  std::string out;
  for (std::size_t i = 0; i < kSinkTypeRows.size(); ++i) {
    out += i == 0 ? "" : i + 1 == kSinkTypeRows.size() ? std::string(last) : ", ";
    out += kSinkTypeRows[i].name;
  }
  return out;
}

constexpr unsigned type_bit(SinkType t) {
  return 1U << static_cast<unsigned>(t);
}
constexpr unsigned kAnySink = (1U << kSinkTypeRows.size()) - 1U;
constexpr unsigned kSocketSinks = type_bit(SinkType::kUnix) | type_bit(SinkType::kTcp);

std::string types_text(unsigned mask) {
  std::string out;
  for (const auto& row : kSinkTypeRows) {
    if ((mask & type_bit(row.type)) != 0) {
      out += out.empty() ? "" : " and ";
      out += row.name;
    }
  }
  return out;
}

// Sinks open files and connect sockets by these names: refuse what open() or connect()
// would refuse, here, with the key's name, instead of a failure at startup.
std::string as_path(const json& v, const std::string& path, SinkType type) {
  std::string s = as_text(v, path, 4095);
  if (s[0] != '/') {
    fail(path, "must be an absolute path, not " + quote_text(s));
  }
  if (type == SinkType::kUnix) {
    // sun_path is 108 bytes with its NUL.
    if (s.size() > 107) {
      fail(path, "must be at most 107 bytes (the limit of a Unix socket address)");
    }
  } else if (!std::filesystem::path(s).lexically_normal().has_filename()) {
    fail(path, "must name a file, not a directory: " + quote_text(s));
  }
  return s;
}

std::string as_host(const json& v, const std::string& path) {
  std::string s = as_text(v, path, 253);  // a DNS name's limit
  for (const char c : s) {
    // Names, IPv4, IPv6 (':', and '%' for a zone) — brackets and ports are separate keys.
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) {
      fail(path,
           "must be an IP address or a host name (no brackets, no port), not " + quote_text(s));
    }
  }
  return s;
}

unsigned as_mode(const json& v, const std::string& path) {
  const std::string shape =
      "must be an octal mode string from \"0000\" to \"0777\", such as \"0640\"";
  if (!v.is_string()) {
    // JSON has no octal: 0640 is not valid JSON and 640 would be decimal.
    fail(path, shape + ", not " + kind_of(v));
  }
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() < 3 || s.size() > 4) {
    fail(path, shape);
  }
  unsigned mode = 0;
  for (const char c : s) {
    if (c < '0' || c > '7') {
      fail(path, shape);
    }
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (mode > 0777) {
    fail(path, shape);
  }
  // The sink reopens the file on SIGHUP: without owner write that fails once it exists.
  if ((mode & 0200) == 0) {
    fail(path, "must let the owner write (such as \"0640\"): the file is reopened on reload");
  }
  // A world-writable log lets any local user forge records; a world-readable one shows
  // every user the host's connections, processes and command lines.
  if ((mode & 0002) != 0) {
    fail(path, "must not let others write: any local user could forge records");
  }
  if ((mode & 0004) != 0) {
    fail(path,
         "must not let others read (such as \"0640\", group adm): records name "
         "processes, users and command lines");
  }
  return mode;
}

std::string as_group(const json& v, const std::string& path) {
  std::string s = as_text(v, path, 256);
  if (s.find_first_of(" :,") != std::string::npos) {
    fail(path, "must be a group name, not " + quote_text(s));
  }
  return s;
}

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

using SinkHandler = void (*)(const json&, const std::string&, SinkConfig&);

struct SinkKey {
  std::string_view name;
  unsigned types;  // type_bit()s of the sinks that take this key
  SinkHandler apply;
};

// Every sink key but `type`, in the order they are checked.
constexpr unsigned kKafka = type_bit(SinkType::kKafka);

constexpr std::array<SinkKey, 28> kSinkKeys = {{
    {"path", type_bit(SinkType::kFile) | type_bit(SinkType::kUnix),
     [](const json& v, const std::string& p, SinkConfig& s) { s.path = as_path(v, p, s.type); }},
    {"host", type_bit(SinkType::kTcp),
     [](const json& v, const std::string& p, SinkConfig& s) { s.host = as_host(v, p); }},
    {"port", type_bit(SinkType::kTcp),
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.port = static_cast<std::uint16_t>(as_integer(v, p, 1, 65535, "must be 1 to 65535"));
     }},
    {"queue", kAnySink,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.queue_records =
           static_cast<std::size_t>(as_integer(v, p, 1, 10000000, "must be 1 to 10000000"));
     }},
    {"queue_size", kAnySink,
     [](const json& v, const std::string& p, SinkConfig& s) {
       // Below 64 KiB a single burst of records overflows; above 4 GiB is a typo.
       s.queue_bytes = static_cast<std::size_t>(as_size(v, p, {64 * kKiB, 4 * kGiB, {}}));
     }},
    {"mode", type_bit(SinkType::kFile),
     [](const json& v, const std::string& p, SinkConfig& s) { s.file_mode = as_mode(v, p); }},
    {"group", type_bit(SinkType::kFile),
     [](const json& v, const std::string& p, SinkConfig& s) { s.file_group = as_group(v, p); }},
    {"rotate_size", type_bit(SinkType::kFile),
     [](const json& v, const std::string& p, SinkConfig& s) {
       // Below 64 KiB a busy host would rotate every second; above 1 TiB is a typo.
       s.rotate_bytes = as_size(v, p, {64 * kKiB, 1024 * kGiB, "never"});
     }},
    {"rotate_keep", type_bit(SinkType::kFile),
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.rotate_keep = static_cast<unsigned>(as_integer(v, p, 1, 1000, "must be 1 to 1000"));
     }},
    {"reconnect_min", kSocketSinks,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.reconnect_min = as_duration(v, p, {10ms, {}});
     }},
    {"reconnect_max", kSocketSinks,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.reconnect_max = as_duration(v, p, {10ms, {}});
     }},
    {"syslog_identifier", type_bit(SinkType::kJournald),
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.syslog_identifier = as_text(v, p, 255);
     }},
    {"brokers", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) { s.brokers = as_brokers(v, p); }},
    {"topic", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) { s.topic = as_topic(v, p); }},
    {"key", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.key = as_choice(v, p, std::array<std::string_view, 2>{"device.uid", "none"}) == "none"
                   ? KafkaKey::kNone
                   : KafkaKey::kDeviceUid;
     }},
    {"compression", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.compression = as_choice(
           v, p, std::array<std::string_view, 5>{"none", "gzip", "snappy", "lz4", "zstd"});
     }},
    {"acks", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       if (v.is_string() && v.get_ref<const std::string&>() == "0") {
         fail(p, "must be \"all\" or \"1\": with 0 no broker acknowledges a record, so none "
                 "could be counted as delivered");
       }
       s.acks = as_choice(v, p, std::array<std::string_view, 2>{"all", "1"});
     }},
    {"message_max_bytes", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       // librdkafka's own range is 1000 to 1000000000.
       s.message_max_bytes = static_cast<std::size_t>(as_size(v, p, {4 * kKiB, 512 * kMiB, {}}));
     }},
    {"delivery_timeout", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.delivery_timeout = as_duration(v, p, {100ms, {}});
     }},
    {"tls", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) { s.tls = as_bool(v, p); }},
    {"tls_ca", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.tls_ca = as_path(v, p, SinkType::kFile);
     }},
    {"tls_cert", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.tls_cert = as_path(v, p, SinkType::kFile);
     }},
    {"tls_key", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.tls_key = as_path(v, p, SinkType::kFile);
     }},
    {"sasl_mechanism", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.sasl_mechanism = as_choice(
           v, p, std::array<std::string_view, 3>{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"});
     }},
    {"sasl_username", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.sasl_username = as_text(v, p, 1024);
     }},
    {"sasl_password", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.sasl_password = as_text(v, p, 1024);
     }},
    {"properties", kKafka,
     [](const json& v, const std::string& p, SinkConfig& s) {
       s.properties = as_properties(v, p);
     }},
    {"type", kAnySink, nullptr},  // read first, by parse_sink()
}};

const SinkKey* find_sink_key(std::string_view name) {
  for (const auto& k : kSinkKeys) {
    if (k.name == name) {
      return &k;
    }
  }
  return nullptr;
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

// The rotate_keep key means nothing without rotate_size.
void check_file(const json& v, const std::string& path, SinkConfig& sink) {
  if (v.contains("rotate_keep") && sink.rotate_bytes == 0) {
    fail(member_path(path, "rotate_keep"),
         "needs rotate_size: without it the file is never rotated");
  }
}

// Every key is known before anything else is judged: a misspelt "typ" explains a missing
// type better than "type: required" does. Then the type, by its word.
SinkType sink_type_of(const json& v, const std::string& path) {
  for (const auto& item : v.items()) {
    if (find_sink_key(item.key()) == nullptr) {
      unknown_key(member_path(path, item.key()), item.key(), kSinkKeys);
    }
  }
  const std::string type_path = member_path(path, "type");
  const auto type_it = v.find("type");
  if (type_it == v.end()) {
    fail(type_path, "required: " + type_words(" or "));
  }
  if (type_it->is_string()) {
    for (const auto& row : kSinkTypeRows) {
      if (type_it->get_ref<const std::string&>() == row.name) {
        return row.type;
      }
    }
  }
  fail(type_path, "must be one of " + type_words(", "));
}

// What the type's keys must say, alone and together.
void check_sink(const json& v, const std::string& path, SinkConfig& sink) {
  const SinkTypeRow& row = type_row(sink.type);
  for (const auto key : row.required) {
    if (!key.empty() && !v.contains(std::string(key))) {
      fail(member_path(path, key), "required for a " + std::string(row.name) + " sink");
    }
  }
  if (row.check != nullptr) {
    row.check(v, path, sink);
  }
  if (sink.reconnect_min > sink.reconnect_max) {
    // Blame the key the user wrote; when both were written, the maximum.
    if (v.contains("reconnect_max")) {
      fail(member_path(path, "reconnect_max"),
           "must be at least reconnect_min (" + format_duration(sink.reconnect_min) + ")");
    }
    fail(member_path(path, "reconnect_min"),
         "must be at most reconnect_max (" + format_duration(sink.reconnect_max) + ")");
  }
}

SinkConfig parse_sink(const json& v, const std::string& path) {
  if (!v.is_object()) {
    wrong_type(path, v, "a sink object such as {\"type\": \"stdout\"}");
  }
  SinkConfig sink;
  sink.type = sink_type_of(v, path);
  for (const auto& item : v.items()) {
    const SinkKey* key = find_sink_key(item.key());
    if (key != nullptr && (key->types & type_bit(sink.type)) == 0) {
      fail(member_path(path, item.key()),
           "not a key of a " + std::string(sink_type_name(sink.type)) + " sink (" +
               std::string(key->name) + " is for " + types_text(key->types) + " sinks)");
    }
  }
  for (const auto& key : kSinkKeys) {
    if (key.apply == nullptr) {
      continue;
    }
    if (const auto it = v.find(std::string(key.name)); it != v.end()) {
      key.apply(*it, member_path(path, key.name), sink);
    }
  }
  check_sink(v, path, sink);
  return sink;
}

void parse_sinks(const json& v, const std::string& path, Config& c) {
  if (!v.is_array()) {
    wrong_type(path, v, "an array of sink objects");
  }
  if (v.empty()) {
    fail(path, "must not be empty: records would be written nowhere");
  }
  std::vector<SinkConfig> sinks;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string at = element_path(path, i);
    SinkConfig sink = parse_sink(v[i], at);
    for (std::size_t j = 0; j < sinks.size(); ++j) {
      const SinkConfig& earlier = sinks[j];
      if (earlier.type != sink.type) {
        continue;
      }
      // Two writers interleaving one stream, or one journal getting every record twice.
      if (type_row(sink.type).at_most_one) {
        fail(member_path(at, "type"), "a second " + std::string(sink_type_name(sink.type)) +
                                          " sink (at most one; the first is " +
                                          element_path(path, j) + ")");
      }
      // Two sinks appending to one file tear each other's records and rotations.
      if (sink.type == SinkType::kFile &&
          std::filesystem::path(sink.path).lexically_normal() ==
              std::filesystem::path(earlier.path).lexically_normal()) {
        fail(member_path(at, "path"), "the same file as " + element_path(path, j));
      }
      // Every record twice into one topic.
      if (sink.type == SinkType::kKafka && sink_name(sink) == sink_name(earlier)) {
        fail(member_path(at, "topic"), "the same topic and brokers as " + element_path(path, j));
      }
    }
    sinks.push_back(std::move(sink));
  }
  c.sinks = std::move(sinks);
}

const TopKey* find_top_key(std::string_view name) {
  for (const auto& k : kTopKeys) {
    if (k.name == name) {
      return &k;
    }
  }
  return nullptr;
}

Config from_document(const json& doc) {
  if (!doc.is_object()) {
    wrong_type("(document)", doc, "an object");
  }
  for (const auto& item : doc.items()) {
    if (find_top_key(item.key()) == nullptr) {
      unknown_key(member_path({}, item.key()), item.key(), kTopKeys);
    }
  }
  Config c;
  for (const auto& key : kTopKeys) {
    if (const auto it = doc.find(std::string(key.name)); it != doc.end()) {
      key.apply(*it, std::string(key.name), c);
    }
  }
  return c;
}

// JSON lets a key appear twice and nlohmann keeps the last; in a configuration that is a
// pasted block overriding an earlier one without a word. The parse callback sees keys in
// document order, so this tracks where it is and remembers the first repeat.
class DuplicateKeys {
 public:
  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        frames_.push_back(Frame{false, 0, {}, {}});
        break;
      case json::parse_event_t::array_start:
        frames_.push_back(Frame{true, 0, {}, {}});
        break;
      case json::parse_event_t::key:
        if (!frames_.empty()) {
          Frame& f = frames_.back();
          f.key = parsed.get<std::string>();
          if (!f.keys.insert(f.key).second && first_.empty()) {
            first_ = path();
          }
        }
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) {
          frames_.pop_back();
        }
        element_done();
        break;
      case json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  }

  // The path of the first key given twice, or empty.
  [[nodiscard]] const std::string& first() const { return first_; }

 private:
  struct Frame {
    bool array;
    std::size_t index;  // array: elements completed, so the one being read
    std::string key;    // object: the key being read
    std::set<std::string> keys;
  };

  void element_done() {
    if (!frames_.empty() && frames_.back().array) {
      ++frames_.back().index;
    }
  }

  [[nodiscard]] std::string path() const {
    std::string out;
    for (const auto& f : frames_) {
      out = f.array ? element_path(out, f.index) : member_path(out, f.key);
    }
    return out;
  }

  std::vector<Frame> frames_;
  std::string first_;
};

// nlohmann's parse_error::what() is "[json.exception.parse_error.101] parse error at line
// 3, column 5: syntax error while parsing ..."; the id means nothing to a user.
std::string syntax_message(const char* what) {
  std::string_view m(what);
  if (const auto bracket = m.find("] ");
      m.rfind("[json.exception.", 0) == 0 && bracket != std::string_view::npos) {
    m.remove_prefix(bracket + 2);
  }
  for (const std::string_view prefix : {"parse error at ", "parse error: "}) {
    if (m.rfind(prefix, 0) == 0) {
      m.remove_prefix(prefix.size());
      break;
    }
  }
  return "(document): " + std::string(m);
}

}  // namespace

namespace {

// Deeper than any configuration needs; a document nested 100,000 deep is an attack or an
// accident, and walking it would recurse.
constexpr int kMaxDepth = 16;

// One JSON value, strictly: comments allowed, a key given twice or nesting deeper than
// kMaxDepth refused. Throws Invalid (with `what_path`) or json::exception.
json parse_strict(std::string_view text, const std::string& what_path) {
  DuplicateKeys duplicates;
  json doc = json::parse(
      text.begin(), text.end(),
      [&duplicates, &what_path](int depth, json::parse_event_t event, json& parsed) {
        if (depth > kMaxDepth) {
          fail(what_path, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
        }
        return duplicates.on_event(event, parsed);
      },
      /*allow_exceptions=*/true, /*ignore_comments=*/true);
  if (!duplicates.first().empty()) {
    fail(duplicates.first(), "given twice (JSON would keep the last)");
  }
  return doc;
}

// The document, then each command-line override (key, JSON text) set over it, then the
// whole validated. Never throws.
Result<Config> build(std::string_view text,
                     const std::vector<std::pair<std::string, std::string>>& overrides) {
  // The JSON parser stops at a NUL byte as at the end of the text, and what follows would
  // be ignored without a word.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    const std::string_view before = text.substr(0, nul);
    const auto line = 1 + std::count(before.begin(), before.end(), '\n');
    const auto line_start = before.rfind('\n');
    const auto column = line_start == std::string_view::npos ? nul + 1 : nul - line_start;
    return Error{0, "(document): line " + std::to_string(line) + ", column " +
                        std::to_string(column) + ": a NUL byte: not a text file"};
  }
  try {
    json doc = parse_strict(text, "(document)");
    if (!doc.is_object()) {
      return from_document(doc);  // its error names the problem
    }
    for (const auto& [key, value] : overrides) {
      doc[key] = parse_strict(value, key);
    }
    return from_document(doc);
  } catch (const Invalid& e) {
    return Error{0, one_line(e.path + ": " + e.what)};
  } catch (const json::exception& e) {
    return Error{0, one_line(syntax_message(e.what()))};
  } catch (const std::bad_alloc&) {
    return Error{0, "(document): out of memory"};
  } catch (const std::exception& e) {
    return Error{0, one_line(std::string("(document): ") + e.what())};
  }
}

// A configuration is a few KiB of a regular file that only its owner may change; anything
// else is the wrong file (a FIFO would block, /dev/zero never ends, a log is huge) or one
// another user could rewrite.
Result<std::string> read_config_file(const std::string& path) {
  constexpr std::size_t kMaxBytes = 1U << 20;
  const std::string context = one_line("cannot read configuration file " + path);
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) {
    return errno_error(context);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return errno_error(context);
  }
  if (S_ISDIR(st.st_mode)) {
    return Error{EISDIR, context};
  }
  if (!S_ISREG(st.st_mode)) {
    return Error{0, one_line(path + ": not a regular file")};
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return Error{0, one_line(path + ": writable by every user; refused (chmod o-w)")};
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxBytes) {
    return Error{0, one_line(path + ": larger than 1MiB, not a configuration file")};
  }
  std::string text;
  std::array<char, 16384> buf{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(context);
    }
    if (n == 0) {
      return text;
    }
    text.append(buf.data(), static_cast<std::size_t>(n));
    if (text.size() > kMaxBytes) {
      return Error{0, one_line(path + ": larger than 1MiB, not a configuration file")};
    }
  }
}

}  // namespace

Result<Config> parse_config(std::string_view text) {
  return build(text, {});
}

Result<Config> load_config(const std::string& path,
                           const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::string text = "{}";
  if (!path.empty()) {
    auto read = read_config_file(path);
    if (!read) {
      return read.error();
    }
    text = std::move(*read);
  }
  auto parsed = build(text, overrides);
  if (!parsed) {
    const std::string where = path.empty()        ? std::string("command line")
                              : overrides.empty() ? path
                                                  : path + " with the command line";
    return Error{0, one_line(where + ": " + parsed.error().context)};
  }
  return parsed;
}

std::string_view sink_type_name(SinkType type) {
  return type_row(type).name;
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

std::string sink_name(const SinkConfig& sink) {
  switch (sink.type) {
    case SinkType::kKafka:
      return "kafka:" + sink.topic + "@" + (sink.brokers.empty() ? "" : sink.brokers.front());
    case SinkType::kStdout:
    case SinkType::kJournald:
      return std::string(sink_type_name(sink.type));
    case SinkType::kFile:
    case SinkType::kUnix:
      return std::string(sink_type_name(sink.type)) + ":" + sink.path;
    case SinkType::kTcp: {
      // An IPv6 address in brackets, as in a URL, so the port stays readable.
      const bool v6 = sink.host.find(':') != std::string::npos;
      return "tcp:" + (v6 ? "[" + sink.host + "]" : sink.host) + ":" + std::to_string(sink.port);
    }
  }
  return "unknown";
}

std::string describe(const Config& config) {
  const auto every = [](milliseconds d) { return d.count() == 0 ? "off" : format_duration(d); };
  std::string out = "poll " + format_duration(config.poll_interval);
  out += ", traffic " + every(config.traffic_interval);
  out += ", stats " + every(config.stats_interval);
  if (!config.baseline) {
    out += ", no baseline";
  }
  if (!config.destroy_events) {
    out += ", no destroy events";
  }
  if (!config.process) {
    out += ", no process";
  }
  if (config.all_netns) {
    out += ", all namespaces";
  }
  if (config.community_id_seed != 0) {
    out += ", community id seed " + std::to_string(config.community_id_seed);
  }
  if (config.internal_networks != flow::NetworkSet::default_internal().networks()) {
    out += ", internal networks:";
    for (const auto& n : config.internal_networks) {
      out += " " + flow::cidr_text(n);
    }
    if (config.internal_networks.empty()) {
      out += " none";
    }
  }
  if (!config.observables) {
    out += ", no observables";
  }
  if (!config.metrics_listen.empty()) {
    out += ", metrics on " + config.metrics_listen;
  }
  if (config.states != netlink::kAllStates) {
    std::array<char, 16> hex{};
    const auto [end, ec] = std::to_chars(hex.data(), hex.data() + hex.size(), config.states, 16);
    out += ", states 0x" + std::string(hex.data(), end);
  }
  out += ", " + std::to_string(config.sinks.size()) +
         (config.sinks.size() == 1 ? " sink: " : " sinks: ");
  for (std::size_t i = 0; i < config.sinks.size(); ++i) {
    out += (i == 0 ? "" : ", ") + sink_name(config.sinks[i]);
  }
  return out;
}

std::vector<std::string> known_keys() {
  std::vector<std::string> keys;
  keys.reserve(kTopKeys.size() + kSinkKeys.size());
  for (const auto& k : kTopKeys) {
    keys.emplace_back(k.name);
  }
  for (const auto& k : kSinkKeys) {
    keys.push_back("sinks[]." + std::string(k.name));
  }
  return keys;
}

}  // namespace sockstate::config

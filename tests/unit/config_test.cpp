#include "sockstate/config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sockstate/netlink/types.h"
#include "sockstate/sink/registry.h"

namespace sockstate::config {
namespace {

using namespace std::chrono_literals;
using netlink::state_bit;
using sink::KafkaKey;
using sink::SinkConfig;
using sink::SinkType;

const std::string kExample =
    std::string(SOCKSTATE_SOURCE_DIR) + "/packaging/sockstate.example.json";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Config parse_ok(const std::string& text) {
  auto parsed = parse_config(text);
  EXPECT_TRUE(parsed.ok()) << text << "\n -> " << parsed.error().message();
  return parsed.ok() ? *parsed : Config{};
}

// The error for `text`, checked for the contract every error keeps: errno 0, one line.
std::string parse_error(const std::string& text) {
  auto parsed = parse_config(text);
  EXPECT_FALSE(parsed.ok()) << "accepted: " << text;
  if (parsed.ok()) {
    return {};
  }
  EXPECT_EQ(parsed.error().errnum, 0) << text;
  EXPECT_EQ(parsed.error().message().find('\n'), std::string::npos) << parsed.error().message();
  EXPECT_EQ(parsed.error().message().find('\r'), std::string::npos) << parsed.error().message();
  return parsed.error().message();
}

// A document with one top-level key.
std::string doc(const std::string& key, const std::string& value) {
  return "{\"" + key + "\": " + value + "}";
}

// A document with these sink objects.
std::string sinks(const std::string& list) {
  return "{\"sinks\": [" + list + "]}";
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// A fresh directory under the test's temporary directory.
std::string temp_dir() {
  std::string tmpl = ::testing::TempDir() + "sockstate-config-XXXXXX";
  const char* dir = ::mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

// ---- defaults and every key ---------------------------------------------------------------

TEST(Config, EmptyDocumentKeepsEveryDefault) {
  const Config c = parse_ok("{}");
  EXPECT_EQ(c, Config{});
  EXPECT_EQ(c.poll_interval, 10s);
  EXPECT_EQ(c.traffic_interval, 60s);
  EXPECT_EQ(c.stats_interval, 60s);
  EXPECT_TRUE(c.baseline);
  EXPECT_TRUE(c.destroy_events);
  EXPECT_EQ(c.states, netlink::kAllStates);
  EXPECT_EQ(c.event_buffer_bytes, 8U << 20);
  EXPECT_EQ(c.log_name, "sockstate");
  EXPECT_EQ(c.device_type_id, 0);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_TRUE(c.process);
  EXPECT_FALSE(c.all_netns);
  EXPECT_EQ(c.community_id_seed, 0);
  ASSERT_EQ(c.sinks.size(), 1U);
  EXPECT_EQ(c.sinks[0].type, SinkType::kStdout);
  EXPECT_EQ(c.sinks[0].queue_records, 65536U);
}

TEST(Config, EveryKeyIsParsed) {
  const Config c = parse_ok(R"({
    "poll_interval": "500ms",
    "traffic_interval": "2m",
    "stats_interval": "1h",
    "baseline": false,
    "destroy_events": false,
    "states": ["listen", "established"],
    "process": false,
    "all_netns": true,
    "community_id_seed": 65535,
    "event_buffer": "16MiB",
    "log_name": "edge-sockets",
    "device_type_id": 99,
    "log_level": "debug",
    "sinks": [
      {"type": "stdout", "queue": 10},
      {"type": "file", "path": "/var/log/s/s.jsonl", "mode": "0600", "group": "adm",
       "rotate_size": "100MiB", "rotate_keep": 7, "queue": 1000},
      {"type": "unix", "path": "/run/fb.sock", "reconnect_min": "50ms", "reconnect_max": "5s"},
      {"type": "tcp", "host": "::1", "port": 5170, "reconnect_min": "1s", "reconnect_max": "1m"},
      {"type": "journald", "syslog_identifier": "sockstate-edge", "queue": 20}
    ]
  })");
  EXPECT_EQ(c.poll_interval, 500ms);
  EXPECT_EQ(c.traffic_interval, 2min);
  EXPECT_EQ(c.stats_interval, 1h);
  EXPECT_FALSE(c.baseline);
  EXPECT_FALSE(c.destroy_events);
  EXPECT_EQ(c.states, state_bit(netlink::kTcpListen) | state_bit(netlink::kTcpEstablished));
  EXPECT_EQ(c.event_buffer_bytes, 16U << 20);
  EXPECT_FALSE(c.process);
  EXPECT_TRUE(c.all_netns);
  EXPECT_EQ(c.community_id_seed, 65535);
  EXPECT_EQ(c.log_name, "edge-sockets");
  EXPECT_EQ(c.device_type_id, 99);
  EXPECT_EQ(c.log_level, "debug");
  ASSERT_EQ(c.sinks.size(), 5U);

  EXPECT_EQ(c.sinks[0].type, SinkType::kStdout);
  EXPECT_EQ(c.sinks[0].queue_records, 10U);

  const SinkConfig& file = c.sinks[1];
  EXPECT_EQ(file.type, SinkType::kFile);
  EXPECT_EQ(file.path, "/var/log/s/s.jsonl");
  EXPECT_EQ(file.file_mode, 0600U);
  EXPECT_EQ(file.file_group, "adm");
  EXPECT_EQ(file.rotate_bytes, 100U << 20);
  EXPECT_EQ(file.rotate_keep, 7U);
  EXPECT_EQ(file.queue_records, 1000U);

  const SinkConfig& unix_sink = c.sinks[2];
  EXPECT_EQ(unix_sink.type, SinkType::kUnix);
  EXPECT_EQ(unix_sink.path, "/run/fb.sock");
  EXPECT_EQ(unix_sink.reconnect_min, 50ms);
  EXPECT_EQ(unix_sink.reconnect_max, 5s);
  EXPECT_EQ(unix_sink.queue_records, 65536U);

  const SinkConfig& tcp = c.sinks[3];
  EXPECT_EQ(tcp.type, SinkType::kTcp);
  EXPECT_EQ(tcp.host, "::1");
  EXPECT_EQ(tcp.port, 5170);
  EXPECT_EQ(tcp.reconnect_min, 1s);
  EXPECT_EQ(tcp.reconnect_max, 1min);

  EXPECT_EQ(c.sinks[4].type, SinkType::kJournald);
  EXPECT_EQ(c.sinks[4].syslog_identifier, "sockstate-edge");
  EXPECT_EQ(c.sinks[4].queue_records, 20U);
}

TEST(Config, KeysNotGivenKeepTheirDefaults) {
  const Config c =
      parse_ok(R"({"poll_interval": "1s", "sinks": [{"type": "file", "path": "/x"}]})");
  Config want;
  want.poll_interval = 1s;
  want.sinks[0].type = SinkType::kFile;
  want.sinks[0].path = "/x";
  EXPECT_EQ(c, want);
  EXPECT_EQ(c.sinks[0].file_mode, 0640U);
  EXPECT_EQ(c.sinks[0].rotate_bytes, 0U);
  EXPECT_TRUE(c.sinks[0].file_group.empty());
}

TEST(Config, CommentsAreAccepted) {
  const Config c = parse_ok(R"(// leading line comment
    /* a block
       comment */
    {
      "poll_interval": /* inline */ "2s", // trailing
      "sinks": [
        // {"type": "tcp"},
        {"type": "journald"} /* last */
      ]
    }
    // after the document
  )");
  EXPECT_EQ(c.poll_interval, 2s);
  ASSERT_EQ(c.sinks.size(), 1U);
  EXPECT_EQ(c.sinks[0].type, SinkType::kJournald);
}

// ---- durations ----------------------------------------------------------------------------

TEST(Config, DurationsNeedAUnit) {
  struct Case {
    const char* value;
    std::chrono::milliseconds want;
  };
  for (const Case& c :
       {Case{"\"100ms\"", 100ms}, Case{"\"500ms\"", 500ms}, Case{"\"10s\"", 10s},
        Case{"\"1m\"", 1min}, Case{"\"2h\"", 2h}, Case{"\"24h\"", 24h}, Case{"\"1440m\"", 24h},
        Case{"\"86400000ms\"", 24h}, Case{"\"010s\"", 10s}}) {
    EXPECT_EQ(parse_ok(doc("poll_interval", c.value)).poll_interval, c.want) << c.value;
  }
}

TEST(Config, DurationZeroTurnsOffWhereItMeansOff) {
  for (const char* zero : {"0", "\"0\"", "\"0s\"", "\"0ms\"", "-0"}) {
    EXPECT_EQ(parse_ok(doc("traffic_interval", zero)).traffic_interval, 0ms) << zero;
    EXPECT_EQ(parse_ok(doc("stats_interval", zero)).stats_interval, 0ms) << zero;
    EXPECT_EQ(parse_error(doc("poll_interval", zero)),
              "poll_interval: must be a duration of at least 100ms")
        << zero;
  }
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "host": "h", "port": 1, "reconnect_min": 0})")),
            "sinks[0].reconnect_min: must be a duration of at least 10ms");
}

TEST(Config, DurationErrors) {
  struct Case {
    const char* key;
    const char* value;
    const char* error;
  };
  const Case cases[] = {
      {"poll_interval", "\"99ms\"", "poll_interval: must be a duration of at least 100ms"},
      {"poll_interval", "\"-5s\"", "poll_interval: must be a duration of at least 100ms"},
      {"poll_interval", "-5", "poll_interval: must be a duration of at least 100ms"},
      {"poll_interval", "\"25h\"", "poll_interval: must be a duration of at most 24h"},
      {"poll_interval", "\"1441m\"", "poll_interval: must be a duration of at most 24h"},
      {"poll_interval", "\"86400001ms\"", "poll_interval: must be a duration of at most 24h"},
      // Past uint64 in the number, and past it once scaled.
      {"poll_interval", "\"99999999999999999999999h\"",
       "poll_interval: must be a duration of at most 24h"},
      {"poll_interval", "\"18446744073709551615h\"",
       "poll_interval: must be a duration of at most 24h"},
      {"poll_interval", "10",
       "poll_interval: must be a duration with a unit, such as \"10s\" or \"10ms\" (a bare "
       "number is ambiguous)"},
      {"poll_interval", "\"10\"",
       "poll_interval: \"10\" is not a duration: a whole number and ms, s, m or h, such as "
       "\"10s\""},
      {"poll_interval", "\"10 s\"",
       "poll_interval: \"10 s\" is not a duration: a whole number and ms, s, m or h, such as "
       "\"10s\""},
      {"poll_interval", "\"1.5s\"",
       "poll_interval: \"1.5s\" is not a duration: a whole number and ms, s, m or h, such as "
       "\"10s\""},
      {"poll_interval", "\"10S\"",
       "poll_interval: \"10S\" is not a duration: a whole number and ms, s, m or h, such as "
       "\"10s\""},
      {"poll_interval", "\"s\"",
       "poll_interval: \"s\" is not a duration: a whole number and ms, s, m or h, such as "
       "\"10s\""},
      {"poll_interval", "\"\"",
       "poll_interval: \"\" is not a duration: a whole number and ms, s, m or h, such as "
       "\"10s\""},
      {"poll_interval", "1.5",
       "poll_interval: must be a duration such as \"10s\", not a floating-point number"},
      {"poll_interval", "true", "poll_interval: must be a duration such as \"10s\", not true"},
      {"poll_interval", "null", "poll_interval: must be a duration such as \"10s\", not null"},
      {"traffic_interval", "\"50ms\"",
       "traffic_interval: must be 0 (off) or a duration of at least 100ms"},
      {"traffic_interval", "\"-1s\"",
       "traffic_interval: must be 0 (off) or a duration of at least 100ms"},
      {"stats_interval", "\"999ms\"",
       "stats_interval: must be 0 (off) or a duration of at least 1s"},
      {"stats_interval", "\"2d\"",
       "stats_interval: \"2d\" is not a duration: a whole number and ms, s, m or h, such as "
       "\"10s\""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse_error(doc(c.key, c.value)), c.error) << c.key << " = " << c.value;
  }
}

// ---- sizes --------------------------------------------------------------------------------

TEST(Config, Sizes) {
  struct Case {
    const char* value;
    std::size_t want;
  };
  for (const Case& c :
       {Case{"8388608", 8U << 20}, Case{"\"8MiB\"", 8U << 20}, Case{"\"64KiB\"", 64U << 10},
        Case{"65536", 64U << 10}, Case{"\"1GiB\"", 1U << 30}, Case{"\"1024MiB\"", 1U << 30}}) {
    EXPECT_EQ(parse_ok(doc("event_buffer", c.value)).event_buffer_bytes, c.want) << c.value;
  }
  const std::string file = R"({"type": "file", "path": "/x", "rotate_size": )";
  for (const char* zero : {"0", "\"0\"", "\"0KiB\""}) {
    EXPECT_EQ(parse_ok(sinks(file + zero + "}")).sinks[0].rotate_bytes, 0U) << zero;
  }
  EXPECT_EQ(parse_ok(sinks(file + "\"1024GiB\"}")).sinks[0].rotate_bytes, 1024ULL << 30);
  EXPECT_EQ(parse_ok(sinks(file + "65536}")).sinks[0].rotate_bytes, 65536U);
}

TEST(Config, SizeErrors) {
  struct Case {
    const char* value;
    const char* error;
  };
  const char* const not_a_size =
      " is not a size: bytes as an integer, or a whole number and KiB, MiB or GiB, such as "
      "\"8MiB\"";
  const Case cases[] = {
      {"\"63KiB\"", "event_buffer: must be a size of at least 64KiB"},
      {"65535", "event_buffer: must be a size of at least 64KiB"},
      {"0", "event_buffer: must be a size of at least 64KiB"},
      {"\"0\"", "event_buffer: must be a size of at least 64KiB"},
      {"-1", "event_buffer: must be a size of at least 64KiB"},
      {"\"-1KiB\"", "event_buffer: must be a size of at least 64KiB"},
      {"\"1025MiB\"", "event_buffer: must be a size of at most 1GiB"},
      {"\"99999999999999999999GiB\"", "event_buffer: must be a size of at most 1GiB"},
      {"18446744073709551615", "event_buffer: must be a size of at most 1GiB"},
      {"99999999999999999999", "event_buffer: must be a size of at most 1GiB"},
      {"-99999999999999999999", "event_buffer: must be a size of at least 64KiB"},
      {"1.5",
       "event_buffer: must be a size (bytes as an integer, or a string such as \"8MiB\"), not a "
       "floating-point number"},
      {"[]",
       "event_buffer: must be a size (bytes as an integer, or a string such as \"8MiB\"), not an "
       "array"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse_error(doc("event_buffer", c.value)), c.error) << c.value;
  }
  for (const char* bad : {"8MB", "8mib", "8M", "8 MiB", "8", "MiB", "1.5GiB", "8MiBs"}) {
    EXPECT_EQ(parse_error(doc("event_buffer", std::string("\"") + bad + "\"")),
              std::string("event_buffer: \"") + bad + "\"" + not_a_size)
        << bad;
  }
  const std::string file = R"({"type": "file", "path": "/x", "rotate_size": )";
  EXPECT_EQ(parse_error(sinks(file + "\"32KiB\"}")),
            "sinks[0].rotate_size: must be 0 (never) or a size of at least 64KiB");
  EXPECT_EQ(parse_error(sinks(file + "\"1025GiB\"}")),
            "sinks[0].rotate_size: must be a size of at most 1024GiB");
}

// ---- top-level values ---------------------------------------------------------------------

TEST(Config, StatesUseTheCommandLineNames) {
  EXPECT_EQ(parse_ok(doc("states", R"(["all"])")).states, netlink::kAllStates);
  EXPECT_EQ(parse_ok(doc("states", R"(["ESTABLISHED", "time_wait", "Syn-Sent"])")).states,
            state_bit(netlink::kTcpEstablished) | state_bit(netlink::kTcpTimeWait) |
                state_bit(netlink::kTcpSynSent));
  EXPECT_EQ(parse_ok(doc("states", R"(["listen", "listen"])")).states,
            state_bit(netlink::kTcpListen));
  EXPECT_EQ(parse_ok(doc("states", R"(["bound"])")).states, netlink::kBoundInactiveStates);

  const std::string err = parse_error(doc("states", R"(["listen", "establishd"])"));
  const std::string prefix = "states[1]: unknown state \"establishd\" (names: ";
  ASSERT_TRUE(starts_with(err, prefix)) << err;
  ASSERT_EQ(err.back(), ')');
  // Every name the message offers is one the parser takes.
  std::stringstream names(err.substr(prefix.size(), err.size() - prefix.size() - 1));
  std::string name;
  int count = 0;
  while (std::getline(names, name, ',')) {
    name.erase(0, name.find_first_not_of(' '));
    const Config c = parse_ok(doc("states", "[\"" + name + "\"]"));
    EXPECT_NE(c.states, 0U) << name;
    ++count;
  }
  EXPECT_EQ(count, 14);

  EXPECT_EQ(parse_error(doc("states", "[]")),
            "states: must not be empty (no socket would be reported)");
  EXPECT_EQ(parse_error(doc("states", "\"all\"")),
            "states: must be an array of state names such as [\"all\"], not a string");
  EXPECT_EQ(parse_error(doc("states", "[\"all\", 1]")),
            "states[1]: must be a state name, not an integer");
}

TEST(Config, ProtocolsUseTheSnapshotWords) {
  EXPECT_EQ(Config{}.protocols, (std::vector<std::uint8_t>{6, 17}));
  EXPECT_EQ(parse_ok(doc("protocols", R"(["udp"])")).protocols, (std::vector<std::uint8_t>{17}));
  EXPECT_EQ(parse_ok(doc("protocols", R"(["udp", "tcp", "udp"])")).protocols,
            (std::vector<std::uint8_t>{6, 17}));
  EXPECT_EQ(parse_ok(doc("protocols", R"(["all"])")).protocols, (std::vector<std::uint8_t>{6, 17}));
  EXPECT_EQ(parse_error(doc("protocols", R"(["tcp", "sctp"])")),
            "protocols[1]: unknown protocol \"sctp\" (tcp, udp or all)");
  EXPECT_EQ(parse_error(doc("protocols", "[]")),
            "protocols: must not be empty (no socket would be reported)");
  EXPECT_EQ(parse_error(doc("protocols", "\"tcp\"")),
            "protocols: must be an array of protocol names such as [\"tcp\", \"udp\"], not a "
            "string");
  EXPECT_NE(describe(parse_ok(doc("protocols", R"(["udp"])"))).find(", protocols udp"),
            std::string::npos);
}

TEST(Config, ShortLivedPerSecondIsPerProtocol) {
  EXPECT_EQ(Config{}.short_lived_per_second, (std::array<std::uint32_t, 2>{0, 1000}));
  EXPECT_EQ(parse_ok(doc("short_lived_per_second", R"({"udp": 0})")).short_lived_per_second,
            (std::array<std::uint32_t, 2>{0, 0}));
  EXPECT_EQ(parse_ok(doc("short_lived_per_second", R"({"udp": 7})")).short_lived_per_second,
            (std::array<std::uint32_t, 2>{0, 7}));
  EXPECT_EQ(
      parse_ok(doc("short_lived_per_second", R"({"tcp": 0, "udp": 9})")).short_lived_per_second,
      (std::array<std::uint32_t, 2>{0, 9}));
  EXPECT_EQ(parse_error(doc("short_lived_per_second", R"({"udp": 5, "tcp": 5})")),
            "short_lived_per_second.tcp: must be 0: TCP connections are never summarised");
  EXPECT_EQ(parse_error(doc("short_lived_per_second", R"({"all": 5})")),
            "short_lived_per_second.all: unknown protocol (tcp or udp)");
  EXPECT_EQ(parse_error(doc("short_lived_per_second", R"({"udp": -1})")),
            "short_lived_per_second.udp: must be 0 (every socket) to 1000000");
  EXPECT_EQ(parse_error(doc("short_lived_per_second", "{}")),
            "short_lived_per_second: must name udp");
  EXPECT_EQ(parse_error(doc("short_lived_per_second", "5")),
            "short_lived_per_second: must be an object such as {\"udp\": 1000}, not an integer");
}

TEST(Config, LogLevel) {
  for (const char* level : {"error", "warn", "info", "debug"}) {
    EXPECT_EQ(parse_ok(doc("log_level", std::string("\"") + level + "\"")).log_level, level);
  }
  for (const char* bad : {"\"verbose\"", "\"INFO\"", "\"warning\"", "3", "null"}) {
    EXPECT_EQ(parse_error(doc("log_level", bad)),
              "log_level: must be one of error, warn, info, debug")
        << bad;
  }
}

TEST(Config, AttributionKeys) {
  EXPECT_EQ(parse_ok(doc("community_id_seed", "1")).community_id_seed, 1);
  for (const char* bad : {"65536", "-1"}) {
    EXPECT_EQ(parse_error(doc("community_id_seed", bad)), "community_id_seed: must be 0 to 65535")
        << bad;
  }
  EXPECT_EQ(parse_error(doc("process", "\"yes\"")), "process: must be true or false, not a string");
  EXPECT_EQ(parse_error(doc("all_netns", "1")), "all_netns: must be true or false, not an integer");
  EXPECT_NE(describe(parse_ok(R"({"process": false, "all_netns": true})"))
                .find("no process, all namespaces"),
            std::string::npos);
}

TEST(Config, DeviceTypeId) {
  for (int id : {0, 1, 15, 99}) {
    EXPECT_EQ(parse_ok(doc("device_type_id", std::to_string(id))).device_type_id, id);
  }
  for (const char* bad : {"16", "98", "100", "-1", "18446744073709551615"}) {
    EXPECT_EQ(parse_error(doc("device_type_id", bad)),
              "device_type_id: must be an OCSF device type id: 0 to 15, or 99 (Other)")
        << bad;
  }
  EXPECT_EQ(parse_error(doc("device_type_id", "\"1\"")),
            "device_type_id: must be an integer, not a string");
  EXPECT_EQ(parse_error(doc("device_type_id", "1.0")),
            "device_type_id: must be an integer, not a floating-point number");
}

TEST(Config, TextValues) {
  EXPECT_EQ(parse_error(doc("log_name", "\"\"")), "log_name: must not be empty");
  EXPECT_EQ(parse_error(doc("log_name", "\"a\\nb\"")),
            "log_name: must not contain control characters");
  EXPECT_EQ(parse_error(doc("log_name", "\"" + std::string(257, 'x') + "\"")),
            "log_name: must be at most 256 bytes");
  EXPECT_EQ(parse_ok(doc("log_name", "\"" + std::string(256, 'x') + "\"")).log_name.size(), 256U);
  EXPECT_EQ(parse_error(doc("log_name", "7")), "log_name: must be a string, not an integer");
  EXPECT_EQ(parse_error(doc("baseline", "\"yes\"")),
            "baseline: must be true or false, not a string");
  EXPECT_EQ(parse_error(doc("destroy_events", "1")),
            "destroy_events: must be true or false, not an integer");
}

// ---- document-level errors ----------------------------------------------------------------

TEST(Config, UnknownKeysAtEveryLevel) {
  EXPECT_EQ(parse_error(doc("poll_intervall", "\"10s\"")),
            "poll_intervall: unknown key (did you mean \"poll_interval\"?)");
  EXPECT_EQ(parse_error(doc("sink", "[]")), "sink: unknown key (did you mean \"sinks\"?)");
  EXPECT_EQ(parse_error(doc("colour", "1")), "colour: unknown key");
  EXPECT_EQ(parse_error(sinks(R"({"type": "stdout"}, {"typ": "file"})")),
            "sinks[1].typ: unknown key (did you mean \"type\"?)");
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "host": "h", "prot": 1})")),
            "sinks[0].prot: unknown key (did you mean \"port\"?)");
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": "/x", "rotate": "1MiB"})")),
            "sinks[0].rotate: unknown key");
  // A key that is no plain word is quoted, escapes and all, and the message stays one line.
  EXPECT_EQ(parse_error(doc("odd\\nkey", "1")), "\"odd\\nkey\": unknown key");
  EXPECT_EQ(parse_error(sinks(R"({"type": "stdout", "a b": 1})")), "sinks[0].\"a b\": unknown key");
  const std::string long_key(300, 'k');
  const std::string err = parse_error(doc(long_key, "1"));
  EXPECT_LT(err.size(), 120U) << err;
}

TEST(Config, KeysGivenTwice) {
  EXPECT_EQ(parse_error(R"({"poll_interval": "1s", "baseline": true, "poll_interval": "2s"})"),
            "poll_interval: given twice (JSON would keep the last)");
  EXPECT_EQ(
      parse_error(sinks(R"({"type": "stdout"}, {"type": "file", "path": "/a", "path": "/b"})")),
      "sinks[1].path: given twice (JSON would keep the last)");
  // The same key in different objects is not a repeat.
  EXPECT_EQ(parse_ok(sinks(R"({"type": "file", "path": "/a"}, {"type": "file", "path": "/b"})"))
                .sinks.size(),
            2U);
  // Nor after a nested array closes.
  EXPECT_EQ(
      parse_ok(R"({"states": ["listen"], "sinks": [{"type": "stdout"}], "baseline": true})").states,
      state_bit(netlink::kTcpListen));
}

TEST(Config, DocumentMustBeAnObject) {
  EXPECT_EQ(parse_error("[]"), "(document): must be an object, not an array");
  EXPECT_EQ(parse_error("5"), "(document): must be an object, not an integer");
  EXPECT_EQ(parse_error("\"x\""), "(document): must be an object, not a string");
  EXPECT_EQ(parse_error("null"), "(document): must be an object, not null");
}

TEST(Config, SyntaxErrorsKeepTheLocationOnOneLine) {
  const std::string err = parse_error("{\n  \"poll_interval\": \"10s\",\n  }\n");
  EXPECT_TRUE(starts_with(err, "(document): line 3, column 3: syntax error")) << err;
  EXPECT_EQ(err.find("json.exception"), std::string::npos) << err;

  EXPECT_TRUE(starts_with(parse_error(""), "(document): line 1, column 1: syntax error"));
  EXPECT_TRUE(starts_with(parse_error("{} {}"), "(document): line 1, column 4: syntax error"));
  EXPECT_TRUE(starts_with(parse_error("{\"a\": 1 /* unterminated"), "(document): line 1, column"));
  // A raw newline inside a string: nlohmann quotes what it read; the message stays one line.
  EXPECT_TRUE(starts_with(parse_error("{\"log_name\": \"a\nb\"}"), "(document): line "));
  // Not UTF-8.
  EXPECT_TRUE(starts_with(parse_error("{\"log_name\": \"\xff\"}"), "(document): line 1"));
}

TEST(Config, HostileDocumentsAreErrorsNotCrashes) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(parse_error(deep), "(document): nested deeper than 16 levels");
  EXPECT_EQ(parse_error(std::string(100000, '[')), "(document): nested deeper than 16 levels");
  EXPECT_EQ(parse_error("{\"sinks\": " + deep + "}"), "(document): nested deeper than 16 levels");
  const std::string nul("{\"log_name\": \"a\0b\"}", 19);
  EXPECT_TRUE(starts_with(parse_error(nul), "(document): line 1, column"));
  EXPECT_EQ(parse_error("{\"log_name\": \"a\\u0000b\"}"),
            "log_name: must not contain control characters");
}

// ---- sinks --------------------------------------------------------------------------------

TEST(Config, SinkListRules) {
  EXPECT_EQ(parse_error(doc("sinks", "[]")),
            "sinks: must not be empty: records would be written nowhere");
  EXPECT_EQ(parse_error(doc("sinks", "{\"type\": \"stdout\"}")),
            "sinks: must be an array of sink objects, not an object");
  EXPECT_EQ(parse_error(doc("sinks", "[\"stdout\"]")),
            "sinks[0]: must be a sink object such as {\"type\": \"stdout\"}, not a string");
  EXPECT_EQ(parse_error(
                sinks(R"({"type": "stdout"}, {"type": "file", "path": "/x"}, {"type": "stdout"})")),
            "sinks[2].type: a second stdout sink (at most one; the first is sinks[0])");
  EXPECT_EQ(parse_error(sinks(R"({"type": "journald"}, {"type": "journald"})")),
            "sinks[1].type: a second journald sink (at most one; the first is sinks[0])");
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": "/var/log/x.jsonl"},
                                 {"type": "file", "path": "/var/log//./x.jsonl"})")),
            "sinks[1].path: the same file as sinks[0]");
  // Two sockets to one shipper is odd but harmless; two files, two paths, fine.
  EXPECT_EQ(parse_ok(sinks(R"({"type": "unix", "path": "/run/a.sock"},
                              {"type": "unix", "path": "/run/a.sock"},
                              {"type": "file", "path": "/var/log/a"},
                              {"type": "file", "path": "/var/log/b"})"))
                .sinks.size(),
            4U);
}

TEST(Config, SinkType) {
  EXPECT_EQ(parse_error(sinks("{}")),
            "sinks[0].type: required: stdout, file, unix, tcp, journald or kafka");
  EXPECT_EQ(parse_error(sinks(R"({"path": "/x"})")),
            "sinks[0].type: required: stdout, file, unix, tcp, journald or kafka");
  EXPECT_EQ(parse_error(sinks(R"({"type": "syslog"})")),
            "sinks[0].type: must be one of stdout, file, unix, tcp, journald, kafka");
  EXPECT_EQ(parse_error(sinks(R"({"type": 1})")),
            "sinks[0].type: must be one of stdout, file, unix, tcp, journald, kafka");
}

TEST(Config, SinkRequiredKeys) {
  EXPECT_EQ(parse_error(sinks(R"({"type": "file"})")), "sinks[0].path: required for a file sink");
  EXPECT_EQ(parse_error(sinks(R"({"type": "stdout"}, {"type": "unix"})")),
            "sinks[1].path: required for a unix sink");
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "port": 5170})")),
            "sinks[0].host: required for a tcp sink");
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "host": "127.0.0.1"})")),
            "sinks[0].port: required for a tcp sink");
}

TEST(Config, KeysOfAnotherSinkType) {
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": "/x", "port": 1})")),
            "sinks[0].port: not a key of a file sink (port is for tcp sinks)");
  EXPECT_EQ(parse_error(sinks(R"({"type": "stdout", "path": "/x"})")),
            "sinks[0].path: not a key of a stdout sink (path is for file and unix sinks)");
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": "/x", "reconnect_min": "1s"})")),
            "sinks[0].reconnect_min: not a key of a file sink (reconnect_min is for unix and tcp "
            "sinks)");
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "host": "h", "port": 1, "mode": "0640"})")),
            "sinks[0].mode: not a key of a tcp sink (mode is for file sinks)");
  EXPECT_EQ(parse_error(sinks(R"({"type": "unix", "path": "/x", "syslog_identifier": "s"})")),
            "sinks[0].syslog_identifier: not a key of a unix sink (syslog_identifier is for "
            "journald sinks)");
}

// A kafka sink with these extra members.
std::string kafka(const std::string& extra = "") {
  return sinks(R"({"type": "kafka", "brokers": ["k1:9092"], "topic": "ocsf")" +
               (extra.empty() ? "" : ", " + extra) + "}");
}

TEST(Config, KafkaSinkKeysAndDefaults) {
  const Config plain = parse_ok(kafka());
  ASSERT_EQ(plain.sinks.size(), 1U);
  const SinkConfig& k = plain.sinks[0];
  EXPECT_EQ(k.type, SinkType::kKafka);
  EXPECT_EQ(k.brokers, std::vector<std::string>{"k1:9092"});
  EXPECT_EQ(k.key, KafkaKey::kDeviceUid);
  EXPECT_EQ(k.compression, "lz4");
  EXPECT_EQ(k.acks, "all");
  EXPECT_EQ(k.delivery_timeout, 300s);
  EXPECT_FALSE(k.tls);
  EXPECT_EQ(sink_name(k), "kafka:ocsf@k1:9092");
  const Config full = parse_ok(sinks(R"({"type": "kafka", "topic": "a.b_c-1",
      "brokers": ["10.0.0.1:9093", "[fd00::1]:9093", "kafka.example.net:9094"],
      "key": "none", "compression": "zstd", "acks": "1", "message_max_bytes": "64KiB",
      "delivery_timeout": "30s", "tls_ca": "/etc/ca.pem", "tls_cert": "/etc/c.pem",
      "tls_key": "/etc/c.key", "sasl_mechanism": "PLAIN", "sasl_username": "u",
      "sasl_password": "p w", "properties": {"linger.ms": "20", "client.id": "x"}})"));
  const SinkConfig& f = full.sinks[0];
  EXPECT_EQ(f.brokers.size(), 3U);
  EXPECT_EQ(f.key, KafkaKey::kNone);
  EXPECT_EQ(f.compression, "zstd");
  EXPECT_EQ(f.acks, "1");
  EXPECT_EQ(f.message_max_bytes, 65536U);
  EXPECT_EQ(f.delivery_timeout, 30s);
  EXPECT_TRUE(f.tls) << "a TLS file turns TLS on";
  EXPECT_EQ(f.sasl_password, "p w");
  EXPECT_EQ(f.properties, (std::vector<std::pair<std::string, std::string>>{{"client.id", "x"},
                                                                            {"linger.ms", "20"}}));
}

TEST(Config, KafkaSinkErrors) {
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "topic": "t"})")),
            "sinks[0].brokers: required for a kafka sink");
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "brokers": ["k:1"]})")),
            "sinks[0].topic: required for a kafka sink");
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "topic": "t", "brokers": []})")),
            "sinks[0].brokers: must be a non-empty array of \"HOST:PORT\" strings, not an array");
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "topic": "t", "brokers": ["k"]})")),
            "sinks[0].brokers[0]: must be HOST:PORT (\"[IPv6]:PORT\" for an IPv6 address), not "
            "\"k\"");
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "topic": "t", "brokers": ["fd00::1:9092"]})")),
            "sinks[0].brokers[0]: must be HOST:PORT (\"[IPv6]:PORT\" for an IPv6 address), not "
            "\"fd00::1:9092\"");
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "topic": "t", "brokers": ["k:99999"]})")),
            "sinks[0].brokers[0]: port must be 1 to 65535, in \"k:99999\"");
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "topic": "a/b", "brokers": ["k:1"]})")),
            "sinks[0].topic: must be a Kafka topic name (letters, digits, '.', '_', '-'), not "
            "\"a/b\"");
  EXPECT_EQ(parse_error(kafka(R"("acks": "0")")),
            "sinks[0].acks: must be \"all\" or \"1\": with 0 no broker acknowledges a record, so "
            "none could be counted as delivered");
  EXPECT_EQ(parse_error(kafka(R"("compression": "brotli")")),
            "sinks[0].compression: must be one of none, gzip, snappy, lz4, zstd, not \"brotli\"");
  EXPECT_EQ(parse_error(kafka(R"("key": "src_endpoint.ip")")),
            "sinks[0].key: must be one of device.uid, none, not \"src_endpoint.ip\"");
  EXPECT_EQ(parse_error(kafka(R"("tls_cert": "/c.pem")")),
            "sinks[0].tls_key: required with tls_cert: a client certificate needs its key");
  EXPECT_EQ(parse_error(kafka(R"("tls": false, "tls_ca": "/ca.pem")")),
            "sinks[0].tls: is false, but tls_ca, tls_cert or tls_key is set");
  EXPECT_EQ(parse_error(kafka(R"("sasl_username": "u", "sasl_password": "p")")),
            "sinks[0].sasl_username: needs sasl_mechanism (PLAIN, SCRAM-SHA-256 or "
            "SCRAM-SHA-512)");
  EXPECT_EQ(parse_error(kafka(R"("sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u")")),
            "sinks[0].sasl_password: required with sasl_mechanism");
  EXPECT_EQ(parse_error(kafka(R"("sasl_mechanism": "GSSAPI")")),
            "sinks[0].sasl_mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, not "
            "\"GSSAPI\"");
  EXPECT_EQ(parse_error(kafka(R"("sasl_mechanism": "PLAIN", "sasl_username": "u",
                                 "sasl_password": "p")")),
            "sinks[0].sasl_mechanism: PLAIN sends the password as it is: it needs \"tls\": true");
  EXPECT_EQ(parse_error(kafka(R"("message_max_bytes": "1MiB", "queue_size": "512KiB")")),
            "sinks[0].message_max_bytes: must not be larger than queue_size");
  EXPECT_EQ(parse_error(sinks(R"({"type": "kafka", "brokers": ["k1:9092"], "topic": "ocsf"},
                                 {"type": "kafka", "brokers": ["k1:9092"], "topic": "ocsf"})")),
            "sinks[1].topic: the same topic and brokers as sinks[0]");
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "host": "h", "port": 1, "topic": "t"})")),
            "sinks[0].topic: not a key of a tcp sink (topic is for kafka sinks)");
}

TEST(Config, KafkaPropertiesThatWouldBreakCountingAreRefused) {
  EXPECT_EQ(parse_error(kafka(R"("properties": {"enable.idempotence": "false"})")),
            "sinks[0].properties.\"enable.idempotence\": is set by the sink's \"acks\" key");
  EXPECT_EQ(parse_error(kafka(R"("properties": {"bootstrap.servers": "x:1"})")),
            "sinks[0].properties.\"bootstrap.servers\": is set by the sink's \"brokers\" key");
  for (const char* p : {"delivery.report.only.error", "retries", "max.in.flight",
                        "statistics.interval.ms", "transactional.id"}) {
    EXPECT_NE(parse_error(kafka(std::string(R"("properties": {")") + p + R"(": "1"})"))
                  .find("cannot be changed: sockstate counts a record as written"),
              std::string::npos)
        << p;
  }
  for (const char* p : {"dr_msg_cb", "plugin.library.paths", "debug", "log.queue"}) {
    EXPECT_NE(parse_error(kafka(std::string(R"("properties": {")") + p + R"(": "x"})"))
                  .find("cannot be set: callbacks, plugins"),
              std::string::npos)
        << p;
  }
  EXPECT_EQ(parse_error(kafka(R"("properties": {"linger.ms": 20})")),
            "sinks[0].properties.\"linger.ms\": must be a string, not an integer");
  EXPECT_EQ(parse_error(kafka(R"("properties": {"Linger.MS": "20"})")),
            "sinks[0].properties.\"Linger.MS\": is not a librdkafka property name");
  EXPECT_EQ(parse_error(kafka(R"("properties": ["linger.ms"])")),
            "sinks[0].properties: must be an object of librdkafka properties, such as "
            "{\"linger.ms\": \"20\"}, not an array");
}

TEST(Config, SinkPaths) {
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": "var/log/x.jsonl"})")),
            "sinks[0].path: must be an absolute path, not \"var/log/x.jsonl\"");
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": "/var/log/"})")),
            "sinks[0].path: must name a file, not a directory: \"/var/log/\"");
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": "/var/log/.."})")),
            "sinks[0].path: must name a file, not a directory: \"/var/log/..\"");
  EXPECT_EQ(parse_error(sinks(R"({"type": "file", "path": ""})")),
            "sinks[0].path: must not be empty");
  EXPECT_EQ(parse_error(sinks(R"({"type": "unix", "path": 5})")),
            "sinks[0].path: must be a string, not an integer");
  const std::string at_limit = "/" + std::string(106, 's');
  EXPECT_EQ(parse_ok(sinks(R"({"type": "unix", "path": ")" + at_limit + "\"}")).sinks[0].path,
            at_limit);
  EXPECT_EQ(parse_error(sinks(R"({"type": "unix", "path": ")" + at_limit + "s\"}")),
            "sinks[0].path: must be at most 107 bytes (the limit of a Unix socket address)");
}

TEST(Config, TcpHostAndPort) {
  for (const char* host : {"127.0.0.1", "::1", "fe80::1%eth0", "logs.example.net", "shipper"}) {
    EXPECT_EQ(parse_ok(sinks(std::string(R"({"type": "tcp", "port": 1, "host": ")") + host + "\"}"))
                  .sinks[0]
                  .host,
              host);
  }
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "port": 1, "host": "[::1]"})")),
            "sinks[0].host: must be an IP address or a host name (no brackets, no port), not "
            "\"[::1]\"");
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "port": 1, "host": "a b"})")),
            "sinks[0].host: must be an IP address or a host name (no brackets, no port), not "
            "\"a b\"");
  EXPECT_EQ(parse_ok(sinks(R"({"type": "tcp", "host": "h", "port": 65535})")).sinks[0].port, 65535);
  for (const char* bad : {"0", "65536", "-1", "99999999999999999999"}) {
    EXPECT_EQ(
        parse_error(sinks(std::string(R"({"type": "tcp", "host": "h", "port": )") + bad + "}")),
        "sinks[0].port: must be 1 to 65535")
        << bad;
  }
  EXPECT_EQ(parse_error(sinks(R"({"type": "tcp", "host": "h", "port": "5170"})")),
            "sinks[0].port: must be an integer, not a string");
}

TEST(Config, Queue) {
  EXPECT_EQ(parse_ok(sinks(R"({"type": "stdout", "queue": 1})")).sinks[0].queue_records, 1U);
  EXPECT_EQ(parse_ok(sinks(R"({"type": "stdout", "queue": 10000000})")).sinks[0].queue_records,
            10000000U);
  for (const char* bad : {"0", "10000001", "-5", "1e30"}) {
    EXPECT_EQ(parse_error(sinks(std::string(R"({"type": "journald", "queue": )") + bad + "}")),
              "sinks[0].queue: must be 1 to 10000000")
        << bad;
  }
}

TEST(Config, QueueSizeBoundsTheQueueInBytes) {
  EXPECT_EQ(parse_ok("{}").sinks[0].queue_bytes, 16U << 20);
  EXPECT_EQ(parse_ok(sinks(R"({"type": "stdout", "queue_size": "64KiB"})")).sinks[0].queue_bytes,
            64U << 10);
  EXPECT_EQ(parse_ok(sinks(R"({"type": "unix", "path": "/run/s.sock", "queue_size": "4GiB"})"))
                .sinks[0]
                .queue_bytes,
            std::size_t{4} << 30);
  for (const char* bad : {R"("1KiB")", "0"}) {
    const std::string e =
        parse_error(sinks(std::string(R"({"type": "stdout", "queue_size": )") + bad + "}"));
    EXPECT_EQ(e.rfind("sinks[0].queue_size: must be a size of at least 64KiB", 0), 0U)
        << bad << ": " << e;
  }
  EXPECT_EQ(parse_error(sinks(R"({"type": "stdout", "queue_size": "5GiB"})")),
            "sinks[0].queue_size: must be a size of at most 4GiB");
}

TEST(Config, Reconnect) {
  const std::string tcp = R"({"type": "tcp", "host": "h", "port": 1, )";
  EXPECT_EQ(parse_ok(sinks(tcp + R"("reconnect_min": "1s", "reconnect_max": "1s"})"))
                .sinks[0]
                .reconnect_max,
            1s);
  EXPECT_EQ(parse_error(sinks(tcp + R"("reconnect_min": "2s", "reconnect_max": "1s"})")),
            "sinks[0].reconnect_max: must be at least reconnect_min (2s)");
  // Against the other's default, the key that was written is the one named.
  EXPECT_EQ(parse_error(sinks(tcp + R"("reconnect_min": "1m"})")),
            "sinks[0].reconnect_min: must be at most reconnect_max (30s)");
  EXPECT_EQ(parse_error(sinks(tcp + R"("reconnect_max": "50ms"})")),
            "sinks[0].reconnect_max: must be at least reconnect_min (100ms)");
}

TEST(Config, FileModeGroupAndRotation) {
  const std::string file = R"({"type": "file", "path": "/x", )";
  EXPECT_EQ(parse_ok(sinks(file + R"("mode": "0600"})")).sinks[0].file_mode, 0600U);
  EXPECT_EQ(parse_ok(sinks(file + R"("mode": "640"})")).sinks[0].file_mode, 0640U);
  EXPECT_EQ(parse_ok(sinks(file + R"("mode": "0770"})")).sinks[0].file_mode, 0770U);
  EXPECT_NE(parse_error(sinks(file + R"("mode": "0644"})")).find("must not let others read"),
            std::string::npos);
  const std::string shape =
      "sinks[0].mode: must be an octal mode string from \"0000\" to \"0777\", such as \"0640\"";
  for (const char* bad : {"\"0800\"", "\"1777\"", "\"01640\"", "\"64\"", "\"rw-r-----\"", "\"\""}) {
    EXPECT_EQ(parse_error(sinks(file + "\"mode\": " + bad + "}")), shape) << bad;
  }
  EXPECT_EQ(parse_error(sinks(file + R"("mode": 416})")), shape + ", not an integer");
  EXPECT_EQ(parse_error(sinks(file + R"("mode": "0440"})")),
            "sinks[0].mode: must let the owner write (such as \"0640\"): the file is reopened on "
            "reload");
  EXPECT_EQ(parse_error(sinks(file + R"("mode": "0666"})")),
            "sinks[0].mode: must not let others write: any local user could forge records");

  EXPECT_EQ(parse_ok(sinks(file + R"("group": "adm"})")).sinks[0].file_group, "adm");
  EXPECT_EQ(parse_error(sinks(file + R"("group": "adm:x"})")),
            "sinks[0].group: must be a group name, not \"adm:x\"");
  EXPECT_EQ(parse_error(sinks(file + R"("group": ""})")), "sinks[0].group: must not be empty");

  const SinkConfig rotated =
      parse_ok(sinks(file + R"("rotate_size": "1MiB", "rotate_keep": 1000})")).sinks[0];
  EXPECT_EQ(rotated.rotate_bytes, 1U << 20);
  EXPECT_EQ(rotated.rotate_keep, 1000U);
  EXPECT_EQ(parse_ok(sinks(file + R"("rotate_size": "1MiB"})")).sinks[0].rotate_keep, 5U);
  for (const char* bad : {"0", "1001", "-1"}) {
    EXPECT_EQ(parse_error(sinks(file + R"("rotate_size": "1MiB", "rotate_keep": )" + bad + "}")),
              "sinks[0].rotate_keep: must be 1 to 1000")
        << bad;
  }
  EXPECT_EQ(parse_error(sinks(file + R"("rotate_keep": 3})")),
            "sinks[0].rotate_keep: needs rotate_size: without it the file is never rotated");
  EXPECT_EQ(parse_error(sinks(file + R"("rotate_size": 0, "rotate_keep": 3})")),
            "sinks[0].rotate_keep: needs rotate_size: without it the file is never rotated");
}

TEST(Config, JournaldIdentifier) {
  EXPECT_EQ(parse_ok(sinks(R"({"type": "journald"})")).sinks[0].syslog_identifier, "sockstate");
  EXPECT_EQ(parse_error(sinks(R"({"type": "journald", "syslog_identifier": "a\tb"})")),
            "sinks[0].syslog_identifier: must not contain control characters");
}

// ---- files --------------------------------------------------------------------------------

TEST(Config, LoadMissingFileNamesItWithErrno) {
  const std::string path = temp_dir() + "/absent.json";
  auto loaded = load_config(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().errnum, ENOENT);
  EXPECT_EQ(loaded.error().context, "cannot read configuration file " + path);
  EXPECT_NE(loaded.error().message().find(path), std::string::npos);
  EXPECT_NE(loaded.error().message().find("No such file or directory"), std::string::npos);
}

TEST(Config, LoadDirectoryIsAReadError) {
  const std::string dir = temp_dir();
  auto loaded = load_config(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().errnum, EISDIR);
  EXPECT_NE(loaded.error().message().find(dir), std::string::npos);
}

TEST(Config, LoadNamesTheFileAndTheKey) {
  const std::string dir = temp_dir();
  const std::string good = dir + "/good.json";
  std::ofstream(good) << "// comment\n{\"poll_interval\": \"3s\"}\n";
  auto loaded = load_config(good);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ(loaded->poll_interval, 3s);

  const std::string bad = dir + "/bad.json";
  std::ofstream(bad)
      << R"({"sinks": [{"type": "stdout"}, {"type": "tcp", "host": "h", "port": 0}]})";
  loaded = load_config(bad);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().errnum, 0);
  EXPECT_EQ(loaded.error().message(), bad + ": sinks[1].port: must be 1 to 65535");

  const std::string huge = dir + "/huge.json";
  std::ofstream(huge) << "{\"log_name\": \"" << std::string(2U << 20, 'x') << "\"}";
  loaded = load_config(huge);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().message(), huge + ": larger than 1MiB, not a configuration file");

  // A NUL byte would end the JSON parser's input: what follows it must not be ignored.
  const std::string nul = dir + "/nul.json";
  std::ofstream(nul) << std::string("{\"poll_interval\": \"10s\"\n\0, \"bogus\": 1}", 38);
  loaded = load_config(nul);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().errnum, 0);
  EXPECT_EQ(loaded.error().message(),
            nul + ": (document): line 2, column 1: a NUL byte: not a text file");
}

TEST(ConfigText, ANulByteIsRefusedNotAnEnd) {
  EXPECT_EQ(parse_error(std::string("{}\0{\"x\": 1}", 11)),
            "(document): line 1, column 3: a NUL byte: not a text file");
  EXPECT_EQ(parse_error(std::string("{\"a\":\n\n1}\0", 10)),
            "(document): line 3, column 3: a NUL byte: not a text file");
}

// ---- summaries ----------------------------------------------------------------------------

TEST(Config, SinkNames) {
  SinkConfig c;
  EXPECT_EQ(sink_name(c), "stdout");
  c.type = SinkType::kFile;
  c.path = "/var/log/sockstate/sockstate.jsonl";
  EXPECT_EQ(sink_name(c), "file:/var/log/sockstate/sockstate.jsonl");
  c.type = SinkType::kUnix;
  c.path = "/run/shipper.sock";
  EXPECT_EQ(sink_name(c), "unix:/run/shipper.sock");
  c.type = SinkType::kTcp;
  c.host = "127.0.0.1";
  c.port = 5170;
  EXPECT_EQ(sink_name(c), "tcp:127.0.0.1:5170");
  c.host = "::1";
  EXPECT_EQ(sink_name(c), "tcp:[::1]:5170");
  c.type = SinkType::kJournald;
  EXPECT_EQ(sink_name(c), "journald");
  EXPECT_EQ(sink_type_name(SinkType::kUnix), "unix");
}

// Every sink type has its row (its word, and a document naming it parses to it).
TEST(Config, EverySinkTypeHasItsRow) {
  const std::array<std::pair<SinkType, std::string>, 6> types = {{
      {SinkType::kStdout, R"({"type": "stdout"})"},
      {SinkType::kFile, R"({"type": "file", "path": "/tmp/x.jsonl"})"},
      {SinkType::kUnix, R"({"type": "unix", "path": "/run/x.sock"})"},
      {SinkType::kTcp, R"({"type": "tcp", "host": "127.0.0.1", "port": 5170})"},
      {SinkType::kJournald, R"({"type": "journald"})"},
      {SinkType::kKafka, R"({"type": "kafka", "brokers": ["127.0.0.1:9092"], "topic": "t"})"},
  }};
  std::set<std::string_view> words;
  for (const auto& [type, sink] : types) {
    EXPECT_TRUE(words.insert(sink_type_name(type)).second) << sink_type_name(type);
    const Config c = parse_ok(R"({"sinks": [)" + sink + "]}");
    ASSERT_EQ(c.sinks.size(), 1U) << sink;
    EXPECT_EQ(c.sinks[0].type, type) << sink;
  }
}

TEST(Config, Describe) {
  EXPECT_EQ(describe(Config{}), "poll 10s, traffic 60s, stats 60s, 1 sink: stdout");
  const Config c = parse_ok(R"({
    "poll_interval": "1500ms", "traffic_interval": 0, "stats_interval": "2m",
    "baseline": false, "destroy_events": false, "states": ["listen"],
    "sinks": [{"type": "stdout"}, {"type": "file", "path": "/var/log/x.jsonl"},
              {"type": "tcp", "host": "10.0.0.1", "port": 514}]})");
  EXPECT_EQ(describe(c),
            "poll 1500ms, traffic off, stats 2m, no baseline, no destroy events, states 0x400, "
            "3 sinks: stdout, file:/var/log/x.jsonl, tcp:10.0.0.1:514");
  EXPECT_EQ(describe(c).find('\n'), std::string::npos);
}

TEST(Config, EqualityCoversSinkFields) {
  // A reload restarts sinks only when they changed; a field describe() leaves out counts.
  const Config a = parse_ok(sinks(R"({"type": "file", "path": "/x", "mode": "0600"})"));
  const Config b = parse_ok(sinks(R"({"type": "file", "path": "/x", "mode": "0640"})"));
  EXPECT_EQ(describe(a), describe(b));
  EXPECT_NE(a.sinks, b.sinks);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, parse_ok(sinks(R"({"type": "file", "path": "/x", "mode": "0600"})")));
}

// ---- the example file ---------------------------------------------------------------------

TEST(ConfigExample, Parses) {
  auto loaded = load_config(kExample);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  // Its values are the defaults, but for the sink list it shows.
  Config want;
  want.sinks[0].type = SinkType::kFile;
  want.sinks[0].path = "/var/log/sockstate/sockstate.jsonl";
  want.sinks[0].file_group = "adm";
  EXPECT_EQ(*loaded, want);
}

// The example's commented-out blocks are the ones a reader turns on by deleting the
// "/*" and "*/" lines around them: they must parse too.
TEST(ConfigExample, EveryCommentedOutBlockParsesWhenTurnedOn) {
  std::istringstream in(read_file(kExample));
  std::string text;
  std::string line;
  int removed = 0;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(' ');
    const std::string trimmed = first == std::string::npos ? "" : line.substr(first);
    if (trimmed == "/*" || trimmed == "*/") {
      ++removed;
      continue;
    }
    text += line + "\n";
  }
  EXPECT_GE(removed, 10);
  const Config c = parse_ok(text);
  std::set<SinkType> types;
  for (const auto& s : c.sinks) {
    types.insert(s.type);
  }
  EXPECT_EQ(types.size(), 6U) << describe(c);
  ASSERT_FALSE(c.sinks.empty());
  EXPECT_EQ(c.sinks.back().type, SinkType::kFile);
  EXPECT_EQ(c.sinks.back().rotate_bytes, 100U << 20);
}

TEST(ConfigExample, DocumentsEveryKey) {
  const std::string text = read_file(kExample);
  ASSERT_FALSE(text.empty());
  const std::vector<std::string> keys = known_keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size()) << "no repeats";
  EXPECT_EQ(keys.size(), 50U);
  for (const std::string& key : keys) {
    const std::string leaf =
        key.substr(key.rfind('.') == std::string::npos ? 0 : key.rfind('.') + 1);
    // As a key of the document (written out, perhaps in a comment), not only in prose.
    EXPECT_TRUE(std::regex_search(text, std::regex("\"" + leaf + "\"\\s*:"))) << key;
  }
  for (const char* type : {"stdout", "file", "unix", "tcp", "journald", "kafka"}) {
    EXPECT_TRUE(std::regex_search(text, std::regex(std::string("\"type\": \"") + type + "\"")))
        << type;
  }
}

TEST(ConfigExample, KnownKeysAreTheAcceptedOnes) {
  // Top-level keys: each is accepted (a wrong value, not an unknown key).
  for (const std::string& key : known_keys()) {
    if (key.rfind("sinks[].", 0) == 0) {
      const std::string leaf = key.substr(8);
      const std::string err = parse_error(sinks("{\"type\": \"stdout\", \"" + leaf + "\": {}}"));
      EXPECT_EQ(err.find("unknown key"), std::string::npos) << err;
    } else {
      const std::string err = parse_error(doc(key, "{}"));
      EXPECT_TRUE(starts_with(err, key + ": ")) << err;
      EXPECT_EQ(err.find("unknown key"), std::string::npos) << err;
    }
  }
}

}  // namespace
}  // namespace sockstate::config

namespace sockstate::config {
namespace {

TEST(ConfigInternalNetworks, ParsedAsCidrsDefaultIsTheContracts) {
  auto c = parse_config(R"({"internal_networks": ["198.51.100.0/24", "2001:db8::/32"]})");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->internal_networks.size(), 2U);
  EXPECT_EQ(flow::cidr_text(c->internal_networks[0]), "198.51.100.0/24");
  EXPECT_EQ(flow::cidr_text(c->internal_networks[1]), "2001:db8::/32");
  EXPECT_NE(describe(*c).find("internal networks: 198.51.100.0/24 2001:db8::/32"),
            std::string::npos)
      << describe(*c);
  auto none = parse_config(R"({"internal_networks": []})");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->internal_networks.empty());
  auto defaults = parse_config("{}");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->internal_networks, flow::NetworkSet::default_internal().networks());
  EXPECT_EQ(defaults->internal_networks.size(), 7U);
  EXPECT_TRUE(defaults->observables);
}

TEST(ConfigInternalNetworks, BadNetworksNameTheirPlace) {
  EXPECT_TRUE(starts_with(parse_error(doc("internal_networks", R"(["10.0.0.0/8", "10.0.0.1/8"])")),
                          "internal_networks[1]: must be a network in CIDR form"));
  EXPECT_TRUE(starts_with(parse_error(doc("internal_networks", R"(["10.0.0.0/33"])")),
                          "internal_networks[0]:"));
  EXPECT_TRUE(
      starts_with(parse_error(doc("internal_networks", R"("10.0.0.0/8")")), "internal_networks:"));
  EXPECT_TRUE(
      starts_with(parse_error(doc("internal_networks", R"([8])")), "internal_networks[0]:"));
  EXPECT_TRUE(starts_with(parse_error(doc("observables", R"("yes")")), "observables:"));
  auto off = parse_config(doc("observables", "false"));
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->observables);
}

// Found by tests/fuzz/fuzz_config: inet_pton() reads the address up to a NUL, so whatever
// followed it was accepted, and a newline there broke describe()'s one log line.
TEST(ConfigMetricsListen, ControlCharactersAreRefused) {
  EXPECT_EQ(parse_error(doc("metrics_listen", R"("127.0.0.1\u0000\nforged line:9465")")),
            "metrics_listen: must not contain control characters");
  EXPECT_EQ(parse_error(doc("metrics_listen", R"("127.0.0.1:9465\n")")),
            "metrics_listen: must not contain control characters");
  EXPECT_EQ(parse_ok(doc("metrics_listen", R"("[::1]:9465")")).metrics_listen, "[::1]:9465");
  EXPECT_EQ(parse_ok(doc("metrics_listen", R"("")")).metrics_listen, "");
}

}  // namespace
}  // namespace sockstate::config

namespace sockstate::config {
namespace {

// The command line's overrides go through the same strict parser as the file: the probe
// crashed the daemon with a 200 KB file nested 100,000 deep once any override was given,
// and skipped the size limit and the duplicate-key check.
TEST(ConfigOverrides, AsStrictAsTheFile) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/c.json";
  std::ofstream(path) << "{\"poll_interval\": \"5s\"}";
  auto c = load_config(path, {{"poll_interval", "\"2s\""}, {"baseline", "false"}});
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->poll_interval, std::chrono::seconds(2));
  EXPECT_FALSE(c->baseline);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::ofstream(path) << deep;
  auto bad = load_config(path, {{"poll_interval", "\"2s\""}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), path +
                                       " with the command line: (document): nested deeper "
                                       "than 16 levels");
  std::ofstream(path) << "{\"poll_interval\": \"1s\", \"poll_interval\": \"2s\"}";
  bad = load_config(path, {{"baseline", "false"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("poll_interval: given twice"), std::string::npos)
      << bad.error().message();
  std::ofstream(path) << "{}";
  bad = load_config(path, {{"sinks", "[" + deep + "]"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("sinks: nested deeper"), std::string::npos)
      << bad.error().message();
  bad = load_config("", {{"poll_interval", "\"nope\""}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message().rfind("command line: poll_interval", 0), 0U)
      << bad.error().message();
}

TEST(ConfigFile, OnlyARegularFileOthersCannotWrite) {
  const std::string dir = temp_dir();
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = load_config(fifo);  // must not block waiting for a writer
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), fifo + ": not a regular file");
  r = load_config("/dev/zero");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "/dev/zero: not a regular file");
  const std::string open_file = dir + "/open.json";
  std::ofstream(open_file) << "{}";
  ASSERT_EQ(::chmod(open_file.c_str(), 0666), 0);
  r = load_config(open_file);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("writable by every user"), std::string::npos);
  ASSERT_EQ(::chmod(open_file.c_str(), 0644), 0);
  EXPECT_TRUE(load_config(open_file));
  const std::string big = dir + "/big.json";
  std::ofstream(big) << std::string(2U << 20, ' ') << "{}";
  r = load_config(big);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("larger than 1MiB"), std::string::npos);
}

TEST(Config, BpfIsAutoOnOrOff) {
  EXPECT_EQ(parse_ok("{}").bpf, BpfMode::kAuto);
  EXPECT_EQ(parse_ok(R"({"bpf": "on"})").bpf, BpfMode::kOn);
  EXPECT_EQ(parse_ok(R"({"bpf": "off"})").bpf, BpfMode::kOff);
  EXPECT_EQ(parse_ok(R"({"bpf": "auto"})").bpf, BpfMode::kAuto);
  for (const char* bad : {R"({"bpf": true})", R"({"bpf": "yes"})", R"({"bpf": "ON"})"}) {
    EXPECT_EQ(parse_error(bad).rfind("bpf: must be \"auto\"", 0), 0U) << bad;
  }
  EXPECT_EQ(parse_ok(R"({"bpf_ring_buffer": "16MiB"})").bpf_ring_bytes, 16U << 20);
  EXPECT_EQ(parse_ok("{}").bpf_ring_bytes, 8U << 20);
  EXPECT_NE(parse_error(R"({"bpf_ring_buffer": "1KiB"})").find("bpf_ring_buffer"),
            std::string::npos);
  EXPECT_NE(describe(parse_ok(R"({"bpf": "off"})")).find("bpf off"), std::string::npos);
}

TEST(Config, OcsfVersionIsOneOfTheModes) {
  EXPECT_EQ(parse_ok("{}").ocsf_version, ocsf::kOcsf180);
  EXPECT_EQ(parse_ok(R"({"ocsf_version": "1.1.0"})").ocsf_version, ocsf::kOcsf110);
  EXPECT_EQ(parse_ok(R"({"ocsf_version": "1.5.0"})").ocsf_version, ocsf::kOcsf150);
  for (const char* bad :
       {R"({"ocsf_version": 1.1})", R"({"ocsf_version": "1.3.0"})", R"({"ocsf_version": "1.1"})"}) {
    EXPECT_EQ(parse_error(bad), "ocsf_version: must be 1.8.0, 1.5.0 or 1.1.0") << bad;
  }
  EXPECT_NE(describe(parse_ok(R"({"ocsf_version": "1.1.0"})")).find("OCSF 1.1.0"),
            std::string::npos);
  EXPECT_EQ(describe(parse_ok("{}")).find("OCSF"), std::string::npos) << "the default unsaid";
}

}  // namespace
}  // namespace sockstate::config

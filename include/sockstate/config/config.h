#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/flow/address.h"
#include "sockstate/netlink/types.h"
#include "sockstate/ocsf/version.h"
#include "sockstate/sink/sink_config.h"

namespace sockstate::config {

// Whether the kernel-event source (BPF) is used: where it loads, required, or never.
enum class BpfMode : std::uint8_t { kAuto, kOn, kOff };
// "auto", "on", "off"; nullopt for anything else.
std::optional<BpfMode> parse_bpf_mode(std::string_view text);
std::string_view bpf_mode_name(BpfMode mode);

// Everything `sockstate run` can be told. Defaults are what a fleet gets with no file.
struct Config {
  std::chrono::milliseconds poll_interval{10000};
  std::chrono::milliseconds traffic_interval{60000};  // 0: no periodic Traffic records
  std::chrono::milliseconds stats_interval{60000};    // 0: no periodic stats log line
  bool baseline = true;                               // the startup snapshot records
  bool destroy_events = true;                  // listen to the kernel's socket-destroy events
  std::uint32_t states = netlink::kAllStates;  // kernel states mask the daemon dumps
  std::vector<std::uint8_t> protocols{6, 17};  // IPPROTO_TCP, IPPROTO_UDP: sorted, each once
  // Sockets seen only in their destroy event that get their own Close a second, by protocol
  // (TCP, UDP); the rest are summarised (tracking::ShortLivedLimit). 0: every socket. TCP's
  // is always 0: a connection's terminal record says how it ended.
  std::array<std::uint32_t, 2> short_lived_per_second{0, 1000};
  bool process = true;                        // actor.process / actor.user from /proc
  bool all_netns = false;                     // every network namespace, not just ours
  std::uint16_t community_id_seed = 0;        // connection_info.community_uid seed
  std::size_t event_buffer_bytes = 8U << 20;  // SO_RCVBUF(FORCE) of the destroy listener
  std::string log_name = "sockstate";         // metadata.log_name
  int device_type_id = 0;                     // device.type_id
  std::string log_level = "info";             // error, warn, info, debug
  std::vector<sink::SinkConfig> sinks{sink::SinkConfig{}};  // default: one stdout sink
  // The networks called inside, for direction and boundary (default: the contract's).
  std::vector<flow::Cidr> internal_networks = flow::NetworkSet::default_internal().networks();
  bool observables = true;                // write `observables` on every record
  std::string metrics_listen;             // "IP:PORT" of the Prometheus endpoint; "": off
  BpfMode bpf = BpfMode::kAuto;           // the kernel-event source beside sock_diag
  std::size_t bpf_ring_bytes = 8U << 20;  // its ring buffer (a power of two pages)
  ocsf::OcsfVersion ocsf_version{};       // the version records are written in

  friend bool operator==(const Config&, const Config&) = default;
};

// Parses a configuration document: one JSON object, comments (// and /* */) allowed.
// Strict: an unknown key, a key given twice, a wrong type or an impossible value is an
// Error (errnum 0) whose one-line message starts with the key's path, e.g.
// "sinks[1].port: must be 1 to 65535", "states[0]: unknown state \"estab\" (...)", or
// "(document): line 3, column 5: syntax error ..." for what is not JSON. Keys not given
// keep the defaults of Config; a given `sinks` replaces the default stdout sink.
//
// Value rules (packaging/sockstate.example.json documents every key):
//  * duration: a string, a whole number and one unit, ms, s, m or h ("500ms", "10s",
//    "1m"); a bare JSON number is refused (seconds or milliseconds?) except 0, and "0"
//    is zero too. Never negative, never over 24h.
//  * size: a JSON integer of bytes, or a string, a whole number and KiB, MiB or GiB
//    ("8MiB"); "0" is zero.
//  * states: an array of the --state names of `sockstate snapshot`.
//  * protocols: an array of "tcp", "udp" or "all" (the words of `snapshot --protocol`).
//  * short_lived_per_second: an object {"udp": N}, N 0 to 1000000 (TCP is never summarised).
// Never throws.
Result<Config> parse_config(std::string_view text);

// Reads and parses FILE ("": the defaults), with the command line's overrides (key, JSON
// value text) set over the document before validation, each parsed as strictly as the
// file. FILE must be a regular file of at most 1 MiB that other users cannot write. A
// file that cannot be read is Error{errno, "cannot read configuration file FILE"}; a bad
// document is Error{0, "FILE: " + the message} ("FILE with the command line: ...",
// "command line: ..." with overrides). Never throws; nesting is limited to 16 levels.
Result<Config> load_config(const std::string& path,
                           const std::vector<std::pair<std::string, std::string>>& overrides = {});

// A one-line summary for log lines, e.g.
// "poll 10s, traffic 60s, stats 60s, 2 sinks: stdout, file:/var/log/sockstate/x.jsonl".
// Not a full rendering: compare Configs (or their sinks) with ==, not their descriptions.
std::string describe(const Config& config);

// Every key path parse_config() accepts, top-level keys as "poll_interval" and sink keys
// as "sinks[].port", so tests can hold the example file to documenting each one.
std::vector<std::string> known_keys();

}  // namespace sockstate::config

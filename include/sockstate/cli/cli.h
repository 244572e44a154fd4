#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sockstate/ocsf/version.h"
#include "sockstate/snapshot/snapshot.h"

namespace sockstate::cli {

// Documented exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // netlink, output or other failure at run time
inline constexpr int kExitUsage = 2;    // bad command line or configuration

enum class Command { kExit, kSnapshot, kRun, kCheckConfig };

struct Invocation {
  Command command = Command::kExit;
  int exit_code = kExitOk;  // for kExit
  std::string out;          // for kExit: what goes to stdout (--help, --version)
  std::string error;        // for kExit with kExitUsage: the one line for stderr
  std::string log_level;    // --log-level when given; empty: warn (snapshot), the config (run)
  snapshot::SnapshotOptions snapshot;
  std::string output_path;  // empty: stdout
  std::uint16_t community_id_seed = 0;
  bool observables = true;           // --no-observables turns them off
  ocsf::OcsfVersion ocsf_version{};  // --ocsf-version
  // run, check-config
  std::string config_path;  // empty: built-in defaults
  // Command-line overrides of configuration keys, as JSON values by key, applied over
  // the file's document before validation.
  std::vector<std::pair<std::string, std::string>> overrides;
};

// Parses argv (CLI11). Never throws, never prints: the caller prints `out` or `error`.
Invocation parse(const std::vector<std::string>& args);

}  // namespace sockstate::cli

#include "sockstate/cli/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <optional>
#include <string_view>

#include "sockstate/common/version.h"
#include "sockstate/flow/orientation.h"
#include "sockstate/ocsf/json_writer.h"
#include "sockstate/ocsf/tcp_state.h"

namespace sockstate::cli {
namespace {

// Words filled into lines of at most 80 columns, as the rest of --help is laid out.
std::string wrapped(std::string_view text) {
  std::string out;
  std::size_t column = 0;
  while (!text.empty()) {
    const auto end = text.find(' ');
    const std::string_view word = text.substr(0, end);
    if (column > 0 && column + 1 + word.size() > 80) {
      out.push_back('\n');
      column = 0;
    } else if (column > 0) {
      out.push_back(' ');
      ++column;
    }
    out.append(word);
    column += word.size();
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return out;
}

std::string state_help() {
  return wrapped("States to report, comma-separated (default all). Names: " + ocsf::state_names() +
                 "; all (every state but bound), connected (all but listen and closed), bound "
                 "(bound, never listened or connected: kernel >= 6.8). Case-insensitive, '-' "
                 "or '_'. Filtered in the kernel.");
}

// The snapshot command's options as CLI11 leaves them: text, checked once parsing is done
// so that each bad value gets its own message.
struct SnapshotArgs {
  std::vector<std::string> states;
  std::vector<std::string> protocols;
  std::string family = "all";
  std::string port;
  std::string sport;
  std::string dport;
  std::string format = "json";
  bool no_info = false;
  std::vector<std::string> internal;
  bool no_observables = false;
  std::string seed;
  std::string bpf = "auto";
  std::string ocsf_version = "1.8.0";
};

// The run command's options: each one given becomes a configuration override.
struct RunArgs {
  std::string poll_interval;
  std::string traffic_interval;
  std::string output;
  std::string bpf;
  std::string ocsf_version;
  std::vector<std::string> protocols;
  bool no_baseline = false;
  bool no_destroy_events = false;
  bool no_process = false;
  bool all_netns = false;
  bool no_observables = false;
};

// A port number 0..65535 in decimal, or nullopt.
std::optional<std::uint16_t> parse_port(const std::string& text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const unsigned long value = std::stoul(text);
  if (value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') {
    s.pop_back();
  }
  return s;
}

std::string json_string(const std::string& v) {
  std::string out;
  ocsf::append_json_string(out, v);
  return out;
}

// A bad command line: the one line for stderr, exit 2.
Invocation usage_error(Invocation inv, std::string error) {
  inv.command = Command::kExit;
  inv.exit_code = kExitUsage;
  inv.error = std::move(error);
  return inv;
}

void add_global_options(CLI::App& app, Invocation& inv) {
  app.set_version_flag("-V,--version", std::string("sockstate ") + kVersion);
  app.require_subcommand(1);
  // Global options (--log-level) work after the command too.
  app.fallthrough(true);
  app.footer(
      "Exit status: 0 success; 1 runtime failure (netlink, output); 2 bad command line\n"
      "or configuration.\n"
      "Records: OCSF 1.8.0 Network Activity (4001); a TCP record's state in\n"
      "unmapped.tcp_state_id (UDP has none).\n"
      "See sockstate(8).");
  app.add_option("--log-level", inv.log_level,
                 "Diagnostics on stderr (default: warn; for run, the configuration's)")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->type_name("LEVEL");
}

// The options that choose which sockets a snapshot dumps.
void add_snapshot_filters(CLI::App& snap, SnapshotArgs& args) {
  snap.add_option("--state", args.states, state_help())->delimiter(',')->type_name("LIST");
  snap.add_option("--protocol", args.protocols,
                  "Transport protocols, comma-separated (default all): tcp, udp, all. A UDP\n"
                  "socket bound and not connected is listen, a connected one established")
      ->delimiter(',')
      ->type_name("LIST");
  snap.add_option("--family", args.family, "Address family (default all)")
      ->check(CLI::IsMember({"inet", "inet6", "all"}))
      ->type_name("FAMILY");
  snap.add_option("--port", args.port, "Only sockets with port N at either end (kernel filter)")
      ->type_name("N");
  snap.add_option("--sport", args.sport, "Only sockets whose local port is N (kernel filter)")
      ->type_name("N");
  snap.add_option("--dport", args.dport, "Only sockets whose remote port is N (kernel filter)")
      ->type_name("N");
}

// The options that shape a snapshot's records and where they go.
void add_snapshot_output(CLI::App& snap, SnapshotArgs& args, Invocation& inv) {
  snap.add_option("--format", args.format,
                  "json (default): OCSF records; table: one line per socket for people")
      ->check(CLI::IsMember({"json", "table"}))
      ->type_name("FORMAT");
  snap.add_flag("--no-info", args.no_info, "No tcp_info: faster; records carry no traffic or rtt");
  snap.add_option("--output", inv.output_path, "Write records to FILE (mode 0640), not stdout")
      ->type_name("FILE");
  snap.add_flag("--process", inv.snapshot.process,
                "Name the owning process and user (actor) of each socket, from /proc");
  snap.add_option("--bpf", args.bpf,
                  "With --process: who holds each socket from the kernel's task_file\n"
                  "iterator (BPF): auto (default: where it loads), on (required), off (/proc)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->type_name("MODE");
  snap.add_flag("--all-netns", inv.snapshot.all_netns,
                "Every network namespace (processes' and /run/netns), with its container;\n"
                "needs CAP_SYS_ADMIN");
  snap.add_option("--internal-network", args.internal,
                  "A network called inside for direction (CIDR; repeat or comma-separate;\n"
                  "default RFC 1918, CGNAT, link-local, ULA)")
      ->delimiter(',')
      ->type_name("CIDR");
  snap.add_flag("--no-observables", args.no_observables, "Records carry no `observables` array");
  snap.add_option("--community-id-seed", args.seed,
                  "Seed of connection_info.community_uid (Community ID v1; default 0)")
      ->type_name("N");
  snap.add_option("--ocsf-version", args.ocsf_version,
                  "OCSF version of the records: 1.8.0 (default), 1.5.0 or 1.1.0 (for\n"
                  "consumers written for it: Security Lake, Splunk, SecOps, Elastic read 1.1.0)")
      ->type_name("VERSION");
}

CLI::App* add_snapshot(CLI::App& app, SnapshotArgs& args, Invocation& inv) {
  CLI::App* snap =
      app.add_subcommand("snapshot",
                         "Write one record for every TCP and UDP socket of this network namespace\n"
                         "(with --all-netns: of every one), then exit.");
  add_snapshot_filters(*snap, args);
  add_snapshot_output(*snap, args, inv);
  return snap;
}

CLI::App* add_run(CLI::App& app, RunArgs& args, Invocation& inv) {
  CLI::App* run = app.add_subcommand(
      "run", "Collect: report socket changes, closes and traffic as records until stopped.");
  run->add_option("--config", inv.config_path, "Configuration file (JSON; see sockstate(8))")
      ->type_name("FILE");
  run->add_option("--poll-interval", args.poll_interval, "Override poll_interval (e.g. 10s)")
      ->type_name("DURATION");
  run->add_option("--traffic-interval", args.traffic_interval,
                  "Override traffic_interval (e.g. 60s; 0 turns Traffic records off)")
      ->type_name("DURATION");
  run->add_option("--output", args.output,
                  "Write records to FILE only (replaces the configured sinks)")
      ->type_name("FILE");
  run->add_option("--bpf", args.bpf,
                  "Override bpf: the kernel-event source (owners and exact times from the\n"
                  "kernel's tracepoints): auto (default: where it loads), on (required), off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->type_name("MODE");
  run->add_option("--ocsf-version", args.ocsf_version,
                  "Override ocsf_version: 1.8.0 (default), 1.5.0 or 1.1.0")
      ->type_name("VERSION");
  run->add_option("--protocol", args.protocols,
                  "Override protocols, comma-separated: tcp, udp, all (default both)")
      ->delimiter(',')
      ->type_name("LIST");
  run->add_flag("--no-baseline", args.no_baseline, "No startup snapshot records");
  run->add_flag("--no-destroy-events", args.no_destroy_events,
                "Do not listen to destroy events (closes are then found by polls)");
  run->add_flag("--no-process", args.no_process, "Do not name owning processes (actor)");
  run->add_flag("--all-netns", args.all_netns,
                "Every network namespace, followed as they come and go");
  run->add_flag("--no-observables", args.no_observables, "Records carry no `observables` array");
  return run;
}

CLI::App* add_check_config(CLI::App& app, Invocation& inv) {
  CLI::App* check = app.add_subcommand(
      "check-config", "Validate a configuration file and exit (0 valid, 2 invalid).");
  check->add_option("file", inv.config_path, "The configuration file")
      ->required()
      ->type_name("FILE");
  return check;
}

// `sockstate help [COMMAND]` is `sockstate [COMMAND] --help`.
std::vector<std::string> help_as_flag(std::vector<std::string> argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    if (argv[i] == "--log-level") {
      ++i;
    } else if (argv[i] == "help") {
      argv.erase(argv.begin() + static_cast<std::ptrdiff_t>(i));
      argv.insert(argv.begin() + static_cast<std::ptrdiff_t>(std::min(i + 1, argv.size())),
                  "--help");
      break;
    } else if (argv[i].empty() || argv[i][0] != '-') {
      break;
    }
  }
  return argv;
}

// CLI11 reports an unknown command as "a subcommand is required"; this names it instead.
std::optional<std::string> unknown_command(const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    if (argv[i] == "--log-level") {
      ++i;
      continue;
    }
    if (!argv[i].empty() && argv[i][0] != '-') {
      if (argv[i] != "snapshot" && argv[i] != "run" && argv[i] != "check-config") {
        return "unknown command '" + argv[i] +
               "' (commands: snapshot, run, check-config; see sockstate --help)";
      }
      break;
    }
  }
  return std::nullopt;
}

// Runs CLI11 over argv. False when the command line is answered already (help, version,
// an error): `inv` then holds that answer.
bool parse_argv(CLI::App& app, const std::vector<std::string>& argv, Invocation& inv) {
  std::vector<std::string> argv_rev(argv.rbegin(), argv.rend() - (argv.empty() ? 0 : 1));
  try {
    app.parse(argv_rev);
  } catch (const CLI::CallForHelp&) {
    inv.out = app.help();
    return false;
  } catch (const CLI::CallForAllHelp&) {
    inv.out = app.help("", CLI::AppFormatMode::All);
    return false;
  } catch (const CLI::CallForVersion&) {
    inv.out = std::string("sockstate ") + kVersion + "\n";
    return false;
  } catch (const CLI::ParseError& e) {
    inv.exit_code = kExitUsage;
    inv.error = one_line(e.what()) + " (see sockstate --help)";
    return false;
  }
  return true;
}

// run's options become configuration overrides, applied over the file like its own keys.
void apply_run(const RunArgs& args, Invocation& inv) {
  inv.command = Command::kRun;
  auto& overrides = inv.overrides;
  if (!args.poll_interval.empty()) {
    overrides.emplace_back("poll_interval", json_string(args.poll_interval));
  }
  if (!args.traffic_interval.empty()) {
    overrides.emplace_back("traffic_interval", json_string(args.traffic_interval));
  }
  if (!args.bpf.empty()) {
    overrides.emplace_back("bpf", json_string(args.bpf));
  }
  if (!args.ocsf_version.empty()) {
    overrides.emplace_back("ocsf_version", json_string(args.ocsf_version));
  }
  if (!args.protocols.empty()) {
    std::string list = "[";
    for (const auto& word : args.protocols) {
      list += (list.size() > 1 ? "," : "") + json_string(word);
    }
    overrides.emplace_back("protocols", list + "]");
  }
  const std::pair<bool, std::pair<const char*, const char*>> flags[] = {
      {args.no_baseline, {"baseline", "false"}},
      {args.no_destroy_events, {"destroy_events", "false"}},
      {args.no_process, {"process", "false"}},
      {args.all_netns, {"all_netns", "true"}},
      {args.no_observables, {"observables", "false"}}};
  for (const auto& [given, pair] : flags) {
    if (given) {
      overrides.emplace_back(pair.first, pair.second);
    }
  }
  if (!inv.log_level.empty()) {
    overrides.emplace_back("log_level", json_string(inv.log_level));
  }
  if (!args.output.empty()) {
    overrides.emplace_back("sinks",
                           "[{\"type\":\"file\",\"path\":" + json_string(args.output) + "}]");
  }
}

// Each check_* below returns the usage error of a bad value, or nullopt once it has set
// the option.
std::optional<std::string> check_states(const std::vector<std::string>& states,
                                        snapshot::SnapshotOptions& opt) {
  if (states.empty()) {
    return std::nullopt;
  }
  opt.states = 0;
  for (const auto& word : states) {
    auto mask = ocsf::state_mask_for_name(word);
    if (!mask) {
      return "--state: unknown state '" + word + "' (see sockstate --help)";
    }
    opt.states |= *mask;
  }
  return std::nullopt;
}

std::optional<std::string> check_protocols(const std::vector<std::string>& protocols,
                                           snapshot::SnapshotOptions& opt) {
  if (protocols.empty()) {
    return std::nullopt;
  }
  opt.tcp = false;
  opt.udp = false;
  for (const auto& word : protocols) {
    const std::vector<std::uint8_t> named = flow::protocols_named(word);
    if (named.empty()) {
      return "--protocol: unknown protocol '" + word + "' (tcp, udp or all)";
    }
    for (const std::uint8_t p : named) {
      (flow::has_tcp_states(p) ? opt.tcp : opt.udp) = true;
    }
  }
  return std::nullopt;
}

std::optional<std::string> check_ports(const CLI::App& snap, const SnapshotArgs& args,
                                       netlink::PortFilter& ports) {
  struct PortOption {
    const char* name;
    const std::string& text;
    std::optional<std::uint16_t>& port;
  };
  const PortOption options[] = {{"--port", args.port, ports.either},
                                {"--sport", args.sport, ports.local},
                                {"--dport", args.dport, ports.remote}};
  for (const auto& option : options) {
    if (snap.count(option.name) == 0) {
      continue;
    }
    auto value = parse_port(option.text);
    if (!value) {
      return std::string(option.name) + ": '" + option.text + "' is not a port number (0 to 65535)";
    }
    option.port = *value;
  }
  return std::nullopt;
}

std::optional<std::string> check_internal(const std::vector<std::string>& internal,
                                          snapshot::SnapshotOptions& opt) {
  if (internal.empty()) {
    return std::nullopt;
  }
  std::vector<flow::Cidr> networks;
  for (const auto& text : internal) {
    auto cidr = flow::parse_cidr(text);
    if (!cidr) {
      return "--internal-network: '" + text + "' is not a network in CIDR form";
    }
    networks.push_back(*cidr);
  }
  opt.internal_networks.emplace(std::move(networks));
  return std::nullopt;
}

std::optional<std::string> check_seed(const CLI::App& snap, const std::string& seed,
                                      Invocation& inv) {
  if (snap.count("--community-id-seed") == 0) {
    return std::nullopt;
  }
  auto value = parse_port(seed);  // the seed is 16 bits, like a port
  if (!value) {
    return "--community-id-seed: '" + seed + "' is not a number from 0 to 65535";
  }
  inv.community_id_seed = *value;
  return std::nullopt;
}

Invocation apply_snapshot(const CLI::App& snap, const SnapshotArgs& args, Invocation inv) {
  inv.command = Command::kSnapshot;
  auto& opt = inv.snapshot;
  if (auto error = check_states(args.states, opt)) {
    return usage_error(std::move(inv), std::move(*error));
  }
  if (auto error = check_protocols(args.protocols, opt)) {
    return usage_error(std::move(inv), std::move(*error));
  }
  opt.inet = args.family != "inet6";
  opt.inet6 = args.family != "inet";
  if (auto error = check_ports(snap, args, opt.ports)) {
    return usage_error(std::move(inv), std::move(*error));
  }
  opt.with_info = !args.no_info;
  opt.table = args.format == "table";
  opt.owner_walk = args.bpf == "on"    ? collect::OwnerWalk::kBpf
                   : args.bpf == "off" ? collect::OwnerWalk::kProc
                                       : collect::OwnerWalk::kAuto;
  inv.observables = !args.no_observables;
  if (auto error = check_internal(args.internal, opt)) {
    return usage_error(std::move(inv), std::move(*error));
  }
  if (auto error = check_seed(snap, args.seed, inv)) {
    return usage_error(std::move(inv), std::move(*error));
  }
  const auto version = ocsf::parse_ocsf_version(args.ocsf_version);
  if (!version) {
    return usage_error(std::move(inv), "--ocsf-version: '" + args.ocsf_version + "' is not " +
                                           ocsf::supported_ocsf_versions());
  }
  inv.ocsf_version = *version;
  return inv;
}

}  // namespace

Invocation parse(const std::vector<std::string>& args) {
  Invocation inv;
  CLI::App app{
      "sockstate: the kernel's TCP and UDP sockets as OCSF 1.8.0 Network Activity records, "
      "one JSON object per line.",
      "sockstate"};
  add_global_options(app, inv);
  SnapshotArgs snapshot_args;
  RunArgs run_args;
  CLI::App* snap = add_snapshot(app, snapshot_args, inv);
  CLI::App* run = add_run(app, run_args, inv);
  CLI::App* check = add_check_config(app, inv);

  const std::vector<std::string> argv = help_as_flag(args);
  if (auto error = unknown_command(argv)) {
    inv.exit_code = kExitUsage;
    inv.error = std::move(*error);
    return inv;
  }
  if (!parse_argv(app, argv, inv)) {
    return inv;
  }
  if (run->parsed()) {
    apply_run(run_args, inv);
    return inv;
  }
  if (check->parsed()) {
    inv.command = Command::kCheckConfig;
    return inv;
  }
  if (snap->parsed()) {
    return apply_snapshot(*snap, snapshot_args, std::move(inv));
  }
  return inv;
}

}  // namespace sockstate::cli

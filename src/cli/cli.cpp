#include "sockstate/cli/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <optional>
#include <string_view>

#include "sockstate/common/version.h"
#include "sockstate/ocsf/json_writer.h"
#include "sockstate/ocsf/tcp_state.h"

namespace sockstate::cli {
namespace {

constexpr const char* kStateHelp =
    "States to report, comma-separated (default all). Names: established, syn-sent,\n"
    "syn-received, fin-wait-1, fin-wait-2, time-wait, closed, close-wait, last-ack,\n"
    "listen, closing; all (every state but bound), connected (all but listen and\n"
    "closed), bound (bound, never listened or connected: kernel >= 6.8).\n"
    "Case-insensitive, '-' or '_'. Filtered in the kernel.";

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

// A bad command line: the one line for stderr, exit 2.
Invocation usage_error(Invocation inv, std::string error) {
  inv.command = Command::kExit;
  inv.exit_code = kExitUsage;
  inv.error = std::move(error);
  return inv;
}

}  // namespace

Invocation parse(const std::vector<std::string>& args) {
  Invocation inv;
  CLI::App app{
      "sockstate: the kernel's TCP sockets as OCSF 1.8.0 Network Activity records, "
      "one JSON object per line.",
      "sockstate"};
  app.set_version_flag("-V,--version", std::string("sockstate ") + kVersion);
  app.require_subcommand(1);
  // Global options (--log-level) work after the command too.
  app.fallthrough(true);
  app.footer(
      "Exit status: 0 success; 1 runtime failure (netlink, output); 2 bad command line\n"
      "or configuration.\n"
      "Records: OCSF 1.8.0 Network Activity (4001), TCP state in unmapped.tcp_state_id.\n"
      "See sockstate(8).");
  app.add_option("--log-level", inv.log_level,
                 "Diagnostics on stderr (default: warn; for run, the configuration's)")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->type_name("LEVEL");

  CLI::App* snap =
      app.add_subcommand("snapshot",
                         "Write one record for every TCP socket of this network namespace (with\n"
                         "--all-netns: of every one), then exit.");
  std::vector<std::string> states;
  std::string family = "all";
  std::string port;
  std::string sport;
  std::string dport;
  snap->add_option("--state", states, kStateHelp)->delimiter(',')->type_name("LIST");
  snap->add_option("--family", family, "Address family (default all)")
      ->check(CLI::IsMember({"inet", "inet6", "all"}))
      ->type_name("FAMILY");
  snap->add_option("--port", port, "Only sockets with port N at either end (kernel filter)")
      ->type_name("N");
  snap->add_option("--sport", sport, "Only sockets whose local port is N (kernel filter)")
      ->type_name("N");
  snap->add_option("--dport", dport, "Only sockets whose remote port is N (kernel filter)")
      ->type_name("N");
  std::string format = "json";
  snap->add_option("--format", format,
                   "json (default): OCSF records; table: one line per socket for people")
      ->check(CLI::IsMember({"json", "table"}))
      ->type_name("FORMAT");
  bool no_info = false;
  snap->add_flag("--no-info", no_info, "No tcp_info: faster; records carry no traffic or rtt");
  snap->add_option("--output", inv.output_path, "Write records to FILE (mode 0640), not stdout")
      ->type_name("FILE");
  snap->add_flag("--process", inv.snapshot.process,
                 "Name the owning process and user (actor) of each socket, from /proc");
  snap->add_flag("--all-netns", inv.snapshot.all_netns,
                 "Every network namespace (processes' and /run/netns), with its container;\n"
                 "needs CAP_SYS_ADMIN");
  std::vector<std::string> internal;
  snap->add_option("--internal-network", internal,
                   "A network called inside for direction (CIDR; repeat or comma-separate;\n"
                   "default RFC 1918, CGNAT, link-local, ULA)")
      ->delimiter(',')
      ->type_name("CIDR");
  bool no_observables = false;
  snap->add_flag("--no-observables", no_observables, "Records carry no `observables` array");
  std::string seed;
  snap->add_option("--community-id-seed", seed,
                   "Seed of connection_info.community_uid (Community ID v1; default 0)")
      ->type_name("N");

  CLI::App* run = app.add_subcommand(
      "run", "Collect: report socket changes, closes and traffic as records until stopped.");
  run->add_option("--config", inv.config_path, "Configuration file (JSON; see sockstate(8))")
      ->type_name("FILE");
  std::string poll_interval;
  std::string traffic_interval;
  std::string run_output;
  bool no_baseline = false;
  bool no_destroy_events = false;
  run->add_option("--poll-interval", poll_interval, "Override poll_interval (e.g. 10s)")
      ->type_name("DURATION");
  run->add_option("--traffic-interval", traffic_interval,
                  "Override traffic_interval (e.g. 60s; 0 turns Traffic records off)")
      ->type_name("DURATION");
  run->add_option("--output", run_output,
                  "Write records to FILE only (replaces the configured sinks)")
      ->type_name("FILE");
  run->add_flag("--no-baseline", no_baseline, "No startup snapshot records");
  run->add_flag("--no-destroy-events", no_destroy_events,
                "Do not listen to destroy events (closes are then found by polls)");
  bool no_process = false;
  bool all_netns = false;
  run->add_flag("--no-process", no_process, "Do not name owning processes (actor)");
  run->add_flag("--all-netns", all_netns, "Every network namespace, followed as they come and go");
  bool run_no_observables = false;
  run->add_flag("--no-observables", run_no_observables, "Records carry no `observables` array");

  CLI::App* check = app.add_subcommand(
      "check-config", "Validate a configuration file and exit (0 valid, 2 invalid).");
  check->add_option("file", inv.config_path, "The configuration file")
      ->required()
      ->type_name("FILE");

  // `sockstate help [COMMAND]` is `sockstate [COMMAND] --help`.
  std::vector<std::string> argv = args;
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
  // CLI11 reports an unknown command as "a subcommand is required"; name it instead.
  for (std::size_t i = 1; i < argv.size(); ++i) {
    if (argv[i] == "--log-level") {
      ++i;
      continue;
    }
    if (!argv[i].empty() && argv[i][0] != '-') {
      if (argv[i] != "snapshot" && argv[i] != "run" && argv[i] != "check-config") {
        inv.exit_code = kExitUsage;
        inv.error = "unknown command '" + argv[i] +
                    "' (commands: snapshot, run, check-config; see sockstate --help)";
        return inv;
      }
      break;
    }
  }

  std::vector<std::string> argv_rev(argv.rbegin(), argv.rend() - (argv.empty() ? 0 : 1));
  try {
    app.parse(argv_rev);
  } catch (const CLI::CallForHelp&) {
    inv.out = app.help();
    return inv;
  } catch (const CLI::CallForAllHelp&) {
    inv.out = app.help("", CLI::AppFormatMode::All);
    return inv;
  } catch (const CLI::CallForVersion&) {
    inv.out = std::string("sockstate ") + kVersion + "\n";
    return inv;
  } catch (const CLI::ParseError& e) {
    inv.exit_code = kExitUsage;
    inv.error = one_line(e.what()) + " (see sockstate --help)";
    return inv;
  }

  auto quoted = [](const std::string& v) {
    std::string out;
    ocsf::append_json_string(out, v);
    return out;
  };
  if (run->parsed()) {
    inv.command = Command::kRun;
    if (!poll_interval.empty()) {
      inv.overrides.emplace_back("poll_interval", quoted(poll_interval));
    }
    if (!traffic_interval.empty()) {
      inv.overrides.emplace_back("traffic_interval", quoted(traffic_interval));
    }
    if (no_baseline) {
      inv.overrides.emplace_back("baseline", "false");
    }
    if (no_destroy_events) {
      inv.overrides.emplace_back("destroy_events", "false");
    }
    if (no_process) {
      inv.overrides.emplace_back("process", "false");
    }
    if (all_netns) {
      inv.overrides.emplace_back("all_netns", "true");
    }
    if (run_no_observables) {
      inv.overrides.emplace_back("observables", "false");
    }
    if (!inv.log_level.empty()) {
      inv.overrides.emplace_back("log_level", quoted(inv.log_level));
    }
    if (!run_output.empty()) {
      inv.overrides.emplace_back("sinks",
                                 "[{\"type\":\"file\",\"path\":" + quoted(run_output) + "}]");
    }
    return inv;
  }
  if (check->parsed()) {
    inv.command = Command::kCheckConfig;
    return inv;
  }

  if (snap->parsed()) {
    inv.command = Command::kSnapshot;
    auto& opt = inv.snapshot;
    if (!states.empty()) {
      opt.states = 0;
      for (const auto& word : states) {
        auto mask = ocsf::state_mask_for_name(word);
        if (!mask) {
          return usage_error(std::move(inv),
                             "--state: unknown state '" + word + "' (see sockstate --help)");
        }
        opt.states |= *mask;
      }
    }
    opt.inet = family != "inet6";
    opt.inet6 = family != "inet";
    const std::pair<const char*, std::string*> ports[] = {
        {"--port", &port}, {"--sport", &sport}, {"--dport", &dport}};
    for (const auto& [name, text] : ports) {
      if (snap->count(name) == 0) {
        continue;
      }
      auto value = parse_port(*text);
      if (!value) {
        return usage_error(std::move(inv), std::string(name) + ": '" + *text +
                                               "' is not a port number (0 to 65535)");
      }
      (name == std::string_view("--port")    ? opt.ports.either
       : name == std::string_view("--sport") ? opt.ports.local
                                             : opt.ports.remote) = *value;
    }
    opt.with_info = !no_info;
    opt.table = format == "table";
    inv.observables = !no_observables;
    if (!internal.empty()) {
      std::vector<flow::Cidr> networks;
      for (const auto& text : internal) {
        auto cidr = flow::parse_cidr(text);
        if (!cidr) {
          return usage_error(std::move(inv),
                             "--internal-network: '" + text + "' is not a network in CIDR form");
        }
        networks.push_back(*cidr);
      }
      opt.internal_networks.emplace(std::move(networks));
    }
    if (snap->count("--community-id-seed") != 0) {
      auto value = parse_port(seed);  // the seed is 16 bits, like a port
      if (!value) {
        return usage_error(std::move(inv),
                           "--community-id-seed: '" + seed + "' is not a number from 0 to 65535");
      }
      inv.community_id_seed = *value;
    }
  }
  return inv;
}

}  // namespace sockstate::cli

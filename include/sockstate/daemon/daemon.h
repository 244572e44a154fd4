#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sockstate/common/error.h"
#include "sockstate/config/config.h"
#include "sockstate/ocsf/record.h"
#include "sockstate/sink/sink.h"

namespace sockstate::daemon {

// Loads the configuration `sockstate run` would use: FILE (or the defaults when
// empty), then the command line's overrides, given as JSON members ({"poll_interval":
// "2s"}) so they get the same validation and key-naming errors as the file.
using ConfigLoader = std::function<Result<config::Config>()>;

// The configuration for `sockstate run`: FILE (the defaults when empty) with the
// command line's overrides (key, JSON value) set over the document before validation.
// Errors name the file and the key.
Result<config::Config> load_run_config(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& overrides);

// `sockstate run`: polls the kernel's TCP sockets, listens to destroy events, and writes
// the contract's daemon events to every sink. Single-threaded; each sink writes from its
// own thread. Signals: SIGTERM/SIGINT flush and stop (exit 0); SIGHUP reopens files and
// reloads the configuration (a bad one is refused and the old one kept).
class Daemon {
 public:
  Daemon(ConfigLoader loader, ocsf::RecordContext context);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until SIGTERM or SIGINT. Returns the exit status (0 after a clean stop, 2 when the
  // configuration cannot be loaded, 1 when startup failed or netlink broke), having logged
  // one line saying why.
  int run();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace sockstate::daemon

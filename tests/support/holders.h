#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/process.h"

namespace sockstate::testing {

inline constexpr const char* kPython = "/usr/bin/python3";
inline constexpr const char* kSetpriv = "/usr/bin/setpriv";

// Python processes that hold real sockets: each listens on 127.0.0.1:PORT, connects to
// itself and accepts, so it holds a listener and both ends of one connection; optionally
// it forks a child that inherits all three. Each dies with the test (PR_SET_PDEATHSIG)
// and is killed when the set is destroyed.
class Holders {
 public:
  struct Holder {
    pid_t pid = -1;
    pid_t child = 0;                // the forked child, or 0
    std::vector<std::string> argv;  // python's argv, as /proc/<pid>/cmdline shows it
  };

  // `dir`: a scratch directory for ready files and output (writable by every uid used).
  explicit Holders(std::string dir) : dir_(std::move(dir)) {}

  // Starts a holder on `port` and waits (up to 10 s) until its sockets exist. `wrapper`
  // runs first and must exec the rest (setpriv ..., ip netns exec NAME, sh -c '... exec
  // "$@"' sh). `extra_args` are appended to python's argv (they show in its cmdline).
  std::optional<Holder> start(std::uint16_t port, const std::vector<std::string>& wrapper = {},
                              bool fork_child = false,
                              const std::vector<std::string>& extra_args = {});

  // The last start()'s failure, for the test's message.
  [[nodiscard]] const std::string& error() const { return error_; }
  void clear() { processes_.clear(); }
  [[nodiscard]] std::vector<BackgroundProcess>& processes() { return processes_; }

 private:
  std::string dir_;
  std::string error_;
  int started_ = 0;
  std::vector<BackgroundProcess> processes_;
};

}  // namespace sockstate::testing

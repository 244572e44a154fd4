#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace sockstate::testing {

// True when the effective uid is 0 (network namespaces and nftables need it here).
bool is_root();

// Moves the calling thread into a fresh network namespace with `lo` up (127.0.0.1 and ::1).
// unshare(CLONE_NEWNET) only moves the calling thread: call it once, from the main thread,
// before any other thread exists (threads created afterwards, and child processes such as
// `ss` and `nft`, inherit it). Returns an error text on failure.
std::optional<std::string> enter_private_netns();

struct CommandResult {
  int exit_code = -1;        // the exit status; 128 + signal when killed; -1 when it never ran
  std::string output;        // stdout
  std::string error_output;  // stderr (kept apart so parsers of stdout are not confused)
};

// Runs `/bin/sh -c command` in the current network namespace, feeding `input` on stdin,
// and captures stdout and stderr. A child still running at `timeout` is killed (exit code
// 128 + SIGKILL), so a stuck tool cannot hang a test.
CommandResult run_command(const std::string& command, const std::string& input = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Loads an nftables ruleset (`nft -f -` syntax) atomically; returns nft's complaint on failure.
std::optional<std::string> apply_nft(const std::string& ruleset);

}  // namespace sockstate::testing

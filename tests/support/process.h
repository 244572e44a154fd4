#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/unique_fd.h"

namespace sockstate::testing {

// A program running in the background for the length of a test (the daemon), with its
// stdout and stderr going to files. Killed (SIGKILL) and reaped on destruction if it is
// still running.
class BackgroundProcess {
 public:
  // argv[0] is the program's path; `env` entries ("NAME=value") are added to ours.
  static std::optional<BackgroundProcess> start(const std::vector<std::string>& argv,
                                                const std::vector<std::string>& env,
                                                const std::string& stdout_path,
                                                const std::string& stderr_path, std::string* error);
  BackgroundProcess(BackgroundProcess&& other) noexcept;
  BackgroundProcess& operator=(BackgroundProcess&&) = delete;
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  ~BackgroundProcess();

  [[nodiscard]] pid_t pid() const { return pid_; }
  bool signal(int sig) const;
  // The exit status (128 + signal when killed by one), or nullopt at the timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  [[nodiscard]] bool running();

 private:
  explicit BackgroundProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// A unix datagram socket at a fresh path, where a daemon sends its sd_notify messages
// (NOTIFY_SOCKET=path). A thread reads them as they come, as systemd does: a datagram
// socket queues only net.unix.max_dgram_qlen (10) messages, and then sd_notify blocks.
class NotifySocket {
 public:
  static std::unique_ptr<NotifySocket> create(std::string* error);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  // Waits until a message after the last one returned contains `needle` (and returns
  // it), or the timeout passes.
  std::optional<std::string> wait_for(const std::string& needle, std::chrono::milliseconds timeout);
  // Every message received so far.
  [[nodiscard]] std::vector<std::string> messages() const;

 private:
  NotifySocket() = default;
  void read_loop();

  UniqueFd fd_;
  std::string dir_;
  std::string path_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<std::string> messages_;
  std::size_t checked_ = 0;
  std::atomic<bool> stop_{false};
  std::thread reader_;
};

}  // namespace sockstate::testing

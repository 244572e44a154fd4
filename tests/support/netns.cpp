#include "support/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <system_error>

#include "support/unique_fd.h"

namespace sockstate::testing {
namespace {

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::system_category().message(err);
}

// Drains whatever is readable from `fd` into `out`; returns false at EOF or on error.
bool drain(int fd, std::string& out) {
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      out.append(buf.data(), static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      return true;
    }
    return false;
  }
}

}  // namespace

bool is_root() {
  return ::geteuid() == 0;
}

std::optional<std::string> enter_private_netns() {
  if (::unshare(CLONE_NEWNET) != 0) {
    return errno_text("unshare(CLONE_NEWNET)", errno);
  }
  // A new namespace has `lo` down, and 127.0.0.1 / ::1 only work once it is up. The ioctl
  // socket must be created after unshare so it belongs to the new namespace.
  UniqueFd fd{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (!fd) {
    return errno_text("socket(AF_INET, SOCK_DGRAM)", errno);
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, "lo", 3);
  if (::ioctl(fd.get(), SIOCGIFFLAGS, &ifr) != 0) {
    return errno_text("ioctl(SIOCGIFFLAGS, lo)", errno);
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(fd.get(), SIOCSIFFLAGS, &ifr) != 0) {
    return errno_text("ioctl(SIOCSIFFLAGS, lo up)", errno);
  }
  return std::nullopt;
}

CommandResult run_command(const std::string& command, const std::string& input,
                          std::chrono::milliseconds timeout) {
  CommandResult result;

  // stdin comes from a memfd rather than a pipe: a child that exits without reading its
  // input cannot raise SIGPIPE in the test process, and nothing has to be interleaved.
  UniqueFd in{::memfd_create("run_command-stdin", MFD_CLOEXEC)};
  if (!in) {
    result.error_output = errno_text("memfd_create", errno);
    return result;
  }
  size_t written = 0;
  while (written < input.size()) {
    const ssize_t n = ::write(in.get(), input.data() + written, input.size() - written);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      result.error_output = errno_text("write(memfd)", errno);
      return result;
    }
    written += static_cast<size_t>(n);
  }
  if (::lseek(in.get(), 0, SEEK_SET) != 0) {
    result.error_output = errno_text("lseek(memfd)", errno);
    return result;
  }

  std::array<int, 2> out_pipe{-1, -1};
  std::array<int, 2> err_pipe{-1, -1};
  if (::pipe2(out_pipe.data(), O_CLOEXEC) != 0) {
    result.error_output = errno_text("pipe2", errno);
    return result;
  }
  UniqueFd out_read{out_pipe[0]};
  UniqueFd out_write{out_pipe[1]};
  if (::pipe2(err_pipe.data(), O_CLOEXEC) != 0) {
    result.error_output = errno_text("pipe2", errno);
    return result;
  }
  UniqueFd err_read{err_pipe[0]};
  UniqueFd err_write{err_pipe[1]};
  // Only our read ends are non-blocking: each pipe end is its own open file description, so
  // the child's stdout/stderr stay blocking (tools do not expect EAGAIN on stdout).
  for (const int fd : {out_read.get(), err_read.get()}) {
    if (::fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
      result.error_output = errno_text("fcntl(O_NONBLOCK)", errno);
      return result;
    }
  }

  // posix_spawn instead of fork: safe even if the test has started threads.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the target descriptor, so the child keeps exactly 0, 1 and 2.
  posix_spawn_file_actions_adddup2(&actions, in.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);

  std::string sh = "/bin/sh";
  std::string dash_c = "-c";
  std::string cmd = command;
  std::array<char*, 4> argv{sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = -1;
  const int spawn_err = ::posix_spawn(&pid, sh.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  out_write.reset();
  err_write.reset();
  if (spawn_err != 0) {
    result.error_output = errno_text("posix_spawn(/bin/sh)", spawn_err);
    return result;
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true;
  bool err_open = true;
  bool timed_out = false;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    std::array<pollfd, 2> fds{pollfd{out_open ? out_read.get() : -1, POLLIN, 0},
                              pollfd{err_open ? err_read.get() : -1, POLLIN, 0}};
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready < 0) {
      result.error_output += errno_text("poll", errno);
      timed_out = true;
      break;
    }
    if (out_open && fds[0].revents != 0) {
      out_open = drain(out_read.get(), result.output);
    }
    if (err_open && fds[1].revents != 0) {
      err_open = drain(err_read.get(), result.error_output);
    }
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      result.error_output += errno_text("waitpid", errno);
      return result;
    }
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  if (timed_out) {
    result.error_output +=
        "\n[run_command: killed after " + std::to_string(timeout.count()) + " ms: " + command + "]";
  }
  return result;
}

std::optional<std::string> apply_nft(const std::string& ruleset) {
  const CommandResult r = run_command("nft -f -", ruleset);
  if (r.exit_code == 0) {
    return std::nullopt;
  }
  return "nft -f - failed (exit " + std::to_string(r.exit_code) + "): " + r.error_output +
         r.output + "\nruleset:\n" + ruleset;
}

}  // namespace sockstate::testing

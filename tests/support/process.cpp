#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>

extern char** environ;

namespace sockstate::testing {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<BackgroundProcess> BackgroundProcess::start(const std::vector<std::string>& argv,
                                                          const std::vector<std::string>& env,
                                                          const std::string& stdout_path,
                                                          const std::string& stderr_path,
                                                          std::string* error) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  // The child starts with default signal handling and nothing blocked.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  // The caller's variables replace the inherited ones of the same name: under systemd,
  // nspawn or a CI runner NOTIFY_SOCKET is already set, and a second copy would lose to
  // the first in the child's getenv().
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view inherited(*e);
    const auto name = inherited.substr(0, inherited.find('=') + 1);
    const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& v) {
      return std::string_view(v).substr(0, v.find('=') + 1) == name;
    });
    if (!replaced) {
      env_strings.emplace_back(inherited);
    }
  }
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_strings) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) {
    argp.push_back(a.data());
  }
  argp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argp[0], &actions, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    *error = std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc);
    return std::nullopt;
  }
  return BackgroundProcess(pid);
}

BackgroundProcess::BackgroundProcess(BackgroundProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

bool BackgroundProcess::signal(int sig) const {
  return pid_ > 0 && ::kill(pid_, sig) == 0;
}

bool BackgroundProcess::running() {
  if (status_) {
    return false;
  }
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

std::optional<int> BackgroundProcess::wait(std::chrono::milliseconds timeout) {
  const std::int64_t deadline = now_ms() + timeout.count();
  while (running()) {
    if (now_ms() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

std::unique_ptr<NotifySocket> NotifySocket::create(std::string* error) {
  std::unique_ptr<NotifySocket> n(new NotifySocket());
  char dir[] = "/tmp/sockstate-notify-XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    *error = std::string("mkdtemp: ") + std::strerror(errno);
    return nullptr;
  }
  n->dir_ = dir;
  n->path_ = n->dir_ + "/notify";
  n->fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, n->path_.c_str(), sizeof addr.sun_path - 1);
  if (n->fd_.get() < 0 ||
      ::bind(n->fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = std::string("notify socket: ") + std::strerror(errno);
    return nullptr;
  }
  n->reader_ = std::thread([p = n.get()] { p->read_loop(); });
  return n;
}

void NotifySocket::read_loop() {
  std::array<char, 4096> buf{};
  while (!stop_) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) {
      continue;
    }
    for (ssize_t n; (n = ::recv(fd_.get(), buf.data(), buf.size(), 0)) > 0;) {
      const std::lock_guard lock(mutex_);
      messages_.emplace_back(buf.data(), static_cast<std::size_t>(n));
      arrived_.notify_all();
    }
  }
}

std::optional<std::string> NotifySocket::wait_for(const std::string& needle,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (;;) {
    for (; checked_ < messages_.size(); ++checked_) {
      if (messages_[checked_].find(needle) != std::string::npos) {
        return messages_[checked_++];
      }
    }
    if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout &&
        checked_ == messages_.size()) {
      return std::nullopt;
    }
  }
}

std::vector<std::string> NotifySocket::messages() const {
  const std::lock_guard lock(mutex_);
  return messages_;
}

NotifySocket::~NotifySocket() {
  stop_ = true;
  if (reader_.joinable()) {
    reader_.join();
  }
  ::unlink(path_.c_str());
  ::rmdir(dir_.c_str());
}

}  // namespace sockstate::testing

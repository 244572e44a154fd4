#include "sockstate/log/log.h"

#include <poll.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>

#include "sockstate/common/fd.h"

namespace sockstate::log {
namespace {

// A pipe takes a write of up to PIPE_BUF bytes whole or not at all; longer lines are cut
// to this so that a line is never half-written to a pipe.
constexpr std::size_t kMaxLine = 4000;

std::atomic<std::uint64_t> g_dropped{0};

class NonBlockingStderr final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  NonBlockingStderr() = default;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (!opened_) {
      // At the first line, not at setup: a process short of descriptors (RLIMIT_NOFILE)
      // keeps them for its work until it has something to say.
      out_ = nonblocking_output(STDERR_FILENO);
      struct stat st {};
      // A pipe that could not be opened again: write only when poll() says a line fits.
      poll_first_ =
          out_.fd >= 0 && !out_.own.valid() && ::fstat(out_.fd, &st) == 0 && S_ISFIFO(st.st_mode);
      opened_ = true;
    }
    if (out_.fd < 0) {
      g_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    if (reported_ != g_dropped.load(std::memory_order_relaxed)) {
      // The loss is said before the line that got through, once stderr takes lines again.
      const std::uint64_t lost = g_dropped.load(std::memory_order_relaxed);
      spdlog::memory_buf_t note;
      fmt::format_to(std::back_inserter(note),
                     "sockstate: warning: {} log line(s) dropped: stderr was not writable\n",
                     lost - reported_);
      if (!put({note.data(), note.size()})) {
        g_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      reported_ = lost;
    }
    if (!put({line.data(), line.size()})) {
      g_dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void flush_() override {}

 private:
  // One write() of one whole line (cut to kMaxLine, newline included), never a wait: true
  // when it all went out. A line a socket took only part of is ended by a newline in
  // front of the next line, so the next line starts on its own.
  bool put(std::string_view text) {
    std::array<char, kMaxLine + 1> buf;  // a newline first when the last line was cut
    std::size_t len = 0;
    if (cut_) {
      buf[len++] = '\n';
    }
    if (!text.empty() && text.back() == '\n') {
      text.remove_suffix(1);
    }
    const std::size_t body = std::min(text.size(), kMaxLine - 1);
    std::memcpy(buf.data() + len, text.data(), body);
    len += body;
    buf[len++] = '\n';
    ssize_t n = -1;
    do {
      n = write_some({buf.data(), len});
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      return false;  // nothing went out: the last line's state is unchanged
    }
    cut_ = static_cast<std::size_t>(n) < len;
    return !cut_;
  }

  ssize_t write_some(std::string_view text) {
    if (poll_first_) {
      // A pipe with a free slot takes a write of up to PIPE_BUF bytes without waiting.
      pollfd p{out_.fd, POLLOUT, 0};
      if (::poll(&p, 1, 0) != 1 || (p.revents & POLLOUT) == 0) {
        errno = EAGAIN;
        return -1;
      }
    }
    return out_.use_send ? ::send(out_.fd, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                         : ::write(out_.fd, text.data(), text.size());
  }

  NonBlockingOutput out_;
  bool opened_ = false;
  bool poll_first_ = false;
  bool cut_ = false;            // the last line went out in part: end it first
  std::uint64_t reported_ = 0;  // dropped lines already told about
};

}  // namespace

void setup(const std::string& level) {
  auto logger =
      std::make_shared<spdlog::logger>("sockstate", std::make_shared<NonBlockingStderr>());
  logger->set_pattern("%n: %l: %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

std::uint64_t dropped_lines() {
  return g_dropped.load(std::memory_order_relaxed);
}

}  // namespace sockstate::log

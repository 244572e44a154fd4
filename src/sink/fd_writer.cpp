// The stdout sink: records written to a descriptor the process already has.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "queued_sink.h"

namespace sockstate::sink::detail {
namespace {

class FdWriter final : public Writer {
 public:
  FdWriter(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

  Result<void> open() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      return errno_error(name_ + ": fstat");
    }
    out_ = fd_;
    if (S_ISSOCK(st.st_mode)) {
      // Under systemd, stdout is usually a stream socket to journald: MSG_DONTWAIT makes
      // one send non-blocking without touching the descriptor's flags.
      mode_ = Mode::kSend;
    } else if (S_ISFIFO(st.st_mode)) {
      // O_NONBLOCK on fd 1 itself would change the open file description the parent shell
      // and the reader share. Opening the pipe again through /proc gives this sink its own
      // description, which can be non-blocking, so a stalled reader cannot hold the worker
      // past stop()'s deadline. If /proc is not there, write blocking (stop() may then
      // wait for the reader).
      const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
      own_.reset(::open(proc.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
      if (own_.valid()) {
        out_ = own_.get();
      }
      mode_ = Mode::kWrite;
    } else {
      // A regular file, a terminal, /dev/null: writes do not wait on a reader.
      mode_ = Mode::kWrite;
    }
    return {};
  }

  Delivery write(std::string_view record, SinkCore& core) override {
    // One write() per record; a short write (pipes take records over PIPE_BUF in pieces)
    // is finished before the next record, so records never interleave. The only partial
    // line possible is the last one, when stop()'s deadline passes while a stalled reader
    // holds the rest of it.
    Error failure;
    switch (core.write_all(out_, record, mode_ == Mode::kSend, &failure)) {
      case SinkCore::WriteAll::kComplete:
        return Delivery::kWritten;
      case SinkCore::WriteAll::kStopped:
        return Delivery::kStopped;
      case SinkCore::WriteAll::kFailed:
        break;
    }
    core.count_error(Error{failure.errnum, "write " + name_});
    return Delivery::kDropped;
  }

  void close() override { own_.reset(); }

 private:
  enum class Mode { kWrite, kSend };

  const int fd_;  // not owned
  const std::string name_;
  Fd own_;        // our own description of a pipe, when we could open one
  int out_ = -1;  // what we write to: fd_ or own_
  Mode mode_ = Mode::kWrite;
};

}  // namespace

std::unique_ptr<Writer> make_fd_writer(int fd, std::string name) {
  return std::make_unique<FdWriter>(fd, std::move(name));
}

}  // namespace sockstate::sink::detail

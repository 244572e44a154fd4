// The stdout sink: records written to a descriptor the process already has.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "queued_sink.h"
#include "sockstate/sink/registry.h"

namespace sockstate::sink::detail {
namespace {

bool same_file(int a, int b) {
  struct stat sa {};
  struct stat sb {};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

class FdWriter final : public Writer {
 public:
  FdWriter(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

  Result<void> open() override {
    // Under systemd stdout is usually a stream socket to journald; from a shell, a pipe.
    // Either way the worker must not wait past stop()'s deadline on a stalled reader.
    out_ = nonblocking_output(fd_);
    if (out_.fd < 0) {
      return errno_error(name_ + ": fstat");
    }
    // A datagram or seqpacket socket takes each send() as one message, at most its send
    // buffer: records go one per message there. Streams and pipes take batches.
    int type = SOCK_STREAM;
    socklen_t len = sizeof type;
    if (out_.use_send && ::getsockopt(out_.fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
      type = SOCK_DGRAM;
    }
    // Where stderr is the same file (systemd gives both one journald stream; `2>&1`), a
    // log line written between two pieces of a long batch would cut a record: one record
    // per write() there, as a record of up to a few KiB goes out in one piece.
    batch_bytes_ = type == SOCK_STREAM && !same_file(out_.fd, STDERR_FILENO) ? kBatchBytes : 0;
    return {};
  }

  // Whole lines and nothing else: several records go in one write(). A record's fate is
  // its batch's: written when the whole batch is, dropped (counted) when the descriptor
  // fails partway, though the reader may have had the first lines (it is gone or broken).
  [[nodiscard]] std::size_t max_batch_bytes() const override { return batch_bytes_; }

  Delivery write(std::string_view record, SinkCore& core) override {
    // One write() per batch; a short write (pipes take more than PIPE_BUF in pieces) is
    // finished before the next batch, so records never interleave. The only partial line
    // possible is in the last batch, when stop()'s deadline passes while a stalled reader
    // holds the rest of it.
    Error failure;
    switch (core.write_all(out_.fd, record, out_.use_send, &failure)) {
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

  void close() override { out_.own.reset(); }

 private:
  // A pipe's default capacity: a reader (journald, a shipper) takes it in one read.
  static constexpr std::size_t kBatchBytes = std::size_t{64} * 1024;
  const int fd_;  // not owned
  const std::string name_;
  NonBlockingOutput out_;
  std::size_t batch_bytes_ = 0;
};

}  // namespace

// The stdout sink type: records to the descriptor the process was started with.
extern constexpr SinkKind kStdoutKind = {
    .type = SinkType::kStdout,
    .word = "stdout",
    // Two writers would interleave one stream.
    .at_most_one = true,
    .make =
        [](const SinkConfig& c, const SinkContext&) {
          return make_fd_sink(STDOUT_FILENO, sink_name(c), queue_limit(c));
        },
};

}  // namespace sockstate::sink::detail

namespace sockstate::sink {

std::unique_ptr<Sink> make_fd_sink(int fd, std::string name, QueueLimit limit) {
  auto writer = std::make_unique<detail::FdWriter>(fd, name);
  return std::make_unique<detail::QueuedSink>(std::move(name), limit, std::move(writer));
}

}  // namespace sockstate::sink

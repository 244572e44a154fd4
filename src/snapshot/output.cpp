#include "sockstate/snapshot/output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "sockstate/common/output_file.h"

namespace sockstate::snapshot {

RecordOutput::RecordOutput(int fd, std::size_t flush_threshold)
    : fd_(fd), threshold_(flush_threshold) {
  buffer_.reserve(flush_threshold + std::size_t{16} * 1024);
}

RecordOutput::RecordOutput(Fd owned, std::size_t flush_threshold)
    : owned_(std::move(owned)), fd_(owned_.get()), threshold_(flush_threshold) {
  buffer_.reserve(flush_threshold + std::size_t{16} * 1024);
}

Result<Fd> RecordOutput::open_file(const std::string& path) {
  auto out = open_output_file(path, 0640, OutputMode::kTruncate);
  if (!out) {
    return Error{out.error().errnum, "cannot open output file: " + out.error().context};
  }
  return std::move(out->fd);
}

Result<void> RecordOutput::commit() {
  if (!ok_) {
    return failed_;
  }
  if (buffer_.size() >= threshold_) {
    return flush();
  }
  return {};
}

Result<void> RecordOutput::flush() {
  if (!ok_) {
    return failed_;
  }
  std::size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      ok_ = false;
      failed_ = errno_error("cannot write records");
      buffer_.clear();
      return failed_;
    }
    done += static_cast<std::size_t>(n);
  }
  written_ += done;
  buffer_.clear();
  return {};
}

}  // namespace sockstate::snapshot

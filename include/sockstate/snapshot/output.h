#pragma once

#include <cstddef>
#include <string>

#include "sockstate/common/error.h"
#include "sockstate/common/fd.h"

namespace sockstate::snapshot {

// Buffered record output to a file descriptor. Records are appended whole to the buffer
// and the buffer is written whole (looping over short writes and EINTR), so a reader never
// sees part of a line unless the process dies mid-write. After an error every later call
// fails with the same error and nothing more is written.
class RecordOutput {
 public:
  // Does not own fd (stdout). Flushes when the buffer passes flush_threshold bytes.
  explicit RecordOutput(int fd, std::size_t flush_threshold = std::size_t{256} * 1024);
  // Owns fd (--output FILE).
  explicit RecordOutput(Fd owned, std::size_t flush_threshold = std::size_t{256} * 1024);

  // Opens FILE for --output: created 0640, truncated. O_APPEND is not used: a snapshot
  // is one document. Returns an Error naming the file.
  static Result<Fd> open_file(const std::string& path);

  // The buffer to append one complete record (ending in '\n') to; then call commit().
  std::string& buffer() { return buffer_; }
  Result<void> commit();
  Result<void> flush();

  [[nodiscard]] std::size_t bytes_written() const { return written_; }

 private:
  Fd owned_;
  int fd_;
  std::size_t threshold_;
  std::string buffer_;
  std::size_t written_ = 0;
  Error failed_;
  bool ok_ = true;
};

}  // namespace sockstate::snapshot

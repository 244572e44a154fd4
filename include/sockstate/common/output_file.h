#pragma once

#include <sys/types.h>

#include <string>

#include "sockstate/common/error.h"
#include "sockstate/common/fd.h"

namespace sockstate {

// An output file opened the one safe way, for `snapshot --output` and the file sink:
// never through a symbolic link in its last component (O_NOFOLLOW: a link planted in a
// 1777 directory is refused), never blocking on a FIFO (opened O_NONBLOCK, then refused:
// only regular files), never an existing file another user owns or that every user may
// write. A file that does not exist is created with exactly `mode` (O_EXCL; fchmod, not
// the umask), and `created` says so. The descriptor is blocking, O_CLOEXEC.
struct OutputFile {
  Fd fd;
  bool created = false;
  off_t size = 0;  // of the existing file (after truncation: 0)
};

enum class OutputMode { kAppend, kTruncate };

Result<OutputFile> open_output_file(const std::string& path, mode_t mode, OutputMode how);

}  // namespace sockstate

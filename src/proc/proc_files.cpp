#include "proc_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "sockstate/common/fd.h"

namespace sockstate::proc::detail {

std::int32_t parse_pid(const char* name) {
  std::int32_t pid = 0;
  const char* end = name + std::strlen(name);
  auto [ptr, ec] = std::from_chars(name, end, pid);
  if (ec != std::errc() || ptr != end || name == end || pid <= 0) {
    return -1;
  }
  return pid;
}

int read_at(int dir_fd, const char* name, std::size_t cap, std::vector<char>& buf) {
  buf.resize(cap);
  Fd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    buf.clear();
    return errno;
  }
  std::size_t len = 0;
  // seq_file and cmdline hand out at most a page per read(): loop to the cap or EOF.
  while (len < cap) {
    const ssize_t n = ::read(fd.get(), buf.data() + len, cap - len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int err = errno;
      buf.clear();
      return err;
    }
    if (n == 0) {
      break;
    }
    len += static_cast<std::size_t>(n);
  }
  buf.resize(len);
  return 0;
}

}  // namespace sockstate::proc::detail

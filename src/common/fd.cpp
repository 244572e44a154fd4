#include "sockstate/common/fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace sockstate {

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset(other.release());
  }
  return *this;
}

int Fd::release() {
  return std::exchange(fd_, -1);
}

void Fd::reset(int fd) {
  if (fd_ >= 0) {
    // close() is not retried on EINTR: on Linux the descriptor is gone either way.
    ::close(fd_);
  }
  fd_ = fd;
}

NonBlockingOutput nonblocking_output(int fd) {
  NonBlockingOutput out;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return out;
  }
  out.fd = fd;
  if (S_ISSOCK(st.st_mode)) {
    out.use_send = true;
  } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    out.own.reset(::open(proc.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (out.own.valid()) {
      out.fd = out.own.get();
    }
  }
  return out;
}

}  // namespace sockstate

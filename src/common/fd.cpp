#include "sockstate/common/fd.h"

#include <unistd.h>

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

}  // namespace sockstate

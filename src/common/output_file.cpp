#include "sockstate/common/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace sockstate {
namespace {

Result<void> check_existing(const std::string& path, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return errno_error("fstat " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error{0, path + ": not a regular file; refused"};
  }
  if (st.st_uid != ::geteuid()) {
    return Error{0,
                 path + ": owned by another user (uid " + std::to_string(st.st_uid) + "); refused"};
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return Error{0, path + ": writable by every user; refused (chmod o-w)"};
  }
  return {};
}

Result<void> make_blocking(const std::string& path, int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return errno_error("fcntl " + path);
  }
  return {};
}

}  // namespace

Result<OutputFile> open_output_file(const std::string& path, mode_t mode, OutputMode how) {
  const int base = O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK |
                   (how == OutputMode::kAppend ? O_APPEND : 0);
  for (int attempt = 0; attempt < 8; ++attempt) {
    OutputFile out;
    out.fd.reset(::open(path.c_str(), base));
    if (out.fd.valid()) {
      if (auto ok = check_existing(path, out.fd.get()); !ok) {
        return ok.error();
      }
      if (how == OutputMode::kTruncate && ::ftruncate(out.fd.get(), 0) != 0) {
        return errno_error("truncate " + path);
      }
      struct stat st {};
      out.size = ::fstat(out.fd.get(), &st) == 0 ? st.st_size : 0;
    } else if (errno == ELOOP) {
      return Error{ELOOP, path + ": a symbolic link; refused"};
    } else if (errno == ENXIO) {
      return Error{0, path + ": a FIFO with no reader; refused (not a regular file)"};
    } else if (errno != ENOENT) {
      return errno_error("open " + path);
    } else {
      // O_EXCL tells us we created it; EEXIST means someone else just did: look again.
      out.fd.reset(::open(path.c_str(), base | O_CREAT | O_EXCL, mode));
      if (!out.fd.valid()) {
        if (errno == EEXIST) {
          continue;
        }
        return errno_error("create " + path);
      }
      out.created = true;
      if (::fchmod(out.fd.get(), mode) != 0) {
        ::unlink(path.c_str());
        return errno_error("chmod " + path);
      }
    }
    if (auto ok = make_blocking(path, out.fd.get()); !ok) {
      return ok.error();
    }
    return out;
  }
  return Error{0, "open " + path + ": the file keeps being created and removed"};
}

}  // namespace sockstate

// Linked into every test binary: the soft RLIMIT_NOFILE goes up to the hard one before any
// test runs. Debian's soft default is 1,024 (a login shell, a systemd service, a container),
// and tests that hold thousands of sockets would fail there for a reason that is not
// theirs. Raising the soft limit up to the hard one needs no privilege; the children the
// tests start (the daemon, snapshot) inherit it.
#include <sys/resource.h>

namespace {

[[maybe_unused]] const bool kRaised = [] {
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur >= nofile.rlim_max) {
    return false;
  }
  nofile.rlim_cur = nofile.rlim_max;
  return ::setrlimit(RLIMIT_NOFILE, &nofile) == 0;
}();

}  // namespace

#include "sockstate/ocsf/host.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace sockstate::ocsf {
namespace {

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) {
    std::getline(in, line);
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
    line.pop_back();
  }
  return line;
}

std::string join(const std::string& root, const char* path) {
  if (root.empty() || root == "/") {
    return path;
  }
  return (root.back() == '/' ? root.substr(0, root.size() - 1) : root) + path;
}

}  // namespace

HostIdentity read_host_identity(const std::string& root) {
  HostIdentity id;
  id.hostname = first_line(join(root, "/proc/sys/kernel/hostname"));
  id.machine_id = first_line(join(root, "/etc/machine-id"));
  if (id.machine_id.empty()) {
    // Older and minimal systems keep only D-Bus's copy.
    id.machine_id = first_line(join(root, "/var/lib/dbus/machine-id"));
  }
  id.boot_id = first_line(join(root, "/proc/sys/kernel/random/boot_id"));
  id.kernel_release = first_line(join(root, "/proc/sys/kernel/osrelease"));
  return id;
}

std::uint64_t read_netns_inode(const std::string& root) {
  struct stat st {};
  if (::stat(join(root, "/proc/self/ns/net").c_str(), &st) != 0) {
    return 0;
  }
  return st.st_ino;
}

}  // namespace sockstate::ocsf

#include "sockstate/proc/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "sockstate/common/fd.h"
#include "sockstate/proc/socket_owners.h"

namespace sockstate::proc {

constexpr std::size_t kMaxContainerNameBytes = 128;
namespace {

constexpr std::size_t kContainerIdLength = 64;

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_container_id(std::string_view s) {
  return s.size() == kContainerIdLength && is_hex(s);
}

bool remove_prefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) {
    return false;
  }
  s.remove_prefix(prefix.size());
  return true;
}

bool remove_suffix(std::string_view& s, std::string_view suffix) {
  if (s.size() < suffix.size() || s.substr(s.size() - suffix.size()) != suffix) {
    return false;
  }
  s.remove_suffix(suffix.size());
  return true;
}

// "<prefix><64 hex>.scope" -> the id; empty otherwise.
std::string_view scope_id(std::string_view component, std::string_view prefix) {
  if (!remove_prefix(component, prefix) || !remove_suffix(component, ".scope") ||
      !is_container_id(component)) {
    return {};
  }
  return component;
}

// A pod UID as the kubelet writes it in cgroup names: "pod" + UUID, with '_' for '-'
// under the systemd driver. Returns the UUID with '-', or empty.
std::string pod_uuid_of(std::string_view component) {
  remove_suffix(component, ".slice");
  const auto at = component.rfind("pod");
  if (at == std::string_view::npos) {
    return {};
  }
  // "pod<uid>" alone (cgroupfs) or "kubepods[-<qos>]-pod<uid>" (systemd).
  if (at != 0 && component.substr(0, 8) != "kubepods") {
    return {};
  }
  std::string uuid(component.substr(at + 3));
  std::replace(uuid.begin(), uuid.end(), '_', '-');
  static constexpr std::size_t kUuidLength = 36;
  if (uuid.size() != kUuidLength) {
    return {};
  }
  for (std::size_t i = 0; i < uuid.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = uuid[i];
    if (dash ? c != '-' : !is_hex(std::string_view(&c, 1))) {
      return {};
    }
  }
  return uuid;
}

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    const auto slash = path.find('/');
    const auto part = path.substr(0, slash);
    if (!part.empty()) {
      out.push_back(part);
    }
    if (slash == std::string_view::npos) {
      break;
    }
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_unit_name(std::string_view s) {
  static constexpr std::string_view kSuffixes[] = {".service", ".scope",    ".socket", ".mount",
                                                   ".swap",    ".target",   ".timer",  ".path",
                                                   ".device",  ".automount"};
  return std::any_of(std::begin(kSuffixes), std::end(kSuffixes), [s](std::string_view suffix) {
    return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
  });
}

}  // namespace

std::optional<Container> container_from_cgroup(std::string_view path) {
  std::optional<Container> found;
  std::string pod;
  const auto parts = components(path);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    if (auto uuid = pod_uuid_of(part); !uuid.empty()) {
      pod = std::move(uuid);
      continue;
    }
    Container c;
    std::string_view id;
    if (!(id = scope_id(part, "docker-")).empty()) {
      c.runtime = "docker";
    } else if (!(id = scope_id(part, "cri-containerd-")).empty()) {
      c.runtime = "containerd";
    } else if (!(id = scope_id(part, "crio-")).empty()) {
      c.runtime = "cri-o";
    } else if (!(id = scope_id(part, "libpod-")).empty()) {
      c.runtime = "podman";
    } else if (is_container_id(part) && i > 0 && parts[i - 1] == "docker") {
      id = part;
      c.runtime = "docker";
    } else if (is_container_id(part) && !pod.empty()) {
      id = part;  // cgroupfs driver: /kubepods/<qos>/pod<uid>/<id>, runtime not named
    } else if (std::string_view name = part; remove_prefix(name, "lxc.payload.") && !name.empty()) {
      c.runtime = "lxc";
      // LXC names are host names (at most 64 bytes in practice); the bound keeps a
      // record with the name twice (endpoint and process) well under 8 KiB.
      c.name = sanitize_text(name, kMaxContainerNameBytes, nullptr);
    } else {
      continue;
    }
    c.uid = std::string(id);
    if (!pod.empty()) {
      c.orchestrator = "Kubernetes";
      c.pod_uuid = pod;
    }
    found = std::move(c);
  }
  return found;
}

std::string systemd_unit_from_cgroup(std::string_view path) {
  for (const std::string_view part : components(path)) {
    if (part.size() > 6 && part.substr(part.size() - 6) == ".slice") {
      continue;
    }
    return is_unit_name(part) ? std::string(part) : std::string();
  }
  return {};
}

std::string cgroup2_path_from_proc(std::string_view text) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (remove_prefix(line, "0::")) {
      return std::string(line);
    }
    if (nl == std::string_view::npos) {
      break;
    }
    text.remove_prefix(nl + 1);
  }
  return {};
}

std::string find_cgroup2_mount(const std::string& mountinfo) {
  std::ifstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    // "36 25 0:31 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw,..."
    const auto dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) {
      continue;
    }
    std::size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string::npos; ++field) {
      pos = line.find(' ', pos + (field == 0 ? 0 : 1));
    }
    if (pos == std::string::npos) {
      continue;
    }
    const auto end = line.find(' ', pos + 1);
    return line.substr(pos + 1, end - pos - 1);
  }
  return {};
}

CgroupResolver::CgroupResolver(std::string root) : root_(std::move(root)) {
  if (root_.empty()) {
    root_ = find_cgroup2_mount();
  }
  if (!root_.empty()) {
    root_fd_.reset(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
}

// The path below root_ of the cgroup whose kernfs handle is `id`: nullopt when the kernel
// will not say (EPERM without CAP_DAC_READ_SEARCH, ESTALE once it is removed) or when it
// is not below our mount of the hierarchy (outside our cgroup namespace).
std::optional<std::string> CgroupResolver::path_by_handle(std::uint64_t id) const {
  if (!root_fd_.valid()) {
    return std::nullopt;
  }
  constexpr int kFileIdKernfs = 0xfe;  // FILEID_KERNFS: the handle is the 64-bit id
  // A file_handle is a header and its bytes: built in an aligned buffer of both.
  alignas(file_handle) std::array<unsigned char, sizeof(file_handle) + sizeof id> buf{};
  auto* handle = reinterpret_cast<file_handle*>(buf.data());
  handle->handle_bytes = sizeof id;
  handle->handle_type = kFileIdKernfs;
  std::memcpy(buf.data() + sizeof(file_handle), &id, sizeof id);
  const Fd dir(::open_by_handle_at(root_fd_.get(), handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    return std::nullopt;
  }
  std::array<char, 4096> link{};
  const std::string self = "/proc/self/fd/" + std::to_string(dir.get());
  const ssize_t n = ::readlink(self.c_str(), link.data(), link.size());
  if (n <= 0 || static_cast<std::size_t>(n) >= link.size()) {
    return std::nullopt;
  }
  const std::string_view path(link.data(), static_cast<std::size_t>(n));
  if (path == root_) {
    return std::string("/");
  }
  if (!path.starts_with(root_ + "/") || path.ends_with(" (deleted)")) {
    return std::nullopt;
  }
  return std::string(path.substr(root_.size()));
}

namespace {

CgroupInfo cgroup_info(const std::string& rel) {
  CgroupInfo info;
  info.path = sanitize_text(rel, kMaxCgroupPathBytes, nullptr);
  info.unit = systemd_unit_from_cgroup(rel);
  info.container = container_from_cgroup(rel);
  return info;
}

}  // namespace

const CgroupInfo* CgroupResolver::resolve(std::uint64_t id) {
  if (root_.empty() || id == 0) {
    return nullptr;
  }
  auto it = by_id_.find(id);
  if (it != by_id_.end()) {
    return &it->second;
  }
  if (unresolved_.count(id) != 0) {
    return nullptr;
  }
  if (auto rel = path_by_handle(id)) {
    ++stats_.by_handle;
    return &by_id_.insert_or_assign(id, cgroup_info(*rel)).first->second;
  }
  walk();
  it = by_id_.find(id);
  if (it == by_id_.end()) {
    unresolved_.insert(id);
    stats_.unresolved = unresolved_.size();
    return nullptr;
  }
  return &it->second;
}

void CgroupResolver::walk() {
  ++stats_.walks;
  by_id_.clear();
  std::uint64_t seen = 0;
  // Iterative, one open directory at a time: a deep tree cannot run us out of fds.
  std::vector<std::string> pending{"/"};
  while (!pending.empty()) {
    const std::string rel = std::move(pending.back());
    pending.pop_back();
    const std::string full = rel == "/" ? root_ : root_ + rel;
    Fd dir_fd(::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat st {};
    if (!dir_fd.valid() || ::fstat(dir_fd.get(), &st) != 0) {
      ++stats_.errors;
      continue;
    }
    ++seen;
    by_id_.insert_or_assign(static_cast<std::uint64_t>(st.st_ino), cgroup_info(rel));
    DIR* dir = ::fdopendir(dir_fd.release());
    if (dir == nullptr) {
      ++stats_.errors;
      continue;
    }
    while (const dirent* d = ::readdir(dir)) {
      const std::string_view name(d->d_name);
      if (d->d_type != DT_DIR || name == "." || name == "..") {
        continue;
      }
      pending.push_back((rel == "/" ? std::string() : rel) + "/" + std::string(name));
    }
    ::closedir(dir);
  }
  stats_.cgroups = seen;
}

}  // namespace sockstate::proc

#include "sockstate/collect/host.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include <array>
#include <ctime>
#include <fstream>

#include "sockstate/netlink/rtnetlink.h"
#include "sockstate/netlink/socket.h"

namespace sockstate::collect {
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

std::string app_specific_machine_id() {
  sd_id128_t app{};
  sd_id128_t id{};
  if (sd_id128_from_string(kAppId, &app) < 0 || sd_id128_get_machine_app_specific(app, &id) < 0) {
    return {};
  }
  std::array<char, SD_ID128_STRING_MAX> text{};
  return sd_id128_to_string(id, text.data());
}

}  // namespace

flow::HostIdentity read_host_identity(const std::string& root) {
  flow::HostIdentity id;
  id.hostname = first_line(join(root, "/proc/sys/kernel/hostname"));
  if (root.empty() || root == "/") {
    id.device_uid = app_specific_machine_id();
  }
  id.boot_id = first_line(join(root, "/proc/sys/kernel/random/boot_id"));
  id.kernel_release = first_line(join(root, "/proc/sys/kernel/osrelease"));
  return id;
}

std::string default_route_source() {
  auto sock = netlink::NetlinkSocket::open(0, NETLINK_ROUTE);
  if (!sock) {
    return {};
  }
  for (const int family : {AF_INET, AF_INET6}) {
    auto route = netlink::default_route(*sock, static_cast<std::uint8_t>(family));
    if (!route || !*route) {
      continue;
    }
    std::optional<netlink::IfAddress> source = (*route)->prefsrc;
    if (!source && (*route)->gateway) {
      // The source the kernel picks towards the gateway is the one the route uses.
      auto picked = netlink::route_source(*sock, *(*route)->gateway);
      if (picked && *picked) {
        source = **picked;
      }
    }
    std::array<char, INET6_ADDRSTRLEN> buf{};
    if (source && ::inet_ntop(family, source->addr.data(), buf.data(), buf.size()) != nullptr) {
      return buf.data();
    }
  }
  return {};
}

std::uint64_t read_netns_inode(const std::string& root) {
  struct stat st {};
  if (::stat(join(root, "/proc/self/ns/net").c_str(), &st) != 0) {
    return 0;
  }
  return st.st_ino;
}

void read_ephemeral_range(flow::ListenerTable& table, const std::string& root) {
  std::ifstream in(join(root, "/proc/sys/net/ipv4/ip_local_port_range"));
  unsigned low = 0;
  unsigned high = 0;
  if (in >> low >> high && low > 0 && low <= high && high <= 65535) {
    table.set_ephemeral_range(static_cast<std::uint16_t>(low), static_cast<std::uint16_t>(high));
  }
}

std::uint64_t random_run_id() {
  std::uint64_t id = 0;
  if (::getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) {
    // No entropy source: time and pid still make runs distinct on one host.
    constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15U;
    const auto ms = static_cast<std::uint64_t>(realtime_ms());
    const auto pid = static_cast<std::uint64_t>(::getpid());
    id = (ms * kGolden) ^ pid;
  }
  return id;
}

namespace {

std::int64_t clock_ms(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

std::int64_t realtime_ms() {
  return clock_ms(CLOCK_REALTIME);
}
std::int64_t monotonic_ms() {
  return clock_ms(CLOCK_MONOTONIC);
}

std::int32_t TimezoneOffset::at(std::int64_t time_ms) {
  constexpr std::int64_t kSlotMs = std::int64_t{15} * 60 * 1000;
  const std::int64_t slot = time_ms / kSlotMs;
  if (slot != slot_) {
    const std::time_t t = static_cast<std::time_t>(time_ms / 1000);
    std::tm local{};
    ::localtime_r(&t, &local);
    offset_ = static_cast<std::int32_t>(local.tm_gmtoff / 60);
    slot_ = slot;
  }
  return offset_;
}

}  // namespace sockstate::collect

#include "sockstate/proc/users.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <string_view>
#include <vector>

namespace sockstate::proc {
namespace {

// OCSF user type_id values.
constexpr int kUserType = 1;
constexpr int kAdminType = 2;
constexpr int kSystemType = 3;

std::uint32_t read_uid_min(const std::string& root) {
  std::ifstream in((root == "/" ? std::string() : root) + "/etc/login.defs");
  for (std::string line; std::getline(in, line);) {
    std::string_view s(line);
    const auto start = s.find_first_not_of(" \t");
    if (start == std::string_view::npos || s.substr(start, 7) != "UID_MIN") {
      continue;
    }
    s.remove_prefix(start + 7);
    const auto digits = s.find_first_not_of(" \t");
    if (digits == std::string_view::npos || digits == 0) {
      continue;  // UID_MINX, or no value
    }
    s.remove_prefix(digits);
    std::uint32_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc() && value > 0) {
      return value;
    }
  }
  return 1000;
}

}  // namespace

std::string passwd_name(std::uint32_t uid) {
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 1024);
  for (;;) {
    passwd pw{};
    passwd* found = nullptr;
    const int rc = ::getpwuid_r(static_cast<uid_t>(uid), &pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < std::size_t{1024} * 1024) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr || pw.pw_name == nullptr) {
      return {};
    }
    return pw.pw_name;
  }
}

UserDirectory::UserDirectory(const std::string& root, NameOf name_of)
    : name_of_(std::move(name_of)), first_uid_(read_uid_min(root)) {}

const UserInfo& UserDirectory::lookup(std::uint32_t uid) {
  auto it = cache_.find(uid);
  if (it == cache_.end()) {
    UserInfo u;
    u.uid = uid;
    u.name = name_of_ ? name_of_(uid) : passwd_name(uid);
    u.type_id = uid == 0 ? kAdminType : uid < first_uid_ ? kSystemType : kUserType;
    it = cache_.emplace(uid, std::move(u)).first;
  }
  return it->second;
}

}  // namespace sockstate::proc

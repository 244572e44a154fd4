#include "sockstate/proc/users.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <optional>
#include <string_view>
#include <vector>

namespace sockstate::proc {
namespace {

// OCSF user type_id values.
constexpr int kUserType = 1;
constexpr int kAdminType = 2;
constexpr int kSystemType = 3;

// The value of `key` in login.defs text, if it is set to a positive number.
std::optional<std::uint32_t> login_defs_value(std::string_view line, std::string_view key) {
  const auto start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos || line.substr(start, key.size()) != key) {
    return std::nullopt;
  }
  line.remove_prefix(start + key.size());
  const auto digits = line.find_first_not_of(" \t");
  if (digits == std::string_view::npos || digits == 0) {
    return std::nullopt;  // UID_MINX, or no value
  }
  line.remove_prefix(digits);
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
  if (ec != std::errc() || value == 0) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

UserIdRange read_user_id_range(const std::string& root) {
  UserIdRange range;
  std::ifstream in((root == "/" ? std::string() : root) + "/etc/login.defs");
  for (std::string line; std::getline(in, line);) {
    if (auto v = login_defs_value(line, "UID_MIN")) {
      range.first = *v;
    } else if (auto w = login_defs_value(line, "UID_MAX")) {
      range.last = *w;
    }
  }
  return range;
}

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
    : name_of_(std::move(name_of)), range_(read_user_id_range(root)) {}

const UserInfo& UserDirectory::lookup(std::uint32_t uid) {
  auto it = cache_.find(uid);
  if (it == cache_.end()) {
    UserInfo u;
    u.uid = uid;
    u.name = name_of_ ? name_of_(uid) : passwd_name(uid);
    const bool regular = uid >= range_.first && uid <= range_.last;
    u.type_id = uid == 0 ? kAdminType : regular ? kUserType : kSystemType;
    it = cache_.emplace(uid, std::move(u)).first;
  }
  return it->second;
}

}  // namespace sockstate::proc

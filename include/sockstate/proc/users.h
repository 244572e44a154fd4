#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

namespace sockstate::proc {

// A user as OCSF `user` wants it: uid as text, name, and type_id (2 Admin for uid 0,
// 1 User within the host's range of regular user ids, 3 System outside it: `nobody`,
// 65534, is above UID_MAX).
struct UserInfo {
  std::uint32_t uid = 0;
  std::string name;  // "" when the user database has none
  int type_id = 0;
};

// The uid's passwd name (getpwuid_r), "" when it has none.
std::string passwd_name(std::uint32_t uid);

// The regular user ids: UID_MIN..UID_MAX of login.defs(5), as useradd(8) reads them
// (1000..60000 when absent).
struct UserIdRange {
  std::uint32_t first = 1000;
  std::uint32_t last = 60000;
};
UserIdRange read_user_id_range(const std::string& root);

// uid -> UserInfo, each uid looked up once, typed by the range `root`/etc/login.defs gives.
class UserDirectory {
 public:
  using NameOf = std::function<std::string(std::uint32_t)>;
  explicit UserDirectory(const std::string& root = "/", NameOf name_of = {});

  const UserInfo& lookup(std::uint32_t uid);
  [[nodiscard]] const UserIdRange& regular_ids() const { return range_; }

 private:
  NameOf name_of_;
  UserIdRange range_;
  std::unordered_map<std::uint32_t, UserInfo> cache_;
};

}  // namespace sockstate::proc

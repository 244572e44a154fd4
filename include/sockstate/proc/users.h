#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

namespace sockstate::proc {

// A user as OCSF `user` wants it: uid as text, name, and type_id (2 Admin for uid 0,
// 3 System below the host's first user id, 1 User from it on).
struct UserInfo {
  std::uint32_t uid = 0;
  std::string name;  // "" when the user database has none
  int type_id = 0;
};

// The uid's passwd name (getpwuid_r), "" when it has none.
std::string passwd_name(std::uint32_t uid);

// uid -> UserInfo, each uid looked up once. The first user id is UID_MIN from
// `root`/etc/login.defs (1000 when absent), as useradd(8) reads it.
class UserDirectory {
 public:
  using NameOf = std::function<std::string(std::uint32_t)>;
  explicit UserDirectory(const std::string& root = "/", NameOf name_of = {});

  const UserInfo& lookup(std::uint32_t uid);
  [[nodiscard]] std::uint32_t first_user_id() const { return first_uid_; }

 private:
  NameOf name_of_;
  std::uint32_t first_uid_ = 1000;
  std::unordered_map<std::uint32_t, UserInfo> cache_;
};

}  // namespace sockstate::proc

#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sockstate::netlink {

// Socket cookies already delivered (a dump is not atomic: a socket can be seen twice).
// An open-addressing set of 64-bit integers, linear probing, at most three quarters full:
// 11 to 21 bytes per cookie, where std::unordered_set takes about 40 (a 32-byte heap node and a
// bucket), 5 MB of a 126,000-socket snapshot's 12. No Debian library offers a flat set of
// integers that small (tsl::robin_set stores 16 bytes per slot; abseil is a large
// dependency for one container).
class CookieSet {
 public:
  // True when `cookie` was not in the set (it is now).
  bool insert(std::uint64_t cookie);
  [[nodiscard]] bool contains(std::uint64_t cookie) const;
  [[nodiscard]] std::size_t size() const { return size_ + (has_zero_ ? 1 : 0); }
  void clear();
  // Room for `n` cookies without growing (each growth holds the old table and the new).
  void reserve(std::size_t n);

 private:
  [[nodiscard]] std::size_t slot_of(std::uint64_t cookie) const;
  void grow();
  void rehash(std::size_t slots);

  std::vector<std::uint64_t> slots_;  // 0: empty; a power of two in size
  std::size_t size_ = 0;              // non-zero cookies held
  bool has_zero_ = false;             // cookie 0 is held apart (it marks an empty slot)
};

}  // namespace sockstate::netlink

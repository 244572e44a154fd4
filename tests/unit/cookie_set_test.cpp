#include "sockstate/netlink/cookie_set.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_set>

namespace sockstate::netlink {
namespace {

TEST(CookieSet, InsertSaysWhetherTheCookieIsNew) {
  CookieSet set;
  EXPECT_FALSE(set.contains(42));
  EXPECT_TRUE(set.insert(42));
  EXPECT_FALSE(set.insert(42));
  EXPECT_TRUE(set.contains(42));
  EXPECT_FALSE(set.contains(43));
  EXPECT_EQ(set.size(), 1U);
}

TEST(CookieSet, ZeroIsACookieLikeAnyOther) {
  CookieSet set;
  EXPECT_FALSE(set.contains(0));
  EXPECT_TRUE(set.insert(0));
  EXPECT_FALSE(set.insert(0));
  EXPECT_TRUE(set.contains(0));
  EXPECT_TRUE(set.insert(1));
  EXPECT_EQ(set.size(), 2U);
  set.clear();
  EXPECT_FALSE(set.contains(0));
  EXPECT_FALSE(set.contains(1));
  EXPECT_EQ(set.size(), 0U);
}

TEST(CookieSet, ReservedRoomHoldsWhatWasThereAndMore) {
  CookieSet set;
  EXPECT_TRUE(set.insert(5));
  set.reserve(100000);
  EXPECT_TRUE(set.contains(5));
  for (std::uint64_t c = 1; c <= 100000; ++c) {
    EXPECT_EQ(set.insert(c), c != 5) << c;
  }
  EXPECT_EQ(set.size(), 100000U);
  set.reserve(10);  // never shrinks what it holds
  EXPECT_TRUE(set.contains(99999));
}

// Through many growths, with consecutive cookies (what the kernel hands out), colliding
// ones and random ones, the set agrees with std::unordered_set on every question.
TEST(CookieSet, AgreesWithTheStandardSetThroughGrowth) {
  CookieSet set;
  std::unordered_set<std::uint64_t> reference;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300000; ++i) {
    std::uint64_t cookie = 0;
    switch (i % 3) {
      case 0:
        cookie = 1000000 + static_cast<std::uint64_t>(i);
        break;
      case 1:
        cookie = (rng() % 5000) << 32;  // same low half: collides in a naive hash
        break;
      default:
        cookie = rng();
        break;
    }
    ASSERT_EQ(set.insert(cookie), reference.insert(cookie).second) << cookie;
  }
  EXPECT_EQ(set.size(), reference.size());
  for (const std::uint64_t cookie : reference) {
    ASSERT_TRUE(set.contains(cookie)) << cookie;
  }
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t probe = rng();
    EXPECT_EQ(set.contains(probe), reference.count(probe) == 1) << probe;
  }
}

}  // namespace
}  // namespace sockstate::netlink

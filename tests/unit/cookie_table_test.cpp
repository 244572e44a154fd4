#include "sockstate/tracking/cookie_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace sockstate::tracking {
namespace {

struct Entry {
  std::uint64_t cookie = 0;
  std::uint64_t value = 0;
};
std::uint64_t key_of(const Entry& e) {
  return e.cookie;
}
using Table = CookieTable<Entry, &key_of>;

TEST(CookieTable, FindsWhatWasInsertedAndForgetsWhatWasErased) {
  Table t;
  EXPECT_EQ(t.find(7), nullptr);
  EXPECT_FALSE(t.erase(7));
  t.insert_or_assign(7, {7, 70});
  t.insert_or_assign(8, {8, 80});
  ASSERT_NE(t.find(7), nullptr);
  EXPECT_EQ(t.find(7)->value, 70U);
  t.insert_or_assign(7, {7, 71});  // assigns: still one entry
  EXPECT_EQ(t.size(), 2U);
  EXPECT_EQ(t.find(7)->value, 71U);
  EXPECT_TRUE(t.erase(7));
  EXPECT_FALSE(t.erase(7));
  EXPECT_EQ(t.find(7), nullptr);
  EXPECT_EQ(t.find(8)->value, 80U);
  EXPECT_EQ(t.size(), 1U);
}

// Cookies that share their low 32 bits share a tag: the entry's own cookie tells them apart.
TEST(CookieTable, CookiesSharingTheirLowBitsAreDifferentKeys) {
  Table t;
  const std::uint64_t a = 0x1'0000'0005;
  const std::uint64_t b = 0x2'0000'0005;
  const std::uint64_t c = 0x5;
  t.insert_or_assign(a, {a, 1});
  t.insert_or_assign(b, {b, 2});
  EXPECT_EQ(t.find(c), nullptr);
  t.insert_or_assign(c, {c, 3});
  EXPECT_EQ(t.find(a)->value, 1U);
  EXPECT_EQ(t.find(b)->value, 2U);
  EXPECT_EQ(t.find(c)->value, 3U);
  EXPECT_TRUE(t.erase(b));
  EXPECT_EQ(t.find(a)->value, 1U);
  EXPECT_EQ(t.find(b), nullptr);
  EXPECT_EQ(t.find(c)->value, 3U);
}

// An entry stays where it is while others come and go (the tracker holds references).
TEST(CookieTable, EntriesDoNotMoveWhenTheTableGrows) {
  Table t;
  Entry* first = &t.insert_or_assign(1, {1, 10});
  for (std::uint64_t c = 2; c < 50'000; ++c) {
    t.insert_or_assign(c, {c, c * 10});
  }
  EXPECT_EQ(t.find(1), first);
  EXPECT_EQ(first->value, 10U);
}

// Against std::unordered_map: random inserts and erases over a key space with many shared
// tags and long probe runs, every key looked up after each phase, and for_each visiting
// each entry once.
TEST(CookieTable, AgreesWithUnorderedMapUnderRandomInsertAndErase) {
  Table t;
  std::unordered_map<std::uint64_t, std::uint64_t> ref;
  std::mt19937_64 rng(12345);
  std::vector<std::uint64_t> keys;
  for (std::uint64_t i = 0; i < 3000; ++i) {
    keys.push_back(i + 1);                      // consecutive cookies, as the kernel's
    keys.push_back((i % 300) << 32 | (i + 1));  // same tags as those
  }
  for (int phase = 0; phase < 20; ++phase) {
    for (int op = 0; op < 4000; ++op) {
      const std::uint64_t k = keys[rng() % keys.size()];
      if (rng() % 3 == 0) {
        EXPECT_EQ(t.erase(k), ref.erase(k) == 1) << k;
      } else {
        const std::uint64_t v = rng();
        t.insert_or_assign(k, {k, v});
        ref[k] = v;
      }
    }
    ASSERT_EQ(t.size(), ref.size());
    for (const std::uint64_t k : keys) {
      const Entry* e = t.find(k);
      const auto it = ref.find(k);
      ASSERT_EQ(e != nullptr, it != ref.end()) << "phase " << phase << " key " << k;
      if (e != nullptr) {
        EXPECT_EQ(e->value, it->second);
      }
    }
    std::unordered_map<std::uint64_t, int> visits;
    t.for_each([&visits](const Entry& e) { ++visits[e.cookie]; });
    EXPECT_EQ(visits.size(), ref.size());
    for (const auto& [k, n] : visits) {
      EXPECT_EQ(n, 1) << k;
      EXPECT_TRUE(ref.contains(k)) << k;
    }
  }
}

TEST(CookieTable, ForEachMayEraseTheEntryItIsGiven) {
  Table t;
  for (std::uint64_t c = 1; c <= 5000; ++c) {
    t.insert_or_assign(c, {c, c});
  }
  t.for_each([&t](Entry& e) {
    if (e.cookie % 2 == 0) {
      EXPECT_TRUE(t.erase(e.cookie));
    }
  });
  EXPECT_EQ(t.size(), 2500U);
  for (std::uint64_t c = 1; c <= 5000; ++c) {
    EXPECT_EQ(t.contains(c), c % 2 == 1) << c;
  }
}

}  // namespace
}  // namespace sockstate::tracking

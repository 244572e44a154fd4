// parse_destroy_datagram against hand-built datagrams: well-formed events, and the broken
// lengths a forged datagram can carry. The parser must never read outside the datagram.

#include <gtest/gtest.h>
#include <linux/netlink.h>

#include <cstdint>
#include <span>
#include <vector>

#include "netlink_fixture.h"
#include "sockstate/netlink/events.h"

namespace sockstate::netlink {
namespace {

using testing::Bytes;
using testing::destroy_message;

std::vector<std::uint64_t> cookies_of(std::span<const std::uint8_t> datagram,
                                      std::uint64_t& malformed) {
  std::vector<std::uint64_t> out;
  parse_destroy_datagram(
      datagram, [&](const SocketEntry& e) { out.push_back(e.cookie); }, malformed);
  return out;
}

TEST(DestroyParser, DecodesEachMessageOfADatagram) {
  Bytes buf = destroy_message(0x1111, 40000, 80);
  const Bytes second = destroy_message(0x2222, 40001, 80);
  buf.insert(buf.end(), second.begin(), second.end());
  std::uint64_t malformed = 0;
  EXPECT_EQ(cookies_of(buf, malformed), (std::vector<std::uint64_t>{0x1111, 0x2222}));
  EXPECT_EQ(malformed, 0U);
}

// The over-read that fuzzing found: the datagram's last message says 18 bytes, aligning
// that to 20 passed the end, `size - pos` wrapped and the loop went on reading whatever
// followed the datagram in memory. Here a well-formed event follows it, just outside the
// span: reading it would report a destroy that was never received.
TEST(DestroyParser, UnalignedLastMessageEndsTheDatagram) {
  Bytes memory = destroy_message(0x1111, 40000, 80);
  const std::size_t first = memory.size();
  nlmsghdr odd{};
  odd.nlmsg_len = sizeof(nlmsghdr) + 2;  // 18: not a multiple of 4
  odd.nlmsg_type = NLMSG_NOOP;
  const auto* h = reinterpret_cast<const std::uint8_t*>(&odd);
  memory.insert(memory.end(), h, h + sizeof odd);
  memory.insert(memory.end(), {0, 0, 0, 0});  // 2 bytes of payload, then 2 outside
  const Bytes outside = destroy_message(0x3333, 40002, 80);
  memory.insert(memory.end(), outside.begin(), outside.end());

  const std::span<const std::uint8_t> datagram(memory.data(), first + odd.nlmsg_len);
  std::uint64_t malformed = 0;
  EXPECT_EQ(cookies_of(datagram, malformed), (std::vector<std::uint64_t>{0x1111}));
}

TEST(DestroyParser, LengthsThatDoNotFitAreCountedNotFollowed) {
  for (const std::uint32_t len : {0U, 1U, 15U, 0xFFFFFFFFU, 0x80000000U}) {
    SCOPED_TRACE(len);
    Bytes buf = destroy_message(0x1111, 40000, 80);
    const std::size_t second = buf.size();
    const Bytes tail = destroy_message(0x2222, 40001, 80);
    buf.insert(buf.end(), tail.begin(), tail.end());
    std::memcpy(buf.data() + second, &len, sizeof len);
    std::uint64_t malformed = 0;
    EXPECT_EQ(cookies_of(buf, malformed), (std::vector<std::uint64_t>{0x1111}));
    EXPECT_EQ(malformed, 1U);
  }
}

TEST(DestroyParser, EveryTruncationOfAnEventIsSafe) {
  const Bytes whole = destroy_message(0x1111, 40000, 80);
  for (std::size_t n = 0; n < whole.size(); ++n) {
    // A copy of exactly n bytes, so a sanitizer sees any read past it.
    const Bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
    std::uint64_t malformed = 0;
    EXPECT_TRUE(cookies_of(cut, malformed).empty()) << n;
  }
}

}  // namespace
}  // namespace sockstate::netlink

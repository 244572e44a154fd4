#include "sockstate/ocsf/tcp_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "sockstate/netlink/types.h"

namespace sockstate::ocsf {
namespace {

// The contract's table, written out independently of kKernelStates.
TEST(TcpState, EveryKernelValueMapsPerContract) {
  for (unsigned k = 0; k < 256; ++k) {
    const unsigned expected = (k >= 1 && k <= 11) ? k : k == 12 ? 3 : k == 13 ? 7 : 0;
    EXPECT_EQ(tcp_state_id(k), expected) << "kernel state " << k;
  }
  EXPECT_EQ(tcp_state_id(1000000), 0);
}

TEST(TcpState, NeverOther) {
  for (unsigned k = 0; k < 256; ++k) {
    EXPECT_LE(tcp_state_id(k), 11) << "kernel state " << k;
  }
}

TEST(TcpState, CaptionsAreTheSchemaEnum) {
  const char* expected[] = {"Unknown",    "ESTABLISHED", "SYN-SENT",  "SYN-RECEIVED",
                            "FIN-WAIT-1", "FIN-WAIT-2",  "TIME-WAIT", "CLOSED",
                            "CLOSE-WAIT", "LAST-ACK",    "LISTEN",    "CLOSING"};
  ASSERT_EQ(kTcpStateCaptions.size(), std::size(expected));
  for (std::size_t i = 0; i < std::size(expected); ++i) {
    EXPECT_EQ(kTcpStateCaptions[i], expected[i]);
  }
}

// The listed words (--help, config messages) are the words the parser takes: one list.
TEST(TcpState, TheListedNamesAreTheKnownOnes) {
  const std::string names = state_names();
  EXPECT_EQ(names.rfind("established, syn-sent, syn-received, ", 0), 0U) << names;
  std::size_t words = 0;
  for (std::size_t at = 0; at <= names.size();) {
    const auto end = std::min(names.find(", ", at), names.size());
    const std::string word = names.substr(at, end - at);
    EXPECT_TRUE(state_mask_for_name(word)) << word;
    ++words;
    at = end + 2;
  }
  EXPECT_EQ(words, 14U) << names;
}

TEST(TcpState, StateNamesAcceptCaseAndSeparators) {
  using netlink::state_bit;
  for (const char* name : {"SYN-SENT", "syn_sent", "Syn-Sent", "syn-sent"}) {
    EXPECT_EQ(state_mask_for_name(name), state_bit(2)) << name;
  }
  // Every caption but Unknown names exactly its own state (request sockets included).
  for (unsigned id = 1; id <= 11; ++id) {
    auto mask = state_mask_for_name(kTcpStateCaptions[id]);
    ASSERT_TRUE(mask) << kTcpStateCaptions[id];
    EXPECT_NE(*mask & state_bit(id), 0U) << kTcpStateCaptions[id];
  }
  EXPECT_EQ(state_mask_for_name("syn-received"), state_bit(3) | state_bit(12));
  EXPECT_EQ(state_mask_for_name("closed"), state_bit(7) | state_bit(13));
  EXPECT_EQ(state_mask_for_name("all"), netlink::kAllStates);
  EXPECT_EQ(*state_mask_for_name("all") & state_bit(13), 0U) << "all excludes bound-inactive";
  EXPECT_EQ(state_mask_for_name("bound"), state_bit(13));
  const auto connected = state_mask_for_name("connected");
  ASSERT_TRUE(connected);
  EXPECT_EQ(*connected & (state_bit(10) | state_bit(7) | state_bit(13)), 0U);
  EXPECT_NE(*connected & state_bit(1), 0U);
  EXPECT_NE(*connected & state_bit(6), 0U);
  EXPECT_FALSE(state_mask_for_name("establish"));
  EXPECT_FALSE(state_mask_for_name(""));
  EXPECT_FALSE(state_mask_for_name("unknown"));
}

}  // namespace
}  // namespace sockstate::ocsf

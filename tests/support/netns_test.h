#pragma once

#include <gtest/gtest.h>

#include <string>

#include "support/netns.h"

namespace sockstate::testing {

// A fixture whose test suite runs in a network namespace of its own, entered once by the
// main thread before any test (threads and children started later inherit it). Tests
// skip without root. A derived SetUp() calls this one first and returns when
// IsSkipped() or HasFatalFailure().
class NetnsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (is_root()) {
      if (auto err = enter_private_netns()) {
        setup_error_ = *err;
      }
    }
  }

  void SetUp() override {
    if (!is_root()) {
      GTEST_SKIP() << "needs root (network namespaces)";
    }
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static inline std::string setup_error_;
};

}  // namespace sockstate::testing

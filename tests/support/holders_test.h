#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "support/holders.h"
#include "support/netns.h"
#include "support/netns_test.h"

namespace sockstate::testing {

// A NetnsTest with socket holders: a scratch directory every uid may write to (a holder
// may run as nobody) and a Holders set, both gone after each test. Skips without
// /usr/bin/python3.
class HoldersNetnsTest : public NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    if (::access(kPython, X_OK) != 0) {
      GTEST_SKIP() << kPython << " is not installed";
    }
    std::string dir = "/tmp/sockstate-holders-XXXXXX";
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
    holders_.emplace(dir_);
  }

  // The holders are killed first, then the directory goes.
  void TearDown() override {
    holders_.reset();
    if (!dir_.empty()) {
      run_command("rm -rf " + dir_);
    }
  }

  std::string dir_;
  std::optional<Holders> holders_;
};

}  // namespace sockstate::testing

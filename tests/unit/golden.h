#pragma once
// Golden files: records compared byte for byte with a file under tests/data/golden.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace sockstate::testing {

// Expects `got` to equal the file at `path`. With SOCKSTATE_UPDATE_GOLDEN set in the
// environment, first rewrites the file with `got` (then review the diff).
inline void expect_golden(const std::string& path, const std::string& got) {
  if (std::getenv("SOCKSTATE_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << got;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(got, want.str());
}

}  // namespace sockstate::testing

#pragma once

// What a fuzz target reports beyond the sanitizers' own findings: a broken promise of the
// code under test (a record that is not one line of JSON, an error message that is not
// one line). abort() makes libFuzzer save the input as a crash artifact; tests/fuzz/run
// looks for the FINDING line.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace sockstate::fuzz {

[[noreturn]] inline void finding(std::string_view what, std::string_view detail = {}) {
  std::fprintf(stderr, "FINDING: %.*s\n%.*s\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void check(bool ok, std::string_view what, std::string_view detail = {}) {
  if (!ok) {
    finding(what, detail);
  }
}

}  // namespace sockstate::fuzz

#pragma once

#include <cstddef>
#include <string_view>

namespace sockstate {

// The length of the well-formed UTF-8 sequence starting at s[i] (Unicode table 3-7,
// RFC 3629): 1 for ASCII, 2 to 4 for a whole sequence, 0 when none starts there (a stray
// continuation byte, an overlong form, a surrogate, a code point past U+10FFFF, or a
// sequence cut short by the end of `s`). Inline: append_json_string asks it about every
// byte past ASCII of every record's strings.
inline std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    return 1;
  }
  std::size_t len = 0;
  unsigned lo = 0x80;  // the second byte's range, narrower after E0, ED, F0 and F4
  unsigned hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    lo = b0 == 0xE0 ? 0xA0 : 0x80;  // overlong
    hi = b0 == 0xED ? 0x9F : 0xBF;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    lo = b0 == 0xF0 ? 0x90 : 0x80;  // overlong
    hi = b0 == 0xF4 ? 0x8F : 0xBF;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) {
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80U) || b > (k == 1 ? hi : 0xBFU)) {
      return 0;
    }
  }
  return len;
}

}  // namespace sockstate

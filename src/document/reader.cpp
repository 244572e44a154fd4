#include "sockstate/document/reader.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace sockstate::document {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

bool plain_key(std::string_view key) {
  if (key.empty() || key.size() > 64) {
    return false;
  }
  for (const char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// "<digits><unit>" with the unit from `units`; nullopt when the text has another shape,
// UINT64_MAX when the number does not fit (the caller's "at most" catches it).
template <typename Units>
std::optional<std::uint64_t> number_with_unit(std::string_view s, const Units& units) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (end == s.data()) {
    return std::nullopt;  // no digits (also a sign, a space, a dot first)
  }
  const std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  for (const auto& [name, scale] : units) {
    if (unit == name) {
      if (ec == std::errc::result_out_of_range ||
          n > std::numeric_limits<std::uint64_t>::max() / scale) {
        return std::numeric_limits<std::uint64_t>::max();
      }
      return n * scale;
    }
  }
  return std::nullopt;
}

// 0 given as 0, "0" or -0; a negative number; or a positive one.
enum class Sign { kZero, kNegative, kPositive };

Sign integer_sign(const json& v) {
  if (v.is_number_unsigned()) {
    return v.get<std::uint64_t>() == 0 ? Sign::kZero : Sign::kPositive;
  }
  const auto n = v.get<std::int64_t>();
  return n == 0 ? Sign::kZero : n < 0 ? Sign::kNegative : Sign::kPositive;
}

constexpr milliseconds kMaxDuration = 24h;  // anything longer is a typo, not a schedule

}  // namespace

[[noreturn]] void fail(std::string path, std::string what) {
  throw Invalid{std::move(path), std::move(what)};
}

std::string one_line(std::string s) {
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      c = ' ';
    }
  }
  return s;
}

std::string quote_text(std::string_view s) {
  constexpr std::size_t kMax = 64;
  std::string out =
      json(std::string(s.substr(0, kMax))).dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > kMax) {
    out.insert(out.size() - 1, "...");
  }
  return out;
}

std::string member_path(const std::string& parent, std::string_view key) {
  std::string segment = plain_key(key) ? std::string(key) : quote_text(key);
  return parent.empty() ? segment : parent + "." + segment;
}

std::string element_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string kind_of(const json& v) {
  if (v.is_null()) {
    return "null";
  }
  if (v.is_boolean()) {
    return v.get<bool>() ? "true" : "false";
  }
  if (v.is_string()) {
    return "a string";
  }
  if (v.is_number_integer()) {
    return "an integer";
  }
  if (v.is_number_float()) {
    return "a floating-point number";
  }
  if (v.is_object()) {
    return "an object";
  }
  if (v.is_array()) {
    return "an array";
  }
  return "an unexpected value";
}

bool huge_integer(const json& v) {
  if (!v.is_number_float()) {
    return false;
  }
  const double d = v.get<double>();
  return std::isfinite(d) && std::fabs(d) >= 9.2e18 && d == std::floor(d);
}

[[noreturn]] void wrong_type(const std::string& path, const json& v, std::string_view expected) {
  fail(path, "must be " + std::string(expected) + ", not " + kind_of(v));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

bool as_bool(const json& v, const std::string& path) {
  if (!v.is_boolean()) {
    wrong_type(path, v, "true or false");
  }
  return v.get<bool>();
}

std::int64_t as_integer(const json& v, const std::string& path, std::int64_t lo, std::int64_t hi,
                        const std::string& range) {
  if (huge_integer(v)) {
    fail(path, range);
  }
  if (!v.is_number_integer()) {
    wrong_type(path, v, "an integer");
  }
  if (v.is_number_unsigned()) {
    // Above INT64_MAX only as unsigned: compare before converting.
    const auto u = v.get<std::uint64_t>();
    if (hi < 0 || u > static_cast<std::uint64_t>(hi) || static_cast<std::int64_t>(u) < lo) {
      fail(path, range);
    }
    return static_cast<std::int64_t>(u);
  }
  const auto n = v.get<std::int64_t>();
  if (n < lo || n > hi) {
    fail(path, range);
  }
  return n;
}

std::string as_text(const json& v, const std::string& path, std::size_t max_bytes) {
  if (!v.is_string()) {
    wrong_type(path, v, "a string");
  }
  const auto& s = v.get_ref<const std::string&>();
  if (s.empty()) {
    fail(path, "must not be empty");
  }
  if (s.size() > max_bytes) {
    fail(path, "must be at most " + std::to_string(max_bytes) + " bytes");
  }
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      fail(path, "must not contain control characters");
    }
  }
  return s;
}

std::string format_duration(milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3600000 == 0) {
    return std::to_string(ms / 3600000) + "h";
  }
  // "60s" and "90s" rather than "1m" and "1m30s" would be: as people write them.
  if (ms >= 120000 && ms % 60000 == 0) {
    return std::to_string(ms / 60000) + "m";
  }
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + "ms";
}

milliseconds as_duration(const json& v, const std::string& path, const DurationRule& rule) {
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 4> kUnits = {{
      {"ms", 1},
      {"s", 1000},
      {"m", 60000},
      {"h", 3600000},
  }};
  const std::string low =
      rule.zero.empty() ? "must be a duration of at least "
                        : "must be 0 (" + std::string(rule.zero) + ") or a duration of at least ";
  std::uint64_t ms = 0;
  if (v.is_number_integer()) {
    switch (integer_sign(v)) {
      case Sign::kZero:
        break;
      case Sign::kNegative:
        fail(path, low + format_duration(rule.min));
      case Sign::kPositive: {
        const std::string n = v.dump();
        fail(path, "must be a duration with a unit, such as \"" + n + "s\" or \"" + n +
                       "ms\" (a bare number is ambiguous)");
      }
    }
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (!s.empty() && s[0] == '-') {
      fail(path, low + format_duration(rule.min));
    }
    if (s != "0") {
      const auto parsed = number_with_unit(s, kUnits);
      if (!parsed) {
        fail(path, quote_text(s) +
                       " is not a duration: a whole number and ms, s, m or h, such as \"10s\"");
      }
      ms = *parsed;
    }
  } else {
    wrong_type(path, v, "a duration such as \"10s\"");
  }
  if (ms == 0 && !rule.zero.empty()) {
    return milliseconds{0};
  }
  if (ms < static_cast<std::uint64_t>(rule.min.count())) {
    fail(path, low + format_duration(rule.min));
  }
  if (ms > static_cast<std::uint64_t>(kMaxDuration.count())) {
    fail(path, "must be a duration of at most " + format_duration(kMaxDuration));
  }
  return milliseconds{static_cast<milliseconds::rep>(ms)};
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) {
    return std::to_string(bytes / kGiB) + "GiB";
  }
  if (bytes != 0 && bytes % kMiB == 0) {
    return std::to_string(bytes / kMiB) + "MiB";
  }
  if (bytes != 0 && bytes % kKiB == 0) {
    return std::to_string(bytes / kKiB) + "KiB";
  }
  return std::to_string(bytes) + " bytes";
}

std::uint64_t as_size(const json& v, const std::string& path, const SizeRule& rule) {
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 3> kUnits = {{
      {"KiB", kKiB},
      {"MiB", kMiB},
      {"GiB", kGiB},
  }};
  const std::string low = rule.zero.empty()
                              ? "must be a size of at least "
                              : "must be 0 (" + std::string(rule.zero) + ") or a size of at least ";
  std::uint64_t bytes = 0;
  if (huge_integer(v)) {
    fail(path, v.get<double>() < 0 ? low + format_size(rule.min)
                                   : "must be a size of at most " + format_size(rule.max));
  }
  if (v.is_number_integer()) {
    if (integer_sign(v) == Sign::kNegative) {
      fail(path, low + format_size(rule.min));
    }
    bytes = integer_sign(v) == Sign::kZero ? 0 : v.get<std::uint64_t>();
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (!s.empty() && s[0] == '-') {
      fail(path, low + format_size(rule.min));
    }
    if (s != "0") {
      const auto parsed = number_with_unit(s, kUnits);
      if (!parsed) {
        fail(path, quote_text(s) +
                       " is not a size: bytes as an integer, or a whole number and KiB, MiB or "
                       "GiB, such as \"8MiB\"");
      }
      bytes = *parsed;
    }
  } else {
    wrong_type(path, v, "a size (bytes as an integer, or a string such as \"8MiB\")");
  }
  if (bytes == 0 && !rule.zero.empty()) {
    return 0;
  }
  if (bytes < rule.min) {
    fail(path, low + format_size(rule.min));
  }
  if (bytes > rule.max) {
    fail(path, "must be a size of at most " + format_size(rule.max));
  }
  return bytes;
}

}  // namespace sockstate::document

// Readers of JSON-document values for strict configuration parsing: each takes a value and
// its key path ("sinks[1].port") and returns what it means, or throws Invalid with a
// one-line complaint. The config library and each sink type's keys read their values
// with these, so that every key of the document is judged by the same rules and phrased
// the same way.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sockstate::document {

using json = nlohmann::json;

// Validation is a deep walk that stops at the first problem; unwinding with this keeps
// every check one line. Whoever starts the walk catches it (config's parse_config()
// turns it into an Error); it never reaches a caller of the libraries.
struct Invalid {
  std::string path;
  std::string what;
};

[[noreturn]] void fail(std::string path, std::string what);

// A message is one line whatever the document or the file name holds: a log line, a
// journald MESSAGE and `check-config`'s stderr all end at a newline.
std::string one_line(std::string s);

// User text quoted as JSON (control characters escaped) and cut, so that a value quoted in
// a message cannot break the line or flood the log.
std::string quote_text(std::string_view s);

// Key paths as messages show them: poll_interval, sinks[1].port, "odd key".
std::string member_path(const std::string& parent, std::string_view key);
std::string element_path(const std::string& parent, std::size_t index);

// "a string", "an integer", "true", ...: what a value is, for "must be X, not Y".
std::string kind_of(const json& v);

// nlohmann reads an integer beyond 64 bits as a double: that is a number out of range,
// not a wrong type, whatever the key.
bool huge_integer(const json& v);

[[noreturn]] void wrong_type(const std::string& path, const json& v, std::string_view expected);

// Optimal string alignment distance (an adjacent swap costs 1), for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b);

// `key` at `path` is none of `keys` (each with a `name`): fails, suggesting the nearest
// name when one is close (the first of equally near ones, so the order of `keys` counts).
template <typename Keys>
[[noreturn]] void unknown_key(const std::string& path, std::string_view key, const Keys& keys) {
  std::string what = "unknown key";
  if (key.size() <= 64) {
    const std::size_t allowed = key.size() <= 4 ? 1 : 2;
    std::size_t best = allowed + 1;
    std::string_view suggestion;
    for (const auto& k : keys) {
      const std::size_t dist = edit_distance(key, k.name);
      if (dist < best) {
        best = dist;
        suggestion = k.name;
      }
    }
    if (!suggestion.empty()) {
      what += " (did you mean \"" + std::string(suggestion) + "\"?)";
    }
  }
  fail(path, what);
}

// ---- values -------------------------------------------------------------------------------

bool as_bool(const json& v, const std::string& path);

// An integer in [lo, hi]; `range` is the whole complaint ("must be 1 to 65535").
std::int64_t as_integer(const json& v, const std::string& path, std::int64_t lo, std::int64_t hi,
                        const std::string& range);

// A string for a log, a journal or a name lookup: not empty, not huge, one line.
std::string as_text(const json& v, const std::string& path, std::size_t max_bytes);

// "10s", "1500ms", "2m", "1h": as people write them.
std::string format_duration(std::chrono::milliseconds d);

struct DurationRule {
  std::chrono::milliseconds min;
  std::string_view zero;  // what 0 means ("off"), or empty when 0 is not allowed
};

// Durations need a unit: a bare 10 could be seconds or milliseconds, and whichever we
// chose, half the readers would guess the other. Zero needs none. Never over 24h.
std::chrono::milliseconds as_duration(const json& v, const std::string& path,
                                      const DurationRule& rule);

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = kKiB * 1024;
inline constexpr std::uint64_t kGiB = kMiB * 1024;

// "8MiB", "64KiB", "100 bytes".
std::string format_size(std::uint64_t bytes);

struct SizeRule {
  std::uint64_t min;
  std::uint64_t max;
  std::string_view zero;  // what 0 means ("never"), or empty when 0 is not allowed
};

// Sizes are bytes when a bare number (bytes are the only sensible base), or a string with
// a binary unit. Decimal units (MB) are refused rather than guessed at.
std::uint64_t as_size(const json& v, const std::string& path, const SizeRule& rule);

// One of `choices`, spelt exactly.
template <std::size_t N>
std::string as_choice(const json& v, const std::string& path,
                      const std::array<std::string_view, N>& choices) {
  std::string list;
  for (const auto c : choices) {
    list += (list.empty() ? "" : ", ") + std::string(c);
  }
  if (!v.is_string()) {
    wrong_type(path, v, "one of " + list);
  }
  const auto& s = v.get_ref<const std::string&>();
  for (const auto c : choices) {
    if (s == c) {
      return s;
    }
  }
  fail(path, "must be one of " + list + ", not " + quote_text(s));
}

}  // namespace sockstate::document

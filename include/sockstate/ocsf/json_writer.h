#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace sockstate::ocsf {

// A small streaming JSON writer appending to a caller-owned string, for the record hot
// path: no tree, no per-value allocation, keys written in the order given (so golden
// records are byte-exact). It tracks commas; the caller keeps objects balanced.
//
// Keys are the program's own identifiers ([a-z_]) and are written as they are.
// field() escapes its string per RFC 8259 and replaces invalid UTF-8 by U+FFFD, so
// whatever the kernel or /proc hands us, the output stays valid UTF-8 JSON.
// field_ascii() is for values the program itself made from known characters (captions,
// addresses, hex ids): printable ASCII without '"' or '\\'; it skips the scan.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void begin_object();
  void begin_object(std::string_view key);
  void end_object();
  void begin_array(std::string_view key);
  void end_array();

  void field(std::string_view key, std::string_view value);
  void field(std::string_view key, const char* value) { field(key, std::string_view(value)); }
  void field_ascii(std::string_view key, std::string_view value);
  void field(std::string_view key, std::uint64_t value);
  void field(std::string_view key, std::int64_t value);
  void field(std::string_view key, std::uint32_t value) { field(key, std::uint64_t{value}); }
  void field(std::string_view key, int value) { field(key, std::int64_t{value}); }
  void field(std::string_view key, bool value);
  // A value already encoded as JSON (a pre-rendered constant object).
  void raw_field(std::string_view key, std::string_view json);
  // Members already encoded as JSON ("a":1,"b":2), pre-rendered with members_of().
  void raw_members(std::string_view json);
  // An array element.
  void element(std::string_view value);
  // An array element already encoded as JSON.
  void raw_element(std::string_view json);

 private:
  void comma();
  void key(std::string_view key);

  std::string& out_;
  // One bit per nesting level: set once the level has a member (so the next needs a comma).
  std::uint64_t has_member_ = 0;
  unsigned depth_ = 0;
};

// The members an object writer produced, without the braces: for raw_members().
std::string members_of(const std::function<void(JsonWriter&)>& write_members);

// Appends `s` to out as a quoted, escaped JSON string.
void append_json_string(std::string& out, std::string_view s);

}  // namespace sockstate::ocsf

#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
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
//
// It writes through a cursor into room it keeps at the end of `out` (no std::string call
// per key or value: a record is about a hundred of them): `out` holds exactly what was
// written only after finish(), which the destructor also does.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out);
  ~JsonWriter() { finish(); }
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  // Trims `out` to what was written. Writing may go on afterwards.
  void finish();

  void begin_object() {
    if (depth_ > 0) {
      comma();
    }
    open('{');
  }
  void begin_object(std::string_view k) {
    key(k);
    open('{');
  }
  void end_object() { close('}'); }
  void begin_array(std::string_view k) {
    key(k);
    open('[');
  }
  void end_array() { close(']'); }

  void field(std::string_view k, std::string_view value) {
    key(k);
    string(value);
  }
  void field(std::string_view k, const char* value) { field(k, std::string_view(value)); }
  void field_ascii(std::string_view k, std::string_view value) {
    key(k);
    char* p = room(value.size() + 2);
    *p++ = '"';
    std::memcpy(p, value.data(), value.size());
    p[value.size()] = '"';
    cur_ = p + value.size() + 1;
  }
  void field(std::string_view k, std::uint64_t value) {
    key(k);
    number(value);
  }
  void field(std::string_view k, std::int64_t value) {
    key(k);
    number(value);
  }
  void field(std::string_view k, std::uint32_t value) { field(k, std::uint64_t{value}); }
  void field(std::string_view k, int value) { field(k, std::int64_t{value}); }
  void field(std::string_view k, bool value) {
    key(k);
    put(value ? std::string_view("true") : std::string_view("false"));
  }
  // A value already encoded as JSON (a pre-rendered constant object).
  void raw_field(std::string_view k, std::string_view json) {
    key(k);
    put(json);
  }
  // Members already encoded as JSON ("a":1,"b":2), pre-rendered with members_of().
  void raw_members(std::string_view json) {
    if (json.empty()) {
      return;
    }
    comma();
    put(json);
  }
  // An array element.
  void element(std::string_view value) {
    comma();
    string(value);
  }
  // An array element already encoded as JSON.
  void raw_element(std::string_view json) {
    comma();
    put(json);
  }
  // Bytes outside the JSON value (the newline after a record).
  void raw(std::string_view bytes) { put(bytes); }

 private:
  char* room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - cur_) < n) {
      grow(n);
    }
    return cur_;
  }
  void put(std::string_view s) {
    std::memcpy(room(s.size()), s.data(), s.size());
    cur_ += s.size();
  }
  void comma() {
    const std::uint64_t bit = std::uint64_t{1} << depth_;
    if ((has_member_ & bit) != 0) {
      *room(1) = ',';
      ++cur_;
    }
    has_member_ |= bit;
  }
  void key(std::string_view k) {
    comma();
    char* p = room(k.size() + 3);
    *p++ = '"';
    std::memcpy(p, k.data(), k.size());
    p += k.size();
    *p++ = '"';
    *p++ = ':';
    cur_ = p;
  }
  void open(char c) {
    *room(1) = c;
    ++cur_;
    ++depth_;
    has_member_ &= ~(std::uint64_t{1} << depth_);
  }
  void close(char c) {
    *room(1) = c;
    ++cur_;
    --depth_;
  }
  template <typename Int>
  void number(Int value) {
    char* p = room(24);
    cur_ = std::to_chars(p, p + 24, value).ptr;
  }
  void string(std::string_view value);  // quoted and escaped
  void grow(std::size_t n);

  std::string& out_;
  char* cur_ = nullptr;  // next byte to write, inside out_
  char* end_ = nullptr;  // end of the room
  // One bit per nesting level: set once the level has a member (so the next needs a comma).
  std::uint64_t has_member_ = 0;
  unsigned depth_ = 0;
};

// The members an object writer produced, without the braces: for raw_members().
std::string members_of(const std::function<void(JsonWriter&)>& write_members);

// Appends `s` to out as a quoted, escaped JSON string.
void append_json_string(std::string& out, std::string_view s);

}  // namespace sockstate::ocsf

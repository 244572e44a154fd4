#include "sockstate/ocsf/json_writer.h"

#include <array>
#include <charconv>
#include <cstring>

namespace sockstate::ocsf {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid
// (overlong forms, surrogates and code points past U+10FFFF are invalid, RFC 3629).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  unsigned lo = 0x80;
  unsigned hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    lo = b0 == 0xE0 ? 0xA0 : 0x80;
    hi = b0 == 0xED ? 0x9F : 0xBF;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    lo = b0 == 0xF0 ? 0x90 : 0x80;
    hi = b0 == 0xF4 ? 0x8F : 0xBF;
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

// Bytes a JSON string cannot hold as they are: controls, '"', '\\', and everything past
// ASCII (checked as UTF-8 on the slow path).
constexpr std::array<bool, 256> kNeedsCare = [] {
  std::array<bool, 256> t{};
  for (std::size_t c = 0; c < 256; ++c) {
    t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
  }
  return t;
}();

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run that needs no escaping in one go.
    std::size_t j = i;
    while (j < s.size() && !kNeedsCare[static_cast<unsigned char>(s[j])]) {
      ++j;
    }
    out.append(s.data() + i, j - i);
    i = j;
    if (i == s.size()) {
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t len = utf8_sequence_length(s, i);
      if (len == 0) {
        out.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
        break;
    }
    ++i;
  }
  out.push_back('"');
}

void JsonWriter::comma() {
  const std::uint64_t bit = std::uint64_t{1} << depth_;
  if ((has_member_ & bit) != 0) {
    out_.push_back(',');
  }
  has_member_ |= bit;
}

void JsonWriter::key(std::string_view k) {
  // One append, not four: a record has about a hundred keys.
  const std::uint64_t bit = std::uint64_t{1} << depth_;
  const bool separate = (has_member_ & bit) != 0;
  has_member_ |= bit;
  std::array<char, 64> buf{};
  if (k.size() + 4 > buf.size()) {
    if (separate) {
      out_.push_back(',');
    }
    out_.push_back('"');
    out_.append(k);
    out_.append("\":", 2);
    return;
  }
  char* p = buf.data();
  if (separate) {
    *p++ = ',';
  }
  *p++ = '"';
  std::memcpy(p, k.data(), k.size());
  p += k.size();
  *p++ = '"';
  *p++ = ':';
  out_.append(buf.data(), static_cast<std::size_t>(p - buf.data()));
}

void JsonWriter::begin_object() {
  if (depth_ > 0) {
    comma();
  }
  out_.push_back('{');
  ++depth_;
  has_member_ &= ~(std::uint64_t{1} << depth_);
}

void JsonWriter::begin_object(std::string_view k) {
  key(k);
  out_.push_back('{');
  ++depth_;
  has_member_ &= ~(std::uint64_t{1} << depth_);
}

void JsonWriter::end_object() {
  out_.push_back('}');
  --depth_;
}

void JsonWriter::begin_array(std::string_view k) {
  key(k);
  out_.push_back('[');
  ++depth_;
  has_member_ &= ~(std::uint64_t{1} << depth_);
}

void JsonWriter::end_array() {
  out_.push_back(']');
  --depth_;
}

void JsonWriter::field(std::string_view k, std::string_view value) {
  key(k);
  append_json_string(out_, value);
}

void JsonWriter::field_ascii(std::string_view k, std::string_view value) {
  key(k);
  const std::size_t at = out_.size();
  out_.resize(at + value.size() + 2);
  char* p = out_.data() + at;
  *p++ = '"';
  std::memcpy(p, value.data(), value.size());
  p[value.size()] = '"';
}

void JsonWriter::field(std::string_view k, std::uint64_t value) {
  key(k);
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, end);
}

void JsonWriter::field(std::string_view k, std::int64_t value) {
  key(k);
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, end);
}

void JsonWriter::field(std::string_view k, bool value) {
  key(k);
  out_.append(value ? "true" : "false");
}

void JsonWriter::raw_field(std::string_view k, std::string_view json) {
  key(k);
  out_.append(json);
}

void JsonWriter::raw_members(std::string_view json) {
  if (json.empty()) {
    return;
  }
  comma();
  out_.append(json);
}

std::string members_of(const std::function<void(JsonWriter&)>& write_members) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  write_members(w);
  return out.substr(1);  // no '{'; the object was never closed
}

void JsonWriter::raw_element(std::string_view json) {
  comma();
  out_.append(json);
}

void JsonWriter::element(std::string_view value) {
  comma();
  append_json_string(out_, value);
}

}  // namespace sockstate::ocsf

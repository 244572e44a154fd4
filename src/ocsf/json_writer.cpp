#include "sockstate/ocsf/json_writer.h"

#include <array>
#include <charconv>
#include <cstring>

#include "sockstate/common/utf8.h"

namespace sockstate::ocsf {
namespace {

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
      const std::size_t len = utf8_length(s, i);
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

namespace {

// Room kept at the end of the output: a typical record fits, so it is sized once per record.
constexpr std::size_t kRoom = 2048;

}  // namespace

JsonWriter::JsonWriter(std::string& out) : out_(out) {
  const std::size_t at = out_.size();
  out_.resize(at + kRoom);
  cur_ = out_.data() + at;
  end_ = out_.data() + out_.size();
}

void JsonWriter::finish() {
  out_.resize(static_cast<std::size_t>(cur_ - out_.data()));
  cur_ = out_.data() + out_.size();
  end_ = cur_;
}

void JsonWriter::grow(std::size_t n) {
  const auto at = static_cast<std::size_t>(cur_ - out_.data());
  out_.resize(at + n + kRoom);  // std::string grows its capacity geometrically
  cur_ = out_.data() + at;
  end_ = out_.data() + out_.size();
}

void JsonWriter::string(std::string_view value) {
  for (const char c : value) {
    if (kNeedsCare[static_cast<unsigned char>(c)]) {
      finish();
      append_json_string(out_, value);
      cur_ = out_.data() + out_.size();
      end_ = cur_;
      return;
    }
  }
  char* p = room(value.size() + 2);
  *p++ = '"';
  std::memcpy(p, value.data(), value.size());
  p[value.size()] = '"';
  cur_ = p + value.size() + 1;
}

std::string members_of(const std::function<void(JsonWriter&)>& write_members) {
  std::string out;
  {
    JsonWriter w(out);
    w.begin_object();
    write_members(w);
  }
  return out.substr(1);  // no '{'; the object was never closed
}

}  // namespace sockstate::ocsf

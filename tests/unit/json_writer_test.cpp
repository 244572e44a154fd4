#include "sockstate/ocsf/json_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace sockstate::ocsf {
namespace {

std::string quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

TEST(JsonWriter, NestedObjectsAndCommas) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("a", 1);
  w.begin_object("b");
  w.field("c", "x");
  w.field("d", true);
  w.end_object();
  w.begin_object("e");
  w.end_object();
  w.begin_array("f");
  w.element("p");
  w.element("q");
  w.end_array();
  w.raw_field("g", "[1,2]");
  w.field("h", std::numeric_limits<std::uint64_t>::max());
  w.field("i", std::numeric_limits<std::int64_t>::min());
  w.end_object();
  w.finish();
  EXPECT_EQ(out, R"({"a":1,"b":{"c":"x","d":true},"e":{},"f":["p","q"],"g":[1,2],)"
                 R"("h":18446744073709551615,"i":-9223372036854775808})");
}

// The writer keeps room at the end of the string and writes through a cursor: whatever
// it appends to, however long the values, escaped or not, the string ends up holding
// exactly the JSON, after what it held before.
TEST(JsonWriter, AppendsExactlyThroughGrowthAndEscapes) {
  std::string out = "before\n";
  const std::string long_plain(5000, 'x');
  const std::string long_escaped = std::string(3000, 'y') + "\"" + std::string(3000, 'z');
  {
    JsonWriter w(out);
    w.begin_object();
    w.field("plain", long_plain);
    w.field("escaped", long_escaped);
    w.field_ascii("ascii", long_plain);
    w.field("n", std::uint64_t{42});
    w.end_object();
    w.raw("\n");
  }
  EXPECT_EQ(out, "before\n{\"plain\":\"" + long_plain + "\",\"escaped\":\"" +
                     std::string(3000, 'y') + "\\\"" + std::string(3000, 'z') + "\",\"ascii\":\"" +
                     long_plain + "\",\"n\":42}\n");
  {
    JsonWriter w(out);  // a second record after the first
    w.begin_object();
    w.field("k", "v");
    w.end_object();
  }
  EXPECT_EQ(out.substr(out.size() - 9), "{\"k\":\"v\"}");
}

TEST(JsonWriter, EscapesPerRfc8259) {
  EXPECT_EQ(quoted("plain"), R"("plain")");
  EXPECT_EQ(quoted("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(quoted("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(quoted(std::string_view("\x01\x1f\0", 3)), R"("\u0001\u001f\u0000")");
  EXPECT_EQ(quoted("\x7f"), "\"\x7f\"");  // DEL needs no escape
}

TEST(JsonWriter, KeepsValidUtf8) {
  EXPECT_EQ(quoted("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "\"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\"");
}

TEST(JsonWriter, ReplacesInvalidUtf8) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(quoted("\xFF"), "\"" + r + "\"");
  EXPECT_EQ(quoted("a\xC3"), "\"a" + r + "\"");                        // truncated sequence
  EXPECT_EQ(quoted("\xC0\xAF"), "\"" + r + r + "\"");                  // overlong '/'
  EXPECT_EQ(quoted("\xED\xA0\x80"), "\"" + r + r + r + "\"");          // UTF-16 surrogate
  EXPECT_EQ(quoted("\xF4\x90\x80\x80"), "\"" + r + r + r + r + "\"");  // > U+10FFFF
  EXPECT_EQ(quoted("\xE2\x28\xA1"), "\"" + r + "(" + r + "\"");
}

}  // namespace
}  // namespace sockstate::ocsf

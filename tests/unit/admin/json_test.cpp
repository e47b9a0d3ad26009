#include "admin/json.h"

#include <gtest/gtest.h>

namespace spillway::admin {
namespace {

TEST(admin_json, strings_escape_quotes_backslashes_and_control_characters) {
  EXPECT_EQ(json_string(""), "\"\"");
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("\n\r\t"), "\"\\n\\r\\t\"");
  EXPECT_EQ(json_string(std::string_view("\x01\x1f\0", 3)), "\"\\u0001\\u001f\\u0000\"");
  EXPECT_EQ(json_string("caf\xc3\xa9 \x7f"), "\"caf\xc3\xa9 \x7f\"");  // UTF-8 and DEL as they are
}

TEST(admin_json, times_are_utc_with_milliseconds) {
  using namespace std::chrono;
  EXPECT_EQ(iso8601(system_clock::time_point(milliseconds(0))), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601(system_clock::time_point(milliseconds(1'700'000'000'123))), "2023-11-14T22:13:20.123Z");
}

}  // namespace
}  // namespace spillway::admin

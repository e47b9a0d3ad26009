#include "proxy/access_log.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::proxy {
namespace {

std::string line(const std::string& format, const access_record& r) {
  config::access_log cfg;
  cfg.path = "/dev/null";
  cfg.format = format;
  access_log log(cfg);
  std::string out;
  format_access_line(log, r, out);
  return out;
}

access_record hostile() {
  access_record r;
  r.method = "GET";
  r.status = 200;
  r.flags = "-";
  return r;
}

TEST(access_log_template, client_fields_cannot_break_or_forge_a_line) {
  auto r = hostile();
  r.path = "/a b\r\nGET /forged \"x\" \\ \x01\x7f\xff";
  r.host = "evil\n127.0.0.1 - 200";
  r.request_id = "id\"1";
  auto out = line("{method} {path} {host} {request_id} {status}", r);
  EXPECT_EQ(out,
            "GET /a\\x20b\\x0D\\x0AGET\\x20/forged\\x20\\x22x\\x22\\x20\\x5C\\x20\\x01\\x7F\\xFF "
            "evil\\x0A127.0.0.1\\x20-\\x20200 id\\x221 200\n");
  EXPECT_EQ(out.find('\n'), out.size() - 1);
}

TEST(access_log_template, empty_fields_are_a_dash) {
  auto r = hostile();
  EXPECT_EQ(line("{host} {upstream}", r), "- -\n");
}

// Checks that `s` is well-formed UTF-8 with no raw control character (what a JSON parser needs).
bool valid_utf8_json_text(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 && c != '\n') {
      return false;
    }
    std::size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (n == 0 || i + n > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) {
        return false;
      }
    }
    i += n;
  }
  return true;
}

TEST(access_log_json, invalid_utf8_becomes_replacement_characters) {
  auto r = hostile();
  // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate, above U+10FFFF,
  // then valid two, three and four byte characters, which pass unchanged.
  r.path = "/\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  r.host = "a\r\nb\"\\\x01\x7f";
  auto out = line("json", r);
  EXPECT_TRUE(valid_utf8_json_text(out)) << out;
  EXPECT_NE(out.find(R"("path":"/\ufffd|\ufffd\ufffd|\ufffd\ufffd|\ufffd\ufffd\ufffd|\ufffd\ufffd\ufffd\ufffd|)"
                     "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(R"("host":"a\u000d\u000ab\"\\\u0001\u007f")"), std::string::npos) << out;
}

TEST(access_log_json, every_byte_value_gives_valid_utf8) {
  auto r = hostile();
  std::string all;
  for (int b = 0; b < 256; ++b) {
    all.push_back(static_cast<char>(b));
  }
  // The record holds views: the strings they see must outlive it.
  const std::string host = all.substr(128) + all.substr(0, 128);
  const std::string request_id = all.substr(0xc0);
  r.path = all;
  r.host = host;
  r.request_id = request_id;
  EXPECT_TRUE(valid_utf8_json_text(line("json", r)));
}

}  // namespace
}  // namespace spillway::proxy

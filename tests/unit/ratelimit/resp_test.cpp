// RESP2 replies and commands (src/ratelimit/resp.cpp).

#include "ratelimit/resp.h"

#include <gtest/gtest.h>

namespace spillway::ratelimit::resp {
namespace {

status parse_all(std::string_view in, value& v, std::size_t& consumed) { return parse(in, consumed, v); }

TEST(ratelimit_resp, the_gcra_answer_and_every_reply_type) {
  value v;
  std::size_t n = 0;
  const std::string_view reply = "*3\r\n:1\r\n:-19\r\n:10000\r\n";
  ASSERT_EQ(parse_all(reply, v, n), status::done);
  EXPECT_EQ(n, reply.size());
  ASSERT_EQ(v.type, value::kind::array);
  ASSERT_EQ(v.items.size(), 3u);
  EXPECT_EQ(v.items[1].number, -19);
  EXPECT_EQ(v.items[2].number, 10000);

  ASSERT_EQ(parse_all("+OK\r\n", v, n), status::done);
  EXPECT_EQ(v.type, value::kind::simple);
  ASSERT_EQ(parse_all("-NOSCRIPT No matching script\r\n", v, n), status::done);
  EXPECT_EQ(v.type, value::kind::error);
  EXPECT_EQ(v.text, "NOSCRIPT No matching script");
  ASSERT_EQ(parse_all("$5\r\nhe\r\no\r\n", v, n), status::done);  // a bulk string may hold CRLF
  EXPECT_EQ(v.text, "he\r\no");
  ASSERT_EQ(parse_all("$-1\r\n", v, n), status::done);
  EXPECT_EQ(v.type, value::kind::null);
}

TEST(ratelimit_resp, part_of_a_reply_waits_for_the_rest_and_two_replies_parse_one_at_a_time) {
  const std::string both = "*3\r\n:1\r\n:2\r\n:3\r\n+OK\r\n";
  value v;
  std::size_t n = 0;
  for (std::size_t cut = 0; cut < 16; ++cut) {
    EXPECT_EQ(parse_all(std::string_view(both).substr(0, cut), v, n), status::incomplete) << cut;
  }
  ASSERT_EQ(parse_all(both, v, n), status::done);
  EXPECT_EQ(n, 16u);
  ASSERT_EQ(parse_all(std::string_view(both).substr(n), v, n), status::done);
  EXPECT_EQ(v.type, value::kind::simple);
}

TEST(ratelimit_resp, garbage_and_replies_over_the_limits_are_malformed) {
  value v;
  std::size_t n = 0;
  for (std::string_view bad :
       {"HTTP/1.1 200 OK\r\n", ":12a\r\n", ":1\n", ":1\rx", "$3\r\nabcd\r\n", "$-2\r\n", "*65\r\n", "$65537\r\n",
        ":99999999999999999999\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n"}) {
    EXPECT_EQ(parse_all(bad, v, n), status::malformed) << bad;
  }
  EXPECT_EQ(parse_all(std::string(2000, '+'), v, n), status::malformed);  // no line end in sight
}

TEST(ratelimit_resp, commands_are_arrays_of_bulk_strings) {
  std::string out;
  append_command(out, {"EVALSHA", "ab", "1", std::string_view("k\0y", 3)});
  EXPECT_EQ(out, std::string("*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$3\r\nk\0y\r\n", 41));
}

}  // namespace
}  // namespace spillway::ratelimit::resp

// Keys and answer headers of rate limits (src/ratelimit/keys.cpp).

#include "ratelimit/keys.h"

#include <gtest/gtest.h>

namespace spillway::ratelimit {
namespace {

std::string key_of(const char* ip) {
  std::string k;
  client_key(boost::asio::ip::make_address(ip), k);
  return k;
}

TEST(ratelimit_keys, ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4) {
  EXPECT_EQ(key_of("2001:db8:1:2::1"), key_of("2001:db8:1:2:ffff::9"));
  EXPECT_NE(key_of("2001:db8:1:2::1"), key_of("2001:db8:1:3::1"));
  EXPECT_EQ(key_of("::ffff:192.0.2.7"), key_of("192.0.2.7"));
  EXPECT_NE(key_of("192.0.2.7"), key_of("192.0.2.8"));
}

TEST(ratelimit_keys, long_header_values_stay_bounded_and_distinct) {
  std::string a(1000, 'a');
  std::string b = a;
  b.back() = 'b';
  std::string ka;
  std::string kb;
  header_key(a, ka);
  header_key(b, kb);
  EXPECT_LE(ka.size(), max_header_key + sizeof(std::size_t));
  EXPECT_NE(ka, kb);
  header_key("tenant-1", ka);
  EXPECT_EQ(ka, "tenant-1");
}

TEST(ratelimit_keys, answers_follow_the_ratelimit_headers_draft) {
  config::rate_limit rl;
  rl.name = "per \"client\"";
  rl.count = 6000;
  rl.period = std::chrono::minutes(1);
  EXPECT_EQ(policy_header(rl), R"("per \"client\"";q=6000;w=60)");
  verdict v;
  v.wait_ns = 1'500'000'000;
  v.reset_ns = 2'000'000'001;
  EXPECT_EQ(retry_after_seconds(v), 2u);
  EXPECT_EQ(state_header(rl, v), R"("per \"client\"";r=0;t=3)");
  v.wait_ns = 10;  // never "Retry-After: 0"
  EXPECT_EQ(retry_after_seconds(v), 1u);
}

}  // namespace
}  // namespace spillway::ratelimit

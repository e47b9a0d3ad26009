// The value parsers (src/config/values.cpp): durations, percentages, addresses and sizes.

#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

TEST(config_parse, duration) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("2s"), seconds(2));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parse_duration("1m"), seconds(60));
  EXPECT_EQ(parse_duration("1h"), seconds(3600));
  EXPECT_EQ(parse_duration("0.5m"), seconds(30));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0.2ms"), milliseconds(1));  // never rounded down to zero
  for (const char* bad : {"", "5", "s", "5 s", " 5s", "5s ", "-1s", "+1s", "1e3ms", "1.s", ".5s", "5sec", "5S", "5d",
                          "1.2.3s", "99999999999999h"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(config_parse, percent) {
  EXPECT_EQ(parse_percent("50%"), 50.0);
  EXPECT_EQ(parse_percent("0%"), 0.0);
  EXPECT_EQ(parse_percent("100%"), 100.0);
  EXPECT_EQ(parse_percent("12.5%"), 12.5);
  EXPECT_EQ(parse_percent("50"), 50.0);
  for (const char* bad : {"", "%", "101%", "100.5", "-1%", "50 %", "50%%", "half", "0.5.%"}) {
    EXPECT_FALSE(parse_percent(bad).has_value()) << bad;
  }
}

TEST(config_parse, address) {
  auto a = parse_address("1.2.3.4:80");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->host, "1.2.3.4");
  EXPECT_EQ(a->port, 80);
  EXPECT_TRUE(a->is_ip);
  EXPECT_EQ(a->text, "1.2.3.4:80");

  a = parse_address("[::1]:8443");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 8443);
  EXPECT_TRUE(a->is_ip);
  EXPECT_EQ(a->text, "[::1]:8443");

  a = parse_address("backend-1.example.com:65535");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->host, "backend-1.example.com");
  EXPECT_EQ(a->port, 65535);
  EXPECT_FALSE(a->is_ip);

  a = parse_address("localhost:1");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->is_ip);

  struct bad_case {
    const char* text;
    const char* why;
  };
  for (const auto& c : {bad_case{"10.0.0.1", "expected host:port"}, bad_case{"", "expected host:port"},
                        bad_case{"10.0.0.1:0", "invalid port \"0\""}, bad_case{"10.0.0.1:65536", "invalid port"},
                        bad_case{"10.0.0.1:http", "invalid port"}, bad_case{"10.0.0.1:", "missing port"},
                        bad_case{":80", "missing host"}, bad_case{"::1:80", "need brackets"},
                        bad_case{"[::1]", "expected [ipv6]:port"}, bad_case{"[::1:80", "missing ']'"},
                        bad_case{"[::g]:80", "invalid IPv6 address"}, bad_case{"[1.2.3.4]:80", "invalid IPv6 address"},
                        bad_case{"10.0.0.256:80", "invalid IPv4 address"}, bad_case{"1.2.3:80", "invalid IPv4 address"},
                        bad_case{"under_score.com:80", "invalid hostname"}, bad_case{"-a.com:80", "invalid hostname"},
                        bad_case{"a..b:80", "invalid hostname"}, bad_case{"a b:80", "invalid hostname"}}) {
    std::string why;
    EXPECT_FALSE(parse_address(c.text, &why).has_value()) << c.text;
    EXPECT_NE(why.find(c.why), std::string::npos) << c.text << " -> " << why;
  }
  EXPECT_FALSE(parse_address("nope").has_value());  // `why` is optional
}

TEST(config_parse, size) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("65536"), 65536u);
  EXPECT_EQ(parse_size("64k"), 65536u);
  EXPECT_EQ(parse_size("64K"), 65536u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("10m"), 10u << 20);
  EXPECT_EQ(parse_size("10MiB"), 10u << 20);
  EXPECT_EQ(parse_size("1g"), 1u << 30);
  EXPECT_EQ(parse_size("1GiB"), 1u << 30);
  for (const char* bad : {"", "k", "1.5k", "-1", "10 k", "10t", "10kb", "99999999999999999999", "17179869184g"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
  }
}

TEST(config_parse, service_url) {
  std::string path = "unset";
  std::string why;
  auto a = parse_service_url("redis://10.0.0.5", "redis://", 6379, nullptr, &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->host, "10.0.0.5");
  EXPECT_EQ(a->port, 6379);  // the default
  a = parse_service_url("redis://[::1]:7000", "redis://", 6379, nullptr, &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->port, 7000);
  a = parse_service_url("redis://[::1]", "redis://", 6379, nullptr, &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->port, 6379);
  a = parse_service_url("http://collector:4318/v1/traces", "http://", 0, &path, &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->host, "collector");
  EXPECT_EQ(a->port, 4318);
  EXPECT_EQ(path, "/v1/traces");
  a = parse_service_url("http://collector:4318", "http://", 0, &path, &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(path, "");

  auto refused = [&](std::string_view text, std::uint16_t default_port, std::string* p, std::string_view reason) {
    why.clear();
    EXPECT_FALSE(parse_service_url(text, text.starts_with("redis") ? "redis://" : "http://", default_port, p, &why))
        << text;
    EXPECT_NE(why.find(reason), std::string::npos) << text << ": " << why;
  };
  refused("https://c:4318", 0, &path, "not http://");
  refused("http://c/v1/traces", 0, &path, "no port");
  refused("redis://h:6379/2", 6379, nullptr, "no path");
  refused("redis://user@h:6379", 6379, nullptr, "no user");
  refused("http://c:4318/x?y=1", 0, &path, "no user, query");
  refused("redis://h:0", 6379, nullptr, "invalid port");
  refused("redis://srv:_redis._tcp.x", 6379, nullptr, "SRV");
  refused("redis://:6379", 6379, nullptr, "");
}

}  // namespace
}  // namespace spillway::config

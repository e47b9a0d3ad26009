// The top level of a config (src/config/top_level.cpp): workers, drain_timeout, drain_delay,
// metrics, access_log and admin (token_file: SPEC section 5).

#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

TEST(config_load, workers_and_durations) {
  auto r = load(std::string("workers: 4\ndrain_timeout: 1.5s\n").append(minimal));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_EQ(r.cfg->workers, 4u);
  EXPECT_EQ(r.cfg->drain_timeout, milliseconds(1500));
}

TEST(config_load, drain_delay) {
  auto r = load(std::string("drain_timeout: 20s\ndrain_delay: 5s\n").append(minimal));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_EQ(r.cfg->drain_delay, seconds(5));
  EXPECT_EQ(r.cfg->drain_timeout, seconds(20));
  // Off unless set (a drain begins at once, as before the key existed); 0s is allowed.
  auto d = load(minimal);
  ASSERT_TRUE(d.cfg.has_value());
  EXPECT_EQ(d.cfg->drain_delay, seconds(0));
  auto zero = load(std::string("drain_delay: 0s\n").append(minimal));
  ASSERT_TRUE(zero.cfg.has_value()) << all_errors(zero);
  EXPECT_EQ(zero.cfg->drain_delay, seconds(0));
}

TEST(config_errors, drain_delay_is_a_duration) {
  expect_one_error(std::string("drain_delay: 5\n") + std::string(minimal), 1, 14, R"(invalid duration "5")");
  expect_one_error(std::string("workers: 2\ndrain_delay: [5s]\n") + std::string(minimal), 2, 14, "drain_delay");
  expect_one_error(std::string("drain_dealy: 5s\n") + std::string(minimal), 1, 1, "drain_dealy");
}

TEST(config_errors, workers_range) {
  expect_one_error(std::string("workers: 0\n") + std::string(minimal), 1, 10,
                   R"(invalid workers "0": expected auto or an integer from 1 to 256)");
  expect_one_error(std::string("workers: 257\n") + std::string(minimal), 1, 10, "invalid workers");
}

TEST(config_extensions, access_log_metrics_and_splice) {
  auto r = load(std::string(R"(metrics: false
access_log: { path: /tmp/a.log, format: "{client} {status}", sample: 25% }
listeners: [ { listen: 0.0.0.0:8080, protocol: tcp, upstream: app, splice: false } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)"));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_FALSE(r.cfg->metrics);
  ASSERT_TRUE(r.cfg->access_log.has_value());
  EXPECT_EQ(r.cfg->access_log->path, "/tmp/a.log");
  EXPECT_EQ(r.cfg->access_log->format, "{client} {status}");
  EXPECT_EQ(r.cfg->access_log->sample, 25);
  EXPECT_FALSE(r.cfg->listeners[0].splice);

  auto d = load(minimal);
  ASSERT_TRUE(d.cfg.has_value());
  EXPECT_TRUE(d.cfg->metrics);
  EXPECT_FALSE(d.cfg->access_log.has_value());  // off by default
  EXPECT_TRUE(d.cfg->listeners[0].splice);
}

TEST(config_extensions, access_log_errors) {
  expect_one_error(std::string("access_log: { format: json }\n") + std::string(minimal), 1, 13,
                   "access_log needs a path");
  expect_one_error(std::string("access_log: { path: x.log, format: \"{client} {bogus}\" }\n") + std::string(minimal), 1,
                   36, "unknown field {bogus}");
  expect_one_error(std::string("access_log: { path: x.log, format: \"{client\" }\n") + std::string(minimal), 1, 36,
                   "without its");
  expect_one_error(std::string("metrics: maybe\n") + std::string(minimal), 1, 10, "expected true or false");
}

TEST(config_admin, token_file_is_read_and_trimmed) {
  temp_dir dir;
  auto token = dir.write("token", "s3cret\n");
  auto r = load("admin: { listen: 127.0.0.1:9000, token_file: " + token + " }\n" + std::string(minimal));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_EQ(r.cfg->admin_api.token, "s3cret");
  EXPECT_EQ(r.cfg->admin_api.token_file, token);
  // No token_file: no token.
  auto plain = load(minimal);
  ASSERT_TRUE(plain.cfg.has_value());
  EXPECT_TRUE(plain.cfg->admin_api.token.empty());
}

TEST(config_admin, unreadable_or_empty_token_file_is_an_error_at_the_key) {
  temp_dir dir;
  auto empty = dir.write("empty", "\n  \n");
  expect_one_error("admin:\n  listen: 127.0.0.1:9000\n  token_file: " + empty + "\n" + std::string(minimal), 3, 15,
                   "is empty");
  expect_one_error("admin:\n  listen: 127.0.0.1:9000\n  token_file: " + (dir.path() / "missing").string() + "\n" +
                       std::string(minimal),
                   3, 15, "cannot read admin token_file");
  auto spaced = dir.write("spaced", "two words\n");
  expect_one_error("admin:\n  listen: 127.0.0.1:9000\n  token_file: " + spaced + "\n" + std::string(minimal), 3, 15,
                   "printable ASCII");
}

TEST(config_admin, non_loopback_admin_needs_a_token_file) {
  expect_one_error("admin:\n  listen: 0.0.0.0:9000\n" + std::string(minimal), 2, 11, "set admin.token_file");
  expect_one_error("admin:\n  listen: \"[::]:9000\"\n" + std::string(minimal), 2, 11, "set admin.token_file");
  expect_one_error("admin:\n  listen: 10.0.0.1:9000\n" + std::string(minimal), 2, 11, "is not loopback");
  for (const char* loopback : {"127.0.0.1:9000", "127.9.9.9:9000", "\"[::1]:9000\""}) {
    auto r = load(std::string("admin: { listen: ") + loopback + " }\n" + std::string(minimal));
    EXPECT_TRUE(r.cfg.has_value()) << loopback << ": " << all_errors(r);
  }
  temp_dir dir;
  auto token = dir.write("token", "s3cret");
  auto r = load("admin: { listen: 0.0.0.0:9000, token_file: " + token + " }\n" + std::string(minimal));
  EXPECT_TRUE(r.cfg.has_value()) << all_errors(r);
}

}  // namespace
}  // namespace spillway::config

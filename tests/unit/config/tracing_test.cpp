// The tracing section (src/config/top_level.cpp).

#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

TEST(config_tracing, defaults_and_a_collector) {
  auto r = load(std::string(minimal) + "tracing: {}\n");
  ASSERT_TRUE(r.cfg) << all_errors(r);
  ASSERT_TRUE(r.cfg->tracing);
  EXPECT_EQ(r.cfg->tracing->sample, 1);
  EXPECT_FALSE(r.cfg->tracing->otlp);
  EXPECT_EQ(r.cfg->tracing->service_name, "spillway");
  EXPECT_FALSE(load(minimal).cfg->tracing);  // no section: no tracing

  r = load(
      std::string(minimal) +
      "tracing: { sample: 100%, otlp: \"http://127.0.0.1:4318/v1/traces\", service_name: edge, max_queue: 100 }\n");
  ASSERT_TRUE(r.cfg) << all_errors(r);
  const auto& t = *r.cfg->tracing;
  EXPECT_EQ(t.sample, 100);
  ASSERT_TRUE(t.otlp);
  EXPECT_EQ(t.otlp->port, 4318);
  EXPECT_EQ(t.otlp_path, "/v1/traces");
  EXPECT_EQ(t.service_name, "edge");
  EXPECT_EQ(t.max_queue, 100u);
  r = load(std::string(minimal) + "tracing: { otlp: \"http://collector:4318\" }\n");
  ASSERT_TRUE(r.cfg) << all_errors(r);
  EXPECT_EQ(r.cfg->tracing->otlp_path, "/v1/traces");
  EXPECT_EQ(r.cfg->tracing->otlp->host, "collector");
}

TEST(config_tracing, bad_values_say_where) {
  expect_one_error(std::string(minimal) + "tracing: { otlp: \"https://c:4318/v1/traces\" }\n", 3, 18,
                   "https is not supported");
  expect_one_error(std::string(minimal) + "tracing: { otlp: \"http://c/v1/traces\" }\n", 3, 18, "invalid tracing otlp");
  expect_one_error(std::string(minimal) + "tracing: { sample: 101% }\n", 3, 20, "tracing sample");
  expect_one_error(std::string(minimal) + "tracing: { samples: 1% }\n", 3, 12, "samples");
}

}  // namespace
}  // namespace spillway::config

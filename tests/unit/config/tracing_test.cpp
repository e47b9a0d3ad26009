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

TEST(config_tracing, a_reload_summary_says_what_changed_in_tracing) {
  auto with = [](std::string_view tracing) {
    auto r = load(std::string(minimal) + std::string(tracing));
    EXPECT_TRUE(r.cfg) << all_errors(r);
    return *r.cfg;
  };
  const auto none = with("");
  const auto counted = with("tracing: {}\n");
  const auto exported = with(
      "tracing: { sample: 100%, otlp: \"http://127.0.0.1:4318/v1/traces\", service_name: edge, max_queue: 100 }\n");
  auto changes = [](const config& a, const config& b) {
    std::vector<std::string> lines;
    for (auto& l : diff(a, b)) {
      if (l.starts_with("tracing")) {
        lines.push_back(l);
      }
    }
    return lines;
  };
  using lines = std::vector<std::string>;
  EXPECT_EQ(changes(none, exported), lines{"tracing on (sample 100%, spans to http://127.0.0.1:4318/v1/traces)"});
  EXPECT_EQ(changes(none, counted), lines{"tracing on (sample 1%, no collector: spans only counted)"});
  EXPECT_EQ(changes(exported, none), lines{"tracing off"});
  EXPECT_EQ(changes(counted, exported),
            lines{"tracing changed (sample 1% -> 100%, otlp none -> http://127.0.0.1:4318/v1/traces, service_name "
                  "spillway -> edge, max_queue 8192 -> 100)"});
  EXPECT_TRUE(changes(exported, exported).empty());
  EXPECT_TRUE(changes(none, none).empty());
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

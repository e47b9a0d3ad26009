#include "admin/prometheus.h"

#include <gtest/gtest.h>

namespace spillway::admin {
namespace {

TEST(admin_prometheus, label_values_escape_backslash_quote_and_newline) {
  EXPECT_EQ(prometheus_label("plain-1.2:80"), "plain-1.2:80");
  EXPECT_EQ(prometheus_label("a\"b"), "a\\\"b");
  EXPECT_EQ(prometheus_label("a\\b"), "a\\\\b");
  EXPECT_EQ(prometheus_label("a\nb"), "a\\nb");
  // Nothing else is escaped (tabs and UTF-8 are valid in label values).
  EXPECT_EQ(prometheus_label("a\tb\xc3\xa9"), "a\tb\xc3\xa9");
  EXPECT_EQ(label_set({{"upstream", "we\"ird"}, {"backend", "x\\y"}}), "upstream=\"we\\\"ird\",backend=\"x\\\\y\"");
  EXPECT_EQ(label_set({}), "");
}

TEST(admin_prometheus, samples_with_and_without_labels) {
  prometheus_text w;
  w.family("spillway_x_total", "counter", "things");
  w.sample("spillway_x_total", label_set({{"a", "b"}}), 3);
  w.sample("spillway_x_total", "", std::uint64_t{4});
  EXPECT_EQ(w.str(),
            "# HELP spillway_x_total things\n# TYPE spillway_x_total counter\n"
            "spillway_x_total{a=\"b\"} 3\nspillway_x_total 4\n");
}

TEST(admin_prometheus, histogram_buckets_are_cumulative_and_end_with_inf) {
  stats::histogram_totals t;
  t.counts[0] = 2;      // <= 50 us
  t.counts[4] = 1;      // <= 1 ms
  t.counts.back() = 1;  // over 10 s
  t.sum_us = 12'001'100;
  prometheus_text w;
  w.histogram("h", "l=\"1\"", t);
  const auto& out = w.str();
  EXPECT_NE(out.find("h_bucket{l=\"1\",le=\"5e-05\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_bucket{l=\"1\",le=\"0.001\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_bucket{l=\"1\",le=\"10\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_bucket{l=\"1\",le=\"+Inf\"} 4\nh_sum{l=\"1\"} 12.0011\nh_count{l=\"1\"} 4\n"),
            std::string::npos)
      << out;
}

TEST(admin_prometheus, status_classes_have_a_code_label_each) {
  prometheus_text w;
  w.status_classes("r", "x=\"y\"", std::array<std::uint64_t, 6>{1, 0, 5, 0, 2, 3});
  EXPECT_EQ(w.str(),
            "r{x=\"y\",code=\"none\"} 1\nr{x=\"y\",code=\"1xx\"} 0\nr{x=\"y\",code=\"2xx\"} 5\n"
            "r{x=\"y\",code=\"3xx\"} 0\nr{x=\"y\",code=\"4xx\"} 2\nr{x=\"y\",code=\"5xx\"} 3\n");
}

}  // namespace
}  // namespace spillway::admin

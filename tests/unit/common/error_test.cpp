#include "common/error.h"

#include "common/stats.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace spillway {
namespace {

TEST(error_table, names_unique_and_kinds_in_order) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < error_table.size(); ++i) {
    const auto& row = error_table[i];
    EXPECT_FALSE(row.name.empty()) << i;
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_EQ(&info(static_cast<error_kind>(i)), &row);
    EXPECT_EQ(to_string(static_cast<error_kind>(i)), row.name);
  }
  EXPECT_FALSE(names.contains("other"));  // the metrics label of everything else
}

TEST(error_table, rows_with_a_status_come_first) {
  for (std::size_t i = 0; i < error_table.size(); ++i) {
    if (i < local_reply_count) {
      EXPECT_GE(error_table[i].status, 400) << error_table[i].name;
      EXPECT_LE(error_table[i].status, 599) << error_table[i].name;
    } else {
      EXPECT_EQ(error_table[i].status, 0) << error_table[i].name;
    }
  }
  EXPECT_EQ(status_of(error_kind::no_route), 404);
  EXPECT_EQ(status_of(error_kind::no_healthy_upstream), 503);
  EXPECT_EQ(status_of(error_kind::upstream_timeout), 504);
  EXPECT_EQ(status_of(error_kind::idle_timeout), 0);
}

TEST(error_table, stats_reasons_follow_the_table) {
  ASSERT_EQ(stats::local_reply_reasons.size(), local_reply_count + 1);
  for (std::size_t i = 0; i < local_reply_count; ++i) {
    EXPECT_EQ(std::string_view(stats::local_reply_reasons[i]), error_table[i].name) << i;
  }
  EXPECT_EQ(std::string_view(stats::local_reply_reasons[local_reply_count]), "other");
}

TEST(error_table, find_error) {
  for (const auto& row : error_table) {
    EXPECT_EQ(find_error(row.name), &row) << row.name;
  }
  EXPECT_EQ(find_error("other"), nullptr);
  EXPECT_EQ(find_error(""), nullptr);
  EXPECT_EQ(find_error("No_Route"), nullptr);
  EXPECT_EQ(find_error("no_route "), nullptr);
  static_assert(find_error("upstream_reset") == &info(error_kind::upstream_reset));
}

// The README's access log section: NR no route, UH no healthy upstream, UF connect failure, UO
// overflow, UT timeout, UC upstream reset, UPE upstream protocol error, DPE malformed request, DT
// header timeout (DC, client gone, is not an answer Spillway makes).
TEST(error_table, flags_are_the_documented_envoy_ones) {
  const std::set<std::string> documented = {"NR", "UH", "UF", "UO", "UT", "UC", "UPE", "DPE", "DT", "RL"};
  for (const auto& row : error_table) {
    if (row.flag != nullptr) {
      EXPECT_TRUE(documented.contains(row.flag)) << row.name << " " << row.flag;
    }
  }
  const std::pair<error_kind, const char*> named[] = {
      {error_kind::no_route, "NR"},
      {error_kind::no_healthy_upstream, "UH"},
      {error_kind::upstream_connect_failure, "UF"},
      {error_kind::upstream_overloaded, "UO"},
      {error_kind::upstream_timeout, "UT"},
      {error_kind::upstream_reset, "UC"},
      {error_kind::upstream_protocol_error, "UPE"},
      {error_kind::malformed_request, "DPE"},
      {error_kind::header_timeout, "DT"},
      {error_kind::rate_limited, "RL"},
  };
  for (const auto& [kind, flag] : named) {
    ASSERT_NE(info(kind).flag, nullptr) << to_string(kind);
    EXPECT_EQ(std::string(info(kind).flag), flag) << to_string(kind);
  }
  for (std::size_t i = 0; i < local_reply_count; ++i) {
    EXPECT_NE(error_table[i].flag, nullptr) << error_table[i].name;  // every answer has a flag
  }
  EXPECT_EQ(info(error_kind::idle_timeout).flag, nullptr);  // README: no flag for an idle L4 end
}

TEST(error_table, sources_and_retryable) {
  for (const auto& row : error_table) {
    const bool upstream_flag = row.flag != nullptr && row.flag[0] == 'U' && row.flag != std::string_view("UH") &&
                               row.flag != std::string_view("UO");
    if (row.flag != nullptr && row.flag[0] == 'D') {
      EXPECT_EQ(row.source, error_source::downstream) << row.name;
    }
    if (upstream_flag) {
      EXPECT_EQ(row.source, error_source::upstream) << row.name;
    }
    if (row.retryable) {
      EXPECT_EQ(row.source, error_source::upstream) << row.name;  // only a backend's failure is tried elsewhere
    }
  }
  EXPECT_TRUE(info(error_kind::upstream_connect_failure).retryable);
  EXPECT_TRUE(info(error_kind::upstream_reset).retryable);
  EXPECT_TRUE(info(error_kind::upstream_timeout).retryable);
  EXPECT_FALSE(info(error_kind::upstream_protocol_error).retryable);
}

}  // namespace
}  // namespace spillway

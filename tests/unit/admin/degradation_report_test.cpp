#include "admin/degradation_report.h"

#include "admin_fixture.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>

namespace spillway::admin {
namespace {

namespace json = boost::json;

TEST(admin_degradation_report, json_lists_each_incident) {
  testing::admin_fixture f;
  const auto text = degradation_json(f.s);
  EXPECT_EQ(text.back(), '\n');
  auto v = json::parse(text);
  const auto& incidents = v.at("incidents").as_array();
  ASSERT_EQ(incidents.size(), 1u);
  const auto& i = incidents[0].as_object();
  EXPECT_EQ(i.at("upstream"), "app");
  EXPECT_EQ(i.at("backend"), "10.1.2.3:9003");
  EXPECT_EQ(i.at("reason"), "ejected");
  EXPECT_EQ(i.at("failed_before_out"), 3);
  EXPECT_EQ(i.at("retried_before_out"), 1);
  EXPECT_EQ(i.at("failed_while_out"), 0);
  EXPECT_TRUE(i.at("failed_at").is_string());
  EXPECT_TRUE(i.at("marked_out_at").is_string());
  EXPECT_GE(i.at("detection_seconds").to_number<double>(), 0.0);
  // Still out: no comeback yet.
  EXPECT_TRUE(i.at("came_back_at").is_null());
  EXPECT_TRUE(i.at("in_rotation_at").is_null());
  EXPECT_TRUE(i.at("out_seconds").is_null());
}

TEST(admin_degradation_report, a_closed_incident_has_its_comeback_times) {
  testing::admin_fixture f;
  f.journal.sign_of_life(*f.ejected);
  f.ejected->mark_in(upstream::out_kind::ejection);  // journals "ejection ejected->in"
  auto v = json::parse(degradation_json(f.s));
  const auto& i = v.at("incidents").at(0).as_object();
  EXPECT_TRUE(i.at("came_back_at").is_string());
  EXPECT_TRUE(i.at("in_rotation_at").is_string());
  EXPECT_GE(i.at("out_seconds").to_number<double>(), 0.0);
  const auto text = degradation_text(f.s);
  EXPECT_EQ(text.find(" - "), std::string::npos) << text;  // both times known
}

TEST(admin_degradation_report, text_is_a_table_with_a_legend) {
  testing::admin_fixture f;
  const auto text = degradation_text(f.s);
  EXPECT_EQ(text.rfind("upstream     backend                reason        failed at (UTC)", 0), 0u) << text;
  const auto row = text.find("\napp          10.1.2.3:9003          ejected       ");
  ASSERT_NE(row, std::string::npos) << text;
  EXPECT_NE(text.find("       3        1        -         -\n", row), std::string::npos) << text;
  EXPECT_NE(text.find("\ndetect_s: first failure to out of rotation"), std::string::npos);
}

TEST(admin_degradation_report, without_a_journal_there_is_nothing_to_report) {
  state s;
  EXPECT_EQ(degradation_json(s), "{\"incidents\":[]}\n");
  const auto text = degradation_text(s);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);  // the header row only
  // An empty journal: the header and the legend.
  upstream::journal j;
  s.journal = &j;
  EXPECT_EQ(degradation_json(s), "{\"incidents\":[]}\n");
  EXPECT_NE(degradation_text(s).find("detect_s:"), std::string::npos);
}

}  // namespace
}  // namespace spillway::admin

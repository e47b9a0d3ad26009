#include "admin/metrics_text.h"

#include "admin_fixture.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

namespace spillway::admin {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

// The family a sample belongs to: its name without the histogram suffixes.
std::string family_of(std::string name, const std::set<std::string>& histograms) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      auto base = name.substr(0, name.size() - s.size());
      if (histograms.count(base) > 0) {
        return base;
      }
    }
  }
  return name;
}

TEST(admin_metrics_text, every_family_has_one_help_and_one_type_before_its_samples) {
  testing::admin_fixture f;
  const auto text = metrics_text(f.s);
  std::map<std::string, int> helps;
  std::map<std::string, std::string> types;
  std::set<std::string> histograms;
  std::set<std::string> sampled;
  std::istringstream in(text);
  std::string line;
  std::string current;  // the family whose HELP/TYPE came last
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      current = line.substr(7, line.find(' ', 7) - 7);
      ++helps[current];
      EXPECT_EQ(sampled.count(current), 0u) << current << ": HELP after its samples";
    } else if (line.rfind("# TYPE ", 0) == 0) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(name, current) << "TYPE without its HELP";
      EXPECT_EQ(types.count(name), 0u) << name << ": two TYPE lines";
      types[name] = line.substr(line.rfind(' ') + 1);
      if (types[name] == "histogram") {
        histograms.insert(name);
      }
    } else {
      auto name = line.substr(0, line.find_first_of("{ "));
      auto family = family_of(name, histograms);
      EXPECT_EQ(family, current) << line << ": a sample outside its family";
      EXPECT_EQ(family.rfind("spillway_", 0), 0u) << line;
      sampled.insert(family);
    }
  }
  for (const auto& [name, n] : helps) {
    EXPECT_EQ(n, 1) << name;
    EXPECT_EQ(types.count(name), 1u) << name;
  }
  EXPECT_GT(helps.size(), 40u);
}

TEST(admin_metrics_text, a_hosts_counters_and_states_appear_with_its_labels) {
  testing::admin_fixture f;
  const auto text = metrics_text(f.s);
  const std::string app = "upstream=\"app\",backend=\"127.0.0.1:9001\"";
  for (const auto& line : {
           "spillway_backend_up{" + app + "} 1",
           "spillway_backend_requests_total{" + app + "} 42",
           "spillway_backend_failures_total{" + app + "} 2",
           "spillway_backend_connect_failures_total{" + app + "} 1",
           "spillway_backend_active_requests{" + app + "} 3",
           "spillway_backend_connections{" + app + "} 4",
           "spillway_backend_retried_total{" + app + "} 1",
           "spillway_backend_responses_total{" + app + ",code=\"2xx\"} 40",
           "spillway_backend_responses_total{" + app + ",code=\"5xx\"} 2",
           "spillway_backend_request_duration_seconds_count{" + app + "} 42",
           "spillway_breaker_transitions_total{" + app + ",from=\"closed\",to=\"open\"} 5",
           std::string("spillway_backend_healthy{upstream=\"app\",backend=\"127.0.0.1:9002\"} 0"),
           std::string("spillway_health_check_failures_total{upstream=\"app\",backend=\"127.0.0.1:9002\"} 7"),
           // A hostname's address carries the name too.
           std::string("spillway_backend_ejected{upstream=\"app\",backend=\"10.1.2.3:9003\","
                       "name=\"backend.internal:9003\"} 1"),
           std::string("spillway_ejections_total{upstream=\"app\",backend=\"10.1.2.3:9003\","
                       "name=\"backend.internal:9003\"} 1"),
           std::string("spillway_dns_addresses{upstream=\"app\",name=\"backend.internal:9003\"} 1"),
           std::string("spillway_dns_lookups_total{upstream=\"app\",name=\"backend.internal:9003\"} 12"),
           std::string("spillway_dns_lookup_failures_total{upstream=\"app\",name=\"backend.internal:9003\"} 2"),
           std::string("spillway_dns_address_changes_total{upstream=\"app\",name=\"backend.internal:9003\","
                       "change=\"added\"} 3"),
           std::string("spillway_dns_address_changes_total{upstream=\"app\",name=\"backend.internal:9003\","
                       "change=\"removed\"} 1"),
           std::string("spillway_breaker_state{upstream=\"we\\\"ird\\\\up\\nstream\",backend=\"10.0.0.1:80\"} 1"),
       }) {
    EXPECT_TRUE(has_line(text, line)) << line;
  }
}

TEST(admin_metrics_text, upstreams_listeners_routes_and_the_process_are_counted) {
  testing::admin_fixture f;
  const auto text = metrics_text(f.s);
  for (const char* line : {
           "spillway_upstream_requests_active{upstream=\"app\"} 3",
           "spillway_retries_total{upstream=\"app\",result=\"success\"} 1",
           "spillway_retries_total{upstream=\"app\",result=\"failure\"} 2",
           "spillway_upstream_overflow_total{upstream=\"app\",limit=\"max_pending\"} 9",
           "spillway_upstream_connect_duration_seconds_count{upstream=\"app\"} 1",
           "spillway_listener_connections_total{listener=\"web\"} 10",
           "spillway_listener_connections_active{listener=\"web\"} 3",
           "spillway_listener_local_replies_total{listener=\"web\",reason=\"malformed_request\"} 2",
           "spillway_listener_requests_total{listener=\"web\",code=\"4xx\"} 2",
           "spillway_listener_received_bytes_total{listener=\"web\"} 4200",
           "spillway_route_requests_total{listener=\"web\",route=\"0\",upstream=\"app\",code=\"2xx\"} 1",
           "spillway_access_log_dropped_lines_total 3",
           "spillway_workers 2",
           "spillway_config_reloads_total{result=\"failure\"} 1",
           "spillway_config_reload_triggers_total{trigger=\"signal\"} 2",
           "spillway_config_last_reload_success 0",
           "spillway_config_generation 4",
       }) {
    EXPECT_TRUE(has_line(text, line)) << line;
  }
}

TEST(admin_metrics_text, an_empty_state_still_has_every_family) {
  const auto empty = metrics_text(state{});
  testing::admin_fixture f;
  const auto full = metrics_text(f.s);
  auto helps = [](const std::string& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("# HELP ", 0) == 0) {
        out.insert(line);
      }
    }
    return out;
  };
  EXPECT_EQ(helps(empty), helps(full));
  EXPECT_TRUE(has_line(empty, "spillway_config_last_reload_success 1"));
}

}  // namespace
}  // namespace spillway::admin

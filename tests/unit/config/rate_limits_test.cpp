// rate_limits and the routes and tcp listeners that name them (src/config/rate_limits.cpp).

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

// An http listener whose one route names `route_policy`, then `policies` as the rate_limits list.
std::string with_rate_limits(std::string_view route_policy, std::string_view policies) {
  return std::string(R"(listeners:
  - listen: 127.0.0.1:8080
    routes: [ { upstream: app, rate_limit: )") +
         std::string(route_policy) + R"( } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
rate_limits:
)" + std::string(policies);
}

TEST(config_rate_limits, a_policy_with_its_defaults_and_every_key) {
  auto r = load(with_rate_limits("a", R"(  - { name: a, rate: 100/s }
  - { name: b, rate: 6000/m, burst: 50, key: "header:X-Tenant", dry_run: true, max_keys: 10 }
  - { name: c, rate: 7/h, key: route }
  - { name: d, rate: 1/s, key: global }
)"));
  ASSERT_TRUE(r.cfg) << all_errors(r);
  const auto& rl = r.cfg->rate_limits;
  ASSERT_EQ(rl.size(), 4u);
  EXPECT_EQ(rl[0].key, rate_limit::key_kind::client_ip);
  EXPECT_EQ(rl[0].count, 100u);
  EXPECT_EQ(rl[0].period, seconds(1));
  EXPECT_EQ(rl[0].burst, 100u);  // one second's worth
  EXPECT_FALSE(rl[0].dry_run);
  EXPECT_EQ(rl[0].max_keys, 100000u);
  EXPECT_EQ(rl[0].rate_text, "100/s");
  EXPECT_EQ(rl[1].key, rate_limit::key_kind::header);
  EXPECT_EQ(rl[1].header, "x-tenant");
  EXPECT_EQ(rl[1].period, std::chrono::minutes(1));
  EXPECT_EQ(rl[1].burst, 50u);
  EXPECT_TRUE(rl[1].dry_run);
  EXPECT_EQ(rl[1].max_keys, 10u);
  EXPECT_EQ(rl[2].key, rate_limit::key_kind::route);
  EXPECT_EQ(rl[2].burst, 1u);  // under one a second: one at a time
  EXPECT_EQ(rl[3].key, rate_limit::key_kind::global);
  EXPECT_EQ(r.cfg->listeners[0].routes[0].rate_limit, "a");
}

TEST(config_rate_limits, bad_rates_and_keys_say_where_and_why) {
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 100 }\n"), 6, 22,
                   "expected COUNT/s, COUNT/m or COUNT/h");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 100/d }\n"), 6, 22, "invalid rate \"100/d\"");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 0/s }\n"), 6, 22, "the count must be from 1");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: -5/s }\n"), 6, 22, "invalid rate");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 2000000000/s }\n"), 6, 22, "one per nanosecond");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 1/s, burst: 0 }\n"), 6, 34, "invalid rate limit burst");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 1/s, key: client }\n"), 6, 32,
                   "unknown rate limit key \"client\"");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 1/s, key: \"header:bad name\" }\n"), 6, 32,
                   "header:NAME needs a header name");
  expect_one_error(with_rate_limits("a", "  - { name: a }\n"), 6, 5, "needs a \"rate\"");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 1/s, on_unavailable: deny }\n"), 6, 27,
                   "apply to a shared policy only");
}

TEST(config_rate_limits, a_shared_policy_names_its_redis) {
  auto r =
      load(with_rate_limits("a", R"(  - { name: a, rate: 1/s, shared: "redis://127.0.0.1:6390", on_unavailable: deny }
  - { name: b, rate: 1/s, shared: "redis://redis.internal", shared_timeout: 20ms }
)"));
  ASSERT_TRUE(r.cfg) << all_errors(r);
  const auto& a = r.cfg->rate_limits[0];
  ASSERT_TRUE(a.shared);
  EXPECT_EQ(a.shared->text, "127.0.0.1:6390");
  EXPECT_EQ(a.on_unavailable, rate_limit::unavailable::deny);
  EXPECT_EQ(a.shared_timeout, milliseconds(5));
  const auto& b = r.cfg->rate_limits[1];
  EXPECT_EQ(b.shared->host, "redis.internal");
  EXPECT_EQ(b.shared->port, 6379);
  EXPECT_EQ(b.on_unavailable, rate_limit::unavailable::local);
  EXPECT_EQ(b.shared_timeout, milliseconds(20));

  for (const char* bad : {"http://127.0.0.1:6379", "redis://127.0.0.1:6379/2", "redis://user@h:6379", "redis://:6379",
                          "redis://srv:_redis._tcp.x"}) {
    expect_one_error(with_rate_limits("a", fmt::format("  - {{ name: a, rate: 1/s, shared: \"{}\" }}\n", bad)), 6, 35,
                     "invalid shared");
  }
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 1/s, shared: \"redis://h\", shared_timeout: 2s }\n"), 6,
                   64, "over 1s");
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 1/s, shared: \"redis://h\", on_unavailable: open }\n"),
                   6, 64, "unknown on_unavailable");
}

TEST(config_rate_limits, names_are_unique_and_references_must_exist) {
  expect_one_error(with_rate_limits("a", "  - { name: a, rate: 1/s }\n  - { name: a, rate: 2/s }\n"), 7, 13,
                   "duplicate rate limit name \"a\" (first at line 6)");
  expect_one_error(with_rate_limits("per-clinet", "  - { name: per-client, rate: 1/s }\n"), 3, 44,
                   "route refers to unknown rate limit \"per-clinet\" (did you mean \"per-client\"?)");
}

TEST(config_rate_limits, a_tcp_listener_limits_connections_by_client_or_globally) {
  auto tcp = [](std::string_view key) {
    return std::string(R"(listeners:
  - { name: db, listen: 127.0.0.1:5432, protocol: tcp, upstream: app, rate_limit: conns }
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
rate_limits: [ { name: conns, rate: 10/s, key: )") +
           std::string(key) + " } ]\n";
  };
  auto r = load(tcp("client_ip"));
  ASSERT_TRUE(r.cfg) << all_errors(r);
  EXPECT_EQ(r.cfg->listeners[0].rate_limit, "conns");
  EXPECT_TRUE(load(tcp("global")).cfg) << all_errors(load(tcp("global")));
  expect_one_error(tcp("route"), 2, 83, "a tcp listener's policy is keyed by client_ip or global");
  // On an http listener, a listener-wide rate_limit is a mistake: it goes on routes.
  expect_one_error(R"(listeners:
  - { listen: 127.0.0.1:8080, rate_limit: a, routes: [ { upstream: app } ] }
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
rate_limits: [ { name: a, rate: 1/s } ]
)",
                   2, 31, "takes one per route");
}

TEST(config_rate_limits, a_reload_summary_names_policies_that_changed) {
  auto a = load(with_rate_limits("a", "  - { name: a, rate: 10/s }\n  - { name: b, rate: 1/s }\n"));
  auto b = load(with_rate_limits("a", "  - { name: a, rate: 20/s }\n  - { name: c, rate: 1/s, dry_run: true }\n"));
  ASSERT_TRUE(a.cfg && b.cfg) << all_errors(a) << all_errors(b);
  auto changes = diff(*a.cfg, *b.cfg);
  auto has = [&](std::string_view line) { return std::find(changes.begin(), changes.end(), line) != changes.end(); };
  EXPECT_TRUE(has("rate limit \"a\" changed (its budgets start full)"));
  EXPECT_TRUE(has("rate limit \"c\" added"));
  EXPECT_TRUE(has("rate limit \"b\" removed"));
  EXPECT_TRUE(same_rate_limit_budget(a.cfg->rate_limits[0], a.cfg->rate_limits[0]));
  EXPECT_FALSE(same_rate_limit_budget(a.cfg->rate_limits[0], b.cfg->rate_limits[0]));
}

}  // namespace
}  // namespace spillway::config

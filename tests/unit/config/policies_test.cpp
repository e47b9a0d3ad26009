// The policies of an upstream (src/config/policies.cpp), for the defaults that depend on the
// user's other values: health_check.timeout follows a short interval, and limits.max_pending may be
// 0 (SPEC sections 2 and 5).

#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

// One upstream "app" with `policies` (YAML lines indented by four spaces) added to it.
std::string with_policies(std::string_view policies) {
  return std::string(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
)") + std::string(policies);
}

// The health check of the only upstream of a config that must load.
health_check health_of(std::string_view policies) {
  auto r = load(with_policies(policies));
  EXPECT_TRUE(r.cfg.has_value()) << all_errors(r);
  return r.cfg ? r.cfg->upstreams.at(0).health : health_check{};
}

TEST(config_policies, health_check_timeout_defaults_to_1s_or_the_interval_when_shorter) {
  auto hc = health_of("");
  EXPECT_EQ(hc.interval, seconds(2));
  EXPECT_EQ(hc.timeout, seconds(1));

  // An interval under 1s without a timeout is valid: the timeout follows it.
  hc = health_of("    health_check: { interval: 500ms }\n");
  EXPECT_EQ(hc.interval, milliseconds(500));
  EXPECT_EQ(hc.timeout, milliseconds(500));
  hc = health_of("    health_check: { http: { path: /h }, interval: 1ms }\n");
  EXPECT_EQ(hc.timeout, milliseconds(1));

  // From 1s up, the default stays 1s.
  hc = health_of("    health_check: { interval: 1s }\n");
  EXPECT_EQ(hc.timeout, seconds(1));
  hc = health_of("    health_check: { interval: 30s }\n");
  EXPECT_EQ(hc.timeout, seconds(1));

  // A timeout the user gives is kept as given, whatever the interval.
  hc = health_of("    health_check: { interval: 500ms, timeout: 200ms }\n");
  EXPECT_EQ(hc.timeout, milliseconds(200));
  hc = health_of("    health_check: { interval: 500ms, timeout: 500ms }\n");
  EXPECT_EQ(hc.timeout, milliseconds(500));
  hc = health_of("    health_check: { interval: 10s, timeout: 5s }\n");
  EXPECT_EQ(hc.timeout, seconds(5));
}

TEST(config_policies, health_check_timeout_longer_than_its_interval_is_still_an_error) {
  // Both given: the user's two values contradict each other.
  expect_one_error(with_policies("    health_check: { interval: 500ms, timeout: 1s }\n"), 5, 47,
                   "health_check timeout (1s) must not be longer than its interval (500ms)");
  // A given timeout against the default interval (2s): the message names the interval to raise.
  expect_one_error(with_policies("    health_check: { timeout: 3s }\n"), 5, 30,
                   "health_check timeout (3s) must not be longer than its interval (2s)");
  // A bad interval is reported alone, not also as a conflict with the timeout.
  expect_one_error(with_policies("    health_check: { interval: 0s }\n"), 5, 31, "interval must be greater than 0");
  expect_one_error(with_policies("    health_check: { interval: soon, timeout: 1s }\n"), 5, 31,
                   R"(invalid duration "soon")");
}

TEST(config_policies, grpc_health_check) {
  auto hc = health_of("    protocol: http2\n    health_check: { grpc: { service: api.v1.Users } }\n");
  EXPECT_EQ(hc.type, health_check::kind::grpc);
  EXPECT_EQ(hc.grpc_service, "api.v1.Users");
  // `grpc: {}`, a bare `grpc:` and an empty service ask about the whole server
  for (const char* form : {"{ grpc: {} }", "{ grpc: { service: \"\" } }", "\n      grpc:"}) {
    hc = health_of(std::string("    protocol: http2\n    health_check: ") + form + "\n");
    EXPECT_EQ(hc.type, health_check::kind::grpc) << form;
    EXPECT_EQ(hc.grpc_service, "") << form;
  }
  // http checks of an http2 upstream speak HTTP/2: allowed
  hc = health_of("    protocol: http2\n    health_check: { http: { path: /ready } }\n");
  EXPECT_EQ(hc.type, health_check::kind::http);
}

TEST(config_policies, grpc_health_check_errors) {
  expect_one_error(with_policies("    health_check: { grpc: {} }\n"), 5, 21,
                   R"(upstream "app": a grpc health check needs protocol: http2 (gRPC is HTTP/2))");
  expect_one_error(with_policies("    protocol: http2\n    health_check: { grpc: {}, tcp: {} }\n"), 6, 31,
                   "health_check takes one of http, grpc or tcp");
  expect_one_error(with_policies("    protocol: http2\n    health_check: { grpc: { name: x } }\n"), 6, 29,
                   R"(unknown key "name" in health_check grpc)");
  expect_one_error(with_policies("    protocol: http2\n    health_check: { grpc: { service: [a] } }\n"), 6, 38,
                   "health_check grpc service must be a single value, got a list");
}

TEST(config_policies, max_pending_0_means_no_queue) {
  auto r = load(minimal);
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_EQ(r.cfg->upstreams[0].limit.max_pending, 256u);

  r = load(with_policies("    limits: { max_pending: 0 }\n"));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  const auto& lim = r.cfg->upstreams[0].limit;
  EXPECT_EQ(lim.max_pending, 0u);
  EXPECT_EQ(lim.max_connections, 1024u);  // the other limits keep their defaults
  EXPECT_EQ(lim.max_requests, 1024u);

  expect_one_error(with_policies("    limits: { max_pending: -1 }\n"), 5, 28,
                   R"(invalid max_pending "-1": expected an integer of at least 0)");
  // The other two limits still need at least 1: a limit of 0 connections would refuse everything.
  expect_one_error(with_policies("    limits: { max_connections: 0 }\n"), 5, 32,
                   R"(invalid max_connections "0": expected an integer of at least 1)");
}

}  // namespace
}  // namespace spillway::config

// What a reload would change (src/config/diff.cpp), one line per listener, upstream and backend.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

config loaded(std::string_view text) {
  auto r = load(text);
  EXPECT_TRUE(r.cfg.has_value()) << all_errors(r);
  return r.cfg.value_or(config{});
}

TEST(config_diff, nothing_changed_is_empty) { EXPECT_TRUE(diff(loaded(minimal), loaded(minimal)).empty()); }

TEST(config_diff, listeners_by_address) {
  auto old_cfg = loaded(R"(listeners:
  - { name: a, listen: 0.0.0.0:8080, routes: [ { upstream: app } ] }
  - { name: b, listen: 0.0.0.0:8081, routes: [ { upstream: app } ] }
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)");
  auto new_cfg = loaded(R"(listeners:
  - { name: a2, listen: 0.0.0.0:8080, max_request_body: 1k, routes: [ { match: { path_prefix: /x }, upstream: app } ] }
  - { name: c, listen: 0.0.0.0:8082, routes: [ { upstream: app } ] }
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)");
  EXPECT_EQ(
      diff(old_cfg, new_cfg),
      (std::vector<std::string>{
          R"(listener changed: "a2" on 0.0.0.0:8080 (renamed from "a", routes, size limits); its socket stays open)",
          R"(listener added: "c" on 0.0.0.0:8082)",
          R"(listener removed: "b" on 0.0.0.0:8081 (stops accepting, its connections drain))"}));
}

TEST(config_diff, upstreams_and_backends) {
  auto old_cfg = loaded(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - { name: app, backends: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 } ] }
  - { name: db, backends: [ { address: 127.0.0.1:9003 } ] }
  - { name: gone, backends: [ { address: 127.0.0.1:9004 } ] }
)");
  auto new_cfg = loaded(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    limits: { max_pending: 0 }
    backends: [ { address: 127.0.0.1:9001, weight: 5 }, { address: 127.0.0.1:9005 } ]
  - { name: db, health_check: false, backends: [ { address: 127.0.0.1:9003 } ] }
  - { name: new, backends: [ { address: 127.0.0.1:9006 } ] }
)");
  EXPECT_EQ(
      diff(old_cfg, new_cfg),
      (std::vector<std::string>{
          R"(upstream changed: "app" (limits))", R"(backend changed: "app" 127.0.0.1:9001 (weight 1 -> 5; state kept))",
          R"(backend added: "app" 127.0.0.1:9005 (starts unknown until its first check))",
          R"(backend removed: "app" 127.0.0.1:9002 (its in-flight requests finish))",
          R"(upstream changed: "db" (health_check))",
          R"(backend reset: "db" 127.0.0.1:9003 (health check or breaker settings changed: its state starts over))",
          R"(upstream added: "new" (1 backends, new: unknown until their first check))",
          R"(upstream removed: "gone")"}));
}

}  // namespace
}  // namespace spillway::config

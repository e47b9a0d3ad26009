// Loading whole configs (src/config/load.cpp, reader.cpp): documented defaults, the full example,
// files, and errors that any section can produce (unknown keys, wrong types, YAML syntax, order).

#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

// ---------------------------------------------------------------------------------------------
// Loading valid configs

TEST(config_load, minimal_config_gets_documented_defaults) {
  auto r = load(minimal);
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_TRUE(r.errors.empty());
  const auto& c = *r.cfg;
  EXPECT_EQ(c.path, "test.yaml");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.drain_timeout, seconds(10));
  EXPECT_EQ(c.admin_api.listen.host, "127.0.0.1");
  EXPECT_EQ(c.admin_api.listen.port, 9901);
  EXPECT_TRUE(c.admin_api.listen.is_ip);

  ASSERT_EQ(c.listeners.size(), 1u);
  const auto& l = c.listeners[0];
  EXPECT_EQ(l.name, "listener_0");
  EXPECT_EQ(l.listen.host, "0.0.0.0");
  EXPECT_EQ(l.listen.port, 8080);
  EXPECT_EQ(l.listen.text, "0.0.0.0:8080");
  EXPECT_EQ(l.proto, protocol::http);
  EXPECT_FALSE(l.tls.has_value());
  EXPECT_EQ(l.max_request_headers, 64u * 1024);
  EXPECT_EQ(l.max_request_body, 0u);
  EXPECT_EQ(l.where.line, 1);
  ASSERT_EQ(l.routes.size(), 1u);
  EXPECT_EQ(l.routes[0].upstream, "app");
  EXPECT_FALSE(l.routes[0].match.host.has_value());
  EXPECT_FALSE(l.routes[0].match.path_prefix.has_value());
  EXPECT_TRUE(l.routes[0].match.headers.empty());

  ASSERT_EQ(c.upstreams.size(), 1u);
  const auto& u = c.upstreams[0];
  EXPECT_EQ(u.name, "app");
  EXPECT_EQ(u.where.line, 2);
  EXPECT_EQ(u.balance, balance_policy::least_request);
  EXPECT_EQ(u.dns_refresh, seconds(5));
  EXPECT_FALSE(u.tls.has_value());
  ASSERT_EQ(u.backends.size(), 2u);
  EXPECT_EQ(u.backends[0].addr.text, "127.0.0.1:9001");
  EXPECT_EQ(u.backends[1].addr.port, 9002);
  EXPECT_EQ(u.backends[0].weight, 1u);
  EXPECT_FALSE(u.backends[0].backup);

  // Health checks, outlier detection, breakers, retries and timeouts are all on by default.
  EXPECT_TRUE(u.health.enabled);
  EXPECT_EQ(u.health.type, health_check::kind::tcp);
  EXPECT_EQ(u.health.interval, seconds(2));
  EXPECT_EQ(u.health.timeout, seconds(1));
  EXPECT_EQ(u.health.healthy_threshold, 2u);
  EXPECT_EQ(u.health.unhealthy_threshold, 3u);
  EXPECT_TRUE(u.outlier.enabled);
  EXPECT_EQ(u.outlier.consecutive_failures, 5u);
  EXPECT_EQ(u.outlier.max_ejection_percent, 50u);
  EXPECT_TRUE(u.breaker.enabled);
  EXPECT_EQ(u.breaker.failure_rate, 50);
  EXPECT_EQ(u.breaker.minimum_requests, 20u);
  EXPECT_EQ(u.limit.max_connections, 1024u);
  EXPECT_EQ(u.retry.attempts, 2u);
  EXPECT_TRUE(u.retry.on_connect_failure);
  EXPECT_TRUE(u.retry.on_reset);
  EXPECT_FALSE(u.retry.on_timeout);
  EXPECT_EQ(u.retry.on_status, (std::vector<int>{502, 503, 504}));
  EXPECT_EQ(u.retry.budget, 20);
  EXPECT_EQ(u.timeout.connect, seconds(1));
  EXPECT_EQ(u.timeout.request, seconds(15));
  EXPECT_EQ(u.timeout.header, seconds(10));
  EXPECT_EQ(u.timeout.idle, seconds(60));
  EXPECT_EQ(u.degrade.panic_threshold, 50);
  EXPECT_EQ(u.degrade.retry_after, seconds(5));

  EXPECT_EQ(c.find_upstream("app"), &c.upstreams[0]);
  EXPECT_EQ(c.find_upstream("nope"), nullptr);
  EXPECT_EQ(summary(c), "config OK: 1 listener, 1 upstream, 2 backends, 1 route");
}

// The SPEC's example, completed with the upstreams its routes name and with every commented-out
// option switched on.
constexpr std::string_view full_example = R"(workers: auto              # worker threads; auto = number of CPUs
drain_timeout: 10s
admin:
  listen: 127.0.0.1:9901

listeners:
  - name: public
    listen: 0.0.0.0:8080
    protocol: http
    tls:
      cert: certs/server.crt
      key: certs/server.key
    routes:
      - match: { host: API.example.com, path_prefix: /api/, headers: { X-Canary: "1" } }
        upstream: api
      - upstream: web
  - name: postgres
    listen: 0.0.0.0:6432
    protocol: tcp
    upstream: db
  - name: sni
    listen: "[::1]:8443"
    max_request_headers: 32k
    max_request_body: 10MiB
    tls:
      certificates: [ { cert: certs/a.crt, key: certs/a.key }, { cert: /ABS/certs/b.crt, key: certs/b.key } ]
    routes: [ { upstream: web } ]

upstreams:
  - name: web
    balance: least_request
    dns_refresh: 5s
    tls: { ca: certs/backends-ca.crt, sni: web.internal }
    backends:
      - address: 10.0.0.11:8080
        weight: 1
      - address: 10.0.0.12:8080
        weight: 3
      - address: 10.0.0.13:8080
        backup: true
    health_check:
      http: { path: /healthz, expect_status: [200, 204], host: health.internal }
      interval: 2s
      timeout: 1s
      healthy_threshold: 2
      unhealthy_threshold: 3
    outlier_detection:
      consecutive_failures: 5
      ejection_time: 10s
      max_ejection_percent: 50
    circuit_breaker:
      failure_rate: 50%
      slow_call_duration: 2s
      slow_call_rate: 100%
      window: 10s
      minimum_requests: 20
      open_duration: 5s
      half_open_requests: 3
    limits:
      max_connections: 1024
      max_pending: 256
      max_requests: 1024
    retries:
      attempts: 2
      on: [connect_failure, reset, 502, 503, 504]
      budget: 20%
    timeouts:
      connect: 1s
      request: 15s
      header: 10s
      idle: 60s
    degradation:
      panic_threshold: 50%
      retry_after: 5s
  - name: api
    balance: round_robin
    backends: [ { address: "api-1.internal:9000" }, { address: "[2001:db8::1]:9000" } ]
    health_check: { tcp: {}, interval: 500ms, timeout: 250ms }
    outlier_detection: false
    circuit_breaker: false
    retries: { attempts: 1, on: [timeout, 500], budget: 12.5% }
  - name: db
    balance: consistent_hash
    health_check: false
    retries: false
    backends:
      - address: db.internal:5432
  - name: unused
    balance: random
    backends: [ { address: 10.9.9.9:1 } ]
)";

TEST(config_load, full_example_loads) {
  temp_dir dir;
  for (const char* f : {"certs/server.crt", "certs/server.key", "certs/a.crt", "certs/a.key", "certs/b.crt",
                        "certs/b.key", "certs/backends-ca.crt"}) {
    dir.write(f, "dummy\n");
  }
  std::string text(full_example);
  text.replace(text.find("/ABS"), 4, dir.path().string());
  auto file = (dir.path() / "spillway.yaml").string();
  auto r = load_string(text, file);
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  const auto& c = *r.cfg;
  EXPECT_EQ(c.path, file);
  ASSERT_EQ(c.listeners.size(), 3u);
  ASSERT_EQ(c.upstreams.size(), 4u);

  const auto& pub = c.listeners[0];
  EXPECT_EQ(pub.name, "public");
  EXPECT_EQ(pub.where.line, 7);
  EXPECT_EQ(pub.where.col, 5);
  ASSERT_TRUE(pub.tls.has_value());
  ASSERT_EQ(pub.tls->certificates.size(), 1u);
  // Relative paths are resolved against the config file's directory.
  EXPECT_EQ(pub.tls->certificates[0].cert, (dir.path() / "certs/server.crt").string());
  EXPECT_EQ(pub.tls->certificates[0].key, (dir.path() / "certs/server.key").string());
  ASSERT_EQ(pub.routes.size(), 2u);
  const auto& m = pub.routes[0].match;
  EXPECT_EQ(m.host, "api.example.com");
  EXPECT_EQ(m.path_prefix, "/api/");
  ASSERT_EQ(m.headers.size(), 1u);
  EXPECT_EQ(m.headers[0].name, "x-canary");
  EXPECT_EQ(m.headers[0].value, "1");
  EXPECT_EQ(pub.routes[0].upstream, "api");
  EXPECT_EQ(pub.routes[0].where.line, 14);
  EXPECT_EQ(pub.routes[1].upstream, "web");

  const auto& pg = c.listeners[1];
  EXPECT_EQ(pg.proto, protocol::tcp);
  EXPECT_EQ(pg.upstream, "db");
  EXPECT_TRUE(pg.routes.empty());

  const auto& sni = c.listeners[2];
  EXPECT_EQ(sni.listen.host, "::1");
  EXPECT_EQ(sni.listen.port, 8443);
  EXPECT_TRUE(sni.listen.is_ip);
  EXPECT_EQ(sni.max_request_headers, 32u * 1024);
  EXPECT_EQ(sni.max_request_body, 10u * 1024 * 1024);
  ASSERT_TRUE(sni.tls.has_value());
  ASSERT_EQ(sni.tls->certificates.size(), 2u);
  EXPECT_EQ(sni.tls->certificates[1].cert, (dir.path() / "certs/b.crt").string());

  const auto* web = c.find_upstream("web");
  ASSERT_NE(web, nullptr);
  ASSERT_TRUE(web->tls.has_value());
  EXPECT_EQ(web->tls->ca, (dir.path() / "certs/backends-ca.crt").string());
  EXPECT_EQ(web->tls->sni, "web.internal");
  ASSERT_EQ(web->backends.size(), 3u);
  EXPECT_EQ(web->backends[1].weight, 3u);
  EXPECT_TRUE(web->backends[2].backup);
  EXPECT_EQ(web->health.type, health_check::kind::http);
  EXPECT_EQ(web->health.http_path, "/healthz");
  EXPECT_EQ(web->health.expect_status, (std::vector<int>{200, 204}));
  EXPECT_EQ(web->health.http_host, "health.internal");
  EXPECT_EQ(web->breaker.slow_call_rate, 100);
  EXPECT_EQ(web->retry.on_status, (std::vector<int>{502, 503, 504}));

  const auto* api = c.find_upstream("api");
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->balance, balance_policy::round_robin);
  EXPECT_FALSE(api->backends[0].addr.is_ip);
  EXPECT_EQ(api->backends[0].addr.host, "api-1.internal");
  EXPECT_TRUE(api->backends[1].addr.is_ip);
  EXPECT_EQ(api->backends[1].addr.host, "2001:db8::1");
  EXPECT_EQ(api->health.type, health_check::kind::tcp);
  EXPECT_EQ(api->health.interval, milliseconds(500));
  EXPECT_FALSE(api->outlier.enabled);
  EXPECT_FALSE(api->breaker.enabled);
  EXPECT_EQ(api->retry.attempts, 1u);
  EXPECT_FALSE(api->retry.on_connect_failure);
  EXPECT_FALSE(api->retry.on_reset);
  EXPECT_TRUE(api->retry.on_timeout);
  EXPECT_EQ(api->retry.on_status, (std::vector<int>{500}));
  EXPECT_DOUBLE_EQ(api->retry.budget, 12.5);

  const auto* db = c.find_upstream("db");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->balance, balance_policy::consistent_hash);
  EXPECT_FALSE(db->health.enabled);
  EXPECT_EQ(db->retry.attempts, 0u);

  EXPECT_EQ(summary(c), "config OK: 3 listeners, 4 upstreams, 7 backends, 3 routes");
}

TEST(config_load, load_file_reads_the_file_and_names_it_in_errors) {
  temp_dir dir;
  auto good = dir.write("good.yaml", minimal);
  auto r = load_file(good);
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_EQ(r.cfg->path, good);

  auto bad = dir.write("bad.yaml", "workers: many\n" + std::string(minimal));
  r = load_file(bad);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].str().rfind(bad + ":1:10: ", 0), 0u) << all_errors(r);

  auto missing = (dir.path() / "missing.yaml").string();
  r = load_file(missing);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.cfg.has_value());
  EXPECT_EQ(r.errors[0].str(), missing + ": cannot open config file: No such file or directory");
}

// ---------------------------------------------------------------------------------------------
// Errors: each must name the right line and column

TEST(config_errors, str_is_file_line_col_message) {
  error e{"a/b.yaml", 3, 7, "oops"};
  EXPECT_EQ(e.str(), "a/b.yaml:3:7: oops");
}

TEST(config_errors, misspelled_key_points_at_the_key) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    balanse: round_robin
    backends: [ { address: 127.0.0.1:9001 } ]
)",
                   4, 5, R"(unknown key "balanse" in upstream (did you mean "balance"?))");
}

TEST(config_errors, unknown_keys_everywhere) {
  expect_one_error(std::string(minimal) + "wrokers: 2\n", 3, 1,
                   R"(unknown key "wrokers" at the top level (did you mean "workers"?))");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, protcol: http, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 38, R"(unknown key "protcol" in listener (did you mean "protocol"?))");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { match: { path: /a }, upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 59, R"(unknown key "path" in match)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001, wieght: 2 } ] } ]
)",
                   2, 66, R"(unknown key "wieght" in backend (did you mean "weight"?))");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ], timeouts: { conect: 1s } } ]
)",
                   2, 82, R"(unknown key "conect" in timeouts (did you mean "connect"?))");
  expect_one_error(R"(admin: { listen: 127.0.0.1:9000, port: 1 }
)" + std::string(minimal),
                   1, 34, R"(unknown key "port" in admin)");
}

TEST(config_errors, duplicate_key_in_a_map) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    name: app2
)",
                   5, 5, R"(duplicate key "name" in upstream (first at line 3))");
}

TEST(config_errors, bad_duration_points_at_the_value) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    timeouts: { connect: 5 s }
    backends: [ { address: 127.0.0.1:9001 } ]
)",
                   4, 26, R"(invalid duration "5 s": expected a number and a unit (ms, s, m, h))");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    timeouts:
      idle: 0s
    backends: [ { address: 127.0.0.1:9001 } ]
)",
                   5, 13, "idle timeout must be greater than 0");
  expect_one_error(std::string("drain_timeout: 10\n") + std::string(minimal), 1, 16, R"(invalid duration "10")");
}

TEST(config_errors, route_to_unknown_upstream_points_at_the_name) {
  expect_one_error(R"(listeners:
  - listen: 0.0.0.0:8080
    routes:
      - upstream: web
      - match: { path_prefix: /api/ }
        upstream: apii
upstreams:
  - { name: api, backends: [ { address: 127.0.0.1:9001 } ] }
  - { name: web, backends: [ { address: 127.0.0.1:9002 } ] }
)",
                   6, 19, R"(route refers to unknown upstream "apii" (did you mean "api"?))");
}

TEST(config_errors, invalid_address_points_at_the_value) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends:
      - address: 10.0.0.1
)",
                   5, 18, R"(invalid address "10.0.0.1": expected host:port)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:99999, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 24, R"(invalid port "99999")");
  // Sockets we bind need IP literals.
  expect_one_error(R"(listeners: [ { listen: localhost:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 24, "must be an IP address, not a hostname");
  expect_one_error(R"(admin:
  listen: admin.local:9901
)" + std::string(minimal),
                   2, 11, "must be an IP address, not a hostname");
}

TEST(config_errors, wrong_types_are_errors) {
  expect_one_error("listeners: { listen: 0.0.0.0:8080 }\nupstreams: []\n", 1, 12,
                   "listeners must be a list, got a map");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: 127.0.0.1:9001 } ]
)",
                   2, 37, R"(backends must be a list, got "127.0.0.1:9001")");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ], health_check: [ tcp ] } ]
)",
                   2, 84, "health_check must be false or a map, got a list");
  expect_one_error(R"(listeners: [ { listen: [0.0.0.0, 8080], routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 24, "listen address must be a single value, got a list");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001, backup: yes } ] } ]
)",
                   2, 74, R"(invalid backup "yes": expected true or false)");
  // An empty value points at its key, not at whatever follows on the next line.
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    limits:
    backends: [ { address: 127.0.0.1:9001 } ]
)",
                   4, 5, "limits must be a map, got an empty value");
  expect_one_error("- a\n- b\n", 1, 1, "the config must be a map, got a list");
}

TEST(config_errors, yaml_syntax_error_is_one_error_at_its_mark) {
  expect_one_error("listeners: [ { listen: 0.0.0.0:8080\nupstreams: []\n", 2, 10,
                   "invalid YAML: end of map flow not found");
  expect_one_error(R"(listeners:
  - listen: 0.0.0.0:80
    routes: [ { upstream: app } ]
   bad: 1
)",
                   4, 4, "invalid YAML: end of sequence not found");
  expect_one_error("listeners:\n\t- listen: 0.0.0.0:80\n", 2, 2, "(tabs are not allowed in indentation)");
}

TEST(config_errors, empty_config) {
  expect_one_error("", 1, 1, "the config is empty");
  expect_one_error("# nothing here\n", 1, 1, "the config is empty");
  expect_one_error("upstreams: []\n", 1, 1, "at least one listener");
}

TEST(config_errors, unknown_enum_values) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    balance: roundrobin
    backends: [ { address: 127.0.0.1:9001 } ]
)",
                   4, 14,
                   R"(unknown balance "roundrobin": expected least_request, round_robin, random or consistent_hash )"
                   R"((did you mean "round_robin"?))");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, protocol: udp, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 48, R"(unknown protocol "udp": expected http or tcp)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ], retries: { on: [reset, conect_failure] } } ]
)",
                   2, 93, R"(unknown retry condition "conect_failure")");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ], retries: { on: [404] } } ]
)",
                   2, 86, "invalid retry status 404: only 500..599 can be retried");
}

TEST(config_errors, bad_percent_points_at_the_value) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    circuit_breaker:
      failure_rate: 150%
)",
                   6, 21, R"(invalid percentage "150%" for failure_rate)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    circuit_breaker:
      slow_call_rate: 0%
)",
                   6, 23, "slow_call_rate must be greater than 0%");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    degradation: { panic_threshold: half }
)",
                   5, 37, R"(invalid percentage "half" for panic_threshold)");
}

// The same file the command-line integration test uses: four problems, all reported, in file order.
TEST(config_errors, multiple_errors_are_reported_together_in_file_order) {
  auto r = load(R"(listeners:
  - listen: 0.0.0.0:8080
    routes:
      - upstream: ap
upstreams:
  - name: app
    balanse: round_robin
    timeouts: { connect: 5 s }
    backends:
      - address: 127.0.0.1
)");
  EXPECT_FALSE(r.cfg.has_value());
  ASSERT_EQ(r.errors.size(), 4u) << all_errors(r);
  EXPECT_EQ(r.errors[0].str(), R"(test.yaml:4:19: route refers to unknown upstream "ap" (did you mean "app"?))");
  EXPECT_EQ(r.errors[1].str(), R"(test.yaml:7:5: unknown key "balanse" in upstream (did you mean "balance"?))");
  EXPECT_EQ(r.errors[2].str(), R"(test.yaml:8:26: invalid duration "5 s": expected a number and a unit (ms, s, m, h))");
  EXPECT_EQ(r.errors[3].str(), R"(test.yaml:10:18: invalid address "127.0.0.1": expected host:port)");
}

}  // namespace
}  // namespace spillway::config

#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace spillway::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view minimal = R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 } ] } ]
)";

load_result load(std::string_view text) { return load_string(std::string(text), "test.yaml"); }

// Every message as one string, so that a failing assertion shows what was reported instead.
std::string all_errors(const load_result& r) {
  std::string out;
  for (const auto& e : r.errors) {
    out += e.str() + "\n";
  }
  return out;
}

// Asserts that loading `text` reports exactly one problem, at line:col, whose message contains
// `needle`.
void expect_one_error(std::string_view text, int line, int col, std::string_view needle) {
  auto r = load(text);
  EXPECT_FALSE(r.cfg.has_value());
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_EQ(r.errors[0].file, "test.yaml");
  EXPECT_EQ(r.errors[0].line, line) << all_errors(r);
  EXPECT_EQ(r.errors[0].col, col) << all_errors(r);
  EXPECT_NE(r.errors[0].message.find(needle), std::string::npos) << all_errors(r);
}

// A scratch directory removed at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "spillway-config-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  std::string write(const std::string& relative, std::string_view content) const {
    auto p = path_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

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

TEST(config_load, workers_and_durations) {
  auto r = load(std::string("workers: 4\ndrain_timeout: 1.5s\n").append(minimal));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_EQ(r.cfg->workers, 4u);
  EXPECT_EQ(r.cfg->drain_timeout, milliseconds(1500));
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

TEST(config_errors, duplicate_listen_address_points_at_the_second) {
  expect_one_error(R"(listeners:
  - name: public
    listen: 0.0.0.0:8080
    routes: [ { upstream: app } ]
  - name: other
    listen: 0.0.0.0:8080
    routes: [ { upstream: app } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   6, 13, R"(listen address 0.0.0.0:8080 is already used by listener "public" (line 3))");
  // A wildcard covers every other address of its family on the same port.
  expect_one_error(R"(listeners:
  - name: public
    listen: 0.0.0.0:8080
    routes: [ { upstream: app } ]
  - name: local
    listen: 127.0.0.1:8080
    routes: [ { upstream: app } ]
  - name: v6
    listen: "[::1]:8080"
    routes: [ { upstream: app } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   6, 13, R"(listen address 127.0.0.1:8080 overlaps 0.0.0.0:8080 of listener "public" (line 3))");
  // The admin API's default address counts too.
  expect_one_error(R"(listeners: [ { listen: 127.0.0.1:9901, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 24, "is already used by the admin API (admin.listen defaults to 127.0.0.1:9901)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:9000, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
admin: { listen: 127.0.0.1:9000 }
)",
                   3, 18, R"(listen address 127.0.0.1:9000 overlaps 0.0.0.0:9000 of listener "listener_0" (line 1))");
  // Different ports and different specific addresses are fine.
  auto r = load(R"(listeners:
  - { listen: 127.0.0.1:8080, routes: [ { upstream: app } ] }
  - { listen: 127.0.0.2:8080, routes: [ { upstream: app } ] }
  - { listen: 0.0.0.0:8081, routes: [ { upstream: app } ] }
  - { listen: "[::1]:8081", routes: [ { upstream: app } ] }
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)");
  EXPECT_TRUE(r.cfg.has_value()) << all_errors(r);
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

TEST(config_errors, listener_shape) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080 } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 14, R"(http listener "listener_0" needs at least one route)");
  expect_one_error(R"(listeners:
  - listen: 0.0.0.0:8080
    routes: [ { upstream: app } ]
    upstream: app
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   4, 5, R"("upstream" is for tcp listeners)");
  expect_one_error(R"(listeners:
  - name: pg
    listen: 0.0.0.0:6432
    routes: [ { upstream: app } ]
    protocol: tcp
    upstream: app
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   4, 5, R"("routes" are for http listeners; tcp listener "pg" uses "upstream")");
  expect_one_error(R"(listeners:
  - { name: pg, listen: 0.0.0.0:6432, protocol: tcp }
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   2, 5, R"(tcp listener "pg" needs an "upstream")");
  expect_one_error(R"(listeners:
  - { name: pg, listen: 0.0.0.0:6432, protocol: tcp, upstream: dbb }
upstreams: [ { name: db, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   2, 64, R"(listener "pg" refers to unknown upstream "dbb" (did you mean "db"?))");
  expect_one_error(R"(listeners:
  - { name: a, listen: 0.0.0.0:1, routes: [ { upstream: app } ] }
  - { name: a, listen: 0.0.0.0:2, routes: [ { upstream: app } ] }
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   3, 13, R"(duplicate listener name "a" (first at line 2))");
  expect_one_error(R"(listeners: [ { routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 14, R"(listener "listener_0" needs a "listen" address)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:80, routes: [ { match: { path_prefix: api }, upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 70, R"(path_prefix "api" must start with "/")");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:80, max_request_body: 10q, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                   1, 54, R"(invalid size "10q" for max_request_body)");
}

TEST(config_errors, tls_files_must_exist_relative_to_the_config) {
  temp_dir dir;
  dir.write("certs/server.crt", "dummy\n");
  auto file = (dir.path() / "c.yaml").string();
  auto r = load_string(R"(listeners:
  - listen: 0.0.0.0:8443
    tls:
      cert: certs/server.crt
      key: certs/server.key
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    tls: { ca: /nonexistent/ca.pem }
    backends: [ { address: 127.0.0.1:9001 } ]
)",
                       file);
  ASSERT_EQ(r.errors.size(), 2u) << all_errors(r);
  EXPECT_EQ(r.errors[0].line, 5);
  EXPECT_EQ(r.errors[0].col, 12);
  EXPECT_EQ(r.errors[0].message, R"(cannot read key "certs/server.key" ()" +
                                     (dir.path() / "certs/server.key").string() + "): No such file or directory");
  EXPECT_EQ(r.errors[1].line, 9);
  EXPECT_EQ(r.errors[1].col, 16);
  EXPECT_EQ(r.errors[1].message, R"(cannot read ca "/nonexistent/ca.pem": No such file or directory)");

  r = load_string(R"(listeners:
  - listen: 0.0.0.0:8443
    tls: { cert: certs/server.crt }
    routes: [ { upstream: app } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)",
                  file);
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_EQ(r.errors[0].col, 10);
  EXPECT_NE(r.errors[0].message.find(R"("key" is missing)"), std::string::npos);
}

TEST(config_errors, upstream_shape) {
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - { name: app, backends: [ { address: 127.0.0.1:9001 } ] }
  - { name: app, backends: [ { address: 127.0.0.1:9002 } ] }
)",
                   4, 13, R"(duplicate upstream name "app" (first at line 3))");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends:
      - address: 127.0.0.1:9001
        backup: true
)",
                   5, 7, "backends are all backups");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends:
      - address: 127.0.0.1:9001
      - address: 127.0.0.1:9001
)",
                   6, 9, "backend 127.0.0.1:9001 is listed twice (first at line 5)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [] } ]
)",
                   2, 37, "backends must list at least one backend");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app } ]
)",
                   2, 14, R"(upstream "app" needs at least one backend)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001, weight: 0 } ] } ]
)",
                   2, 74, R"(invalid weight "0": expected an integer from 1 to 1000)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    health_check: { interval: 1s, timeout: 2s }
)",
                   5, 44, "health_check timeout (2s) must not be longer than its interval (1s)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    health_check: { http: { path: /h }, tcp: {} }
)",
                   5, 41, "health_check takes http or tcp, not both");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    health_check: { http: { expect_status: [200, 700] } }
)",
                   5, 50, R"(invalid status "700": expected an integer from 100 to 599)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:9001 } ]
    retries: { attempts: 11 }
)",
                   5, 26, R"(invalid attempts "11": expected an integer from 0 to 10)");
  expect_one_error(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams:
  - { name: app, backends: [ { address: 127.0.0.1:9001 } ] }
  - backends: [ { address: 127.0.0.1:9002 } ]
)",
                   4, 5, R"(upstream needs a "name")");
}

TEST(config_errors, workers_range) {
  expect_one_error(std::string("workers: 0\n") + std::string(minimal), 1, 10,
                   R"(invalid workers "0": expected auto or an integer from 1 to 256)");
  expect_one_error(std::string("workers: 257\n") + std::string(minimal), 1, 10, "invalid workers");
}

// ---------------------------------------------------------------------------------------------
// The value parsers

TEST(config_parse, duration) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("2s"), seconds(2));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parse_duration("1m"), seconds(60));
  EXPECT_EQ(parse_duration("1h"), seconds(3600));
  EXPECT_EQ(parse_duration("0.5m"), seconds(30));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0.2ms"), milliseconds(1));  // never rounded down to zero
  for (const char* bad : {"", "5", "s", "5 s", " 5s", "5s ", "-1s", "+1s", "1e3ms", "1.s", ".5s", "5sec", "5S", "5d",
                          "1.2.3s", "99999999999999h"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(config_parse, percent) {
  EXPECT_EQ(parse_percent("50%"), 50.0);
  EXPECT_EQ(parse_percent("0%"), 0.0);
  EXPECT_EQ(parse_percent("100%"), 100.0);
  EXPECT_EQ(parse_percent("12.5%"), 12.5);
  EXPECT_EQ(parse_percent("50"), 50.0);
  for (const char* bad : {"", "%", "101%", "100.5", "-1%", "50 %", "50%%", "half", "0.5.%"}) {
    EXPECT_FALSE(parse_percent(bad).has_value()) << bad;
  }
}

TEST(config_parse, address) {
  auto a = parse_address("1.2.3.4:80");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->host, "1.2.3.4");
  EXPECT_EQ(a->port, 80);
  EXPECT_TRUE(a->is_ip);
  EXPECT_EQ(a->text, "1.2.3.4:80");

  a = parse_address("[::1]:8443");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 8443);
  EXPECT_TRUE(a->is_ip);
  EXPECT_EQ(a->text, "[::1]:8443");

  a = parse_address("backend-1.example.com:65535");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->host, "backend-1.example.com");
  EXPECT_EQ(a->port, 65535);
  EXPECT_FALSE(a->is_ip);

  a = parse_address("localhost:1");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->is_ip);

  struct bad_case {
    const char* text;
    const char* why;
  };
  for (const auto& c : {bad_case{"10.0.0.1", "expected host:port"}, bad_case{"", "expected host:port"},
                        bad_case{"10.0.0.1:0", "invalid port \"0\""}, bad_case{"10.0.0.1:65536", "invalid port"},
                        bad_case{"10.0.0.1:http", "invalid port"}, bad_case{"10.0.0.1:", "missing port"},
                        bad_case{":80", "missing host"}, bad_case{"::1:80", "need brackets"},
                        bad_case{"[::1]", "expected [ipv6]:port"}, bad_case{"[::1:80", "missing ']'"},
                        bad_case{"[::g]:80", "invalid IPv6 address"}, bad_case{"[1.2.3.4]:80", "invalid IPv6 address"},
                        bad_case{"10.0.0.256:80", "invalid IPv4 address"}, bad_case{"1.2.3:80", "invalid IPv4 address"},
                        bad_case{"under_score.com:80", "invalid hostname"}, bad_case{"-a.com:80", "invalid hostname"},
                        bad_case{"a..b:80", "invalid hostname"}, bad_case{"a b:80", "invalid hostname"}}) {
    std::string why;
    EXPECT_FALSE(parse_address(c.text, &why).has_value()) << c.text;
    EXPECT_NE(why.find(c.why), std::string::npos) << c.text << " -> " << why;
  }
  EXPECT_FALSE(parse_address("nope").has_value());  // `why` is optional
}

TEST(config_parse, size) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("65536"), 65536u);
  EXPECT_EQ(parse_size("64k"), 65536u);
  EXPECT_EQ(parse_size("64K"), 65536u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("10m"), 10u << 20);
  EXPECT_EQ(parse_size("10MiB"), 10u << 20);
  EXPECT_EQ(parse_size("1g"), 1u << 30);
  EXPECT_EQ(parse_size("1GiB"), 1u << 30);
  for (const char* bad : {"", "k", "1.5k", "-1", "10 k", "10t", "10kb", "99999999999999999999", "17179869184g"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
  }
}

TEST(config_extensions, access_log_metrics_and_splice) {
  auto r = load(std::string(R"(metrics: false
access_log: { path: /tmp/a.log, format: "{client} {status}", sample: 25% }
listeners: [ { listen: 0.0.0.0:8080, protocol: tcp, upstream: app, splice: false } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 } ] } ]
)"));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_FALSE(r.cfg->metrics);
  ASSERT_TRUE(r.cfg->access_log.has_value());
  EXPECT_EQ(r.cfg->access_log->path, "/tmp/a.log");
  EXPECT_EQ(r.cfg->access_log->format, "{client} {status}");
  EXPECT_EQ(r.cfg->access_log->sample, 25);
  EXPECT_FALSE(r.cfg->listeners[0].splice);

  auto d = load(minimal);
  ASSERT_TRUE(d.cfg.has_value());
  EXPECT_TRUE(d.cfg->metrics);
  EXPECT_FALSE(d.cfg->access_log.has_value());  // off by default
  EXPECT_TRUE(d.cfg->listeners[0].splice);
}

TEST(config_extensions, access_log_errors) {
  expect_one_error(std::string("access_log: { format: json }\n") + std::string(minimal), 1, 13,
                   "access_log needs a path");
  expect_one_error(std::string("access_log: { path: x.log, format: \"{client} {bogus}\" }\n") + std::string(minimal), 1,
                   36, "unknown field {bogus}");
  expect_one_error(std::string("access_log: { path: x.log, format: \"{client\" }\n") + std::string(minimal), 1, 36,
                   "without its");
  expect_one_error(std::string("metrics: maybe\n") + std::string(minimal), 1, 10, "expected true or false");
}

// ---------------------------------------------------------------------------------------------
// admin.token_file (SPEC section 5)

TEST(config_admin, token_file_is_read_and_trimmed) {
  temp_dir dir;
  auto token = dir.write("token", "s3cret\n");
  auto r = load("admin: { listen: 127.0.0.1:9000, token_file: " + token + " }\n" + std::string(minimal));
  ASSERT_TRUE(r.cfg.has_value()) << all_errors(r);
  EXPECT_EQ(r.cfg->admin_api.token, "s3cret");
  EXPECT_EQ(r.cfg->admin_api.token_file, token);
  // No token_file: no token.
  auto plain = load(minimal);
  ASSERT_TRUE(plain.cfg.has_value());
  EXPECT_TRUE(plain.cfg->admin_api.token.empty());
}

TEST(config_admin, unreadable_or_empty_token_file_is_an_error_at_the_key) {
  temp_dir dir;
  auto empty = dir.write("empty", "\n  \n");
  expect_one_error("admin:\n  listen: 127.0.0.1:9000\n  token_file: " + empty + "\n" + std::string(minimal), 3, 15,
                   "is empty");
  expect_one_error("admin:\n  listen: 127.0.0.1:9000\n  token_file: " + (dir.path() / "missing").string() + "\n" +
                       std::string(minimal),
                   3, 15, "cannot read admin token_file");
  auto spaced = dir.write("spaced", "two words\n");
  expect_one_error("admin:\n  listen: 127.0.0.1:9000\n  token_file: " + spaced + "\n" + std::string(minimal), 3, 15,
                   "printable ASCII");
}

TEST(config_admin, non_loopback_admin_needs_a_token_file) {
  expect_one_error("admin:\n  listen: 0.0.0.0:9000\n" + std::string(minimal), 2, 11, "set admin.token_file");
  expect_one_error("admin:\n  listen: \"[::]:9000\"\n" + std::string(minimal), 2, 11, "set admin.token_file");
  expect_one_error("admin:\n  listen: 10.0.0.1:9000\n" + std::string(minimal), 2, 11, "is not loopback");
  for (const char* loopback : {"127.0.0.1:9000", "127.9.9.9:9000", "\"[::1]:9000\""}) {
    auto r = load(std::string("admin: { listen: ") + loopback + " }\n" + std::string(minimal));
    EXPECT_TRUE(r.cfg.has_value()) << loopback << ": " << all_errors(r);
  }
  temp_dir dir;
  auto token = dir.write("token", "s3cret");
  auto r = load("admin: { listen: 0.0.0.0:9000, token_file: " + token + " }\n" + std::string(minimal));
  EXPECT_TRUE(r.cfg.has_value()) << all_errors(r);
}

}  // namespace
}  // namespace spillway::config

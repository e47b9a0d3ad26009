// Listeners (src/config/listeners.cpp): their shape, tls files and listen-address clashes.

#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

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

}  // namespace
}  // namespace spillway::config

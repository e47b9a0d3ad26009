// Upstreams (src/config/upstreams.cpp, policies.cpp): their shape and their policies' errors.

#include <gtest/gtest.h>

#include <string>

#include "config_test_support.h"

namespace spillway::config {
namespace {

using namespace test_support;

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
                   5, 41, "health_check takes one of http, grpc or tcp");
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

}  // namespace
}  // namespace spillway::config

namespace spillway::config {
namespace {

using namespace test_support;

// srv: names (src/config/values.cpp parse_address): labels of a host name (underscores allowed,
// as in _service._proto), no port, not empty.
TEST(config_errors, malformed_srv_names) {
  auto with = [](std::string_view address) {
    return std::string(R"(listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: ")") +
           std::string(address) + "\" } ] } ]\n";
  };
  auto ok = load(with("srv:_http._tcp.api.internal"));
  ASSERT_TRUE(ok.cfg) << all_errors(ok);
  EXPECT_TRUE(ok.cfg->upstreams[0].backends[0].addr.srv);
  EXPECT_EQ(ok.cfg->upstreams[0].backends[0].addr.host, "_http._tcp.api.internal");
  for (std::string_view bad :
       {"srv:", "srv:_http._tcp.api.internal:8080", "srv:_http.._tcp", "srv:bad name", "srv:-x.example", "srv:a/b"}) {
    auto r = load(with(bad));
    EXPECT_FALSE(r.cfg) << bad;
    EXPECT_NE(all_errors(r).find("SRV name"), std::string::npos) << bad << ": " << all_errors(r);
  }
}

}  // namespace
}  // namespace spillway::config

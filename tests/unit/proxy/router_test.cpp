#include "proxy/router.h"

#include <gtest/gtest.h>

namespace spillway::proxy {
namespace {

http::message_head head_with(std::vector<http::header> headers) {
  http::message_head h;
  h.headers = std::move(headers);
  return h;
}

TEST(router, normalize_host) {
  std::string s;
  EXPECT_EQ(normalize_host("API.Example.com:8080", s), "api.example.com");
  EXPECT_EQ(normalize_host("example.com", s), "example.com");
  EXPECT_EQ(normalize_host("[::1]:80", s), "[::1]");
  EXPECT_EQ(normalize_host("", s), "");
}

TEST(router, first_match_wins) {
  config::route api;
  api.match.host = "api.example.com";
  api.match.path_prefix = "/api/";
  api.match.headers.push_back({"x-canary", "1"});
  api.upstream = "api";
  config::route api_plain;
  api_plain.match.path_prefix = "/api/";
  api_plain.upstream = "api-stable";
  config::route web;
  web.upstream = "web";
  std::vector<compiled_route> routes{{&api, 0}, {&api_plain, 1}, {&web, 2}};

  auto canary = head_with({{"X-Canary", "1"}});
  EXPECT_EQ(find_route(routes, "api.example.com", "/api/x", canary)->upstream_index, 0u);
  auto other = head_with({{"x-canary", "0"}});
  EXPECT_EQ(find_route(routes, "api.example.com", "/api/x", other)->upstream_index, 1u);
  EXPECT_EQ(find_route(routes, "other.com", "/api/x", canary)->upstream_index, 1u);
  EXPECT_EQ(find_route(routes, "api.example.com", "/web", canary)->upstream_index, 2u);
}

TEST(router, no_catch_all_means_no_route) {
  config::route api;
  api.match.path_prefix = "/api/";
  std::vector<compiled_route> routes{{&api, 0}};
  EXPECT_EQ(find_route(routes, "x", "/other", head_with({})), nullptr);
  EXPECT_EQ(find_route(routes, "x", "/api", head_with({})), nullptr);
}

}  // namespace
}  // namespace spillway::proxy

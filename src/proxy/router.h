#pragma once
// Routing: the first route whose match block fits the request wins.

#include "config/config.h"
#include "http/parser.h"

#include <string_view>
#include <vector>

namespace spillway::proxy {

struct compiled_route {
  const config::route* cfg = nullptr;
  std::size_t upstream_index = 0;  // into snapshot::clusters
  int rate_limit = -1;             // into snapshot::rate_limits, or none
  std::string route_key;           // the rate limit key of `key: route` (listener and position)
};

// Returns the Host header's host part, lower-cased into `out`: "API.example.com:8080" ->
// "api.example.com", "[::1]:80" -> "[::1]".
std::string_view normalize_host(std::string_view host_header, std::string& out);

// True when `route` matches. `host` is already normalized.
bool route_matches(const config::route_match& match, std::string_view host, std::string_view path,
                   const http::message_head& head);

// Returns the first matching route or nullptr. Any thread.
const compiled_route* find_route(const std::vector<compiled_route>& routes, std::string_view host,
                                 std::string_view path, const http::message_head& head);

}  // namespace spillway::proxy

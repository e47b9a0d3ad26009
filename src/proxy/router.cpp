#include "proxy/router.h"

#include "http/target.h"

namespace spillway::proxy {

std::string_view normalize_host(std::string_view host_header, std::string& out) {
  std::string_view host = host_header;
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    host = host.substr(0, close == std::string_view::npos ? host.size() : close + 1);
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  out.assign(host);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool route_matches(const config::route_match& match, std::string_view host, std::string_view path,
                   const http::message_head& head) {
  if (match.host && *match.host != host) {
    return false;
  }
  if (match.path_prefix && !http::path_prefix_matches(path, *match.path_prefix)) {
    return false;
  }
  for (const auto& h : match.headers) {
    bool found = false;
    for (const auto& have : head.headers) {
      if (http::iequals(have.name, h.name) && have.value == h.value) {
        found = true;
        break;
      }
    }
    if (!found) {
      return false;
    }
  }
  return true;
}

const compiled_route* find_route(const std::vector<compiled_route>& routes, std::string_view host,
                                 std::string_view path, const http::message_head& head) {
  for (const auto& r : routes) {
    if (route_matches(r.cfg->match, host, path, head)) {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace spillway::proxy

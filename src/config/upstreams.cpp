// upstreams: each one's name, balancing, tls to its backends and the backends themselves. The
// per-upstream policies (health checks, breakers, limits, retries...) are read in policies.cpp.

#include <algorithm>

#include "config/loader.h"

namespace spillway::config::detail {

void loader::read_upstreams(const Node& v) {
  if (!expect(v, kind::list, "upstreams")) {
    return;
  }
  for (const auto& item : v) {
    read_upstream(item);
  }
}

void loader::read_upstream(const Node& n) {
  if (!expect(n, kind::map, "each upstream")) {
    return;
  }
  upstream up;
  up.where = where(n);
  bool name_given = false;
  std::optional<mark> name_at;
  bool backends_given = false;
  auto response_limit = [&](const Node& k, const Node& v) { read_response_limit(k, v, up); };
  read_map(n, "in upstream",
           {
               {"name",
                [&](const Node& v) {
                  name_given = true;
                  if (auto s = read_name(v, "upstream name")) {
                    up.name = *s;
                    name_at = where(v);
                  }
                }},
               {"balance",
                [&](const Node& v) {
                  up.balance = read_enum<balance_policy>(v, "balance",
                                                         {{"least_request", balance_policy::least_request},
                                                          {"round_robin", balance_policy::round_robin},
                                                          {"random", balance_policy::random},
                                                          {"consistent_hash", balance_policy::consistent_hash}})
                                   .value_or(up.balance);
                }},
               {"protocol",
                [&](const Node& k, const Node& v) {
                  up.protocol_at = where(k);
                  up.protocol =
                      read_enum<upstream_protocol>(
                          v, "protocol", {{"http1", upstream_protocol::http1}, {"http2", upstream_protocol::http2}})
                          .value_or(up.protocol);
                }},
               {"dns_refresh", to_duration(up.dns_refresh, "dns_refresh")},
               {"max_response_headers", response_limit},
               {"max_response_header_fields", response_limit},
               {"slow_start", to_duration(up.slow_start, "slow_start", true)},
               {"tls", [&](const Node& v) { up.tls = read_upstream_tls(v); }},
               {"backends",
                [&](const Node& v) {
                  backends_given = true;
                  read_backends(v, up);
                }},
               {"health_check", [&](const Node& v) { read_health_check(v, up.health); }},
               {"outlier_detection", [&](const Node& v) { read_outlier_detection(v, up.outlier); }},
               {"circuit_breaker", [&](const Node& v) { read_circuit_breaker(v, up.breaker); }},
               {"limits", [&](const Node& v) { read_limits(v, up.limit); }},
               {"retries", [&](const Node& v) { read_retries(v, up.retry); }},
               {"timeouts", [&](const Node& v) { read_timeouts(v, up.timeout); }},
               {"degradation", [&](const Node& v) { read_degradation(v, up.degrade); }},
           });

  if (!name_given) {
    add(n, "upstream needs a \"name\"");
  }
  if (!backends_given) {
    std::string label = name_at ? fmt::format("upstream \"{}\"", up.name) : std::string("upstream");
    add(n, fmt::format("{} needs at least one backend", label));
  }
  if (name_at) {
    if (auto first = upstream_names_.find(up.name); first != upstream_names_.end()) {
      add(*name_at, fmt::format("duplicate upstream name \"{}\" (first at line {})", up.name, first->second.line));
    } else {
      upstream_names_.emplace(up.name, *name_at);
    }
  }
  cfg_.upstreams.push_back(std::move(up));
}

// max_response_headers and max_response_header_fields: what a backend's response head may hold.
void loader::read_response_limit(const Node& key, const Node& v, upstream& up) {
  if (key.Scalar() == "max_response_headers") {
    if (auto s = read_size(v, "max_response_headers")) {
      if (*s == 0) {
        add(v, "max_response_headers must be greater than 0");
      } else {
        up.max_response_headers = *s;
      }
    }
  } else if (auto x = read_uint(v, "max_response_header_fields", 1, 10000)) {
    up.max_response_header_fields = static_cast<std::uint32_t>(*x);
  }
}

std::optional<upstream_tls> loader::read_upstream_tls(const Node& v) {
  if (!expect(v, kind::map, "upstream tls")) {
    return std::nullopt;
  }
  upstream_tls tls;
  read_map(v, "in upstream tls",
           {
               {"ca",
                [&](const Node& value) {
                  tls.ca_at = where(value);
                  if (auto p = read_file_path(value, "ca")) {
                    tls.ca = *p;
                  }
                }},
               {"verify",
                [&](const Node& value) {
                  if (auto b = read_bool(value, "verify")) {
                    tls.verify = *b;
                  }
                }},
               {"sni",
                [&](const Node& value) {
                  auto s = read_name(value, "sni");
                  if (!s) {
                    return;
                  }
                  // RFC 6066: SNI carries a DNS name, never an IP literal.
                  if (!valid_hostname(*s) || looks_like_ipv4(*s)) {
                    add(value, fmt::format("invalid sni {}: expected a DNS name", quote(*s)));
                    return;
                  }
                  tls.sni = *s;
                }},
           });
  return tls;
}

void loader::read_backends(const Node& v, upstream& up) {
  if (!expect(v, kind::list, "backends")) {
    return;
  }
  if (v.size() == 0) {
    add(v, "backends must list at least one backend");
    return;
  }
  bool all_ok = true;
  // Keyed by the address as the balancer will see it: "[::1]:80" and "[0::1]:80" are the same.
  std::map<std::string, int> seen;
  for (const auto& item : v) {
    auto b = read_backend(item);
    if (!b) {
      all_ok = false;
      continue;
    }
    std::string key = fmt::format("{}|{}", lower(b->addr.host), b->addr.port);
    if (auto k = bind_key_of(b->addr)) {
      key = fmt::format("{}|{}", std::string(k->bytes.begin(), k->bytes.end()), k->port);
    }
    if (auto first = seen.find(key); first != seen.end()) {
      add(b->where, fmt::format("backend {} is listed twice (first at line {})", b->addr.text, first->second));
      all_ok = false;
      continue;
    }
    seen.emplace(key, b->where.line);
    up.backends.push_back(std::move(*b));
  }
  // Only judged when every backend was readable, so that one bad address does not also claim
  // the upstream has no primaries.
  if (all_ok && std::all_of(up.backends.begin(), up.backends.end(), [](const backend& b) { return b.backup; })) {
    add(v, "backends are all backups: at least one must be a primary (backup: false)");
  }
}

// nullopt when the backend has any error (it is then left out, and no "all backups" claim is made).
std::optional<backend> loader::read_backend(const Node& n) {
  if (!expect(n, kind::map, "each backend")) {
    return std::nullopt;
  }
  backend b;
  b.where = where(n);
  bool ok = true;
  bool address_given = false;
  read_map(n, "in backend",
           {
               {"address",
                [&](const Node& v) {
                  address_given = true;
                  auto a = read_address(v, "backend address", false);
                  ok = ok && a.has_value();
                  if (a) {
                    b.addr = *a;
                  }
                }},
               {"weight",
                [&](const Node& v) {
                  auto w = read_uint(v, "weight", 1, 1000);
                  ok = ok && w.has_value();
                  b.weight = static_cast<std::uint32_t>(w.value_or(1));
                }},
               {"backup",
                [&](const Node& v) {
                  auto x = read_bool(v, "backup");
                  ok = ok && x.has_value();
                  b.backup = x.value_or(false);
                }},
           });
  if (!address_given) {
    add(n, "backend needs an \"address\"");
    return std::nullopt;
  }
  if (!ok) {
    return std::nullopt;
  }
  return b;
}

}  // namespace spillway::config::detail

// The policies of one upstream: health_check, outlier_detection, circuit_breaker, limits,
// retries, timeouts and degradation. Each reader fills the section's struct in place, so a key
// that is absent (or wrong) keeps the default from config.h; defaults that depend on another key
// (health_check.timeout on the interval) are settled once the whole section is read.

#include <algorithm>
#include <cmath>

#include "config/loader.h"

namespace spillway::config::detail {

void loader::read_health_check(const Node& v, health_check& hc) {
  if (is_false(v)) {
    hc.enabled = false;
    return;
  }
  if (!expect_map_or_false(v, "health_check")) {
    return;
  }
  std::optional<mark> http_key;
  std::optional<mark> tcp_key;
  std::optional<mark> grpc_key;
  bool interval_ok = true;
  bool timeout_ok = true;
  std::optional<mark> timeout_at;
  read_map(v, "in health_check",
           {
               {"http",
                [&](const Node& k, const Node& value) {
                  http_key = where(k);
                  hc.type = health_check::kind::http;
                  read_http_check(value, hc);
                }},
               {"grpc",
                [&](const Node& k, const Node& value) {
                  grpc_key = where(k);
                  hc.grpc_at = where(k);
                  hc.type = health_check::kind::grpc;
                  read_grpc_check(value, hc);
                }},
               {"tcp",
                [&](const Node& k, const Node& value) {
                  tcp_key = where(k);
                  hc.type = health_check::kind::tcp;
                  // `tcp: {}` and a bare `tcp:` both mean "connect and close"; there is nothing to set.
                  if (value.IsMap()) {
                    read_map(value, "in health_check tcp", {});
                  } else if (!value.IsNull()) {
                    add(value, fmt::format("health_check tcp must be {{}}, got {}", describe(value)));
                  }
                }},
               {"interval",
                [&](const Node& value) {
                  auto d = read_duration(value, "interval", false);
                  interval_ok = d.has_value();
                  hc.interval = d.value_or(hc.interval);
                }},
               {"timeout",
                [&](const Node& value) {
                  auto d = read_duration(value, "timeout", false);
                  timeout_ok = d.has_value();
                  timeout_at = where(value);
                  hc.timeout = d.value_or(hc.timeout);
                }},
               {"healthy_threshold", to_uint(hc.healthy_threshold, "healthy_threshold", 1, uint32_max)},
               {"unhealthy_threshold", to_uint(hc.unhealthy_threshold, "unhealthy_threshold", 1, uint32_max)},
           });
  if (int(http_key.has_value()) + int(tcp_key.has_value()) + int(grpc_key.has_value()) > 1) {
    const auto at = later(later(http_key.value_or(mark{}), tcp_key.value_or(mark{})), grpc_key.value_or(mark{}));
    add(at, "health_check takes one of http, grpc or tcp");
  }
  if (!timeout_at) {
    // The default timeout (1s) never exceeds the interval it goes with: a default must not
    // contradict the user's own value (SPEC section 2).
    hc.timeout = std::min(hc.timeout, hc.interval);
  } else if (interval_ok && timeout_ok && hc.timeout > hc.interval) {
    // A probe that may outlive its interval would overlap the next one.
    add(*timeout_at, fmt::format("health_check timeout ({}) must not be longer than its interval ({})",
                                 duration_text(hc.timeout), duration_text(hc.interval)));
  }
}

void loader::read_http_check(const Node& v, health_check& hc) {
  // `http: {}` (or a bare `http:`) probes the default path.
  if (v.IsNull()) {
    return;
  }
  if (!expect(v, kind::map, "health_check http")) {
    return;
  }
  read_map(v, "in health_check http",
           {
               {"path",
                [&](const Node& value) {
                  auto s = read_name(value, "health_check path");
                  if (s && s->front() != '/') {
                    add(value, fmt::format("health_check path {} must start with \"/\"", quote(*s)));
                  } else if (s) {
                    hc.http_path = *s;
                  }
                }},
               {"expect_status",
                [&](const Node& value) { read_status_list(value, "expect_status", 100, hc.expect_status); }},
               {"host",
                [&](const Node& value) {
                  auto s = read_name(value, "health_check host");
                  if (s && !valid_hostname(*s)) {
                    add(value, fmt::format("invalid health_check host {}: expected a DNS name", quote(*s)));
                  } else if (s) {
                    hc.http_host = *s;
                  }
                }},
           });
}

void loader::read_grpc_check(const Node& v, health_check& hc) {
  // `grpc: {}` (or a bare `grpc:`) asks about the server as a whole (service "").
  if (v.IsNull()) {
    return;
  }
  if (!expect(v, kind::map, "health_check grpc")) {
    return;
  }
  read_map(v, "in health_check grpc",
           {
               {"service",
                [&](const Node& value) {
                  if (value.IsNull()) {
                    return;
                  }
                  if (auto s = read_string(value, "health_check grpc service")) {
                    hc.grpc_service = *s;
                  }
                }},
           });
}

void loader::read_outlier_detection(const Node& v, outlier_detection& od) {
  if (is_false(v)) {
    od.enabled = false;
    return;
  }
  if (!expect_map_or_false(v, "outlier_detection")) {
    return;
  }
  read_map(v, "in outlier_detection",
           {
               {"consecutive_failures", to_uint(od.consecutive_failures, "consecutive_failures", 1, uint32_max)},
               {"ejection_time", to_duration(od.ejection_time, "ejection_time")},
               {"max_ejection_percent",
                [&](const Node& value) {
                  auto p = read_percent(value, "max_ejection_percent", true);
                  if (p && *p != std::floor(*p)) {
                    add(value, "max_ejection_percent must be a whole percentage");
                  } else if (p) {
                    od.max_ejection_percent = static_cast<std::uint32_t>(*p);
                  }
                }},
           });
}

// A non-empty list of HTTP statuses, each at least `lowest`; `out` is set only when all are valid.
void loader::read_status_list(const Node& value, std::string_view what, unsigned lowest, std::vector<int>& out) {
  if (!expect(value, kind::list, what)) {
    return;
  }
  if (value.size() == 0) {
    add(value, fmt::format("{} must list at least one status", what));
    return;
  }
  std::vector<int> statuses;
  for (const auto& s : value) {
    if (auto code = read_uint(s, "status", lowest, 599)) {
      statuses.push_back(static_cast<int>(*code));
    }
  }
  if (statuses.size() == value.size()) {
    out = std::move(statuses);
  }
}

void loader::read_circuit_breaker(const Node& v, circuit_breaker& cb) {
  if (is_false(v)) {
    cb.enabled = false;
    return;
  }
  if (!expect_map_or_false(v, "circuit_breaker")) {
    return;
  }
  read_map(v, "in circuit_breaker",
           {
               {"failure_rate", to_percent(cb.failure_rate, "failure_rate", false)},
               {"slow_call_duration", to_duration(cb.slow_call_duration, "slow_call_duration")},
               {"slow_call_rate", to_percent(cb.slow_call_rate, "slow_call_rate", false)},
               {"window", to_duration(cb.window, "window")},
               {"minimum_requests", to_uint(cb.minimum_requests, "minimum_requests", 1, uint32_max)},
               {"open_duration", to_duration(cb.open_duration, "open_duration")},
               {"half_open_requests", to_uint(cb.half_open_requests, "half_open_requests", 1, uint32_max)},
               {"failure_status",
                [&](const Node& value) { read_status_list(value, "failure_status", 400, cb.failure_status); }},
           });
}

void loader::read_limits(const Node& v, limits& lim) {
  if (!expect(v, kind::map, "limits")) {
    return;
  }
  read_map(v, "in limits",
           {
               {"max_connections", to_uint(lim.max_connections, "max_connections", 1, uint32_max)},
               // 0 is valid: no queue, a request that finds no free connection gets 503 at once (SPEC section 5).
               {"max_pending", to_uint(lim.max_pending, "max_pending", 0, uint32_max)},
               {"max_requests", to_uint(lim.max_requests, "max_requests", 1, uint32_max)},
           });
}

void loader::read_retries(const Node& v, retries& r) {
  if (is_false(v)) {
    r.attempts = 0;
    return;
  }
  if (!expect_map_or_false(v, "retries")) {
    return;
  }
  read_map(v, "in retries",
           {
               {"attempts", to_uint(r.attempts, "attempts", 0, 10)},
               {"on", [&](const Node& value) { read_retry_on(value, r); }},
               {"budget", to_percent(r.budget, "budget", true)},
               {"per_try_timeout", to_duration(r.per_try_timeout, "per_try_timeout", true)},
           });
}

// A given `on` list replaces the defaults entirely: what is not listed is not retried. `r` is
// changed only when every entry is valid.
void loader::read_retry_on(const Node& v, retries& r) {
  if (!expect(v, kind::list, "retries on")) {
    return;
  }
  static const std::vector<std::string_view> names = {"connect_failure", "reset", "timeout", "grpc_unavailable",
                                                      "grpc_resource_exhausted"};
  retries parsed;
  parsed.on_connect_failure = false;
  parsed.on_reset = false;
  parsed.on_timeout = false;
  parsed.on_status.clear();
  std::vector<std::string> seen;
  bool ok = true;
  for (const auto& item : v) {
    if (!expect(item, kind::scalar, "each retry condition")) {
      ok = false;
      continue;
    }
    const auto& s = item.Scalar();
    if (std::find(seen.begin(), seen.end(), s) != seen.end()) {
      add(item, fmt::format("retry condition {} is listed twice", quote(s)));
      ok = false;
      continue;
    }
    seen.push_back(s);
    if (all_digits(s)) {
      auto code = parse_unsigned(s);
      if (!code || *code < 500 || *code > 599) {
        add(item, fmt::format("invalid retry status {}: only 500..599 can be retried", s));
        ok = false;
        continue;
      }
      parsed.on_status.push_back(static_cast<int>(*code));
    } else if (s == "connect_failure") {
      parsed.on_connect_failure = true;
    } else if (s == "reset") {
      parsed.on_reset = true;
    } else if (s == "timeout") {
      parsed.on_timeout = true;
    } else if (s == "grpc_unavailable") {
      parsed.on_grpc_unavailable = true;
    } else if (s == "grpc_resource_exhausted") {
      parsed.on_grpc_resource_exhausted = true;
    } else {
      add(item, fmt::format("unknown retry condition {}: expected connect_failure, reset, timeout, "
                            "grpc_unavailable, grpc_resource_exhausted or a status 500..599{}",
                            quote(s), did_you_mean(s, names)));
      ok = false;
    }
  }
  if (ok) {
    r.on_connect_failure = parsed.on_connect_failure;
    r.on_reset = parsed.on_reset;
    r.on_timeout = parsed.on_timeout;
    r.on_grpc_unavailable = parsed.on_grpc_unavailable;
    r.on_grpc_resource_exhausted = parsed.on_grpc_resource_exhausted;
    r.on_status = std::move(parsed.on_status);
  }
}

void loader::read_timeouts(const Node& v, timeouts& t) {
  if (!expect(v, kind::map, "timeouts")) {
    return;
  }
  read_map(v, "in timeouts",
           {
               {"connect", to_duration(t.connect, "connect timeout")},
               {"request", to_duration(t.request, "request timeout")},
               {"header", to_duration(t.header, "header timeout")},
               {"idle", to_duration(t.idle, "idle timeout")},
           });
}

void loader::read_degradation(const Node& v, degradation& d) {
  if (!expect(v, kind::map, "degradation")) {
    return;
  }
  read_map(v, "in degradation",
           {
               {"panic_threshold", to_percent(d.panic_threshold, "panic_threshold", true)},
               // 0s is a valid Retry-After ("retry at once"), unlike a zero timeout.
               {"retry_after", to_duration(d.retry_after, "retry_after", true)},
           });
}

}  // namespace spillway::config::detail

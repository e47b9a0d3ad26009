#include "config/config.h"

#include <fmt/format.h>

#include <map>

namespace spillway::config {

bool same_health_check(const health_check& a, const health_check& b) {
  return a.enabled == b.enabled && a.type == b.type && a.http_path == b.http_path &&
         a.expect_status == b.expect_status && a.http_host == b.http_host && a.grpc_service == b.grpc_service &&
         a.interval == b.interval && a.timeout == b.timeout && a.healthy_threshold == b.healthy_threshold &&
         a.unhealthy_threshold == b.unhealthy_threshold;
}

bool same_breaker(const circuit_breaker& a, const circuit_breaker& b) {
  return a.enabled == b.enabled && a.failure_rate == b.failure_rate && a.slow_call_duration == b.slow_call_duration &&
         a.slow_call_rate == b.slow_call_rate && a.window == b.window && a.minimum_requests == b.minimum_requests &&
         a.open_duration == b.open_duration && a.half_open_requests == b.half_open_requests &&
         a.failure_status == b.failure_status;
}

namespace {

// "a, b, c"
std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    out += out.empty() ? item : ", " + item;
  }
  return out;
}

bool same_match(const route_match& a, const route_match& b) {
  if (a.host != b.host || a.path_prefix != b.path_prefix || a.headers.size() != b.headers.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) {
      return false;
    }
  }
  return true;
}

bool same_routes(const listener& a, const listener& b) {
  if (a.routes.size() != b.routes.size() || a.upstream != b.upstream || a.rate_limit != b.rate_limit) {
    return false;
  }
  for (std::size_t i = 0; i < a.routes.size(); ++i) {
    if (a.routes[i].upstream != b.routes[i].upstream || a.routes[i].rate_limit != b.routes[i].rate_limit ||
        !same_match(a.routes[i].match, b.routes[i].match)) {
      return false;
    }
  }
  return true;
}

// What about an upstream other than its backends changed, as a list of key names.
std::string upstream_changes(const upstream& a, const upstream& b) {
  std::vector<std::string> keys;
  auto note = [&](bool differs, const char* key) {
    if (differs) {
      keys.emplace_back(key);
    }
  };
  note(a.balance != b.balance, "balance");
  note(a.slow_start != b.slow_start || a.dns_refresh != b.dns_refresh, "timing");
  note(!same_health_check(a.health, b.health), "health_check");
  note(a.outlier.enabled != b.outlier.enabled || a.outlier.consecutive_failures != b.outlier.consecutive_failures ||
           a.outlier.ejection_time != b.outlier.ejection_time ||
           a.outlier.max_ejection_percent != b.outlier.max_ejection_percent,
       "outlier_detection");
  note(!same_breaker(a.breaker, b.breaker), "circuit_breaker");
  note(a.limit.max_connections != b.limit.max_connections || a.limit.max_pending != b.limit.max_pending ||
           a.limit.max_requests != b.limit.max_requests,
       "limits");
  note(a.retry.attempts != b.retry.attempts || a.retry.on_connect_failure != b.retry.on_connect_failure ||
           a.retry.on_reset != b.retry.on_reset || a.retry.on_timeout != b.retry.on_timeout ||
           a.retry.on_status != b.retry.on_status || a.retry.budget != b.retry.budget ||
           a.retry.per_try_timeout != b.retry.per_try_timeout,
       "retries");
  note(a.timeout.connect != b.timeout.connect || a.timeout.request != b.timeout.request ||
           a.timeout.header != b.timeout.header || a.timeout.idle != b.timeout.idle,
       "timeouts");
  note(a.degrade.panic_threshold != b.degrade.panic_threshold || a.degrade.retry_after != b.degrade.retry_after,
       "degradation");
  note(a.tls.has_value() != b.tls.has_value() ||
           (a.tls && b.tls && (a.tls->ca != b.tls->ca || a.tls->sni != b.tls->sni || a.tls->verify != b.tls->verify)),
       "tls");
  return join(keys);
}

// Certificate files are re-read on every reload anyway; this notes a change of which files.
bool same_certificates(const listener_tls& a, const listener_tls& b) {
  if (a.certificates.size() != b.certificates.size() || a.handshake_timeout != b.handshake_timeout) {
    return false;
  }
  for (std::size_t i = 0; i < a.certificates.size(); ++i) {
    if (a.certificates[i].cert != b.certificates[i].cert || a.certificates[i].key != b.certificates[i].key) {
      return false;
    }
  }
  return true;
}

// Listeners are known by address: that is what a running socket is.
void diff_listeners(const config& old_cfg, const config& new_cfg, std::vector<std::string>& out) {
  for (const auto& l : new_cfg.listeners) {
    const listener* was = nullptr;
    for (const auto& o : old_cfg.listeners) {
      if (o.listen.text == l.listen.text) {
        was = &o;
      }
    }
    if (was == nullptr) {
      out.push_back(fmt::format("listener added: \"{}\" on {}", l.name, l.listen.text));
      continue;
    }
    std::vector<std::string> what;
    if (was->name != l.name) {
      what.push_back(fmt::format("renamed from \"{}\"", was->name));
    }
    if (was->proto != l.proto || was->tls.has_value() != l.tls.has_value()) {
      what.emplace_back("protocol or tls");
    } else if (l.tls && !same_certificates(*was->tls, *l.tls)) {
      what.emplace_back("tls certificates");
    }
    if (!same_routes(*was, l)) {
      what.emplace_back("routes");
    }
    if (was->max_request_headers != l.max_request_headers || was->max_request_body != l.max_request_body ||
        was->max_request_header_fields != l.max_request_header_fields || was->max_connections != l.max_connections) {
      what.emplace_back("size limits");
    }
    if (!what.empty()) {
      out.push_back(
          fmt::format("listener changed: \"{}\" on {} ({}); its socket stays open", l.name, l.listen.text, join(what)));
    }
  }
  for (const auto& o : old_cfg.listeners) {
    bool kept = false;
    for (const auto& l : new_cfg.listeners) {
      kept = kept || l.listen.text == o.listen.text;
    }
    if (!kept) {
      out.push_back(fmt::format("listener removed: \"{}\" on {} (stops accepting, its connections drain)", o.name,
                                o.listen.text));
    }
  }
}

// Backends are known by address within their upstream; `state_kept` is false when a setting
// that makes every backend start over changed.
void diff_backends(const upstream& was, const upstream& u, bool state_kept, std::vector<std::string>& out) {
  for (const auto& b : u.backends) {
    const backend* old_b = nullptr;
    for (const auto& ob : was.backends) {
      if (ob.addr.text == b.addr.text) {
        old_b = &ob;
      }
    }
    if (old_b == nullptr) {
      out.push_back(fmt::format("backend added: \"{}\" {} ({}starts unknown until its first check)", u.name,
                                b.addr.text, b.addr.is_ip ? "" : "a hostname: each address it resolves to "));
    } else if (!state_kept) {
      out.push_back(
          fmt::format("backend reset: \"{}\" {} (health check or breaker settings changed: its state "
                      "starts over)",
                      u.name, b.addr.text));
    } else if (old_b->weight != b.weight || old_b->backup != b.backup) {
      out.push_back(fmt::format("backend changed: \"{}\" {} (weight {} -> {}{}; state kept)", u.name, b.addr.text,
                                old_b->weight, b.weight, old_b->backup != b.backup ? ", backup role" : ""));
    }
  }
  for (const auto& ob : was.backends) {
    bool kept = false;
    for (const auto& b : u.backends) {
      kept = kept || b.addr.text == ob.addr.text;
    }
    if (!kept) {
      out.push_back(fmt::format("backend removed: \"{}\" {} (its in-flight requests finish)", u.name, ob.addr.text));
    }
  }
}

// Upstreams are known by name.
void diff_upstreams(const config& old_cfg, const config& new_cfg, std::vector<std::string>& out) {
  for (const auto& u : new_cfg.upstreams) {
    const upstream* was = old_cfg.find_upstream(u.name);
    if (was == nullptr) {
      out.push_back(fmt::format("upstream added: \"{}\" ({} backends, new: unknown until their first check)", u.name,
                                u.backends.size()));
      continue;
    }
    if (auto changes = upstream_changes(*was, u); !changes.empty()) {
      out.push_back(fmt::format("upstream changed: \"{}\" ({})", u.name, changes));
    }
    diff_backends(*was, u, same_health_check(was->health, u.health) && same_breaker(was->breaker, u.breaker), out);
  }
  for (const auto& o : old_cfg.upstreams) {
    if (new_cfg.find_upstream(o.name) == nullptr) {
      out.push_back(fmt::format("upstream removed: \"{}\"", o.name));
    }
  }
}

}  // namespace

// Rate limit policies added, removed or changed. A changed policy starts with full budgets.
static void diff_rate_limits(const config& old_cfg, const config& new_cfg, std::vector<std::string>& out) {
  for (const auto& n : new_cfg.rate_limits) {
    const auto* o = find_rate_limit(old_cfg, n.name);
    if (o == nullptr) {
      out.push_back(fmt::format("rate limit \"{}\" added", n.name));
    } else if (!same_rate_limit_budget(*o, n)) {
      out.push_back(fmt::format("rate limit \"{}\" changed (its budgets start full)", n.name));
    } else if (o->dry_run != n.dry_run) {
      out.push_back(
          fmt::format("rate limit \"{}\" {}", n.name, n.dry_run ? "now only counts (dry_run)" : "now limits"));
    }
  }
  for (const auto& o : old_cfg.rate_limits) {
    if (find_rate_limit(new_cfg, o.name) == nullptr) {
      out.push_back(fmt::format("rate limit \"{}\" removed", o.name));
    }
  }
}

// Tracing turned on or off, or what changed in it: "tracing changed (sample 1% -> 100%, ...)".
static void diff_tracing(const config& old_cfg, const config& new_cfg, std::vector<std::string>& out) {
  const auto& o = old_cfg.tracing;
  const auto& n = new_cfg.tracing;
  auto collector = [](const tracing_config& t) {
    return t.otlp ? fmt::format("spans to {}", t.otlp_text) : std::string("no collector: spans only counted");
  };
  if (!o && n) {
    out.push_back(fmt::format("tracing on (sample {:g}%, {})", n->sample, collector(*n)));
  } else if (o && !n) {
    out.emplace_back("tracing off");
  } else if (o && n) {
    std::vector<std::string> changes;
    if (o->sample != n->sample) {
      changes.push_back(fmt::format("sample {:g}% -> {:g}%", o->sample, n->sample));
    }
    if (o->otlp_text != n->otlp_text) {
      changes.push_back(fmt::format("otlp {} -> {}", o->otlp ? o->otlp_text : "none", n->otlp ? n->otlp_text : "none"));
    }
    if (o->service_name != n->service_name) {
      changes.push_back(fmt::format("service_name {} -> {}", o->service_name, n->service_name));
    }
    if (o->max_queue != n->max_queue) {
      changes.push_back(fmt::format("max_queue {} -> {}", o->max_queue, n->max_queue));
    }
    if (!changes.empty()) {
      out.push_back(fmt::format("tracing changed ({})", fmt::join(changes, ", ")));
    }
  }
}

const rate_limit* find_rate_limit(const config& cfg, const std::string& name) {
  for (const auto& r : cfg.rate_limits) {
    if (r.name == name) {
      return &r;
    }
  }
  return nullptr;
}

bool same_rate_limit_budget(const rate_limit& a, const rate_limit& b) {
  return a.key == b.key && a.header == b.header && a.count == b.count && a.period == b.period && a.burst == b.burst &&
         a.max_keys == b.max_keys && (a.shared ? a.shared->text : "") == (b.shared ? b.shared->text : "") &&
         a.on_unavailable == b.on_unavailable && a.shared_timeout == b.shared_timeout;
}

std::vector<std::string> diff(const config& old_cfg, const config& new_cfg) {
  std::vector<std::string> out;
  diff_listeners(old_cfg, new_cfg, out);
  diff_upstreams(old_cfg, new_cfg, out);
  diff_rate_limits(old_cfg, new_cfg, out);
  diff_tracing(old_cfg, new_cfg, out);
  if (old_cfg.workers != new_cfg.workers) {
    out.emplace_back("workers changed: takes effect only at the next start");
  }
  if (old_cfg.admin_api.listen.text != new_cfg.admin_api.listen.text) {
    out.emplace_back("admin.listen changed: takes effect only at the next start");
  }
  if (old_cfg.admin_api.token != new_cfg.admin_api.token) {
    // Never the token itself: diffs end up in logs and in POST /reload answers.
    out.emplace_back(new_cfg.admin_api.token.empty()   ? "admin token removed"
                     : old_cfg.admin_api.token.empty() ? "admin token set"
                                                       : "admin token changed");
  }
  return out;
}

}  // namespace spillway::config

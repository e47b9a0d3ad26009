#include "admin/metrics_text.h"

#include "admin/prometheus.h"

#include <algorithm>

namespace spillway::admin {

namespace {

using upstream::host;
using upstream::upstream_stats;

// Writes the families of one state, section by section (in the order dashboards have always seen).
class metrics_writer {
 public:
  explicit metrics_writer(const state& s) : s_(s) {}

  std::string render() {
    host_families();
    dns_families();
    upstream_families();
    breaker_families();
    limit_families();
    listener_families();
    rate_limit_families();
    tracing_families();
    route_and_upstream_traffic();
    backend_traffic();
    process_families();
    return w_.take();
  }

 private:
  // One sample per backend of every upstream.
  template <typename Fn>
  void per_host(std::string_view name, Fn value) {
    for (const auto& c : s_.clusters) {
      for (const auto& h : c->hosts) {
        w_.sample(name, backend_labels(*c, *h), value(*h));
      }
    }
  }
  // One sample per upstream; `extra` adds a label.
  template <typename Fn>
  void per_upstream(std::string_view name, std::string_view extra_name, std::string_view extra_value, Fn value) {
    for (const auto& c : s_.clusters) {
      auto labels = extra_name.empty() ? label_set({{"upstream", c->cfg.name}})
                                       : label_set({{"upstream", c->cfg.name}, {extra_name, extra_value}});
      w_.sample(name, labels, value(*c->stats));
    }
  }
  template <typename Fn>
  void per_upstream(std::string_view name, Fn value) {
    per_upstream(name, {}, {}, value);
  }
  // One sample per listener of a counter summed over its worker slots.
  template <typename Field>
  void per_listener_sum(std::string_view name, Field field) {
    for (const auto& l : s_.listeners) {
      w_.sample(name, label_set({{"listener", l.name}}), sum(*l.traffic, field));
    }
  }
  // Sums one counter over the worker slots of `pw`.
  template <typename PerWorker, typename Field>
  static std::uint64_t sum(const PerWorker& pw, Field field) {
    std::uint64_t v = 0;
    pw.each([&](const auto& t) { v += field(t).get(); });
    return v;
  }
  template <typename PerWorker, typename Field>
  void histogram_of(std::string_view name, std::string_view labels, const PerWorker& pw, Field field) {
    stats::histogram_totals t;
    pw.each([&](const auto& slot) { t.add(field(slot)); });
    w_.histogram(name, labels, t);
  }
  // A hostname's addresses carry the name too: backend="10.0.0.7:8080",name="api.internal:8080".
  static std::string backend_labels(const upstream::cluster& c, const host& h) {
    auto labels = label_set({{"upstream", c.cfg.name}, {"backend", h.address()}});
    if (h.from_name()) {
      labels = fmt::format("{},{}", labels, label_set({{"name", h.name()}}));
    }
    return labels;
  }

  void host_families();
  void dns_families();
  void upstream_families();
  void breaker_families();
  void limit_families();
  void listener_families();
  void rate_limit_families();
  void tracing_families();
  void route_and_upstream_traffic();
  void backend_traffic();
  void process_families();

  const state& s_;
  prometheus_text w_;
};

void metrics_writer::host_families() {
  w_.family("spillway_backend_up", "gauge",
            "1 when the backend can take traffic (healthy, not ejected, breaker not open)");
  per_host("spillway_backend_up", [](const host& h) { return h.available() ? 1 : 0; });
  w_.family("spillway_backend_healthy", "gauge", "1 when active health checks pass");
  per_host("spillway_backend_healthy", [](const host& h) { return h.is_healthy() ? 1 : 0; });
  w_.family("spillway_backend_active_requests", "gauge", "requests in flight to the backend");
  per_host("spillway_backend_active_requests", [](const host& h) { return std::max(0, h.active_requests.load()); });
  w_.family("spillway_backend_requests_total", "counter", "requests sent to the backend (each try counts)");
  per_host("spillway_backend_requests_total", [](const host& h) { return h.requests_total.load(); });
  w_.family("spillway_backend_failures_total", "counter",
            "connect failures, resets, timeouts and 5xx from the backend");
  per_host("spillway_backend_failures_total", [](const host& h) { return h.failures_total.load(); });
  w_.family("spillway_backend_connect_failures_total", "counter", "failed connects to the backend");
  per_host("spillway_backend_connect_failures_total", [](const host& h) { return h.connect_failures_total.load(); });
  w_.family("spillway_backend_connections", "gauge", "open connections to the backend (pooled included)");
  per_host("spillway_backend_connections", [](const host& h) { return std::max(0, h.connections_active.load()); });
  w_.family("spillway_backend_ejected", "gauge", "1 while outlier detection has the backend ejected");
  per_host("spillway_backend_ejected", [](const host& h) { return h.is_ejected() ? 1 : 0; });
  w_.family("spillway_health_check_failures_total", "counter", "active health checks that failed");
  per_host("spillway_health_check_failures_total", [](const host& h) { return h.health_check_failures_total(); });
  w_.family("spillway_health_transitions_total", "counter", "health flips (up to down and down to up)");
  per_host("spillway_health_transitions_total",
           [](const host& h) { return h.transitions(upstream::out_kind::health); });
  w_.family("spillway_ejections_total", "counter", "ejections by passive outlier detection");
  per_host("spillway_ejections_total", [](const host& h) { return h.transitions(upstream::out_kind::ejection); });
}

void metrics_writer::dns_families() {
  // One sample per hostname backend.
  auto per_name = [&](std::string_view family, auto value) {
    for (const auto& c : s_.clusters) {
      for (const auto& n : c->names) {
        w_.sample(family, label_set({{"upstream", c->cfg.name}, {"name", n->name}}), value(*n));
      }
    }
  };
  w_.family("spillway_dns_addresses", "gauge", "addresses a hostname backend resolves to (each one a backend)");
  per_name("spillway_dns_addresses", [](const upstream::name_stats& n) { return n.addresses; });
  w_.family("spillway_dns_lookups_total", "counter", "answers to lookups of a hostname backend");
  per_name("spillway_dns_lookups_total", [](const upstream::name_stats& n) { return n.lookups; });
  w_.family("spillway_dns_lookup_failures_total", "counter",
            "lookups that failed or came back empty (the last good addresses stayed)");
  per_name("spillway_dns_lookup_failures_total", [](const upstream::name_stats& n) { return n.failures; });
  w_.family("spillway_dns_address_changes_total", "counter", "addresses that appeared in or left a hostname's answer");
  for (const auto& c : s_.clusters) {
    for (const auto& n : c->names) {
      w_.sample("spillway_dns_address_changes_total",
                label_set({{"upstream", c->cfg.name}, {"name", n->name}, {"change", "added"}}), n->added);
      w_.sample("spillway_dns_address_changes_total",
                label_set({{"upstream", c->cfg.name}, {"name", n->name}, {"change", "removed"}}), n->removed);
    }
  }
}

void metrics_writer::upstream_families() {
  w_.family("spillway_upstream_requests_active", "gauge", "client requests in flight to the upstream");
  per_upstream("spillway_upstream_requests_active", [](const upstream_stats& st) { return st.active_requests.load(); });
  w_.family("spillway_retries_total", "counter", "retry tries, by whether the retry got a good answer");
  per_upstream("spillway_retries_total", "result", "success",
               [](const upstream_stats& st) { return st.retries_success.load(); });
  per_upstream("spillway_retries_total", "result", "failure",
               [](const upstream_stats& st) { return st.retries_failure.load(); });
  w_.family("spillway_retry_budget_exhausted_total", "counter",
            "retries not made because the retry budget was used up");
  per_upstream("spillway_retry_budget_exhausted_total",
               [](const upstream_stats& st) { return st.retry_budget_exhausted.load(); });
  w_.family("spillway_no_healthy_upstream_total", "counter", "requests answered 503 because no backend was available");
  per_upstream("spillway_no_healthy_upstream_total",
               [](const upstream_stats& st) { return st.no_healthy_upstream.load(); });
  w_.family("spillway_upstream_response_headers_too_large_total", "counter",
            "responses refused (502) because their head was over max_response_headers or its field limit");
  per_upstream("spillway_upstream_response_headers_too_large_total",
               [](const upstream_stats& st) { return st.response_heads_too_large.load(); });
  w_.family("spillway_upstream_connections_salvaged_total", "counter",
            "backend connections kept for reuse by reading an answer to its end after the HTTP/2 client "
            "that asked for it reset its stream or left");
  per_upstream("spillway_upstream_connections_salvaged_total",
               [](const upstream_stats& st) { return st.connections_salvaged.load(); });
}

void metrics_writer::breaker_families() {
  w_.family("spillway_breaker_state", "gauge", "circuit breaker state: 0 closed, 1 open, 2 half_open");
  per_host("spillway_breaker_state", [](const host& h) { return static_cast<int>(h.breaker_now()); });
  w_.family("spillway_breaker_transitions_total", "counter", "circuit breaker transitions");
  // In the order of host::breaker_transitions(kind).
  static constexpr std::pair<const char*, const char*> kinds[] = {
      {"closed", "open"}, {"open", "half_open"}, {"half_open", "closed"}, {"half_open", "open"}};
  for (const auto& c : s_.clusters) {
    for (const auto& h : c->hosts) {
      for (std::size_t k = 0; k < upstream::host::breaker_transition_kinds; ++k) {
        w_.sample("spillway_breaker_transitions_total",
                  fmt::format("{},{}", backend_labels(*c, *h),
                              label_set({{"from", kinds[k].first}, {"to", kinds[k].second}})),
                  h->breaker_transitions(k));
      }
    }
  }
}

void metrics_writer::limit_families() {
  w_.family("spillway_upstream_overflow_total", "counter", "requests answered 503 at once because a limit was reached");
  per_upstream("spillway_upstream_overflow_total", "limit", "max_requests",
               [](const upstream_stats& st) { return st.overflow_max_requests.load(); });
  per_upstream("spillway_upstream_overflow_total", "limit", "max_pending",
               [](const upstream_stats& st) { return st.overflow_max_pending.load(); });
  per_upstream("spillway_upstream_overflow_total", "limit", "max_connections",
               [](const upstream_stats& st) { return st.overflow_max_connections.load(); });
  w_.family("spillway_upstream_connections", "gauge", "open connections to the upstream's backends");
  per_upstream("spillway_upstream_connections", [](const upstream_stats& st) { return st.connections.load(); });
  w_.family("spillway_upstream_pending", "gauge", "requests waiting for a connection");
  per_upstream("spillway_upstream_pending", [](const upstream_stats& st) { return st.pending.load(); });
}

void metrics_writer::listener_families() {
  using traffic = stats::listener_traffic;
  w_.family("spillway_listener_connections_total", "counter", "downstream connections accepted");
  per_listener_sum("spillway_listener_connections_total",
                   [](const traffic& t) -> const stats::counter& { return t.connections_total; });
  w_.family("spillway_listener_connections_active", "gauge", "downstream connections open now");
  for (const auto& l : s_.listeners) {
    auto total = sum(*l.traffic, [](const traffic& t) -> const stats::counter& { return t.connections_total; });
    auto closed = sum(*l.traffic, [](const traffic& t) -> const stats::counter& { return t.connections_closed; });
    w_.sample("spillway_listener_connections_active", label_set({{"listener", l.name}}),
              total >= closed ? total - closed : 0);
  }
  w_.family("spillway_listener_local_replies_total", "counter",
            "answers Spillway made itself, by x-spillway-reason (malformed requests, limits, timeouts, ...)");
  for (const auto& l : s_.listeners) {
    for (std::size_t i = 0; i < stats::local_reply_reasons.size(); ++i) {
      w_.sample("spillway_listener_local_replies_total",
                label_set({{"listener", l.name}, {"reason", stats::local_reply_reasons[i]}}),
                sum(*l.traffic, [i](const traffic& t) -> const stats::counter& { return t.local_replies[i]; }));
    }
  }
  w_.family("spillway_listener_connections_rejected_total", "counter",
            "connections closed at accept because the listener's max_connections was reached");
  per_listener_sum("spillway_listener_connections_rejected_total",
                   [](const traffic& t) -> const stats::counter& { return t.connections_rejected; });
  w_.family("spillway_listener_tls_handshake_failures_total", "counter", "TLS handshakes that failed or timed out");
  per_listener_sum("spillway_listener_tls_handshake_failures_total",
                   [](const traffic& t) -> const stats::counter& { return t.tls_handshake_failures; });
  w_.family("spillway_listener_h2_connections_total", "counter", "client connections that spoke HTTP/2");
  per_listener_sum("spillway_listener_h2_connections_total",
                   [](const traffic& t) -> const stats::counter& { return t.h2_connections; });
  w_.family("spillway_listener_h2_streams_total", "counter", "HTTP/2 streams (requests) clients opened");
  per_listener_sum("spillway_listener_h2_streams_total",
                   [](const traffic& t) -> const stats::counter& { return t.h2_streams; });
  w_.family("spillway_listener_h2_refusals_total", "counter",
            "HTTP/2 streams refused or connections ended for abuse or protocol errors, by reason");
  for (const auto& l : s_.listeners) {
    for (std::size_t i = 0; i < stats::h2_refusal_reasons.size(); ++i) {
      w_.sample("spillway_listener_h2_refusals_total",
                label_set({{"listener", l.name}, {"reason", stats::h2_refusal_reasons[i]}}),
                sum(*l.traffic, [i](const traffic& t) -> const stats::counter& { return t.h2_refusals[i]; }));
    }
  }
  w_.family("spillway_listener_requests_total", "counter",
            "requests answered, by status class (code=\"none\": the client left before an answer)");
  for (const auto& l : s_.listeners) {
    w_.status_classes("spillway_listener_requests_total", label_set({{"listener", l.name}}), *l.traffic);
  }
  w_.family("spillway_listener_received_bytes_total", "counter", "bytes received from clients");
  per_listener_sum("spillway_listener_received_bytes_total",
                   [](const traffic& t) -> const stats::counter& { return t.bytes_in; });
  w_.family("spillway_listener_sent_bytes_total", "counter", "bytes sent to clients");
  per_listener_sum("spillway_listener_sent_bytes_total",
                   [](const traffic& t) -> const stats::counter& { return t.bytes_out; });
  w_.family("spillway_listener_request_duration_seconds", "histogram",
            "first request byte in to last response byte out");
  for (const auto& l : s_.listeners) {
    histogram_of("spillway_listener_request_duration_seconds", label_set({{"listener", l.name}}), *l.traffic,
                 [](const traffic& t) -> const stats::histogram& { return t.duration; });
  }
}

void metrics_writer::rate_limit_families() {
  w_.family("spillway_rate_limit_decisions_total", "counter",
            "requests (tcp listeners: connections) a rate limit policy judged, by result (dry_run_limited: would "
            "have been limited, admitted by dry_run)");
  for (const auto& r : s_.rate_limits) {
    const std::pair<const char*, std::uint64_t> results[] = {
        {"admitted", r.admitted}, {"limited", r.limited}, {"dry_run_limited", r.dry_run_limited}};
    for (const auto& [result, n] : results) {
      w_.sample("spillway_rate_limit_decisions_total", label_set({{"policy", r.name}, {"result", result}}), n);
    }
  }
  w_.family("spillway_rate_limit_redis_calls_total", "counter",
            "calls to the Redis of a shared policy, by how they ended (timeout, unavailable, error: on_unavailable "
            "decided)");
  for (const auto& r : s_.rate_limits) {
    if (r.shared.empty()) {
      continue;
    }
    for (std::size_t k = 0; k < redis_results.size(); ++k) {
      w_.sample("spillway_rate_limit_redis_calls_total", label_set({{"policy", r.name}, {"result", redis_results[k]}}),
                r.redis[k]);
    }
  }
  w_.family("spillway_rate_limit_keys", "gauge", "keys (clients, header values, routes) a policy remembers");
  for (const auto& r : s_.rate_limits) {
    w_.sample("spillway_rate_limit_keys", label_set({{"policy", r.name}}), r.keys);
  }
  w_.family("spillway_rate_limit_evictions_total", "counter",
            "keys dropped while their budget was in use, because the policy's max_keys was reached");
  for (const auto& r : s_.rate_limits) {
    w_.sample("spillway_rate_limit_evictions_total", label_set({{"policy", r.name}}), r.evictions);
  }
}

void metrics_writer::tracing_families() {
  if (!s_.tracing) {
    return;
  }
  const auto& t = *s_.tracing;
  w_.family("spillway_tracing_spans_total", "counter",
            "spans of sampled requests, by what became of them (exported: the collector took them; dropped_queue_full, "
            "dropped_export_failed: lost)");
  w_.sample("spillway_tracing_spans_total", label_set({{"result", "exported"}}), t.exported);
  w_.sample("spillway_tracing_spans_total", label_set({{"result", "dropped_queue_full"}}), t.dropped_full);
  w_.sample("spillway_tracing_spans_total", label_set({{"result", "dropped_export_failed"}}), t.dropped_failed);
  w_.family("spillway_tracing_export_failures_total", "counter", "batches of spans the collector did not take");
  w_.sample("spillway_tracing_export_failures_total", label_set({}), t.batches_failed);
  w_.family("spillway_tracing_queue_spans", "gauge", "spans waiting for export");
  w_.sample("spillway_tracing_queue_spans", label_set({}), t.queued);
}

void metrics_writer::route_and_upstream_traffic() {
  using traffic = stats::upstream_traffic;
  w_.family("spillway_route_requests_total", "counter", "requests matched by each route, by status class");
  for (const auto& l : s_.listeners) {
    for (const auto& r : l.routes) {
      w_.status_classes("spillway_route_requests_total",
                        label_set({{"listener", l.name}, {"route", std::to_string(r.index)}, {"upstream", r.upstream}}),
                        *r.traffic);
    }
  }
  w_.family("spillway_upstream_requests_total", "counter", "client requests sent to the upstream, by status class");
  for (const auto& c : s_.clusters) {
    w_.status_classes("spillway_upstream_requests_total", label_set({{"upstream", c->cfg.name}}), c->stats->traffic);
  }
  w_.family("spillway_upstream_request_duration_seconds", "histogram",
            "client requests to the upstream: first byte in to last byte out, retries included");
  for (const auto& c : s_.clusters) {
    histogram_of("spillway_upstream_request_duration_seconds", label_set({{"upstream", c->cfg.name}}),
                 c->stats->traffic, [](const traffic& t) -> const stats::histogram& { return t.duration; });
  }
  w_.family("spillway_upstream_connect_duration_seconds", "histogram", "new connections to the upstream's backends");
  for (const auto& c : s_.clusters) {
    histogram_of("spillway_upstream_connect_duration_seconds", label_set({{"upstream", c->cfg.name}}),
                 c->stats->traffic, [](const traffic& t) -> const stats::histogram& { return t.connect_time; });
  }
  w_.family("spillway_upstream_received_bytes_total", "counter", "request bytes from clients routed to the upstream");
  for (const auto& c : s_.clusters) {
    w_.sample("spillway_upstream_received_bytes_total", label_set({{"upstream", c->cfg.name}}),
              sum(c->stats->traffic, [](const traffic& t) -> const stats::counter& { return t.bytes_in; }));
  }
  w_.family("spillway_upstream_sent_bytes_total", "counter", "response bytes sent to clients from the upstream");
  for (const auto& c : s_.clusters) {
    w_.sample("spillway_upstream_sent_bytes_total", label_set({{"upstream", c->cfg.name}}),
              sum(c->stats->traffic, [](const traffic& t) -> const stats::counter& { return t.bytes_out; }));
  }
  w_.family("spillway_upstream_tunnels_active", "gauge", "upgraded (WebSocket) connections relaying now");
  per_upstream("spillway_upstream_tunnels_active", [](const upstream_stats& st) { return st.active_tunnels.load(); });
}

void metrics_writer::backend_traffic() {
  w_.family("spillway_backend_responses_total", "counter",
            "client requests whose last try went to the backend, by the status class the client got");
  for (const auto& c : s_.clusters) {
    for (const auto& h : c->hosts) {
      w_.status_classes("spillway_backend_responses_total", backend_labels(*c, *h), h->traffic);
    }
  }
  w_.family("spillway_backend_request_duration_seconds", "histogram",
            "client requests whose last try went to the backend: first byte in to last byte out");
  for (const auto& c : s_.clusters) {
    for (const auto& h : c->hosts) {
      histogram_of("spillway_backend_request_duration_seconds", backend_labels(*c, *h), h->traffic,
                   [](const stats::request_traffic& t) -> const stats::histogram& { return t.duration; });
    }
  }
  w_.family("spillway_backend_retried_total", "counter", "tries that failed on the backend and were retried elsewhere");
  per_host("spillway_backend_retried_total", [](const host& h) { return h.retried_total(); });
}

void metrics_writer::process_families() {
  w_.family("spillway_access_log_dropped_lines_total", "counter",
            "access log lines dropped because the writer fell behind");
  w_.sample("spillway_access_log_dropped_lines_total", "", s_.access_log_dropped);
  w_.family("spillway_workers", "gauge", "worker threads");
  w_.sample("spillway_workers", "", s_.workers);
  w_.family("spillway_metrics_per_request", "gauge", "1 when per-request metrics are counted (config `metrics`)");
  w_.sample("spillway_metrics_per_request", "", s_.metrics ? 1 : 0);
  w_.family("spillway_config_reloads_total", "counter", "config reloads by result");
  w_.sample("spillway_config_reloads_total", label_set({{"result", "success"}}), s_.reloads_ok);
  w_.sample("spillway_config_reloads_total", label_set({{"result", "failure"}}), s_.reloads_failed);
  w_.family("spillway_config_reload_triggers_total", "counter",
            "config reloads (applied or refused) by what triggered them");
  for (std::size_t i = 0; i < s_.reloads_by_trigger.size(); ++i) {
    w_.sample("spillway_config_reload_triggers_total",
              label_set({{"trigger", trigger_name(static_cast<reload_trigger>(i))}}), s_.reloads_by_trigger[i]);
  }
  w_.family("spillway_config_last_reload_success", "gauge", "1 when the last reload (if any) was applied");
  w_.sample("spillway_config_last_reload_success", "", s_.last_reload_error.empty() ? 1 : 0);
  w_.family("spillway_config_generation", "gauge", "generation of the running config");
  w_.sample("spillway_config_generation", "", s_.generation);
}

}  // namespace

std::string metrics_text(const state& s) { return metrics_writer(s).render(); }

}  // namespace spillway::admin

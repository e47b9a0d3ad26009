#include "admin/status_json.h"

#include "admin/json.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace spillway::admin {

namespace {

// The breaker's window and, while open, when it may go half-open.
std::string breaker_json(const upstream::host& h, breaker::clock::time_point now) {
  if (!h.circuit) {
    return "null";
  }
  auto r = h.circuit->window(now);
  std::string out = fmt::format("{{\"calls\":{},\"failure_rate\":{:.1f},\"slow_call_rate\":{:.1f}", r.calls,
                                r.failure_rate, r.slow_rate);
  if (h.circuit->current() == breaker::state::open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(h.circuit->open_until() - now).count();
    out += fmt::format(",\"half_open_in_ms\":{}", std::max<std::int64_t>(0, left));
  }
  out += "}";
  return out;
}

// Responses by class and latency quantiles of per-worker traffic counters, as JSON members.
template <typename Traffic>
std::string traffic_json(const stats::per_worker<Traffic>& pw) {
  std::array<std::uint64_t, 6> classes{};
  stats::histogram_totals t;
  pw.each([&](const Traffic& slot) {
    for (std::size_t c = 0; c < 6; ++c) {
      classes[c] += slot.responses.by_class[c].get();
    }
    t.add(slot.duration);
  });
  return fmt::format(
      "\"responses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{},\"none\":{}}},"
      "\"latency_ms\":{{\"p50\":{:.3f},\"p98\":{:.3f},\"p99\":{:.3f}}}",
      classes[1], classes[2], classes[3], classes[4], classes[5], classes[0], t.quantile(0.5) * 1e3,
      t.quantile(0.98) * 1e3, t.quantile(0.99) * 1e3);
}

std::string backend_json(const upstream::host& h, breaker::clock::time_point now) {
  const char* out_reason = h.out_reason();
  return fmt::format(
      "{{\"address\":{},\"name\":{},\"weight\":{},\"backup\":{},\"available\":{},\"out_reason\":{},\"healthy\":{},"
      "\"health_detail\":{},\"ejected\":{},\"ejection_detail\":{},\"breaker\":\"{}\","
      "\"active_requests\":{},\"requests_total\":{},\"failures_total\":{},\"connect_failures_total\":{},"
      "\"consecutive_failures\":{},\"health_check_failures_total\":{},\"ejections_total\":{},"
      "\"connections_active\":{},\"retried_total\":{},\"breaker_window\":{},{}}}",
      json_string(h.address()), json_string(h.name()), h.weight(), h.backup(), out_reason == nullptr,
      out_reason == nullptr ? std::string("null") : json_string(out_reason), h.is_healthy(),
      json_string(h.detail(upstream::out_kind::health)), h.is_ejected(),
      json_string(h.is_ejected() ? h.detail(upstream::out_kind::ejection) : ""), upstream::to_string(h.breaker_now()),
      std::max(0, h.active_requests.load()), h.requests_total.load(), h.failures_total.load(),
      h.connect_failures_total.load(), h.consecutive_failures.load(), h.health_check_failures_total(),
      h.transitions(upstream::out_kind::ejection), std::max(0, h.connections_active.load()), h.retried_total(),
      breaker_json(h, now), traffic_json(h.traffic));
}

std::string upstream_json(const upstream::cluster& c, breaker::clock::time_point now) {
  std::string out = fmt::format("{{\"name\":{},\"backends\":[", json_string(c.cfg.name));
  for (std::size_t i = 0; i < c.hosts.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    out += backend_json(*c.hosts[i], now);
  }
  out += "],\"names\":[";
  for (std::size_t i = 0; i < c.names.size(); ++i) {
    const auto& n = *c.names[i];
    out += fmt::format(
        "{}{{\"name\":{},\"addresses\":{},\"lookups\":{},\"failures\":{},\"added\":{},\"removed\":{},"
        "\"last_error\":{}}}",
        i > 0 ? "," : "", json_string(n.name), n.addresses, n.lookups, n.failures, n.added, n.removed,
        n.last_error.empty() ? std::string("null") : json_string(n.last_error));
  }
  const auto& st = *c.stats;
  out += fmt::format(
      "],\"active_requests\":{},\"active_tunnels\":{},\"connections\":{},\"pending\":{},"
      "\"retries\":{{\"success\":{},\"failure\":{},\"budget_exhausted\":{}}},\"no_healthy_upstream\":{},"
      "\"overflow\":{{\"max_requests\":{},\"max_pending\":{},\"max_connections\":{}}},{}}}",
      std::max<std::int64_t>(0, st.active_requests.load()), st.active_tunnels.load(), st.connections.load(),
      st.pending.load(), st.retries_success.load(), st.retries_failure.load(), st.retry_budget_exhausted.load(),
      st.no_healthy_upstream.load(), st.overflow_max_requests.load(), st.overflow_max_pending.load(),
      st.overflow_max_connections.load(), traffic_json(st.traffic));
  return out;
}

std::string listener_json(const listener_info& l) {
  std::uint64_t total = 0;
  std::uint64_t closed = 0;
  l.traffic->each([&](const stats::listener_traffic& t) {
    total += t.connections_total.get();
    closed += t.connections_closed.get();
  });
  return fmt::format(
      "{{\"name\":{},\"address\":{},\"protocol\":\"{}\",\"tls\":{},\"connections_total\":{},"
      "\"connections_active\":{},{}}}",
      json_string(l.name), json_string(l.address), l.protocol, l.tls, total, total >= closed ? total - closed : 0,
      traffic_json(*l.traffic));
}

std::string event_json(const upstream::journal_event& e) {
  return fmt::format("{{\"at\":{},\"kind\":\"{}\",\"upstream\":{},\"backend\":{},\"from\":{},\"to\":{},\"detail\":{}}}",
                     json_string(iso8601(e.at)), e.kind, json_string(e.upstream), json_string(e.backend),
                     json_string(e.from), json_string(e.to), json_string(e.detail));
}

}  // namespace

std::string status_json(const state& s, breaker::clock::time_point now) {
  std::string out = "{\"upstreams\":[";
  for (std::size_t i = 0; i < s.clusters.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    out += upstream_json(*s.clusters[i], now);
  }
  out += "],\"listeners\":[";
  for (std::size_t i = 0; i < s.listeners.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    out += listener_json(s.listeners[i]);
  }
  out += "],\"rate_limits\":[";
  for (std::size_t i = 0; i < s.rate_limits.size(); ++i) {
    const auto& r = s.rate_limits[i];
    out += fmt::format(
        "{}{{\"name\":{},\"key\":{},\"rate\":{},\"burst\":{},\"dry_run\":{},\"admitted\":{},\"limited\":{},"
        "\"dry_run_limited\":{},\"keys\":{},\"max_keys\":{},\"evictions\":{},\"shared\":{}",
        i > 0 ? "," : "", json_string(r.name), json_string(r.key), json_string(r.rate), r.burst, r.dry_run, r.admitted,
        r.limited, r.dry_run_limited, r.keys, r.max_keys, r.evictions,
        r.shared.empty() ? std::string("null") : json_string(r.shared));
    if (!r.shared.empty()) {
      out += fmt::format(",\"on_unavailable\":{},\"redis\":{{", json_string(r.on_unavailable));
      for (std::size_t k = 0; k < redis_results.size(); ++k) {
        out += fmt::format("{}\"{}\":{}", k > 0 ? "," : "", redis_results[k], r.redis[k]);
      }
      out += "}";
    }
    out += "}";
  }
  out += "]";
  if (s.tracing) {
    const auto& t = *s.tracing;
    out += fmt::format(
        ",\"tracing\":{{\"sample\":{},\"otlp\":{},\"spans_exported\":{},\"spans_dropped_queue_full\":{},"
        "\"spans_dropped_export_failed\":{},\"batches_failed\":{},\"queued\":{}}}",
        t.sample, t.otlp.empty() ? std::string("null") : json_string(t.otlp), t.exported, t.dropped_full,
        t.dropped_failed, t.batches_failed, t.queued);
  }
  out += ",\"events\":[";
  if (s.journal != nullptr) {
    const auto events = s.journal->recent(50);
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (i > 0) {
        out.push_back(',');
      }
      out += event_json(events[i]);
    }
  }
  out += "]";
  out += fmt::format(",\"config\":{{\"generation\":{},\"loaded_at\":{},\"path\":{}", s.generation,
                     json_string(iso8601(s.loaded_at)), json_string(s.config_path));
  if (!s.last_reload_error.empty()) {
    out += fmt::format(",\"last_reload_error\":{}", json_string(s.last_reload_error));
  }
  out += "}}\n";
  return out;
}

}  // namespace spillway::admin

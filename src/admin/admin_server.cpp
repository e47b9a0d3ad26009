#include "admin/admin_server.h"
#include "admin/dashboard_page.h"

#include "common/listen.h"
#include "common/log.h"
#include "http/parser.h"
#include "http/status.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>

namespace spillway::admin {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

std::string iso8601(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

// Prometheus label values escape backslash, quote and newline.
std::string label(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c < 0x20) {
          out.append(fmt::format("\\u{:04x}", c));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

namespace {

// The breaker's window and, while open, when it may go half-open.
std::string breaker_json(const upstream::host& h) {
  if (!h.circuit) {
    return "null";
  }
  const auto now = breaker::clock::now();
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

using incident_time = std::optional<std::chrono::system_clock::time_point>;

std::string opt_time(const incident_time& t) { return t ? json_string(iso8601(*t)) : std::string("null"); }

double seconds_between(std::chrono::system_clock::time_point a, std::chrono::system_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

std::string admin_server::status_json(const state& s) {
  std::string out = "{\"upstreams\":[";
  bool first_up = true;
  for (const auto& c : s.clusters) {
    if (!first_up) {
      out.push_back(',');
    }
    first_up = false;
    out += fmt::format("{{\"name\":{},\"backends\":[", json_string(c->cfg.name));
    bool first = true;
    for (const auto& h : c->hosts) {
      if (!first) {
        out.push_back(',');
      }
      first = false;
      const char* out_reason = h->out_reason();
      out += fmt::format(
          "{{\"address\":{},\"weight\":{},\"backup\":{},\"available\":{},\"out_reason\":{},\"healthy\":{},"
          "\"health_detail\":{},\"ejected\":{},\"ejection_detail\":{},\"breaker\":\"{}\","
          "\"active_requests\":{},\"requests_total\":{},\"failures_total\":{},\"connect_failures_total\":{},"
          "\"consecutive_failures\":{},\"health_check_failures_total\":{},\"ejections_total\":{},"
          "\"connections_active\":{},\"retried_total\":{},\"breaker_window\":{},{}}}",
          json_string(h->address()), h->weight(), h->backup(), out_reason == nullptr,
          out_reason == nullptr ? std::string("null") : json_string(out_reason), h->healthy.load(),
          json_string(h->health_detail), h->ejected.load(), json_string(h->ejected.load() ? h->ejection_detail : ""),
          upstream::to_string(h->breaker.load()), std::max(0, h->active_requests.load()), h->requests_total.load(),
          h->failures_total.load(), h->connect_failures_total.load(), h->consecutive_failures.load(),
          h->health_check_failures_total.load(), h->ejections_total.load(), std::max(0, h->connections_active.load()),
          h->retried_total.load(), breaker_json(*h), traffic_json(h->traffic));
    }
    const auto& st = *c->stats;
    out += fmt::format(
        "],\"active_requests\":{},\"active_tunnels\":{},\"connections\":{},\"pending\":{},"
        "\"retries\":{{\"success\":{},\"failure\":{},\"budget_exhausted\":{}}},\"no_healthy_upstream\":{},"
        "\"overflow\":{{\"max_requests\":{},\"max_pending\":{},\"max_connections\":{}}},{}}}",
        std::max<std::int64_t>(0, st.active_requests.load()), st.active_tunnels.load(), st.connections.load(),
        st.pending.load(), st.retries_success.load(), st.retries_failure.load(), st.retry_budget_exhausted.load(),
        st.no_healthy_upstream.load(), st.overflow_max_requests.load(), st.overflow_max_pending.load(),
        st.overflow_max_connections.load(), traffic_json(st.traffic));
  }
  out += "],\"listeners\":[";
  for (std::size_t i = 0; i < s.listeners.size(); ++i) {
    const auto& l = s.listeners[i];
    std::uint64_t total = 0;
    std::uint64_t closed = 0;
    l.traffic->each([&](const stats::listener_traffic& t) {
      total += t.connections_total.get();
      closed += t.connections_closed.get();
    });
    out += fmt::format(
        "{}{{\"name\":{},\"address\":{},\"protocol\":\"{}\",\"tls\":{},\"connections_total\":{},"
        "\"connections_active\":{},{}}}",
        i == 0 ? "" : ",", json_string(l.name), json_string(l.address), l.protocol, l.tls, total,
        total >= closed ? total - closed : 0, traffic_json(*l.traffic));
  }
  out += "],\"events\":[";
  if (s.journal != nullptr) {
    bool first = true;
    for (const auto& e : s.journal->recent(50)) {
      out += fmt::format(
          "{}{{\"at\":{},\"kind\":\"{}\",\"upstream\":{},\"backend\":{},\"from\":{},\"to\":{},"
          "\"detail\":{}}}",
          first ? "" : ",", json_string(iso8601(e.at)), e.kind, json_string(e.upstream), json_string(e.backend),
          json_string(e.from), json_string(e.to), json_string(e.detail));
      first = false;
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

const char* trigger_name(reload_trigger t) {
  switch (t) {
    case reload_trigger::file:
      return "file";
    case reload_trigger::poll:
      return "poll";
    case reload_trigger::signal:
      return "signal";
    case reload_trigger::api:
      return "api";
    case reload_trigger::count_:
      break;
  }
  return "unknown";
}

std::string admin_server::metrics_text(const state& s) {
  std::string out;
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto per_host = [&](std::string_view name, auto value) {
    for (const auto& c : s.clusters) {
      for (const auto& h : c->hosts) {
        out += fmt::format("{}{{upstream=\"{}\",backend=\"{}\"}} {}\n", name, label(c->cfg.name), label(h->address()),
                           value(*h));
      }
    }
  };
  family("spillway_backend_up", "gauge",
         "1 when the backend can take traffic (healthy, not ejected, breaker not open)");
  per_host("spillway_backend_up", [](const upstream::host& h) { return h.available() ? 1 : 0; });
  family("spillway_backend_healthy", "gauge", "1 when active health checks pass");
  per_host("spillway_backend_healthy", [](const upstream::host& h) { return h.healthy.load() ? 1 : 0; });
  family("spillway_backend_active_requests", "gauge", "requests in flight to the backend");
  per_host("spillway_backend_active_requests",
           [](const upstream::host& h) { return std::max(0, h.active_requests.load()); });
  family("spillway_backend_requests_total", "counter", "requests sent to the backend (each try counts)");
  per_host("spillway_backend_requests_total", [](const upstream::host& h) { return h.requests_total.load(); });
  family("spillway_backend_failures_total", "counter", "connect failures, resets, timeouts and 5xx from the backend");
  per_host("spillway_backend_failures_total", [](const upstream::host& h) { return h.failures_total.load(); });
  family("spillway_backend_connect_failures_total", "counter", "failed connects to the backend");
  per_host("spillway_backend_connect_failures_total",
           [](const upstream::host& h) { return h.connect_failures_total.load(); });
  family("spillway_backend_connections", "gauge", "open connections to the backend (pooled included)");
  per_host("spillway_backend_connections",
           [](const upstream::host& h) { return std::max(0, h.connections_active.load()); });
  family("spillway_backend_ejected", "gauge", "1 while outlier detection has the backend ejected");
  per_host("spillway_backend_ejected", [](const upstream::host& h) { return h.ejected.load() ? 1 : 0; });
  family("spillway_health_check_failures_total", "counter", "active health checks that failed");
  per_host("spillway_health_check_failures_total",
           [](const upstream::host& h) { return h.health_check_failures_total.load(); });
  family("spillway_health_transitions_total", "counter", "health flips (up to down and down to up)");
  per_host("spillway_health_transitions_total",
           [](const upstream::host& h) { return h.health_transitions_total.load(); });
  family("spillway_ejections_total", "counter", "ejections by passive outlier detection");
  per_host("spillway_ejections_total", [](const upstream::host& h) { return h.ejections_total.load(); });
  auto per_upstream = [&](std::string_view name, std::string_view extra, auto value) {
    for (const auto& c : s.clusters) {
      out += fmt::format("{}{{upstream=\"{}\"{}}} {}\n", name, label(c->cfg.name), extra, value(*c->stats));
    }
  };
  family("spillway_upstream_requests_active", "gauge", "client requests in flight to the upstream");
  per_upstream("spillway_upstream_requests_active", "",
               [](const upstream::upstream_stats& st) { return st.active_requests.load(); });
  family("spillway_retries_total", "counter", "retry tries, by whether the retry got a good answer");
  per_upstream("spillway_retries_total", ",result=\"success\"",
               [](const upstream::upstream_stats& st) { return st.retries_success.load(); });
  per_upstream("spillway_retries_total", ",result=\"failure\"",
               [](const upstream::upstream_stats& st) { return st.retries_failure.load(); });
  family("spillway_retry_budget_exhausted_total", "counter", "retries not made because the retry budget was used up");
  per_upstream("spillway_retry_budget_exhausted_total", "",
               [](const upstream::upstream_stats& st) { return st.retry_budget_exhausted.load(); });
  family("spillway_no_healthy_upstream_total", "counter", "requests answered 503 because no backend was available");
  per_upstream("spillway_no_healthy_upstream_total", "",
               [](const upstream::upstream_stats& st) { return st.no_healthy_upstream.load(); });
  family("spillway_upstream_response_headers_too_large_total", "counter",
         "responses refused (502) because their head was over max_response_headers or its field limit");
  per_upstream("spillway_upstream_response_headers_too_large_total", "",
               [](const upstream::upstream_stats& st) { return st.response_heads_too_large.load(); });
  family("spillway_breaker_state", "gauge", "circuit breaker state: 0 closed, 1 open, 2 half_open");
  per_host("spillway_breaker_state", [](const upstream::host& h) { return static_cast<int>(h.breaker.load()); });
  family("spillway_breaker_transitions_total", "counter", "circuit breaker transitions");
  static constexpr std::pair<const char*, const char*> kinds[] = {
      {"closed", "open"}, {"open", "half_open"}, {"half_open", "closed"}, {"half_open", "open"}};
  for (const auto& c : s.clusters) {
    for (const auto& h : c->hosts) {
      for (std::size_t k = 0; k < 4; ++k) {
        out += fmt::format(
            "spillway_breaker_transitions_total{{upstream=\"{}\",backend=\"{}\",from=\"{}\",to=\"{}\"}} {}\n",
            label(c->cfg.name), label(h->address()), kinds[k].first, kinds[k].second, h->breaker_transitions[k].load());
      }
    }
  }
  family("spillway_upstream_overflow_total", "counter", "requests answered 503 at once because a limit was reached");
  per_upstream("spillway_upstream_overflow_total", ",limit=\"max_requests\"",
               [](const upstream::upstream_stats& st) { return st.overflow_max_requests.load(); });
  per_upstream("spillway_upstream_overflow_total", ",limit=\"max_pending\"",
               [](const upstream::upstream_stats& st) { return st.overflow_max_pending.load(); });
  per_upstream("spillway_upstream_overflow_total", ",limit=\"max_connections\"",
               [](const upstream::upstream_stats& st) { return st.overflow_max_connections.load(); });
  family("spillway_upstream_connections", "gauge", "open connections to the upstream's backends");
  per_upstream("spillway_upstream_connections", "",
               [](const upstream::upstream_stats& st) { return st.connections.load(); });
  family("spillway_upstream_pending", "gauge", "requests waiting for a connection");
  per_upstream("spillway_upstream_pending", "", [](const upstream::upstream_stats& st) { return st.pending.load(); });
  // --- traffic (per-worker counters, summed here) ---
  static constexpr const char* classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  auto histogram_lines = [&](std::string_view name, const std::string& labels, const stats::histogram_totals& t) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < stats::latency_bounds_us.size(); ++i) {
      cumulative += t.counts[i];
      out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                         static_cast<double>(stats::latency_bounds_us[i]) / 1e6, cumulative);
    }
    cumulative += t.counts.back();
    out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, cumulative);
    out += fmt::format("{}_sum{{{}}} {}\n", name, labels, static_cast<double>(t.sum_us) / 1e6);
    out += fmt::format("{}_count{{{}}} {}\n", name, labels, cumulative);
  };
  auto class_lines = [&](std::string_view name, const std::string& labels, const stats::status_classes* const* slots,
                         std::size_t n) {
    for (std::size_t c = 0; c < 6; ++c) {
      std::uint64_t v = 0;
      for (std::size_t i = 0; i < n; ++i) {
        v += slots[i]->by_class[c].get();
      }
      out += fmt::format("{}{{{},code=\"{}\"}} {}\n", name, labels, classes[c], v);
    }
  };
  // Sums one field over the worker slots of `pw`.
  auto sum = [](const auto& pw, auto field) {
    std::uint64_t v = 0;
    pw.each([&](const auto& t) { v += field(t).get(); });
    return v;
  };
  auto classes_of = [&](const auto& pw, std::string_view name, const std::string& labels) {
    std::vector<const stats::status_classes*> slots;
    pw.each([&](const auto& t) { slots.push_back(&t.responses); });
    class_lines(name, labels, slots.data(), slots.size());
  };
  auto histogram_of = [&](const auto& pw, auto field, std::string_view name, const std::string& labels) {
    stats::histogram_totals t;
    pw.each([&](const auto& slot) { t.add(field(slot)); });
    histogram_lines(name, labels, t);
  };

  family("spillway_listener_connections_total", "counter", "downstream connections accepted");
  for (const auto& l : s.listeners) {
    out += fmt::format("spillway_listener_connections_total{{listener=\"{}\"}} {}\n", label(l.name),
                       sum(*l.traffic, [](const auto& t) -> const stats::counter& { return t.connections_total; }));
  }
  family("spillway_listener_connections_active", "gauge", "downstream connections open now");
  for (const auto& l : s.listeners) {
    auto total = sum(*l.traffic, [](const auto& t) -> const stats::counter& { return t.connections_total; });
    auto closed = sum(*l.traffic, [](const auto& t) -> const stats::counter& { return t.connections_closed; });
    out += fmt::format("spillway_listener_connections_active{{listener=\"{}\"}} {}\n", label(l.name),
                       total >= closed ? total - closed : 0);
  }
  family("spillway_listener_local_replies_total", "counter",
         "answers Spillway made itself, by x-spillway-reason (malformed requests, limits, timeouts, ...)");
  for (const auto& l : s.listeners) {
    for (std::size_t i = 0; i < stats::local_reply_reasons.size(); ++i) {
      std::uint64_t n = 0;
      l.traffic->each([&](const stats::listener_traffic& t) { n += t.local_replies[i].get(); });
      out += fmt::format("spillway_listener_local_replies_total{{listener=\"{}\",reason=\"{}\"}} {}\n", label(l.name),
                         stats::local_reply_reasons[i], n);
    }
  }
  family("spillway_listener_connections_rejected_total", "counter",
         "connections closed at accept because the listener's max_connections was reached");
  for (const auto& l : s.listeners) {
    out += fmt::format("spillway_listener_connections_rejected_total{{listener=\"{}\"}} {}\n", label(l.name),
                       sum(*l.traffic, [](const auto& t) -> const stats::counter& { return t.connections_rejected; }));
  }
  family("spillway_listener_tls_handshake_failures_total", "counter", "TLS handshakes that failed or timed out");
  for (const auto& l : s.listeners) {
    out +=
        fmt::format("spillway_listener_tls_handshake_failures_total{{listener=\"{}\"}} {}\n", label(l.name),
                    sum(*l.traffic, [](const auto& t) -> const stats::counter& { return t.tls_handshake_failures; }));
  }
  family("spillway_listener_requests_total", "counter",
         "requests answered, by status class (code=\"none\": the client left before an answer)");
  for (const auto& l : s.listeners) {
    classes_of(*l.traffic, "spillway_listener_requests_total", fmt::format("listener=\"{}\"", label(l.name)));
  }
  family("spillway_listener_received_bytes_total", "counter", "bytes received from clients");
  for (const auto& l : s.listeners) {
    out += fmt::format("spillway_listener_received_bytes_total{{listener=\"{}\"}} {}\n", label(l.name),
                       sum(*l.traffic, [](const auto& t) -> const stats::counter& { return t.bytes_in; }));
  }
  family("spillway_listener_sent_bytes_total", "counter", "bytes sent to clients");
  for (const auto& l : s.listeners) {
    out += fmt::format("spillway_listener_sent_bytes_total{{listener=\"{}\"}} {}\n", label(l.name),
                       sum(*l.traffic, [](const auto& t) -> const stats::counter& { return t.bytes_out; }));
  }
  family("spillway_listener_request_duration_seconds", "histogram", "first request byte in to last response byte out");
  for (const auto& l : s.listeners) {
    histogram_of(
        *l.traffic, [](const auto& t) -> const stats::histogram& { return t.duration; },
        "spillway_listener_request_duration_seconds", fmt::format("listener=\"{}\"", label(l.name)));
  }
  family("spillway_route_requests_total", "counter", "requests matched by each route, by status class");
  for (const auto& l : s.listeners) {
    for (const auto& r : l.routes) {
      classes_of(
          *r.traffic, "spillway_route_requests_total",
          fmt::format("listener=\"{}\",route=\"{}\",upstream=\"{}\"", label(l.name), r.index, label(r.upstream)));
    }
  }
  family("spillway_upstream_requests_total", "counter", "client requests sent to the upstream, by status class");
  for (const auto& c : s.clusters) {
    classes_of(c->stats->traffic, "spillway_upstream_requests_total",
               fmt::format("upstream=\"{}\"", label(c->cfg.name)));
  }
  family("spillway_upstream_request_duration_seconds", "histogram",
         "client requests to the upstream: first byte in to last byte out, retries included");
  for (const auto& c : s.clusters) {
    histogram_of(
        c->stats->traffic, [](const auto& t) -> const stats::histogram& { return t.duration; },
        "spillway_upstream_request_duration_seconds", fmt::format("upstream=\"{}\"", label(c->cfg.name)));
  }
  family("spillway_upstream_connect_duration_seconds", "histogram", "new connections to the upstream's backends");
  for (const auto& c : s.clusters) {
    histogram_of(
        c->stats->traffic, [](const auto& t) -> const stats::histogram& { return t.connect_time; },
        "spillway_upstream_connect_duration_seconds", fmt::format("upstream=\"{}\"", label(c->cfg.name)));
  }
  family("spillway_upstream_received_bytes_total", "counter", "request bytes from clients routed to the upstream");
  for (const auto& c : s.clusters) {
    out += fmt::format("spillway_upstream_received_bytes_total{{upstream=\"{}\"}} {}\n", label(c->cfg.name),
                       sum(c->stats->traffic, [](const auto& t) -> const stats::counter& { return t.bytes_in; }));
  }
  family("spillway_upstream_sent_bytes_total", "counter", "response bytes sent to clients from the upstream");
  for (const auto& c : s.clusters) {
    out += fmt::format("spillway_upstream_sent_bytes_total{{upstream=\"{}\"}} {}\n", label(c->cfg.name),
                       sum(c->stats->traffic, [](const auto& t) -> const stats::counter& { return t.bytes_out; }));
  }
  family("spillway_upstream_tunnels_active", "gauge", "upgraded (WebSocket) connections relaying now");
  per_upstream("spillway_upstream_tunnels_active", "",
               [](const upstream::upstream_stats& st) { return st.active_tunnels.load(); });
  family("spillway_backend_responses_total", "counter",
         "client requests whose last try went to the backend, by the status class the client got");
  for (const auto& c : s.clusters) {
    for (const auto& h : c->hosts) {
      classes_of(h->traffic, "spillway_backend_responses_total",
                 fmt::format("upstream=\"{}\",backend=\"{}\"", label(c->cfg.name), label(h->address())));
    }
  }
  family("spillway_backend_request_duration_seconds", "histogram",
         "client requests whose last try went to the backend: first byte in to last byte out");
  for (const auto& c : s.clusters) {
    for (const auto& h : c->hosts) {
      histogram_of(
          h->traffic, [](const auto& t) -> const stats::histogram& { return t.duration; },
          "spillway_backend_request_duration_seconds",
          fmt::format("upstream=\"{}\",backend=\"{}\"", label(c->cfg.name), label(h->address())));
    }
  }
  family("spillway_backend_retried_total", "counter", "tries that failed on the backend and were retried elsewhere");
  per_host("spillway_backend_retried_total", [](const upstream::host& h) { return h.retried_total.load(); });
  family("spillway_access_log_dropped_lines_total", "counter",
         "access log lines dropped because the writer fell behind");
  out += fmt::format("spillway_access_log_dropped_lines_total {}\n", s.access_log_dropped);
  family("spillway_workers", "gauge", "worker threads");
  out += fmt::format("spillway_workers {}\n", s.workers);
  family("spillway_metrics_per_request", "gauge", "1 when per-request metrics are counted (config `metrics`)");
  out += fmt::format("spillway_metrics_per_request {}\n", s.metrics ? 1 : 0);
  family("spillway_config_reloads_total", "counter", "config reloads by result");
  out += fmt::format("spillway_config_reloads_total{{result=\"success\"}} {}\n", s.reloads_ok);
  out += fmt::format("spillway_config_reloads_total{{result=\"failure\"}} {}\n", s.reloads_failed);
  family("spillway_config_reload_triggers_total", "counter",
         "config reloads (applied or refused) by what triggered them");
  for (std::size_t i = 0; i < s.reloads_by_trigger.size(); ++i) {
    out += fmt::format("spillway_config_reload_triggers_total{{trigger=\"{}\"}} {}\n",
                       trigger_name(static_cast<reload_trigger>(i)), s.reloads_by_trigger[i]);
  }
  family("spillway_config_last_reload_success", "gauge", "1 when the last reload (if any) was applied");
  out += fmt::format("spillway_config_last_reload_success {}\n", s.last_reload_error.empty() ? 1 : 0);
  family("spillway_config_generation", "gauge", "generation of the running config");
  out += fmt::format("spillway_config_generation {}\n", s.generation);
  return out;
}

std::string admin_server::degradation_json(const state& s) {
  std::string out = "{\"incidents\":[";
  if (s.journal != nullptr) {
    bool first = true;
    for (const auto& i : s.journal->incidents()) {
      out += fmt::format(
          "{}{{\"upstream\":{},\"backend\":{},\"reason\":{},\"failed_at\":{},\"marked_out_at\":{},"
          "\"detection_seconds\":{:.3f},\"failed_before_out\":{},\"retried_before_out\":{},"
          "\"failed_while_out\":{},\"came_back_at\":{},\"in_rotation_at\":{},\"out_seconds\":{}}}",
          first ? "" : ",", json_string(i.upstream), json_string(i.backend), json_string(i.reason),
          json_string(iso8601(i.failed_at)), json_string(iso8601(i.marked_out_at)),
          seconds_between(i.failed_at, i.marked_out_at), i.failed_before_out, i.retried_before_out, i.failed_while_out,
          opt_time(i.came_back_at), opt_time(i.in_rotation_at),
          i.in_rotation_at ? fmt::format("{:.3f}", seconds_between(i.marked_out_at, *i.in_rotation_at))
                           : std::string("null"));
      first = false;
    }
  }
  out += "]}\n";
  return out;
}

std::string admin_server::degradation_text(const state& s) {
  std::string out = fmt::format("{:<12} {:<22} {:<13} {:<24} {:>9} {:>7} {:>8} {:>8} {:>9}\n", "upstream", "backend",
                                "reason", "failed at (UTC)", "detect_s", "failed", "retried", "back_s", "rotation_s");
  if (s.journal == nullptr) {
    return out;
  }
  auto since = [](const incident_time& t, std::chrono::system_clock::time_point from) {
    return t ? fmt::format("{:.3f}", seconds_between(from, *t)) : std::string("-");
  };
  for (const auto& i : s.journal->incidents()) {
    out +=
        fmt::format("{:<12} {:<22} {:<13} {:<24} {:>9.3f} {:>7} {:>8} {:>8} {:>9}\n", i.upstream, i.backend, i.reason,
                    iso8601(i.failed_at), seconds_between(i.failed_at, i.marked_out_at), i.failed_before_out,
                    i.retried_before_out, since(i.came_back_at, i.failed_at), since(i.in_rotation_at, i.failed_at));
  }
  out +=
      "\ndetect_s: first failure to out of rotation; failed, retried: requests that failed on it in that time, and "
      "how many of them\nwere retried elsewhere; back_s: first failure to its first sign of life; rotation_s: first "
      "failure to taking traffic again.\n";
  return out;
}

std::string admin_server::dashboard_html() { return std::string(dashboard_page); }

const char* to_string(rejection r) {
  switch (r) {
    case rejection::host:
      return "host";
    case rejection::origin:
      return "origin";
    case rejection::content_type:
      return "content_type";
    case rejection::token:
      return "token";
    case rejection::method:
      return "method";
    case rejection::too_large:
      return "too_large";
    case rejection::timeout:
      return "timeout";
    case rejection::bad_request:
      return "bad_request";
    case rejection::count_:
      break;
  }
  return "unknown";
}

namespace {

bool is_port(std::string_view p) {
  if (p.empty() || p.size() > 5) {
    return false;
  }
  unsigned n = 0;
  for (char c : p) {
    if (c < '0' || c > '9') {
      return false;
    }
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n <= 65535;
}

bool is_ipv4(std::string_view s) {
  unsigned char b[4];
  return s.size() < 16 && ::inet_pton(AF_INET, std::string(s).c_str(), b) == 1;
}

bool is_ipv6(std::string_view s) {
  unsigned char b[16];
  return s.size() < 46 && ::inet_pton(AF_INET6, std::string(s).c_str(), b) == 1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool host_allowed(std::string_view host, std::string_view listen) {
  if (host.empty()) {
    return false;
  }
  if (http::iequals(host, listen)) {
    return true;
  }
  // Split off an optional port: "[v6]:port", "[v6]", "name:port", "name".
  std::string_view name = host;
  if (host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    auto rest = host.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !is_port(rest.substr(1)))) {
      return false;
    }
    return is_ipv6(host.substr(1, close - 1));
  }
  if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    if (!is_port(host.substr(colon + 1))) {
      return false;
    }
    name = host.substr(0, colon);
  }
  // An attacker's page can point any name it owns at 127.0.0.1, but not "localhost" nor a literal.
  return http::iequals(name, "localhost") || is_ipv4(name);
}

bool form_content_type(std::string_view content_type) {
  auto type = trim(content_type.substr(0, content_type.find(';')));
  return http::iequals(type, "application/x-www-form-urlencoded") || http::iequals(type, "multipart/form-data") ||
         http::iequals(type, "text/plain");
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  authorization = trim(authorization);
  constexpr std::string_view scheme = "bearer";
  if (token.empty() || authorization.size() <= scheme.size() ||
      !http::iequals(authorization.substr(0, scheme.size()), scheme) ||
      (authorization[scheme.size()] != ' ' && authorization[scheme.size()] != '\t')) {
    return false;
  }
  auto given = trim(authorization.substr(scheme.size()));
  // Equal-length digests: CRYPTO_memcmp's time does not depend on where they differ, and the
  // hashing hides the token's length.
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

struct admin_server::connection : std::enable_shared_from_this<connection> {
  connection(admin_server& server, tcp::socket s)
      : server_(server), counters_(server.counters_), socket_(std::move(s)), watchdog_(socket_.get_executor()) {
    ++counters_->active;
  }
  ~connection() { --counters_->active; }

  // What the watchdog enforces now: a deadline per phase, and whether passing it is a rejection
  // (a slow request or a reader that stalls) or just the end of an idle keep-alive connection.
  enum class phase { idle, head, body, write };

  void reject(rejection r) { ++counters_->rejected[static_cast<std::size_t>(r)]; }

  void arm(phase p, std::chrono::milliseconds d) {
    phase_ = p;
    watchdog_.expires_after(d);
  }

  // Closes the socket when the current phase's deadline passes; every await on the socket then
  // ends with an error and the connection's coroutine returns.
  asio::awaitable<void> watch() {
    auto self = shared_from_this();
    while (socket_.is_open()) {
      co_await watchdog_.async_wait(nothrow);
      if (socket_.is_open() && watchdog_.expiry() <= asio::steady_timer::clock_type::now()) {
        if (phase_ != phase::idle) {
          reject(rejection::timeout);
        }
        boost::system::error_code ignored;
        socket_.close(ignored);
      }
    }
  }

  asio::awaitable<bool> read_more() {
    if (begin_ == end_) {
      begin_ = end_ = 0;
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf_), nothrow);
      if (ec) {
        co_return false;
      }
      end_ = n;
    }
    co_return true;
  }

  asio::awaitable<void> run() {
    arm(phase::head, server_.limits_.header_timeout);
    asio::co_spawn(socket_.get_executor(), watch(), asio::detached);
    while (co_await handle_one()) {
    }
    boost::system::error_code ignored;
    socket_.close(ignored);
    watchdog_.cancel();
  }

  // Reads and answers one request; false when the connection is done.
  asio::awaitable<bool> handle_one() {
    // Head: the idle deadline until its first byte, then header_timeout for the whole of it.
    bool started = false;
    while (true) {
      if (begin_ == end_ && !co_await read_more()) {
        co_return false;
      }
      if (!started) {
        started = true;
        if (phase_ == phase::idle) {
          arm(phase::head, server_.limits_.header_timeout);
        }
      }
      auto r = parser_.feed(buf_.data() + begin_, end_ - begin_);
      if (parser_.head_bytes() > server_.limits_.max_head) {
        reject(rejection::too_large);
        co_await reply(431, "text/plain", "request header fields too large\n", true, false);
        co_return false;
      }
      if (r.what == http::parser::event::error) {
        reject(rejection::bad_request);
        co_await reply(400, "text/plain", "bad request\n", true, false);
        co_return false;
      }
      begin_ += r.consumed;
      if (r.what == http::parser::event::headers_complete) {
        break;
      }
    }
    // Copied now: the head's views do not survive what the body phase may append (trailers).
    const auto& head = parser_.head();
    const std::string method(head.method);
    const std::string url(head.url);
    const std::string path = url.substr(0, url.find('?'));
    const bool is_head = method == "HEAD";
    bool close = !head.keep_alive;
    const bool has_body = head.chunked || (head.has_content_length && head.content_length > 0);

    auto refuse = [&](rejection why, int status, std::string body) -> asio::awaitable<bool> {
      reject(why);
      // Closed after a refusal: its body is never read, and nothing more is owed to such a client.
      co_await reply(status, "text/plain", body, true, is_head);
      co_return false;
    };
    const std::size_t hosts = head.count("host");
    if (hosts > 1 || (hosts == 0 && (head.version_major > 1 || head.version_minor >= 1))) {
      co_return co_await refuse(rejection::bad_request, 400, "bad request: one Host header required\n");
    }
    if (hosts == 1 && !host_allowed(head.find("host"), server_.listen_text_)) {
      co_return co_await refuse(rejection::host, 403,
                                "forbidden: Host must be the admin address, localhost or an IP address\n");
    }
    if (!server_.token_.empty() && !bearer_matches(head.find("authorization"), server_.token_)) {
      reject(rejection::token);
      co_await reply(401, "text/plain", "unauthorized: send Authorization: Bearer TOKEN\n", true, is_head,
                     "www-authenticate: Bearer realm=\"spillway-admin\"\r\n");
      co_return false;
    }
    if (method != "GET" && method != "HEAD" && method != "POST") {
      co_return co_await refuse(rejection::method, 405, "method not allowed\n");
    }
    if (method == "POST") {
      // A browser adds Origin to every cross-site POST (and to fetches); curl and scripts do not.
      // A plain HTML form can post without Origin only from old browsers, and only with these
      // body types, so refusing both leaves a cross-site page no way to change state.
      if (head.count("origin") > 0) {
        co_return co_await refuse(rejection::origin, 403, "forbidden: cross-site request (Origin header)\n");
      }
      if (head.count("content-type") > 0 && form_content_type(head.find("content-type"))) {
        co_return co_await refuse(rejection::content_type, 403,
                                  "forbidden: a form's content type is not accepted on the admin API\n");
      }
    }
    if (head.has_content_length && head.content_length > server_.limits_.max_body) {
      co_return co_await refuse(rejection::too_large, 413, "request body too large\n");
    }
    // The admin API takes no request bodies worth reading; skip what is sent, within the limit.
    if (has_body) {
      arm(phase::body, server_.limits_.header_timeout);
    }
    std::size_t body_bytes = 0;
    while (true) {
      auto r = parser_.feed(buf_.data() + begin_, end_ - begin_);
      if (r.what == http::parser::event::error) {
        co_return co_await refuse(rejection::bad_request, 400, "bad request\n");
      }
      begin_ += r.consumed;
      body_bytes += r.consumed;
      if (body_bytes > server_.limits_.max_body) {
        co_return co_await refuse(rejection::too_large, 413, "request body too large\n");
      }
      if (r.what == http::parser::event::message_complete) {
        break;
      }
      begin_ = end_;
      if (!co_await read_more()) {
        co_return false;
      }
    }

    if (path == "/ready" && (method == "GET" || method == "HEAD")) {
      const bool ready = server_.get_state_().ready;
      co_await reply(ready ? 200 : 503, "text/plain", ready ? "ready\n" : "draining\n", close, is_head);
    } else if (path == "/status" && (method == "GET" || method == "HEAD")) {
      co_await reply(200, "application/json", status_json(server_.get_state_()), close, is_head);
    } else if (path == "/metrics" && (method == "GET" || method == "HEAD")) {
      co_await reply(200, "text/plain; version=0.0.4", metrics_text(server_.get_state_()) + server_.own_metrics_text(),
                     close, is_head);
    } else if (path == "/" && (method == "GET" || method == "HEAD")) {
      co_await reply(200, "text/html; charset=utf-8", dashboard_html(), close, is_head);
    } else if (path == "/degradation" && (method == "GET" || method == "HEAD")) {
      const bool text = url.find("format=text") != std::string::npos;
      auto st = server_.get_state_();
      // Built before the co_await: GCC 12 destroys a temporary made by ?: inside a co_await
      // expression twice.
      std::string body = text ? degradation_text(st) : degradation_json(st);
      co_await reply(200, text ? "text/plain; charset=utf-8" : "application/json", body, close, is_head);
    } else if (path == "/degradation/reset" && method == "POST") {
      if (auto st = server_.get_state_(); st.journal != nullptr) {
        st.journal->clear_incidents();
      }
      co_await reply(200, "text/plain", "incidents cleared\n", close, false);
    } else if (path == "/reload" && method == "POST") {
      auto result = server_.reload_();
      co_await reply(result.ok ? 200 : 400, "text/plain", result.text, close, false);
    } else if (path == "/status" || path == "/metrics" || path == "/" || path == "/reload" || path == "/ready" ||
               path == "/degradation" || path == "/degradation/reset") {
      co_await reply(405, "text/plain", "method not allowed\n", close, is_head);
    } else {
      co_await reply(404, "text/plain", "not found\n", close, is_head);
    }
    if (close || !socket_.is_open()) {
      co_return false;
    }
    arm(phase::idle, server_.limits_.idle_timeout);
    co_return true;
  }

  // Writes one response within write_timeout (a client that never reads is cut off). `no_body`:
  // the answer to a HEAD request (its length is announced, its body not sent).
  asio::awaitable<void> reply(int status, std::string_view type, const std::string& body, bool close, bool no_body,
                              std::string_view extra_headers = {}) {
    arm(phase::write, server_.limits_.write_timeout);
    const char* reason = http::reason_phrase(status);
    auto head = fmt::format(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\n"
        "x-content-type-options: nosniff\r\n{}{}\r\n",
        status, reason, type, body.size(), extra_headers, close ? "connection: close\r\n" : "");
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body.data(), no_body ? 0 : body.size())};
    auto [ec, n] = co_await asio::async_write(socket_, bufs, nothrow);
    if (ec || close) {
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
      socket_.close(ignored);
    }
  }

  admin_server& server_;
  std::shared_ptr<counters> counters_;
  tcp::socket socket_;
  asio::steady_timer watchdog_;
  phase phase_ = phase::head;
  std::array<char, 8192> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  http::parser parser_{http::parser::kind::request};
};

admin_server::admin_server(asio::io_context& io, const config::admin& cfg, state_fn get_state, reload_fn reload,
                           limits lim)
    : io_(io),
      acceptor_(io),
      listen_text_(cfg.listen.text),
      token_(cfg.token),
      limits_(lim),
      get_state_(std::move(get_state)),
      reload_(std::move(reload)) {
  const auto& listen = cfg.listen;
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(listen.host, ec), listen.port);
  if (!ec) {
    // SO_REUSEPORT like the listeners: shared with a new process during a zero-downtime restart.
    ec = open_and_bind(acceptor_, ep);
  }
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("admin API cannot listen on " + listen.text + ": " + ec.message());
  }
}

void admin_server::start() {
  asio::co_spawn(
      io_,
      [this]() -> asio::awaitable<void> {
        while (acceptor_.is_open()) {
          auto [ec, socket] = co_await acceptor_.async_accept(nothrow);
          if (ec) {
            if (!acceptor_.is_open() || ec == asio::error::operation_aborted) {
              co_return;
            }
            continue;
          }
          if (counters_->active >= limits_.max_connections) {
            // Closed at once, before reading a byte: a flood of idle sockets costs one counter.
            ++counters_->connections_rejected;
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
          }
          auto c = std::make_shared<connection>(*this, std::move(socket));
          asio::co_spawn(
              io_, [c]() { return c->run(); }, asio::detached);
        }
      },
      asio::detached);
}

void admin_server::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

std::size_t admin_server::connections_active() const { return counters_->active; }

std::string admin_server::own_metrics_text() const {
  std::string out =
      "# HELP spillway_admin_requests_rejected_total admin API requests refused, by reason\n"
      "# TYPE spillway_admin_requests_rejected_total counter\n";
  for (std::size_t i = 0; i < counters_->rejected.size(); ++i) {
    out += fmt::format("spillway_admin_requests_rejected_total{{reason=\"{}\"}} {}\n",
                       to_string(static_cast<rejection>(i)), counters_->rejected[i]);
  }
  out += fmt::format(
      "# HELP spillway_admin_connections_rejected_total admin connections closed at once (max_connections reached)\n"
      "# TYPE spillway_admin_connections_rejected_total counter\n"
      "spillway_admin_connections_rejected_total {}\n"
      "# HELP spillway_admin_connections_active open admin API connections\n"
      "# TYPE spillway_admin_connections_active gauge\n"
      "spillway_admin_connections_active {}\n",
      counters_->connections_rejected, counters_->active);
  return out;
}

}  // namespace spillway::admin

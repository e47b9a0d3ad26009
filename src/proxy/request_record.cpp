#include "proxy/request_record.h"

#include "proxy/access_log.h"
#include "proxy/downstream.h"
#include "upstream/cluster.h"

#include <algorithm>
#include <charconv>

namespace spillway::proxy {

namespace {

const char* flags_of(const std::optional<error_kind>& local, int status) {
  if (local) {
    return info(*local).flag;
  }
  return status == 0 ? "DC" : "-";  // DC: the client went away before an answer
}

}  // namespace

namespace {

// The spans of a sampled request: Spillway's (server) and one per try (client), its children,
// written into the worker's buffer. Nothing is said twice: the backend and status of each try are
// on the try's span, the number of tries is the number of children.
void emit_spans(worker& w, const snapshot& snap, const listener_view* lv, const http_request_record& rec,
                const request_fields& f, std::chrono::steady_clock::time_point first_byte,
                std::chrono::steady_clock::time_point now) {
  auto unix_of = [&](std::chrono::steady_clock::time_point t) { return w.unix_ns(t); };  // no clock read
  const auto now_unix = unix_of(now);
  auto& out = w.trace_buffer(snap);
  char name[128];
  auto named = [&](std::string_view a, std::string_view b) {  // "a b", cut to fit
    const auto n = std::min(a.size(), sizeof name - 1);
    std::copy_n(a.data(), n, name);
    name[n] = ' ';
    const auto m = std::min(b.size(), sizeof name - 1 - n);
    std::copy_n(b.data(), m, name + n + 1);
    return std::string_view(name, n + 1 + m);
  };
  char status_text[16];
  auto status_named = [&](int status) {  // "status 503"
    auto end = std::to_chars(status_text, status_text + sizeof status_text, status).ptr;
    return named("status", std::string_view(status_text, static_cast<std::size_t>(end - status_text)));
  };
  {
    tracing::span_writer s(out, rec.trace.trace, rec.trace.span, rec.trace.parent, tracing::span_kind::server,
                           unix_of(first_byte), now_unix,
                           rec.cluster != nullptr ? named(f.method, rec.cluster->cfg.name) : f.method);
    s.attr(tracing::attribute::http_method, f.method);
    s.attr(tracing::attribute::url_path, f.path);
    if (lv != nullptr) {
      s.attr(tracing::attribute::listener, lv->cfg->name);
    }
    if (rec.route >= 0) {
      s.attr(tracing::attribute::route, static_cast<std::int64_t>(rec.route));
    }
    if (rec.cluster != nullptr) {
      s.attr(tracing::attribute::upstream, rec.cluster->cfg.name);
    }
    s.attr(tracing::attribute::status_code, static_cast<std::int64_t>(rec.status));
    if (!f.request_id.empty() && !f.request_id_ours) {
      // The client's own id, to find its trace by. One Spillway made up is in the access log
      // beside the trace id (and would be ~9% of the bytes of every traced request).
      s.attr(tracing::attribute::request_id, f.request_id);
    }
    if (rec.local) {
      s.attr(tracing::attribute::reason, to_string(*rec.local));  // x-spillway-reason
    }
    const bool error = rec.status >= 500 || rec.status == 0;
    s.finish(error, rec.local ? to_string(*rec.local) : rec.status == 0 ? "no answer" : "server error");
  }
  for (std::size_t i = 0; i < rec.tries_traced.size(); ++i) {
    const auto& t = rec.tries_traced[i];
    const auto backend = t.host != nullptr ? std::string_view(t.host->address()) : std::string_view("-");
    // OpenTelemetry's name for an HTTP client span: the method (the backend, many values, is an
    // attribute).
    tracing::span_writer s(out, rec.trace.trace, t.span, rec.trace.span, tracing::span_kind::client, unix_of(t.start),
                           t.end == std::chrono::steady_clock::time_point{} ? now_unix : unix_of(t.end), f.method);
    if (rec.tries_traced.size() > 1) {
      s.attr(tracing::attribute::try_number, static_cast<std::int64_t>(i + 1));  // which one, when there were several
    }
    s.attr(tracing::attribute::backend, backend);
    if (t.status != 0) {
      s.attr(tracing::attribute::status_code, static_cast<std::int64_t>(t.status));
    }
    if (!t.error.empty()) {
      s.attr(tracing::attribute::error_type, t.error);
    }
    if (i > 0) {
      const auto& prev = rec.tries_traced[i - 1];
      if (prev.status != 0) {
        s.attr(tracing::attribute::retry_reason, status_named(prev.status));
      } else {
        s.attr(tracing::attribute::retry_reason, prev.error.empty() ? std::string_view("unknown") : prev.error);
      }
    }
    s.finish(t.failed, t.status != 0 ? status_named(t.status) : t.error);
  }
  w.traced(1 + rec.tries_traced.size());
}

}  // namespace

void record_request(downstream_connection& down, const http_request_record& rec, const request_fields& f,
                    std::chrono::steady_clock::time_point first_byte) {
  const auto now = std::chrono::steady_clock::now();
  const auto elapsed = now - first_byte;
  auto& w = down.owner();
  const auto& view = rec.view ? rec.view : w.view();
  const auto& snap = *view->snap;
  const auto* lv = snap.find_listener(down.listen());
  if (snap.cfg->metrics) {
    auto count = [&](stats::request_traffic& t) {
      t.responses.add(rec.status);
      t.bytes_in.add(rec.bytes_in);
      t.bytes_out.add(rec.bytes_out);
      t.duration.observe(elapsed);
    };
    if (auto* t = down.traffic()) {
      count(*t);
      if (rec.local) {
        t->local_replies[std::min<std::size_t>(static_cast<std::size_t>(*rec.local), t->local_replies.size() - 1)]
            .add();
      }
    }
    if (lv != nullptr && rec.route >= 0 && static_cast<std::size_t>(rec.route) < lv->route_traffic.size()) {
      lv->route_traffic[rec.route]->local(w.index()).responses.add(rec.status);
    }
    if (rec.cluster != nullptr) {
      count(rec.cluster->stats->traffic.local(w.index()));
    }
    if (rec.host != nullptr) {
      count(rec.host->traffic.local(w.index()));
    }
  }
  if (rec.traced && rec.trace.sampled && snap.tracer) {
    emit_spans(w, snap, lv, rec, f, first_byte, now);
  }
  if (!w.log_sampled(snap)) {
    return;
  }
  access_record r;
  r.client = down.client_ip();
  r.listener = lv != nullptr ? std::string_view(lv->cfg->name) : std::string_view(down.listen());
  r.route = rec.route;
  r.method = f.method;
  r.path = f.path;
  r.host = f.host;
  r.status = rec.status;
  if (rec.cluster != nullptr) {
    r.upstream = rec.cluster->cfg.name;
  }
  if (rec.host != nullptr) {
    r.backend = rec.host->address();
  }
  r.bytes_in = rec.bytes_in;
  r.bytes_out = rec.bytes_out;
  r.duration_ms = access_ms(elapsed);
  r.connect_ms = access_ms(rec.connect_time);
  r.upstream_ms = access_ms(rec.upstream_time);
  r.tries = rec.tries;
  if (rec.local) {
    r.reason = to_string(*rec.local);
  }
  r.flags = flags_of(rec.local, rec.status);
  r.request_id = f.request_id;
  r.tls = down.tls();
  std::array<char, 32> trace_hex{};
  if (rec.traced) {
    trace_hex = tracing::hex(rec.trace.trace);
    r.trace_id = std::string_view(trace_hex.data(), trace_hex.size());
  }
  w.log_access(snap, r);
}

void begin_trace(http_request_record& rec, const config::config& cfg, const http::message_head& head,
                 const std::function<std::uint64_t()>& random) {
  if (!cfg.tracing) {
    return;
  }
  rec.traced = true;
  rec.trace = tracing::begin(head.count("traceparent") == 1 ? head.find("traceparent") : std::string_view(),
                             cfg.tracing->sample, random);
}

void trace_try(http_request_record& rec, upstream_head_facts& facts) {
  if (!rec.traced || rec.tries_traced.empty()) {
    facts.traceparent = {};
    facts.drop_tracestate = false;
    return;
  }
  rec.traceparent = tracing::format_traceparent(rec.trace, rec.tries_traced.back().span);
  facts.traceparent = std::string_view(rec.traceparent.data(), rec.traceparent.size());
  facts.drop_tracestate = !rec.trace.continued;
}

}  // namespace spillway::proxy

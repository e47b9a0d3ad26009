#include "proxy/request_record.h"

#include "proxy/access_log.h"
#include "proxy/downstream.h"
#include "upstream/cluster.h"

#include <algorithm>

namespace spillway::proxy {

namespace {

const char* flags_of(const std::optional<error_kind>& local, int status) {
  if (local) {
    return info(*local).flag;
  }
  return status == 0 ? "DC" : "-";  // DC: the client went away before an answer
}

}  // namespace

void record_request(downstream_connection& down, const http_request_record& rec, const request_fields& f,
                    std::chrono::steady_clock::duration elapsed) {
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

void trace_try(http_request_record& rec, upstream_head_facts& facts, const std::function<std::uint64_t()>& random) {
  if (!rec.traced) {
    facts.traceparent = {};
    facts.drop_tracestate = false;
    return;
  }
  rec.traceparent = tracing::format_traceparent(rec.trace, tracing::new_span(random));
  facts.traceparent = std::string_view(rec.traceparent.data(), rec.traceparent.size());
  facts.drop_tracestate = !rec.trace.continued;
}

}  // namespace spillway::proxy

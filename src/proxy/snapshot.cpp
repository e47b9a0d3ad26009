#include "proxy/snapshot.h"

#include <algorithm>

namespace spillway::proxy {

snapshot_ptr make_snapshot(std::shared_ptr<const config::config> cfg, std::vector<upstream::cluster_ptr> clusters,
                           std::uint64_t generation, std::vector<tls::server_context_ptr> listener_tls,
                           traffic_registry* registry, std::shared_ptr<access_log> log,
                           std::shared_ptr<tracing::exporter> tracer) {
  traffic_registry local;
  traffic_registry& reg = registry != nullptr ? *registry : local;
  traffic_registry next;  // what this config uses; the rest is forgotten
  auto snap = std::make_shared<snapshot>();
  snap->cfg = std::move(cfg);
  snap->generation = generation;
  snap->loaded_at = std::chrono::system_clock::now();
  snap->clusters = std::move(clusters);
  snap->log = std::move(log);
  snap->tracer = std::move(tracer);
  const auto& upstreams = snap->cfg->upstreams;
  auto index_of = [&](const std::string& name) -> std::size_t {
    for (std::size_t i = 0; i < upstreams.size(); ++i) {
      if (upstreams[i].name == name) {
        return i;
      }
    }
    return upstreams.size();  // unreachable for a validated config
  };
  for (const auto& rl : snap->cfg->rate_limits) {
    auto& st = reg.rate_limits[rl.name];
    if (!st.table || !config::same_rate_limit_budget(st.cfg, rl)) {
      st.table = std::make_shared<ratelimit::limiter>(ratelimit::params::of(rl));
    }
    if (!st.counts) {
      st.counts = std::make_shared<stats::per_worker<stats::rate_limit_traffic>>();
    }
    st.cfg = rl;
    snap->rate_limits.push_back({&rl, st.table, st.counts, ratelimit::policy_header(rl)});
    next.rate_limits[rl.name] = st;
  }
  auto rate_limit_of = [&](const std::string& name) {
    for (std::size_t i = 0; i < snap->rate_limits.size(); ++i) {
      if (snap->rate_limits[i].cfg->name == name) {
        return static_cast<int>(i);
      }
    }
    return -1;
  };
  for (std::size_t li = 0; li < snap->cfg->listeners.size(); ++li) {
    const auto& l = snap->cfg->listeners[li];
    listener_view view;
    view.cfg = &l;
    if (li < listener_tls.size()) {
      view.tls = std::move(listener_tls[li]);
    }
    view.header_timeout = config::duration::max();
    view.idle_timeout = config::duration::max();
    auto account = [&](std::size_t idx) {
      if (idx < upstreams.size()) {
        view.header_timeout = std::min(view.header_timeout, upstreams[idx].timeout.header);
        view.idle_timeout = std::min(view.idle_timeout, upstreams[idx].timeout.idle);
      }
    };
    auto& lt = reg.listeners[l.listen.text];
    if (!lt) {
      lt = std::make_shared<stats::per_worker<stats::listener_traffic>>();
    }
    view.traffic = lt;
    next.listeners[l.listen.text] = lt;
    for (std::size_t ri = 0; ri < l.routes.size(); ++ri) {
      const auto& r = l.routes[ri];
      compiled_route cr{&r, index_of(r.upstream), rate_limit_of(r.rate_limit), ratelimit::route_key(l.name, ri)};
      account(cr.upstream_index);
      view.routes.push_back(cr);
      auto key = l.listen.text + "\n" + std::to_string(ri) + "\n" + r.upstream;
      auto& rt = reg.routes[key];
      if (!rt) {
        rt = std::make_shared<stats::per_worker<stats::route_traffic>>();
      }
      view.route_traffic.push_back(rt);
      next.routes[key] = rt;
    }
    view.rate_limit = rate_limit_of(l.rate_limit);
    if (!l.upstream.empty()) {
      view.tcp_upstream = index_of(l.upstream);
      account(view.tcp_upstream);
    }
    if (view.header_timeout == config::duration::max()) {
      view.header_timeout = config::timeouts{}.header;
      view.idle_timeout = config::timeouts{}.idle;
    }
    snap->listeners.push_back(std::move(view));
  }
  reg = std::move(next);
  return snap;
}

}  // namespace spillway::proxy

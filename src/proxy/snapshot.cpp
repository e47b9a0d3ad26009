#include "proxy/snapshot.h"

#include <algorithm>

namespace spillway::proxy {

snapshot_ptr make_snapshot(std::shared_ptr<const config::config> cfg, std::vector<upstream::cluster_ptr> clusters,
                           std::uint64_t generation, std::vector<tls::server_context_ptr> listener_tls) {
  auto snap = std::make_shared<snapshot>();
  snap->cfg = std::move(cfg);
  snap->generation = generation;
  snap->loaded_at = std::chrono::system_clock::now();
  snap->clusters = std::move(clusters);
  const auto& upstreams = snap->cfg->upstreams;
  auto index_of = [&](const std::string& name) -> std::size_t {
    for (std::size_t i = 0; i < upstreams.size(); ++i) {
      if (upstreams[i].name == name) {
        return i;
      }
    }
    return upstreams.size();  // unreachable for a validated config
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
    for (const auto& r : l.routes) {
      compiled_route cr{&r, index_of(r.upstream)};
      account(cr.upstream_index);
      view.routes.push_back(cr);
    }
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
  return snap;
}

}  // namespace spillway::proxy

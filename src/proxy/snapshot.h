#pragma once
// An immutable config snapshot as the proxy runs it: the config, its clusters (upstreams with their
// hosts) and each listener's compiled routes. The control thread builds one per (re)load and posts
// it to every worker; in-flight requests keep the snapshot they started with alive.

#include "config/config.h"
#include "proxy/router.h"
#include "upstream/cluster.h"

#include <chrono>
#include <memory>
#include <string_view>
#include <vector>

namespace spillway::proxy {

struct listener_view {
  const config::listener* cfg = nullptr;
  std::vector<compiled_route> routes;
  // Client-side deadlines, taken as the smallest over the upstreams this listener routes to: they
  // apply before a request is routed, so no single upstream can own them.
  config::duration header_timeout{};
  config::duration idle_timeout{};
  std::size_t tcp_upstream = 0;  // tcp listeners: index into snapshot::clusters
  tls::server_context_ptr tls;   // set when the listener terminates TLS
};

struct snapshot {
  std::shared_ptr<const config::config> cfg;
  std::uint64_t generation = 0;
  std::chrono::system_clock::time_point loaded_at;
  std::vector<upstream::cluster_ptr> clusters;  // aligned with cfg->upstreams
  std::vector<listener_view> listeners;         // aligned with cfg->listeners

  // The listener bound to `listen` ("ip:port" as configured), or nullptr when this snapshot has
  // none there (it was removed by a reload). Any thread.
  const listener_view* find_listener(std::string_view listen) const {
    for (const auto& l : listeners) {
      if (l.cfg->listen.text == listen) {
        return &l;
      }
    }
    return nullptr;
  }
};

using snapshot_ptr = std::shared_ptr<const snapshot>;

// Builds a snapshot. `clusters` must be aligned with cfg->upstreams, `listener_tls` (empty, or
// null entries, for none) with cfg->listeners. Control thread.
snapshot_ptr make_snapshot(std::shared_ptr<const config::config> cfg, std::vector<upstream::cluster_ptr> clusters,
                           std::uint64_t generation, std::vector<tls::server_context_ptr> listener_tls = {});

}  // namespace spillway::proxy

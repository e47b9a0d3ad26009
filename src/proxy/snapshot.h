#pragma once
// An immutable config snapshot as the proxy runs it: the config, its clusters (upstreams with their
// hosts) and each listener's compiled routes. The control thread builds one per (re)load and posts
// it to every worker; in-flight requests keep the snapshot they started with alive.

#include "common/stats.h"
#include "config/config.h"
#include "proxy/access_log.h"
#include "proxy/router.h"
#include "ratelimit/keys.h"
#include "tracing/exporter.h"
#include "upstream/cluster.h"

#include <chrono>
#include <map>
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
  // Counters, kept across reloads by listener address (and by route position and upstream).
  std::shared_ptr<stats::per_worker<stats::listener_traffic>> traffic;
  std::vector<std::shared_ptr<stats::per_worker<stats::route_traffic>>> route_traffic;  // aligned with routes
  int rate_limit = -1;  // tcp listeners: into snapshot::rate_limits (new connections), or none
};

// A rate limit policy as the proxy runs it: its budgets and counters outlive snapshots while the
// policy keeps its name (and, for the budgets, its key, rate, burst and max_keys).
struct rate_limit_view {
  const config::rate_limit* cfg = nullptr;
  std::shared_ptr<ratelimit::limiter> table;
  std::shared_ptr<stats::per_worker<stats::rate_limit_traffic>> counts;
  std::string policy_header;  // the RateLimit-Policy value of its answers
};

// Traffic counters that outlive snapshots. Control thread.
struct traffic_registry {
  std::map<std::string, std::shared_ptr<stats::per_worker<stats::listener_traffic>>> listeners;  // by address
  std::map<std::string, std::shared_ptr<stats::per_worker<stats::route_traffic>>> routes;  // "address\nindex\nupstream"
  struct rate_limit_state {
    config::rate_limit cfg;  // what the table was made for
    std::shared_ptr<ratelimit::limiter> table;
    std::shared_ptr<stats::per_worker<stats::rate_limit_traffic>> counts;
  };
  std::map<std::string, rate_limit_state> rate_limits;  // by policy name
};

struct snapshot {
  std::shared_ptr<const config::config> cfg;
  std::uint64_t generation = 0;
  std::chrono::system_clock::time_point loaded_at;
  std::vector<upstream::cluster_ptr> clusters;  // aligned with cfg->upstreams
  std::vector<listener_view> listeners;         // aligned with cfg->listeners
  std::vector<rate_limit_view> rate_limits;     // aligned with cfg->rate_limits
  std::shared_ptr<access_log> log;              // null when the access log is off
  std::shared_ptr<tracing::exporter> tracer;    // null unless tracing has an otlp collector

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
// null entries, for none) with cfg->listeners. Counters come from `registry` (fresh ones without).
// Control thread.
snapshot_ptr make_snapshot(std::shared_ptr<const config::config> cfg, std::vector<upstream::cluster_ptr> clusters,
                           std::uint64_t generation, std::vector<tls::server_context_ptr> listener_tls = {},
                           traffic_registry* registry = nullptr, std::shared_ptr<access_log> log = nullptr,
                           std::shared_ptr<tracing::exporter> tracer = nullptr);

}  // namespace spillway::proxy

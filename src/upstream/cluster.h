#pragma once
// An upstream (named group of hosts) as it runs: its config and its hosts.

#include "config/config.h"
#include "tls/context.h"
#include "upstream/host.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace spillway::upstream {

// Counters of one upstream that outlive config reloads (kept by name on the control thread).
struct upstream_stats {
  std::atomic<std::int64_t> active_requests{0};   // client requests in flight (not tries)
  std::atomic<std::int64_t> active_retries{0};    // retry tries in flight
  std::atomic<std::uint64_t> retries_success{0};  // retry tries that got a response passed on
  std::atomic<std::uint64_t> retries_failure{0};  // retry tries that failed too
  std::atomic<std::uint64_t> retry_budget_exhausted{0};
  std::atomic<std::uint64_t> no_healthy_upstream{0};
  std::atomic<std::int64_t> connections{0};     // open upstream connections (pooled ones included)
  std::atomic<std::int64_t> pending{0};         // requests waiting for a connection
  std::atomic<std::int64_t> active_tunnels{0};  // upgraded (WebSocket) connections relaying
  std::atomic<std::uint64_t> overflow_max_connections{0};
  std::atomic<std::uint64_t> overflow_max_pending{0};
  std::atomic<std::uint64_t> overflow_max_requests{0};
  // Response heads refused for their size or field count (max_response_headers, ..._fields).
  std::atomic<std::uint64_t> response_heads_too_large{0};
  // Connections kept for reuse by reading an answer to its end after its HTTP/2 client left.
  std::atomic<std::uint64_t> connections_salvaged{0};
  stats::per_worker<stats::upstream_traffic> traffic;

  // Reserves one connection under `max`. Exact: a reservation is kept only when the count it raised
  // was below `max` (refused ones back out, so the counter may read over `max` for an instant).
  bool try_reserve_connection(std::uint32_t max) {
    if (connections.fetch_add(1, std::memory_order_relaxed) >= static_cast<std::int64_t>(max)) {
      connections.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  // True when one more retry fits the budget: retries in flight stay under `budget_percent` of the
  // requests in flight, with a floor of `min_concurrency` so that low traffic can still retry.
  // Relaxed counting: concurrent workers may each see room for the last slot, so the budget can be
  // exceeded by at most (workers - 1) retries at any moment.
  bool retry_allowed(double budget_percent, std::int64_t min_concurrency = 10) const {
    auto active = active_requests.load(std::memory_order_relaxed);
    auto retries = active_retries.load(std::memory_order_relaxed);
    auto cap = std::max<std::int64_t>(min_concurrency, static_cast<std::int64_t>(active * budget_percent / 100.0));
    return retries < cap;
  }
};

// The lookups of one hostname backend. Control thread only: written by the host registry, read by
// the admin API.
struct name_stats {
  std::string name;            // "name:port" as configured
  std::uint64_t lookups = 0;   // answers received
  std::uint64_t failures = 0;  // failed or empty answers (the last good set stayed)
  std::uint64_t added = 0;     // addresses that appeared after the first answer
  std::uint64_t removed = 0;   // addresses that went away
  std::size_t addresses = 0;   // in the current set
  std::string last_error;      // of the last lookup; empty when it answered
};

struct cluster {
  config::upstream cfg;
  // In config order; a hostname's addresses in address order where the name stands.
  std::vector<host_ptr> hosts;
  std::vector<std::shared_ptr<const name_stats>> names;  // its hostname backends' lookups
  std::shared_ptr<upstream_stats> stats;
  tls::client_context_ptr tls;  // set when the upstream speaks TLS to its backends
};

using cluster_ptr = std::shared_ptr<const cluster>;

}  // namespace spillway::upstream

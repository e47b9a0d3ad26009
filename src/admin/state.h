#pragma once
// What the admin API reads about the running process: a read-only view that the control thread
// assembles per request (server::admin_state) and the renderers turn into text. Nothing here is
// written by the admin API, except that POST /degradation/reset clears the journal's incidents.

#include "common/stats.h"
#include "upstream/cluster.h"
#include "upstream/journal.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace spillway::admin {

struct route_info {
  std::size_t index = 0;  // position in its listener's routes (routes have no names)
  std::string upstream;
  std::shared_ptr<const stats::per_worker<stats::route_traffic>> traffic;
};

struct listener_info {
  std::string name;
  std::string address;
  std::string protocol;  // "http" or "tcp"
  bool tls = false;
  std::shared_ptr<const stats::per_worker<stats::listener_traffic>> traffic;
  std::vector<route_info> routes;
};

// A rate limit policy and what it decided (summed over workers by the control thread).
struct rate_limit_info {
  std::string name;
  std::string key;   // client_ip, header:NAME, route or global
  std::string rate;  // as configured: "100/s"
  std::uint64_t burst = 0;
  bool dry_run = false;
  std::uint64_t admitted = 0;
  std::uint64_t limited = 0;
  std::uint64_t dry_run_limited = 0;  // would have been limited; admitted by dry_run
  std::uint64_t keys = 0;             // keys remembered now
  std::uint64_t max_keys = 0;
  std::uint64_t evictions = 0;  // keys dropped while in use, for room
  std::string shared;           // "redis://HOST:PORT", or empty for a policy of this instance alone
  std::string on_unavailable;   // local, allow or deny
  // Calls to Redis by how they ended: ok, timeout, unavailable, error.
  std::array<std::uint64_t, 4> redis{};
};
inline constexpr std::array<const char*, 4> redis_results = {"ok", "timeout", "unavailable", "error"};

// Tracing (present when the config has a `tracing` section) and its span exporter.
struct tracing_info {
  double sample = 0;  // percent
  std::string otlp;   // the collector, or empty (spans are not exported)
  std::uint64_t exported = 0;
  std::uint64_t dropped_full = 0;    // the queue was full
  std::uint64_t dropped_failed = 0;  // the collector did not take their batch
  std::uint64_t batches_failed = 0;
  std::uint64_t queued = 0;
};

// What made Spillway read its config file again (the `trigger` label of
// spillway_config_reload_triggers_total): a file event, the identity poll, SIGHUP, POST /reload.
enum class reload_trigger { file, poll, signal, api, count_ };

// The label value of a trigger. Any thread.
const char* trigger_name(reload_trigger t);

// What the admin API reports about the running config.
struct state {
  std::vector<upstream::cluster_ptr> clusters;
  std::vector<listener_info> listeners;
  std::vector<rate_limit_info> rate_limits;
  std::optional<tracing_info> tracing;
  upstream::journal* journal = nullptr;  // transitions and incidents (may be null in tests)
  unsigned workers = 0;
  bool metrics = true;  // per-request counting on
  std::uint64_t access_log_dropped = 0;
  std::uint64_t generation = 0;
  std::chrono::system_clock::time_point loaded_at;
  std::string config_path;
  std::string last_reload_error;  // empty when the last reload (if any) succeeded
  std::uint64_t reloads_ok = 0;
  std::uint64_t reloads_failed = 0;
  // Reloads attempted (applied or refused) by what triggered them; a file whose content already
  // runs or was already refused is not reloaded and not counted.
  std::array<std::uint64_t, static_cast<std::size_t>(reload_trigger::count_)> reloads_by_trigger{};
  bool ready = true;  // GET /ready: serving (listeners started, not draining)
};

}  // namespace spillway::admin

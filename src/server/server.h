#pragma once
// The control thread: loads the config, builds snapshots, owns the workers and the admin API,
// handles signals (SIGHUP reload, SIGTERM/SIGINT drain).

#include "admin/admin_server.h"
#include "config/config.h"
#include "health/checker.h"
#include "health/outlier_detector.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"
#include "server/config_watcher.h"
#include "server/control_events.h"
#include "upstream/host_registry.h"
#include "upstream/journal.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace spillway::server {

class server {
 public:
  explicit server(std::string config_path);
  ~server();

  // Loads the config, binds every listener, serves until SIGTERM/SIGINT and the drain that follows.
  // Returns the process exit code: 0 after a clean drain, 1 when startup failed (errors logged).
  int run();

 private:
  admin::state admin_state() const;
  // Re-reads the config file and applies it. `trigger` names what asked (for the log). With
  // `only_if_changed`, a file whose content is what runs already is not reloaded.
  admin::reload_result reload(admin::reload_trigger trigger, bool only_if_changed = false);
  // The access log `cfg` asks for: the running one when its settings did not change, a new one, or
  // null when off. Throws std::runtime_error when the file cannot be opened.
  std::shared_ptr<proxy::access_log> access_log_for(const config::config& cfg);
  // The span exporter for `cfg` (one per process, its settings updated), or null without an otlp
  // collector.
  std::shared_ptr<tracing::exporter> tracer_for(const config::config& cfg);
  // Hands snapshot_ to every worker and waits (boundedly) until each has taken it.
  void install_on_workers();
  // A hostname's addresses changed (the registry says so): one posted rebuild of the snapshot's
  // clusters, however many answers came in the same round.
  void hosts_changed();
  void rebuild_clusters();
  void wait_signals();
  // On the first SIGTERM/SIGINT: GET /ready answers 503 at once; after drain_delay (while the
  // listeners keep serving), stops accepting and lets the workers drain. Control thread.
  void drain();

  std::string config_path_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_{io_};
  boost::asio::steady_timer drain_delay_timer_{io_};  // drain_delay: from the signal to the drain
  // Declared before everything that may point to it (hosts, workers), so that it outlives them.
  mutable upstream::journal journal_;  // mutable: the admin API (const state) may clear incidents
  std::shared_ptr<const config::config> cfg_;
  proxy::snapshot_ptr snapshot_;
  std::shared_ptr<tracing::exporter> tracer_;  // made at the first config with tracing.otlp
  std::vector<std::unique_ptr<proxy::worker>> workers_;
  std::unique_ptr<admin::admin_server> admin_;
  health::checker checker_{io_};
  health::outlier_detector outlier_{io_};
  control_events events_{io_, outlier_};
  // Hosts and per-upstream counters across reloads, and DNS (after journal_, which hosts point to).
  upstream::host_registry registry_{io_, &journal_};
  bool rebuild_posted_ = false;
  proxy::traffic_registry traffic_;  // listener and route counters across reloads
  std::string last_reload_error_;
  std::string applied_text_;   // the config file's content that runs
  std::string rejected_text_;  // the content of the last file refused
  std::unique_ptr<config_watcher> watcher_;
  std::uint64_t reloads_ok_ = 0;
  std::uint64_t reloads_failed_ = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(admin::reload_trigger::count_)> reloads_by_trigger_{};
  bool draining_ = false;
  bool serving_ = false;  // listeners started (first health checks done): GET /ready answers 200
};

}  // namespace spillway::server

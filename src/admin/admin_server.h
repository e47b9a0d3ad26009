#pragma once
// The admin API (SPEC section 3) on its own listener, served from the control thread.
// It reads what the workers share (hosts' atomics, the current snapshot's clusters); it never
// touches the proxy's internals.

#include "common/stats.h"
#include "config/config.h"
#include "upstream/cluster.h"
#include "upstream/journal.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <memory>
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

// What the admin API reports about the running config.
struct state {
  std::vector<upstream::cluster_ptr> clusters;
  std::vector<listener_info> listeners;
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
};

struct reload_result {
  bool ok = false;
  std::string text;  // summary of changes, or one error per line
};

class admin_server {
 public:
  using state_fn = std::function<state()>;
  using reload_fn = std::function<reload_result()>;

  // Binds `listen` on `io` (the control thread's context). Throws std::runtime_error when the bind
  // fails. Control thread.
  admin_server(boost::asio::io_context& io, const config::address& listen, state_fn get_state, reload_fn reload);

  void start();
  void stop();

  // The bodies of GET /status and GET /metrics (exposed for tests). Control thread.
  static std::string status_json(const state& s);
  static std::string metrics_text(const state& s);
  static std::string dashboard_html();
  // The degradation report: every incident of every backend (JSON, or a table for people).
  static std::string degradation_json(const state& s);
  static std::string degradation_text(const state& s);

 private:
  struct connection;

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  state_fn get_state_;
  reload_fn reload_;
};

// JSON string escaping (quotes included).
std::string json_string(std::string_view s);

}  // namespace spillway::admin

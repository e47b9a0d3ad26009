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

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
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

// What made Spillway read its config file again (the `trigger` label of
// spillway_config_reload_triggers_total): a file event, the identity poll, SIGHUP, POST /reload.
enum class reload_trigger { file, poll, signal, api, count_ };

// The label value of a trigger.
const char* trigger_name(reload_trigger t);

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
  // Reloads attempted (applied or refused) by what triggered them; a file whose content already
  // runs or was already refused is not reloaded and not counted.
  std::array<std::uint64_t, static_cast<std::size_t>(reload_trigger::count_)> reloads_by_trigger{};
  bool ready = true;  // GET /ready: serving (listeners started, not draining)
};

// Limits of admin connections. The defaults fit an operator's curl, the dashboard and a scraper;
// nothing a browser or a stranger sends can hold more than max_connections sockets or a few
// buffers of memory.
struct limits {
  std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};  // first byte to end of head
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};    // keep-alive between requests
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};   // one whole response
  std::size_t max_head = 32 * 1024;                                    // bigger heads: 431
  std::size_t max_body = 64 * 1024;                                    // bigger bodies: 413
  std::size_t max_connections = 64;                                    // more are closed at once (counted)
};

// Why the admin API refused a request (the `reason` label of
// spillway_admin_requests_rejected_total).
enum class rejection { host, origin, content_type, token, method, too_large, timeout, bad_request, count_ };
const char* to_string(rejection r);

// The checks of SPEC section 5, pure so that they are tested without sockets.
// `host` is the Host header; `listen` the admin address as configured ("127.0.0.1:9901").
// True for that address, `localhost` or an IP literal (v4, or v6 in brackets), each with an
// optional port: a DNS-rebinding page sends its own host name, which is none of these.
bool host_allowed(std::string_view host, std::string_view listen);
// True for a body type a plain HTML form can send (application/x-www-form-urlencoded,
// multipart/form-data, text/plain), compared case-insensitively and without parameters.
bool form_content_type(std::string_view content_type);
// True when `authorization` is "Bearer <token>" (scheme case-insensitive). Compares SHA-256 digests
// with CRYPTO_memcmp, so that neither the token's bytes nor its length leak through timing.
bool bearer_matches(std::string_view authorization, std::string_view token);

struct reload_result {
  bool ok = false;
  std::string text;  // summary of changes, or one error per line
};

class admin_server {
 public:
  using state_fn = std::function<state()>;
  using reload_fn = std::function<reload_result()>;

  // Binds `cfg.listen` on `io` (the control thread's context) and requires `cfg.token` when set.
  // Throws std::runtime_error when the bind fails. Control thread.
  admin_server(boost::asio::io_context& io, const config::admin& cfg, state_fn get_state, reload_fn reload,
               limits lim = {});

  void start();
  // Stops accepting; connections open now end with their current request. Control thread.
  void stop();
  // Takes a reloaded config's token (empty: none required); the listen address is kept until the
  // next start. Control thread.
  void set_token(std::string token) { token_ = std::move(token); }

  // Admin connections open now, and counters for /metrics. Control thread.
  std::size_t connections_active() const;
  std::string own_metrics_text() const;

  // The bodies of GET /status and GET /metrics (exposed for tests). Control thread.
  static std::string status_json(const state& s);
  static std::string metrics_text(const state& s);
  static std::string dashboard_html();
  // The degradation report: every incident of every backend (JSON, or a table for people).
  static std::string degradation_json(const state& s);
  static std::string degradation_text(const state& s);

 private:
  struct connection;
  // Shared with the connections, which may outlive the server when the io_context is destroyed
  // after it (their frames are destroyed then).
  struct counters {
    std::size_t active = 0;
    std::uint64_t connections_rejected = 0;
    std::array<std::uint64_t, static_cast<std::size_t>(rejection::count_)> rejected{};
  };

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::string listen_text_;
  std::string token_;
  limits limits_;
  state_fn get_state_;
  reload_fn reload_;
  std::shared_ptr<counters> counters_ = std::make_shared<counters>();
};

// JSON string escaping (quotes included).
std::string json_string(std::string_view s);

}  // namespace spillway::admin

#pragma once
// The admin API (SPEC section 3) on its own listener, served from the control thread.
// It reads what the workers share (hosts' atomics, the current snapshot's clusters); it never
// touches the proxy's internals.
//
// This file is the HTTP/1.1 server: connections, deadlines and size limits, the safety checks of
// request_checks.h, then the route table (route_table.h). What the routes answer is rendered from a
// read-only `state` (state.h) by status_json.h, metrics_text.h and degradation_report.h, and the
// dashboard page is dashboard.html compiled in.

#include "admin/request_checks.h"
#include "admin/route_table.h"
#include "admin/state.h"
#include "config/config.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace spillway::admin {

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
  void set_open_probes(bool open) { open_probes_ = open; }

  // Admin connections open now. Control thread.
  std::size_t connections_active() const;
  // The admin API's own counters for /metrics (refusals by reason, connections). Control thread.
  std::string own_metrics_text() const;

 private:
  struct connection;
  // Shared with the connections, which may outlive the server when the io_context is destroyed
  // after it (their frames are destroyed then).
  struct counters {
    std::size_t active = 0;
    std::uint64_t connections_rejected = 0;
    std::array<std::uint64_t, static_cast<std::size_t>(rejection::count_)> rejected{};
  };

  // The routes of SPEC section 3 (and /ready, /degradation), answered from get_state_ and reload_.
  void add_routes();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::string listen_text_;
  std::string token_;
  bool open_probes_ = false;
  limits limits_;
  state_fn get_state_;
  reload_fn reload_;
  route_table routes_;
  std::shared_ptr<counters> counters_ = std::make_shared<counters>();
};

}  // namespace spillway::admin

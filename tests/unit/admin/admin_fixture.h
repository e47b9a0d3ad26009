#pragma once
// A state with something in every field the admin renderers read: two upstreams (one with a name
// that needs escaping), backends in each state (available, unhealthy, ejected, breaker open), a
// listener with routes and traffic, and a journal with transitions and one incident.

#include "admin/state.h"
#include "breaker/circuit_breaker.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace spillway::admin::testing {

// A backend written as `address`; `resolved` (for a hostname) is the address it resolved to.
inline upstream::host_ptr make_host(const std::string& upstream, const std::string& address,
                                    const char* resolved = nullptr) {
  config::backend b;
  b.addr.text = address;
  b.addr.host = address.substr(0, address.rfind(':'));
  b.addr.port = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  b.addr.is_ip = resolved == nullptr;
  boost::asio::ip::tcp::endpoint ep;
  if (resolved != nullptr) {
    ep = {boost::asio::ip::make_address(resolved), b.addr.port};
  }
  return std::make_shared<upstream::host>(upstream, b, ep);
}

// Adds `n` requests answered with `status` in `ms` milliseconds to per-worker traffic.
template <typename Traffic>
void add_traffic(stats::per_worker<Traffic>& pw, int status, int ms, int n) {
  for (int i = 0; i < n; ++i) {
    pw.local(0).responses.add(status);
    pw.local(0).duration.observe(std::chrono::milliseconds(ms));
    pw.local(0).bytes_in.add(100);
    pw.local(0).bytes_out.add(1000);
  }
}

struct admin_fixture {
  upstream::journal journal;
  state s;
  upstream::host_ptr up;         // available, with traffic and a closed breaker
  upstream::host_ptr unhealthy;  // failing health checks
  upstream::host_ptr ejected;    // ejected by outlier detection (an incident in the journal)
  upstream::host_ptr open;       // its breaker open
  std::shared_ptr<upstream::upstream_stats> app_stats = std::make_shared<upstream::upstream_stats>();
  std::shared_ptr<stats::per_worker<stats::listener_traffic>> web =
      std::make_shared<stats::per_worker<stats::listener_traffic>>();

  // Fixed breaker times, so that the open breaker's half_open_in_ms is known.
  breaker::clock::time_point now = breaker::clock::time_point(std::chrono::hours(1000));

  admin_fixture() {
    up = make_host("app", "127.0.0.1:9001");
    up->circuit = std::make_unique<breaker::circuit_breaker>(config::circuit_breaker{}, 1);
    up->requests_total = 42;
    up->failures_total = 2;
    up->connect_failures_total = 1;
    up->active_requests = 3;
    up->connections_active = 4;
    up->note_retried();
    // Five times round the breaker's cycle (closed -> open -> half_open -> closed), ending closed.
    for (int i = 0; i < 5; ++i) {
      up->apply({breaker::state::closed, breaker::state::open, {}, std::chrono::seconds(5)});
      up->apply({breaker::state::open, breaker::state::half_open, {}, {}});
      up->apply({breaker::state::half_open, breaker::state::closed, {}, {}});
    }
    add_traffic(up->traffic, 200, 3, 40);
    add_traffic(up->traffic, 503, 30, 2);

    unhealthy = make_host("app", "127.0.0.1:9002");
    for (int i = 0; i < 7; ++i) {
      unhealthy->note_health_check("connect: connection refused");
    }
    unhealthy->mark_out(upstream::out_kind::health, "connect: connection refused");  // one transition

    ejected = make_host("app", "backend.internal:9003", "10.1.2.3");
    for (int i = 0; i < 3; ++i) {
      ejected->failures_total.fetch_add(1);
      ejected->record_outcome(true, true);
    }
    ejected->note_retried();
    ejected->events_journal = &journal;
    // One ejection, journaled as "ejection in->ejected" (an incident).
    ejected->mark_out(upstream::out_kind::ejection, "3 consecutive failures");

    open = make_host("we\"ird\\up\nstream", "10.0.0.1:80");
    open->circuit = std::make_unique<breaker::circuit_breaker>(config::circuit_breaker{}, 1);
    open->apply({breaker::state::closed, breaker::state::open, {}, std::chrono::seconds(5)});
    journal.reload(false, "line 3: \"bad\"\tvalue");

    auto app = std::make_shared<upstream::cluster>();
    app->cfg.name = "app";
    app->hosts = {up, unhealthy, ejected};
    auto name = std::make_shared<upstream::name_stats>();
    name->name = "backend.internal:9003";
    name->lookups = 12;
    name->failures = 2;
    name->added = 3;
    name->removed = 1;
    name->addresses = 1;
    name->last_error = "Host not found";
    app->names = {name};
    app->stats = app_stats;
    app_stats->active_requests = 3;
    app_stats->retries_success = 1;
    app_stats->retries_failure = 2;
    app_stats->overflow_max_pending = 9;
    app_stats->connections = 4;
    add_traffic(app_stats->traffic, 200, 3, 40);
    app_stats->traffic.local(0).connect_time.observe(std::chrono::microseconds(120));

    auto odd = std::make_shared<upstream::cluster>();
    odd->cfg.name = "we\"ird\\up\nstream";
    odd->hosts = {open};
    odd->stats = std::make_shared<upstream::upstream_stats>();

    web->local(0).connections_total.add(10);
    web->local(0).connections_closed.add(7);
    web->local(0).local_replies[0].add(2);
    add_traffic(*web, 200, 3, 40);
    add_traffic(*web, 400, 0, 2);
    auto route0 = std::make_shared<stats::per_worker<stats::route_traffic>>();
    route0->local(0).responses.add(200);

    s.clusters = {app, odd};
    s.listeners.push_back({"web", "0.0.0.0:8080", "http", false, web, {{0, "app", route0}}});
    s.listeners.push_back(
        {"db", "0.0.0.0:5432", "tcp", true, std::make_shared<stats::per_worker<stats::listener_traffic>>(), {}});
    s.journal = &journal;
    s.workers = 2;
    s.access_log_dropped = 3;
    s.generation = 4;
    s.loaded_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
    s.config_path = "/etc/spillway/spillway.yaml";
    s.last_reload_error = "line 3: \"bad\"\tvalue";
    s.reloads_ok = 3;
    s.reloads_failed = 1;
    s.reloads_by_trigger = {1, 0, 2, 1};
  }
};

}  // namespace spillway::admin::testing

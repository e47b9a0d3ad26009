#include "server/server.h"

#include "common/log.h"
#include "common/version.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

namespace spillway::server {

namespace asio = boost::asio;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

server::server(std::string config_path) : config_path_(std::move(config_path)) {}

server::~server() = default;

admin::state server::admin_state() const {
  admin::state s;
  s.clusters = snapshot_->clusters;
  s.generation = snapshot_->generation;
  s.loaded_at = snapshot_->loaded_at;
  s.config_path = config_path_;
  s.last_reload_error = last_reload_error_;
  s.reloads_ok = reloads_ok_;
  s.reloads_failed = reloads_failed_;
  s.reloads_by_trigger = reloads_by_trigger_;
  s.ready = serving_ && !draining_;
  s.journal = &journal_;  // the admin API may clear incidents
  s.workers = static_cast<unsigned>(workers_.size());
  s.metrics = cfg_->metrics;
  if (snapshot_->log) {
    s.access_log_dropped = snapshot_->log->lines_dropped();
  }
  for (const auto& lv : snapshot_->listeners) {
    admin::listener_info li;
    li.name = lv.cfg->name;
    li.address = lv.cfg->listen.text;
    li.protocol = lv.cfg->proto == config::protocol::tcp ? "tcp" : "http";
    li.tls = lv.tls != nullptr;
    li.traffic = lv.traffic;
    for (std::size_t i = 0; i < lv.routes.size(); ++i) {
      li.routes.push_back({i, lv.routes[i].cfg->upstream, lv.route_traffic[i]});
    }
    s.listeners.push_back(std::move(li));
  }
  for (const auto& r : snapshot_->rate_limits) {
    admin::rate_limit_info ri;
    const auto& c = *r.cfg;
    ri.name = c.name;
    using kind = config::rate_limit::key_kind;
    ri.key = c.key == kind::client_ip ? "client_ip"
             : c.key == kind::header  ? "header:" + c.header
             : c.key == kind::route   ? "route"
                                      : "global";
    ri.rate = c.rate_text;
    ri.burst = c.burst;
    ri.dry_run = c.dry_run;
    r.counts->each([&](const stats::rate_limit_traffic& t) {
      ri.admitted += t.admitted.get();
      ri.limited += t.limited.get();
      ri.dry_run_limited += t.dry_run_limited.get();
      ri.redis[0] += t.redis_ok.get();
      ri.redis[1] += t.redis_timeout.get();
      ri.redis[2] += t.redis_unavailable.get();
      ri.redis[3] += t.redis_error.get();
    });
    if (c.shared) {
      ri.shared = "redis://" + c.shared->text;
      using u = config::rate_limit::unavailable;
      ri.on_unavailable = c.on_unavailable == u::local ? "local" : c.on_unavailable == u::allow ? "allow" : "deny";
    }
    ri.keys = r.table->keys();
    ri.max_keys = c.max_keys;
    ri.evictions = r.table->evictions();
    s.rate_limits.push_back(std::move(ri));
  }
  if (cfg_->tracing) {
    admin::tracing_info ti;
    ti.sample = cfg_->tracing->sample;
    ti.otlp = cfg_->tracing->otlp_text;
    if (snapshot_->tracer) {
      const auto c = snapshot_->tracer->stats();
      ti.exported = c.exported;
      ti.dropped_full = c.dropped_full;
      ti.dropped_failed = c.dropped_failed;
      ti.batches_failed = c.batches_failed;
      ti.queued = c.queued;
    }
    s.tracing = std::move(ti);
  }
  return s;
}

std::shared_ptr<tracing::exporter> server::tracer_for(const config::config& cfg) {
  if (!cfg.tracing || !cfg.tracing->otlp) {
    return nullptr;
  }
  const auto& t = *cfg.tracing;
  tracing::exporter::settings s{t.otlp->host, t.otlp->port, t.otlp_path, t.service_name, t.max_queue};
  if (!tracer_) {
    tracer_ = std::make_shared<tracing::exporter>(std::move(s), version);
  } else {
    tracer_->update(std::move(s));
  }
  return tracer_;
}

std::shared_ptr<proxy::access_log> server::access_log_for(const config::config& cfg) {
  if (!cfg.access_log) {
    return nullptr;
  }
  const auto& want = *cfg.access_log;
  if (snapshot_ && snapshot_->log) {
    const auto& have = snapshot_->log->cfg();
    if (have.path == want.path && have.format == want.format && have.sample == want.sample) {
      return snapshot_->log;
    }
  }
  return std::make_shared<proxy::access_log>(want);
}

admin::reload_result server::reload(admin::reload_trigger trigger, bool only_if_changed) {
  // Long on purpose: the reload is one sequence (read, load, check binds, build TLS, access log,
  // hosts, swap, post, report), and every step before the swap may reject with the running config
  // untouched; read top to bottom, it is the reload's contract.
  // Every rejection leaves the running config untouched, is logged line by line and counted.
  auto reject = [this](const std::string& text) -> admin::reload_result {
    std::size_t start = 0;
    while (start < text.size()) {
      auto end = text.find('\n', start);
      log::error("reload rejected: {}", text.substr(start, end - start));
      start = end == std::string::npos ? text.size() : end + 1;
    }
    last_reload_error_ = text;
    ++reloads_failed_;
    journal_.reload(false, text.substr(0, text.find('\n')));
    return {false, text};
  };
  std::string content = read_file(config_path_);
  if (only_if_changed && (content == applied_text_ || content == rejected_text_)) {
    return {true, "unchanged\n"};  // what runs already, or a file already refused
  }
  rejected_text_ = content;  // until it is applied below
  ++reloads_by_trigger_[static_cast<std::size_t>(trigger)];
  log::info("reload ({}): reading {}", admin::trigger_name(trigger), config_path_);
  auto loaded = config::load_string(content, config_path_);
  if (!loaded.cfg) {
    std::string text;
    for (const auto& e : loaded.errors) {
      text += e.str() + "\n";
    }
    return reject(text);
  }
  auto next = std::make_shared<const config::config>(std::move(*loaded.cfg));
  for (const auto& l : next->listeners) {
    bool known = std::any_of(cfg_->listeners.begin(), cfg_->listeners.end(),
                             [&](const config::listener& old) { return old.listen.text == l.listen.text; });
    if (!known) {
      // A new listener must be able to bind before the reload is accepted: workers bind it when
      // the snapshot reaches them, and by then it is too late to say no.
      if (auto why = proxy::try_bind(l.listen); !why.empty()) {
        return reject("listener \"" + l.name + "\" cannot listen on " + l.listen.text + ": " + why + "\n");
      }
    }
  }
  // Certificates are read again on every reload (renewed files take effect); one that does not
  // load rejects the reload and the running ones keep serving.
  std::vector<config::error> tls_errors;
  auto tls = tls::build(
      *next, tls_errors,
      [this](const config::listener& l) -> const tls::server_context* {
        const auto* old = snapshot_->find_listener(l.listen.text);
        return old != nullptr ? old->tls.get() : nullptr;
      },
      [this](const config::upstream& u) -> tls::client_context_ptr {
        for (const auto& c : snapshot_->clusters) {
          if (c->cfg.name == u.name) {
            return c->tls;
          }
        }
        return nullptr;
      });
  if (!tls_errors.empty()) {
    std::string text;
    for (const auto& e : tls_errors) {
      text += e.str() + "\n";
    }
    return reject(text);
  }
  std::shared_ptr<proxy::access_log> log;
  std::shared_ptr<tracing::exporter> tracer;
  try {
    log = access_log_for(*next);
    tracer = tracer_for(*next);
  } catch (const std::exception& e) {
    return reject(std::string(e.what()) + "\n");
  }
  // Last, since it cannot fail and changes the registry: hostnames not known yet are looked up in
  // the background, their backends out of traffic until they resolve (the reload does not wait).
  auto clusters = registry_.build(*next, tls.upstreams);
  cfg_ = next;
  snapshot_ = proxy::make_snapshot(cfg_, std::move(clusters), snapshot_->generation + 1, std::move(tls.listeners),
                                   &traffic_, std::move(log), std::move(tracer));
  install_on_workers();
  checker_.update(snapshot_->clusters);
  outlier_.update(snapshot_->clusters);
  if (admin_) {
    admin_->set_token(cfg_->admin_api.token);  // a reload is how a token is rotated
    admin_->set_open_probes(cfg_->admin_api.open_probes);
  }
  last_reload_error_.clear();
  applied_text_ = std::move(rejected_text_);
  rejected_text_.clear();
  ++reloads_ok_;
  auto text = fmt::format("reloaded: generation {}, {}\n", snapshot_->generation, config::summary(*cfg_));
  journal_.reload(true, fmt::format("generation {}", snapshot_->generation));
  log::info("{}", text.substr(0, text.size() - 1));
  return {true, text};
}

void server::install_on_workers() {
  // The reload answers once every worker routes by the new snapshot, so that the very next request
  // (and a client that reloads, then tests) sees the new config. A worker takes it between two
  // handlers, in microseconds; the bound only guards against a worker that is wedged.
  constexpr auto bound = std::chrono::seconds(2);
  std::vector<std::future<void>> installed;
  installed.reserve(workers_.size());
  for (auto& w : workers_) {
    installed.push_back(w->install(snapshot_));
  }
  if (!serving_ || draining_) {
    return;  // threads not started yet, or ending: they take it when (if) they run
  }
  const auto deadline = std::chrono::steady_clock::now() + bound;
  for (std::size_t i = 0; i < installed.size(); ++i) {
    if (installed[i].wait_until(deadline) != std::future_status::ready) {
      log::warn("reload: worker {} has not taken generation {} after {} s; it will when it gets to it", i,
                snapshot_->generation, bound.count());
    }
  }
}

void server::hosts_changed() {
  if (rebuild_posted_) {
    return;
  }
  rebuild_posted_ = true;
  asio::post(io_, [this] {
    rebuild_posted_ = false;
    rebuild_clusters();
  });
}

void server::rebuild_clusters() {
  if (draining_ || !snapshot_) {
    return;
  }
  // The running config again, with each hostname's current addresses: the same generation (no
  // config changed), the same TLS contexts and access log.
  std::vector<tls::client_context_ptr> upstream_tls;
  for (const auto& c : snapshot_->clusters) {
    upstream_tls.push_back(c->tls);
  }
  std::vector<tls::server_context_ptr> listener_tls;
  for (const auto& l : snapshot_->listeners) {
    listener_tls.push_back(l.tls);
  }
  auto clusters = registry_.build(*cfg_, upstream_tls);
  snapshot_ = proxy::make_snapshot(cfg_, std::move(clusters), snapshot_->generation, std::move(listener_tls), &traffic_,
                                   snapshot_->log, snapshot_->tracer);
  install_on_workers();
  checker_.update(snapshot_->clusters);
  outlier_.update(snapshot_->clusters);
}

void server::wait_signals() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) {
      return;
    }
    if (sig == SIGHUP) {
      reload(admin::reload_trigger::signal);
      wait_signals();
      return;
    }
    if (draining_) {
      log::warn("second signal: exiting now");
      std::_Exit(1);
    }
    log::info("{}: draining (up to {} ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg_->drain_timeout.count());
    drain();
    wait_signals();
  });
}

void server::drain() {
  if (!draining_) {
    draining_ = true;  // GET /ready answers 503 from now on
    // Kubernetes removes a terminating pod from its Services' endpoints while it sends SIGTERM, and
    // a load balancer polling /ready needs a moment too: until they have, connections keep coming,
    // so the listeners keep accepting (and health checks, reloads and all keep running) for
    // drain_delay. A process not serving yet has no traffic to wait for.
    if (serving_ && cfg_->drain_delay.count() > 0) {
      log::info("not ready; accepting for {} ms more (drain_delay), then draining", cfg_->drain_delay.count());
      drain_delay_timer_.expires_after(cfg_->drain_delay);
      drain_delay_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) {
          log::info("drain_delay over: draining");
          drain();
        }
      });
      return;
    }
  }
  registry_.stop();
  if (watcher_) {
    watcher_->stop();
  }
  checker_.stop();
  outlier_.stop();
  events_.stop();
  // The admin API keeps answering while the workers drain (GET /ready says 503, so that a load
  // balancer or Kubernetes in front stops sending); it ends with the process.
  for (auto& w : workers_) {
    w->drain(cfg_->drain_timeout);
  }
  // Join the workers off the control thread, so that a second signal is still handled meanwhile.
  std::thread([this] {
    for (auto& w : workers_) {
      w->join();
    }
    asio::post(io_, [this] { io_.stop(); });
  }).detach();
}

int server::run() {
  // Long on purpose: startup in order (load, resolve, bind, first health checks, accept, serve,
  // drain), each step's failure ending the process with its own message.
  applied_text_ = read_file(config_path_);
  auto loaded = config::load_string(applied_text_, config_path_);
  if (!loaded.cfg) {
    for (const auto& e : loaded.errors) {
      log::error("{}", e.str());
    }
    return 1;
  }
  cfg_ = std::make_shared<const config::config>(std::move(*loaded.cfg));
  std::vector<config::error> tls_errors;
  auto tls = tls::build(*cfg_, tls_errors);
  for (const auto& e : tls_errors) {
    log::error("{}", e.str());
  }
  if (!tls_errors.empty()) {
    return 1;
  }
  try {
    unsigned n = cfg_->workers != 0 ? cfg_->workers : std::max(1U, std::thread::hardware_concurrency());
    stats::set_worker_count(n);  // before any counters are made
    auto clusters = registry_.build(*cfg_, tls.upstreams);
    // Wait for the first answers (nothing else runs on the io_context yet), so that traffic
    // starts with every address known. A name that does not resolve is not fatal: a Kubernetes
    // headless Service with no ready pod has no address yet, and a fleet member must start
    // anyway. Its backend stays out of traffic (`unresolved`) and is looked up every dns_refresh.
    while (registry_.lookups_in_flight() > 0 && io_.run_one() > 0) {
    }
    io_.restart();
    for (const auto& f : registry_.unresolved()) {
      log::warn("{}; it takes no traffic until it resolves", f);
    }
    clusters = registry_.build(*cfg_, tls.upstreams);  // with every address the names resolved to
    snapshot_ = proxy::make_snapshot(cfg_, std::move(clusters), 1, std::move(tls.listeners), &traffic_,
                                     access_log_for(*cfg_), tracer_for(*cfg_));
    for (unsigned i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<proxy::worker>(i, snapshot_, &events_));
    }
    admin_ = std::make_unique<admin::admin_server>(
        io_, cfg_->admin_api, [this] { return admin_state(); }, [this] { return reload(admin::reload_trigger::api); });
  } catch (const std::exception& e) {
    log::error("{}", e.what());
    return 1;
  }
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.add(SIGHUP);
  wait_signals();
  // Only a changed file is read again: a change seen both by an event and by the poll, or a file
  // put back to what runs, is not reloaded twice.
  watcher_ = std::make_unique<config_watcher>(io_, config_path_, [this](change_seen how) {
    reload(how == change_seen::event ? admin::reload_trigger::file : admin::reload_trigger::poll, true);
  });
  watcher_->start();
  registry_.on_change([this] { hosts_changed(); });
  registry_.start_refresh();
  admin_->start();
  outlier_.update(snapshot_->clusters);
  checker_.update(snapshot_->clusters);
  // Requests are served only once every checked backend has answered its first check (each
  // bounded by its timeout), so that the first request never goes to a dead backend.
  const auto checks_started = std::chrono::steady_clock::now();
  checker_.when_first_round_done([this, checks_started] {
    if (draining_) {
      return;
    }
    for (auto& w : workers_) {
      w->start();
    }
    serving_ = true;
    auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - checks_started);
    for (const auto& l : cfg_->listeners) {
      log::info("listener \"{}\" on {} ({} routes)", l.name, l.listen.text, l.routes.size());
    }
    log::info("admin API on {}; {} workers; first health checks took {} ms; {}", cfg_->admin_api.listen.text,
              workers_.size(), waited.count(), config::summary(*cfg_));
  });
  io_.run();
  for (auto& w : workers_) {
    w->join();
  }
  log::info("drained; exiting");
  return 0;
}

}  // namespace spillway::server

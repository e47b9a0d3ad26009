#include "upstream/host_registry.h"

#include "common/log.h"

#include <fmt/format.h>

namespace spillway::upstream {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string key_of(const std::string& upstream, const std::string& address) { return upstream + "\n" + address; }

}  // namespace

host_registry::host_registry(asio::io_context& io, journal* events, const time_source& clock)
    : host_registry(io, events, nullptr, clock) {}

host_registry::host_registry(asio::io_context& io, journal* events, resolve_fn resolve, const time_source& clock)
    : events_(events), clock_(clock), resolver_(io), resolve_(std::move(resolve)), timer_(io) {
  if (!resolve_) {
    resolve_ = [this](const std::string& name, std::uint16_t port, resolve_done done) {
      resolver_.async_resolve(name, std::to_string(port),
                              [done = std::move(done)](boost::system::error_code ec, tcp::resolver::results_type r) {
                                if (!ec && r.empty()) {
                                  ec = asio::error::host_not_found;
                                }
                                done(ec, ec ? tcp::endpoint() : r.begin()->endpoint());
                              });
    };
  }
}

std::vector<cluster_ptr> host_registry::build(const config::config& cfg,
                                              const std::vector<tls::client_context_ptr>& tls) {
  std::vector<cluster_ptr> clusters;
  std::map<std::string, entry> next;
  std::map<std::string, schedule> next_dns;
  std::vector<host_ptr> to_look_up;
  const auto now = clock_.steady_now();
  for (std::size_t ui = 0; ui < cfg.upstreams.size(); ++ui) {
    const auto& u = cfg.upstreams[ui];
    auto c = std::make_shared<cluster>();
    c->cfg = u;
    c->tls = ui < tls.size() ? tls[ui] : nullptr;
    for (const auto& b : u.backends) {
      const std::string key = key_of(u.name, b.addr.text);
      const auto it = hosts_.find(key);
      const entry* old = it != hosts_.end() ? &it->second : nullptr;
      host_ptr h;
      if (old != nullptr && config::same_health_check(old->health, u.health) &&
          config::same_breaker(old->breaker, u.breaker)) {
        h = old->host;
        h->set_weight(b.weight);
        h->set_backup(b.backup);
      } else {
        if (old != nullptr) {
          log::info("reload: {} {} starts fresh (health check or breaker settings changed)", u.name, b.addr.text);
        }
        h = make_host(u, b, key, old);
        if (!h->is_resolved()) {
          to_look_up.push_back(h);
        }
      }
      c->hosts.push_back(h);
      next[key] = entry{h, u.health, u.breaker};
      if (!b.addr.is_ip) {
        auto sit = dns_.find(u.name);
        auto& s = next_dns[u.name];
        s.every = u.dns_refresh;
        // A changed dns_refresh counts from now; an unchanged one keeps its rhythm.
        s.due = sit != dns_.end() && sit->second.every == u.dns_refresh ? sit->second.due : now + u.dns_refresh;
      }
    }
    auto& stats = stats_[u.name];
    if (!stats) {
      stats = std::make_shared<upstream_stats>();
    }
    c->stats = stats;
    clusters.push_back(std::move(c));
  }
  hosts_ = std::move(next);
  dns_ = std::move(next_dns);
  // Once the hosts are registered, so that an answer (even one given at once) finds its host.
  for (const auto& h : to_look_up) {
    look_up(h);
  }
  return clusters;
}

host_ptr host_registry::make_host(const config::upstream& u, const config::backend& b, const std::string& key,
                                  const entry* old) {
  tcp::endpoint ep;
  bool resolved = true;
  if (b.addr.is_ip) {
    ep = tcp::endpoint(asio::ip::make_address(b.addr.host), b.addr.port);
  } else if (old != nullptr && old->host->is_resolved()) {
    ep = old->host->endpoint();  // the same name: no need to wait for a lookup
  } else {
    resolved = false;
  }
  auto h = std::make_shared<host>(u.name, b, ep, clock_);
  h->events_journal = events_;
  if (u.breaker.enabled) {
    h->circuit = std::make_unique<breaker::circuit_breaker>(u.breaker, std::hash<std::string>{}(key) ^ seed_++);
  }
  if (!resolved) {
    h->set_initial(out_kind::dns, false, "resolving");
  }
  return h;
}

void host_registry::look_up(const host_ptr& h) {
  if (stopped_ || !in_flight_.insert(h.get()).second) {
    return;  // one lookup per host at a time
  }
  const auto& addr = h->cfg().addr;
  resolve_(addr.host, addr.port,
           [this, h](boost::system::error_code ec, const tcp::endpoint& ep) { answer(h, ec, ep); });
}

void host_registry::answer(const host_ptr& h, boost::system::error_code ec, const tcp::endpoint& ep) {
  in_flight_.erase(h.get());
  if (stopped_) {
    return;
  }
  auto it = hosts_.find(key_of(h->upstream_name(), h->address()));
  if (it == hosts_.end() || it->second.host != h) {
    return;  // removed or replaced by a reload meanwhile
  }
  if (ec) {
    if (!h->is_resolved()) {
      h->mark_out(out_kind::dns, ec.message());  // logged the first time only
      return;
    }
    // Keep the last good address: a resolver hiccup must not take a backend out.
    log::warn("dns: {} {}: cannot resolve ({}); keeping {}", h->upstream_name(), h->address(), ec.message(),
              h->endpoint().address().to_string());
    return;
  }
  if (!h->is_resolved()) {
    h->set_endpoint(ep);  // before mark_in, which publishes it
    h->mark_in(out_kind::dns);
    return;
  }
  const auto old = h->endpoint();
  if (ep == old) {
    return;
  }
  h->set_endpoint(ep);
  auto detail = fmt::format("{} -> {}", old.address().to_string(), ep.address().to_string());
  log::info("dns: {} {} moved: {}", h->upstream_name(), h->address(), detail);
  if (events_ != nullptr) {
    events_->transition(*h, "dns", old.address().to_string(), ep.address().to_string(), detail);
  }
}

std::vector<std::string> host_registry::unresolved() const {
  std::vector<std::string> out;
  for (const auto& [key, e] : hosts_) {
    if (!e.host->is_resolved() && e.host->known(out_kind::dns)) {
      out.push_back(fmt::format("backend {} of upstream \"{}\": cannot resolve: {}", e.host->address(),
                                e.host->upstream_name(), e.host->detail(out_kind::dns)));
    }
  }
  return out;
}

void host_registry::start_refresh() { arm_timer(); }

void host_registry::arm_timer() {
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) {
      return;
    }
    refresh(clock_.steady_now());
    arm_timer();
  });
}

void host_registry::refresh(std::chrono::steady_clock::time_point now) {
  for (auto& [name, s] : dns_) {
    if (now < s.due) {
      continue;
    }
    s.due = now + s.every;
    const std::string prefix = name + "\n";
    for (auto it = hosts_.lower_bound(prefix); it != hosts_.end() && it->first.starts_with(prefix); ++it) {
      if (!it->second.host->cfg().addr.is_ip) {
        look_up(it->second.host);
      }
    }
  }
}

void host_registry::stop() {
  stopped_ = true;
  timer_.cancel();
  resolver_.cancel();
}

host_ptr host_registry::find(const std::string& upstream, const std::string& address) const {
  auto it = hosts_.find(key_of(upstream, address));
  return it != hosts_.end() ? it->second.host : nullptr;
}

}  // namespace spillway::upstream

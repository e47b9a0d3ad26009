#include "upstream/host_registry.h"

#include "common/log.h"
#include "upstream/srv.h"

#include <fmt/format.h>

#include <algorithm>

namespace spillway::upstream {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string key_of(const std::string& upstream, const std::string& address) { return upstream + "\n" + address; }

}  // namespace

host_registry::host_registry(asio::io_context& io, journal* events, const time_source& clock)
    : host_registry(io, events, nullptr, clock) {}

host_registry::host_registry(asio::io_context& io, journal* events, resolve_fn resolve, const time_source& clock)
    : events_(events), clock_(clock), io_(io), resolver_(io), resolve_(std::move(resolve)), timer_(io) {
  if (!resolve_) {
    resolve_ = [this](const config::address& addr, resolve_done done) {
      if (addr.srv) {
        resolve_srv(addr.host, std::move(done));
        return;
      }
      // Every address, IPv4 and IPv6 (no AI_ADDRCONFIG: whether an address is reachable is for
      // its health check to say, not for this machine's interface list).
      resolver_.async_resolve(addr.host, std::to_string(addr.port), tcp::resolver::flags{},
                              [done = std::move(done)](boost::system::error_code ec, tcp::resolver::results_type r) {
                                std::vector<resolved> found;
                                for (const auto& e : r) {
                                  found.push_back({e.endpoint(), {}, 0, false});
                                }
                                done(ec, std::move(found));
                              });
    };
  }
}

void host_registry::resolve_srv(const std::string& name, resolve_done done) {
  // res_nquery and getaddrinfo block: on a thread of their own, the answer posted back.
  if (!srv_thread_) {
    srv_thread_ = std::make_unique<asio::thread_pool>(1);
  }
  // The guard keeps io_ from running out of work meanwhile (startup runs it until every first
  // answer is in), as asio's own resolver does. It travels with the answer and ends on io_'s
  // thread: released here, on the lookup's thread, it could be the last work after startup's loop
  // has run the answer and restarted io_, and stop io_ for good (the process would exit at once).
  asio::post(*srv_thread_, [this, name, done = std::move(done), busy = asio::make_work_guard(io_)]() mutable {
    std::vector<srv_address> addresses;
    auto ec = lookup_srv(name, addresses);
    std::vector<resolved> found;
    for (auto& a : addresses) {
      found.push_back({a.endpoint, std::move(a.target), a.weight, a.backup});
    }
    asio::post(io_, [done = std::move(done), ec, found = std::move(found), busy = std::move(busy)]() mutable {
      done(ec, std::move(found));
    });
  });
}

std::vector<cluster_ptr> host_registry::build(const config::config& cfg,
                                              const std::vector<tls::client_context_ptr>& tls) {
  std::vector<cluster_ptr> clusters;
  std::map<std::string, entry> next;
  std::map<std::string, schedule> next_dns;
  std::vector<std::string> to_look_up;
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
      const bool keep = old != nullptr && config::same_health_check(old->health, u.health) &&
                        config::same_breaker(old->breaker, u.breaker);
      if (old != nullptr && !keep) {
        log::info("reload: {} {} starts fresh (health check or breaker settings changed)", u.name, b.addr.text);
      }
      entry e{u.name, b, u.health, u.breaker, nullptr, {}, nullptr};
      // A kept host takes the new weight and role (an SRV record's own, for its addresses); a fresh
      // one is made for the same address.
      auto carry = [&](const host_ptr& h, const resolved& r) {
        if (!keep) {
          return make_host(e, r);
        }
        h->set_weight(r.weight != 0 ? r.weight : b.weight);
        h->set_backup(r.weight != 0 ? r.backup : b.backup);
        return h;
      };
      if (b.addr.is_ip) {
        const resolved r{tcp::endpoint(asio::ip::make_address(b.addr.host), b.addr.port), {}, 0, false};
        e.host = old != nullptr ? carry(old->host, r) : make_host(e, r);
        c->hosts.push_back(e.host);
      } else {
        e.dns = old != nullptr ? old->dns : std::make_shared<name_stats>();
        e.dns->name = b.addr.text;
        if (old != nullptr) {
          for (const auto& [ep, m] : old->addresses) {
            // The name's answer stands: no lookup to wait for.
            auto kept = e.addresses.emplace(ep, entry::member{carry(m.host, m.answer), m.answer});
            c->hosts.push_back(kept.first->second.host);
          }
        }
        if (e.addresses.empty()) {
          e.host = keep && old->host ? old->host : make_host(e, resolved{});
          c->hosts.push_back(e.host);
          if (!e.host->known(out_kind::dns) || !keep) {
            to_look_up.push_back(key);
          }
        }
        c->names.push_back(e.dns);
        auto sit = dns_.find(u.name);
        auto& sched = next_dns[u.name];
        sched.every = u.dns_refresh;
        // A changed dns_refresh counts from now; an unchanged one keeps its rhythm.
        sched.due = sit != dns_.end() && sit->second.every == u.dns_refresh ? sit->second.due : now + u.dns_refresh;
      }
      next[key] = std::move(e);
    }
    auto& stats = stats_[u.name];
    if (!stats) {
      stats = std::make_shared<upstream_stats>();
    }
    c->stats = stats;
    clusters.push_back(std::move(c));
  }
  // Backends the reload removed, or replaced by fresh hosts: an incident they had open ends here.
  if (events_ != nullptr) {
    for (const auto& [key, old] : hosts_) {
      const auto it = next.find(key);
      const entry* now_there = it != next.end() ? &it->second : nullptr;
      auto gone = [&](const host_ptr& h) {
        if (h == nullptr) {
          return;
        }
        const bool kept = now_there != nullptr &&
                          (now_there->host == h || std::any_of(now_there->addresses.begin(), now_there->addresses.end(),
                                                               [&](const auto& m) { return m.second.host == h; }));
        if (!kept) {
          events_->removed(*h);
        }
      };
      gone(old.host);
      for (const auto& [ep, m] : old.addresses) {
        gone(m.host);
      }
    }
  }
  hosts_ = std::move(next);
  dns_ = std::move(next_dns);
  // Once the entries are registered, so that an answer (even one given at once) finds its entry.
  for (const auto& key : to_look_up) {
    look_up(key, hosts_.at(key));
  }
  return clusters;
}

host_ptr host_registry::make_host(const entry& e, const resolved& r) {
  const auto& ep = r.endpoint;
  auto b = e.cfg;
  if (r.weight != 0) {  // an SRV record's address: its target, port, weight and role
    b.addr.host = r.target;
    b.addr.port = ep.port();
    b.weight = r.weight;
    b.backup = r.backup;
  }
  auto h = std::make_shared<host>(e.upstream, b, ep, clock_);
  h->events_journal = events_;
  if (e.breaker.enabled) {
    h->circuit = std::make_unique<breaker::circuit_breaker>(
        e.breaker, std::hash<std::string>{}(key_of(e.upstream, h->address())) ^ seed_++);
  }
  if (!e.cfg.addr.is_ip && ep.port() == 0) {
    h->set_initial(out_kind::dns, false, "resolving");
  }
  if (e.health.enabled) {
    // Unknown until its first check (the checker starts one as soon as it sees the host): no
    // traffic to a host nobody has seen alive, even in the instant before the checker does.
    h->set_initial(out_kind::health, false, "not checked yet");
  }
  return h;
}

void host_registry::look_up(const std::string& key, const entry& e) {
  if (stopped_ || !in_flight_.insert(key).second) {
    return;  // one lookup per name at a time
  }
  resolve_(e.cfg.addr, [this, key](boost::system::error_code ec, std::vector<resolved> found) {
    answer(key, ec, std::move(found));
  });
}

void host_registry::answer(const std::string& key, boost::system::error_code ec, std::vector<resolved> found) {
  in_flight_.erase(key);
  if (stopped_) {
    return;
  }
  auto it = hosts_.find(key);
  if (it == hosts_.end()) {
    return;  // removed by a reload meanwhile
  }
  auto& e = it->second;
  auto& st = *e.dns;
  ++st.lookups;
  std::map<tcp::endpoint, resolved> now;  // by address: duplicates count once
  for (auto& r : found) {
    now.emplace(r.endpoint, std::move(r));
  }
  if (!ec && now.empty()) {
    ec = asio::error::host_not_found;  // an empty answer is no reason to drop every address
  }
  if (ec) {
    ++st.failures;
    const bool first_failure = st.last_error.empty();
    st.last_error = ec.message();
    if (e.addresses.empty()) {
      e.host->mark_out(out_kind::dns, ec.message());  // logged the first time only
      return;
    }
    if (first_failure) {
      log::warn("dns: {} {}: cannot resolve ({}); keeping its {} address(es)", e.upstream, e.cfg.addr.text,
                ec.message(), e.addresses.size());
    }
    return;
  }
  if (!st.last_error.empty() && !e.addresses.empty()) {
    log::info("dns: {} {} resolves again", e.upstream, e.cfg.addr.text);
  }
  st.last_error.clear();
  const bool first = e.addresses.empty();
  std::vector<std::string> added;
  std::vector<std::string> removed;
  bool roles_changed = false;
  for (auto a = e.addresses.begin(); a != e.addresses.end();) {
    auto n = now.find(a->first);
    if (n != now.end()) {
      // Stays. An SRV record may give it another weight or priority.
      auto& m = a->second;
      if (n->second.weight != m.answer.weight || n->second.backup != m.answer.backup) {
        m.answer = n->second;
        m.host->set_weight(m.answer.weight != 0 ? m.answer.weight : e.cfg.weight);
        m.host->set_backup(m.answer.weight != 0 ? m.answer.backup : e.cfg.backup);
        roles_changed = true;
      }
      ++a;
      continue;
    }
    // Gone from the answer: out of the next snapshot; its in-flight requests finish.
    removed.push_back(a->second.host->address());
    if (events_ != nullptr) {
      events_->transition(*a->second.host, "dns", "present", "removed",
                          fmt::format("no longer in {}", e.cfg.addr.text));
      events_->removed(*a->second.host);
    }
    a = e.addresses.erase(a);
  }
  for (const auto& [ep, r] : now) {
    if (e.addresses.contains(ep)) {
      continue;
    }
    auto h = make_host(e, r);
    added.push_back(h->address());
    if (events_ != nullptr && !first) {
      events_->transition(*h, "dns", "absent", "added", fmt::format("new in {}", e.cfg.addr.text));
    }
    e.addresses.emplace(ep, entry::member{std::move(h), r});
  }
  st.addresses = e.addresses.size();
  if (added.empty() && removed.empty() && !roles_changed) {
    return;
  }
  e.host = nullptr;  // the placeholder, if any: the name has addresses now
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& a : v) {
      out += out.empty() ? a : ", " + a;
    }
    return out;
  };
  if (first) {
    log::info("dns: {} {} resolved to {}", e.upstream, e.cfg.addr.text, list(added));
  } else if (!added.empty() || !removed.empty()) {
    st.added += added.size();
    st.removed += removed.size();
    log::info("dns: {} {}: {}{}{}", e.upstream, e.cfg.addr.text, added.empty() ? "" : "added " + list(added),
              added.empty() || removed.empty() ? "" : "; ", removed.empty() ? "" : "removed " + list(removed));
  } else {
    log::info("dns: {} {}: SRV weights or priorities changed", e.upstream, e.cfg.addr.text);
  }
  if (on_change_) {
    on_change_();
  }
}

std::vector<std::string> host_registry::unresolved() const {
  std::vector<std::string> out;
  for (const auto& [key, e] : hosts_) {
    if (e.host && !e.host->is_resolved() && e.host->known(out_kind::dns)) {
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
      if (!it->second.cfg.addr.is_ip) {
        look_up(it->first, it->second);
      }
    }
  }
}

void host_registry::stop() {
  stopped_ = true;
  timer_.cancel();
  resolver_.cancel();
  if (srv_thread_) {
    srv_thread_->stop();  // a lookup under way finishes; its answer is ignored
  }
}

host_ptr host_registry::find(const std::string& upstream, const std::string& address) const {
  auto all = find_all(upstream, address);
  return all.empty() ? nullptr : all.front();
}

std::vector<host_ptr> host_registry::find_all(const std::string& upstream, const std::string& address) const {
  std::vector<host_ptr> out;
  auto it = hosts_.find(key_of(upstream, address));
  if (it != hosts_.end()) {
    if (it->second.host) {
      out.push_back(it->second.host);
    }
    for (const auto& [ep, m] : it->second.addresses) {
      out.push_back(m.host);
    }
  }
  return out;
}

}  // namespace spillway::upstream

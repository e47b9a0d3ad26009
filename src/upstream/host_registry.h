#pragma once
// The hosts of every upstream across reloads and DNS refreshes, owned by the control thread.
//
// A reload asks the registry for the clusters of the new config. A backend whose upstream and
// address stay keeps its host object, and so its health, ejection and breaker state and in-flight
// counts, while its health check and breaker settings stay the same too (weight and role may
// change); anything else starts fresh. Per-upstream counters are kept by upstream name.
//
// A backend written as a hostname is one host per address its name resolves to (IPv4 and IPv6),
// each with its own state, kept across refreshes while the address stays. Names are looked up
// asynchronously on the control thread's io_context (the system resolver runs off-thread), so
// neither a reload nor a refresh waits for DNS: a new name is one placeholder host, out of traffic
// (out_kind::dns), until it first resolves; it is looked up again every dns_refresh. When an
// answer adds or removes addresses, `on_change` is told, and the next build() gives the new set: a
// new address is a new host (out of traffic until its first health check passes), a vanished one
// is dropped (its in-flight requests finish; workers close its pooled connections). A lookup that
// fails or comes back empty keeps the last good set, logged and counted.

#include "common/time_source.h"
#include "config/config.h"
#include "tls/context.h"
#include "upstream/cluster.h"
#include "upstream/journal.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace spillway::upstream {

class host_registry {
 public:
  // One address a name stands for.
  struct resolved {
    boost::asio::ip::tcp::endpoint endpoint;
    std::string target;        // SRV: the record's target (the TLS server name and Host); else empty
    std::uint32_t weight = 0;  // SRV: the record's weight; 0: the backend's own
    bool backup = false;       // SRV: a record of a priority above the lowest
  };
  // Looks up a hostname (`addr.host`:`addr.port`) or an SRV name (`addr.srv`) and calls `done`
  // once, on the registry's io_context, with an error or the addresses. Injected so that tests
  // answer lookups themselves.
  using resolve_done = std::function<void(boost::system::error_code, std::vector<resolved>)>;
  using resolve_fn = std::function<void(const config::address& addr, resolve_done done)>;

  // `events` (may be null) and `clock` must outlive the registry and its hosts. Lookups go to the
  // system resolver (asio's, on `io`; SRV names on a thread of the registry's own).
  host_registry(boost::asio::io_context& io, journal* events, const time_source& clock = time_source::real());
  host_registry(boost::asio::io_context& io, journal* events, resolve_fn resolve, const time_source& clock);
  host_registry(const host_registry&) = delete;
  host_registry& operator=(const host_registry&) = delete;

  // Returns the clusters of `cfg` (`tls` is aligned with cfg.upstreams), reusing hosts as the
  // header says, and forgets hosts that are no longer configured. Never blocks and never fails:
  // hostnames not known yet are looked up in the background. Control thread.
  std::vector<cluster_ptr> build(const config::config& cfg, const std::vector<tls::client_context_ptr>& tls);

  // Lookups under way (startup runs the io_context until there are none). Control thread.
  std::size_t lookups_in_flight() const { return in_flight_.size(); }
  // Configured hostname backends whose name has never resolved, one line each:
  // `backend NAME:PORT of upstream "u": cannot resolve: WHY`. Control thread.
  std::vector<std::string> unresolved() const;

  // Called (control thread) after an answer changed a name's addresses; build() then gives the new
  // hosts. Not called for answers that change nothing.
  void on_change(std::function<void()> fn) { on_change_ = std::move(fn); }

  // Starts the refresh timer: every second, the hostnames of each upstream whose dns_refresh is
  // due are looked up again. Control thread.
  void start_refresh();
  // One refresh round at `now` (what the timer runs; tests call it with a fake time). Control thread.
  void refresh(std::chrono::steady_clock::time_point now);
  // Stops the timer and the lookups under way; answers that still arrive are ignored. Control thread.
  void stop();

  // The host of backend `address` (as configured) in `upstream`, or null; for a hostname, the host
  // of its first address (or its placeholder). Control thread.
  host_ptr find(const std::string& upstream, const std::string& address) const;
  // Every host of backend `address` in `upstream`, addresses in order. Control thread.
  std::vector<host_ptr> find_all(const std::string& upstream, const std::string& address) const;

 private:
  // One configured backend.
  struct entry {
    std::string upstream;
    config::backend cfg;
    config::health_check health;  // the settings its hosts were made for
    config::circuit_breaker breaker;
    host_ptr host;  // an address backend, or a hostname's placeholder until its first answer
    struct member {
      host_ptr host;
      resolved answer;  // what made it (SRV: its record's weight and role)
    };
    std::map<boost::asio::ip::tcp::endpoint, member> addresses;  // a hostname's hosts
    std::shared_ptr<name_stats> dns;                             // a hostname's lookups (kept by name)
  };
  struct schedule {
    config::duration every{};
    std::chrono::steady_clock::time_point due{};
  };

  host_ptr make_host(const entry& e, const resolved& r);
  void look_up(const std::string& key, const entry& e);
  void answer(const std::string& key, boost::system::error_code ec, std::vector<resolved> found);
  void resolve_srv(const std::string& name, resolve_done done);
  void arm_timer();

  journal* events_;
  const time_source& clock_;
  boost::asio::io_context& io_;
  boost::asio::ip::tcp::resolver resolver_;
  std::unique_ptr<boost::asio::thread_pool> srv_thread_;  // made at the first SRV lookup
  resolve_fn resolve_;
  boost::asio::steady_timer timer_;
  std::map<std::string, entry> hosts_;                            // by "upstream\naddress"
  std::map<std::string, std::shared_ptr<upstream_stats>> stats_;  // by upstream name
  std::map<std::string, schedule> dns_;  // by upstream name, upstreams with hostname backends only
  std::set<std::string> in_flight_;      // entries (keys) with a lookup under way
  std::function<void()> on_change_;
  std::uint64_t seed_ = 0x5b1e;  // breakers' jitter seeds
  bool stopped_ = false;
};

}  // namespace spillway::upstream

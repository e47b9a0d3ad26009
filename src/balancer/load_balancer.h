#pragma once
// Picking a host for a request. One algorithm per file, all behind `load_balancer::choose_host`.
//
// Each worker owns its own load_balancer instances (built when a config snapshot arrives), so the
// algorithms' own state (round-robin positions, tie-break offsets, random state) needs no locking.
// What is shared between workers is read from the hosts' relaxed atomics (in-flight counts, health).

#include "common/time_source.h"
#include "config/config.h"
#include "upstream/host.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace spillway::balancer {

using upstream::host;

// A source of 64-bit random numbers, injected so that tests can fix the sequence.
using random_source = std::function<std::uint64_t()>;

// A fast non-cryptographic generator (splitmix64) for workers.
random_source make_random_source(std::uint64_t seed);

struct choose_context {
  // Hosts already tried for this request; they are skipped while any other host can serve.
  std::span<host* const> exclude;
  // For consistent_hash: the request's hash key (see README: the client address by default).
  std::uint64_t hash = 0;
};

// The hosts a request may go to right now, after health, backup and panic rules. Built per pick by
// `candidates()`; kept as a plain view so no allocation happens per request.
class host_set {
 public:
  // `clock` is read once per pick while slow start is on; it must outlive the balancers built on it.
  host_set(std::vector<host*> hosts, double panic_threshold_percent,
           config::duration slow_start = config::duration::zero(), const time_source& clock = time_source::real());

  const std::vector<host*>& primary() const { return primary_; }
  const std::vector<host*>& backup() const { return backup_; }
  double panic_threshold() const { return panic_threshold_; }
  config::duration slow_start() const { return slow_start_; }
  const time_source& clock() const { return *clock_; }

 private:
  std::vector<host*> primary_;
  std::vector<host*> backup_;
  double panic_threshold_;
  config::duration slow_start_;
  const time_source* clock_;
};

class load_balancer {
 public:
  explicit load_balancer(host_set hosts)
      : hosts_(std::move(hosts)),
        slow_start_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(hosts_.slow_start()).count()) {}
  virtual ~load_balancer() = default;

  // Returns the host for the next request, or nullptr when no host can take it.
  // Order of preference: available primaries not yet tried; available backups not yet tried;
  // available hosts already tried. In panic mode (fewer than panic_threshold% of primaries
  // available and no backup available) every primary, available or not.
  // Worker thread of this instance only.
  host* choose_host(const choose_context& ctx);

 protected:
  // Picks among `eligible(h)` hosts of `hosts`. Returns nullptr when none is eligible.
  // `eligible` is cheap (a few relaxed loads); implementations call it for every host they consider.
  using eligible_fn = bool (*)(const host* h, const choose_context& ctx);
  virtual host* pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) = 0;

  const host_set& hosts() const { return hosts_; }

  // The host's weight as the algorithms use it, scaled by 100: during slow start it ramps from 10%
  // to 100% of the configured weight over the window after the host came back.
  std::uint64_t weight_of(const host* h) const {
    std::uint64_t w = std::uint64_t{h->weight()} * 100;
    if (slow_start_ns_ == 0) {
      return w;
    }
    auto since = h->available_since();
    if (since == 0 || now_ns_ - since >= slow_start_ns_) {
      return w;
    }
    auto ramp = std::max<std::int64_t>(10, (now_ns_ - since) * 100 / slow_start_ns_);
    return std::max<std::uint64_t>(1, w * static_cast<std::uint64_t>(ramp) / 100);
  }

 private:
  // True when fewer than panic_threshold% of primaries are available and no backup is.
  bool in_panic() const;

  host_set hosts_;
  std::int64_t slow_start_ns_ = 0;
  std::int64_t now_ns_ = 0;  // read once per pick, only when slow start is on
};

// Builds the algorithm named by `policy` for one worker.
std::unique_ptr<load_balancer> make_load_balancer(config::balance_policy policy, host_set hosts, random_source random);

}  // namespace spillway::balancer

#include "balancer/load_balancer.h"

#include "balancer/consistent_hash.h"
#include "balancer/least_request.h"
#include "balancer/random.h"
#include "balancer/round_robin.h"

#include <algorithm>

namespace spillway::balancer {

random_source make_random_source(std::uint64_t seed) {
  return [state = seed]() mutable {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
}

host_set::host_set(std::vector<host*> hosts, double panic_threshold_percent, config::duration slow_start,
                   const time_source& clock)
    : panic_threshold_(panic_threshold_percent), slow_start_(slow_start), clock_(&clock) {
  for (auto* h : hosts) {
    (h->backup() ? backup_ : primary_).push_back(h);
  }
}

namespace {

bool tried(const host* h, const choose_context& ctx) {
  return std::find(ctx.exclude.begin(), ctx.exclude.end(), h) != ctx.exclude.end();
}

bool available_untried(const host* h, const choose_context& ctx) { return h->available() && !tried(h, ctx); }
bool available_any(const host* h, const choose_context&) { return h->available(); }
bool untried(const host* h, const choose_context& ctx) { return !tried(h, ctx); }
bool any(const host*, const choose_context&) { return true; }

}  // namespace

bool load_balancer::in_panic() const {
  const auto& primary = hosts_.primary();
  if (hosts_.panic_threshold() <= 0 || primary.empty()) {
    return false;
  }
  for (const auto* h : hosts_.backup()) {
    if (h->available()) {
      return false;  // backups take over before panic spreads load over sick primaries
    }
  }
  std::size_t up = 0;
  for (const auto* h : primary) {
    up += h->available() ? 1 : 0;
  }
  return static_cast<double>(up) * 100.0 < hosts_.panic_threshold() * static_cast<double>(primary.size());
}

host* load_balancer::choose_host(const choose_context& ctx) {
  if (slow_start_ns_ != 0) {
    now_ns_ = hosts_.clock().steady_ns();
  }
  const auto& primary = hosts_.primary();
  const auto& backup = hosts_.backup();
  // Panic mode (Envoy's): when too few primaries are available, the health signal is more likely
  // wrong than most of the fleet dead, so spread over every primary rather than overload the rest.
  if (in_panic()) {
    if (host* h = pick(primary, untried, ctx)) {
      return h;
    }
    return pick(primary, any, ctx);
  }
  if (host* h = pick(primary, available_untried, ctx)) {
    return h;
  }
  if (host* h = pick(backup, available_untried, ctx)) {
    return h;
  }
  // Every available host was tried already: a retry may go back to one of them.
  if (host* h = pick(primary, available_any, ctx)) {
    return h;
  }
  return pick(backup, available_any, ctx);
}

std::unique_ptr<load_balancer> make_load_balancer(config::balance_policy policy, host_set hosts, random_source random) {
  switch (policy) {
    case config::balance_policy::least_request:
      return std::make_unique<least_request>(std::move(hosts), std::move(random));
    case config::balance_policy::round_robin:
      return std::make_unique<round_robin>(std::move(hosts));
    case config::balance_policy::random:
      return std::make_unique<random_lb>(std::move(hosts), std::move(random));
    case config::balance_policy::consistent_hash:
      return std::make_unique<consistent_hash>(std::move(hosts));
  }
  return nullptr;
}

}  // namespace spillway::balancer

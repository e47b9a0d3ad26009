#include "balancer/round_robin.h"

namespace spillway::balancer {

round_robin::round_robin(host_set hosts) : load_balancer(std::move(hosts)) {
  for (auto* h : this->hosts().primary()) {
    current_[h] = 0;
  }
  for (auto* h : this->hosts().backup()) {
    current_[h] = 0;
  }
}

host* round_robin::pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) {
  // Each eligible host gains its weight; the one with the highest running total wins and pays back
  // the total of the round. Hosts that are out do not gain, so they do not burst when they return.
  host* best = nullptr;
  std::int64_t total = 0;
  std::int64_t* best_current = nullptr;
  for (auto* h : hosts) {
    if (!eligible(h, ctx)) {
      continue;
    }
    auto& cur = current_[h];
    const auto w = static_cast<std::int64_t>(weight_of(h));
    cur += w;
    total += w;
    if (best == nullptr || cur > *best_current) {
      best = h;
      best_current = &cur;
    }
  }
  if (best_current != nullptr) {
    *best_current -= total;
  }
  return best;
}

}  // namespace spillway::balancer

#include "balancer/random.h"

namespace spillway::balancer {

random_lb::random_lb(host_set hosts, random_source random)
    : load_balancer(std::move(hosts)), random_(std::move(random)) {}

host* random_lb::pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) {
  std::uint64_t total = 0;
  for (auto* h : hosts) {
    if (eligible(h, ctx)) {
      total += weight_of(h);
    }
  }
  if (total == 0) {
    return nullptr;
  }
  std::uint64_t point = random_() % total;
  for (auto* h : hosts) {
    if (!eligible(h, ctx)) {
      continue;
    }
    if (point < weight_of(h)) {
      return h;
    }
    point -= weight_of(h);
  }
  return nullptr;
}

}  // namespace spillway::balancer

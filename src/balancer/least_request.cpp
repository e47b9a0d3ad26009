#include "balancer/least_request.h"

namespace spillway::balancer {

bool least_request::less_loaded(const host* a, const host* b) const {
  auto load_a = static_cast<std::uint64_t>(std::max(a->active_requests.load(std::memory_order_relaxed), 0)) + 1;
  auto load_b = static_cast<std::uint64_t>(std::max(b->active_requests.load(std::memory_order_relaxed), 0)) + 1;
  return load_a * weight_of(b) < load_b * weight_of(a);
}

least_request::least_request(host_set hosts, random_source random)
    : load_balancer(std::move(hosts)), random_(std::move(random)) {}

host* least_request::scan(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) {
  // Exact: every eligible host is compared. The scan starts at a rotating offset and keeps the first
  // strictly-best host, so equal hosts take turns instead of the first one taking every tie.
  const std::size_t n = hosts.size();
  const std::size_t start = rotation_++ % n;
  host* best = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    host* h = hosts[(start + i) % n];
    if (!eligible(h, ctx)) {
      continue;
    }
    if (best == nullptr || less_loaded(h, best)) {
      best = h;
    }
  }
  return best;
}

host* least_request::pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) {
  const std::size_t n = hosts.size();
  if (n == 0) {
    return nullptr;
  }
  if (n <= exact_scan_limit) {
    return scan(hosts, eligible, ctx);
  }
  // Power of two choices, without replacement: two distinct hosts drawn at random, the less loaded
  // one wins. A few draws skip ineligible hosts; if they keep failing (most hosts out), fall back to
  // the exact scan so that a lone eligible host is always found.
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::size_t i = random_() % n;
    std::size_t j = random_() % (n - 1);
    if (j >= i) {
      ++j;
    }
    host* a = hosts[i];
    host* b = hosts[j];
    bool ok_a = eligible(a, ctx);
    bool ok_b = eligible(b, ctx);
    if (ok_a && ok_b) {
      return less_loaded(b, a) ? b : a;
    }
    if (ok_a || ok_b) {
      return ok_a ? a : b;
    }
  }
  return scan(hosts, eligible, ctx);
}

}  // namespace spillway::balancer

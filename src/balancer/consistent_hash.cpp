#include "balancer/consistent_hash.h"

#include <algorithm>
#include <string>

namespace spillway::balancer {

std::uint64_t hash64(std::string_view data, std::uint64_t seed) {
  std::uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  // FNV's low bits mix poorly for short keys; a final avalanche spreads points evenly on the ring.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

consistent_hash::ring consistent_hash::build(const std::vector<host*>& hosts) {
  ring r;
  r.hosts = &hosts;
  for (auto* h : hosts) {
    const std::uint32_t n = points_per_weight * h->weight();
    for (std::uint32_t i = 0; i < n; ++i) {
      std::string key = h->address() + "#" + std::to_string(i);
      r.points.emplace_back(hash64(key), h);
    }
  }
  std::sort(r.points.begin(), r.points.end());
  return r;
}

consistent_hash::consistent_hash(host_set hosts) : load_balancer(std::move(hosts)) {
  primary_ = build(this->hosts().primary());
  backup_ = build(this->hosts().backup());
}

host* consistent_hash::pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) {
  const ring& r = (&hosts == &this->hosts().backup()) ? backup_ : primary_;
  if (r.points.empty()) {
    return nullptr;
  }
  auto it = std::lower_bound(r.points.begin(), r.points.end(), std::make_pair(ctx.hash, static_cast<host*>(nullptr)));
  // Walk clockwise to the first eligible host; a full turn means none is eligible.
  for (std::size_t step = 0; step < r.points.size(); ++step, ++it) {
    if (it == r.points.end()) {
      it = r.points.begin();
    }
    if (eligible(it->second, ctx)) {
      return it->second;
    }
  }
  return nullptr;
}

}  // namespace spillway::balancer

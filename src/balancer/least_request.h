#pragma once
// least_request: the host with the fewest in-flight requests relative to its weight.

#include "balancer/load_balancer.h"

namespace spillway::balancer {

class least_request final : public load_balancer {
 public:
  least_request(host_set hosts, random_source random);

  // Above this many eligible-looking hosts, pick by power of two choices instead of a full scan.
  static constexpr std::size_t exact_scan_limit = 16;

 protected:
  host* pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) override;

 private:
  host* scan(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx);
  // True when host `a` is less loaded than `b` for its weight: active_a / weight_a < active_b /
  // weight_b, computed as (active + 1) / weight so that idle hosts still compare by weight. Integer
  // cross-multiplication keeps it exact.
  bool less_loaded(const host* a, const host* b) const;

  random_source random_;
  std::size_t rotation_ = 0;  // start of the next scan, so that ties rotate among equal hosts
};

}  // namespace spillway::balancer

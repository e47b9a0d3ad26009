#pragma once
// round_robin: smooth weighted round robin (as in NGINX): with weights 5,1,1 the order is
// a a b a c a a, not a a a a a b c.

#include "balancer/load_balancer.h"

#include <unordered_map>

namespace spillway::balancer {

class round_robin final : public load_balancer {
 public:
  explicit round_robin(host_set hosts);

 protected:
  host* pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) override;

 private:
  // Current weight per host, kept across picks. Sized once at construction: no allocation per pick.
  std::unordered_map<const host*, std::int64_t> current_;
};

}  // namespace spillway::balancer

#pragma once
// random: a weighted random choice among eligible hosts.

#include "balancer/load_balancer.h"

namespace spillway::balancer {

class random_lb final : public load_balancer {
 public:
  random_lb(host_set hosts, random_source random);

 protected:
  host* pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) override;

 private:
  random_source random_;
};

}  // namespace spillway::balancer

#pragma once
// consistent_hash: a hash ring (Ketama style) with 160 points per unit of weight. A request's hash
// lands on the first point clockwise whose host is eligible, so removing one host only moves the
// keys that were on it.

#include "balancer/load_balancer.h"

#include <utility>
#include <vector>

namespace spillway::balancer {

class consistent_hash final : public load_balancer {
 public:
  explicit consistent_hash(host_set hosts);

  static constexpr std::uint32_t points_per_weight = 160;

 protected:
  host* pick(const std::vector<host*>& hosts, eligible_fn eligible, const choose_context& ctx) override;

 private:
  // One ring per host list (primary, backup), built once: picking only searches it.
  struct ring {
    const std::vector<host*>* hosts = nullptr;
    std::vector<std::pair<std::uint64_t, host*>> points;  // sorted by hash
  };
  static ring build(const std::vector<host*>& hosts);

  ring primary_;
  ring backup_;
};

// 64-bit FNV-1a, used for ring points and request keys.
std::uint64_t hash64(std::string_view data, std::uint64_t seed = 0xcbf29ce484222325ULL);

}  // namespace spillway::balancer

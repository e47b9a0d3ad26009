#include "common/stats.h"

namespace spillway::stats {

namespace {
std::atomic<unsigned> workers{1};
}

void set_worker_count(unsigned n) { workers.store(n == 0 ? 1 : n, std::memory_order_relaxed); }

unsigned worker_count() { return workers.load(std::memory_order_relaxed); }

double histogram_totals::quantile(double q) const {
  const auto n = total();
  if (n == 0) {
    return 0;
  }
  const double rank = q * static_cast<double>(n);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (static_cast<double>(below + counts[i]) >= rank && counts[i] > 0) {
      if (i == latency_bounds_us.size()) {
        return static_cast<double>(latency_bounds_us.back()) / 1e6;
      }
      const double lo = i == 0 ? 0.0 : static_cast<double>(latency_bounds_us[i - 1]);
      const double hi = static_cast<double>(latency_bounds_us[i]);
      const double within = (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
      return (lo + (hi - lo) * within) / 1e6;
    }
    below += counts[i];
  }
  return static_cast<double>(latency_bounds_us.back()) / 1e6;
}

}  // namespace spillway::stats

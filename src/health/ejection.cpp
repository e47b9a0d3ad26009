#include "health/ejection.h"

#include <algorithm>

namespace spillway::health {

std::size_t max_ejected(std::size_t hosts, unsigned max_ejection_percent) {
  return hosts * std::min(max_ejection_percent, 100U) / 100;
}

std::optional<clock::duration> plan_ejection(ejection_record& rec, clock::time_point now,
                                             const config::outlier_detection& cfg, std::size_t hosts,
                                             std::size_t ejected_now) {
  if (rec.ejected || ejected_now + 1 > max_ejected(hosts, cfg.max_ejection_percent)) {
    return std::nullopt;
  }
  if (rec.multiplier > 0 && rec.returned != clock::time_point{} && cfg.ejection_time.count() > 0) {
    auto good_periods = static_cast<unsigned>((now - rec.returned) / cfg.ejection_time);
    rec.multiplier -= std::min(rec.multiplier, good_periods);
  }
  rec.multiplier = std::min(rec.multiplier + 1, max_ejection_multiplier);
  rec.ejected = true;
  return std::chrono::duration_cast<clock::duration>(cfg.ejection_time) * rec.multiplier;
}

void end_ejection(ejection_record& rec, clock::time_point now) {
  rec.ejected = false;
  rec.returned = now;
}

}  // namespace spillway::health

#pragma once
// The health of one host as seen by active checks: a pure state machine, no I/O, no clock.

#include <cstdint>

namespace spillway::health {

class health_state {
 public:
  // `healthy_threshold` consecutive passes mark a down host up; `unhealthy_threshold` consecutive
  // failures mark an up host down. Both are at least 1.
  health_state(std::uint32_t healthy_threshold, std::uint32_t unhealthy_threshold, bool initially_healthy)
      : healthy_threshold_(healthy_threshold < 1 ? 1 : healthy_threshold),
        unhealthy_threshold_(unhealthy_threshold < 1 ? 1 : unhealthy_threshold),
        healthy_(initially_healthy) {}

  // Records one check result. Returns true when this result flipped the state.
  bool observe(bool ok) {
    if (ok) {
      failures_ = 0;
      if (!healthy_ && ++passes_ >= healthy_threshold_) {
        healthy_ = true;
        passes_ = 0;
        return true;
      }
      return false;
    }
    passes_ = 0;
    if (healthy_ && ++failures_ >= unhealthy_threshold_) {
      healthy_ = false;
      failures_ = 0;
      return true;
    }
    return false;
  }

  bool healthy() const { return healthy_; }

 private:
  std::uint32_t healthy_threshold_;
  std::uint32_t unhealthy_threshold_;
  std::uint32_t passes_ = 0;
  std::uint32_t failures_ = 0;
  bool healthy_;
};

}  // namespace spillway::health

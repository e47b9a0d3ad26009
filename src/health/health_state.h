#pragma once
// The health of one host as seen by active checks: a pure state machine, no I/O, no clock.

#include <cstdint>

namespace spillway::health {

class health_state {
 public:
  enum class start { healthy, unhealthy, unknown };

  // `healthy_threshold` consecutive passes mark a down host up; `unhealthy_threshold` consecutive
  // failures mark an up host down (both at least 1). From `unknown` (a host never checked), the
  // first result decides at once: a new host serves after its first pass, and a dead one is
  // never offered traffic while thresholds count up.
  health_state(std::uint32_t healthy_threshold, std::uint32_t unhealthy_threshold, start initial)
      : healthy_threshold_(healthy_threshold < 1 ? 1 : healthy_threshold),
        unhealthy_threshold_(unhealthy_threshold < 1 ? 1 : unhealthy_threshold),
        healthy_(initial == start::healthy),
        known_(initial != start::unknown) {}

  // Records one check result. Returns true when this result changed healthy() (from unknown, only
  // a pass changes it, since unknown already counts as not healthy).
  bool observe(bool ok) {
    if (!known_) {
      known_ = true;
      healthy_ = ok;
      return ok;
    }
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
  // False until the first result arrived for a host that started unknown.
  bool known() const { return known_; }

 private:
  std::uint32_t healthy_threshold_;
  std::uint32_t unhealthy_threshold_;
  std::uint32_t passes_ = 0;
  std::uint32_t failures_ = 0;
  bool healthy_;
  bool known_;
};

}  // namespace spillway::health

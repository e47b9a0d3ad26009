#pragma once
// What workers tell the control thread about hosts. Workers only call these; implementations post
// the work to the control thread and return at once.

#include "config/config.h"
#include "upstream/host.h"

namespace spillway::upstream {

class host_events {
 public:
  virtual ~host_events() = default;

  // A host's consecutive failures just reached the upstream's outlier threshold. Any thread.
  virtual void consecutive_failures_reached(const host_ptr& h, const config::outlier_detection& cfg) = 0;

  // A host's breaker just opened; it may go half-open at `until`. Any thread.
  virtual void breaker_opened(const host_ptr& h, breaker::clock::time_point until) = 0;
};

}  // namespace spillway::upstream

#pragma once
// Passive outlier detection's decisions, as pure functions of time: whether a host that just hit
// its consecutive-failure threshold is ejected, and for how long. No I/O, clock injected.

#include "config/config.h"

#include <chrono>
#include <cstddef>
#include <optional>

namespace spillway::health {

using clock = std::chrono::steady_clock;

// Per host, kept by the control thread across ejections.
struct ejection_record {
  unsigned multiplier = 0;       // how many ejection_times the next ejection lasts (before +1)
  clock::time_point returned{};  // when the last ejection ended
  bool ejected = false;
};

// Ejections grow with each repeat, up to this many times the base ejection_time.
constexpr unsigned max_ejection_multiplier = 10;

// The most hosts of an upstream that may be ejected at once: max_ejection_percent of `hosts`,
// rounded down. With the default 50%: 1 host -> 0 (a lone backend is never ejected), 2 -> 1, 3 -> 1.
std::size_t max_ejected(std::size_t hosts, unsigned max_ejection_percent);

// Decides on an ejection at `now` for a host whose record is `rec`, in an upstream of `hosts`
// hosts of which `ejected_now` are ejected. Returns how long to eject it (and updates `rec`), or
// nullopt when max_ejection_percent forbids it (rec unchanged).
//
// The multiplier decays by one for every full ejection_time the host stayed back without
// failing, so a host that failed once long ago starts again from one ejection_time.
std::optional<clock::duration> plan_ejection(ejection_record& rec, clock::time_point now,
                                             const config::outlier_detection& cfg, std::size_t hosts,
                                             std::size_t ejected_now);

// Marks the end of an ejection at `now`.
void end_ejection(ejection_record& rec, clock::time_point now);

}  // namespace spillway::health

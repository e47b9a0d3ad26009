#pragma once
// The body of GET /status (SPEC section 3): upstreams and their backends, listeners, the recent
// transitions and the running config, as one JSON object followed by a newline.

#include "admin/state.h"
#include "breaker/circuit_breaker.h"

#include <string>

namespace spillway::admin {

// Renders `s`. `now` dates the breakers' windows and how long an open breaker has left. Pure apart
// from reading the shared counters (relaxed atomics) and the journal (under its lock); control
// thread, which alone writes the hosts' details.
std::string status_json(const state& s, breaker::clock::time_point now = breaker::clock::now());

}  // namespace spillway::admin

#pragma once
// The body of GET /metrics (without the admin API's own counters, see admin_server): backends,
// upstreams, breakers, listeners, routes and traffic histograms, then process-wide gauges. Every
// name starts with spillway_; dashboards and alerts depend on the names and labels as they are.

#include "admin/state.h"

#include <string>

namespace spillway::admin {

// Renders `s` in the Prometheus text format. Reads the shared counters (relaxed atomics, summed
// over the worker slots); control thread.
std::string metrics_text(const state& s);

}  // namespace spillway::admin

#pragma once
// Reporting the outcome of one call (an HTTP try, or a TCP connection) on a host: the breaker's
// verdict and outlier detection's count, and telling the control thread what it must act on.
// Shared by the HTTP and TCP sessions. Worker thread.

#include "breaker/circuit_breaker.h"
#include "proxy/worker.h"
#include "upstream/host.h"

namespace spillway::proxy {

// Gives the breaker of `h` its verdict on the call admitted with `token` (and clears `token`, so a
// call is judged once); a breaker that opens is handed to the control thread's half-open timer.
inline void judge(worker& w, upstream::host& h, breaker::circuit_breaker::token& token, breaker::outcome o) {
  if (!token || !h.circuit) {
    return;
  }
  const auto now = breaker::clock::now();
  auto t = h.circuit->on_result(token, o, now);
  token = {};
  if (t) {
    h.apply(*t);
    if (t->to == breaker::state::open && w.events() != nullptr) {
      w.events()->breaker_opened(h.shared_from_this(), now + t->open_for);
    }
  }
}

// Counts one outcome for outlier detection. Only the report that reaches the threshold exactly goes
// to the control thread: one message per run of failures, however many workers see them.
// `failed_request`: the client got a failure that is not an outlier one (a status the breaker
// counts), for the degradation report's failure run.
inline void record_outlier(worker& w, upstream::host& h, const config::outlier_detection& cfg, bool failure,
                           bool failed_request = false) {
  // Counted even with outlier detection off: the run of failures also dates degradation reports.
  const auto run = h.record_outcome(failure, failed_request);
  if (cfg.enabled && run == cfg.consecutive_failures && w.events() != nullptr) {
    w.events()->consecutive_failures_reached(h.shared_from_this(), cfg);
  }
}

}  // namespace spillway::proxy

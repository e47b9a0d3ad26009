#pragma once
// Whether a failed try may be followed by another: pure rules over the upstream's `retries`
// config, the request, and how the try ended. No I/O, no clock: the caller says whether the
// request's deadline has passed and whether its body can be sent again, and is asked for the
// retry budget only when everything else allows a retry. Shared by every front end.

#include "config/config.h"

#include <cstdint>

namespace spillway::proxy {

// How one try on a host ended, as far as retrying is concerned.
enum class try_end : std::uint8_t {
  connect_failure,   // no connection: nothing reached the backend
  stale_connection,  // a pooled connection the backend had closed: nothing was processed
  reset,             // the backend closed or reset before a whole response head
  protocol_error,    // the backend sent something malformed
  timeout,           // the try's deadline passed
  status,            // a whole response head with `status`
  grpc_status,       // a gRPC answer whose grpc-status (`status`) came with its head
};

// What the retry policy says about a failed try.
enum class retry_verdict : std::uint8_t {
  no,         // answer the client with this failure
  same_host,  // send again to the same host on a new connection (no retry used up, no failure)
  retry,      // send to another host (a retry used up)
};

class retry_policy {
 public:
  // `idempotent`: the request's method may be sent twice (RFC 9110 9.2.2).
  retry_policy(const config::retries& cfg, bool idempotent)
      : cfg_(&cfg), idempotent_(idempotent), retries_left_(cfg.attempts) {}

  // Decides after a try that ended with `end` (and `status` for try_end::status):
  // - `can_resend`: the request can be sent again (no body read yet, or all of it kept);
  // - `before_deadline`: the request's own deadline has not passed;
  // - `budget_ok()` is called only for a retry the budget governs (all but a failed connect: that
  //   adds no load on any backend, and refusing it would turn one dead host into client errors),
  //   once every other condition holds; it returns false when the budget is spent.
  // A `retry` verdict uses up one of `retries.attempts`. Any thread (one request's own state).
  template <class BudgetOk>
  retry_verdict decide(try_end end, int status, bool can_resend, bool before_deadline, BudgetOk&& budget_ok) {
    if (end == try_end::stale_connection) {
      return can_resend ? retry_verdict::same_host : retry_verdict::no;
    }
    if (!listed(end, status) || retries_left_ == 0 || !can_resend || !before_deadline) {
      return retry_verdict::no;
    }
    if (end != try_end::connect_failure && !budget_ok()) {
      return retry_verdict::no;
    }
    --retries_left_;
    return retry_verdict::retry;
  }

  // True when `end` (with `status`) is a condition `retries.on` lists for this request: a failed
  // connect for any method; the others only for idempotent methods, since the backend may have
  // acted on the request. Any thread.
  bool listed(try_end end, int status) const;

  std::uint32_t retries_left() const { return retries_left_; }
  // The request is a gRPC call: the grpc_* conditions of `retries.on` apply to it.
  void set_grpc(bool grpc) { grpc_ = grpc; }

 private:
  const config::retries* cfg_;
  bool idempotent_;
  bool grpc_ = false;
  std::uint32_t retries_left_;
};

// RFC 9110 9.2.2: the methods whose repetition has the same effect as one request.
bool is_idempotent(std::string_view method);

}  // namespace spillway::proxy

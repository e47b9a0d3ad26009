#include "proxy/retry_policy.h"

#include <gtest/gtest.h>

namespace spillway::proxy {
namespace {

// A budget that says `ok` and counts how often it was asked.
struct budget {
  bool ok = true;
  int asked = 0;
  bool operator()() {
    ++asked;
    return ok;
  }
};

// Decides with everything else allowing a retry.
retry_verdict decide(retry_policy& p, try_end end, budget& b, int status = 0) {
  return p.decide(end, status, true, true, [&] { return b(); });
}

TEST(retry_policy, connect_failure_retried_for_any_method_without_the_budget) {
  config::retries cfg;
  for (bool idempotent : {true, false}) {
    retry_policy p(cfg, idempotent);
    budget b;
    b.ok = false;  // a spent budget does not stop a retry of a failed connect
    EXPECT_EQ(decide(p, try_end::connect_failure, b), retry_verdict::retry);
    EXPECT_EQ(b.asked, 0);
    EXPECT_EQ(p.retries_left(), cfg.attempts - 1);
  }
}

TEST(retry_policy, connect_failure_not_listed) {
  config::retries cfg;
  cfg.on_connect_failure = false;
  retry_policy p(cfg, true);
  budget b;
  EXPECT_FALSE(p.listed(try_end::connect_failure, 0));
  EXPECT_EQ(decide(p, try_end::connect_failure, b), retry_verdict::no);
  EXPECT_EQ(p.retries_left(), cfg.attempts);
}

TEST(retry_policy, reset_timeout_status_only_for_idempotent_methods) {
  config::retries cfg;
  cfg.on_timeout = true;
  cfg.on_status = {503};
  for (auto [end, status] :
       {std::pair{try_end::reset, 0}, std::pair{try_end::timeout, 0}, std::pair{try_end::status, 503}}) {
    retry_policy post(cfg, false);
    budget b;
    EXPECT_FALSE(post.listed(end, status));
    EXPECT_EQ(decide(post, end, b, status), retry_verdict::no);
    EXPECT_EQ(b.asked, 0);

    retry_policy get(cfg, true);
    EXPECT_TRUE(get.listed(end, status));
    EXPECT_EQ(decide(get, end, b, status), retry_verdict::retry);
    EXPECT_EQ(b.asked, 1);  // these go through the budget
    EXPECT_EQ(get.retries_left(), cfg.attempts - 1);
  }
}

TEST(retry_policy, only_conditions_listed_in_retries_on) {
  config::retries cfg;
  cfg.on_reset = false;
  cfg.on_timeout = false;
  cfg.on_status = {502, 504};
  retry_policy p(cfg, true);
  budget b;
  EXPECT_EQ(decide(p, try_end::reset, b), retry_verdict::no);
  EXPECT_EQ(decide(p, try_end::timeout, b), retry_verdict::no);
  EXPECT_EQ(decide(p, try_end::status, b, 503), retry_verdict::no);
  EXPECT_EQ(decide(p, try_end::status, b, 500), retry_verdict::no);
  EXPECT_EQ(b.asked, 0);
  EXPECT_EQ(p.retries_left(), cfg.attempts);
  EXPECT_EQ(decide(p, try_end::status, b, 504), retry_verdict::retry);

  config::retries defaults;  // on: connect-failure, reset, 502, 503, 504; no timeout
  retry_policy d(defaults, true);
  EXPECT_TRUE(d.listed(try_end::reset, 0));
  EXPECT_FALSE(d.listed(try_end::timeout, 0));
  EXPECT_TRUE(d.listed(try_end::status, 502));
  EXPECT_TRUE(d.listed(try_end::status, 503));
  EXPECT_TRUE(d.listed(try_end::status, 504));
  EXPECT_FALSE(d.listed(try_end::status, 500));
  EXPECT_FALSE(d.listed(try_end::status, 200));
}

TEST(retry_policy, grpc_conditions_are_opt_in_and_for_grpc_calls_only) {
  config::retries cfg;
  retry_policy plain(cfg, false);  // a POST
  retry_policy grpc(cfg, false);
  grpc.set_grpc(true);
  // Not listed: a gRPC call cut off, or answered UNAVAILABLE, is not retried.
  EXPECT_FALSE(grpc.listed(try_end::reset, 0));
  EXPECT_FALSE(grpc.listed(try_end::grpc_status, 14));
  cfg.on_grpc_unavailable = true;
  EXPECT_TRUE(grpc.listed(try_end::reset, 0));
  EXPECT_TRUE(grpc.listed(try_end::grpc_status, 14));
  EXPECT_FALSE(grpc.listed(try_end::grpc_status, 8));
  EXPECT_FALSE(grpc.listed(try_end::grpc_status, 13));
  EXPECT_FALSE(plain.listed(try_end::reset, 0));  // a POST that is not gRPC: still never
  cfg.on_grpc_resource_exhausted = true;
  EXPECT_TRUE(grpc.listed(try_end::grpc_status, 8));
}

TEST(retry_policy, protocol_error_never) {
  config::retries cfg;
  cfg.on_reset = true;
  cfg.on_timeout = true;
  retry_policy p(cfg, true);
  budget b;
  EXPECT_FALSE(p.listed(try_end::protocol_error, 0));
  EXPECT_EQ(decide(p, try_end::protocol_error, b), retry_verdict::no);
  EXPECT_EQ(b.asked, 0);
}

TEST(retry_policy, attempts_used_up) {
  config::retries cfg;
  cfg.attempts = 3;
  retry_policy p(cfg, true);
  budget b;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(decide(p, i % 2 == 0 ? try_end::connect_failure : try_end::reset, b), retry_verdict::retry) << i;
  }
  EXPECT_EQ(p.retries_left(), 0u);
  const int asked = b.asked;
  EXPECT_EQ(decide(p, try_end::connect_failure, b), retry_verdict::no);
  EXPECT_EQ(decide(p, try_end::reset, b), retry_verdict::no);
  EXPECT_EQ(b.asked, asked);  // nothing left to ask the budget for

  config::retries off;
  off.attempts = 0;
  retry_policy none(off, true);
  EXPECT_EQ(decide(none, try_end::connect_failure, b), retry_verdict::no);
}

TEST(retry_policy, cannot_resend_or_past_deadline) {
  config::retries cfg;
  for (auto end : {try_end::connect_failure, try_end::reset}) {
    retry_policy p(cfg, true);
    budget b;
    EXPECT_EQ(p.decide(end, 0, false, true, [&] { return b(); }), retry_verdict::no);
    EXPECT_EQ(p.decide(end, 0, true, false, [&] { return b(); }), retry_verdict::no);
    EXPECT_EQ(b.asked, 0);
    EXPECT_EQ(p.retries_left(), cfg.attempts);
  }
}

TEST(retry_policy, spent_budget_refuses_without_using_an_attempt) {
  config::retries cfg;
  retry_policy p(cfg, true);
  budget b;
  b.ok = false;
  EXPECT_EQ(decide(p, try_end::reset, b), retry_verdict::no);
  EXPECT_EQ(decide(p, try_end::status, b, 502), retry_verdict::no);
  EXPECT_EQ(b.asked, 2);
  EXPECT_EQ(p.retries_left(), cfg.attempts);
  b.ok = true;
  EXPECT_EQ(decide(p, try_end::reset, b), retry_verdict::retry);
}

TEST(retry_policy, stale_connection_same_host_without_an_attempt) {
  config::retries cfg;
  cfg.attempts = 1;
  cfg.on_reset = false;
  retry_policy p(cfg, false);  // even a POST: the backend processed nothing
  budget b;
  b.ok = false;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(decide(p, try_end::stale_connection, b), retry_verdict::same_host);
  }
  EXPECT_EQ(p.retries_left(), 1u);
  EXPECT_EQ(b.asked, 0);
  EXPECT_EQ(p.decide(try_end::stale_connection, 0, false, true, [&] { return b(); }), retry_verdict::no);

  config::retries off;
  off.attempts = 0;
  retry_policy none(off, true);
  EXPECT_EQ(decide(none, try_end::stale_connection, b), retry_verdict::same_host);
}

TEST(retry_policy, is_idempotent_per_rfc9110) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    EXPECT_TRUE(is_idempotent(m)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get", "Put", "", "PROPFIND"}) {
    EXPECT_FALSE(is_idempotent(m)) << m;
  }
}

}  // namespace
}  // namespace spillway::proxy

// The GCRA tables (src/ratelimit/limiter.cpp): time is passed in, so nothing here sleeps.

#include "ratelimit/limiter.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace spillway::ratelimit {
namespace {

constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t start = 1'000'000 * ms;  // any steady time

params rate(std::int64_t interval_ns, std::uint64_t burst, std::uint64_t max_keys = 1000) {
  return {interval_ns, burst, max_keys};
}

TEST(ratelimit_limiter, a_burst_at_once_then_one_per_interval) {
  limiter l(rate(100 * ms, 3));  // 10/s, burst 3
  for (std::uint64_t left : {2u, 1u, 0u}) {
    auto v = l.take("k", start);
    EXPECT_TRUE(v.admitted);
    EXPECT_EQ(v.remaining, left);
  }
  auto v = l.take("k", start);
  EXPECT_FALSE(v.admitted);
  EXPECT_EQ(v.wait_ns, 100 * ms);   // one interval until the next
  EXPECT_EQ(v.reset_ns, 300 * ms);  // three until the whole burst
  EXPECT_FALSE(l.take("k", start + 99 * ms).admitted);
  EXPECT_TRUE(l.take("k", start + 100 * ms).admitted);
  EXPECT_FALSE(l.take("k", start + 150 * ms).admitted);
  // After a long pause the whole burst is back, not more.
  int admitted = 0;
  for (int i = 0; i < 10; ++i) {
    admitted += l.take("k", start + 10'000 * ms).admitted ? 1 : 0;
  }
  EXPECT_EQ(admitted, 3);
}

TEST(ratelimit_limiter, the_long_run_rate_is_the_configured_one) {
  limiter l(rate(10 * ms, 5));  // 100/s
  int admitted = 0;
  for (std::int64_t t = 0; t < 10'000 * ms; t += ms) {  // 1000 requests a second for 10 s
    admitted += l.take("k", start + t).admitted ? 1 : 0;
  }
  EXPECT_EQ(admitted, 1000 + 5 - 1);  // 100/s for 10 s, the burst first (the last instant's token is not due)
}

TEST(ratelimit_limiter, keys_have_budgets_of_their_own) {
  limiter l(rate(1000 * ms, 1));
  EXPECT_TRUE(l.take("a", start).admitted);
  EXPECT_FALSE(l.take("a", start).admitted);
  EXPECT_TRUE(l.take("b", start).admitted);
  EXPECT_EQ(l.keys(), 2u);
}

TEST(ratelimit_limiter, a_limited_request_costs_nothing) {
  limiter l(rate(100 * ms, 1));
  EXPECT_TRUE(l.take("k", start).admitted);
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(l.take("k", start + 50 * ms).admitted);
  }
  EXPECT_TRUE(l.take("k", start + 100 * ms).admitted);  // hammering did not push the next slot back
}

TEST(ratelimit_limiter, a_full_table_forgets_idle_keys_first_and_counts_evictions_of_busy_ones) {
  // 16 shards of one key each.
  limiter l(rate(1000 * ms, 1, 16));
  for (int i = 0; i < 200; ++i) {
    l.take("idle" + std::to_string(i), start);
  }
  EXPECT_LE(l.keys(), 16u);
  const auto evicted_while_busy = l.evictions();
  EXPECT_GT(evicted_while_busy, 0u);  // all were in use: each new key pushed one out
  // Two seconds later every key is idle again (its budget is full): room is made by forgetting them.
  for (int i = 0; i < 200; ++i) {
    l.take("later" + std::to_string(i), start + 2000 * ms + i);
  }
  EXPECT_LE(l.keys(), 16u);
  EXPECT_LT(l.evictions() - evicted_while_busy, 200u);
}

TEST(ratelimit_limiter, a_huge_burst_at_a_slow_rate_does_not_overflow) {
  limiter l(rate(3'600'000 * ms, 1'000'000'000));  // 1/h, a burst of 10^9
  auto v = l.take("k", start);
  EXPECT_TRUE(v.admitted);
  EXPECT_GT(v.remaining, 0u);
}

TEST(ratelimit_limiter, workers_taking_at_once_admit_exactly_the_budget) {
  limiter l(rate(1000 * ms, 1000));  // a burst of 1000, nothing refills meanwhile
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        admitted += l.take("k", start).admitted ? 1 : 0;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(admitted.load(), 1000);
}

}  // namespace
}  // namespace spillway::ratelimit

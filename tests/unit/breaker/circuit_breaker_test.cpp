#include "breaker/circuit_breaker.h"

#include <gtest/gtest.h>

#include <vector>

namespace spillway::breaker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

config::circuit_breaker cfg() {
  config::circuit_breaker c;
  c.failure_rate = 50;
  c.slow_call_rate = 100;
  c.slow_call_duration = seconds(2);
  c.window = seconds(10);
  c.minimum_requests = 10;
  c.open_duration = seconds(5);
  c.half_open_requests = 3;
  return c;
}

constexpr outcome ok{false, false};
constexpr outcome fail{true, false};
constexpr outcome slow{false, true};

struct fixture {
  circuit_breaker cb{cfg(), 42};
  clock::time_point now = clock::time_point{} + seconds(1000);

  std::optional<transition> call(outcome o) {
    auto t = cb.try_acquire(now);
    EXPECT_TRUE(t);
    return cb.on_result(t, o, now);
  }
};

TEST(circuit_breaker, stays_closed_below_minimum_requests) {
  fixture f;
  for (int i = 0; i < 9; ++i) {
    EXPECT_FALSE(f.call(fail));
  }
  EXPECT_EQ(f.cb.current(), state::closed);
}

TEST(circuit_breaker, opens_at_failure_rate_once_minimum_reached) {
  fixture f;
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(f.call(ok));
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(f.call(fail));
  }
  auto t = f.call(fail);  // 10 calls, 5 failures = 50%
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, state::closed);
  EXPECT_EQ(t->to, state::open);
  EXPECT_EQ(t->window.calls, 10u);
  EXPECT_DOUBLE_EQ(t->window.failure_rate, 50.0);
  EXPECT_EQ(f.cb.current(), state::open);
  EXPECT_FALSE(f.cb.try_acquire(f.now));
}

TEST(circuit_breaker, opens_on_slow_call_rate) {
  fixture f;
  for (int i = 0; i < 9; ++i) {
    EXPECT_FALSE(f.call(slow));
  }
  auto t = f.call(slow);
  ASSERT_TRUE(t);
  EXPECT_DOUBLE_EQ(t->window.slow_rate, 100.0);
}

TEST(circuit_breaker, old_calls_leave_the_window) {
  fixture f;
  for (int i = 0; i < 9; ++i) {
    f.call(fail);
  }
  f.now += seconds(11);  // all of those are out of the 10 s window now
  for (int i = 0; i < 9; ++i) {
    EXPECT_FALSE(f.call(ok));
  }
  EXPECT_FALSE(f.call(fail));  // 10 calls in window, 1 failure
  EXPECT_EQ(f.cb.current(), state::closed);
  EXPECT_NEAR(f.cb.window(f.now).failure_rate, 10.0, 0.01);
}

TEST(circuit_breaker, open_then_half_open_after_open_duration_with_jitter) {
  fixture f;
  for (int i = 0; i < 10; ++i) {
    f.call(fail);
  }
  ASSERT_EQ(f.cb.current(), state::open);
  auto until = f.cb.open_until();
  EXPECT_GE(until - f.now, milliseconds(4500));
  EXPECT_LE(until - f.now, milliseconds(5500));
  EXPECT_FALSE(f.cb.poll(until - milliseconds(1)));
  auto t = f.cb.poll(until);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, state::open);
  EXPECT_EQ(t->to, state::half_open);
}

TEST(circuit_breaker, half_open_admits_exactly_the_trials_then_closes) {
  fixture f;
  for (int i = 0; i < 10; ++i) {
    f.call(fail);
  }
  f.now = f.cb.open_until();
  f.cb.poll(f.now);
  std::vector<circuit_breaker::token> trials;
  for (int i = 0; i < 3; ++i) {
    trials.push_back(f.cb.try_acquire(f.now));
    EXPECT_TRUE(trials.back());
    EXPECT_TRUE(trials.back().trial);
  }
  EXPECT_FALSE(f.cb.try_acquire(f.now));  // never more than 3 at once
  EXPECT_FALSE(f.cb.on_result(trials[0], ok, f.now));
  EXPECT_FALSE(f.cb.on_result(trials[1], ok, f.now));
  EXPECT_FALSE(f.cb.try_acquire(f.now));  // exactly 3 in all, not 3 at a time
  auto t = f.cb.on_result(trials[2], ok, f.now);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, state::closed);
  EXPECT_EQ(f.cb.window(f.now).calls, 0u);  // a fresh window
}

TEST(circuit_breaker, failed_trial_reopens_for_longer) {
  fixture f;
  for (int i = 0; i < 10; ++i) {
    f.call(fail);
  }
  std::vector<clock::duration> open_times;
  for (int trip = 0; trip < 6; ++trip) {
    open_times.push_back(f.cb.open_until() - f.now);
    f.now = f.cb.open_until();
    ASSERT_TRUE(f.cb.poll(f.now));
    auto t = f.cb.try_acquire(f.now);
    auto tr = f.cb.on_result(t, fail, f.now);
    ASSERT_TRUE(tr);
    EXPECT_EQ(tr->from, state::half_open);
    EXPECT_EQ(tr->to, state::open);
  }
  // 5 s x 1, 2, 4, 8, then capped at 10 (each +-10%)
  const double expected[] = {5, 10, 20, 40, 50, 50};
  for (std::size_t i = 0; i < open_times.size(); ++i) {
    double secs = std::chrono::duration<double>(open_times[i]).count();
    EXPECT_NEAR(secs, expected[i], expected[i] * 0.1 + 0.001) << "trip " << i;
  }
}

TEST(circuit_breaker, released_trial_slot_can_be_used_again) {
  fixture f;
  for (int i = 0; i < 10; ++i) {
    f.call(fail);
  }
  f.now = f.cb.open_until();
  f.cb.poll(f.now);
  auto a = f.cb.try_acquire(f.now);
  auto b = f.cb.try_acquire(f.now);
  auto c = f.cb.try_acquire(f.now);
  EXPECT_FALSE(f.cb.try_acquire(f.now));
  f.cb.release(c);  // its client went away: no verdict
  EXPECT_TRUE(f.cb.try_acquire(f.now));
  (void)a;
  (void)b;
}

TEST(circuit_breaker, stale_results_are_ignored) {
  fixture f;
  auto before = f.cb.try_acquire(f.now);  // admitted while closed
  for (int i = 0; i < 10; ++i) {
    f.call(fail);
  }
  ASSERT_EQ(f.cb.current(), state::open);
  f.now = f.cb.open_until();
  f.cb.poll(f.now);
  // a slow old call finishing now must not count as a half-open trial, nor reopen it
  EXPECT_FALSE(f.cb.on_result(before, fail, f.now));
  EXPECT_EQ(f.cb.current(), state::half_open);
  auto trial = f.cb.try_acquire(f.now);
  f.cb.on_result(trial, ok, f.now);
  // and a trial result after the breaker moved on is ignored too
  auto t2 = f.cb.try_acquire(f.now);
  auto t3 = f.cb.try_acquire(f.now);
  f.cb.on_result(t2, fail, f.now);  // reopens
  EXPECT_FALSE(f.cb.on_result(t3, ok, f.now));
  EXPECT_EQ(f.cb.current(), state::open);
}

TEST(circuit_breaker, a_close_resets_the_growth) {
  fixture f;
  for (int i = 0; i < 10; ++i) {
    f.call(fail);
  }
  f.now = f.cb.open_until();
  f.cb.poll(f.now);
  for (int i = 0; i < 3; ++i) {
    auto t = f.cb.try_acquire(f.now);
    f.cb.on_result(t, ok, f.now);
  }
  ASSERT_EQ(f.cb.current(), state::closed);
  for (int i = 0; i < 10; ++i) {
    f.call(fail);
  }
  auto secs = std::chrono::duration<double>(f.cb.open_until() - f.now).count();
  EXPECT_NEAR(secs, 5, 0.51);
}

}  // namespace
}  // namespace spillway::breaker

// The breaker as Spillway shares it: several workers acquire and report at once while the control
// thread's timer polls it. These tests assert what holds whatever the interleaving (never timings);
// they are there so that the TSan pass of scripts/test.sh sees every shared access of the breaker.

#include "breaker/circuit_breaker.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <thread>
#include <vector>

namespace spillway::breaker {
namespace {

using std::chrono::seconds;

TEST(CircuitBreakerThreads, EveryTransitionIsReportedOnceAndHalfOpenAdmitsItsTrialsOnly) {
  config::circuit_breaker c;
  c.failure_rate = 50;
  c.slow_call_rate = 100;
  c.window = seconds(10);
  c.minimum_requests = 10;
  c.open_duration = seconds(1);
  c.half_open_requests = 2;
  circuit_breaker cb(c, 7);

  // A fake clock the poller moves on: every poll is past any open duration (jitter is +-10%).
  std::atomic<std::int64_t> now_s{1000};
  auto now = [&] { return clock::time_point{} + seconds(now_s.load(std::memory_order_relaxed)); };

  // Workers call until the poller is done, which polls once every `calls_per_poll` calls: many
  // trips and recoveries, whatever the scheduling. `max_calls` bounds a worker if the poller stalls.
  constexpr int polls = 300;
  constexpr int workers = 4;
  constexpr std::uint64_t calls_per_poll = 40;
  constexpr int max_calls = 200000;
  // Trials admitted per generation (indexed by it): a transition bumps the generation, and there
  // are at most a few per poll, so 4 * polls generations cannot be exceeded.
  std::vector<std::atomic<std::uint32_t>> trials_of(4 * polls + 16);
  std::atomic<bool> generation_out_of_range{false};
  // Transitions by kind: closed->open, open->half_open, half_open->closed, half_open->open.
  std::array<std::atomic<std::uint64_t>, 4> seen{};
  auto count = [&](const std::optional<transition>& t) {
    if (!t) {
      return;
    }
    std::size_t kind = 0;
    if (t->from == state::open) {
      kind = 1;
    } else if (t->from == state::half_open) {
      kind = t->to == state::closed ? 2 : 3;
    }
    seen[kind].fetch_add(1, std::memory_order_relaxed);
  };

  std::vector<std::thread> threads;
  std::atomic<int> running{workers};
  std::atomic<bool> polling{true};
  std::atomic<std::uint64_t> calls{0};
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < max_calls && polling.load(std::memory_order_relaxed); ++i) {
        calls.fetch_add(1, std::memory_order_relaxed);
        auto t = cb.try_acquire(now());
        if (!t) {
          continue;
        }
        if (t.trial) {
          if (t.generation >= trials_of.size()) {
            generation_out_of_range.store(true);
          } else {
            trials_of[t.generation].fetch_add(1, std::memory_order_relaxed);
          }
        }
        // Failures in bursts, so that it opens, and successes in bursts, so that it closes again.
        const bool failure = ((i / 50) + w) % 2 == 0;
        count(cb.on_result(t, outcome{failure, false}, now()));
      }
      running.fetch_sub(1);
    });
  }
  threads.emplace_back([&] {
    for (int p = 0; p < polls && running.load() > 0; ++p) {
      const auto until = calls.load(std::memory_order_relaxed) + calls_per_poll;
      while (calls.load(std::memory_order_relaxed) < until && running.load() > 0) {
        std::this_thread::yield();
      }
      now_s.fetch_add(2, std::memory_order_relaxed);
      count(cb.poll(now()));
    }
    polling.store(false);
  });
  for (auto& t : threads) {
    t.join();
  }

  EXPECT_FALSE(generation_out_of_range.load());
  for (const auto& n : trials_of) {
    EXPECT_LE(n.load(), c.half_open_requests);  // no release() here, so admitted = handed out
  }
  const auto opened = seen[0].load() + seen[3].load();
  const auto half_opened = seen[1].load();
  const auto left_half_open = seen[2].load() + seen[3].load();
  // Each open is left by exactly one poll, each half-open by exactly one result.
  switch (cb.current()) {
    case state::closed:
      EXPECT_EQ(opened, half_opened);
      EXPECT_EQ(left_half_open, half_opened);
      break;
    case state::open:
      EXPECT_EQ(opened, half_opened + 1);
      EXPECT_EQ(left_half_open, half_opened);
      break;
    case state::half_open:
      EXPECT_EQ(opened, half_opened);
      EXPECT_EQ(left_half_open + 1, half_opened);
      break;
  }
}

}  // namespace
}  // namespace spillway::breaker

// Per-worker counters as Spillway uses them: each worker writes its own slot while a scrape (the
// control thread) sums them. No timings asserted; the TSan pass of scripts/test.sh checks that the
// slots are shared the way stats.h says.

#include "common/stats.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace spillway::stats {
namespace {

TEST(PerWorkerThreads, ScrapesWhileWorkersCountSeeMonotonicTotalsAndEndExact) {
  constexpr unsigned workers = 4;
  constexpr std::uint64_t per_worker_requests = 20000;
  set_worker_count(workers);
  per_worker<listener_traffic> traffic;
  set_worker_count(1);  // what every other unit test expects

  std::atomic<unsigned> running{workers};
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (std::uint64_t i = 0; i < per_worker_requests; ++i) {
        auto& t = traffic.local(w);
        t.connections_total.add();
        t.responses.add(200);
        t.bytes_out.add(10);
        t.duration.observe(std::chrono::microseconds(i % 3000));
      }
      running.fetch_sub(1);
    });
  }
  bool monotonic = true;
  std::uint64_t last = 0;
  auto total = [&] {
    std::uint64_t n = 0;
    traffic.each([&](const listener_traffic& t) { n += t.connections_total.get(); });
    return n;
  };
  while (running.load() > 0) {
    const auto now = total();
    monotonic = monotonic && now >= last;
    last = now;
    histogram_totals h;
    traffic.each([&](const listener_traffic& t) { h.add(t.duration); });
    std::this_thread::yield();
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(total(), workers * per_worker_requests);
  histogram_totals h;
  std::uint64_t ok = 0;
  traffic.each([&](const listener_traffic& t) {
    h.add(t.duration);
    ok += t.responses.by_class[2].get();
  });
  EXPECT_EQ(h.total(), workers * per_worker_requests);
  EXPECT_EQ(ok, workers * per_worker_requests);
}

}  // namespace
}  // namespace spillway::stats

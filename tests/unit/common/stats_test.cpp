#include "common/stats.h"

#include <gtest/gtest.h>

namespace spillway::stats {
namespace {

using std::chrono::microseconds;

TEST(Histogram, PutsDurationsInTheirBucketsInclusiveOfTheUpperBound) {
  histogram h;
  h.observe(microseconds(50));          // exactly the first bound: first bucket (le="5e-05")
  h.observe(microseconds(51));          // just over: second bucket
  h.observe(microseconds(0));           // first bucket
  h.observe(std::chrono::seconds(11));  // over the last bound: +Inf
  EXPECT_EQ(h.count(0), 2u);
  EXPECT_EQ(h.count(1), 1u);
  EXPECT_EQ(h.count(histogram::buckets - 1), 1u);
  EXPECT_EQ(h.sum_us(), 50u + 51u + 11000000u);
}

TEST(HistogramTotals, QuantileInterpolatesWithinTheBucketLikePrometheus) {
  histogram h;
  // 100 observations spread over (1ms, 2.5ms]: the median is in the middle of that bucket.
  for (int i = 0; i < 100; ++i) {
    h.observe(microseconds(2000));
  }
  histogram_totals t;
  t.add(h);
  EXPECT_EQ(t.total(), 100u);
  EXPECT_NEAR(t.quantile(0.5), 0.00175, 1e-9);  // 1ms + (2.5ms - 1ms) * 0.5
  EXPECT_NEAR(t.quantile(1.0), 0.0025, 1e-9);
}

TEST(HistogramTotals, QuantileOfEmptyIsZeroAndOfInfIsTheLargestBound) {
  histogram_totals empty;
  EXPECT_EQ(empty.quantile(0.99), 0.0);
  histogram h;
  h.observe(std::chrono::seconds(60));
  histogram_totals t;
  t.add(h);
  EXPECT_EQ(t.quantile(0.99), 10.0);
}

TEST(HistogramTotals, SumsSeveralHistograms) {
  histogram a;
  histogram b;
  a.observe(microseconds(100));
  b.observe(microseconds(100));
  b.observe(microseconds(30000));
  histogram_totals t;
  t.add(a);
  t.add(b);
  EXPECT_EQ(t.total(), 3u);
  EXPECT_EQ(t.counts[1], 2u);  // (50us, 100us]
  EXPECT_EQ(t.sum_us, 30200u);
  EXPECT_NEAR(t.quantile(0.5), 0.0000875, 1e-9);  // rank 1.5 of 2 in (50us, 100us]: 50 + 50 * 0.75
}

TEST(StatusClasses, CountsByHundredsAndNoneForZero) {
  status_classes c;
  c.add(200);
  c.add(204);
  c.add(503);
  c.add(0);
  c.add(101);
  c.add(999);  // not a status: "none"
  EXPECT_EQ(c.by_class[2].get(), 2u);
  EXPECT_EQ(c.by_class[5].get(), 1u);
  EXPECT_EQ(c.by_class[1].get(), 1u);
  EXPECT_EQ(c.by_class[0].get(), 2u);
}

TEST(PerWorker, EachWorkerWritesItsOwnSlotAndReadersSumThem) {
  set_worker_count(3);
  per_worker<request_traffic> pw;
  pw.local(0).bytes_in.add(10);
  pw.local(2).bytes_in.add(5);
  pw.local(7).bytes_in.add(1);  // out of range (never in the product): the first slot
  std::uint64_t total = 0;
  unsigned slots = 0;
  pw.each([&](const request_traffic& t) {
    total += t.bytes_in.get();
    ++slots;
  });
  EXPECT_EQ(slots, 3u);
  EXPECT_EQ(total, 16u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&pw.local(1)) % 64, 0u);  // no false sharing between slots
  set_worker_count(1);
}

}  // namespace
}  // namespace spillway::stats

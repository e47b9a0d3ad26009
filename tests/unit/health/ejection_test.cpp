#include "health/ejection.h"

#include <gtest/gtest.h>

namespace spillway::health {
namespace {

using std::chrono::seconds;

config::outlier_detection cfg(unsigned pct = 50) {
  config::outlier_detection c;
  c.ejection_time = seconds(10);
  c.max_ejection_percent = pct;
  return c;
}

TEST(ejection, max_ejection_percent_rounds_down) {
  EXPECT_EQ(max_ejected(1, 50), 0u);
  EXPECT_EQ(max_ejected(2, 50), 1u);
  EXPECT_EQ(max_ejected(3, 50), 1u);
  EXPECT_EQ(max_ejected(4, 50), 2u);
  EXPECT_EQ(max_ejected(3, 100), 3u);
  EXPECT_EQ(max_ejected(10, 0), 0u);
}

TEST(ejection, lone_backend_is_never_ejected_at_50_percent) {
  ejection_record rec;
  EXPECT_FALSE(plan_ejection(rec, clock::time_point{} + seconds(100), cfg(), 1, 0));
  EXPECT_FALSE(rec.ejected);
}

TEST(ejection, limit_counts_hosts_already_out) {
  ejection_record rec;
  auto now = clock::time_point{} + seconds(100);
  EXPECT_FALSE(plan_ejection(rec, now, cfg(), 3, 1));
  EXPECT_TRUE(plan_ejection(rec, now, cfg(), 3, 0));
}

TEST(ejection, grows_with_repeats_and_is_capped) {
  ejection_record rec;
  auto now = clock::time_point{} + seconds(1000);
  for (unsigned i = 1; i <= 12; ++i) {
    auto d = plan_ejection(rec, now, cfg(100), 4, 0);
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, seconds(10) * std::min(i, max_ejection_multiplier));
    now += *d;
    end_ejection(rec, now);  // fails again right after returning
  }
}

TEST(ejection, decays_after_good_behaviour) {
  ejection_record rec;
  auto now = clock::time_point{} + seconds(1000);
  for (int i = 0; i < 3; ++i) {
    auto d = plan_ejection(rec, now, cfg(100), 4, 0);
    now += *d;
    end_ejection(rec, now);
  }
  EXPECT_EQ(rec.multiplier, 3u);
  // back for 25 s = two full ejection times: the next ejection is 3 - 2 + 1 = 2 x 10 s
  now += seconds(25);
  EXPECT_EQ(*plan_ejection(rec, now, cfg(100), 4, 0), seconds(20));
  end_ejection(rec, now + seconds(20));
  // back for a long time: starts over at one ejection time
  EXPECT_EQ(*plan_ejection(rec, now + seconds(10000), cfg(100), 4, 0), seconds(10));
}

TEST(ejection, an_ejected_host_is_not_ejected_twice) {
  ejection_record rec;
  auto now = clock::time_point{} + seconds(5);
  EXPECT_TRUE(plan_ejection(rec, now, cfg(100), 4, 0));
  EXPECT_FALSE(plan_ejection(rec, now, cfg(100), 4, 1));
}

}  // namespace
}  // namespace spillway::health

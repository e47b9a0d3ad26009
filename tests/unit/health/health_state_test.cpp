#include "health/health_state.h"

#include <gtest/gtest.h>

namespace spillway::health {
namespace {

TEST(health_state, flips_down_after_threshold_failures) {
  health_state s(2, 3, true);
  EXPECT_FALSE(s.observe(false));
  EXPECT_FALSE(s.observe(false));
  EXPECT_TRUE(s.observe(false));
  EXPECT_FALSE(s.healthy());
  EXPECT_FALSE(s.observe(false));
}

TEST(health_state, a_pass_resets_the_failure_count) {
  health_state s(2, 3, true);
  s.observe(false);
  s.observe(false);
  s.observe(true);
  EXPECT_FALSE(s.observe(false));
  EXPECT_FALSE(s.observe(false));
  EXPECT_TRUE(s.observe(false));
}

TEST(health_state, flips_up_after_threshold_passes) {
  health_state s(2, 3, false);
  EXPECT_FALSE(s.observe(true));
  EXPECT_TRUE(s.observe(true));
  EXPECT_TRUE(s.healthy());
}

TEST(health_state, thresholds_below_one_act_as_one) {
  health_state s(0, 0, true);
  EXPECT_TRUE(s.observe(false));
  EXPECT_TRUE(s.observe(true));
}

}  // namespace
}  // namespace spillway::health

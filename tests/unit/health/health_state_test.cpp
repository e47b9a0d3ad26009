#include "health/health_state.h"

#include <gtest/gtest.h>

namespace spillway::health {
namespace {

TEST(health_state, flips_down_after_threshold_failures) {
  health_state s(2, 3, health_state::start::healthy);
  EXPECT_FALSE(s.observe(false));
  EXPECT_FALSE(s.observe(false));
  EXPECT_TRUE(s.observe(false));
  EXPECT_FALSE(s.healthy());
  EXPECT_FALSE(s.observe(false));
}

TEST(health_state, a_pass_resets_the_failure_count) {
  health_state s(2, 3, health_state::start::healthy);
  s.observe(false);
  s.observe(false);
  s.observe(true);
  EXPECT_FALSE(s.observe(false));
  EXPECT_FALSE(s.observe(false));
  EXPECT_TRUE(s.observe(false));
}

TEST(health_state, flips_up_after_threshold_passes) {
  health_state s(2, 3, health_state::start::unhealthy);
  EXPECT_FALSE(s.observe(true));
  EXPECT_TRUE(s.observe(true));
  EXPECT_TRUE(s.healthy());
}

TEST(health_state, thresholds_below_one_act_as_one) {
  health_state s(0, 0, health_state::start::healthy);
  EXPECT_TRUE(s.observe(false));
  EXPECT_TRUE(s.observe(true));
}

TEST(health_state, unknown_first_result_decides_at_once) {
  health_state up(3, 3, health_state::start::unknown);
  EXPECT_FALSE(up.healthy());
  EXPECT_FALSE(up.known());
  EXPECT_TRUE(up.observe(true));  // one pass is enough for a host never seen
  EXPECT_TRUE(up.healthy());
  EXPECT_FALSE(up.observe(false));  // from then on, thresholds apply
  EXPECT_FALSE(up.observe(false));
  EXPECT_TRUE(up.observe(false));

  health_state down(3, 3, health_state::start::unknown);
  EXPECT_FALSE(down.observe(false));  // stays out: no flip, since unknown already takes no traffic
  EXPECT_TRUE(down.known());
  EXPECT_FALSE(down.healthy());
  EXPECT_FALSE(down.observe(true));
  EXPECT_FALSE(down.observe(true));
  EXPECT_TRUE(down.observe(true));
}

}  // namespace
}  // namespace spillway::health

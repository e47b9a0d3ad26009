#include "upstream/journal.h"

#include <gtest/gtest.h>

namespace spillway::upstream {
namespace {

// The journal and its hosts read one fake clock: nothing here depends on how fast the test runs.
manual_time_source clk;

host make_host(const char* address) {
  config::backend b;
  b.addr.text = address;
  b.addr.host = "127.0.0.1";
  b.addr.port = 1;
  return host("app", b, {}, clk);
}

TEST(Journal, AnIncidentOpensWhenTheHostGoesOutAndClosesWhenItIsBack) {
  journal j(clk);
  auto h = make_host("127.0.0.1:1");
  // Three requests fail, two of them retried elsewhere, before the host is taken out.
  for (int i = 0; i < 3; ++i) {
    h.failures_total.fetch_add(1);
    h.record_outcome(true, true);
  }
  h.note_retried();
  h.note_retried();
  h.events_journal = &j;
  h.mark_out(out_kind::ejection, "3 consecutive failures");  // journals "ejection in->ejected"
  auto open = j.incidents();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].reason, "ejected");
  EXPECT_EQ(open[0].failed_before_out, 3u);
  EXPECT_EQ(open[0].retried_before_out, 2u);
  EXPECT_EQ(open[0].failed_at, open[0].marked_out_at);  // the clock did not move
  EXPECT_FALSE(open[0].in_rotation_at.has_value());

  clk.advance(std::chrono::seconds(5));
  h.failures_total.fetch_add(1);  // a failure while out (e.g. a half-open trial)
  j.sign_of_life(h);
  clk.advance(std::chrono::seconds(5));
  h.mark_in(out_kind::ejection);
  auto closed = j.incidents();
  ASSERT_EQ(closed.size(), 1u);
  ASSERT_TRUE(closed[0].came_back_at.has_value());
  ASSERT_TRUE(closed[0].in_rotation_at.has_value());
  EXPECT_EQ(*closed[0].came_back_at - closed[0].marked_out_at, std::chrono::seconds(5));
  EXPECT_EQ(*closed[0].in_rotation_at - *closed[0].came_back_at, std::chrono::seconds(5));
  EXPECT_EQ(closed[0].failed_while_out, 1u);
  EXPECT_EQ(j.recent().size(), 2u);
}

constexpr std::int64_t ms = 1'000'000;  // in ns

TEST(Journal, AQuietSuccessEndsTheRunOfFailuresThatDatesAnIncident) {
  journal j(clk);
  auto h = make_host("127.0.0.1:2");
  const std::int64_t t0 = clk.wall_ns();
  h.failures_total.fetch_add(1);
  h.note_failure(true, t0);
  EXPECT_EQ(h.failing_since_ns(), t0);
  h.note_success_in_run(t0 + 500 * ms);  // too soon after the failure: the run goes on
  EXPECT_EQ(h.failing_since_ns(), t0);
  h.note_success_in_run(t0 + 1000 * ms);  // a quiet second: that failure was a blip
  EXPECT_EQ(h.failing_since_ns(), 0);
  clk.advance(std::chrono::seconds(10));
  h.events_journal = &j;
  h.mark_out(out_kind::health, "connect: refused");
  auto inc = j.incidents();
  ASSERT_EQ(inc.size(), 1u);
  EXPECT_EQ(inc[0].reason, "unhealthy");
  EXPECT_EQ(inc[0].failed_before_out, 0u);  // no failing requests since the run ended
  EXPECT_EQ(inc[0].failed_at, inc[0].marked_out_at);
}

TEST(Journal, ABackendFailingHalfItsRequestsStaysInOneRun) {
  // What opens a breaker on failure_rate: the incident dates from the first failure, not the last
  // success before the breaker opened.
  journal j(clk);
  auto h = make_host("127.0.0.1:3");
  const std::int64_t t0 = clk.wall_ns();
  for (int i = 0; i < 300; ++i) {  // 3 s at one request per 10 ms, every other one failing
    const std::int64_t t = t0 + i * 10 * ms;
    if (i % 2 == 0) {
      h.note_failure(true, t);
    } else {
      h.note_success_in_run(t);
    }
  }
  EXPECT_EQ(h.failing_since_ns(), t0);
  EXPECT_EQ(h.run_failures(), 150u);
  clk.advance(std::chrono::seconds(10));  // the breaker opens 10 s after the first failure
  h.events_journal = &j;
  breaker::transition opened{breaker_state::closed, breaker_state::open, {}, std::chrono::seconds(5)};
  opened.window.failure_rate = 50;
  h.apply(opened);
  auto inc = j.incidents();
  ASSERT_EQ(inc.size(), 1u);
  EXPECT_EQ(inc[0].failed_before_out, 150u);
  EXPECT_EQ(inc[0].marked_out_at - inc[0].failed_at, std::chrono::seconds(10));  // from t0
}

TEST(Journal, TheOddErrorOfAHealthyBackendEndsItsRunSoon) {
  auto h = make_host("127.0.0.1:4");
  const std::int64_t t0 = clk.wall_ns();
  h.note_failure(true, t0);
  for (int i = 1; i <= 10; ++i) {
    h.note_success_in_run(t0 + i * ms);  // ten successes to one failure: still a run
  }
  EXPECT_EQ(h.failing_since_ns(), t0);
  h.note_success_in_run(t0 + 11 * ms);  // the eleventh outnumbers it
  EXPECT_EQ(h.failing_since_ns(), 0);
  EXPECT_EQ(h.run_failures(), 0u);
}

TEST(Journal, TransitionsThatKeepTheHostOutDoNotOpenASecondIncident) {
  journal j(clk);
  auto h = make_host("127.0.0.1:3");
  h.events_journal = &j;
  h.mark_out(out_kind::health, "status 503");
  h.mark_out(out_kind::ejection, "5 consecutive failures");
  h.mark_in(out_kind::health);  // still ejected: still out
  EXPECT_EQ(j.incidents().size(), 1u);
  EXPECT_FALSE(j.incidents()[0].in_rotation_at.has_value());
  h.mark_in(out_kind::ejection);
  EXPECT_TRUE(j.incidents()[0].in_rotation_at.has_value());
  j.clear_incidents();
  EXPECT_TRUE(j.incidents().empty());
}

TEST(Journal, KeepsTheNewestEvents) {
  journal j(clk);
  auto h = make_host("127.0.0.1:4");
  for (std::size_t i = 0; i < journal::max_events + 10; ++i) {
    j.transition(h, "health", "up", "up", std::to_string(i));
  }
  auto recent = j.recent(journal::max_events + 50);
  ASSERT_EQ(recent.size(), journal::max_events);
  EXPECT_EQ(recent.back().detail, std::to_string(journal::max_events + 9));
  EXPECT_EQ(j.recent(5).size(), 5u);
}

}  // namespace
}  // namespace spillway::upstream

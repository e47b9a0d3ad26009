// Taking a host out of traffic and putting it back: host::mark_out / mark_in / set_initial.

#include "upstream/host.h"
#include "upstream/journal.h"

#include <gtest/gtest.h>

#include <memory>

namespace spillway::upstream {
namespace {

struct fixture {
  manual_time_source clk;
  journal events{clk};
  std::shared_ptr<host> h;

  fixture() {
    config::backend b;
    b.addr = {"127.0.0.1", 9001, true, "127.0.0.1:9001"};
    h = std::make_shared<host>("app", b, boost::asio::ip::tcp::endpoint{}, clk);
    h->events_journal = &events;
  }

  // The journal's events as "kind from->to".
  std::vector<std::string> journaled() const {
    std::vector<std::string> out;
    for (const auto& e : events.recent()) {
      out.push_back(e.kind + " " + e.from + "->" + e.to);
    }
    return out;
  }
};

TEST(Host, MarkOutAndInCountTransitionsAndKeepTheDetail) {
  fixture f;
  auto& h = *f.h;
  EXPECT_TRUE(h.available());
  EXPECT_TRUE(h.mark_out(out_kind::health, "status 503"));
  EXPECT_FALSE(h.available());
  EXPECT_FALSE(h.is_healthy());
  EXPECT_STREQ(h.out_reason(), "unhealthy");
  EXPECT_EQ(h.detail(out_kind::health), "status 503");
  EXPECT_EQ(h.transitions(out_kind::health), 1u);
  EXPECT_TRUE(h.mark_in(out_kind::health));
  EXPECT_TRUE(h.available());
  EXPECT_TRUE(h.detail(out_kind::health).empty());
  EXPECT_EQ(h.transitions(out_kind::health), 2u);
  EXPECT_EQ(f.journaled(), (std::vector<std::string>{"health up->down", "health down->up"}));
}

TEST(Host, MarkingTwiceChangesNothing) {
  fixture f;
  auto& h = *f.h;
  EXPECT_FALSE(h.mark_in(out_kind::ejection));  // in already
  EXPECT_TRUE(h.mark_out(out_kind::ejection, "5 consecutive failures; ejected for 30000ms"));
  EXPECT_FALSE(h.mark_out(out_kind::ejection, "again"));
  EXPECT_EQ(h.detail(out_kind::ejection), "5 consecutive failures; ejected for 30000ms");
  EXPECT_EQ(h.transitions(out_kind::ejection), 1u);
  EXPECT_TRUE(h.is_ejected());
  EXPECT_TRUE(h.mark_in(out_kind::ejection, "ejection time over"));
  EXPECT_FALSE(h.mark_in(out_kind::ejection));
  EXPECT_EQ(h.transitions(out_kind::ejection), 1u);  // ejections, not returns
  EXPECT_EQ(f.journaled(), (std::vector<std::string>{"ejection in->ejected", "ejection ejected->in"}));
  EXPECT_EQ(f.events.recent().back().detail, "ejection time over");
}

TEST(Host, KindsAreIndependent) {
  fixture f;
  auto& h = *f.h;
  h.mark_out(out_kind::health, "connect: refused");
  h.mark_out(out_kind::ejection, "5 consecutive failures");
  h.mark_in(out_kind::health);
  EXPECT_FALSE(h.available());  // still ejected
  EXPECT_STREQ(h.out_reason(), "ejected");
  h.mark_in(out_kind::ejection);
  EXPECT_TRUE(h.available());
  // One incident for the whole time out.
  ASSERT_EQ(f.events.incidents().size(), 1u);
  EXPECT_EQ(f.events.incidents()[0].reason, "unhealthy");
  EXPECT_TRUE(f.events.incidents()[0].in_rotation_at.has_value());
}

TEST(Host, MarkInStampsSlowStartWithTheInjectedClock) {
  fixture f;
  auto& h = *f.h;
  EXPECT_EQ(h.available_since(), 0);  // never out
  h.mark_out(out_kind::health, "status 503");
  f.clk.advance(std::chrono::seconds(7));
  const auto back_at = f.clk.steady_ns();
  h.mark_in(out_kind::health);
  EXPECT_EQ(h.available_since(), back_at);
  f.clk.advance(std::chrono::seconds(1));
  h.mark_in(out_kind::health);  // in already: no new stamp
  EXPECT_EQ(h.available_since(), back_at);
  h.mark_out(out_kind::ejection, "x");
  f.clk.advance(std::chrono::seconds(3));
  h.mark_in(out_kind::ejection);
  EXPECT_EQ(h.available_since(), f.clk.steady_ns());
}

TEST(Host, AFirstResultFromUnknownIsLoggedButOnlyAPassCounts) {
  fixture f;
  auto& h = *f.h;
  h.set_initial(out_kind::health, false, "not checked yet");
  EXPECT_FALSE(h.available());
  EXPECT_FALSE(h.known(out_kind::health));
  EXPECT_EQ(h.detail(out_kind::health), "not checked yet");
  EXPECT_TRUE(f.journaled().empty());  // a new host is not an event
  // First check fails: the host stays out, nothing flipped.
  EXPECT_TRUE(h.mark_out(out_kind::health, "connect: refused"));
  EXPECT_TRUE(h.known(out_kind::health));
  EXPECT_EQ(h.transitions(out_kind::health), 0u);
  // Another host whose first check passes: unknown -> up counts (as /metrics always did).
  fixture g;
  g.h->set_initial(out_kind::health, false, "not checked yet");
  EXPECT_TRUE(g.h->mark_in(out_kind::health));
  EXPECT_EQ(g.h->transitions(out_kind::health), 1u);
  EXPECT_EQ(g.journaled(), (std::vector<std::string>{"health unknown->up"}));
  EXPECT_EQ(f.journaled(), (std::vector<std::string>{"health unknown->down"}));
}

TEST(Host, AnUnresolvedNameTakesNoTrafficAndIsNotAnIncident) {
  fixture f;
  auto& h = *f.h;
  h.set_initial(out_kind::dns, false, "resolving");
  EXPECT_FALSE(h.available());
  EXPECT_FALSE(h.is_resolved());
  EXPECT_STREQ(h.out_reason(), "unresolved");
  EXPECT_TRUE(h.mark_out(out_kind::dns, "Host not found"));
  EXPECT_FALSE(h.mark_out(out_kind::dns, "Host not found"));  // logged once
  EXPECT_EQ(h.detail(out_kind::dns), "Host not found");
  EXPECT_TRUE(f.events.incidents().empty());
  EXPECT_TRUE(f.journaled().empty());
}

TEST(Host, FailureRunsAreDatedByTheInjectedClock) {
  fixture f;
  auto& h = *f.h;
  h.record_outcome(true, true);
  EXPECT_EQ(h.failing_since_ns(), f.clk.wall_ns());
  f.clk.advance(std::chrono::milliseconds(500));
  h.record_outcome(false, false);  // too soon: the run goes on
  EXPECT_NE(h.failing_since_ns(), 0);
  f.clk.advance(std::chrono::seconds(1));
  h.record_outcome(false, false);  // a quiet second after the last failure ends it
  EXPECT_EQ(h.failing_since_ns(), 0);
}

TEST(Host, AHealthCheckKeepsItsResultAsTheDetailWithoutAFlip) {
  fixture f;
  auto& h = *f.h;
  h.note_health_check("status 503");  // one failure, below the threshold: still up
  EXPECT_TRUE(h.available());
  EXPECT_EQ(h.detail(out_kind::health), "status 503");
  EXPECT_EQ(h.health_check_failures_total(), 1u);
  EXPECT_EQ(h.transitions(out_kind::health), 0u);
  h.note_health_check("");
  EXPECT_TRUE(h.detail(out_kind::health).empty());
  EXPECT_EQ(h.health_check_failures_total(), 1u);
  EXPECT_TRUE(f.journaled().empty());
}

TEST(Host, ApplyMirrorsAndCountsBreakerTransitions) {
  fixture f;
  auto& h = *f.h;
  EXPECT_EQ(h.breaker_now(), breaker_state::closed);
  h.apply({breaker_state::closed, breaker_state::open, {}, std::chrono::seconds(5)});
  EXPECT_EQ(h.breaker_now(), breaker_state::open);
  EXPECT_FALSE(h.available());
  EXPECT_STREQ(h.out_reason(), "breaker_open");
  h.apply({breaker_state::open, breaker_state::half_open, {}, {}});
  EXPECT_TRUE(h.available());  // half_open takes trial calls
  h.apply({breaker_state::half_open, breaker_state::open, {}, std::chrono::seconds(10)});
  h.apply({breaker_state::open, breaker_state::half_open, {}, {}});
  h.apply({breaker_state::half_open, breaker_state::closed, {}, {}});
  EXPECT_EQ(h.breaker_now(), breaker_state::closed);
  EXPECT_EQ(h.breaker_transitions(0), 1u);  // closed->open
  EXPECT_EQ(h.breaker_transitions(1), 2u);  // open->half_open
  EXPECT_EQ(h.breaker_transitions(2), 1u);  // half_open->closed
  EXPECT_EQ(h.breaker_transitions(3), 1u);  // half_open->open
  EXPECT_EQ(f.journaled().size(), 5u);
}

}  // namespace
}  // namespace spillway::upstream

#include "proxy/watchdog.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

namespace spillway::proxy {
namespace {

using clock = watchdog::clock;

struct counting_listener final : deadline_listener {
  void deadline_passed() override {
    ++passed;
    if (then) {
      then();
    }
  }
  int passed = 0;
  std::function<void()> then;
};

// The owner as a session has it: the listener and the watchdog inside one shared object.
struct owner {
  explicit owner(boost::asio::io_context& io) : watch(io) {}
  counting_listener listener;
  watchdog watch;
};

TEST(watchdog, without_a_deadline_it_waits_for_nothing_and_holds_nothing) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.start(o, &o->listener);
  EXPECT_FALSE(o->watch.waiting());
  EXPECT_EQ(o.use_count(), 1);  // no pending wait keeps the owner
  EXPECT_EQ(io.poll(), 0u);
  o->watch.stop();
}

TEST(watchdog, a_deadline_set_later_arms_it_and_passing_tells_the_listener_once) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.start(o, &o->listener);
  o->watch.set_deadline(clock::now() - std::chrono::seconds(1));
  EXPECT_TRUE(o->watch.waiting());
  EXPECT_EQ(o.use_count(), 2);  // the wait keeps the owner alive
  io.run();
  EXPECT_EQ(o->listener.passed, 1);
  EXPECT_TRUE(o->watch.expired());
  EXPECT_FALSE(o->watch.waiting());  // no deadline left: nothing pending
  EXPECT_EQ(o.use_count(), 1);
  o->watch.stop();
}

TEST(watchdog, an_earlier_deadline_wakes_the_pending_wait) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.set_deadline(clock::now() + std::chrono::hours(1));
  o->watch.start(o, &o->listener);
  EXPECT_TRUE(o->watch.waiting());
  io.poll();
  EXPECT_EQ(o->listener.passed, 0);
  o->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  io.run();
  EXPECT_EQ(o->listener.passed, 1);
}

TEST(watchdog, a_deadline_set_by_the_listener_is_armed_once) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  int rounds = 0;
  o->listener.then = [&] {
    if (++rounds < 3) {
      o->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));  // the next one, passed too
    }
  };
  o->watch.start(o, &o->listener);
  o->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  // Bounded: a double arm would cancel and re-arm without end.
  std::size_t handlers = 0;
  while (handlers < 100 && io.run_one() > 0) {
    ++handlers;
  }
  EXPECT_EQ(o->listener.passed, 3);
  EXPECT_EQ(handlers, 3u);
  EXPECT_FALSE(o->watch.waiting());
}

TEST(watchdog, within_its_horizon_a_sooner_deadline_touches_no_timer) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.set_horizon(std::chrono::hours(1));
  o->watch.start(o, &o->listener);
  o->watch.set_deadline(clock::now() + std::chrono::hours(3));  // an idle deadline: the wait ends within the hour
  EXPECT_EQ(io.poll(), 0u);
  // The next request's header deadline: sooner than the idle one, but not sooner than the wait's
  // end, so nothing is cancelled and re-armed.
  o->watch.set_deadline(clock::now() + std::chrono::hours(1) + std::chrono::minutes(1));
  EXPECT_EQ(io.poll(), 0u);
  EXPECT_EQ(o->listener.passed, 0);
  // Sooner than the wait's end: woken at once, and told.
  o->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  EXPECT_EQ(io.run_one(), 1u);
  EXPECT_EQ(o->listener.passed, 1);
  o->watch.stop();
  io.run();
}

TEST(watchdog, waking_at_its_horizon_before_the_deadline_tells_nothing_and_waits_again) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.set_horizon(std::chrono::milliseconds(1));
  o->watch.start(o, &o->listener);
  o->watch.set_deadline(clock::now() + std::chrono::hours(1));
  EXPECT_EQ(io.run_one(), 1u);  // the horizon's wake-up, about a millisecond on
  EXPECT_EQ(o->listener.passed, 0);
  EXPECT_FALSE(o->watch.expired());
  EXPECT_TRUE(o->watch.waiting());  // armed again
  EXPECT_EQ(o.use_count(), 2);
  o->watch.stop();
  io.run();
  EXPECT_EQ(o.use_count(), 1);
}

TEST(watchdog, stop_releases_the_owner_and_later_deadlines_are_ignored) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.start(o, &o->listener);
  o->watch.set_deadline(clock::now() + std::chrono::hours(1));
  EXPECT_EQ(o.use_count(), 2);
  o->watch.stop();
  io.run();
  EXPECT_EQ(o.use_count(), 1);
  o->watch.set_deadline(clock::now() - std::chrono::seconds(1));
  EXPECT_FALSE(o->watch.waiting());
  io.restart();
  EXPECT_EQ(io.poll(), 0u);
  EXPECT_EQ(o->listener.passed, 0);
}

// --- doze: a parked connection's far deadline without a pending wait ---

TEST(watchdog, dozing_it_holds_no_wait_until_a_sweep_finds_the_deadline_near) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.start(o, &o->listener);
  const auto now = clock::now();
  const auto deadline = now + std::chrono::hours(1);
  o->watch.set_deadline(deadline);
  EXPECT_EQ(o.use_count(), 2);
  o->watch.doze(now);
  EXPECT_TRUE(o->watch.dozing());
  EXPECT_EQ(io.poll(), 1u);  // the cancelled wait ends and is not armed again
  EXPECT_FALSE(o->watch.waiting());
  EXPECT_EQ(o.use_count(), 1);  // nothing pending holds the owner
  EXPECT_EQ(o->listener.passed, 0);
  EXPECT_FALSE(o->watch.expired());
  io.restart();  // poll() ran out of work
  // A sweep while the deadline is far leaves it dozing; one within the margin arms it.
  o->watch.swept(deadline - watchdog::doze_margin - std::chrono::seconds(1));
  EXPECT_FALSE(o->watch.waiting());
  o->watch.swept(deadline - watchdog::doze_margin);
  EXPECT_FALSE(o->watch.dozing());
  EXPECT_TRUE(o->watch.waiting());
  EXPECT_EQ(o.use_count(), 2);
  EXPECT_EQ(io.poll(), 0u);  // waits for the deadline itself
  o->watch.stop();
  io.run();
  EXPECT_EQ(o.use_count(), 1);
}

TEST(watchdog, a_deadline_set_while_dozing_is_armed_and_told) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.start(o, &o->listener);
  o->watch.set_deadline(clock::now() + std::chrono::hours(1));
  o->watch.doze(clock::now());
  io.poll();
  EXPECT_FALSE(o->watch.waiting());
  // The next request's deadline (passed already here): armed at once, told once.
  o->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  EXPECT_FALSE(o->watch.dozing());
  EXPECT_TRUE(o->watch.waiting());
  io.restart();
  io.run();
  EXPECT_EQ(o->listener.passed, 1);
  EXPECT_EQ(o.use_count(), 1);
  o->watch.stop();
}

TEST(watchdog, a_near_deadline_does_not_doze_and_a_sweep_before_the_cancel_completes_rearms) {
  boost::asio::io_context io;
  auto o = std::make_shared<owner>(io);
  o->watch.start(o, &o->listener);
  const auto now = clock::now();
  o->watch.set_deadline(now + watchdog::doze_margin);
  o->watch.doze(now);  // within the margin: stays armed
  EXPECT_FALSE(o->watch.dozing());
  EXPECT_EQ(io.poll(), 0u);
  EXPECT_TRUE(o->watch.waiting());

  const auto deadline = now + std::chrono::hours(1);
  o->watch.set_deadline(deadline);
  o->watch.doze(now);
  EXPECT_TRUE(o->watch.dozing());
  // The sweep comes before the cancelled wait's completion ran: that completion arms again.
  o->watch.swept(deadline - std::chrono::seconds(1));
  EXPECT_EQ(io.poll(), 1u);
  EXPECT_TRUE(o->watch.waiting());
  EXPECT_EQ(o->listener.passed, 0);
  o->watch.stop();
  io.restart();
  io.run();
  EXPECT_EQ(o.use_count(), 1);
}

// --- deadline_group: the streams of an HTTP/2 connection on one timer ---

// A connection with its group, and streams (members) that come and go.
struct group_owner {
  explicit group_owner(boost::asio::io_context& io) : group(io) {}
  deadline_group group;
};

struct member {
  explicit member(deadline_group& g) : watch(g) {}
  counting_listener listener;
  watchdog watch;
};

// Runs what is ready, `limit` handlers at most; how many ran.
std::size_t run_ready(boost::asio::io_context& io, std::size_t limit = 100) {
  std::size_t n = 0;
  io.restart();
  while (n < limit && io.poll_one() > 0) {
    ++n;
  }
  return n;
}

// A connection (the group's owner) on its io_context.
class deadline_group_test : public ::testing::Test {
 protected:
  void SetUp() override { o->group.set_owner(o); }
  // The connection ends with no member left: no wait is left, so nothing holds the owner.
  void close_and_expect_released() {
    o->group.close();
    run_ready(io);
    EXPECT_FALSE(o->group.waiting());
    EXPECT_EQ(o.use_count(), 1);
  }

  boost::asio::io_context io;
  std::shared_ptr<group_owner> o = std::make_shared<group_owner>(io);
};

TEST_F(deadline_group_test, members_share_one_wait_and_later_deadlines_touch_no_timer) {
  std::vector<std::unique_ptr<member>> ms;
  for (int i = 0; i < 50; ++i) {
    ms.push_back(std::make_unique<member>(o->group));
    ms.back()->watch.start(nullptr, &ms.back()->listener);
    ms.back()->watch.set_deadline(clock::now() + std::chrono::hours(1) + std::chrono::seconds(i));
  }
  EXPECT_EQ(o->group.members(), 50u);
  EXPECT_TRUE(o->group.waiting());
  EXPECT_EQ(o.use_count(), 2);  // one wait, holding the owner
  // Later deadlines, members leaving: no handler runs (nothing was cancelled and re-armed).
  for (auto& m : ms) {
    m->watch.set_deadline(clock::now() + std::chrono::hours(2));
  }
  for (int i = 0; i < 25; ++i) {
    ms[i]->watch.stop();
  }
  EXPECT_EQ(run_ready(io), 0u);
  EXPECT_EQ(o->group.members(), 25u);
  for (auto& m : ms) {
    EXPECT_EQ(m->listener.passed, 0);
  }
  for (auto& m : ms) {
    m->watch.stop();
  }
  close_and_expect_released();
}

TEST_F(deadline_group_test, a_sooner_deadline_wakes_the_timer_and_only_passed_members_are_told) {
  member late(o->group), soon(o->group), none(o->group);
  late.watch.start(nullptr, &late.listener);
  soon.watch.start(nullptr, &soon.listener);
  none.watch.start(nullptr, &none.listener);
  late.watch.set_deadline(clock::now() + std::chrono::hours(1));
  run_ready(io);
  soon.watch.set_deadline(clock::now() - std::chrono::milliseconds(1));  // sooner than the timer's: it wakes
  run_ready(io);
  EXPECT_EQ(soon.listener.passed, 1);
  EXPECT_TRUE(soon.watch.expired());
  EXPECT_FALSE(soon.watch.waiting());
  EXPECT_EQ(late.listener.passed, 0);
  EXPECT_FALSE(late.watch.expired());
  EXPECT_EQ(none.listener.passed, 0);
  EXPECT_TRUE(o->group.waiting());  // re-armed for `late`
  // A deadline moved later lazily (as relays do through deadline()) is found when the timer wakes.
  late.watch.deadline() = clock::now() + std::chrono::hours(3);
  soon.watch.clear_expired();
  soon.watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  run_ready(io);
  EXPECT_EQ(soon.listener.passed, 2);
  EXPECT_EQ(late.listener.passed, 0);
  late.watch.stop();
  soon.watch.stop();
  none.watch.stop();
  close_and_expect_released();
}

TEST_F(deadline_group_test, a_listener_that_stops_other_members_or_sets_a_passed_deadline_again_is_safe) {
  auto a = std::make_unique<member>(o->group);
  auto b = std::make_unique<member>(o->group);
  b->watch.start(nullptr, &b->listener);
  a->watch.start(nullptr, &a->listener);  // joined last: looked at first
  int rounds = 0;
  a->listener.then = [&] {
    b.reset();  // another member, due and not told yet, goes (its watchdog leaves as it is destroyed)
    if (++rounds < 3) {
      a->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));  // passed already
    }
  };
  a->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  b->watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  // Bounded: a member told again in the same wake-up would loop without end.
  run_ready(io, 100);
  EXPECT_EQ(a->listener.passed, 3);
  EXPECT_FALSE(b);
  EXPECT_EQ(o->group.members(), 1u);
  a->watch.stop();
  close_and_expect_released();
}

TEST_F(deadline_group_test, a_member_still_running_after_close_keeps_its_deadline_until_it_leaves) {
  member m(o->group);
  m.watch.start(nullptr, &m.listener);
  m.watch.set_deadline(clock::now() + std::chrono::hours(1));
  o->group.close();  // the connection ended; the stream has not
  run_ready(io);
  EXPECT_TRUE(o->group.waiting());
  m.watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  run_ready(io);
  EXPECT_EQ(m.listener.passed, 1);
  m.watch.set_deadline(clock::now() + std::chrono::hours(1));
  m.watch.stop();  // the last member leaves: the wait ends
  run_ready(io);
  EXPECT_FALSE(o->group.waiting());
  EXPECT_EQ(o.use_count(), 1);
}

TEST(deadline_group, without_its_owner_nothing_is_armed) {
  boost::asio::io_context io;
  deadline_group g(io);  // no owner set (or gone)
  member m(g);
  m.watch.start(nullptr, &m.listener);
  m.watch.set_deadline(clock::now() - std::chrono::milliseconds(1));
  EXPECT_FALSE(g.waiting());
  EXPECT_EQ(run_ready(io), 0u);
  m.watch.stop();
}

}  // namespace
}  // namespace spillway::proxy

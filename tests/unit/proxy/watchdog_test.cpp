#include "proxy/watchdog.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>

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

}  // namespace
}  // namespace spillway::proxy

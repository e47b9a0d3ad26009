#include "proxy/h2_upstream.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>

namespace spillway::proxy {
namespace {

using outcome = h2_connecting::outcome;
using std::chrono::steady_clock;

// The pool only compares hosts and TLS contexts by address.
const int host_a = 0, host_b = 0, tls_x = 0;
const auto* const a = reinterpret_cast<const upstream::host*>(&host_a);
const auto* const b = reinterpret_cast<const upstream::host*>(&host_b);
const auto* const x = reinterpret_cast<const tls::client_context*>(&tls_x);

// Joins `p` as a waiter, as a request does right after joinable().
void join(boost::asio::io_context& io, std::shared_ptr<h2_connecting> p) {
  boost::asio::co_spawn(
      io,
      [&io, p]() -> boost::asio::awaitable<void> {
        co_await h2_pool::wait_connect(io, p, steady_clock::now() + std::chrono::hours(1));
      },
      boost::asio::detached);
  io.poll();
}

TEST(h2_pool, a_connection_being_made_takes_as_many_requests_as_streams_before_settings) {
  boost::asio::io_context io;
  h2_pool pool;
  EXPECT_EQ(pool.joinable(a, nullptr), nullptr);
  auto p = pool.begin_connect(a, nullptr);
  EXPECT_EQ(pool.joinable(b, nullptr), nullptr);  // another host
  EXPECT_EQ(pool.joinable(a, x), nullptr);        // another TLS context
  for (std::size_t i = 1; i < h2_pool::streams_before_settings; ++i) {
    auto joined = pool.joinable(a, nullptr);
    ASSERT_EQ(joined, p) << i;
    join(io, joined);
  }
  EXPECT_EQ(p->timers.size(), h2_pool::streams_before_settings - 1);
  EXPECT_EQ(pool.joinable(a, nullptr), nullptr);  // full: the next request makes its own
  auto q = pool.begin_connect(a, nullptr);
  EXPECT_EQ(pool.joinable(a, nullptr), q);
  pool.finish_connect(*q, outcome::failed);
  EXPECT_EQ(pool.joinable(a, nullptr), nullptr);  // finished: no longer joinable
  pool.finish_connect(*p, outcome::failed);
  io.poll();
  EXPECT_TRUE(p->timers.empty());  // every waiter left
}

TEST(h2_pool, finishing_wakes_every_waiter_with_the_outcome) {
  boost::asio::io_context io;
  h2_pool pool;
  auto p = pool.begin_connect(a, nullptr);
  int woken = 0;
  for (int i = 0; i < 3; ++i) {
    auto joined = pool.joinable(a, nullptr);
    boost::asio::co_spawn(
        io,
        [&, joined]() -> boost::asio::awaitable<void> {
          co_await h2_pool::wait_connect(io, joined, steady_clock::now() + std::chrono::hours(1));
          EXPECT_EQ(joined->result, outcome::given_up);
          ++woken;
        },
        boost::asio::detached);
  }
  io.poll();
  EXPECT_EQ(woken, 0);
  EXPECT_EQ(p->timers.size(), 3u);
  pool.finish_connect(*p, outcome::given_up);
  pool.finish_connect(*p, outcome::failed);  // once only
  io.poll();
  EXPECT_EQ(woken, 3);
  EXPECT_EQ(p->result, outcome::given_up);
  EXPECT_TRUE(p->timers.empty());
}

TEST(h2_pool, a_waiter_past_its_deadline_leaves_with_the_connect_pending) {
  boost::asio::io_context io;
  h2_pool pool;
  auto p = pool.begin_connect(a, nullptr);
  bool done = false;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        co_await h2_pool::wait_connect(io, pool.joinable(a, nullptr), steady_clock::now() - std::chrono::seconds(1));
        done = true;
      },
      boost::asio::detached);
  io.run();
  EXPECT_TRUE(done);
  EXPECT_EQ(p->result, outcome::pending);
  EXPECT_TRUE(p->timers.empty());
  EXPECT_EQ(pool.joinable(a, nullptr), p);  // still being made
}

TEST(h2_pool, shutting_down_gives_up_on_connections_being_made) {
  boost::asio::io_context io;
  h2_pool pool;
  auto p = pool.begin_connect(a, nullptr);
  auto q = pool.begin_connect(b, nullptr);
  pool.shut_down();
  EXPECT_EQ(p->result, outcome::given_up);
  EXPECT_EQ(q->result, outcome::given_up);
  EXPECT_EQ(pool.joinable(a, nullptr), nullptr);
  EXPECT_EQ(pool.begin_connect(a, nullptr)->result, outcome::pending);  // not kept: nobody joins it
  EXPECT_EQ(pool.joinable(a, nullptr), nullptr);
}

}  // namespace
}  // namespace spillway::proxy

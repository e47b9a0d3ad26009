#include "proxy/h2_common.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace spillway::proxy {
namespace {

// Encodes `fields` (built with make_nv) with `deflater` as one header block.
void deflate(nghttp2_hd_deflater* deflater, const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<nghttp2_nv> nva;
  for (const auto& [name, value] : fields) {
    nva.push_back(make_nv(name, value));
  }
  std::array<uint8_t, 4096> out{};
  ASSERT_GT(nghttp2_hd_deflate_hd(deflater, out.data(), out.size(), nva.data(), nva.size()), 0);
}

TEST(make_nv, values_new_in_every_message_stay_out_of_the_hpack_dynamic_table) {
  nghttp2_hd_deflater* deflater = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&deflater, 4096), 0);
  const auto base = nghttp2_hd_deflate_get_num_table_entries(deflater);  // the static table's
  for (int i = 0; i < 3; ++i) {
    const auto n = std::to_string(i);
    deflate(deflater, {{":authority", "api.internal"},
                       {"x-request-id", "8f14e45f-ceea-467f-a0e6-" + n},
                       {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b" + n + "-01"},
                       {"x-forwarded-for", "10.0.0.1"}});
  }
  // :authority and x-forwarded-for were indexed once each and reused; the per-message values never
  // entered the table.
  EXPECT_EQ(nghttp2_hd_deflate_get_num_table_entries(deflater), base + 2);
  nghttp2_hd_deflate_del(deflater);
}

TEST(make_nv, only_per_message_names_are_never_indexed) {
  EXPECT_EQ(make_nv("x-request-id", "a").flags, NGHTTP2_NV_FLAG_NO_INDEX);
  EXPECT_EQ(make_nv("traceparent", "a").flags, NGHTTP2_NV_FLAG_NO_INDEX);
  EXPECT_EQ(make_nv("grpc-timeout", "99982u").flags, NGHTTP2_NV_FLAG_NO_INDEX);
  for (const char* b3 : {"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid"}) {
    EXPECT_EQ(make_nv(b3, "a").flags, NGHTTP2_NV_FLAG_NO_INDEX) << b3;
  }
  EXPECT_EQ(make_nv("x-b3-sampled", "1").flags, NGHTTP2_NV_FLAG_NONE);
  EXPECT_EQ(make_nv("x-request-ids", "a").flags, NGHTTP2_NV_FLAG_NONE);
  EXPECT_EQ(make_nv("tracestate", "a").flags, NGHTTP2_NV_FLAG_NONE);
  EXPECT_EQ(make_nv("content-type", "application/grpc").flags, NGHTTP2_NV_FLAG_NONE);
}

// Spawns a coroutine that waits on `w` `times` times, counting each wait that ends in `woken`;
// `alive` lives in its frame.
void waiter(boost::asio::io_context& io, wakeup& w, int times, int& woken, std::shared_ptr<int> alive = nullptr) {
  boost::asio::co_spawn(
      io,
      [&w, times, &woken, alive]() -> boost::asio::awaitable<void> {
        for (int i = 0; i < times; ++i) {
          if (!w.ready()) {
            co_await w.sleep();
          }
          ++woken;
        }
      },
      boost::asio::detached);
}

TEST(wakeup, a_notify_before_the_wait_ends_it_and_notifies_do_not_add_up) {
  boost::asio::io_context io;
  wakeup w(wakeups::of(io));
  w.notify();
  w.notify();
  int woken = 0;
  waiter(io, w, 2, woken);
  io.poll();
  EXPECT_EQ(woken, 1);  // the second wait sleeps: two notifies before it were one
  w.notify();
  io.poll();
  EXPECT_EQ(woken, 2);
}

TEST(wakeup, a_notify_during_the_wait_resumes_the_coroutine_later_not_inside_notify) {
  boost::asio::io_context io;
  wakeup w(wakeups::of(io));
  int woken = 0;
  waiter(io, w, 1, woken);
  io.poll();
  EXPECT_EQ(woken, 0);
  w.notify();
  EXPECT_EQ(woken, 0);  // posted: notify() runs inside nghttp2's callbacks
  io.poll();
  EXPECT_EQ(woken, 1);
  EXPECT_TRUE(io.stopped());  // nothing left to do
}

TEST(wakeup, cancelling_a_sleeping_coroutine_wakes_it) {
  // As a timeout racing the health checker's HTTP/2 check with || does: the check must end.
  boost::asio::io_context io;
  wakeup w(wakeups::of(io));
  boost::asio::cancellation_signal signal;
  bool woke = false;
  bool cancelled = false;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        if (!w.ready()) {
          co_await w.sleep();
        }
        woke = true;
        const auto state = co_await boost::asio::this_coro::cancellation_state;
        cancelled = state.cancelled() != boost::asio::cancellation_type::none;
      },
      boost::asio::bind_cancellation_slot(signal.slot(), boost::asio::detached));
  io.poll();
  EXPECT_FALSE(woke);
  signal.emit(boost::asio::cancellation_type::terminal);
  EXPECT_FALSE(woke);  // posted, as a notify()
  io.poll();
  EXPECT_TRUE(woke);
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(io.stopped());  // nothing left waiting
}

TEST(wakeup, a_waiting_coroutine_is_outstanding_work) {
  boost::asio::io_context io;
  wakeup w(wakeups::of(io));
  int woken = 0;
  waiter(io, w, 1, woken);
  io.poll();
  EXPECT_FALSE(io.stopped());  // as with a timer: run() does not return under a waiting coroutine
  w.notify();
  io.run();
  EXPECT_EQ(woken, 1);
}

TEST(wakeup, an_io_context_destroyed_under_waiting_coroutines_destroys_their_frames) {
  auto alive = std::make_shared<int>(0);
  int woken = 0;
  auto io = std::make_unique<boost::asio::io_context>();
  wakeup a(wakeups::of(*io));
  wakeup b(wakeups::of(*io));
  waiter(*io, a, 1, woken, alive);
  waiter(*io, b, 1, woken, alive);
  io->poll();
  EXPECT_EQ(alive.use_count(), 3);
  io.reset();  // as a worker's io_context goes at shutdown, with streams still waiting
  EXPECT_EQ(woken, 0);
  EXPECT_EQ(alive.use_count(), 1);  // both frames destroyed, nothing leaked
}

}  // namespace
}  // namespace spillway::proxy

// The shared upstream path (upstream_attempt) on a real worker's io_context, against listening
// sockets on loopback: the same code serves L4 (`pooled` false) and HTTP (`pooled` true), so each
// rule is checked for both.

#include "proxy/upstream_attempt.h"
#include "proxy/connection_pool.h"
#include "proxy/downstream.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>

namespace spillway::proxy {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using clock = std::chrono::steady_clock;

struct idle_session final : downstream_session {
  void drain() override {}
  void force_close() override {}
  void deadline_passed() override {}
};

// One upstream "app" over `n` backends listening on loopback (their kernels accept connections; no
// byte is exchanged). The test drives attempts on the worker's io_context from its own thread.
class attempt_test : public ::testing::TestWithParam<bool> {
 protected:
  void build(std::size_t n, const std::function<void(config::upstream&)>& tune = {}) {
    auto cfg = std::make_shared<config::config>();
    config::upstream up;
    up.name = "app";
    up.health.enabled = false;
    for (std::size_t i = 0; i < n; ++i) {
      auto& acc = acceptors_.emplace_back(
          std::make_unique<tcp::acceptor>(backend_io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)));
      config::backend b;
      b.addr.host = "127.0.0.1";
      b.addr.port = acc->local_endpoint().port();
      b.addr.is_ip = true;
      b.addr.text = "127.0.0.1:" + std::to_string(b.addr.port);
      up.backends.push_back(b);
    }
    if (tune) {
      tune(up);
    }
    cfg->upstreams.push_back(up);
    auto c = std::make_shared<upstream::cluster>();
    c->cfg = up;
    c->stats = std::make_shared<upstream::upstream_stats>();
    for (const auto& b : up.backends) {
      auto h =
          std::make_shared<upstream::host>(up.name, b, tcp::endpoint(asio::ip::make_address(b.addr.host), b.addr.port));
      if (up.breaker.enabled) {
        h->circuit = std::make_unique<breaker::circuit_breaker>(up.breaker, 7);
      }
      c->hosts.push_back(h);
    }
    cluster_ = c;
    worker_ = std::make_unique<worker>(0, make_snapshot(cfg, {c}, 1), nullptr);
    down_ = std::make_unique<downstream_connection>(*worker_, "test", tcp::socket(worker_->io()), nullptr, &session_);
  }

  // Runs `body` as a coroutine on the worker's io_context until it finishes.
  void run(std::function<asio::awaitable<void>()> body) {
    bool done = false;
    asio::co_spawn(
        worker_->io(),
        [&]() -> asio::awaitable<void> {
          co_await body();
          done = true;
        },
        asio::detached);
    worker_->io().run();
    worker_->io().restart();
    ASSERT_TRUE(done);
  }

  upstream_attempt make_attempt() {
    return upstream_attempt(*worker_, *worker_->view(), 0, down_->watch(), "198.51.100.7", true, GetParam());
  }

  // Puts `h`'s breaker in half-open with every trial slot taken; returns the ticket that holds it.
  breaker::circuit_breaker::token hold_half_open(upstream::host& h) {
    auto& cb = *h.circuit;
    const auto now = clock::now();
    auto t = cb.try_acquire(now);
    auto opened = cb.on_result(t, breaker::outcome{true, false}, now);
    EXPECT_TRUE(opened && opened->to == breaker::state::open);
    h.apply(*opened);
    auto half = cb.poll(now + std::chrono::hours(1));
    EXPECT_TRUE(half && half->to == breaker::state::half_open);
    h.apply(*half);
    auto slot = cb.try_acquire(clock::now());
    EXPECT_TRUE(slot.trial);
    return slot;
  }

  asio::io_context backend_io_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::shared_ptr<upstream::cluster> cluster_;
  std::unique_ptr<worker> worker_;
  idle_session session_;
  std::unique_ptr<downstream_connection> down_;
};

// A half-open breaker with its trial slot taken refuses the call: the host is skipped and the try
// goes to another host without using up a retry, on both paths (L4 used to spend an attempt).
TEST_P(attempt_test, breaker_refusal_skips_the_host_without_using_a_try) {
  build(2, [](config::upstream& up) {
    up.retry.attempts = 0;
    up.breaker.minimum_requests = 1;
    up.breaker.half_open_requests = 1;
  });
  auto& refusing = *cluster_->hosts[0];
  auto held = hold_half_open(refusing);
  for (int i = 0; i < 20; ++i) {
    run([&]() -> asio::awaitable<void> {
      auto attempt = make_attempt();
      EXPECT_TRUE(attempt.admit());
      auto error = co_await attempt.start_try(clock::time_point::max(), true);
      EXPECT_FALSE(error.has_value());
      EXPECT_EQ(attempt.host(), cluster_->hosts[1].get());
      EXPECT_EQ(attempt.tries(), 1u);
      attempt.connection_ended(false);
    });
  }
  // The refusals took no slot: the held one is the only one, and it is given back whole.
  EXPECT_FALSE(refusing.circuit->try_acquire(clock::now()));
  refusing.circuit->release(held);
  EXPECT_TRUE(refusing.circuit->try_acquire(clock::now()));
}

// A try that ends without a verdict gives its trial slot back when the attempt goes away.
TEST_P(attempt_test, a_ticket_without_a_verdict_is_given_back) {
  build(1, [](config::upstream& up) {
    up.breaker.minimum_requests = 1;
    up.breaker.half_open_requests = 1;
  });
  auto& h = *cluster_->hosts[0];
  auto held = hold_half_open(h);
  h.circuit->release(held);
  run([&]() -> asio::awaitable<void> {
    auto attempt = make_attempt();
    EXPECT_TRUE(attempt.admit());
    EXPECT_FALSE((co_await attempt.start_try(clock::time_point::max(), true)).has_value());
    EXPECT_FALSE(h.circuit->try_acquire(clock::now()));  // the attempt holds the only slot
  });
  EXPECT_TRUE(h.circuit->try_acquire(clock::now()));
}

// max_requests is counted per request; over it, the request is refused and counted.
TEST_P(attempt_test, max_requests_refuses_and_counts) {
  build(1, [](config::upstream& up) { up.limit.max_requests = 1; });
  run([&]() -> asio::awaitable<void> {
    auto first = make_attempt();
    auto second = make_attempt();
    EXPECT_TRUE(first.admit());
    EXPECT_FALSE(second.admit());
    EXPECT_EQ(second.failure(), error_kind::upstream_overloaded);
    co_return;
  });
  EXPECT_EQ(cluster_->stats->overflow_max_requests.load(), 1u);
  EXPECT_EQ(cluster_->stats->active_requests.load(), 0);
}

// max_pending: 0 means no queue: at max_connections a request gets upstream_overloaded at once.
TEST_P(attempt_test, max_pending_zero_refuses_at_once) {
  build(1, [](config::upstream& up) {
    up.limit.max_connections = 1;
    up.limit.max_pending = 0;
    up.timeout.connect = std::chrono::hours(1);  // a wait would hang the test: there must be none
  });
  run([&]() -> asio::awaitable<void> {
    auto first = make_attempt();
    EXPECT_TRUE(first.admit());
    EXPECT_FALSE((co_await first.start_try(clock::time_point::max(), true)).has_value());
    auto second = make_attempt();
    EXPECT_TRUE(second.admit());
    auto error = co_await second.start_try(clock::time_point::max(), true);
    EXPECT_EQ(error, error_kind::upstream_overloaded);
  });
  EXPECT_EQ(cluster_->stats->overflow_max_pending.load(), 1u);
  EXPECT_EQ(cluster_->stats->pending.load(), 0);
}

// A request queued at max_connections is woken by the connection that closes (not by a poll):
// it gets the freed reservation and connects.
TEST_P(attempt_test, a_queued_request_is_woken_when_a_connection_closes) {
  build(1, [](config::upstream& up) {
    up.limit.max_connections = 1;
    up.timeout.connect = std::chrono::hours(1);  // far beyond the test: only a wake-up ends the wait
  });
  worker_->pool().set_cross_worker_recheck(std::chrono::hours(1));
  std::optional<upstream_attempt> first;
  bool second_done = false;
  run([&]() -> asio::awaitable<void> {
    first.emplace(*worker_, *worker_->view(), 0, down_->watch(), "198.51.100.7", true, GetParam());
    EXPECT_TRUE(first->admit());
    EXPECT_FALSE((co_await first->start_try(clock::time_point::max(), true)).has_value());
    // The second request waits; the first one's connection closes a moment later.
    asio::co_spawn(
        worker_->io(),
        [&]() -> asio::awaitable<void> {
          auto second = make_attempt();
          EXPECT_TRUE(second.admit());
          EXPECT_FALSE((co_await second.start_try(clock::time_point::max(), true)).has_value());
          second_done = true;
        },
        asio::detached);
    asio::steady_timer later(worker_->io(), std::chrono::milliseconds(1));
    co_await later.async_wait(asio::use_awaitable);
    EXPECT_EQ(cluster_->stats->pending.load(), 1);
    EXPECT_FALSE(second_done);
    first->connection_ended(false);
  });
  EXPECT_TRUE(second_done);
  EXPECT_EQ(cluster_->stats->overflow_max_connections.load(), 0u);
  first.reset();
}

// On HTTP a connection put back in the pool is handed straight to the request waiting for its host.
TEST(attempt_pool, a_pooled_connection_is_handed_to_the_waiting_request) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  config::backend b;
  b.addr.text = "127.0.0.1";
  auto h = std::make_shared<upstream::host>("app", b, acc.local_endpoint());
  auto stats = std::make_shared<upstream::upstream_stats>();
  connection_pool pool;
  pool.set_cross_worker_recheck(std::chrono::hours(1));
  ASSERT_TRUE(stats->try_reserve_connection(1));
  auto conn = std::make_unique<upstream_connection>(tcp::socket(io), h, stats);
  pool.adopt(*conn);
  conn->stream.socket().connect(acc.local_endpoint());
  auto* raw = conn.get();
  std::optional<connection_pool::wait_result> got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        got = co_await pool.wait(io, h.get(), nullptr, *stats, 1, clock::now() + std::chrono::hours(1));
      },
      asio::detached);
  io.poll();
  EXPECT_EQ(pool.waiting(), 1u);
  pool.put(std::move(conn));
  io.run();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->conn.get(), raw);
  EXPECT_FALSE(got->reserved);
  EXPECT_EQ(pool.waiting(), 0u);
  EXPECT_EQ(stats->connections.load(), 1);
}

// A snapshot without a host (removed by a reload, or an address its name no longer resolves to)
// closes the idle connections to it; the others stay pooled.
TEST(attempt_pool, idle_connections_to_hosts_no_longer_configured_close) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  config::backend b;
  b.addr.text = "127.0.0.1";
  auto kept = std::make_shared<upstream::host>("app", b, acc.local_endpoint());
  auto gone = std::make_shared<upstream::host>("app", b, acc.local_endpoint());
  connection_pool pool;
  for (const auto& h : {kept, gone}) {
    auto conn = std::make_unique<upstream_connection>(tcp::socket(io), h);
    conn->stream.socket().connect(acc.local_endpoint());
    pool.put(std::move(conn));
  }
  EXPECT_EQ(pool.idle_count(), 2u);
  EXPECT_EQ(gone->connections_active.load(), 1);
  pool.keep_only([&](const upstream::host* h) { return h == kept.get(); });
  EXPECT_EQ(pool.idle_count(), 1u);
  EXPECT_EQ(gone->connections_active.load(), 0);  // closed, not just forgotten
  EXPECT_NE(pool.take(kept.get()), nullptr);
}

INSTANTIATE_TEST_SUITE_P(paths, attempt_test, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("http") : std::string("l4"); });

}  // namespace
}  // namespace spillway::proxy

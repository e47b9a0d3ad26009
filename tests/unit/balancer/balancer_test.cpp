#include "balancer/least_request.h"
#include "balancer/load_balancer.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

namespace spillway::balancer {
namespace {

// Hosts for tests: 127.0.0.1:9001.. with the given weights; backups after them.
struct fixture {
  std::vector<upstream::host_ptr> owned;
  std::vector<host*> hosts;

  // `clock`: what the hosts date their comebacks (slow start) with; it must outlive the fixture.
  explicit fixture(std::vector<std::uint32_t> weights, std::size_t backups = 0,
                   const time_source& clock = time_source::real()) {
    std::uint16_t port = 9001;
    auto add = [&](std::uint32_t w, bool backup) {
      config::backend b;
      b.addr.host = "127.0.0.1";
      b.addr.port = port;
      b.addr.is_ip = true;
      b.addr.text = "127.0.0.1:" + std::to_string(port);
      b.weight = w;
      b.backup = backup;
      ++port;
      owned.push_back(std::make_shared<upstream::host>(
          "up", b, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), b.addr.port), clock));
      hosts.push_back(owned.back().get());
    };
    for (auto w : weights) {
      add(w, false);
    }
    for (std::size_t i = 0; i < backups; ++i) {
      add(1, true);
    }
  }

  std::unique_ptr<load_balancer> make(config::balance_policy p, double panic = 0, std::uint64_t seed = 1) {
    return make_load_balancer(p, host_set(hosts, panic), make_random_source(seed));
  }
};

// A random source that replays a fixed sequence.
random_source sequence(std::vector<std::uint64_t> values) {
  return [values = std::move(values), i = std::size_t{0}]() mutable { return values[i++ % values.size()]; };
}

TEST(least_request, picks_fewest_in_flight) {
  fixture f({1, 1, 1});
  auto lb = f.make(config::balance_policy::least_request);
  f.hosts[0]->active_requests = 5;
  f.hosts[1]->active_requests = 2;
  f.hosts[2]->active_requests = 7;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(lb->choose_host({}), f.hosts[1]);
  }
}

TEST(least_request, ties_rotate_evenly) {
  fixture f({1, 1, 1, 1});
  auto lb = f.make(config::balance_policy::least_request);
  std::map<host*, int> count;
  for (int i = 0; i < 400; ++i) {
    ++count[lb->choose_host({})];
  }
  for (auto* h : f.hosts) {
    EXPECT_EQ(count[h], 100);
  }
}

TEST(least_request, weight_scales_load) {
  // weight 3 with 5 in flight: (5+1)/3 = 2 ; weight 1 with 1 in flight: (1+1)/1 = 2 -> tie;
  // with 2 in flight on the light host the heavy one wins.
  fixture f({3, 1});
  auto lb = f.make(config::balance_policy::least_request);
  f.hosts[0]->active_requests = 5;
  f.hosts[1]->active_requests = 2;
  EXPECT_EQ(lb->choose_host({}), f.hosts[0]);
  f.hosts[0]->active_requests = 9;
  EXPECT_EQ(lb->choose_host({}), f.hosts[1]);
}

TEST(least_request, simulated_slow_host_gets_less) {
  // Each pick adds one in-flight request; the slow host finishes its requests 10x slower.
  fixture f({1, 1});
  auto lb = f.make(config::balance_policy::least_request);
  std::map<host*, int> count;
  for (int step = 0; step < 10000; ++step) {
    host* h = lb->choose_host({});
    ++count[h];
    h->active_requests++;
    // fast host completes everything each step; slow host completes one request every 10 steps
    if (f.hosts[0]->active_requests > 0) {
      f.hosts[0]->active_requests = 0;
    }
    if (step % 10 == 0 && f.hosts[1]->active_requests > 0) {
      f.hosts[1]->active_requests--;
    }
  }
  EXPECT_LT(count[f.hosts[1]], 10000 * 0.2);
}

TEST(least_request, skips_unavailable_and_tried) {
  fixture f({1, 1, 1});
  auto lb = f.make(config::balance_policy::least_request);
  f.hosts[0]->mark_out(upstream::out_kind::health, "status 503");
  std::vector<host*> tried{f.hosts[1]};
  choose_context ctx;
  ctx.exclude = tried;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(lb->choose_host(ctx), f.hosts[2]);
  }
  // every available host tried: a retry may go back to one of them, never to the unhealthy one
  tried.push_back(f.hosts[2]);
  ctx.exclude = tried;
  auto* h = lb->choose_host(ctx);
  EXPECT_TRUE(h == f.hosts[1] || h == f.hosts[2]);
}

TEST(least_request, ejected_and_open_breaker_are_unavailable) {
  fixture f({1, 1, 1});
  auto lb = f.make(config::balance_policy::least_request);
  f.hosts[0]->mark_out(upstream::out_kind::ejection, "5 consecutive failures");
  f.hosts[1]->apply({upstream::breaker_state::closed, upstream::breaker_state::open, {}, {}});
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(lb->choose_host({}), f.hosts[2]);
  }
  f.hosts[1]->apply({upstream::breaker_state::open, upstream::breaker_state::half_open, {}, {}});
  std::map<host*, int> count;
  for (int i = 0; i < 10; ++i) {
    ++count[lb->choose_host({})];
  }
  EXPECT_GT(count[f.hosts[1]], 0);
  EXPECT_EQ(count[f.hosts[0]], 0);
}

TEST(least_request, power_of_two_choices_draws_two_distinct_hosts) {
  std::vector<std::uint32_t> weights(20, 1);
  fixture f(weights);
  // First draw i = 3, second draw j = 3 -> must become 4 (without replacement).
  auto lb = make_load_balancer(config::balance_policy::least_request, host_set(f.hosts, 0), sequence({3, 3}));
  f.hosts[3]->active_requests = 10;
  f.hosts[4]->active_requests = 1;
  EXPECT_EQ(lb->choose_host({}), f.hosts[4]);
  f.hosts[4]->active_requests = 20;
  EXPECT_EQ(lb->choose_host({}), f.hosts[3]);
}

TEST(least_request, power_of_two_choices_falls_back_to_scan) {
  std::vector<std::uint32_t> weights(20, 1);
  fixture f(weights);
  for (auto* h : f.hosts) {
    h->mark_out(upstream::out_kind::health, "status 503");
  }
  f.hosts[17]->mark_in(upstream::out_kind::health);
  auto lb = make_load_balancer(config::balance_policy::least_request, host_set(f.hosts, 0), sequence({0, 0}));
  EXPECT_EQ(lb->choose_host({}), f.hosts[17]);
}

TEST(balancer, backups_only_when_no_primary_available) {
  fixture f({1, 1}, 1);
  auto lb = f.make(config::balance_policy::least_request);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(lb->choose_host({}), f.hosts[2]);
  }
  f.hosts[0]->mark_out(upstream::out_kind::health, "status 503");
  f.hosts[1]->mark_out(upstream::out_kind::health, "status 503");
  EXPECT_EQ(lb->choose_host({}), f.hosts[2]);
}

TEST(balancer, panic_spreads_over_all_primaries) {
  fixture f({1, 1, 1, 1});
  auto lb = f.make(config::balance_policy::round_robin, 50);
  f.hosts[0]->mark_out(upstream::out_kind::health, "status 503");
  f.hosts[1]->mark_out(upstream::out_kind::health, "status 503");
  // 2 of 4 available = 50%: not below the threshold, only healthy hosts serve
  std::map<host*, int> count;
  for (int i = 0; i < 8; ++i) {
    ++count[lb->choose_host({})];
  }
  EXPECT_EQ(count[f.hosts[0]] + count[f.hosts[1]], 0);
  f.hosts[2]->mark_out(upstream::out_kind::health, "status 503");  // 25% < 50%: panic
  count.clear();
  for (int i = 0; i < 8; ++i) {
    ++count[lb->choose_host({})];
  }
  for (auto* h : f.hosts) {
    EXPECT_EQ(count[h], 2);
  }
}

TEST(balancer, no_host_when_all_down_without_panic) {
  fixture f({1, 1});
  auto lb = f.make(config::balance_policy::least_request, 0);
  f.hosts[0]->mark_out(upstream::out_kind::health, "status 503");
  f.hosts[1]->mark_out(upstream::out_kind::health, "status 503");
  EXPECT_EQ(lb->choose_host({}), nullptr);
}

TEST(balancer, slow_start_ramps_a_returning_host) {
  manual_time_source clk;
  fixture f({1, 1}, 0, clk);
  auto lb = make_load_balancer(config::balance_policy::round_robin,
                               host_set(f.hosts, 0, std::chrono::seconds(100), clk), make_random_source(1));
  // host 1 comes back now: it starts at 10% of its weight; host 0 was never out
  f.hosts[1]->mark_out(upstream::out_kind::health, "status 503");
  f.hosts[1]->mark_in(upstream::out_kind::health);
  ASSERT_EQ(f.hosts[1]->available_since(), clk.steady_ns());
  auto share_of_host_1 = [&](int picks) {
    std::map<host*, int> count;
    for (int i = 0; i < picks; ++i) {
      ++count[lb->choose_host({})];
    }
    return count[f.hosts[1]];
  };
  EXPECT_EQ(share_of_host_1(1100), 100);  // weights 100 : 10
  // halfway through the window: half its weight
  clk.advance(std::chrono::seconds(50));
  EXPECT_EQ(share_of_host_1(1500), 500);  // weights 100 : 50
  // at the end of the window and after: full weight again
  clk.advance(std::chrono::seconds(50));
  EXPECT_EQ(share_of_host_1(1000), 500);
  clk.advance(std::chrono::hours(1));
  EXPECT_EQ(share_of_host_1(1000), 500);
}

TEST(balancer, slow_start_starts_when_a_host_is_marked_back_in) {
  manual_time_source clk;
  config::backend b;
  b.addr = {"127.0.0.1", 9001, true, "127.0.0.1:9001"};
  auto a = std::make_shared<upstream::host>("up", b, boost::asio::ip::tcp::endpoint{}, clk);
  b.addr = {"127.0.0.1", 9002, true, "127.0.0.1:9002"};
  auto c = std::make_shared<upstream::host>("up", b, boost::asio::ip::tcp::endpoint{}, clk);
  std::vector<host*> hosts{a.get(), c.get()};
  auto lb = make_load_balancer(config::balance_policy::round_robin, host_set(hosts, 0, std::chrono::seconds(10), clk),
                               make_random_source(1));
  c->mark_out(upstream::out_kind::ejection, "test");
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(lb->choose_host({}), a.get());
  }
  clk.advance(std::chrono::seconds(30));
  c->mark_in(upstream::out_kind::ejection);  // stamped with the fake clock's time
  std::map<host*, int> count;
  for (int i = 0; i < 1100; ++i) {
    ++count[lb->choose_host({})];
  }
  EXPECT_EQ(count[c.get()], 100);
}

TEST(round_robin, smooth_weighted_order) {
  fixture f({5, 1, 1});
  auto lb = f.make(config::balance_policy::round_robin);
  std::vector<host*> order;
  for (int i = 0; i < 7; ++i) {
    order.push_back(lb->choose_host({}));
  }
  auto* a = f.hosts[0];
  auto* b = f.hosts[1];
  auto* c = f.hosts[2];
  EXPECT_EQ(order, (std::vector<host*>{a, a, b, a, c, a, a}));
}

TEST(random, respects_weights) {
  fixture f({3, 1});
  auto lb = f.make(config::balance_policy::random, 0, 42);
  std::map<host*, int> count;
  for (int i = 0; i < 40000; ++i) {
    ++count[lb->choose_host({})];
  }
  EXPECT_NEAR(count[f.hosts[0]] / 40000.0, 0.75, 0.02);
}

TEST(random, injected_source_decides) {
  fixture f({1, 1, 1});
  // weights are scaled by 100 inside the balancer: points 250, 0 and 150 fall on hosts 2, 0 and 1
  auto lb = make_load_balancer(config::balance_policy::random, host_set(f.hosts, 0), sequence({250, 0, 150}));
  EXPECT_EQ(lb->choose_host({}), f.hosts[2]);
  EXPECT_EQ(lb->choose_host({}), f.hosts[0]);
  EXPECT_EQ(lb->choose_host({}), f.hosts[1]);
}

TEST(consistent_hash, same_key_same_host_and_minimal_movement) {
  fixture f({1, 1, 1, 1});
  auto lb = f.make(config::balance_policy::consistent_hash);
  std::map<std::uint64_t, host*> before;
  for (std::uint64_t k = 0; k < 2000; ++k) {
    choose_context ctx;
    ctx.hash = k * 0x9e3779b97f4a7c15ULL;
    before[k] = lb->choose_host(ctx);
    EXPECT_EQ(lb->choose_host(ctx), before[k]);
  }
  f.hosts[1]->mark_out(upstream::out_kind::health, "status 503");
  int moved = 0;
  for (std::uint64_t k = 0; k < 2000; ++k) {
    choose_context ctx;
    ctx.hash = k * 0x9e3779b97f4a7c15ULL;
    auto* h = lb->choose_host(ctx);
    EXPECT_NE(h, f.hosts[1]);
    if (before[k] != f.hosts[1]) {
      moved += h != before[k] ? 1 : 0;
    }
  }
  EXPECT_EQ(moved, 0);  // only keys of the removed host move
}

}  // namespace
}  // namespace spillway::balancer

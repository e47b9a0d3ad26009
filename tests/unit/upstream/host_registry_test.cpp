// The host registry: host state across reloads, address changes and removals, and asynchronous DNS
// with a resolver the test answers itself (no system resolver, no sleeping).

#include "upstream/host_registry.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <deque>
#include <string>

namespace spillway::upstream {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

config::backend backend(const std::string& host, std::uint16_t port, std::uint32_t weight = 1) {
  config::backend b;
  b.addr.host = host;
  b.addr.port = port;
  b.addr.is_ip = host.find_first_not_of("0123456789.") == std::string::npos;
  b.addr.text = host + ":" + std::to_string(port);
  b.weight = weight;
  return b;
}

config::config one_upstream(std::vector<config::backend> backends) {
  config::config cfg;
  config::upstream u;
  u.name = "app";
  u.backends = std::move(backends);
  u.dns_refresh = std::chrono::seconds(5);
  cfg.upstreams.push_back(u);
  return cfg;
}

// Lookups wait here until the test answers them.
struct fake_dns {
  struct lookup {
    std::string name;
    host_registry::resolve_done done;
  };
  std::deque<lookup> pending;

  host_registry::resolve_fn fn() {
    return [this](const std::string& name, std::uint16_t, host_registry::resolve_done done) {
      pending.push_back({name, std::move(done)});
    };
  }
  void answer(const char* ip, std::uint16_t port = 80) {
    ASSERT_FALSE(pending.empty());
    auto l = std::move(pending.front());
    pending.pop_front();
    l.done({}, tcp::endpoint(asio::ip::make_address(ip), port));
  }
  void fail() {
    ASSERT_FALSE(pending.empty());
    auto l = std::move(pending.front());
    pending.pop_front();
    l.done(asio::error::host_not_found, {});
  }
};

struct fixture {
  asio::io_context io;
  manual_time_source clk;
  journal events{clk};
  fake_dns dns;
  host_registry registry{io, &events, dns.fn(), clk};
};

TEST(HostRegistry, AReloadKeepsTheHostAndItsStateWhileTheBackendStays) {
  fixture f;
  auto first = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.2", 80)}), {});
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0]->hosts.size(), 2u);
  auto a = first[0]->hosts[0];
  a->mark_out(out_kind::ejection, "5 consecutive failures");
  a->active_requests.fetch_add(3);
  first[0]->stats->no_healthy_upstream.fetch_add(1);

  // Same backends, another weight: same objects, state kept, weight applied.
  auto second = f.registry.build(one_upstream({backend("10.0.0.1", 80, 5), backend("10.0.0.2", 80)}), {});
  EXPECT_EQ(second[0]->hosts[0], a);
  EXPECT_TRUE(a->is_ejected());
  EXPECT_EQ(a->active_requests.load(), 3);
  EXPECT_EQ(a->weight(), 5u);
  EXPECT_EQ(second[0]->stats, first[0]->stats);  // per-upstream counters survive too
  EXPECT_EQ(f.registry.find("app", "10.0.0.1:80"), a);
}

TEST(HostRegistry, AnAddressChangeIsANewHostAndARemovedHostIsForgotten) {
  fixture f;
  auto first = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.2", 80)}), {});
  auto b = first[0]->hosts[1];
  b->mark_out(out_kind::health, "status 503");
  auto second = f.registry.build(one_upstream({backend("10.0.0.1", 80), backend("10.0.0.3", 80)}), {});
  ASSERT_EQ(second[0]->hosts.size(), 2u);
  EXPECT_EQ(second[0]->hosts[0], first[0]->hosts[0]);
  EXPECT_NE(second[0]->hosts[1], b);
  EXPECT_TRUE(second[0]->hosts[1]->available());  // nothing known about 10.0.0.3 yet
  EXPECT_EQ(f.registry.find("app", "10.0.0.2:80"), nullptr);
  // Put back later, 10.0.0.2 starts fresh.
  auto third = f.registry.build(one_upstream({backend("10.0.0.2", 80)}), {});
  EXPECT_NE(third[0]->hosts[0], b);
  EXPECT_TRUE(third[0]->hosts[0]->is_healthy());
}

TEST(HostRegistry, ChangedHealthCheckSettingsStartTheHostFresh) {
  fixture f;
  auto cfg = one_upstream({backend("10.0.0.1", 80)});
  auto first = f.registry.build(cfg, {});
  first[0]->hosts[0]->mark_out(out_kind::ejection, "x");
  cfg.upstreams[0].health.interval = std::chrono::seconds(42);
  auto second = f.registry.build(cfg, {});
  EXPECT_NE(second[0]->hosts[0], first[0]->hosts[0]);
  EXPECT_FALSE(second[0]->hosts[0]->is_ejected());
}

TEST(HostRegistry, ANewNameIsOutOfTrafficUntilItResolvesAndTheBuildDoesNotWait) {
  fixture f;
  auto clusters = f.registry.build(one_upstream({backend("app.test", 80)}), {});
  auto h = clusters[0]->hosts[0];
  EXPECT_FALSE(h->available());
  EXPECT_STREQ(h->out_reason(), "unresolved");
  EXPECT_EQ(f.registry.lookups_in_flight(), 1u);
  EXPECT_TRUE(f.registry.unresolved().empty());  // no answer yet is not a failure
  f.dns.answer("127.0.0.7");
  EXPECT_EQ(f.registry.lookups_in_flight(), 0u);
  EXPECT_TRUE(h->available());
  EXPECT_EQ(h->endpoint().address().to_string(), "127.0.0.7");
}

TEST(HostRegistry, AFailedFirstLookupIsReportedAndRetriedAtTheRefresh) {
  fixture f;
  auto clusters = f.registry.build(one_upstream({backend("app.test", 80)}), {});
  auto h = clusters[0]->hosts[0];
  f.dns.fail();
  ASSERT_EQ(f.registry.unresolved().size(), 1u);
  EXPECT_EQ(f.registry.unresolved()[0].rfind("backend app.test:80 of upstream \"app\": cannot resolve: ", 0), 0u);
  EXPECT_FALSE(h->available());
  f.registry.refresh(f.clk.steady_now());  // not due yet
  EXPECT_TRUE(f.dns.pending.empty());
  f.clk.advance(std::chrono::seconds(5));
  f.registry.refresh(f.clk.steady_now());
  f.dns.answer("127.0.0.8");
  EXPECT_TRUE(h->available());
  EXPECT_TRUE(f.registry.unresolved().empty());
}

TEST(HostRegistry, ARefreshMovesTheHostKeepingItsStateAndAFailureKeepsTheLastAnswer) {
  fixture f;
  auto clusters = f.registry.build(one_upstream({backend("app.test", 80)}), {});
  auto h = clusters[0]->hosts[0];
  f.dns.answer("127.0.0.1");
  h->requests_total.fetch_add(10);
  const auto version = h->endpoint_version();
  f.clk.advance(std::chrono::seconds(5));
  f.registry.refresh(f.clk.steady_now());
  f.dns.answer("127.0.0.2");
  EXPECT_EQ(h->endpoint().address().to_string(), "127.0.0.2");
  EXPECT_GT(h->endpoint_version(), version);
  EXPECT_EQ(h->requests_total.load(), 10u);
  auto moves = f.events.recent();
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].kind, "dns");
  EXPECT_EQ(moves[0].from, "127.0.0.1");
  EXPECT_EQ(moves[0].to, "127.0.0.2");
  f.clk.advance(std::chrono::seconds(5));
  f.registry.refresh(f.clk.steady_now());
  f.dns.fail();
  EXPECT_TRUE(h->available());
  EXPECT_EQ(h->endpoint().address().to_string(), "127.0.0.2");
}

TEST(HostRegistry, AHostThatStartsFreshKeepsItsNamesAnswer) {
  fixture f;
  auto cfg = one_upstream({backend("app.test", 80)});
  auto first = f.registry.build(cfg, {});
  f.dns.answer("127.0.0.3");
  cfg.upstreams[0].breaker.enabled = !cfg.upstreams[0].breaker.enabled;
  auto second = f.registry.build(cfg, {});
  EXPECT_NE(second[0]->hosts[0], first[0]->hosts[0]);
  EXPECT_TRUE(second[0]->hosts[0]->available());  // no lookup to wait for
  EXPECT_EQ(second[0]->hosts[0]->endpoint().address().to_string(), "127.0.0.3");
  EXPECT_EQ(f.registry.lookups_in_flight(), 0u);
}

TEST(HostRegistry, AnAnswerForARemovedHostIsIgnored) {
  fixture f;
  auto first = f.registry.build(one_upstream({backend("app.test", 80)}), {});
  auto h = first[0]->hosts[0];
  f.registry.build(one_upstream({backend("10.0.0.1", 80)}), {});
  f.dns.answer("127.0.0.4");
  EXPECT_FALSE(h->is_resolved());
  EXPECT_EQ(f.registry.lookups_in_flight(), 0u);
}

}  // namespace
}  // namespace spillway::upstream
